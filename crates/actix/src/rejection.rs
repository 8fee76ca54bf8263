//! Refused deliveries as actix responses: the core's [`Rejection`], copied as is.

use std::fmt;

use actix_web::{
    HttpResponse, ResponseError,
    http::{
        StatusCode,
        header::{self, HeaderMap},
    },
};
use agentsync_webhooks_core::{Rejection, WebhookError};

use crate::ActixHeaders;

/// Copies a core [`Rejection`] into an actix response: status, JSON body and its content type,
/// `Retry-After` when set. Both the middleware and [`WebhookRejection`] answer through it, so
/// every refusal looks the same whichever mode refused it.
///
/// ```
/// use agentsync_webhooks_actix::rejection_response;
/// use agentsync_webhooks_core::WebhookError;
///
/// let response = rejection_response(&WebhookError::InFlight { retry_after_secs: 5 }.rejection(None));
/// assert_eq!(response.status(), 409);
/// assert_eq!(response.headers().get("retry-after").unwrap(), "5");
/// assert_eq!(response.headers().get("content-type").unwrap(), "application/json");
/// ```
pub fn rejection_response(rejection: &Rejection) -> HttpResponse {
    let status =
        StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    if let Some(content_type) = rejection.content_type() {
        response.insert_header((header::CONTENT_TYPE, content_type));
    }
    if let Some(seconds) = rejection.retry_after {
        response.insert_header((header::RETRY_AFTER, seconds));
    }
    response.body(rejection.body.clone())
}

/// Why the [`Webhook`](crate::Webhook) extractor refused a request; answers with the design
/// table's status and the same JSON body as every other adapter (it implements
/// [`ResponseError`]).
///
/// The refusal is logged once, when it is made.
pub struct WebhookRejection {
    cause: Cause,
    rejection: Rejection,
}

enum Cause {
    Webhook(WebhookError),
    Misconfigured(&'static str),
}

impl WebhookRejection {
    /// A refusal for `error`; `webhook_id` (the delivery's id, when the headers had one) goes
    /// into the log line.
    pub fn new(error: WebhookError, webhook_id: Option<&str>) -> Self {
        let rejection = error.rejection(webhook_id);
        Self {
            cause: Cause::Webhook(error),
            rejection,
        }
    }

    /// A refusal for `error` on a request with these headers (their id goes into the log line).
    pub(crate) fn for_request(error: WebhookError, headers: &HeaderMap) -> Self {
        let rejection = error.rejection_for(&ActixHeaders(headers));
        Self {
            cause: Cause::Webhook(error),
            rejection,
        }
    }

    /// A 500 for a service set up wrong, naming the fix.
    pub(crate) fn misconfigured(message: &'static str) -> Self {
        Self {
            cause: Cause::Misconfigured(message),
            rejection: Rejection::misconfigured(message),
        }
    }

    /// The delivery's fault, or `None` when the service itself is misconfigured.
    pub fn error(&self) -> Option<&WebhookError> {
        match &self.cause {
            Cause::Webhook(error) => Some(error),
            Cause::Misconfigured(_) => None,
        }
    }

    /// The answer sent back: status, JSON body, `Retry-After`.
    pub fn rejection(&self) -> &Rejection {
        &self.rejection
    }
}

impl From<WebhookError> for WebhookRejection {
    fn from(error: WebhookError) -> Self {
        Self::new(error, None)
    }
}

impl fmt::Debug for WebhookRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookRejection")
            .field("rejection", &self.rejection)
            .finish()
    }
}

impl fmt::Display for WebhookRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Cause::Webhook(error) => error.fmt(f),
            Cause::Misconfigured(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for WebhookRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Cause::Webhook(error) => Some(error),
            Cause::Misconfigured(_) => None,
        }
    }
}

impl ResponseError for WebhookRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.rejection.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        rejection_response(&self.rejection)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;

    use super::*;

    #[actix_web::test]
    async fn copies_status_body_and_headers() {
        let error = WebhookError::StoreUnavailable {
            detail: "down".into(),
            retry_after_secs: 30,
        };
        let expected = error.rejection(None);
        let rejection = WebhookRejection::new(error, Some("msg_1"));
        assert_eq!(rejection.status_code(), 503);
        let response = rejection.error_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers().get("retry-after").unwrap(), "30");
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/json"
        );
        let body = to_bytes(response.into_body()).await.unwrap();
        assert_eq!(body, expected.body);
        assert!(rejection.to_string().contains("idempotency store"));
    }

    #[actix_web::test]
    async fn duplicate_is_an_empty_200_without_content_type() {
        let response = WebhookRejection::from(WebhookError::Duplicate).error_response();
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("content-type").is_none());
        assert!(to_bytes(response.into_body()).await.unwrap().is_empty());
    }

    #[actix_web::test]
    async fn misconfigured_is_a_500_naming_the_fix() {
        let rejection = WebhookRejection::misconfigured("register a verifier");
        assert!(rejection.error().is_none());
        let response = rejection.error_response();
        assert_eq!(response.status(), 500);
        let body: serde_json::Value =
            serde_json::from_slice(&to_bytes(response.into_body()).await.unwrap()).unwrap();
        assert_eq!(body["error"], "misconfigured");
        assert_eq!(body["message"], "register a verifier");
    }
}
