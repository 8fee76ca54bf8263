//! The extractor's rejection.

use axum_core::{
    body::Body,
    response::{IntoResponse, Response},
};

agentsync_webhooks_core::adapter::webhook_rejection! {
    /// Why [`Webhook`](crate::Webhook) refused a request, answered with the design table's status
    /// and JSON body (the same response as the layer's); derefs to the core
    /// [`Rejection`](agentsync_webhooks_core::adapter::Rejection) for its status, code and error.
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
    WebhookRejection
}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        self.0.into_response::<Body>()
    }
}
