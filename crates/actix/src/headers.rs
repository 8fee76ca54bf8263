//! actix-web's `http` 0.2 headers, seen through the core's framework-free [`HeaderLookup`].

use actix_web::http::header::HeaderMap;
use agentsync_webhooks_core::HeaderLookup;

/// actix-web's [`HeaderMap`] as a [`HeaderLookup`], so the core verifier reads it directly (no
/// copy, no `http` 1 conversion).
///
/// ```
/// use actix_web::{http::header::{HeaderMap, HeaderName, HeaderValue}};
/// use agentsync_webhooks_actix::ActixHeaders;
/// use agentsync_webhooks_core::HeaderLookup;
///
/// let mut map = HeaderMap::new();
/// map.insert(HeaderName::from_static("webhook-id"), HeaderValue::from_static("msg_1"));
/// assert_eq!(ActixHeaders(&map).header("webhook-id"), Some(&b"msg_1"[..]));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ActixHeaders<'a>(pub &'a HeaderMap);

impl HeaderLookup for ActixHeaders<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(|value| value.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    #[test]
    fn reads_actix_headers_by_lower_case_name() {
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_static("svix-id"),
            HeaderValue::from_static("msg_s"),
        );
        map.insert(
            HeaderName::from_static("webhook-id"),
            HeaderValue::from_static("msg_w"),
        );
        assert_eq!(ActixHeaders(&map).header("svix-id"), Some(&b"msg_s"[..]));
        assert_eq!(ActixHeaders(&map).header("webhook-id"), Some(&b"msg_w"[..]));
        assert_eq!(ActixHeaders(&map).header("webhook-signature"), None);
    }
}
