//! Signing secrets: parsing the forms people paste, and keeping the key out of logs and memory.

use std::{fmt, str::FromStr};

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use zeroize::Zeroizing;

/// Standard base64, padding optional on input, always written on output.
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How secrets are decoded: as [`BASE64`], and like the Python and Go reference libraries, the
/// unused low bits of the last character may be non-zero (`...LaS` reads as `...LaQ=`).
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The prefix of Standard Webhooks symmetric secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// A symmetric signing secret (`whsec_...`), as shown in the sender's portal.
///
/// The key bytes are zeroized on drop and never appear in `Debug` or `Display` output.
///
/// ```
/// use agentsync_webhooks_core::Secret;
///
/// let secret: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
/// assert_eq!(format!("{secret:?}"), "Secret(..)");
/// # Ok::<(), agentsync_webhooks_core::SecretError>(())
/// ```
#[derive(Clone)]
pub struct Secret {
    key: Zeroizing<Vec<u8>>,
}

impl Secret {
    /// The shortest key accepted, in decoded bytes: anything shorter is refused
    /// ([`SecretError::TooShort`]).
    pub const MIN_LEN: usize = 16;
    /// The shortest key Standard Webhooks recommends (secrets are 24 to 64 bytes); a key from
    /// [`MIN_LEN`](Self::MIN_LEN) up to this is accepted with a warning ([`Secret::is_short`]).
    pub const RECOMMENDED_LEN: usize = 24;

    /// Parses a secret: `whsec_` prefix optional, standard base64 with or without padding (the
    /// unused bits of the last character may be set, as the reference libraries allow),
    /// surrounding whitespace ignored. A key under [`Secret::MIN_LEN`] bytes is refused.
    ///
    /// ```
    /// use agentsync_webhooks_core::{Secret, SecretError};
    ///
    /// let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
    /// assert_eq!(secret.len(), 24);
    /// assert!(!secret.is_short());
    /// // A 5-byte key is refused, with a hint.
    /// assert!(matches!(Secret::parse("whsec_c2hvcnQ="), Err(SecretError::TooShort { len: 5 })));
    /// # Ok::<(), SecretError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        if text.starts_with("v1,") || text.starts_with("v1a,") {
            return Err(SecretError::LooksLikeSignature);
        }
        if text.starts_with("whpk_") || text.starts_with("whsk_") {
            return Err(SecretError::AsymmetricKey);
        }
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        if encoded.is_empty() {
            return Err(SecretError::Empty);
        }
        let key = Zeroizing::new(
            SECRET_BASE64
                .decode(encoded)
                .map_err(|_| SecretError::NotBase64)?,
        );
        if !key.is_empty() && key.len() < Self::MIN_LEN {
            return Err(SecretError::TooShort { len: key.len() });
        }
        Self::from_bytes(&key)
    }

    /// A secret made of raw key bytes, taken as they are (any non-empty length), for keys that
    /// did not come from a person: other libraries' test vectors, a key store. The length rules
    /// of [`Secret::parse`] are for the text forms people paste.
    pub fn from_bytes(key: &[u8]) -> Result<Self, SecretError> {
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self {
            key: Zeroizing::new(key.to_vec()),
        })
    }

    /// A fresh secret of 32 random bytes from the operating system.
    pub fn generate() -> Result<Self, SecretError> {
        let mut key = Zeroizing::new(vec![0u8; 32]);
        getrandom::fill(&mut key).map_err(|_| SecretError::NoRandomness)?;
        Ok(Self { key })
    }

    /// The secret in its `whsec_...` form, for configuring a sender. The name says what it does:
    /// the result is the secret itself.
    pub fn expose_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&*self.key))
    }

    /// The length of the key, in decoded bytes.
    #[allow(clippy::len_without_is_empty)] // a secret is never empty
    pub fn len(&self) -> usize {
        self.key.len()
    }

    /// Whether the key is shorter than the [`Secret::RECOMMENDED_LEN`] bytes of Standard Webhooks
    /// secrets: accepted, but worth a warning (the CLI prints one, [`Verifier::new`] logs one).
    ///
    /// [`Verifier::new`]: crate::Verifier::new
    pub fn is_short(&self) -> bool {
        self.key.len() < Self::RECOMMENDED_LEN
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }
}

