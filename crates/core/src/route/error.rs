//! What a handler returns when it could not process an event: retry it, or give up on it.

use std::{error::Error as StdError, fmt, time::Duration};

use crate::WebhookError;

/// A boxed error, as handlers and the workers pass them around.
type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Whether a failed event is worth another attempt.
///
/// ```
/// use agentsync_webhooks_core::route::{HandlerError, HandlerErrorKind};
///
/// assert_eq!(HandlerError::permanent("no such producer").kind(), HandlerErrorKind::Permanent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandlerErrorKind {
    /// Transient (a database or an API down, a timeout): run it again later, with backoff, until
    /// the attempts are used up.
    Retryable,
    /// It will never succeed as it is (its data does not fit, the business rules reject it): no
    /// more attempts; on a worker it goes straight to the dead letters, where it can be replayed
    /// once the cause is fixed.
    Permanent,
}

/// Why a handler did not process an event, and whether to try again.
///
/// `?` on any [`std::error::Error`] gives a *retryable* error, so a handler reads like ordinary
/// Rust; say [`HandlerError::permanent`] when retrying cannot help, so that the event goes to the
/// dead letters at once instead of using up its attempts. A retryable error may carry a
/// [`retry_after`](Self::with_retry_after) hint (an API's `Retry-After`), which the workers use
/// instead of their backoff.
///
/// Like `anyhow::Error`, it does not itself implement [`std::error::Error`] (so that `?` can
/// convert every error into it); [`into_boxed`](Self::into_boxed) or `?` into a
/// `Box<dyn Error + Send + Sync>` gives one.
///
/// ```
/// use std::time::Duration;
/// use agentsync_webhooks_core::route::{Event, HandlerError};
/// use agentsync_webhooks_core::NpnActivated;
///
/// async fn start_monitoring(event: Event<NpnActivated>) -> Result<(), HandlerError> {
///     if event.data.npn.is_empty() {
///         // Retrying an empty NPN cannot help: straight to the dead letters.
///         return Err(HandlerError::permanent("the event names no NPN"));
///     }
///     // Any std error converts with `?`, as a retryable error.
///     let _npn: u64 = event.data.npn.parse()?;
///     Ok(())
/// }
///
/// let busy = HandlerError::retryable("rate limited").with_retry_after(Duration::from_secs(30));
/// assert!(!busy.is_permanent());
/// assert_eq!(busy.retry_after(), Some(Duration::from_secs(30)));
/// assert_eq!(busy.code(), "handler_failed");
/// ```
pub struct HandlerError {
    kind: HandlerErrorKind,
    code: &'static str,
    error: BoxError,
    retry_after: Option<Duration>,
}

impl HandlerError {
    /// A transient failure: the event is run again later, with backoff.
    ///
    /// Takes an error or a message (`&str`, `String`).
    ///
    /// ```
    /// use agentsync_webhooks_core::route::HandlerError;
    ///
    /// let err = HandlerError::retryable(format!("ProducerSync answered {}", 502));
    /// assert_eq!(err.to_string(), "ProducerSync answered 502");
    /// ```
    pub fn retryable(error: impl Into<BoxError>) -> Self {
        Self::new(HandlerErrorKind::Retryable, "handler_failed", error.into())
    }

