//! The store contract: what any idempotency backend must do, and the values it exchanges.

use std::{
    error::Error as StdError, fmt, future::Future, pin::Pin, str::FromStr, sync::Arc,
    time::Duration,
};

/// The future every store method returns: boxed so that stores can live behind
/// `Arc<dyn IdempotencyStore>`, `Send` so that it runs on any multi-threaded runtime.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What a [`claim`](IdempotencyStore::claim) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody held the key: it is now leased to the caller, who must complete or release it with
    /// this token.
    New(LeaseToken),
    /// Another claim's lease is running: someone is processing this id right now.
    InFlight {
        /// How long that lease still runs, if the store knows; the receiver turns it into
        /// `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The id was completed and its record has not expired: a duplicate.
    Done,
}

/// Proof of one claim: only the holder of the token can complete or release it, so a claim whose
/// lease expired and was taken over cannot undo its successor's work.
///
/// Unique per claim; stores choose how (a counter in one process, randomness across processes).
/// Its [`Display`](fmt::Display) form is 32 lower-case hex digits, and [`FromStr`] reads it back,
/// for stores that keep it as text.
///
/// ```
/// use agentsync_webhooks_core::idempotency::LeaseToken;
///
/// let token = LeaseToken::from_u128(0xfeed);
/// assert_eq!(token.to_string(), "0000000000000000000000000000feed");
/// assert_eq!(token.to_string().parse::<LeaseToken>()?, token);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseToken(u128);

impl LeaseToken {
    /// A token with this value (for stores that count).
    pub const fn from_u128(value: u128) -> Self {
        Self(value)
    }

    /// The token's value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// A token of 128 random bits from the operating system, unique across processes.
    pub fn random() -> Result<Self, StoreError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|err| {
            StoreError::new(StoreErrorKind::Other, "no randomness for a lease token")
                .with_source(err)
        })?;
        Ok(Self(u128::from_le_bytes(bytes)))
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseToken({self})")
    }
}

impl FromStr for LeaseToken {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u128::from_str_radix(s, 16).map(Self)
    }
}

/// What kind of failure a store had; decides the short reason sent back with the 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store could not be reached (connection refused, reset, DNS).
    Unreachable,
    /// The store did not answer in time.
    Timeout,
    /// Anything else (an unexpected reply, a script error, a full store).
    Other,
}

impl StoreErrorKind {
    /// A few words for the sender; the full error goes to the logs only.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::Timeout => "timed out",
            Self::Other => "failed",
        }
    }
}

/// A store that could not answer. The receiver answers 503 (fail-closed, the default) or
/// processes without de-duplication (fail-open), and logs this error in full.
///
/// Only [`kind`](Self::kind) reaches the sender, so the message may name hosts or queries.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl StoreError {
    /// An error of `kind`, described by `message`.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source` (shown in logs).
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

/// A place to record which webhook ids are being processed and which are done.
///
/// Keys arrive already namespaced (the [`Idempotency`](super::Idempotency) prepends its prefix);
/// a store treats them as opaque strings of visible ASCII. Implement it to keep the records in
/// your own database; the `testing` feature's `contract` module is the test suite every store
/// must pass.
///
/// # Contract
///
/// - [`claim`](Self::claim) is atomic: of any number of concurrent claims of one key, exactly one
///   gets [`Claim::New`]. A key whose lease has expired, or that was released, forgotten or never
///   seen, is claimed anew with a fresh token. A key completed less than its TTL ago is
///   [`Claim::Done`]; a key leased less than its lease ago is [`Claim::InFlight`].
/// - [`complete`](Self::complete) and [`release`](Self::release) act only if the key is still
///   leased under this very token and the lease has not expired; otherwise they change nothing
///   and return `Ok(false)`. They never undo another claim's lease or a completion.
/// - [`release_detached`](Self::release_detached) is `release` for code that cannot wait (a
///   `Drop`); it may finish later or not at all, in which case the lease expires.
/// - [`forget`](Self::forget) removes whatever the key holds, so the id is processed again.
/// - Every call answers within a bounded time (fail with [`StoreErrorKind::Timeout`] rather than
///   hang): the receiver does not time calls out itself, and a sender waits only about 5 s.
///
/// The trait is object-safe; the receiver holds stores as `Arc<dyn IdempotencyStore>`.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key`, leasing it for `lease` if nobody holds it.
    fn claim<'a>(&'a self, key: &'a str, lease: Duration) -> StoreFuture<'a, Claim>;

    /// Marks the claim of `key` under `token` as done, remembered for `ttl`. `Ok(false)` if the
    /// token no longer holds the lease (it expired, was released or forgotten).
    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: LeaseToken,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;

    /// Gives up the claim of `key` under `token`, so the next delivery of the id is processed.
    /// `Ok(false)` if the token no longer holds the lease.
    fn release<'a>(&'a self, key: &'a str, token: LeaseToken) -> StoreFuture<'a, bool>;

    /// Starts releasing the claim of `key` under `token` without waiting: called when a
    /// delivery is abandoned (its handler panicked, its request was cancelled), from `Drop`,
    /// where nothing can be awaited and no runtime may be at hand.
    ///
    /// Release synchronously if the store can do so without blocking; spawn the release on the
    /// current runtime if there is one; otherwise do nothing and let the lease expire.
    fn release_detached(&self, key: &str, token: LeaseToken);

    /// Removes what `key` holds (a completion or a lease), so that the id is processed again.
    /// `Ok(true)` if there was something. For operators; see
    /// [`Idempotency::forget`](super::Idempotency::forget), which applies the key prefix.
    fn forget<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool>;
}

/// A shared store is a store, so one can be kept for [`forget`](IdempotencyStore::forget) and
/// handed to the receiver too.
impl<S: IdempotencyStore + ?Sized> IdempotencyStore for Arc<S> {
    fn claim<'a>(&'a self, key: &'a str, lease: Duration) -> StoreFuture<'a, Claim> {
        (**self).claim(key, lease)
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: LeaseToken,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        (**self).complete(key, token, ttl)
    }

    fn release<'a>(&'a self, key: &'a str, token: LeaseToken) -> StoreFuture<'a, bool> {
        (**self).release(key, token)
    }

    fn release_detached(&self, key: &str, token: LeaseToken) {
        (**self).release_detached(key, token);
    }

    fn forget<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        (**self).forget(key)
    }
}