impl FromStr for Secret {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a secret or key could not be used. Messages never repeat the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Nothing left after trimming and removing the prefix.
    #[error(
        "the secret is empty: copy the endpoint's signing secret (whsec_...) from the webhook portal"
    )]
    Empty,
    /// Not standard base64.
    #[error(
        "the secret is not valid base64 after the whsec_ prefix: copy it again from the portal, whole"
    )]
    NotBase64,
    /// The decoded key is shorter than [`Secret::MIN_LEN`] bytes: not a real endpoint secret.
    #[error(
        "the secret is only {len} bytes once decoded, under the 16-byte minimum (Standard Webhooks secrets are 24 to 64 bytes): copy the endpoint's signing secret (whsec_...) from the webhook portal, whole, or make one with 32 random bytes"
    )]
    TooShort {
        /// The decoded length.
        len: usize,
    },
    /// Something that looks like a signature (`v1,...`) was given as the secret.
    #[error(
        "this looks like a signature (v1,...), not a secret: use the endpoint's signing secret (whsec_...)"
    )]
    LooksLikeSignature,
    /// A `whpk_`/`whsk_` key was given where a `whsec_` secret belongs.
    #[error("this is an asymmetric (v1a) key, not a whsec_ secret: configure it as a public key")]
    AsymmetricKey,
    /// A `v1a` key that is not `whpk_`/`whsk_` followed by base64 of the right length.
    #[error(
        "not a valid v1a key: expected whpk_ followed by 32 base64-encoded bytes (public) or whsk_ followed by 64 (secret)"
    )]
    InvalidKey,
    /// The operating system gave no random bytes.
    #[error("the operating system's random number generator failed")]
    NoRandomness,
}

