//! Refused deliveries as warp rejections, and the `recover` that answers them.

use agentsync_webhooks_core::HeaderLookup;
use warp::{
    Rejection,
    http::{
        HeaderValue, StatusCode,
        header::{CONTENT_TYPE, RETRY_AFTER},
    },
    reply::Response,
};

use crate::WebhookError;

/// Why [`webhook`](crate::webhook) refused a request: the core [`WebhookError`] and the answer every adapter
/// sends for it.
///
/// Answer it with [`recover`](crate::recover) (or, in a `recover` function of your own, with
/// [`response`](Self::response)); left unanswered, warp turns it into a 500.
#[derive(Debug)]
pub struct WebhookRejection {
    error: WebhookError,
    rejection: agentsync_webhooks_core::Rejection,
}

impl warp::reject::Reject for WebhookRejection {}

impl WebhookRejection {
    /// The refusal of a request with `headers` for `error`. Logs it once, with the request's
    /// `webhook-id` (or `svix-id`) when it has a usable one.
    pub fn new(error: WebhookError, headers: &(impl HeaderLookup + ?Sized)) -> Self {
        let rejection = error.rejection_for(headers);
        Self { error, rejection }
    }

    /// Why the delivery was refused.
    pub fn error(&self) -> &WebhookError {
        &self.error
    }

    /// The framework-neutral answer: status, JSON body, `Retry-After`.
    pub fn rejection(&self) -> &agentsync_webhooks_core::Rejection {
        &self.rejection
    }

    /// The response every adapter sends for this error: status, JSON body (`Content-Type:
    /// application/json`) and `Retry-After` where the sender should come back.
    ///
    /// ```
    /// use agentsync_webhooks_core::WebhookError;
    /// use agentsync_webhooks_warp::WebhookRejection;
    ///
    /// let headers = [("webhook-id", "msg_1")];
    /// let response = WebhookRejection::new(WebhookError::InvalidTimestamp, &headers).response();
    /// assert_eq!(response.status(), 400);
    /// assert_eq!(response.headers()["content-type"], "application/json");
    /// ```
    pub fn response(&self) -> Response {
        let rejection = &self.rejection;
        let mut response = Response::new(rejection.body.clone().into());
        *response.status_mut() =
            StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        if let Some(content_type) = rejection.content_type() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if let Some(seconds) = rejection.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Answers a [`WebhookRejection`](crate::WebhookRejection) with the status and JSON body of the design's table, and
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
pub async fn recover(rejection: Rejection) -> Result<Response, Rejection> {
    match rejection.find::<WebhookRejection>() {
        Some(ours) => Ok(ours.response()),
        None => Err(rejection),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_HEADERS: [(&str, &str); 0] = [];

    #[test]
    fn retry_after_is_copied() {
        let response = WebhookRejection::new(
            WebhookError::StoreUnavailable {
                detail: "down".into(),
                retry_after_secs: 30,
            },
            &NO_HEADERS,
        )
        .response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "30");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn duplicate_is_an_empty_200_without_content_type() {
        let response = WebhookRejection::new(WebhookError::Duplicate, &NO_HEADERS).response();
        assert_eq!(response.status(), 200);
        assert!(response.headers().get(CONTENT_TYPE).is_none());
        assert!(response.headers().get(RETRY_AFTER).is_none());
    }

    #[test]
    fn response_copies_the_core_rejection() {
        let error = WebhookError::InFlight {
            retry_after_secs: 5,
        };
        let ours = WebhookRejection::new(error.clone(), &[("webhook-id", "msg_1")]);
        assert_eq!(ours.error(), &error);
        let core = error.rejection(Some("msg_1"));
        assert_eq!(ours.rejection(), &core);
        let response = ours.response();
        assert_eq!(response.status(), core.status);
        assert_eq!(response.headers()[RETRY_AFTER], "5");
    }
}
