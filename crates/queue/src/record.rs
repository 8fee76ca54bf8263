//! The delivery record: every stored delivery with its state and history, searchable, for the
//! operators who troubleshoot and replay ("log all receipts ... for troubleshooting and
//! replay", the AgentSync docs ask). Every engine keeps it; the [`Backend`](crate::Backend)
//! methods that read it are paged by an opaque [`Cursor`] over an index, newest first.

use std::{collections::BTreeMap, fmt, str::FromStr, time::Duration};

use agentsync_webhooks_core::{EventGroup, handoff::ReceivedDelivery};

/// The longest error text kept per attempt; a longer one is cut at a character boundary.
pub const MAX_ERROR_LEN: usize = 4 * 1024;
/// The most history entries kept per delivery: the first, and the latest after it.
pub const MAX_HISTORY: usize = 25;
/// The most deliveries one [`Backend::replay_matching`](crate::Backend::replay_matching) call
/// replays.
pub const MAX_BULK: usize = 1_000;

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryState {
    /// Stored, not run yet (or given back by a shutdown or a lost claim): due now or soon.
    Waiting,
    /// Claimed by a worker whose handler runs.
    Running,
    /// Failed at least once, waiting for its next attempt.
    Retrying,
    /// Processed; kept for the record's retention.
    Done,
    /// In the dead letters: failed permanently, too often, or discarded by an operator.
    Dead,
}

impl DeliveryState {
    /// Every state, in the order of a delivery's life.
    pub const ALL: [DeliveryState; 5] = [
        Self::Waiting,
        Self::Running,
        Self::Retrying,
        Self::Done,
        Self::Dead,
    ];

    /// The state's name, as engines store it and the CLI and dashboard show it.
    ///
    /// ```
    /// use agentsync_webhooks_queue::record::DeliveryState;
    ///
    /// assert_eq!(DeliveryState::Retrying.as_str(), "retrying");
    /// assert_eq!("dead".parse::<DeliveryState>(), Ok(DeliveryState::Dead));
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Done => "done",
            Self::Dead => "dead",
        }
    }

    /// Whether an operator may replay a delivery in this state (it is not queued or running).
    pub const fn replayable(self) -> bool {
        matches!(self, Self::Done | Self::Dead)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is none of [`DeliveryState::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown delivery state `{0}`: expected waiting, running, retrying, done or dead")]
pub struct UnknownState(pub String);

impl FromStr for DeliveryState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// Which event types a [`DeliveryFilter`] keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeFilter {
    /// One type, exactly as sent (known or not).
    Type(String),
    /// Every type of a portal group (`contract.*`, documented or not).
    Group(EventGroup),
}

impl TypeFilter {
    /// A group name (`producersync`, `contract`, `id.producer`) is that group; anything else
    /// is one type.
    ///
    /// ```
    /// use agentsync_webhooks_core::EventGroup;
    /// use agentsync_webhooks_queue::record::TypeFilter;
    ///
    /// assert_eq!(TypeFilter::parse("contract"), TypeFilter::Group(EventGroup::Contract));
    /// assert_eq!(
    ///     TypeFilter::parse("contract.signed"),
    ///     TypeFilter::Type("contract.signed".into())
    /// );
    /// ```
    pub fn parse(value: &str) -> Self {
        EventGroup::ALL
            .iter()
            .copied()
            .find(|group| group.as_str() == value)
            .map_or_else(|| Self::Type(value.to_owned()), Self::Group)
    }
}

/// Which `webhook-id`s a [`DeliveryFilter`] keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdFilter {
    /// This id only.
    Exact(String),
    /// Ids that start with this text.
    Prefix(String),
}

/// Which deliveries a query or a bulk action concerns. Empty, it keeps every delivery.
///
/// ```
/// use agentsync_webhooks_queue::record::{DeliveryFilter, DeliveryState};
///
/// let hour_ago = agentsync_webhooks_core::handoff::now_ms() - 3_600_000;
/// let failed_lately = DeliveryFilter::new()
///     .states([DeliveryState::Retrying, DeliveryState::Dead])
///     .event_type("producersync.updates_available")
///     .received_since(hour_ago);
/// # let _ = failed_lately;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// The states kept (any, if empty).
    pub states: Vec<DeliveryState>,
    /// The types kept (any, if `None`).
    pub event_type: Option<TypeFilter>,
    /// Received at or after this time (ms since the epoch).
    pub received_since_ms: Option<i64>,
    /// Received before this time (ms since the epoch).
    pub received_until_ms: Option<i64>,
    /// The ids kept.
    pub webhook_id: Option<IdFilter>,
    /// Only deliveries received at least this long (ms) after their event occurred
    /// ([`DeliverySummary::delay_ms`]); a delivery with no occurred-at on record is left out.
    pub min_delay_ms: Option<i64>,
}

