//! The published Standard Webhooks test vectors, and the negative cases around them.

use agentsync_webhooks_core::{
    FixedClock, Secret, SecretError, Signer, Verifier, WebhookError, headers::MAX_SIGNATURE_ENTRIES,
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS: i64 = 1_614_265_330;
const BODY: &[u8] = br#"{"test": 2432232314}"#;
const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

struct Vector {
    secret: &'static str,
    id: &'static str,
    timestamp: i64,
    body: Vec<u8>,
    signature: &'static str,
}

fn vectors() -> Vec<Vector> {
    vec![
        Vector {
            secret: SECRET,
            id: ID,
            timestamp: TS,
            body: BODY.to_vec(),
            signature: SIG,
        },
        Vector {
            secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            timestamp: 1_649_367_553,
            body: br#"{"email":"test@example.com","username":"test_user"}"#.to_vec(),
            signature: "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        },
        Vector {
            secret: "whsec_plJ3nmyCDGBKInavdOK15jsl",
            id: "msg_loFOjxBNrRLzqYUf",
            timestamp: 1_731_705_121,
            body: br#"{"event_type":"ping","data":{"success":true}}"#.to_vec(),
            signature: "v1,rAvfW3dJ/X/qxhsaXPOyyCGmRKsaKWcsNccKXlIktD0=",
        },
        Vector {
            secret: SECRET,
            id: ID,
            timestamp: TS,
            body: vec![b'a'; 1_048_576],
            signature: "v1,txpEUxqWZJ5nteTnymUVa+7C4NHpBeXJ6CsBAW0c3/A=",
        },
    ]
}

fn verifier_at(secret: &str, now: i64) -> Verifier {
    Verifier::builder()
        .secret(secret)
        .unwrap()
        .clock(FixedClock::new(now))
        .build()
        .unwrap()
}

fn headers(id: &str, ts: &str, sig: &str) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_owned()),
        ("webhook-signature", sig.to_owned()),
    ]
}

#[test]
fn published_v1_vectors_sign_and_verify_exactly() {
    for v in vectors() {
        let signed = Signer::new(v.secret)
            .unwrap()
            .sign(v.id, v.timestamp, &v.body);
        assert_eq!(signed.signature, v.signature, "signing {}", v.id);
        let headers = headers(v.id, &v.timestamp.to_string(), v.signature);
        let verified = verifier_at(v.secret, v.timestamp)
            .verify(&headers, &v.body)
            .unwrap();
        assert_eq!((verified.id, verified.timestamp), (v.id, v.timestamp));
    }
}

#[cfg(feature = "v1a")]
#[test]
fn published_v1a_vector_signs_and_verifies_exactly() {
    use agentsync_webhooks_core::v1a::SigningKey;
    const V1A: &str = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
    let key: SigningKey = "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==".parse().unwrap();
    assert_eq!(
        Signer::default()
            .with_signing_key(key)
            .sign(ID, TS, BODY)
            .signature,
        V1A
    );

    let trusted = Verifier::builder()
        .public_key("whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=")
        .unwrap()
        .clock(FixedClock::new(TS))
        .build()
        .unwrap();
    assert!(
        trusted
            .verify(&headers(ID, "1614265330", V1A), BODY)
            .is_ok()
    );
    // Among decoys, and next to a v1 signature the verifier has no secret for.
    let mixed = format!("v1a,AAAA {SIG} v2,xyz {V1A}");
    assert!(
        trusted
            .verify(&headers(ID, "1614265330", &mixed), BODY)
            .is_ok()
    );
    assert!(
        trusted
            .verify(&headers(ID, "1614265330", V1A), b"{}")
            .is_err()
    );

    let untrusted = Verifier::builder()
        .public_key(&SigningKey::generate().unwrap().public_key().to_string())
        .unwrap()
        .clock(FixedClock::new(TS))
        .build()
        .unwrap();
    assert!(matches!(
        untrusted.verify(&headers(ID, "1614265330", V1A), BODY),
        Err(WebhookError::SignatureMismatch {
            entries: 1,
            candidates: 1
        })
    ));
    // A v1a signature is never checked against a whsec_ secret.
    assert!(
        verifier_at(SECRET, TS)
            .verify(&headers(ID, "1614265330", V1A), BODY)
            .is_err()
    );
}

