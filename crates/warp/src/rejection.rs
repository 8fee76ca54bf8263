//! Refused deliveries as warp rejections, and the `recover` that answers them.

use warp::reply::Response;

agentsync_webhooks_core::adapter::webhook_rejection! {
    /// Why [`webhook`](crate::webhook) refused a request: the core [`Rejection`](agentsync_webhooks_core::adapter::Rejection) (it derefs to it,
    /// for its status, code and error), answered by [`recover`](crate::recover) with the status and
    /// JSON body every adapter sends. Left unanswered, warp turns it into a 500.
    ///
    /// ```
    /// use agentsync_webhooks_core::{WebhookError, adapter::Rejection};
    /// use agentsync_webhooks_warp::WebhookRejection;
    ///
    /// let rejection = WebhookRejection(Rejection::new(WebhookError::InvalidTimestamp, Some("msg_1")));
    /// let response = rejection.response();
    /// assert_eq!((response.status().as_u16(), rejection.code()), (400, "invalid_timestamp"));
    /// assert_eq!(response.headers()["content-type"], "application/json");
    /// ```
    WebhookRejection
}

impl warp::reject::Reject for WebhookRejection {}

impl WebhookRejection {
    /// The response every adapter sends for this refusal, for a `recover` function of your own.
    pub fn response(&self) -> Response {
        self.0.clone().into_response()
    }
}

/// Answers a [`WebhookRejection`] with the status and JSON body of the design's table, and
/// passes every other rejection on unchanged (so warp still answers 404, 405, ... itself).
///
/// Use it with [`Filter::recover`](warp::Filter::recover) on your routes:
///
/// ```
/// use agentsync_webhooks_core::Verifier;
/// use agentsync_webhooks_warp::{Webhook, webhook};
/// use warp::{Filter, http::StatusCode};
///
/// let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
/// let routes = warp::path!("webhooks" / "psapi")
///     .and(webhook(verifier))
///     .then(|hook: Webhook| hook.respond(StatusCode::OK))
///     .or(warp::path!("health").map(|| "ok"))
///     .recover(agentsync_webhooks_warp::recover);
/// # let _ = routes;
/// # Ok::<(), agentsync_webhooks_core::SecretError>(())
/// ```
pub async fn recover(rejection: warp::Rejection) -> Result<Response, warp::Rejection> {
    match rejection.find::<WebhookRejection>() {
        Some(ours) => Ok(ours.response()),
        None => Err(rejection),
    }
}
