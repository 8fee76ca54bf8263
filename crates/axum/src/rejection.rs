//! The extractor's rejection.

use agentsync_webhooks_core::{Rejection, WebhookError};
use agentsync_webhooks_tower::{rejection_response, webhook_id};
use axum_core::{
    body::Body,
    response::{IntoResponse, Response},
};
use http::HeaderMap;

/// Why [`Webhook`](crate::Webhook) refused a request, answered with the status and JSON body of
/// the design table (the same response as the layer's).
///
/// ```
/// use agentsync_webhooks_axum::WebhookRejection;
/// use agentsync_webhooks_core::WebhookError;
/// use axum_core::response::IntoResponse;
///
/// let rejection = WebhookRejection::from(WebhookError::MissingHeader("webhook-id").rejection(None));
/// assert_eq!(rejection.into_response().status(), 400);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRejection(Rejection);

impl WebhookRejection {
    /// Logs `error` with the request's `webhook-id` and keeps its response.
    pub(crate) fn new(error: &WebhookError, headers: &HeaderMap) -> Self {
        Self(error.rejection(webhook_id(headers)))
    }

    /// The framework-neutral rejection (status, body, `Retry-After`).
    pub fn rejection(&self) -> &Rejection {
        &self.0
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.0.status
    }
}

impl From<Rejection> for WebhookRejection {
    fn from(rejection: Rejection) -> Self {
        Self(rejection)
    }
}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        rejection_response(self.0).map(Body::new)
    }
}
