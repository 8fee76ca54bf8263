//! Reading webhook headers without tying the core to one `http` crate version.

pub use crate::verify::{MAX_ID_LEN, MAX_SIGNATURE_ENTRIES, MAX_SIGNATURE_HEADER_LEN};

/// `webhook-id`: the message id, repeated on every retry of the same event.
pub const WEBHOOK_ID: &str = "webhook-id";
/// `webhook-timestamp`: integer seconds since the Unix epoch, when this attempt was signed.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// `webhook-signature`: space-separated `version,base64` signatures.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// The `svix-*` twin of [`WEBHOOK_ID`], sent by Svix-branded senders.
pub const SVIX_ID: &str = "svix-id";
/// The `svix-*` twin of [`WEBHOOK_TIMESTAMP`].
pub const SVIX_TIMESTAMP: &str = "svix-timestamp";
/// The `svix-*` twin of [`WEBHOOK_SIGNATURE`].
pub const SVIX_SIGNATURE: &str = "svix-signature";

/// Read access to a request's headers, by lower-case name.
///
/// Implemented for `http::HeaderMap` (feature `http`), for slices and arrays of name/value
/// pairs, and easy to implement for any framework's header type, so that actix (on `http` 0.2)
/// and everything on `http` 1 share one verifier.
///
/// ```
/// use agentsync_webhooks_core::HeaderLookup;
///
/// let headers = [("Webhook-Id", "msg_1")];
/// assert_eq!(headers.header("webhook-id"), Some(&b"msg_1"[..]));
/// ```
pub trait HeaderLookup {
    /// The first value of the header `name` (given in lower case), as raw bytes.
    fn header(&self, name: &str) -> Option<&[u8]>;
}

