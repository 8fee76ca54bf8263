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

    /// The three headers verification reads, each `webhook-*` or else its `svix-*` twin.
    ///
    /// The default asks [`header`](Self::header) for each name in turn; a header type that
    /// can find all of them in one walk (as `http::HeaderMap` does, where each lookup hashes
    /// the name and probes) overrides it. An override must give what the default gives.
    ///
    /// ```
    /// use agentsync_webhooks_core::HeaderLookup;
    ///
    /// let headers = [("svix-id", "msg_1"), ("webhook-timestamp", "1614265330")];
    /// let found = headers.webhook_headers();
    /// assert_eq!(found.id, Some(&b"msg_1"[..]));
    /// assert_eq!(found.signature, None);
    /// ```
    fn webhook_headers(&self) -> WebhookHeaders<'_> {
        WebhookHeaders {
            id: self.header(WEBHOOK_ID).or_else(|| self.header(SVIX_ID)),
            timestamp: self
                .header(WEBHOOK_TIMESTAMP)
                .or_else(|| self.header(SVIX_TIMESTAMP)),
            signature: self
                .header(WEBHOOK_SIGNATURE)
                .or_else(|| self.header(SVIX_SIGNATURE)),
        }
    }
}

/// What [`HeaderLookup::webhook_headers`] found: each raw value, or `None` when neither the
/// `webhook-*` header nor its `svix-*` twin is there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookHeaders<'h> {
    /// `webhook-id`, or `svix-id`.
    pub id: Option<&'h [u8]>,
    /// `webhook-timestamp`, or `svix-timestamp`.
    pub timestamp: Option<&'h [u8]>,
    /// `webhook-signature`, or `svix-signature`.
    pub signature: Option<&'h [u8]>,
}

impl<'h> WebhookHeaders<'h> {
    /// The headers of a walk that saw each of the six names at most once, first value first:
    /// `[webhook-id, webhook-timestamp, webhook-signature, svix-id, svix-timestamp,
    /// svix-signature]`, for the overrides of [`HeaderLookup::webhook_headers`].
    pub fn from_found(found: [Option<&'h [u8]>; 6]) -> Self {
        let [
            id,
            timestamp,
            signature,
            svix_id,
            svix_timestamp,
            svix_signature,
        ] = found;
        Self {
            id: id.or(svix_id),
            timestamp: timestamp.or(svix_timestamp),
            signature: signature.or(svix_signature),
        }
    }
}

/// Where a header name goes in [`WebhookHeaders::from_found`]'s array, if it is one of the six:
/// the name's bytes matched in place (no hashing), for header types walked in one pass. The
/// name must be in lower case, as `http`'s header names are.
pub fn webhook_header_slot(name: &[u8]) -> Option<usize> {
    match name {
        [b'w', b'e', b'b', b'h', b'o', b'o', b'k', b'-', rest @ ..] => match rest {
            b"id" => Some(0),
            b"timestamp" => Some(1),
            b"signature" => Some(2),
            _ => None,
        },
        [b's', b'v', b'i', b'x', b'-', rest @ ..] => match rest {
            b"id" => Some(3),
            b"timestamp" => Some(4),
            b"signature" => Some(5),
            _ => None,
        },
        _ => None,
    }
}

impl<T: HeaderLookup + ?Sized> HeaderLookup for &T {
    fn header(&self, name: &str) -> Option<&[u8]> {
        (**self).header(name)
    }

    fn webhook_headers(&self) -> WebhookHeaders<'_> {
        (**self).webhook_headers()
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

    /// One walk over the map, each name matched in place: three `get`s hash and probe three
    /// times (about 170 instructions each), where the walk costs a few per header. A request
    /// has at most as many headers as the server admits (hyper: 100).
    fn webhook_headers(&self) -> WebhookHeaders<'_> {
        let mut found = [None; 6];
        for (name, value) in self {
            if let Some(slot) = webhook_header_slot(name.as_str().as_bytes()) {
                // The first value of a name comes first in the walk.
                found[slot].get_or_insert(value.as_bytes());
            }
        }
        WebhookHeaders::from_found(found)
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

    #[test]
    fn webhook_header_slots() {
        let names = [
            WEBHOOK_ID,
            WEBHOOK_TIMESTAMP,
            WEBHOOK_SIGNATURE,
            SVIX_ID,
            SVIX_TIMESTAMP,
            SVIX_SIGNATURE,
        ];
        for (slot, name) in names.iter().enumerate() {
            assert_eq!(webhook_header_slot(name.as_bytes()), Some(slot));
        }
        for other in [
            "",
            "webhook-",
            "webhook-ids",
            "svix-",
            "svix-i",
            "webhook-Id",
            "user-agent",
            "w",
            "s",
        ] {
            assert_eq!(webhook_header_slot(other.as_bytes()), None, "{other}");
        }
    }

    /// The `HeaderMap` walk gives what three pairs of lookups give, whatever is there.
    #[cfg(feature = "http")]
    #[test]
    fn header_map_walk_finds_what_lookups_find() {
        struct ByLookup<'a>(&'a http::HeaderMap);
        impl HeaderLookup for ByLookup<'_> {
            fn header(&self, name: &str) -> Option<&[u8]> {
                self.0.header(name)
            }
        }
        let names = [
            WEBHOOK_ID,
            WEBHOOK_TIMESTAMP,
            WEBHOOK_SIGNATURE,
            SVIX_ID,
            SVIX_TIMESTAMP,
            SVIX_SIGNATURE,
        ];
        // Every subset of the six names, each with a second value, among other headers.
        for subset in 0..64u32 {
            let mut map = http::HeaderMap::new();
            map.insert("content-type", http::HeaderValue::from_static("a/b"));
            for (i, name) in names.iter().enumerate() {
                if subset & (1 << i) != 0 {
                    let name = http::HeaderName::from_static(name);
                    map.append(
                        &name,
                        http::HeaderValue::from_str(&format!("{i}a")).unwrap(),
                    );
                    map.append(
                        &name,
                        http::HeaderValue::from_str(&format!("{i}b")).unwrap(),
                    );
                }
            }
            map.insert("user-agent", http::HeaderValue::from_static("x"));
            assert_eq!(
                map.webhook_headers(),
                ByLookup(&map).webhook_headers(),
                "{subset:06b}"
            );
        }
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
