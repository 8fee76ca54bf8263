//! Interoperability with other implementations: the `svix` and `standardwebhooks` crates sign
//! what we verify, verify what we sign, and agree byte for byte.

use agentsync_webhooks_core::{Clock as _, FixedClock, Secret, Signer, SystemClock, Verifier};
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

fn secret_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..64)
}

/// Ids as senders make them: visible ASCII.
fn message_id() -> impl Strategy<Value = String> {
    "[!-~]{1,64}"
}

/// The other crates sign only UTF-8 bodies.
fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\{\"type\":\"[a-z._]{1,40}\",\"data\":\\{\\}\\}"
    ]
}

fn header_map(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert("webhook-id", HeaderValue::from_str(id).unwrap());
    map.insert("webhook-timestamp", HeaderValue::from(timestamp));
    map.insert(
        "webhook-signature",
        HeaderValue::from_str(signature).unwrap(),
    );
    map
}

fn ours(key: &[u8], now: i64) -> (Signer, Verifier) {
    let secret = Secret::from_bytes(key).unwrap();
    let verifier = Verifier::builder()
        .parsed_secret(secret.clone())
        .clock(FixedClock::new(now))
        .build()
        .unwrap();
    (Signer::default().with_secret(&secret), verifier)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn svix_and_us_agree(key in secret_bytes(), id in message_id(), drift in -250i64..250, body in body()) {
        // The other crates check the timestamp against the real clock.
        let timestamp = SystemClock.now_unix_secs() + drift;
        let (signer, verifier) = ours(&key, timestamp);
        let svix = svix::webhooks::Webhook::from_bytes(key.clone()).unwrap();

        let theirs = svix.sign(&id, timestamp, body.as_bytes()).unwrap();
        let mine = signer.signature(&id, timestamp, body.as_bytes());
        prop_assert_eq!(&theirs, &mine);

        let headers = header_map(&id, timestamp, &theirs);
        prop_assert!(verifier.verify(&headers, body.as_bytes()).is_ok());
        prop_assert!(svix.verify(body.as_bytes(), &header_map(&id, timestamp, &mine)).is_ok());
    }

    #[test]
    fn standardwebhooks_and_us_agree(key in secret_bytes(), id in message_id(), drift in -250i64..250, body in body()) {
        let timestamp = SystemClock.now_unix_secs() + drift;
        let (signer, verifier) = ours(&key, timestamp);
        let sw = standardwebhooks::Webhook::from_bytes(key.clone()).unwrap();

        let theirs = sw.sign(&id, timestamp, body.as_bytes()).unwrap();
        let mine = signer.signature(&id, timestamp, body.as_bytes());
        prop_assert_eq!(&theirs, &mine);

        prop_assert!(verifier.verify(&header_map(&id, timestamp, &theirs), body.as_bytes()).is_ok());
        prop_assert!(sw.verify(body.as_bytes(), &header_map(&id, timestamp, &mine)).is_ok());
    }

    #[test]
    fn secrets_in_whsec_form_mean_the_same_key(
        // The text form refuses keys under Secret::MIN_LEN bytes.
        key in prop::collection::vec(any::<u8>(), Secret::MIN_LEN..64),
    ) {
        let text = Secret::from_bytes(&key).unwrap().expose_whsec();
        let id = "msg_1";
        let ours = Signer::new(&text).unwrap().signature(id, 1, b"{}");
        let theirs = svix::webhooks::Webhook::new(&text).unwrap().sign(id, 1, b"{}").unwrap();
        prop_assert_eq!(ours, theirs);
    }

    #[test]
    fn any_single_byte_change_fails(
        key in secret_bytes(),
        id in message_id(),
        body in prop::collection::vec(any::<u8>(), 1..512),
        which in 0usize..3,
        index in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let timestamp = 1_700_000_000;
        let (signer, verifier) = ours(&key, timestamp);
        let signature = signer.signature(&id, timestamp, &body);
        let (mut id, mut ts, mut body) = (id.into_bytes(), timestamp.to_string().into_bytes(), body);
        let target = match which { 0 => &mut id, 1 => &mut ts, _ => &mut body };
        let i = index.index(target.len());
        target[i] ^= flip;
        let headers = [
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", signature.into_bytes()),
        ];
        prop_assert!(verifier.verify(&headers, &body).is_err());
    }
}
