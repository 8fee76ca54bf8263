//! Event time and order: which entity an event is about (its ordering key), and the inline
//! router's best-effort record of the newest event processed per key.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    marker::PhantomData,
    num::NonZeroUsize,
    sync::{Arc, Mutex},
};

use bytes::Bytes;

use super::Event;
use crate::{
    Delivery, EventGroup, EventPayload, EventType, NpnActivated, NpnDeactivated,
    handoff::ReceivedDelivery,
};

/// Which events a rule of the router concerns: one type, or a portal group (`contract.*`,
/// documented types and future ones alike).
///
/// ```
/// use agentsync_webhooks_core::{EventGroup, EventType, route::Selector};
///
/// assert_eq!(Selector::from(EventType::ContractUpdated), Selector::Type(EventType::ContractUpdated));
/// assert_eq!(Selector::from(EventGroup::Contract), Selector::Group(EventGroup::Contract));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Selector {
    /// One documented type.
    Type(EventType),
    /// Every type of a group that has no rule of its own type.
    Group(EventGroup),
}

impl From<EventType> for Selector {
    fn from(event_type: EventType) -> Self {
        Self::Type(event_type)
    }
}

impl From<EventGroup> for Selector {
    fn from(group: EventGroup) -> Self {
        Self::Group(group)
    }
}

/// What an engine keeps of a keyed event: its ordering key and when it occurred.
///
/// ```
/// use agentsync_webhooks_core::{EventType, event::samples, handoff::ReceivedDelivery, route::EventRouter};
///
/// let stored = ReceivedDelivery {
///     webhook_id: "msg_1".into(),
///     event_type: "producersync.npn.activated".into(),
///     webhook_timestamp: 1_700_000_000,
///     signature: "v1,...".into(),
///     received_at_ms: 1_700_000_000_123,
///     body: samples::example_body(EventType::ProducerSyncNpnActivated, "whe_1", 1_700_000_000).into(),
/// };
/// // The defaults key `producersync.npn.*` by NPN.
/// let order = EventRouter::new().ordering().order_of(&stored).expect("keyed");
/// assert_eq!(order.key, "npn:19370865");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventOrder {
    /// The entity the event is about: the default NPN rules give `npn:<npn>`; a key of
    /// [`EventRouter::ordered_by`](super::EventRouter::ordered_by) is used as returned.
    pub key: String,
    /// When it occurred (the envelope's `timestamp`, or the stand-in), ms since the epoch.
    pub occurred_at_ms: i64,
}

/// A key function with its payload type erased.
trait KeyFn: Send + Sync + 'static {
    fn key(&self, webhook_id: &str, webhook_timestamp: i64, body: &Bytes) -> Option<EventOrder>;
}

/// Marker for the label of a key: the default NPN keys are `npn:<npn>`; a user's key is used
/// as returned.
#[derive(Debug, Clone, Copy)]
pub(super) enum KeyKind {
    Npn,
    User,
}

struct Typed<F, T> {
    key: F,
    kind: KeyKind,
    _data: PhantomData<fn() -> T>,
}

impl<F, T> KeyFn for Typed<F, T>
where
    F: Fn(&Event<T>) -> Option<String> + Send + Sync + 'static,
    T: EventPayload + Send + 'static,
{
    fn key(&self, webhook_id: &str, webhook_timestamp: i64, body: &Bytes) -> Option<EventOrder> {
        // A body that does not fit `T` has no key here; its handler reports the mismatch.
        let delivery = Delivery::<T>::parse(webhook_id, webhook_timestamp, body.clone()).ok()?;
        let event = Event::from_delivery(delivery);
        let key = (self.key)(&event)?;
        let key = match self.kind {
            KeyKind::Npn => format!("npn:{key}"),
            KeyKind::User => key,
        };
        Some(EventOrder {
            key,
            occurred_at_ms: event.timestamp.timestamp_millis(),
        })
    }
}

#[derive(Clone)]
struct Rules {
    by_type: HashMap<EventType, Arc<dyn KeyFn>>,
    by_group: HashMap<EventGroup, Arc<dyn KeyFn>>,
    stale_types: HashSet<EventType>,
    stale_groups: HashSet<EventGroup>,
}

impl Default for Rules {
    /// The documented defaults: `producersync.npn.activated` and `.deactivated` keyed by their
    /// NPN (`npn:<npn>`, one key for both, so that they are ordered together).
    fn default() -> Self {
        let activated: Arc<dyn KeyFn> = Arc::new(Typed {
            key: |e: &Event<NpnActivated>| Some(e.data.npn.clone()),
            kind: KeyKind::Npn,
            _data: PhantomData,
        });
        let deactivated: Arc<dyn KeyFn> = Arc::new(Typed {
            key: |e: &Event<NpnDeactivated>| Some(e.data.npn.clone()),
            kind: KeyKind::Npn,
            _data: PhantomData,
        });
        Self {
            by_type: HashMap::from([
                (EventType::ProducerSyncNpnActivated, activated),
                (EventType::ProducerSyncNpnDeactivated, deactivated),
            ]),
            by_group: HashMap::new(),
            stale_types: HashSet::new(),
            stale_groups: HashSet::new(),
        }
    }
}

