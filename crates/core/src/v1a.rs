//! Standard Webhooks `v1a`: Ed25519 signatures against explicitly trusted public keys.

use std::{fmt, str::FromStr};

use base64::Engine as _;
use ed25519_dalek::Signature;

use crate::{SecretError, secret::BASE64};

/// Prefix of `v1a` public keys.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// Prefix of `v1a` secret keys.
pub const SECRET_KEY_PREFIX: &str = "whsk_";

/// A trusted Ed25519 public key (`whpk_...`).
///
/// ```
/// use agentsync_webhooks_core::v1a::PublicKey;
///
/// let key: PublicKey = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=".parse()?;
/// assert_eq!(key.to_string(), "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=");
/// # Ok::<(), agentsync_webhooks_core::SecretError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Verifies `signature` over the concatenation of `parts`, strictly (no malleable or
    /// small-order signatures), without joining them in memory.
    pub(crate) fn verify_parts(&self, signature: &[u8; 64], parts: &[&[u8]]) -> bool {
        let Ok(mut stream) = self.0.verify_stream(&Signature::from_bytes(signature)) else {
            return false;
        };
        for part in parts {
            stream.update(part);
        }
        stream.finalize_and_verify().is_ok()
    }
}

impl FromStr for PublicKey {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.starts_with(SECRET_KEY_PREFIX) || s.starts_with(crate::secret::SECRET_PREFIX) {
            return Err(SecretError::InvalidKey);
        }
        let bytes: [u8; 32] = decode(s.strip_prefix(PUBLIC_KEY_PREFIX).unwrap_or(s))?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| SecretError::InvalidKey)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_KEY_PREFIX}{}", BASE64.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// An Ed25519 signing key (`whsk_...`: the 32-byte seed followed by the public key), for
/// senders and tests. Zeroized on drop, never shown.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<Self, SecretError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|_| SecretError::NoRandomness)?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The public key to give receivers.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The key in its `whsk_...` form. The name says what it does: the result is the secret.
    pub fn expose_whsk(&self) -> String {
        let bytes = zeroize::Zeroizing::new(self.0.to_keypair_bytes());
        format!("{SECRET_KEY_PREFIX}{}", BASE64.encode(bytes.as_ref()))
    }

    /// Signs the concatenation of `parts`.
    pub(crate) fn sign_parts(&self, parts: &[&[u8]]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        let message = parts.concat();
        self.0.sign(&message).to_bytes()
    }
}

impl FromStr for SigningKey {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bytes = zeroize::Zeroizing::new(decode::<64>(
            s.strip_prefix(SECRET_KEY_PREFIX).unwrap_or(s),
        )?);
        ed25519_dalek::SigningKey::from_keypair_bytes(&bytes)
            .map(Self)
            .map_err(|_| SecretError::InvalidKey)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

fn decode<const N: usize>(encoded: &str) -> Result<[u8; N], SecretError> {
    let bytes = zeroize::Zeroizing::new(
        BASE64
            .decode(encoded)
            .map_err(|_| SecretError::InvalidKey)?,
    );
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| SecretError::InvalidKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SK: &str = "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
    const PK: &str = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";

    #[test]
    fn keys_parse_and_pair() {
        let sk: SigningKey = SK.parse().unwrap();
        assert_eq!(sk.public_key().to_string(), PK);
        assert_eq!(sk.expose_whsk(), SK);
        assert_eq!(format!("{sk:?}"), "SigningKey(..)");
    }

    #[test]
    fn refuses_wrong_kinds() {
        assert_eq!(
            SK.parse::<PublicKey>().unwrap_err(),
            SecretError::InvalidKey
        );
        assert_eq!(
            PK.parse::<SigningKey>().unwrap_err(),
            SecretError::InvalidKey
        );
        assert_eq!(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
                .parse::<PublicKey>()
                .unwrap_err(),
            SecretError::InvalidKey
        );
        assert_eq!(
            "whpk_!!".parse::<PublicKey>().unwrap_err(),
            SecretError::InvalidKey
        );
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        let sk = SigningKey::generate().unwrap();
        let sig = sk.sign_parts(&[b"a", b".", b"b"]);
        assert!(sk.public_key().verify_parts(&sig, &[b"a.", b"b"]));
        assert!(!sk.public_key().verify_parts(&sig, &[b"a.", b"c"]));
    }
}
