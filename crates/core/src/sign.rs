//! Signing deliveries the way the sender does: for tests, the CLI, and users' own test suites.

use std::fmt;

use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};

use crate::{
    Secret, SecretError, SystemClock,
    event::{EventType, samples},
    headers::{WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP},
    secret::BASE64,
    verify::{Clock as _, HmacSha256},
};

/// Produces `webhook-id`, `webhook-timestamp` and `webhook-signature` for a body, with every
/// configured secret (and `v1a` key), as a Standard Webhooks sender would.
///
/// ```
/// use agentsync_webhooks_core::Signer;
///
/// let signer = Signer::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
/// let headers = signer.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
/// assert_eq!(headers.signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
/// # Ok::<(), agentsync_webhooks_core::SecretError>(())
/// ```
#[derive(Clone, Default)]
pub struct Signer {
    macs: Vec<HmacSha256>,
    #[cfg(feature = "v1a")]
    keys: Vec<crate::v1a::SigningKey>,
}

impl Signer {
    /// A signer for one secret (`whsec_...`).
    pub fn new(secret: &str) -> Result<Self, SecretError> {
        Ok(Self::default().with_secret(&Secret::parse(secret)?))
    }

    /// Also signs with `secret` (a rotation: one `v1` entry per secret).
    pub fn with_secret(mut self, secret: &Secret) -> Self {
        // Every non-empty key is a valid HMAC key; `Secret` never holds an empty one.
        if let Ok(mac) = HmacSha256::new_from_slice(secret.key()) {
            self.macs.push(mac);
        }
        self
    }

    /// Also signs with an Ed25519 key (one `v1a` entry per key).
    #[cfg(feature = "v1a")]
    pub fn with_signing_key(mut self, key: crate::v1a::SigningKey) -> Self {
        self.keys.push(key);
        self
    }

    /// The three headers for `body`, sent as message `id` at `timestamp`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> SignedHeaders {
        SignedHeaders {
            id: id.to_owned(),
            timestamp,
            signature: self.signature(id, timestamp, body),
        }
    }

    /// The headers for `body` with a fresh message id and the current time.
    pub fn sign_now(&self, body: &[u8]) -> SignedHeaders {
        self.sign(&new_message_id(), SystemClock.now_unix_secs(), body)
    }

    /// The `webhook-signature` value: space-separated `v1,...` (and `v1a,...`) entries.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let timestamp = timestamp.to_string();
        let parts = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
        let v1 = self.macs.iter().map(|keyed| {
            let mut mac = keyed.clone();
            for part in parts {
                mac.update(part);
            }
            format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
        });
        #[cfg(feature = "v1a")]
        let v1 = v1.chain(
            self.keys
                .iter()
                .map(|k| format!("v1a,{}", BASE64.encode(k.sign_parts(&parts)))),
        );
        v1.collect::<Vec<_>>().join(" ")
    }

    /// A complete "Send Example" delivery of `event_type`: its documented example payload, a fresh
    /// id and the current time, signed.
    pub fn example(&self, event_type: EventType) -> SignedRequest {
        let id = new_message_id();
        let now = SystemClock.now_unix_secs();
        let event_id = id.replacen("msg_", "whe_", 1);
        let body = samples::example_body(event_type, &event_id, now);
        SignedRequest {
            headers: self.sign(&id, now, &body),
            body,
        }
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Signer");
        s.field("secrets", &self.macs.len());
        #[cfg(feature = "v1a")]
        s.field("signing_keys", &self.keys.len());
        s.finish()
    }
}

/// The three Standard Webhooks headers of one signed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: String,
}

impl SignedHeaders {
    /// Name/value pairs, ready for any HTTP client.
    pub fn to_pairs(&self) -> [(&'static str, String); 3] {
        [
            (WEBHOOK_ID, self.id.clone()),
            (WEBHOOK_TIMESTAMP, self.timestamp.to_string()),
            (WEBHOOK_SIGNATURE, self.signature.clone()),
        ]
    }

    /// The headers as an `http::HeaderMap`.
    #[cfg(feature = "http")]
    pub fn to_header_map(&self) -> http::HeaderMap {
        self.to_pairs()
            .into_iter()
            .filter_map(|(name, value)| {
                Some((http::HeaderName::from_static(name), value.parse().ok()?))
            })
            .collect()
    }
}

/// A signed body with its headers: what a test sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The headers.
    pub headers: SignedHeaders,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// A fresh `msg_` id: 16 random bytes, hex-encoded.
pub fn new_message_id() -> String {
    let mut bytes = [0u8; 16];
    // Without OS randomness the id only needs to be unique in this process.
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&n.to_be_bytes());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}
