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
    /// Parses a secret: `whsec_` prefix optional, standard base64 with or without padding,
    /// surrounding whitespace ignored.
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
        Self::from_bytes(&key)
    }

    /// A secret made of raw key bytes.
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
        // 18 bytes, and base64 without its padding.
        assert_eq!(
            Secret::parse("whsec_plJ3nmyCDGBKInavdOK15jsl")
                .unwrap()
                .key()
                .len(),
            18
        );
        let unpadded = Secret::parse("whsec_YWJjZA").unwrap();
        assert_eq!(unpadded.key(), b"abcd");
        assert_eq!(Secret::parse("whsec_YWJjZA==").unwrap().key(), b"abcd");
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
            Secret::parse("whsec_YWJjZA===").unwrap_err(),
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
