//! `Verifier::verify` on a fuzzed header block and body, with a fixed clock, three secrets (a
//! rotation) and a trusted `v1a` key.
//!
//! Checks: every refusal is a 400 or 401 with a well-formed error body, and `verify_delivery`
//! refuses the same way; a timestamp refusal names a timestamp that is really out of the window;
//! a verified delivery's id is the `webhook-id` (or `svix-id`) header, byte for byte, and its
//! timestamp is the header's, within the window; parsing its body gives that id and
//! timestamp back or a 400.
#![no_main]

use std::sync::LazyLock;

use agentsync_webhooks_core::{
    DEFAULT_TOLERANCE, EventData, FixedClock, Verifier, WebhookError, headers,
};
use agentsync_webhooks_fuzz::{
    NOW, OTHER_SECRETS, PUBLIC_KEY, SECRET, check_error, header_block, reference_lookup,
};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    Verifier::builder()
        .secret(OTHER_SECRETS[0])
        .and_then(|b| b.secret(SECRET))
        .and_then(|b| b.secret(OTHER_SECRETS[1]))
        .and_then(|b| b.public_key(PUBLIC_KEY))
        .and_then(|b| b.clock(FixedClock::new(NOW)).build())
        .expect("the vector keys")
});

fuzz_target!(|data: &[u8]| {
    let (pairs, body) = header_block(data);
    let header = |webhook, svix| {
        reference_lookup(&pairs, webhook).or_else(|| reference_lookup(&pairs, svix))
    };
    let id = header(headers::WEBHOOK_ID, headers::SVIX_ID);
    let timestamp = header(headers::WEBHOOK_TIMESTAMP, headers::SVIX_TIMESTAMP)
        .and_then(|t| std::str::from_utf8(t).ok())
        .filter(|t| !t.starts_with('+'))
        .and_then(|t| t.parse::<i64>().ok());
    let tolerance = DEFAULT_TOLERANCE.as_secs() as i64;
    match VERIFIER.verify(&pairs, body) {
        Ok(verified) => {
            assert_eq!(Some(verified.id.as_bytes()), id);
            assert_eq!(Some(verified.timestamp), timestamp);
            assert!((verified.timestamp - NOW).abs() <= tolerance);
            match VERIFIER.verify_delivery::<EventData>(&pairs, Bytes::copy_from_slice(body)) {
                Ok(delivery) => {
                    assert_eq!(delivery.webhook_id, verified.id);
                    assert_eq!(delivery.webhook_timestamp, verified.timestamp);
                    assert_eq!(&delivery.raw_body[..], body);
                }
                Err(e) => {
                    assert_eq!(e.status(), 400, "{e:?}");
                    check_error(&e);
                }
            }
        }
        Err(e) => {
            check_error(&e);
            assert!(matches!(e.status(), 400 | 401), "{e:?}");
            match e {
                WebhookError::TimestampTooOld { .. } => {
                    assert!(timestamp.is_none_or(|t| t < NOW - tolerance));
                }
                WebhookError::TimestampTooNew { .. } => {
                    assert!(timestamp.is_none_or(|t| t > NOW + tolerance));
                }
                _ => {}
            }
            let again = VERIFIER.verify_delivery::<serde_json::Value>(&pairs, Bytes::new());
            if !matches!(e, WebhookError::SignatureMismatch { .. }) {
                assert_eq!(again.err(), Some(e));
            }
        }
    }
});