impl SecretError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "secret_empty",
            Self::NotBase64 => "secret_not_base64",
            Self::TooShort { .. } => "secret_too_short",
            Self::LooksLikeSignature => "secret_looks_like_signature",
            Self::AsymmetricKey => "secret_is_asymmetric_key",
            Self::InvalidKey => "invalid_key",
            Self::NoRandomness => "no_randomness",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Clock as _;

    #[test]
    fn accepts_the_forms_people_paste() {
        let canonical = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        for form in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
            "\twhsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ",
        ] {
            assert_eq!(
                Secret::parse(form).unwrap().key(),
                canonical.key(),
                "{form:?}"
            );
        }
        // 18 bytes: accepted, and short.
        let short = Secret::parse("whsec_plJ3nmyCDGBKInavdOK15jsl").unwrap();
        assert_eq!(short.len(), 18);
        assert!(short.is_short());
        assert!(!canonical.is_short());
        // Base64 without its padding (17 bytes, "0123456789abcdefg").
        let unpadded = Secret::parse("whsec_MDEyMzQ1Njc4OWFiY2RlZmc").unwrap();
        assert_eq!(unpadded.key(), b"0123456789abcdefg");
        assert_eq!(
            Secret::parse("whsec_MDEyMzQ1Njc4OWFiY2RlZmc=")
                .unwrap()
                .key(),
            b"0123456789abcdefg"
        );
    }

    #[test]
    fn keys_under_16_bytes_are_refused_with_a_hint() {
        for (text, len) in [("nothing", 5), ("whsec_c2hvcnQ=", 5), ("whsec_YWJjZA", 4)] {
            let error = Secret::parse(text).unwrap_err();
            assert_eq!(error, SecretError::TooShort { len }, "{text}");
            assert_eq!(error.code(), "secret_too_short");
            assert!(error.to_string().contains("24 to 64 bytes"), "{error}");
        }
        // 15 bytes refused, 16 accepted (and short).
        assert_eq!(
            Secret::parse("whsec_MDEyMzQ1Njc4OWFiY2Rl").unwrap_err(),
            SecretError::TooShort { len: 15 }
        );
        assert!(
            Secret::parse("whsec_MDEyMzQ1Njc4OWFiY2RlZg==")
                .unwrap()
                .is_short()
        );
        // Raw bytes are taken as they are.
        assert_eq!(Secret::from_bytes(b"abcd").unwrap().len(), 4);
    }

    /// `MfKQ...LaS` (23 bytes) and `MfKQ...LaSwBr` (25 bytes) end with a character whose unused
    /// low bits are set. Python's `base64.b64decode` and Go's `base64.StdEncoding` ignore those
    /// bits; so do we, and the key is the one of the canonical form (bits cleared).
    #[test]
    fn non_zero_trailing_bits_are_accepted_as_the_reference_libraries_do() {
        for (loose, canonical) in [
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaQ=",
            ),
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr",
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBg==",
            ),
            (
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr==",
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBg==",
            ),
        ] {
            let secret = Secret::parse(loose).unwrap();
            assert_eq!(
                secret.expose_whsec(),
                format!("whsec_{canonical}"),
                "{loose}"
            );

            // The standardwebhooks crate (strict base64) signs with the canonical form; we
            // verify with the form as pasted, and sign the same bytes.
            let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
            let timestamp = crate::SystemClock.now_unix_secs();
            let body = br#"{"type":"contract.updated","data":{}}"#;
            let reference = standardwebhooks::Webhook::new(&format!("whsec_{canonical}")).unwrap();
            let theirs = reference.sign(id, timestamp, body).unwrap();
            let timestamp = timestamp.to_string();
            let headers = [
                ("webhook-id", id),
                ("webhook-timestamp", timestamp.as_str()),
                ("webhook-signature", theirs.as_str()),
            ];
            crate::Verifier::new(loose)
                .unwrap()
                .verify(&headers, body)
                .unwrap();
            let ours =
                crate::Signer::new(loose)
                    .unwrap()
                    .signature(id, timestamp.parse().unwrap(), body);
            assert_eq!(ours, theirs, "{loose}");
        }
        // Characters outside the alphabet are still refused.
        assert_eq!(
            Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa!w").unwrap_err(),
            SecretError::NotBase64
        );
    }

    #[test]
    fn refuses_malformed_secrets_with_a_hint() {
        assert_eq!(Secret::parse("").unwrap_err(), SecretError::Empty);
        assert_eq!(Secret::parse("   ").unwrap_err(), SecretError::Empty);
        assert_eq!(Secret::parse("whsec_").unwrap_err(), SecretError::Empty);
        assert_eq!(
            Secret::parse("whsec_not base64!").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(
            Secret::parse("whsec_a-b_").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(
            Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw===").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(
            Secret::parse("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=").unwrap_err(),
            SecretError::LooksLikeSignature
        );
        assert_eq!(
            Secret::parse("v1a,abc").unwrap_err(),
            SecretError::LooksLikeSignature
        );
        assert_eq!(
            Secret::parse("whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=").unwrap_err(),
            SecretError::AsymmetricKey
        );
        assert_eq!(Secret::from_bytes(&[]).unwrap_err(), SecretError::Empty);
        assert!(
            SecretError::LooksLikeSignature
                .to_string()
                .contains("whsec_")
        );
    }

    #[test]
    fn never_shows_the_key() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("MfKQ"), "{shown}");
    }

    #[test]
    fn generated_secrets_round_trip() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_eq!(a.key().len(), 32);
        assert_ne!(a.key(), b.key());
        let text = a.expose_whsec();
        assert!(text.starts_with("whsec_"));
        assert_eq!(Secret::parse(&text).unwrap().key(), a.key());
    }
}
