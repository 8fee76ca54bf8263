//! Routing without a web framework: handlers registered by event type, by group and for unknown
//! types, each receiving typed data.
//!
//! The same [`EventRouter`] runs **inline** (a receiver calls
//! [`dispatch_delivery`](EventRouter::dispatch_delivery) with the verified delivery and answers
//! `Ok` with 200 and an error with 500) and **in the background** (the workers of
//! `agentsync-webhooks-queue` call [`dispatch`](EventRouter::dispatch) with each stored delivery,
//! retry a [retryable](HandlerError::retryable) error with backoff and bury a
//! [permanent](HandlerError::permanent) one in the dead letters).
//!
//! Which handler runs: a handler for the event's **type** beats one for its **group**, which
//! beats the **unknown** handler (types this version does not document). A documented event with
//! no handler is acknowledged (`Ok`, [`Routed::Acknowledged`], logged at debug), as the sender
//! expects a 2xx for every type the endpoint subscribed to. `data` that does not fit the selected
//! handler's type is a permanent error naming the serde path of the mismatch.
//!
//! ```
//! use agentsync_webhooks_core::{Delivery, EventData, EventGroup, EventType, UpdatesAvailable};
//! use agentsync_webhooks_core::event::samples;
//! use agentsync_webhooks_core::route::{Event, EventRouter, HandlerError, Routed};
//!
//! async fn pull_updates(event: Event<UpdatesAvailable>) -> Result<(), HandlerError> {
//!     println!("{}: pull updatedSince={}", event.webhook_id, event.data.updated_since());
//!     Ok(())
//! }
//!
//! async fn contracting(event: Event<EventData>) -> Result<(), HandlerError> {
//!     println!("{}: {}", event.webhook_id, event.event_type);
//!     Ok(())
//! }
//!
//! async fn log_unknown(event: Event<serde_json::Value>) -> Result<(), HandlerError> {
//!     println!("{}: unknown type {}", event.webhook_id, event.event_type);
//!     Ok(())
//! }
//!
//! let router = EventRouter::new()
//!     .on(EventType::ProducerSyncUpdatesAvailable, pull_updates)
//!     .on_group(EventGroup::Contract, contracting)
//!     .on_unknown(log_unknown);
//!
//! // Inline: a verified delivery, as a receiver has it.
//! let body = samples::example_body(EventType::ProducerSyncUpdatesAvailable, "whe_1", 1_700_000_000);
//! let delivery = Delivery::<EventData>::parse("msg_1", 1_700_000_000, body.into())?;
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! let routed = runtime.block_on(router.dispatch_delivery(delivery))?;
//! assert_eq!(routed, Routed::Type(EventType::ProducerSyncUpdatesAvailable));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod event;
mod handler;
mod order;

use std::{collections::HashMap, fmt, future::Future, pin::Pin, sync::Arc};

use bytes::Bytes;
use serde::Deserialize;

use self::handler::{Call, ErasedHandler, Input, Typed};
use self::order::Newest;
pub use self::{
    error::{HandlerError, HandlerErrorKind},
    event::Event,
    handler::{Handler, HandlerFuture},
    order::{EventOrder, INLINE_KEYS, Ordering, Selector},
};
use crate::{
    Delivery, EventData, EventGroup, EventPayload, EventType, WebhookError,
    handoff::ReceivedDelivery,
};

/// The future a dispatch returns: `Send` and `'static` (it owns everything it needs), so that it
/// can be spawned, raced against a shutdown or wrapped in a timeout.
pub type DispatchFuture = Pin<Box<dyn Future<Output = Result<Routed, HandlerError>> + Send>>;

/// Which handler processed an event, as a successful dispatch reports it.
///
/// ```
/// use agentsync_webhooks_core::{EventGroup, route::Routed};
///
/// assert_eq!(Routed::Group(EventGroup::Contract).to_string(), "group contract");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Routed {
    /// The handler registered for this type with [`EventRouter::on`].
    Type(EventType),
    /// The handler registered for the type's group with [`EventRouter::on_group`].
    Group(EventGroup),
    /// The handler registered with [`EventRouter::on_unknown`], for a type this version does not
    /// document.
    Unknown,
    /// No handler matched: the event was acknowledged without running anything.
    Acknowledged,
    /// The event is older than the newest event of its ordering key already processed, and its
    /// handler did not opt in to stale events: recorded as stale, not run.
    Stale,
}