impl<T: HeaderLookup + ?Sized> HeaderLookup for &T {
    fn header(&self, name: &str) -> Option<&[u8]> {
        (**self).header(name)
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for [(N, V)] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        // The exact name first (what most senders and every HTTP/2 one send): a compare of the
        // length and the bytes, where the case-blind compare folds byte by byte.
        self.iter()
            .find(|(n, _)| n.as_ref() == name || n.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>, const L: usize> HeaderLookup for [(N, V); L] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.as_slice().header(name)
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> HeaderLookup for Vec<(N, V)> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.as_slice().header(name)
    }
}

#[cfg(feature = "http")]
impl HeaderLookup for http::HeaderMap {
    fn header(&self, name: &str) -> Option<&[u8]> {
        use http::header::{CONTENT_LENGTH, HeaderName};
        // The names the core asks for are looked up by ready-made `HeaderName`s: a `&str` key
        // would be validated and lower-cased again on every request.
        static NAMES: [HeaderName; 6] = [
            HeaderName::from_static(WEBHOOK_ID),
            HeaderName::from_static(WEBHOOK_TIMESTAMP),
            HeaderName::from_static(WEBHOOK_SIGNATURE),
            HeaderName::from_static(SVIX_ID),
            HeaderName::from_static(SVIX_TIMESTAMP),
            HeaderName::from_static(SVIX_SIGNATURE),
        ];
        let value = match name {
            WEBHOOK_ID => self.get(&NAMES[0]),
            WEBHOOK_TIMESTAMP => self.get(&NAMES[1]),
            WEBHOOK_SIGNATURE => self.get(&NAMES[2]),
            SVIX_ID => self.get(&NAMES[3]),
            SVIX_TIMESTAMP => self.get(&NAMES[4]),
            SVIX_SIGNATURE => self.get(&NAMES[5]),
            "content-length" => self.get(CONTENT_LENGTH),
            other => self.get(other),
        };
        value.map(http::HeaderValue::as_bytes)
    }
}

/// The declared `Content-Length`, when there is a readable one (a missing or unreadable one
/// leaves the streamed limit in charge).
pub fn content_length(headers: &(impl HeaderLookup + ?Sized)) -> Option<u64> {
    // Digits read straight from the bytes: `from_utf8`, `trim` and `str::parse` cost several
    // times as much, on every request of a framework that gives no exact size.
    let digits = headers.header("content-length")?.trim_ascii();
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0_u64, |length, &byte| {
        let digit = byte.checked_sub(b'0').filter(|digit| *digit <= 9)?;
        length.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// The `webhook-id` (or `svix-id`) of a request, for log lines, when it is printable and not
/// oversized. Verification proper is [`Verifier::verify`](crate::Verifier::verify)'s job.
pub fn id_for_log(headers: &(impl HeaderLookup + ?Sized)) -> Option<&str> {
    headers
        .header(WEBHOOK_ID)
        .or_else(|| headers.header(SVIX_ID))
        .filter(|id| {
            !id.is_empty() && id.len() <= MAX_ID_LEN && id.iter().all(u8::is_ascii_graphic)
        })
        .and_then(|id| std::str::from_utf8(id).ok())
}

/// The `webhook-*` header, or its `svix-*` twin when the first is absent.
pub(crate) fn webhook_or_svix<'h>(
    headers: &'h (impl HeaderLookup + ?Sized),
    webhook: &'static str,
    svix: &'static str,
) -> Result<&'h [u8], crate::WebhookError> {
    // Not `ok_or`: an error made and dropped on success costs a drop-glue call per header.
    match headers.header(webhook).or_else(|| headers.header(svix)) {
        Some(value) => Ok(value),
        None => Err(crate::WebhookError::MissingHeader(webhook)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_case_insensitive_and_first_wins() {
        let headers = vec![
            ("WEBHOOK-ID".to_string(), "a"),
            ("webhook-id".to_string(), "b"),
        ];
        assert_eq!(headers.header("webhook-id"), Some(&b"a"[..]));
        assert_eq!(headers.header("webhook-timestamp"), None);
    }

    #[test]
    fn falls_back_to_svix_per_header() {
        let headers = [("svix-id", "s"), ("webhook-timestamp", "1")];
        assert_eq!(
            webhook_or_svix(&headers, WEBHOOK_ID, SVIX_ID).unwrap(),
            b"s"
        );
        let both = [("svix-id", "s"), ("webhook-id", "w")];
        assert_eq!(webhook_or_svix(&both, WEBHOOK_ID, SVIX_ID).unwrap(), b"w");
        assert_eq!(
            webhook_or_svix(&both, WEBHOOK_SIGNATURE, SVIX_SIGNATURE).unwrap_err(),
            crate::WebhookError::MissingHeader("webhook-signature")
        );
    }

    #[test]
    fn content_length_when_readable() {
        assert_eq!(content_length(&[("Content-Length", " 42 ")]), Some(42));
        assert_eq!(content_length(&[("content-length", "4x")]), None);
        assert_eq!(content_length(&[("content-length", "-1")]), None);
        assert_eq!(content_length(&[("x", "1")]), None);
        assert_eq!(content_length(&[("content-length", "+1")]), None);
        assert_eq!(content_length(&[("content-length", " ")]), None);
        assert_eq!(content_length(&[("content-length", "0")]), Some(0));
        assert_eq!(
            content_length(&[("content-length", "18446744073709551615")]),
            Some(u64::MAX)
        );
        assert_eq!(
            content_length(&[("content-length", "18446744073709551616")]),
            None
        );
    }

    #[test]
    fn ids_for_logs_only_when_usable() {
        assert_eq!(id_for_log(&[("svix-id", "msg_s")]), Some("msg_s"));
        assert_eq!(
            id_for_log(&[("svix-id", "msg_s"), ("webhook-id", "msg_w")]),
            Some("msg_w")
        );
        assert_eq!(id_for_log(&[("webhook-id", "a b")]), None);
        assert_eq!(id_for_log(&[("webhook-id", "a".repeat(257))]), None);
        assert_eq!(id_for_log(&[("webhook-id", "")]), None);
    }

    #[cfg(feature = "http")]
    #[test]
    fn http_header_map() {
        let mut map = http::HeaderMap::new();
        map.insert("Webhook-Id", http::HeaderValue::from_static("msg_1"));
        map.insert("SVIX-Signature", http::HeaderValue::from_static("v1,x"));
        map.insert("Content-Length", http::HeaderValue::from_static("7"));
        map.insert("X-Other", http::HeaderValue::from_static("o"));
        assert_eq!(map.header("webhook-id"), Some(&b"msg_1"[..]));
        assert_eq!(map.header(SVIX_SIGNATURE), Some(&b"v1,x"[..]));
        assert_eq!(map.header("Webhook-Id"), Some(&b"msg_1"[..]));
        assert_eq!(content_length(&map), Some(7));
        assert_eq!(map.header("x-other"), Some(&b"o"[..]));
        assert_eq!(map.header(WEBHOOK_TIMESTAMP), None);
    }
}