#[test]
fn valid_signature_anywhere_among_decoys() {
    let v = verifier_at(SECRET, TS);
    let decoys = [
        "v1,",
        "v1,Zm9v",
        "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "garbage",
        "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O",
    ];
    for position in 0..=decoys.len() {
        let mut entries: Vec<&str> = decoys.to_vec();
        entries.insert(position, SIG);
        let header = entries.join(" ");
        assert!(
            v.verify(&headers(ID, "1614265330", &header), BODY).is_ok(),
            "{header}"
        );
    }
    // Past the examined maximum, a valid signature is not looked at.
    let late = format!("{} {SIG}", ["v1,Zm9v"; MAX_SIGNATURE_ENTRIES].join(" "));
    assert!(matches!(
        v.verify(&headers(ID, "1614265330", &late), BODY),
        Err(WebhookError::SignatureMismatch { .. })
    ));
}

#[test]
fn empty_truncated_and_garbage_signatures_are_refused() {
    let v = verifier_at(SECRET, TS);
    for sig in [
        "v1,",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O",
        "v1,g0hM9SsE",
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v1 g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ",,,, v1,,",
    ] {
        let err = v.verify(&headers(ID, "1614265330", sig), BODY).unwrap_err();
        assert_eq!(err.code(), "signature_mismatch", "{sig}");
        assert_eq!(err.status(), 401);
    }
    let err = v
        .verify(&headers(ID, "1614265330", "   "), BODY)
        .unwrap_err();
    assert_eq!((err.code(), err.status()), ("invalid_header", 400));
}

#[test]
fn wrong_secret_and_rotation() {
    let other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let err = verifier_at(other, TS)
        .verify(&headers(ID, "1614265330", SIG), BODY)
        .unwrap_err();
    assert!(err.to_string().contains("signing secret"), "{err}");
    let rotated = Verifier::builder()
        .secret(other)
        .unwrap()
        .secret(SECRET)
        .unwrap()
        .clock(FixedClock::new(TS))
        .build()
        .unwrap();
    assert!(
        rotated
            .verify(&headers(ID, "1614265330", SIG), BODY)
            .is_ok()
    );
    assert!(Verifier::with_secrets([other, SECRET]).is_ok());
}

#[test]
fn replay_window_edges() {
    for (now, ok) in [
        (TS + 300, true),
        (TS - 300, true),
        (TS + 301, false),
        (TS - 301, false),
    ] {
        let headers = headers(ID, "1614265330", SIG);
        let result = verifier_at(SECRET, now).verify(&headers, BODY);
        assert_eq!(result.is_ok(), ok, "now = ts {:+}", now - TS);
        if let Err(e) = result {
            assert_eq!(e.status(), 401);
        }
    }
    let custom = Verifier::builder()
        .secret(SECRET)
        .unwrap()
        .tolerance(std::time::Duration::from_secs(10))
        .clock(FixedClock::new(TS + 11))
        .build()
        .unwrap();
    assert_eq!(
        custom
            .verify(&headers(ID, "1614265330", SIG), BODY)
            .unwrap_err(),
        WebhookError::TimestampTooOld {
            age_secs: 11,
            tolerance_secs: 10
        }
    );
}

#[test]
fn signed_timestamp_must_be_the_header_timestamp() {
    // The signature is over 1614265330; a header that says otherwise (even in the window) fails.
    let v = verifier_at(SECRET, TS);
    for ts in ["1614265331", "1614265329"] {
        assert_eq!(
            v.verify(&headers(ID, ts, SIG), BODY).unwrap_err().code(),
            "signature_mismatch"
        );
    }
    // Leading zeros are a different signed string too.
    assert_eq!(
        v.verify(&headers(ID, "01614265330", SIG), BODY)
            .unwrap_err()
            .code(),
        "signature_mismatch"
    );
}

#[test]
fn malformed_timestamps_never_reach_hmac_and_never_panic() {
    let v = verifier_at(SECRET, TS);
    for ts in ["+5", " 5", "5.0", "", "1614265330.0", "1e9", "abc", "--1"] {
        let err = v.verify(&headers(ID, ts, SIG), BODY).unwrap_err();
        assert_eq!(
            (err.code(), err.status()),
            ("invalid_timestamp", 400),
            "{ts:?}"
        );
    }
    for ts in [
        "-1",
        "-9223372036854775808",
        "18446744073709551615",
        "99999999999999999999",
        "0",
    ] {
        let err = v.verify(&headers(ID, ts, SIG), BODY).unwrap_err();
        assert_eq!(err.status(), 401, "{ts:?}: {err}");
    }
    let far = Verifier::builder()
        .secret(SECRET)
        .unwrap()
        .tolerance(std::time::Duration::MAX)
        .clock(FixedClock::new(i64::MIN))
        .build()
        .unwrap();
    assert!(
        far.verify(&headers(ID, "9223372036854775807", SIG), BODY)
            .is_err()
    );
}