impl fmt::Display for Routed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Type(t) => write!(f, "type {t}"),
            Self::Group(g) => write!(f, "group {g}"),
            Self::Unknown => f.write_str("unknown"),
            Self::Acknowledged => f.write_str("acknowledged"),
            Self::Stale => f.write_str("stale"),
        }
    }
}

type SharedHandler = Arc<dyn ErasedHandler>;

#[derive(Clone, Default)]
struct Routes {
    by_type: HashMap<EventType, SharedHandler>,
    by_group: HashMap<EventGroup, SharedHandler>,
    unknown: Option<SharedHandler>,
}

/// Handlers by event type, by group and for unknown types; see the [module docs](self).
///
/// Cheap to clone (the routes are shared behind an `Arc`), `Send + Sync`, so one router serves a
/// receiver and any number of workers. Registering a handler for a type, group or the unknown
/// slot that already has one replaces it.
///
/// ```
/// use agentsync_webhooks_core::{EventType, NpnActivated, route::{Event, EventRouter, HandlerError}};
///
/// async fn activated(event: Event<NpnActivated>) -> Result<(), HandlerError> {
///     println!("start monitoring {}", event.data.npn);
///     Ok(())
/// }
///
/// let router = EventRouter::new().on(EventType::ProducerSyncNpnActivated, activated);
/// let for_workers = router.clone(); // shares the same routes
/// assert!(router.handles("producersync.npn.activated"));
/// assert!(!for_workers.handles("producersync.npn.deactivated"));
/// ```
#[derive(Clone, Default)]
pub struct EventRouter {
    routes: Arc<Routes>,
    ordering: Ordering,
    /// The inline dispatches' record of the newest event per key (best effort, see
    /// [`ordered_by`](Self::ordered_by)).
    newest: Arc<Newest>,
}

/// What the workers know of a claimed job beyond the stored delivery: its attempt, and, for a
/// keyed event, its key and whether it is stale (the engine's newest occurred-at of the key is
/// newer).
///
/// ```
/// use agentsync_webhooks_core::route::JobContext;
///
/// let context = JobContext::attempt(2).with_key("npn:0012345", false);
/// assert_eq!((context.attempt, context.ordering_key.as_deref(), context.stale), (2, Some("npn:0012345"), false));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobContext {
    /// 1 for the first run.
    pub attempt: u32,
    /// The event's ordering key, as stored with it.
    pub ordering_key: Option<String>,
    /// Older than the newest event of its key already processed.
    pub stale: bool,
}

impl JobContext {
    /// Attempt `attempt` of an event without a key.
    pub fn attempt(attempt: u32) -> Self {
        Self {
            attempt,
            ..Self::default()
        }
    }

    /// The same, for an event of `key`, stale or not.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>, stale: bool) -> Self {
        self.ordering_key = Some(key.into());
        self.stale = stale;
        self
    }
}

