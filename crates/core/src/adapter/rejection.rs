//! The port's own answers: refusals, duplicates, and their one conversion into a response.

use std::fmt;

use bytes::Bytes;

use crate::{HeaderLookup, WebhookError, headers::id_for_log};

/// The JSON body of every refusal: `{"error": "<code>", "message": "<sentence>"}`.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ErrorBody<'a> {
    /// The stable code, [`WebhookError::code`].
    pub error: &'a str,
    /// A sentence with the likely cause.
    #[serde(borrow)]
    pub message: std::borrow::Cow<'a, str>,
}

/// An answer the port gives without running the framework's handler: a refused delivery, an
/// acknowledged duplicate, a misconfigured service, or (with an inline
/// [`EventRouter`](crate::EventRouter)) the router's result. Logged once, when it is made; adapters copy it into
/// their framework's response (with [`into_response`](Self::into_response) on `http` 1).
///
/// ```
/// use agentsync_webhooks_core::{WebhookError, adapter::Rejection};
///
/// let rejection = Rejection::new(WebhookError::InFlight { retry_after_secs: 5 }, Some("msg_1"));
/// assert_eq!((rejection.status(), rejection.retry_after()), (409, Some(5)));
/// assert_eq!(rejection.content_type(), Some("application/json"));
/// assert!(String::from_utf8_lossy(rejection.body()).contains("\"in_flight\""));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Rejection {
    error: Option<WebhookError>,
    code: &'static str,
    status: u16,
    body: Bytes,
    retry_after: Option<u64>,
}

impl Rejection {
    /// Logs `error` (with the delivery's `webhook_id`, when known) and builds its answer: the
    /// design table's status, a small JSON body (none for a duplicate), `Retry-After` where the
    /// sender should come back.
    pub fn new(error: WebhookError, webhook_id: Option<&str>) -> Self {
        let code = error.code();
        let status = error.status();
        match status {
            200 => tracing::info!(code, webhook_id, "duplicate webhook delivery acknowledged"),
            500.. => {
                tracing::error!(code, webhook_id, status, error = %error, "webhook delivery refused")
            }
            _ => {
                tracing::warn!(code, webhook_id, status, error = %error, "webhook delivery refused")
            }
        }
        let body = if status == 200 {
            Bytes::new()
        } else {
            json_body(code, &error.to_string())
        };
        Self {
            retry_after: error.retry_after(),
            error: Some(error),
            code,
            status,
            body,
        }
    }

    /// [`new`](Self::new) with the id read from the request's headers: what the port calls, so
    /// that every framework logs the same id.
    pub fn for_request(error: WebhookError, headers: &(impl HeaderLookup + ?Sized)) -> Self {
        Self::new(error, id_for_log(headers))
    }

    /// A 500 for a service set up wrong (for example an extractor without its layer), naming the
    /// fix.
    pub fn misconfigured(message: &str) -> Self {
        tracing::error!(code = "misconfigured", "{message}");
        Self {
            error: None,
            code: "misconfigured",
            status: 500,
            body: json_body("misconfigured", message),
            retry_after: None,
        }
    }

    /// An inline router's answer: `200` with an empty body when a handler processed the event
    /// (or none was registered for it), the handler's failure otherwise: `500` with its code
    /// (or the status of a body its type could not parse), so that the sender retries. The
    /// handler's own error goes to the logs, never to the sender.
    pub fn routed(
        result: Result<crate::route::Routed, crate::route::HandlerError>,
        webhook_id: &str,
    ) -> Self {
        match result {
            Ok(routed) => {
                tracing::info!(webhook_id, %routed, "webhook processed");
                Self {
                    error: None,
                    code: "processed",
                    status: 200,
                    body: Bytes::new(),
                    retry_after: None,
                }
            }
            Err(failed) => {
                if let Some(error) = failed.webhook_error() {
                    return Self::new(error.clone(), Some(webhook_id));
                }
                let code = failed.code();
                let permanent = failed.is_permanent();
                tracing::error!(webhook_id, code, permanent, error = %failed, "webhook handler failed");
                // Every non-2xx is retried by the sender, a permanent failure too: inline there
                // is no dead-letter place, so the retries are its only second chance.
                let message = if permanent {
                    "the handler refused this event; retrying will not help until the handler or its data is fixed"
                } else {
                    "the handler could not process this event now; it is processed again when the sender retries"
                };
                Self {
                    error: None,
                    code,
                    status: 500,
                    body: json_body(code, message),
                    retry_after: failed
                        .retry_after()
                        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
                }
            }
        }
    }

