//! Handlers, and how the router calls them without knowing their data type.

use std::{future::Future, marker::PhantomData, pin::Pin};

use bytes::Bytes;

use super::{Event, HandlerError};
use crate::{Delivery, EventData, EventPayload};

/// The future a [`Handler`] returns: boxed, `Send` and `'static`, so that it runs on any worker
/// thread or in a spawned task.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'static>>;

/// Something that processes one [`Event<T>`]: usually an
/// `async fn(Event<T>) -> Result<(), HandlerError>` (where `?` converts any `std::error::Error`
/// into a retryable error), or a closure that captures shared state; its `Ok(())` needs no type
/// annotation.
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
/// use agentsync_webhooks_core::{EventType, UpdatesAvailable};
/// use agentsync_webhooks_core::route::{Event, EventRouter, HandlerError};
///
/// async fn pull(event: Event<UpdatesAvailable>) -> Result<(), HandlerError> {
///     let since = event.data.updated_since();
///     std::fs::metadata(".")?; // any std error: retryable
///     println!("pull updatedSince={since}");
///     Ok(())
/// }
///
/// let pulls = Arc::new(AtomicU64::new(0));
/// let counted = {
///     let pulls = pulls.clone();
///     move |_: Event<UpdatesAvailable>| {
///         let pulls = pulls.clone();
///         async move {
///             pulls.fetch_add(1, Ordering::Relaxed);
///             Ok(())
///         }
///     }
/// };
/// let router = EventRouter::new()
///     .on(EventType::ProducerSyncUpdatesAvailable, pull)
///     .on(EventType::ProducerSyncUpdatesAvailable, counted); // the last registration wins
/// # let _ = router;
/// ```
///
/// Implement it on your own type when a handler needs more than a closure gives:
///
/// ```
/// use agentsync_webhooks_core::{EventGroup, ObjectData};
/// use agentsync_webhooks_core::route::{Event, EventRouter, Handler, HandlerFuture};
///
/// struct Contracts {
///     database_url: String,
/// }
///
/// impl Handler<ObjectData> for Contracts {
///     fn call(&self, event: Event<ObjectData>) -> HandlerFuture {
///         let url = self.database_url.clone();
///         Box::pin(async move {
///             println!("store {} for {:?} in {url}", event.event_type, event.data.npn());
///             Ok(())
///         })
///     }
/// }
///
/// let router = EventRouter::new()
///     .on_group(EventGroup::Contract, Contracts { database_url: "postgres://...".into() });
/// # let _ = router;
/// ```
pub trait Handler<T>: Send + Sync + 'static {
    /// Processes `event`.
    fn call(&self, event: Event<T>) -> HandlerFuture;
}

impl<F, Fut, T> Handler<T> for F
where
    F: Fn(Event<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    fn call(&self, event: Event<T>) -> HandlerFuture {
        Box::pin(self(event))
    }
}

/// What a dispatch hands to the selected handler, before the handler's own type is parsed.
pub(super) struct Call {
    pub(super) input: Input,
    pub(super) attempt: u32,
    pub(super) received_at_ms: Option<i64>,
    pub(super) ordering_key: Option<String>,
    pub(super) stale: bool,
}

/// The delivery as the caller had it: raw (from a queue or a port that did not parse) or already
/// parsed with [`EventData`] (an inline port that verified and parsed).
pub(super) enum Input {
    Raw {
        webhook_id: String,
        webhook_timestamp: i64,
        body: Bytes,
    },
    Parsed(Delivery<EventData>),
}

/// A handler with its data type erased, as the router stores it.
pub(super) trait ErasedHandler: Send + Sync + 'static {
    fn call(&self, call: Call) -> HandlerFuture;
}

/// A [`Handler<T>`] that parses `data` as `T` before it is called.
pub(super) struct Typed<H, T> {
    handler: H,
    _data: PhantomData<fn() -> T>,
}

impl<H, T> Typed<H, T> {
    pub(super) fn new(handler: H) -> Self {
        Self {
            handler,
            _data: PhantomData,
        }
    }
}

impl<H, T> ErasedHandler for Typed<H, T>
where
    H: Handler<T>,
    T: EventPayload + Send + 'static,
{
    fn call(&self, call: Call) -> HandlerFuture {
        let parsed = match call.input {
            Input::Raw {
                webhook_id,
                webhook_timestamp,
                body,
            } => Delivery::<T>::parse(&webhook_id, webhook_timestamp, body),
            // Moved when `T` is `EventData`; parsed again from the raw body otherwise.
            Input::Parsed(delivery) => delivery.into_payload::<T>(),
        };
        match parsed {
            Ok(delivery) => {
                let mut event = Event::from_delivery(delivery).with_attempt(call.attempt);
                event.received_at_ms = call.received_at_ms;
                event.ordering_key = call.ordering_key;
                event.stale = call.stale;
                self.handler.call(event)
            }
            Err(err) => Box::pin(std::future::ready(Err(HandlerError::invalid_data(err)))),
        }
    }
}