#[test]
fn missing_and_malformed_headers() {
    let v = verifier_at(SECRET, TS);
    let all = headers(ID, "1614265330", SIG);
    for (i, name) in ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .iter()
        .enumerate()
    {
        let mut partial = all.clone();
        partial.remove(i);
        assert_eq!(
            v.verify(&partial, BODY).unwrap_err(),
            WebhookError::MissingHeader(name)
        );
    }
    for id in ["", "msg 1", "msg\u{7f}", "msg_é"] {
        let err = v.verify(&headers(id, "1614265330", SIG), BODY).unwrap_err();
        assert_eq!(
            (err.code(), err.status()),
            ("invalid_header", 400),
            "{id:?}"
        );
    }
    let long_id = "m".repeat(257);
    assert_eq!(
        v.verify(&headers(&long_id, "1614265330", SIG), BODY)
            .unwrap_err()
            .status(),
        400
    );
    let long_sig = format!("{SIG} {}", "x".repeat(9000));
    assert_eq!(
        v.verify(&headers(ID, "1614265330", &long_sig), BODY)
            .unwrap_err()
            .status(),
        400
    );
    let long_ts = "1".repeat(40);
    assert_eq!(
        v.verify(&headers(ID, &long_ts, SIG), BODY)
            .unwrap_err()
            .status(),
        400
    );
}

#[test]
fn svix_headers_are_a_per_header_fallback() {
    let v = verifier_at(SECRET, TS);
    let svix = [
        ("svix-id", ID),
        ("svix-timestamp", "1614265330"),
        ("svix-signature", SIG),
    ];
    assert!(v.verify(&svix, BODY).is_ok());
    let mixed = [
        ("webhook-id", ID),
        ("svix-timestamp", "1614265330"),
        ("svix-signature", SIG),
    ];
    assert!(v.verify(&mixed, BODY).is_ok());
}

#[test]
fn any_changed_byte_fails() {
    let v = verifier_at(SECRET, TS);
    for i in 0..BODY.len() {
        let mut body = BODY.to_vec();
        body[i] ^= 0x01;
        assert!(v.verify(&headers(ID, "1614265330", SIG), &body).is_err());
    }
    assert!(
        v.verify(
            &headers("msg_p5jXN8AQM9LWM0D4loKWxJel", "1614265330", SIG),
            BODY
        )
        .is_err()
    );
}

#[test]
fn non_utf8_bodies_verify_and_fail_only_at_parsing() {
    let body = [0xff, 0xfe, b'{', 0x80];
    let signed = Signer::new(SECRET).unwrap().sign(ID, TS, &body);
    let v = verifier_at(SECRET, TS);
    assert!(v.verify(&signed.to_pairs(), &body).is_ok());
    let err = v
        .verify_delivery::<agentsync_webhooks_core::EventData>(
            &signed.to_pairs(),
            body.to_vec().into(),
        )
        .unwrap_err();
    assert_eq!((err.code(), err.status()), ("invalid_payload", 400));
}

#[test]
fn every_kind_of_malformed_secret() {
    for (input, expected) in [
        ("", SecretError::Empty),
        ("whsec_", SecretError::Empty),
        ("whsec_%%%", SecretError::NotBase64),
        (
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            SecretError::LooksLikeSignature,
        ),
        (
            "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=",
            SecretError::AsymmetricKey,
        ),
    ] {
        assert_eq!(Verifier::new(input).unwrap_err(), expected, "{input:?}");
        assert_eq!(Signer::new(input).unwrap_err(), expected, "{input:?}");
    }
    assert_eq!(Verifier::builder().build().unwrap_err(), SecretError::Empty);
    assert!(Secret::parse(" whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ").is_ok());
    let shown = format!("{:?}", Verifier::new(SECRET).unwrap());
    assert!(!shown.contains("MfKQ"), "{shown}");
}
