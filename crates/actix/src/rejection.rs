//! Refused deliveries as actix responses: the core's [`Rejection`](agentsync_webhooks_core::adapter::Rejection), copied as is.

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};

agentsync_webhooks_core::adapter::webhook_rejection! {
    /// Why the port or the [`Webhook`](crate::Webhook) extractor refused a request; answers with the
    /// design table's status and the same JSON body as every other adapter (it implements
    /// [`ResponseError`]), and derefs to the core [`Rejection`](agentsync_webhooks_core::adapter::Rejection) for its status, code and error.
    ///
    /// ```
    /// use actix_web::ResponseError;
    /// use agentsync_webhooks_actix::WebhookRejection;
    /// use agentsync_webhooks_core::{WebhookError, adapter::Rejection};
    ///
    /// let rejection = WebhookRejection::from(Rejection::new(WebhookError::InFlight { retry_after_secs: 5 }, None));
    /// let response = rejection.error_response();
    /// assert_eq!((response.status().as_u16(), rejection.code()), (409, "in_flight"));
    /// assert_eq!(response.headers().get("retry-after").unwrap(), "5");
    /// ```
    WebhookRejection
}

/// The one conversion for actix-web (on `http` 0.2); every `http` 1 adapter uses
/// [`Rejection::into_response`](agentsync_webhooks_core::adapter::Rejection::into_response) instead.
impl ResponseError for WebhookRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(content_type) = self.0.content_type() {
            response.insert_header((header::CONTENT_TYPE, content_type));
        }
        if let Some(seconds) = self.0.retry_after() {
            response.insert_header((header::RETRY_AFTER, seconds));
        }
        if self.0.closes_connection() {
            response.force_close();
        }
        response.body(self.0.body().clone())
    }
}