impl DeliveryFilter {
    /// Every delivery.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only deliveries in `state` (added to the states already kept).
    pub fn state(mut self, state: DeliveryState) -> Self {
        if !self.states.contains(&state) {
            self.states.push(state);
        }
        self
    }

    /// Only deliveries in one of `states`.
    pub fn states(self, states: impl IntoIterator<Item = DeliveryState>) -> Self {
        states.into_iter().fold(self, Self::state)
    }

    /// Only deliveries of this type, or of this group when it names one
    /// ([`TypeFilter::parse`]).
    pub fn event_type(mut self, type_or_group: &str) -> Self {
        self.event_type = Some(TypeFilter::parse(type_or_group));
        self
    }

    /// Only deliveries of a type in `group`.
    pub fn group(mut self, group: EventGroup) -> Self {
        self.event_type = Some(TypeFilter::Group(group));
        self
    }

    /// Only deliveries received at or after `ms` (ms since the epoch).
    pub fn received_since(mut self, ms: i64) -> Self {
        self.received_since_ms = Some(ms);
        self
    }

    /// Only deliveries received before `ms` (ms since the epoch).
    pub fn received_until(mut self, ms: i64) -> Self {
        self.received_until_ms = Some(ms);
        self
    }

    /// Only the delivery with this `webhook-id`.
    pub fn id(mut self, webhook_id: impl Into<String>) -> Self {
        self.webhook_id = Some(IdFilter::Exact(webhook_id.into()));
        self
    }

    /// Only deliveries whose `webhook-id` starts with `prefix`.
    pub fn id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.webhook_id = Some(IdFilter::Prefix(prefix.into()));
        self
    }

    /// Only deliveries received at least `delay` after their event occurred: the late ones
    /// (a sender's retries, a backlog). Deliveries stored without an occurred-at (before the
    /// record kept one for every delivery) are left out.
    ///
    /// No index holds the delay: the engines walk the index the rest of the filter selects
    /// (received-at order, newest first) and keep the late rows, so a page of rare late
    /// deliveries reads past the others to fill itself (on Redis, within the list's read
    /// budget, ending the page early with a cursor to go on from).
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentsync_webhooks_queue::record::DeliveryFilter;
    ///
    /// let late = DeliveryFilter::new().delayed_by_at_least(Duration::from_secs(15 * 60));
    /// assert_eq!(late.min_delay_ms, Some(900_000));
    /// ```
    pub fn delayed_by_at_least(mut self, delay: Duration) -> Self {
        self.min_delay_ms = Some(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        self
    }

    /// The states a query reads: the filter's, or every state.
    pub fn states_or_all(&self) -> Vec<DeliveryState> {
        if self.states.is_empty() {
            DeliveryState::ALL.to_vec()
        } else {
            let mut states = self.states.clone();
            states.sort();
            states.dedup();
            states
        }
    }

    /// Whether `summary` passes every part of the filter (for engines that filter in memory
    /// what an index narrowed down, and for tests).
    pub fn matches(&self, summary: &DeliverySummary) -> bool {
        (self.states.is_empty() || self.states.contains(&summary.state))
            && match &self.event_type {
                None => true,
                Some(TypeFilter::Type(t)) => summary.event_type == *t,
                Some(TypeFilter::Group(g)) => g.contains(&summary.event_type),
            }
            && self
                .received_since_ms
                .is_none_or(|since| summary.received_at_ms >= since)
            && self
                .received_until_ms
                .is_none_or(|until| summary.received_at_ms < until)
            && match &self.webhook_id {
                None => true,
                Some(IdFilter::Exact(id)) => summary.webhook_id == *id,
                Some(IdFilter::Prefix(prefix)) => summary.webhook_id.starts_with(prefix.as_str()),
            }
            && self
                .min_delay_ms
                .is_none_or(|min| summary.delay_ms().is_some_and(|delay| delay >= min))
    }
}

/// Where a page of [`Backend::list`](crate::Backend::list) ended: pass it back for the next
/// page (newest first). Opaque: its text form ([`Display`](fmt::Display), [`FromStr`]) goes in
/// URLs and command lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The last delivery's `received_at_ms`.
    pub(crate) received_at_ms: i64,
    /// The last delivery's `webhook-id`.
    pub(crate) webhook_id: String,
}

