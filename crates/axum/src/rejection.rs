//! The extractor's rejection.

use agentsync_webhooks_core::adapter::Rejection;
use axum_core::{
    body::Body,
    response::{IntoResponse, Response},
};

/// Why [`Webhook`](crate::Webhook) refused a request, answered with the design table's status
/// and JSON body (the same response as the layer's); derefs to the core
/// [`Rejection`] for its status, code and error.
///
/// ```
/// use agentsync_webhooks_axum::WebhookRejection;
/// use agentsync_webhooks_core::{WebhookError, adapter::Rejection};
/// use axum_core::response::IntoResponse;
///
/// let rejection = WebhookRejection::from(Rejection::new(WebhookError::MissingHeader("webhook-id"), None));
/// assert_eq!(rejection.code(), "missing_header");
/// assert_eq!(rejection.into_response().status(), 400);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRejection(pub Rejection);

impl std::ops::Deref for WebhookRejection {
    type Target = Rejection;

    fn deref(&self) -> &Rejection {
        &self.0
    }
}

impl From<Rejection> for WebhookRejection {
    fn from(rejection: Rejection) -> Self {
        Self(rejection)
    }
}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        self.0.into_response::<Body>()
    }
}