impl EventRouter {
    /// A router with no handlers: every event is acknowledged.
    ///
    /// ```
    /// use agentsync_webhooks_core::route::EventRouter;
    ///
    /// assert!(!EventRouter::new().handles("contract.updated"));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    fn with_routes(mut self, change: impl FnOnce(&mut Routes)) -> Self {
        change(Arc::make_mut(&mut self.routes));
        self
    }

    /// Runs `handler` for events of `event_type`, with `data` parsed as `T`.
    ///
    /// ```
    /// use agentsync_webhooks_core::{EventType, UpdatesAvailable, route::{Event, EventRouter, HandlerError}};
    ///
    /// async fn pull_updates(event: Event<UpdatesAvailable>) -> Result<(), HandlerError> {
    ///     println!("pull updatedSince={}", event.data.updated_since());
    ///     Ok(())
    /// }
    ///
    /// let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, pull_updates);
    /// assert!(router.handles("producersync.updates_available"));
    /// ```
    #[must_use]
    pub fn on<T, H>(self, event_type: EventType, handler: H) -> Self
    where
        H: Handler<T>,
        T: EventPayload + Send + 'static,
    {
        let handler: SharedHandler = Arc::new(Typed::<H, T>::new(handler));
        self.with_routes(|routes| {
            routes.by_type.insert(event_type, handler);
        })
    }

    /// Runs `handler` for events of `group` that have no handler of their own type, including
    /// types of the group that this version does not document yet (`contract.new_thing`).
    ///
    /// ```
    /// use agentsync_webhooks_core::{EventGroup, ObjectData, route::{Event, EventRouter, HandlerError}};
    ///
    /// async fn contracting(event: Event<ObjectData>) -> Result<(), HandlerError> {
    ///     println!("{} for npn {:?}", event.event_type, event.data.npn());
    ///     Ok(())
    /// }
    ///
    /// let router = EventRouter::new().on_group(EventGroup::Contract, contracting);
    /// assert!(router.handles("contract.packet.submitted"));
    /// assert!(router.handles("contract.new_thing"));
    /// ```
    #[must_use]
    pub fn on_group<T, H>(self, group: EventGroup, handler: H) -> Self
    where
        H: Handler<T>,
        T: EventPayload + Send + 'static,
    {
        let handler: SharedHandler = Arc::new(Typed::<H, T>::new(handler));
        self.with_routes(|routes| {
            routes.by_group.insert(group, handler);
        })
    }

    /// Runs `handler` for types this version does not document (and that no group handler took):
    /// new AgentSync types, or the sender's test events. Take `Event<serde_json::Value>` (or
    /// `Event<EventData>`, whose data is then [`EventData::Unknown`]).
    ///
    /// ```
    /// use agentsync_webhooks_core::route::{Event, EventRouter, HandlerError};
    ///
    /// async fn log_unknown(event: Event<serde_json::Value>) -> Result<(), HandlerError> {
    ///     println!("unknown type {}: {}", event.event_type, event.data);
    ///     Ok(())
    /// }
    ///
    /// let router = EventRouter::new().on_unknown(log_unknown);
    /// assert!(router.handles("billing.invoice.paid"));
    /// assert!(!router.handles("contract.updated")); // documented, so acknowledged
    /// ```
    #[must_use]
    pub fn on_unknown<T, H>(self, handler: H) -> Self
    where
        H: Handler<T>,
        T: EventPayload + Send + 'static,
    {
        let handler: SharedHandler = Arc::new(Typed::<H, T>::new(handler));
        self.with_routes(|routes| routes.unknown = Some(handler))
    }

    /// Names the entity events of `selector` (a type or a group) are about: `key` returns its
    /// ordering key from the typed event (an NPN, a contract id), or `None` for an event
    /// without one. A type's rule beats its group's.
    ///
    /// For a keyed event, the queue keeps the newest occurred-at (the envelope's `timestamp`)
    /// processed per key, written in the same step as the completion: an older event is
    /// **stale**, recorded as done with outcome `stale` and not run (unless its handler
    /// [`receive_stale`](Self::receive_stale)); equal timestamps are not stale. Workers never
    /// run two events of one key at once, and run a key's waiting events in occurred-at order.
    /// Events without a key run as before, fully concurrent. Keys are one namespace: types
    /// whose keys share values are ordered together.
    ///
    /// **Defaults**: `producersync.npn.activated` and `producersync.npn.deactivated` are keyed
    /// by their NPN (`npn:<npn>`, one key for both). Nothing is assumed for types whose schema
    /// is not published (`contract.*`, `id.producer.*`): give their key here, the
    /// [`ObjectData`](crate::ObjectData) accessors help. [`unordered`](Self::unordered) removes
    /// a rule.
    ///
    /// The queue that **stores** deliveries needs the rules (the claim skips by key), so give it
    /// [`ordering`](Self::ordering) (`Queue::with_ordering`); the defaults need nothing. Inline
    /// (no queue), staleness is checked against an in-memory record of the newest occurred-at
    /// per key ([`INLINE_KEYS`] keys, per process, lost at a restart): best effort.
    ///
    /// ```
    /// use agentsync_webhooks_core::{EventGroup, ObjectData, route::{Event, EventRouter}};
    ///
    /// let router = EventRouter::new()
    ///     .ordered_by(EventGroup::Contract, |event: &Event<ObjectData>| event.data.npn());
    /// assert!(router.ordering().is_keyed("contract.packet.submitted"));
    /// assert!(router.ordering().is_keyed("producersync.npn.activated")); // the default
    /// assert!(!router.ordering().is_keyed("producersync.updates_available"));
    /// ```
    #[must_use]
    pub fn ordered_by<T, F>(mut self, selector: impl Into<Selector>, key: F) -> Self
    where
        F: Fn(&Event<T>) -> Option<String> + Send + Sync + 'static,
        T: EventPayload + Send + 'static,
    {
        self.ordering.set_key(selector.into(), key);
        self
    }

    /// Removes the ordering rule of `selector` (a default included): its events run fully
    /// concurrent and are never stale.
    ///
    /// ```
    /// use agentsync_webhooks_core::{EventType, route::EventRouter};
    ///
    /// let router = EventRouter::new().unordered(EventType::ProducerSyncNpnDeactivated);
    /// assert!(!router.ordering().is_keyed("producersync.npn.deactivated"));
    /// ```
    #[must_use]
    pub fn unordered(mut self, selector: impl Into<Selector>) -> Self {
        self.ordering.remove_key(selector.into());
        self
    }

    /// Runs stale events of `selector` too, with [`Event::stale`] set, instead of recording
    /// them as stale without running them.
    ///
    /// ```
    /// use agentsync_webhooks_core::{EventType, route::EventRouter};
    ///
    /// let router = EventRouter::new().receive_stale(EventType::ProducerSyncNpnDeactivated);
    /// assert!(router.ordering().receives_stale("producersync.npn.deactivated"));
    /// assert!(!router.ordering().receives_stale("producersync.npn.activated"));
    /// ```
    #[must_use]
    pub fn receive_stale(mut self, selector: impl Into<Selector>) -> Self {
        self.ordering.set_stale(selector.into());
        self
    }

    /// The ordering rules, for the queue that stores deliveries.
    pub fn ordering(&self) -> &Ordering {
        &self.ordering
    }

    /// Whether an event of `event_type` would run a handler (rather than be acknowledged).
    ///
    /// ```
    /// use agentsync_webhooks_core::route::EventRouter;
    ///
    /// assert!(!EventRouter::new().handles("producersync.updates_available"));
    /// ```
    pub fn handles(&self, event_type: &str) -> bool {
        self.select(event_type).0.is_some()
    }

    /// Type beats group beats unknown; nothing matched is [`Routed::Acknowledged`].
    fn select(&self, event_type: &str) -> (Option<&SharedHandler>, Routed) {
        let known = event_type.parse::<EventType>().ok();
        if let Some(handler) = known.and_then(|t| self.routes.by_type.get(&t)) {
            return (Some(handler), known.map_or(Routed::Unknown, Routed::Type));
        }
        if let Some(group) = EventGroup::of(event_type)
            && let Some(handler) = self.routes.by_group.get(&group)
        {
            return (Some(handler), Routed::Group(group));
        }
        match (&self.routes.unknown, known) {
            (Some(handler), None) => (Some(handler), Routed::Unknown),
            _ => (None, Routed::Acknowledged),
        }
    }

    fn run(&self, event_type: &str, webhook_id: &str, call: Call) -> DispatchFuture {
        let (handler, routed) = self.select(event_type);
        match handler {
            Some(handler) => {
                let running = handler.call(call);
                Box::pin(async move { running.await.map(|()| routed) })
            }
            None => {
                tracing::debug!(
                    webhook_id,
                    event_type,
                    "no handler for this event type; acknowledged"
                );
                Box::pin(std::future::ready(Ok(Routed::Acknowledged)))
            }
        }
    }

    /// Runs the handler for a stored delivery (what the workers call, with the claim's attempt
    /// number; 1 for a first run).
    ///
    /// The handler is chosen by the stored `event_type`; only its own `data` type is parsed, so
    /// an acknowledged event costs no parsing at all.
    ///
    /// ```
    /// use agentsync_webhooks_core::{EventType, NpnActivated, event::samples, handoff::ReceivedDelivery};
    /// use agentsync_webhooks_core::route::{Event, EventRouter, HandlerError, Routed};
    ///
    /// async fn activated(event: Event<NpnActivated>) -> Result<(), HandlerError> {
    ///     assert_eq!(event.attempt, 2);
    ///     Ok(())
    /// }
    ///
    /// let router = EventRouter::new().on(EventType::ProducerSyncNpnActivated, activated);
    /// let stored = ReceivedDelivery {
    ///     webhook_id: "msg_1".into(),
    ///     event_type: "producersync.npn.activated".into(),
    ///     webhook_timestamp: 1_700_000_000,
    ///     signature: "v1,...".into(),
    ///     received_at_ms: 1_700_000_000_123,
    ///     body: samples::example_body(EventType::ProducerSyncNpnActivated, "whe_1", 1_700_000_000).into(),
    /// };
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let routed = runtime.block_on(router.dispatch(&stored, 2))?;
    /// assert_eq!(routed, Routed::Type(EventType::ProducerSyncNpnActivated));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dispatch(&self, delivery: &ReceivedDelivery, attempt: u32) -> DispatchFuture {
        self.dispatch_with(delivery, JobContext::attempt(attempt))
    }

    /// [`dispatch`](Self::dispatch) with what the queue knows of the job: its ordering key and
    /// whether it is stale. A stale event runs only when its handler opted in
    /// ([`receive_stale`](Self::receive_stale)), with [`Event::stale`] set; otherwise the
    /// answer is [`Routed::Stale`] and nothing runs.
    pub fn dispatch_with(&self, delivery: &ReceivedDelivery, job: JobContext) -> DispatchFuture {
        if job.stale && !self.ordering.receives_stale(&delivery.event_type) {
            return Box::pin(std::future::ready(Ok(Routed::Stale)));
        }
        let call = Call {
            input: Input::Raw {
                webhook_id: delivery.webhook_id.clone(),
                webhook_timestamp: delivery.webhook_timestamp,
                body: delivery.body.clone(),
            },
            attempt: job.attempt,
            received_at_ms: Some(delivery.received_at_ms),
            ordering_key: job.ordering_key,
            stale: job.stale,
        };
        self.run(&delivery.event_type, &delivery.webhook_id, call)
    }

    /// An inline dispatch of a keyed event, checked against the in-memory newest per key.
    fn run_inline(
        &self,
        event_type: &str,
        webhook_id: &str,
        webhook_timestamp: i64,
        mut call: Call,
        body: &Bytes,
    ) -> DispatchFuture {
        let Some(order) =
            self.ordering
                .order_of_body(event_type, webhook_id, webhook_timestamp, body)
        else {
            return self.run(event_type, webhook_id, call);
        };
        let stale = self
            .newest
            .get(&order.key)
            .is_some_and(|newest| order.occurred_at_ms < newest);
        if stale && !self.ordering.receives_stale(event_type) {
            tracing::info!(
                webhook_id,
                event_type,
                ordering_key = %order.key,
                occurred_at_ms = order.occurred_at_ms,
                "stale webhook event not run: a newer event of its key was processed"
            );
            crate::adapter::metrics::stale(event_type.parse().ok());
            return Box::pin(std::future::ready(Ok(Routed::Stale)));
        }
        call.ordering_key = Some(order.key.clone());
        call.stale = stale;
        let running = self.run(event_type, webhook_id, call);
        let newest = self.newest.clone();
        Box::pin(async move {
            let routed = running.await?;
            newest.raise(&order.key, order.occurred_at_ms);
            Ok(routed)
        })
    }

    /// Runs the handler for a delivery a receiver verified and parsed, as attempt 1: the inline
    /// path, where `Ok` is answered 200 and an error 500 (or, for
    /// [`webhook_error`](HandlerError::webhook_error), that error's status).
    ///
    /// A handler taking `Event<EventData>` gets the parsed data moved in; any other type is
    /// parsed from the raw body.
    ///
    /// ```
    /// use agentsync_webhooks_core::{Delivery, EventData, EventType, event::samples};
    /// use agentsync_webhooks_core::route::{EventRouter, Routed};
    ///
    /// let body = samples::example_body(EventType::ContractUpdated, "whe_1", 1_700_000_000);
    /// let delivery = Delivery::<EventData>::parse("msg_1", 1_700_000_000, body.into())?;
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// // No handler for contract.updated: acknowledged.
    /// assert_eq!(runtime.block_on(EventRouter::new().dispatch_delivery(delivery))?, Routed::Acknowledged);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dispatch_delivery(&self, delivery: Delivery<EventData>) -> DispatchFuture {
        let event_type = delivery.event.event_type.clone();
        let webhook_id = delivery.webhook_id.clone();
        let (webhook_timestamp, body) = (delivery.webhook_timestamp, delivery.raw_body.clone());
        let call = Call {
            input: Input::Parsed(delivery),
            attempt: 1,
            received_at_ms: None,
            ordering_key: None,
            stale: false,
        };
        self.run_inline(&event_type, &webhook_id, webhook_timestamp, call, &body)
    }

    /// Runs the handler for an authenticated body that was not parsed yet, as attempt 1 (the
    /// inline path for a receiver that verified only). A body that is not a JSON envelope with
    /// a `type` is a permanent [`HandlerError`] with code `invalid_payload`.
    ///
    /// ```
    /// use agentsync_webhooks_core::{EventType, event::samples, route::{EventRouter, Routed}};
    ///
    /// let body = samples::example_body(EventType::ContractUpdated, "whe_1", 1_700_000_000);
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let routed = runtime.block_on(EventRouter::new().dispatch_raw("msg_1", 1_700_000_000, body.into()))?;
    /// assert_eq!(routed, Routed::Acknowledged);
    ///
    /// let refused = runtime.block_on(EventRouter::new().dispatch_raw("msg_2", 1_700_000_000, "[]".into()));
    /// assert_eq!(refused.map_err(|e| e.code()), Err("invalid_payload"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dispatch_raw(
        &self,
        webhook_id: &str,
        webhook_timestamp: i64,
        body: Bytes,
    ) -> DispatchFuture {
        let event_type = match peek_type(&body) {
            Ok(event_type) => event_type,
            Err(err) => return Box::pin(std::future::ready(Err(HandlerError::invalid_data(err)))),
        };
        let call = Call {
            input: Input::Raw {
                webhook_id: webhook_id.to_owned(),
                webhook_timestamp,
                body: body.clone(),
            },
            attempt: 1,
            received_at_ms: None,
            ordering_key: None,
            stale: false,
        };
        self.run_inline(&event_type, webhook_id, webhook_timestamp, call, &body)
    }
}

impl fmt::Debug for EventRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<_> = self.routes.by_type.keys().map(|t| t.as_str()).collect();
        types.sort_unstable();
        let mut groups: Vec<_> = self.routes.by_group.keys().map(|g| g.as_str()).collect();
        groups.sort_unstable();
        f.debug_struct("EventRouter")
            .field("types", &types)
            .field("groups", &groups)
            .field("unknown", &self.routes.unknown.is_some())
            .field("ordering", &self.ordering)
            .finish()
    }
}

/// The envelope's `type`, without parsing the rest into values.
fn peek_type(body: &[u8]) -> Result<String, WebhookError> {
    #[derive(Deserialize)]
    struct TypeOnly<'a> {
        #[serde(rename = "type", borrow)]
        event_type: std::borrow::Cow<'a, str>,
    }
    let invalid = |detail: String| WebhookError::InvalidPayload { detail };
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(invalid("not a JSON object".into()));
    }
    serde_json::from_slice::<TypeOnly<'_>>(body)
        .map(|envelope| envelope.event_type.into_owned())
        .map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests;