impl Cursor {
    /// The cursor after `summary`: the next page starts with what was received before it.
    pub fn after(summary: &DeliverySummary) -> Self {
        Self {
            received_at_ms: summary.received_at_ms,
            webhook_id: summary.webhook_id.clone(),
        }
    }

    /// Whether a delivery received at `received_at_ms` with `webhook_id` comes after this
    /// cursor, newest first.
    pub fn precedes(&self, received_at_ms: i64, webhook_id: &str) -> bool {
        (received_at_ms, webhook_id) < (self.received_at_ms, self.webhook_id.as_str())
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.", self.received_at_ms)?;
        for byte in self.webhook_id.bytes() {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A cursor text that no [`Cursor`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid page cursor: use the `next` cursor of the previous page, unchanged")]
pub struct InvalidCursor;

impl FromStr for Cursor {
    type Err = InvalidCursor;

    /// ```
    /// use agentsync_webhooks_queue::record::Cursor;
    ///
    /// assert!("not a cursor".parse::<Cursor>().is_err());
    /// let text = "1700000000123.6d73675f31";
    /// assert_eq!(text.parse::<Cursor>().map(|c| c.to_string()).as_deref(), Ok(text));
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, hex) = s.split_once('.').ok_or(InvalidCursor)?;
        let received_at_ms = ms.parse().map_err(|_| InvalidCursor)?;
        if hex.len() % 2 != 0 || hex.len() > 2 * 1024 {
            return Err(InvalidCursor);
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or(InvalidCursor)?;
        let webhook_id = String::from_utf8(bytes).map_err(|_| InvalidCursor)?;
        Ok(Self {
            received_at_ms,
            webhook_id,
        })
    }
}

/// One delivery in a list: what a table row shows, without the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySummary {
    /// `webhook-id`.
    pub webhook_id: String,
    /// The envelope's `type`, as sent.
    pub event_type: String,
    /// Where it is now.
    pub state: DeliveryState,
    /// When the port accepted it (ms since the epoch).
    pub received_at_ms: i64,
    /// Attempts counted since it was stored or last replayed.
    pub attempts: u32,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
    /// When it is due next (waiting or retrying), ms since the epoch.
    pub next_run_at_ms: Option<i64>,
    /// When its event occurred (the envelope's `timestamp`; for a body without one, its
    /// `webhook-timestamp` stands in, as in [`DeliveryRecord::event_time`]), ms since the
    /// epoch. Stored with every delivery, so that lists show and filter the delay without
    /// reading bodies; `None` for a delivery stored before the record kept it (only keyed
    /// deliveries had it then) and for a body that is not an envelope.
    pub occurred_at_ms: Option<i64>,
}

impl DeliverySummary {
    /// Received minus occurred, ms: how late the event arrived (negative when the sender's
    /// clock is ahead); `None` without an occurred-at.
    ///
    /// ```
    /// # use agentsync_webhooks_queue::record::{DeliveryState, DeliverySummary};
    /// let summary = DeliverySummary {
    ///     webhook_id: "msg_1".into(), event_type: "contract.updated".into(),
    ///     state: DeliveryState::Done, received_at_ms: 1_000_000, attempts: 1, last_error: None,
    ///     next_run_at_ms: None, occurred_at_ms: Some(400_000),
    /// };
    /// assert_eq!(summary.delay_ms(), Some(600_000));
    /// assert_eq!(summary.delay(), Some(std::time::Duration::from_secs(600)));
    /// ```
    pub fn delay_ms(&self) -> Option<i64> {
        self.occurred_at_ms
            .map(|occurred| self.received_at_ms.saturating_sub(occurred))
    }

    /// [`delay_ms`](Self::delay_ms) as a duration, what tables show; a sender's clock ahead
    /// of ours (a negative delay) is no delay.
    pub fn delay(&self) -> Option<Duration> {
        self.delay_ms()
            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
    }
}

/// One page of deliveries, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryPage {
    /// At most the asked-for number of deliveries.
    pub deliveries: Vec<DeliverySummary>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

impl DeliveryPage {
    /// The page from up to `limit + 1` candidates sorted newest first: the first `limit`, and
    /// a cursor when there were more.
    pub(crate) fn from_candidates(mut candidates: Vec<DeliverySummary>, limit: usize) -> Self {
        candidates.sort_by(|a, b| {
            (b.received_at_ms, &b.webhook_id).cmp(&(a.received_at_ms, &a.webhook_id))
        });
        candidates.dedup_by(|a, b| a.webhook_id == b.webhook_id);
        let more = candidates.len() > limit;
        candidates.truncate(limit);
        let next = if more {
            candidates.last().map(Cursor::after)
        } else {
            None
        };
        Self {
            deliveries: candidates,
            next,
        }
    }
}

/// How many deliveries match a filter, by state and by type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Deliveries per state (every state present, zero included).
    pub by_state: BTreeMap<DeliveryState, u64>,
    /// Deliveries per event type (only types that occur).
    pub by_type: BTreeMap<String, u64>,
}

impl DeliveryCounts {
    /// Every state at zero.
    pub fn empty() -> Self {
        Self {
            by_state: DeliveryState::ALL.into_iter().map(|s| (s, 0)).collect(),
            by_type: BTreeMap::new(),
        }
    }