    /// Why the delivery was refused; `None` for a misconfigured service and a router's answer.
    pub fn error(&self) -> Option<&WebhookError> {
        self.error.as_ref()
    }

    /// The stable code: [`WebhookError::code`], `misconfigured`, or an inline router's
    /// `processed` or [`HandlerError::code`](crate::HandlerError::code).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The JSON body, empty for an acknowledged duplicate.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The `Content-Type` of [`body`](Self::body), if it has one.
    pub fn content_type(&self) -> Option<&'static str> {
        (!self.body.is_empty()).then_some("application/json")
    }

    /// Seconds for a `Retry-After` header, if any.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// Whether the answer should close the connection: a body cut off by the deadline has unread
    /// bytes on the wire, so the connection cannot be reused and its buffers are freed.
    pub fn closes_connection(&self) -> bool {
        matches!(self.error, Some(WebhookError::BodyReadTimeout { .. }))
    }

    /// The answer as an `http` 1 response: status, body, `Content-Type`, `Retry-After` and
    /// `Connection: close` as they apply. The one conversion every `http` 1 adapter uses.
    ///
    /// ```
    /// use agentsync_webhooks_core::{WebhookError, adapter::Rejection};
    ///
    /// let response: http::Response<bytes::Bytes> =
    ///     Rejection::new(WebhookError::InvalidTimestamp, None).into_response();
    /// assert_eq!(response.status(), 400);
    /// assert_eq!(response.headers()["content-type"], "application/json");
    /// ```
    #[cfg(feature = "http")]
    pub fn into_response<B: From<Bytes>>(self) -> http::Response<B> {
        use http::{HeaderValue, StatusCode, header};
        let mut response = http::Response::new(B::from(self.body.clone()));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        if let Some(content_type) = self.content_type() {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.closes_connection() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

fn json_body(code: &str, message: &str) -> Bytes {
    let body = ErrorBody {
        error: code,
        message: message.into(),
    };
    serde_json::to_vec(&body).unwrap_or_default().into()
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("status", &self.status)
            .field("code", &self.code())
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(error) => error.fmt(f),
            None => f.write_str(&String::from_utf8_lossy(&self.body)),
        }
    }
}

impl std::error::Error for Rejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.as_ref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_small_json_with_code() {
        let r = Rejection::new(
            WebhookError::SignatureMismatch {
                entries: 2,
                candidates: 1,
            },
            Some("msg_1"),
        );
        assert_eq!((r.status(), r.code()), (401, "signature_mismatch"));
        let body: ErrorBody<'_> = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body.error, "signature_mismatch");
        assert!(body.message.contains("signing secret"));
        assert!(!r.closes_connection());
    }

    #[test]
    fn duplicate_is_an_empty_200() {
        let r = Rejection::new(WebhookError::Duplicate, None);
        assert_eq!(
            (r.status(), r.body().len(), r.content_type()),
            (200, 0, None)
        );
    }

    #[test]
    fn retry_after_only_where_the_sender_should_come_back() {
        let r = Rejection::new(
            WebhookError::StoreUnavailable {
                detail: "down".into(),
                retry_after_secs: 30,
            },
            None,
        );
        assert_eq!((r.status(), r.retry_after()), (503, Some(30)));
        assert_eq!(
            Rejection::new(WebhookError::InvalidTimestamp, None).retry_after(),
            None
        );
    }

    #[test]
    fn misconfigured_is_a_500_naming_the_fix() {
        let r = Rejection::misconfigured("add the layer");
        assert_eq!(
            (r.status(), r.code(), r.error()),
            (500, "misconfigured", None)
        );
        let body: ErrorBody<'_> = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body.message, "add the layer");
        assert_eq!(r.to_string(), String::from_utf8_lossy(r.body()));
    }

    #[cfg(feature = "http")]
    #[test]
    fn http_response_copies_every_header() {
        let timeout = Rejection::new(WebhookError::BodyReadTimeout { timeout_ms: 10_000 }, None);
        assert!(timeout.closes_connection());
        let response: http::Response<Bytes> = timeout.into_response();
        assert_eq!(response.status(), 408);
        assert_eq!(response.headers()["connection"], "close");
        let unavailable: http::Response<Bytes> = Rejection::new(
            WebhookError::StoreUnavailable {
                detail: "down".into(),
                retry_after_secs: 30,
            },
            None,
        )
        .into_response();
        assert_eq!(unavailable.headers()["retry-after"], "30");
        let duplicate: http::Response<Bytes> =
            Rejection::new(WebhookError::Duplicate, None).into_response();
        assert!(duplicate.headers().get("content-type").is_none());
        assert!(duplicate.body().is_empty());
    }
}
