//! Verifying deliveries: headers, the replay window, then signatures.

mod signatures;
mod timestamp;

use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use hmac::{KeyInit as _, Mac as _};

pub use self::{
    signatures::MAX_SIGNATURE_ENTRIES,
    timestamp::{Clock, FixedClock, SystemClock},
};
use crate::{
    Delivery, EventPayload, HeaderLookup, Secret, SecretError, WebhookError,
    headers::{WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP},
};

pub(crate) type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The default replay window: five minutes either way, as Standard Webhooks recommends.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// Longest accepted `webhook-id`.
pub const MAX_ID_LEN: usize = 256;
/// Longest accepted `webhook-signature` header.
pub const MAX_SIGNATURE_HEADER_LEN: usize = 8 * 1024;

/// The environment variable that [`Verifier::from_env`] reads.
pub const SECRET_ENV: &str = "AGENTSYNC_WEBHOOK_SECRET";

/// Why [`Verifier::from_env`] found no usable secret.
///
/// Its `Debug` form is its message, so that `fn main() -> Result<(), Box<dyn Error>>` with a `?`
/// tells the person starting the service what to set.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FromEnvError {
    /// The variable is not set (or not UTF-8).
    #[error(
        "set AGENTSYNC_WEBHOOK_SECRET to the endpoint's signing secret (whsec_..., from the AgentSync webhook portal)"
    )]
    Unset,
    /// The variable holds something that is not a usable secret.
    #[error("AGENTSYNC_WEBHOOK_SECRET: {0}")]
    Secret(#[from] SecretError),
}

impl fmt::Debug for FromEnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Checks that a delivery was signed by the sender and is recent.
///
/// Cheap to clone (one `Arc`), so adapters keep one per service. Holds one or more secrets for
/// rotation (any may match) and, with the `v1a` feature, trusted Ed25519 public keys.
///
/// ```
/// use agentsync_webhooks_core::{FixedClock, Signer, Verifier};
///
/// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// let verifier = Verifier::builder().secret(secret)?.clock(FixedClock::new(1_614_265_330)).build()?;
/// let headers = [
///     ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
///     ("webhook-timestamp", "1614265330"),
///     ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
/// ];
/// let verified = verifier.verify(&headers, br#"{"test": 2432232314}"#)?;
/// assert_eq!(verified.id, "msg_p5jXN8AQM9LWM0D4loKWxJek");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    /// One keyed HMAC state per secret, cloned per delivery; zeroized on drop.
    macs: Vec<HmacSha256>,
    #[cfg(feature = "v1a")]
    public_keys: Vec<crate::v1a::PublicKey>,
    tolerance_secs: u64,
    clock: ClockSource,
}

/// Where a verifier reads "now": the system clock called directly (no `dyn` call on every
/// delivery), or the one given to [`VerifierBuilder::clock`].
#[derive(Clone)]
enum ClockSource {
    System,
    Given(Arc<dyn Clock>),
}

impl ClockSource {
    #[inline]
    fn now_unix_secs(&self) -> i64 {
        match self {
            Self::System => SystemClock.now_unix_secs(),
            Self::Given(clock) => clock.now_unix_secs(),
        }
    }
}

/// The authenticated header values of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedHeaders<'h> {
    /// `webhook-id`: the idempotency key.
    pub id: &'h str,
    /// `webhook-timestamp`, in seconds since the Unix epoch.
    pub timestamp: i64,
}

impl Verifier {
    /// A verifier for one secret (`whsec_...`) with the default tolerance.
    ///
    /// A key under 16 bytes is refused ([`SecretError::TooShort`]); one under the 24 bytes of
    /// Standard Webhooks secrets is accepted with a `tracing` warning (never showing the key).
    pub fn new(secret: &str) -> Result<Self, SecretError> {
        let secret = Secret::parse(secret)?;
        if secret.is_short() {
            tracing::warn!(
                key_bytes = secret.len(),
                "the webhook signing secret is only {} bytes once decoded; Standard Webhooks \
                 secrets are {} to 64 bytes: check that it is the endpoint's whole secret",
                secret.len(),
                Secret::RECOMMENDED_LEN
            );
        }
        Self::builder().parsed_secret(secret).build()
    }

    /// A verifier that accepts any of several secrets, for rotation.
    pub fn with_secrets<'a>(
        secrets: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, SecretError> {
        secrets
            .into_iter()
            .try_fold(Self::builder(), |b, s| b.secret(s))?
            .build()
    }

    /// A verifier for the secret(s) in the environment variable [`SECRET_ENV`]
    /// (`AGENTSYNC_WEBHOOK_SECRET`); several secrets, separated by white space, are accepted
    /// during a rotation.
    ///
    /// ```no_run
    /// let verifier = agentsync_webhooks_core::Verifier::from_env()?;
    /// # Ok::<(), agentsync_webhooks_core::FromEnvError>(())
    /// ```
    pub fn from_env() -> Result<Self, FromEnvError> {
        Self::from_env_value(std::env::var(SECRET_ENV).ok())
    }

