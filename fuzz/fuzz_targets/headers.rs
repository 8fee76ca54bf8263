//! Header lookup and the `webhook-signature` list parser, on a fuzzed header block.
//!
//! Checks: the pair-slice and `http::HeaderMap` lookups both return the first value of a name
//! regardless of case; `content_length` and `id_for_log` agree with a plain reading of the
//! headers; and the signature list, read through `Verifier::verify` (timestamps always in the
//! window), counts its entries and usable signatures exactly as a from-scratch model of the
//! rules does (space-separated, first 16 non-empty entries, `version,base64`, canonical or no
//! padding, exact length), and verifies iff one examined `v1` entry is the right tag.
#![no_main]

use std::{sync::LazyLock, time::Duration};

use agentsync_webhooks_core::{
    HeaderLookup, Verifier, WebhookError,
    headers::{self, MAX_ID_LEN, MAX_SIGNATURE_ENTRIES},
};
use agentsync_webhooks_fuzz::{SECRET, check_error, header_block, reference_lookup};
use base64::{Engine as _, engine::general_purpose::STANDARD_NO_PAD};
use hmac::{KeyInit as _, Mac as _};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 7] = [
    headers::WEBHOOK_ID,
    headers::WEBHOOK_TIMESTAMP,
    headers::WEBHOOK_SIGNATURE,
    headers::SVIX_ID,
    headers::SVIX_TIMESTAMP,
    headers::SVIX_SIGNATURE,
    "content-length",
];

/// Any timestamp is in the window, so that every well-formed input reaches the signatures.
static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    Verifier::builder()
        .secret(SECRET)
        .and_then(|b| b.tolerance(Duration::from_secs(u64::MAX)).build())
        .expect("the vector secret")
});

fuzz_target!(|data: &[u8]| {
    let (pairs, body) = header_block(data);
    let map = header_map(&pairs);
    for name in NAMES {
        assert_eq!(pairs.header(name), reference_lookup(&pairs, name));
        let representable: Vec<_> = pairs
            .iter()
            .filter(|(n, v)| {
                http::HeaderName::from_bytes(n.as_bytes()).is_ok()
                    && http::HeaderValue::from_bytes(v).is_ok()
            })
            .cloned()
            .collect();
        assert_eq!(map.header(name), reference_lookup(&representable, name));
    }

    let declared = reference_lookup(&pairs, "content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert_eq!(headers::content_length(&pairs), declared);

    let id = reference_lookup(&pairs, headers::WEBHOOK_ID)
        .or_else(|| reference_lookup(&pairs, headers::SVIX_ID));
    if let Some(logged) = headers::id_for_log(&pairs) {
        assert_eq!(Some(logged.as_bytes()), id);
        assert!(logged.len() <= MAX_ID_LEN && logged.bytes().all(|b| b.is_ascii_graphic()));
    }

    let signature = reference_lookup(&pairs, headers::WEBHOOK_SIGNATURE)
        .or_else(|| reference_lookup(&pairs, headers::SVIX_SIGNATURE));
    let timestamp = reference_lookup(&pairs, headers::WEBHOOK_TIMESTAMP)
        .or_else(|| reference_lookup(&pairs, headers::SVIX_TIMESTAMP));
    match VERIFIER.verify(&pairs, body) {
        Ok(verified) => {
            assert_eq!(Some(verified.id.as_bytes()), id);
            let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
                panic!("verified without a signature or timestamp header")
            };
            let tag = expected_tag(verified.id.as_bytes(), timestamp, body);
            assert!(examined(signature).any(|e| decode(e, b"v1", 32).as_deref() == Some(&tag)));
        }
        Err(WebhookError::SignatureMismatch {
            entries,
            candidates,
        }) => {
            let (Some(signature), Some(timestamp), Some(id)) = (signature, timestamp, id) else {
                panic!("reached the signatures without the three headers")
            };
            let usable = examined(signature)
                .filter(|e| decode(e, b"v1", 32).is_some() || decode(e, b"v1a", 64).is_some())
                .count();
            assert_eq!((entries, candidates), (examined(signature).count(), usable));
            assert!(entries <= MAX_SIGNATURE_ENTRIES);
            let tag = expected_tag(id, timestamp, body);
            assert!(!examined(signature).any(|e| decode(e, b"v1", 32).as_deref() == Some(&tag)));
        }
        Err(e) => check_error(&e),
    }
});

fn header_map(pairs: &[(String, Vec<u8>)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            map.append(n, v);
        }
    }
    map
}

/// The entries the rules say are examined: the first 16 non-empty space-separated ones.
fn examined(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    header
        .split(|b| *b == b' ')
        .filter(|e| !e.is_empty())
        .take(MAX_SIGNATURE_ENTRIES)
}

/// The entry's bytes if it is `version,base64` of exactly `len` bytes, with at most the
/// canonical padding (padding is optional), decoded by another engine than the core's.
fn decode(entry: &[u8], version: &[u8], len: usize) -> Option<Vec<u8>> {
    let comma = entry.iter().position(|b| *b == b',')?;
    let (v, encoded) = (&entry[..comma], &entry[comma + 1..]);
    let unpadded = &encoded[..encoded
        .iter()
        .rposition(|b| *b != b'=')
        .map_or(0, |i| i + 1)];
    let padding = encoded.len() - unpadded.len();
    if padding > (4 - unpadded.len() % 4) % 4 {
        return None;
    }
    let bytes = STANDARD_NO_PAD.decode(unpadded).ok()?;
    (v == version && bytes.len() == len).then_some(bytes)
}

fn expected_tag(id: &[u8], timestamp: &[u8], body: &[u8]) -> Vec<u8> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(&SECRET[6..])
        .expect("the vector secret is base64");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
    for part in [id, b".", timestamp, b".", body] {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}