    /// The deliveries counted, all states together.
    pub fn total(&self) -> u64 {
        self.by_state.values().sum()
    }

    /// The count in `state`.
    pub fn state(&self, state: DeliveryState) -> u64 {
        self.by_state.get(&state).copied().unwrap_or(0)
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    /// The handler succeeded: the delivery is done.
    Ok,
    /// The handler failed; the delivery will be retried.
    Retry,
    /// The handler failed permanently or for the last time: the delivery is dead.
    Dead,
    /// Given back unfinished at a shutdown; the attempt does not count.
    Released,
    /// Never reported back: its lease expired (the worker died or hung) and it was claimed again.
    LeaseExpired,
    /// Not run: the event is older than the newest event of its ordering key already
    /// processed. The delivery is done (state `done`), its handler never called.
    Stale,
}

impl AttemptOutcome {
    /// The outcome's name, as engines store it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Retry => "retry",
            Self::Dead => "dead",
            Self::Released => "released",
            Self::LeaseExpired => "lease_expired",
            Self::Stale => "stale",
        }
    }

    /// The outcome a stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Ok,
            Self::Retry,
            Self::Dead,
            Self::Released,
            Self::LeaseExpired,
            Self::Stale,
        ]
        .into_iter()
        .find(|outcome| outcome.as_str() == name)
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a delivery, in its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryEvent {
    /// A handler ran (or was claimed to run).
    Attempt {
        /// The attempt's number since the delivery was stored or last replayed.
        number: u32,
        /// How long it ran until settled (or until its lease ended), in ms.
        duration_ms: u64,
        /// How it ended.
        outcome: AttemptOutcome,
        /// Its error, at most [`MAX_ERROR_LEN`] bytes.
        error: Option<String>,
        /// The worker that ran it.
        worker: String,
    },
    /// An operator replayed it (`by`: the library call's label, `cli`, `dashboard`).
    Replayed {
        /// Who asked.
        by: String,
    },
    /// The sender sent it again while it was dead (a portal resend): stored again and run.
    Resent,
    /// An operator moved it to the dead letters before it ran again.
    Discarded {
        /// Who asked.
        by: String,
    },
    /// An operator forgot its id: the sender's next resend is processed as new.
    Forgotten {
        /// Who asked.
        by: String,
    },
}

impl HistoryEvent {
    /// The event's kind, as engines store it.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Attempt { .. } => "attempt",
            Self::Replayed { .. } => "replayed",
            Self::Resent => "resent",
            Self::Discarded { .. } => "discarded",
            Self::Forgotten { .. } => "forgotten",
        }
    }
}

/// One entry of a delivery's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// When it happened (an attempt: when it started), ms since the epoch.
    pub at_ms: i64,
    /// What happened.
    pub event: HistoryEvent,
}

/// One delivery with all that is kept of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The delivery as stored: raw body and the headers that verify it again.
    pub delivery: ReceivedDelivery,
    /// Where it is now.
    pub state: DeliveryState,
    /// Attempts counted since it was stored or last replayed.
    pub attempts: u32,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
    /// When it is due next (waiting or retrying).
    pub next_run_at_ms: Option<i64>,
    /// When it was done (done deliveries).
    pub done_at_ms: Option<i64>,
    /// When it died (dead deliveries).
    pub died_at_ms: Option<i64>,
    /// The worker that holds it (running deliveries).
    pub worker: Option<String>,
    /// What happened to it, oldest first: the first entry and the latest ones, at most
    /// [`MAX_HISTORY`] in all.
    pub history: Vec<HistoryEntry>,
    /// How many entries were dropped between the first and the latest kept.
    pub history_dropped: u64,
}

/// When a stored event occurred and how late it was received, as
/// [`DeliveryRecord::event_time`] reads them from its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTime {
    /// When it occurred (the envelope's `timestamp`, or the stand-in), ms since the epoch.
    pub occurred_at_ms: i64,
    /// Whether the envelope had no `timestamp` and the `webhook-timestamp` stands in for it.
    pub stand_in: bool,
    /// Received minus occurred, ms (negative when the sender's clock is ahead).
    pub delay_ms: i64,
}