    fn from_env_value(value: Option<String>) -> Result<Self, FromEnvError> {
        let value = value
            .filter(|v| !v.trim().is_empty())
            .ok_or(FromEnvError::Unset)?;
        Ok(Self::with_secrets(value.split_whitespace())?)
    }

    /// Starts a verifier with options.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder::default()
    }

    /// The replay window, either way.
    pub fn tolerance(&self) -> Duration {
        Duration::from_secs(self.inner.tolerance_secs)
    }

    /// Checks the headers, the timestamp, then the signatures over `body` (the raw bytes as
    /// received, never re-serialised). Allocates nothing.
    pub fn verify<'h>(
        &self,
        headers: &'h (impl HeaderLookup + ?Sized),
        body: &[u8],
    ) -> Result<VerifiedHeaders<'h>, WebhookError> {
        let found = headers.webhook_headers();
        let Some(raw_id) = found.id else {
            return Err(WebhookError::MissingHeader(WEBHOOK_ID));
        };
        let id = webhook_id(raw_id)?;
        let Some(raw_timestamp) = found.timestamp else {
            return Err(WebhookError::MissingHeader(WEBHOOK_TIMESTAMP));
        };
        let Some(signature_header) = found.signature else {
            return Err(WebhookError::MissingHeader(WEBHOOK_SIGNATURE));
        };
        if signature_header.len() > MAX_SIGNATURE_HEADER_LEN {
            return Err(WebhookError::InvalidHeader {
                name: WEBHOOK_SIGNATURE,
                reason: "too long",
            });
        }
        if signature_header.iter().all(|b| *b == b' ') {
            return Err(WebhookError::InvalidHeader {
                name: WEBHOOK_SIGNATURE,
                reason: "empty",
            });
        }
        let timestamp = timestamp::parse(raw_timestamp)?;
        let now = self.inner.clock.now_unix_secs();
        timestamp::check(timestamp, now, self.inner.tolerance_secs)?;

        let candidates = signatures::Candidates::parse(signature_header);
        let parts = [id.as_bytes(), b".", raw_timestamp, b".", body];
        if self.matches_v1(candidates, &parts) || self.matches_v1a(candidates, &parts) {
            Ok(VerifiedHeaders { id, timestamp })
        } else {
            Err(WebhookError::SignatureMismatch {
                entries: candidates.entries_examined(),
                candidates: candidates.usable(),
            })
        }
    }

    /// Verifies, then parses the body into a typed event (two phases: the envelope, then `data`
    /// by its `type`). The body is kept, shared and uncopied, for receipt logging and replay.
    pub fn verify_delivery<D: EventPayload>(
        &self,
        headers: &(impl HeaderLookup + ?Sized),
        body: Bytes,
    ) -> Result<Delivery<D>, WebhookError> {
        let verified = self.verify(headers, &body)?;
        Delivery::parse(verified.id, verified.timestamp, body)
    }

    /// One HMAC per secret, its tag written once as base64 and compared in constant time with
    /// the text of every `v1` entry shaped like a tag (a header without one costs no HMAC):
    /// an entry matches exactly when it decodes to the tag, and no entry is decoded. The first
    /// secret's pass is the one that walks the header; later secrets (during a rotation) walk
    /// it again.
    fn matches_v1(&self, candidates: signatures::Candidates<'_>, parts: &[&[u8]; 5]) -> bool {
        let mut texts = candidates.v1_texts();
        let Some(first) = texts.next() else {
            return false;
        };
        let expected = |keyed: &HmacSha256| {
            let mut mac = keyed.clone();
            for part in parts {
                mac.update(part);
            }
            signatures::encode_tag(&mac.finalize().into_bytes().into())
        };
        let mut macs = self.inner.macs.iter();
        let Some(primary) = macs.next() else {
            return false;
        };
        let primary = expected(primary);
        if texts.fold(signatures::texts_equal(&primary, first), |found, text| {
            found | signatures::texts_equal(&primary, text)
        }) {
            return true;
        }
        macs.any(|keyed| {
            let expected = expected(keyed);
            candidates.v1_texts().fold(false, |found, text| {
                found | signatures::texts_equal(&expected, text)
            })
        })
    }

    #[cfg(feature = "v1a")]
    fn matches_v1a(&self, candidates: signatures::Candidates<'_>, parts: &[&[u8]; 5]) -> bool {
        candidates.v1a().any(|sig| {
            self.inner
                .public_keys
                .iter()
                .any(|key| key.verify_parts(&sig, parts))
        })
    }

    #[cfg(not(feature = "v1a"))]
    fn matches_v1a(&self, _: signatures::Candidates<'_>, _: &[&[u8]; 5]) -> bool {
        false
    }
}

/// A `webhook-id` is 1 to [`MAX_ID_LEN`] visible ASCII characters.
fn webhook_id(raw: &[u8]) -> Result<&str, WebhookError> {
    let invalid = |reason| WebhookError::InvalidHeader {
        name: WEBHOOK_ID,
        reason,
    };
    if raw.is_empty() {
        return Err(invalid("empty"));
    }
    if raw.len() > MAX_ID_LEN {
        return Err(invalid("too long"));
    }
    if !visible_ascii(raw) {
        return Err(invalid("not visible ASCII"));
    }
    std::str::from_utf8(raw).map_err(|_| invalid("not visible ASCII"))
}

