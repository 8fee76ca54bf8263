//! actix-web's `http` 0.2 headers, seen through the core's framework-free [`HeaderLookup`].

use actix_web::http::header::{CONTENT_LENGTH, HeaderMap};
use agentsync_webhooks_core::{
    HeaderLookup,
    headers::{WebhookHeaders, webhook_header_slot},
};

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
        // A `&str` key is parsed into a header name on every call; the one name the port asks
        // for outside verification has its constant.
        match name {
            "content-length" => self.0.get(CONTENT_LENGTH),
            other => self.0.get(other),
        }
        .map(|value| value.as_bytes())
    }

    /// One walk over the map, each name matched in place, where three pairs of `get`s would
    /// parse and hash six names.
    fn webhook_headers(&self) -> WebhookHeaders<'_> {
        let mut found = [None; 6];
        for (name, value) in self.0.iter() {
            if let Some(slot) = webhook_header_slot(name.as_str().as_bytes()) {
                // The first value of a name comes first in the walk.
                found[slot].get_or_insert(value.as_bytes());
            }
        }
        WebhookHeaders::from_found(found)
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

    /// The walk gives what lookups name by name give, whatever is there.
    #[test]
    fn webhook_headers_as_lookups_find_them() {
        struct ByLookup<'a>(ActixHeaders<'a>);
        impl HeaderLookup for ByLookup<'_> {
            fn header(&self, name: &str) -> Option<&[u8]> {
                self.0.header(name)
            }
        }
        let names = [
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "svix-id",
            "svix-timestamp",
            "svix-signature",
        ];
        for subset in 0..64u32 {
            let mut map = HeaderMap::new();
            map.insert(
                HeaderName::from_static("content-length"),
                HeaderValue::from_static("7"),
            );
            for (i, name) in names.iter().enumerate() {
                if subset & (1 << i) != 0 {
                    for suffix in ["a", "b"] {
                        map.append(
                            HeaderName::from_static(name),
                            HeaderValue::from_str(&format!("{i}{suffix}")).unwrap(),
                        );
                    }
                }
            }
            let headers = ActixHeaders(&map);
            assert_eq!(
                headers.webhook_headers(),
                ByLookup(headers).webhook_headers(),
                "{subset:06b}"
            );
            assert_eq!(headers.header("content-length"), Some(&b"7"[..]));
        }
    }
}