    /// A failure retrying cannot fix: on a worker, the event goes straight to the dead letters.
    ///
    /// ```
    /// use agentsync_webhooks_core::route::HandlerError;
    ///
    /// let err = HandlerError::permanent("producer 123 is not ours");
    /// assert!(err.is_permanent());
    /// assert_eq!(err.code(), "handler_permanent");
    /// ```
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self::new(
            HandlerErrorKind::Permanent,
            "handler_permanent",
            error.into(),
        )
    }

    /// A handler that panicked: retryable (the panic may be transient, and a handler that panics
    /// every time still reaches the dead letters once its attempts are used up). What the workers
    /// report when they catch a panic.
    ///
    /// ```
    /// use agentsync_webhooks_core::route::HandlerError;
    ///
    /// let err = HandlerError::panicked("index out of bounds");
    /// assert_eq!((err.code(), err.is_permanent()), ("handler_panicked", false));
    /// ```
    pub fn panicked(message: impl Into<String>) -> Self {
        let message = format!("the handler panicked: {}", message.into());
        Self::new(
            HandlerErrorKind::Retryable,
            "handler_panicked",
            message.into(),
        )
    }

    /// An event the router could not hand over: its body is not an envelope, or its `data` does
    /// not fit the handler's type. Permanent: the same bytes will never parse, so it goes to the
    /// dead letters, to be replayed once the handler's type is fixed.
    ///
    /// ```
    /// use agentsync_webhooks_core::{WebhookError, route::HandlerError};
    ///
    /// let err = HandlerError::invalid_data(WebhookError::InvalidEventData {
    ///     event_type: "producersync.updates_available".into(),
    ///     path: "runDate".into(),
    ///     detail: "missing field `runDate`".into(),
    /// });
    /// assert_eq!(err.code(), "invalid_event_data");
    /// assert!(err.is_permanent());
    /// assert!(err.to_string().contains("`runDate`"));
    /// ```
    pub fn invalid_data(error: WebhookError) -> Self {
        let code = error.code();
        Self::new(HandlerErrorKind::Permanent, code, Box::new(error))
    }

    fn new(kind: HandlerErrorKind, code: &'static str, error: BoxError) -> Self {
        Self {
            kind,
            code,
            error,
            retry_after: None,
        }
    }

    /// The same error, asking to be retried no sooner than `delay` from now (e.g. an API's
    /// `Retry-After`). The workers use it instead of their backoff for this attempt (still at
    /// most their backoff cap); it means nothing for a permanent error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentsync_webhooks_core::route::HandlerError;
    ///
    /// let err = HandlerError::retryable("429").with_retry_after(Duration::from_secs(60));
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
    /// ```
    #[must_use]
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// Retryable or permanent.
    ///
    /// ```
    /// use agentsync_webhooks_core::route::{HandlerError, HandlerErrorKind};
    ///
    /// let err: HandlerError = std::io::Error::other("connection reset").into();
    /// assert_eq!(err.kind(), HandlerErrorKind::Retryable);
    /// ```
    pub fn kind(&self) -> HandlerErrorKind {
        self.kind
    }

    /// Whether retrying is pointless ([`HandlerErrorKind::Permanent`]).
    ///
    /// ```
    /// use agentsync_webhooks_core::route::HandlerError;
    ///
    /// assert!(HandlerError::permanent("bad npn").is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        self.kind == HandlerErrorKind::Permanent
    }

    /// A stable, machine-readable code for logs and metrics: `handler_failed` (retryable, from
    /// `?` or [`retryable`](Self::retryable)), `handler_permanent`, `handler_panicked`, or the
    /// [`WebhookError::code`] of a body that did not parse (`invalid_payload`,
    /// `invalid_event_data`).
    ///
    /// ```
    /// use agentsync_webhooks_core::route::HandlerError;
    ///
    /// assert_eq!(HandlerError::retryable("down").code(), "handler_failed");
    /// ```
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The retry hint, if the handler gave one.
    ///
    /// ```
    /// use agentsync_webhooks_core::route::HandlerError;
    ///
    /// assert_eq!(HandlerError::retryable("down").retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }

    /// The parse failure behind an [`invalid_data`](Self::invalid_data) error, so that an inline
    /// receiver can answer it as it answers any [`WebhookError`] (400, with its code).
    ///
    /// ```
    /// use agentsync_webhooks_core::{WebhookError, route::HandlerError};
    ///
    /// let err = HandlerError::invalid_data(WebhookError::InvalidPayload { detail: "not JSON".into() });
    /// assert_eq!(err.webhook_error().map(WebhookError::status), Some(400));
    /// assert!(HandlerError::retryable("down").webhook_error().is_none());
    /// ```
    pub fn webhook_error(&self) -> Option<&WebhookError> {
        self.error.downcast_ref::<WebhookError>()
    }

    /// The underlying error.
    ///
    /// ```
    /// use agentsync_webhooks_core::route::HandlerError;
    ///
    /// let err: HandlerError = std::io::Error::other("reset").into();
    /// assert!(err.error().downcast_ref::<std::io::Error>().is_some());
    /// ```
    pub fn error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.error
    }

    /// The underlying error, boxed, for code that wants a [`std::error::Error`].
    ///
    /// ```
    /// use agentsync_webhooks_core::route::HandlerError;
    ///
    /// let boxed = HandlerError::retryable("down").into_boxed();
    /// assert_eq!(boxed.to_string(), "down");
    /// ```
    pub fn into_boxed(self) -> BoxError {
        self.error
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("kind", &self.kind)
            .field("code", &self.code)
            .field("error", &self.error)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

/// `?` on any error in a handler: a retryable [`HandlerError`].
impl<E: StdError + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self::retryable(error)
    }
}

impl From<HandlerError> for Box<dyn StdError + Send + Sync + 'static> {
    fn from(error: HandlerError) -> Self {
        error.error
    }
}

impl From<HandlerError> for Box<dyn StdError + 'static> {
    fn from(error: HandlerError) -> Self {
        error.error
    }
}
