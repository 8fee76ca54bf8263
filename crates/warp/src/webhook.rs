//! The extracted delivery, and running the handler so that its status reaches the receiver.

use warp::{Reply, reply::Response};

use agentsync_webhooks_core::adapter::{Accepted, Completion};

use crate::{Delivery, EventData};

/// A verified delivery, extracted by [`webhook`](crate::webhook), with the obligation to report
/// how its handler did. Derefs to the [`WebhookEvent`](agentsync_webhooks_core::WebhookEvent),
/// with the same accessors as every adapter's `Webhook`.
///
/// Hand it a handler with [`run`](Self::run), or answer it with [`respond`](Self::respond);
/// dropping it instead (or taking [`into_delivery`](Self::into_delivery) or
/// [`into_event`](Self::into_event)) reports nothing, which releases the delivery for a retry.
#[derive(Debug)]
pub struct Webhook<D = EventData> {
    // Boxed as the port gave it: the filter's extract moves a pointer.
    delivery: Box<Delivery<D>>,
    completion: Completion,
}

agentsync_webhooks_core::adapter::webhook_accessors!(Webhook);

impl<D> From<Accepted<D>> for Webhook<D> {
    fn from(accepted: Accepted<D>) -> Self {
        Self {
            delivery: accepted.delivery,
            completion: accepted.completion,
        }
    }
}

impl<D> Webhook<D> {
    /// Runs `handler` on the delivery and answers with its reply, after recording the reply's
    /// status with the completion (a 2xx completes the delivery; anything else releases it so
    /// that the sender's retry is processed).
    ///
    /// ```
    /// use agentsync_webhooks_core::{Delivery, Verifier};
    /// use agentsync_webhooks_warp::{Webhook, webhook};
    /// use warp::{Filter, http::StatusCode};
    ///
    /// let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
    /// let route = warp::path!("webhooks" / "psapi")
    ///     .and(webhook(verifier))
    ///     .then(|hook: Webhook| {
    ///         hook.run(|delivery: Delivery| async move {
    ///             println!("{} {}", delivery.webhook_id, delivery.event.event_type);
    ///             StatusCode::NO_CONTENT
    ///         })
    ///     });
    /// # let _ = route;
    /// # Ok::<(), agentsync_webhooks_core::SecretError>(())
    /// ```
    pub async fn run<H, F, R>(self, handler: H) -> Response
    where
        H: FnOnce(Delivery<D>) -> F,
        F: Future<Output = R>,
        R: Reply,
    {
        let reply = self.completion.in_span(handler(*self.delivery)).await;
        finish(self.completion, reply).await
    }

    /// Answers with `reply`, after recording its status with the completion: the last step of a
    /// handler that takes the [`Webhook`](crate::Webhook) itself (for example with `and_then`).
    ///
    /// ```
    /// use std::convert::Infallible;
    ///
    /// use agentsync_webhooks_warp::Webhook;
    /// use warp::{Reply, http::StatusCode};
    ///
    /// async fn on_webhook(hook: Webhook) -> Result<impl Reply, Infallible> {
    ///     println!("{} {}", hook.webhook_id(), hook.event_type);
    ///     Ok(hook.respond(StatusCode::NO_CONTENT).await)
    /// }
    /// ```
    pub async fn respond(self, reply: impl Reply) -> Response {
        finish(self.completion, reply).await
    }

    /// The delivery and its completion, for full control: call
    /// [`Completion::finish`] with the status you answer with.
    pub fn into_parts(self) -> (Delivery<D>, Completion) {
        (*self.delivery, self.completion)
    }
}

/// Renders `reply` and finishes `completion` with its status.
async fn finish(completion: Completion, reply: impl Reply) -> Response {
    let response = reply.into_response();
    completion.finish(response.status().as_u16()).await;
    response
}
