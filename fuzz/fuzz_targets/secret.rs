//! Secrets (`whsec_...`) and `v1a` keys (`whpk_...`, `whsk_...`) parsed from arbitrary text.
//!
//! Checks: the design's rule for secrets, modelled with another base64 engine: after trimming,
//! a signature-looking or asymmetric value is refused with its own error, and otherwise the text
//! (`whsec_` optional) is accepted exactly when it is standard base64 of a non-empty key,
//! padding optional, non-zero trailing bits accepted, and the key is those bytes; an accepted
//! secret round-trips through `expose_whsec`, never shows in `Debug`, and signs what it
//! verifies. Keys round-trip through their text form, and a signing key's public key verifies
//! what it signs. Rotation lists never panic.
#![no_main]

use agentsync_webhooks_core::{
    FixedClock, SECRET_PREFIX, Secret, SecretError, Signer, Verifier,
    v1a::{PublicKey, SigningKey},
};
use agentsync_webhooks_fuzz::NOW;
use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD},
};
use libfuzzer_sys::fuzz_target;

/// The rule as the design states it (and the Python and Go reference libraries read secrets).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let trimmed = text.trim();
    let parsed = Secret::parse(&text);
    let expected = if trimmed.starts_with("v1,") || trimmed.starts_with("v1a,") {
        Err(SecretError::LooksLikeSignature)
    } else if trimmed.starts_with("whpk_") || trimmed.starts_with("whsk_") {
        Err(SecretError::AsymmetricKey)
    } else {
        match LENIENT.decode(trimmed.strip_prefix(SECRET_PREFIX).unwrap_or(trimmed)) {
            Ok(key) if key.is_empty() => Err(SecretError::Empty),
            Ok(key) => Ok(key),
            Err(_)
                if trimmed
                    .strip_prefix(SECRET_PREFIX)
                    .unwrap_or(trimmed)
                    .is_empty() =>
            {
                Err(SecretError::Empty)
            }
            Err(_) => Err(SecretError::NotBase64),
        }
    };
    match (&parsed, &expected) {
        (Ok(secret), Ok(key)) => {
            let whsec = secret.expose_whsec();
            assert_eq!(whsec, format!("{SECRET_PREFIX}{}", STANDARD.encode(key)));
            assert_eq!(
                Secret::parse(&whsec).map(|s| s.expose_whsec()),
                Ok(whsec.clone())
            );
            assert_eq!(format!("{secret:?}"), "Secret(..)");
            let signed = Signer::default()
                .with_secret(secret)
                .sign("msg_1", NOW, b"{}");
            let verifier = Verifier::builder()
                .parsed_secret(secret.clone())
                .clock(FixedClock::new(NOW))
                .build()
                .expect("a secret");
            assert!(verifier.verify(&signed.to_pairs(), b"{}").is_ok());
        }
        (Err(got), Err(want)) => assert_eq!(got, want, "{text:?}"),
        // Another rule (a minimum length, say) may refuse what base64 accepts, but never by
        // calling valid base64 invalid.
        (Err(got), Ok(_)) => assert_ne!(*got, SecretError::NotBase64, "{text:?}"),
        (Ok(_), Err(want)) => panic!("{text:?} accepted, expected {want:?}"),
    }

    if let Ok(key) = text.parse::<PublicKey>() {
        let shown = key.to_string();
        assert!(shown.starts_with("whpk_"));
        assert_eq!(shown.parse::<PublicKey>(), Ok(key));
        assert_eq!(format!("{key:?}"), format!("PublicKey({shown})"));
    }
    if let Ok(key) = text.parse::<SigningKey>() {
        let whsk = key.expose_whsk();
        let again = whsk.parse::<SigningKey>().expect("round trip");
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(format!("{key:?}"), "SigningKey(..)");
        let signed = Signer::default()
            .with_signing_key(key.clone())
            .sign("msg_1", NOW, b"{}");
        let verifier = Verifier::builder()
            .public_key(&key.public_key().to_string())
            .map(|b| b.clock(FixedClock::new(NOW)))
            .and_then(|b| b.build())
            .expect("a public key");
        assert!(verifier.verify(&signed.to_pairs(), b"{}").is_ok());
    }
    let _ = Verifier::with_secrets(text.split_whitespace());
});