/// The router's ordering rules: which events have a key, and which handlers take stale
/// events. Cheap to clone; [`EventRouter::ordering`](super::EventRouter::ordering) gives it to
/// a queue so that the key is stored with each delivery (the claim needs it).
#[derive(Clone, Default)]
pub struct Ordering {
    rules: Arc<Rules>,
}

impl Ordering {
    fn change(&mut self, change: impl FnOnce(&mut Rules)) {
        change(Arc::make_mut(&mut self.rules));
    }

    pub(super) fn set_key<T, F>(&mut self, selector: Selector, key: F)
    where
        F: Fn(&Event<T>) -> Option<String> + Send + Sync + 'static,
        T: EventPayload + Send + 'static,
    {
        let key: Arc<dyn KeyFn> = Arc::new(Typed {
            key,
            kind: KeyKind::User,
            _data: PhantomData,
        });
        self.change(|rules| match selector {
            Selector::Type(t) => {
                rules.by_type.insert(t, key);
            }
            Selector::Group(g) => {
                rules.by_group.insert(g, key);
            }
        });
    }

    pub(super) fn remove_key(&mut self, selector: Selector) {
        self.change(|rules| match selector {
            Selector::Type(t) => {
                rules.by_type.remove(&t);
            }
            Selector::Group(g) => {
                rules.by_group.remove(&g);
            }
        });
    }

    pub(super) fn set_stale(&mut self, selector: Selector) {
        self.change(|rules| match selector {
            Selector::Type(t) => {
                rules.stale_types.insert(t);
            }
            Selector::Group(g) => {
                rules.stale_groups.insert(g);
            }
        });
    }

    fn rule(&self, event_type: &str) -> Option<&Arc<dyn KeyFn>> {
        let rules = &*self.rules;
        if rules.by_type.is_empty() && rules.by_group.is_empty() {
            return None;
        }
        if let Ok(t) = event_type.parse::<EventType>()
            && let Some(rule) = rules.by_type.get(&t)
        {
            return Some(rule);
        }
        EventGroup::of(event_type).and_then(|g| rules.by_group.get(&g))
    }

    /// Whether events of `event_type` have a key rule (their body is parsed to find the key).
    pub fn is_keyed(&self, event_type: &str) -> bool {
        self.rule(event_type).is_some()
    }

    /// The ordering key and occurred-at of a stored delivery, or `None` when its type has no
    /// key rule or the rule gives no key. Parses the body only for a keyed type.
    pub fn order_of(&self, delivery: &ReceivedDelivery) -> Option<EventOrder> {
        self.order_of_body(
            &delivery.event_type,
            &delivery.webhook_id,
            delivery.webhook_timestamp,
            &delivery.body,
        )
    }

    pub(super) fn order_of_body(
        &self,
        event_type: &str,
        webhook_id: &str,
        webhook_timestamp: i64,
        body: &Bytes,
    ) -> Option<EventOrder> {
        self.rule(event_type)?
            .key(webhook_id, webhook_timestamp, body)
    }

    /// Whether the handler of `event_type` opted in to run stale events (with
    /// [`Event::stale`] set) rather than have them recorded as stale and skipped.
    pub fn receives_stale(&self, event_type: &str) -> bool {
        let rules = &*self.rules;
        event_type
            .parse::<EventType>()
            .is_ok_and(|t| rules.stale_types.contains(&t))
            || EventGroup::of(event_type).is_some_and(|g| rules.stale_groups.contains(&g))
    }

    /// The selectors that have a key rule, sorted: to compare two orderings (the workers warn
    /// when the queue that stores deliveries knows other rules than their router).
    pub fn keyed(&self) -> Vec<Selector> {
        let mut keyed: Vec<Selector> = self
            .rules
            .by_type
            .keys()
            .copied()
            .map(Selector::Type)
            .chain(self.rules.by_group.keys().copied().map(Selector::Group))
            .collect();
        keyed.sort_by_key(|s| match s {
            Selector::Type(t) => (0, t.as_str()),
            Selector::Group(g) => (1, g.as_str()),
        });
        keyed
    }
}

impl fmt::Debug for Ordering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ordering")
            .field("keyed", &self.keyed())
            .finish_non_exhaustive()
    }
}

/// How many keys the inline router remembers (least recently used first out).
pub const INLINE_KEYS: usize = 100_000;

/// The inline router's record of the newest occurred-at processed per key: in memory, per
/// process, bounded, lost at a restart. Best effort: two deliveries of one key that arrive at
/// the same time both run (one-at-a-time is the queue's guarantee).
pub(super) struct Newest {
    keys: Mutex<lru::LruCache<String, i64>>,
}

impl Default for Newest {
    fn default() -> Self {
        Self {
            keys: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(INLINE_KEYS).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }
}

impl Newest {
    pub(super) fn get(&self, key: &str) -> Option<i64> {
        self.keys.lock().ok()?.get(key).copied()
    }

    pub(super) fn raise(&self, key: &str, occurred_at_ms: i64) {
        if let Ok(mut keys) = self.keys.lock() {
            match keys.get_mut(key) {
                Some(newest) => *newest = (*newest).max(occurred_at_ms),
                None => {
                    keys.put(key.to_owned(), occurred_at_ms);
                }
            }
        }
    }
}