impl DeliveryRecord {
    /// When the event occurred and its delay, read from the stored body (every engine, no
    /// column needed); `None` for a body that is not an envelope.
    ///
    /// ```
    /// use agentsync_webhooks_queue::record::{DeliveryRecord, DeliveryState};
    /// # use agentsync_webhooks_queue::ReceivedDelivery;
    /// let delivery = ReceivedDelivery {
    ///     webhook_id: "msg_1".into(),
    ///     event_type: "contract.updated".into(),
    ///     webhook_timestamp: 1_700_000_100,
    ///     signature: "v1,...".into(),
    ///     received_at_ms: 1_700_000_100_000,
    ///     body: br#"{"type":"contract.updated","timestamp":"2023-11-14T22:13:20Z"}"#.to_vec().into(),
    /// };
    /// let record = DeliveryRecord {
    ///     delivery, state: DeliveryState::Done, attempts: 1, last_error: None, next_run_at_ms: None,
    ///     done_at_ms: None, died_at_ms: None, worker: None, history: Vec::new(), history_dropped: 0,
    /// };
    /// let time = record.event_time().expect("an envelope");
    /// assert_eq!((time.delay_ms, time.stand_in), (100_000, false));
    /// ```
    pub fn event_time(&self) -> Option<EventTime> {
        let (occurred_at_ms, stand_in) = read_occurred_at(&self.delivery)?;
        Some(EventTime {
            occurred_at_ms,
            stand_in,
            delay_ms: self.delivery.received_at_ms.saturating_sub(occurred_at_ms),
        })
    }

    /// Whether the delivery was recorded as stale (its last attempt's outcome).
    pub fn is_stale(&self) -> bool {
        self.history
            .iter()
            .rev()
            .find_map(|entry| match &entry.event {
                HistoryEvent::Attempt { outcome, .. } => Some(*outcome == AttemptOutcome::Stale),
                _ => None,
            })
            == Some(true)
    }
}

/// When the event of `delivery` occurred (ms) and whether the `webhook-timestamp` stands in
/// for a missing `timestamp`, read from its body; `None` for a body that is not an envelope.
fn read_occurred_at(delivery: &ReceivedDelivery) -> Option<(i64, bool)> {
    let parsed = agentsync_webhooks_core::Delivery::<agentsync_webhooks_core::RawData>::parse(
        &delivery.webhook_id,
        delivery.webhook_timestamp,
        delivery.body.clone(),
    )
    .ok()?;
    Some((
        parsed.event.timestamp.timestamp_millis(),
        parsed.event.timestamp_source != agentsync_webhooks_core::event::TimestampSource::Envelope,
    ))
}

/// The occurred-at an engine stores with a delivery for the record's lists: the ordering's
/// when the delivery is keyed (the same value), else read from the body (one parse of the
/// envelope at enqueue, its `data` left unparsed).
#[cfg_attr(
    not(any(feature = "sqlite", feature = "redis", feature = "postgres")),
    allow(dead_code)
)]
pub(crate) fn occurred_at_to_store(
    delivery: &ReceivedDelivery,
    order: Option<&crate::EventOrder>,
) -> Option<i64> {
    order.map_or_else(
        || read_occurred_at(delivery).map(|(ms, _)| ms),
        |order| Some(order.occurred_at_ms),
    )
}

/// `error` cut to at most [`MAX_ERROR_LEN`] bytes at a character boundary.
pub(crate) fn bounded_error(error: &str) -> &str {
    if error.len() <= MAX_ERROR_LEN {
        return error;
    }
    let mut end = MAX_ERROR_LEN;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_any_id_and_refuse_what_they_did_not_write() {
        for id in ["msg_1", "", "ünï.code/with spaces", "a.b.c"] {
            let cursor = Cursor {
                received_at_ms: -5,
                webhook_id: id.into(),
            };
            assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
        }
        for bad in ["", "12", "x.00", "1.0", "1.zz", "1.ff", "1.g0"] {
            assert_eq!(bad.parse::<Cursor>(), Err(InvalidCursor), "{bad}");
        }
    }

    #[test]
    fn errors_are_bounded_at_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_LEN);
        let cut = bounded_error(&long);
        assert!(cut.len() <= MAX_ERROR_LEN && cut.len() >= MAX_ERROR_LEN - 1);
        assert_eq!(bounded_error("short"), "short");
    }
}