/// Whether every byte is visible ASCII (`!` to `~`), eight bytes at a time: a word has a byte
/// under `!` when subtracting `!` from every byte borrows into that byte's high bit (the
/// classic "has less" test, exact for "any"), and one over `~` when adding 1 sets it or it was
/// set; a borrow or carry between bytes only ever starts at a byte already found.
fn visible_ascii(bytes: &[u8]) -> bool {
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    const LOW: u64 = u64::from_ne_bytes([b'!'; 8]);
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    let bad = |x: u64| (x.wrapping_sub(LOW) & !x) | x.wrapping_add(ONES) | x;
    let (words, tail) = bytes.as_chunks::<8>();
    let mut last = [b'!'; 8];
    last[..tail.len()].copy_from_slice(tail);
    let found = words
        .iter()
        .fold(bad(u64::from_le_bytes(last)), |found, word| {
            found | bad(u64::from_le_bytes(*word))
        });
    found & HIGH == 0
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Verifier");
        s.field("secrets", &self.inner.macs.len());
        #[cfg(feature = "v1a")]
        s.field("public_keys", &self.inner.public_keys.len());
        s.field("tolerance_secs", &self.inner.tolerance_secs)
            .finish_non_exhaustive()
    }
}

/// Options for a [`Verifier`].
pub struct VerifierBuilder {
    secrets: Vec<Secret>,
    #[cfg(feature = "v1a")]
    public_keys: Vec<crate::v1a::PublicKey>,
    tolerance: Duration,
    clock: ClockSource,
}

impl Default for VerifierBuilder {
    fn default() -> Self {
        Self {
            secrets: Vec::new(),
            #[cfg(feature = "v1a")]
            public_keys: Vec::new(),
            tolerance: DEFAULT_TOLERANCE,
            clock: ClockSource::System,
        }
    }
}

impl VerifierBuilder {
    /// Adds a secret in any accepted form (`whsec_` optional, padding optional).
    pub fn secret(self, secret: &str) -> Result<Self, SecretError> {
        Ok(self.parsed_secret(Secret::parse(secret)?))
    }

    /// Adds an already-parsed secret.
    pub fn parsed_secret(mut self, secret: Secret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Trusts an Ed25519 public key (`whpk_...`) for `v1a` signatures.
    #[cfg(feature = "v1a")]
    pub fn public_key(mut self, key: &str) -> Result<Self, SecretError> {
        self.public_keys.push(key.parse()?);
        Ok(self)
    }

    /// The replay window, either way (default five minutes). `Duration::ZERO` accepts only the
    /// current second; it never disables the check. Sub-second parts are ignored.
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Where "now" comes from (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = ClockSource::Given(Arc::new(clock));
        self
    }

    /// The verifier; fails when no secret or key was given.
    pub fn build(self) -> Result<Verifier, SecretError> {
        #[cfg(feature = "v1a")]
        let no_keys = self.public_keys.is_empty();
        #[cfg(not(feature = "v1a"))]
        let no_keys = true;
        if self.secrets.is_empty() && no_keys {
            return Err(SecretError::Empty);
        }
        let macs = self
            .secrets
            .iter()
            .map(|s| HmacSha256::new_from_slice(s.key()).map_err(|_| SecretError::Empty))
            .collect::<Result<_, _>>()?;
        Ok(Verifier {
            inner: Arc::new(Inner {
                macs,
                #[cfg(feature = "v1a")]
                public_keys: self.public_keys,
                tolerance_secs: self.tolerance.as_secs(),
                clock: self.clock,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_ascii_as_is_ascii_graphic() {
        for len in 0..=20 {
            for position in 0..len {
                for byte in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[position] = byte;
                    // The byte next to the one tested is at either end of its range.
                    if position + 1 < len {
                        bytes[position + 1] = if byte % 2 == 0 { b'!' } else { b'~' };
                    }
                    assert_eq!(
                        visible_ascii(&bytes),
                        bytes.iter().all(u8::is_ascii_graphic),
                        "{bytes:?}"
                    );
                }
            }
        }
        assert!(visible_ascii(b""));
    }

    #[test]
    fn secrets_from_the_environment() {
        let unset = Verifier::from_env_value(None).unwrap_err();
        assert_eq!(unset, FromEnvError::Unset);
        assert!(unset.to_string().contains(SECRET_ENV));
        assert_eq!(format!("{unset:?}"), unset.to_string());
        assert_eq!(
            Verifier::from_env_value(Some("  ".into())).unwrap_err(),
            FromEnvError::Unset
        );
        let bad = Verifier::from_env_value(Some("v1,abc".into())).unwrap_err();
        assert_eq!(bad, FromEnvError::Secret(SecretError::LooksLikeSignature));
        let rotated = Verifier::from_env_value(Some(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw  whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n"
                .into(),
        ))
        .unwrap();
        assert_eq!(rotated.inner.macs.len(), 2);
    }
}
