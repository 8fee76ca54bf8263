//! Turning the core's refusals into `http` responses: the one conversion every `http` 1 adapter
//! (this layer, the axum extractor) uses.

use agentsync_webhooks_core::{
    MAX_ID_LEN, Rejection, WebhookError,
    headers::{SVIX_ID, WEBHOOK_ID},
};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

/// The response for a refused delivery: the rejection's status, JSON body, `Content-Type` and
/// `Retry-After`, copied as they are (the core decides them).
///
/// ```
/// use agentsync_webhooks_core::WebhookError;
/// use agentsync_webhooks_tower::rejection_response;
///
/// let response = rejection_response(WebhookError::InvalidTimestamp.rejection(None));
/// assert_eq!(response.status(), 400);
/// assert_eq!(response.headers()["content-type"], "application/json");
/// ```
pub fn rejection_response(rejection: Rejection) -> Response<Full<Bytes>> {
    let status =
        StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = rejection.content_type();
    let mut response = Response::new(Full::new(Bytes::from(rejection.body)));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if let Some(secs) = rejection.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Logs `error` (with the request's `webhook-id`, when it has a usable one) and builds its
/// response.
pub fn reject(error: &WebhookError, headers: &HeaderMap) -> Response<Full<Bytes>> {
    rejection_response(error.rejection(webhook_id(headers)))
}

/// The request's `webhook-id` (or `svix-id`), for log lines, when it is printable and not
/// oversized; verification proper is the core's job.
pub fn webhook_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(WEBHOOK_ID)
        .or_else(|| headers.get(SVIX_ID))
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= MAX_ID_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_status_type_and_retry_after() {
        let response = rejection_response(
            WebhookError::StoreUnavailable {
                detail: "down".into(),
                retry_after_secs: 30,
            }
            .rejection(None),
        );
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "30");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");

        let duplicate = rejection_response(WebhookError::Duplicate.rejection(Some("msg_1")));
        assert_eq!(duplicate.status(), 200);
        assert!(duplicate.headers().get(header::CONTENT_TYPE).is_none());
    }

    #[test]
    fn webhook_id_for_logs_only_when_usable() {
        let mut headers = HeaderMap::new();
        assert_eq!(webhook_id(&headers), None);
        headers.insert(SVIX_ID, HeaderValue::from_static("msg_svix"));
        assert_eq!(webhook_id(&headers), Some("msg_svix"));
        headers.insert(WEBHOOK_ID, HeaderValue::from_static("msg_1"));
        assert_eq!(webhook_id(&headers), Some("msg_1"));
        headers.insert(
            WEBHOOK_ID,
            HeaderValue::from_str(&"a".repeat(MAX_ID_LEN + 1)).unwrap(),
        );
        assert_eq!(webhook_id(&headers), None);
    }
}
