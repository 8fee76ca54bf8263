//! The delivery record on Redis: the lists, counts and one delivery, read from the record's
//! hashes through its index sorted sets, and the operators' actions, each one script.

use agentsync_webhooks_core::idempotency::{StoreError, StoreErrorKind};
use bytes::Bytes;

use super::{
    Keys, RedisBackend,
    scripts::{COUNTS, DISCARD, FORGET, LIST, PURGE_DEAD, RECORD, REPLAY_MATCHING},
};
use crate::{
    backend::attempt_count,
    record::{
        AttemptOutcome, Cursor, DeliveryCounts, DeliveryFilter, DeliveryPage, DeliveryRecord,
        DeliveryState, DeliverySummary, HistoryEntry, HistoryEvent, IdFilter, MAX_BULK, TypeFilter,
    },
};
use agentsync_webhooks_core::handoff::ReceivedDelivery;

/// At most this many index members are read per list (or bulk replay) call: a filter that
/// the indexes do not narrow (an id prefix) ends its page early, with a cursor to go on from.
const LIST_BUDGET: usize = 5_000;
/// The largest page a list call reads.
const MAX_PAGE: usize = 10_000;
/// The page size of the walk that counts an id prefix.
const COUNT_PAGE: usize = 1_000;

/// A record's hash fields (name, value, ...) as `HGETALL` returns them.
type Fields = Vec<Vec<u8>>;

/// One summary as `list.lua` returns it: id, type, state, received, attempts, last error, next
/// run, occurred.
type SummaryRow = (
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

impl RedisBackend {
    /// The index sorted sets that hold `states` of what `filter` keeps: per state, per state
    /// and type, or per state and group.
    fn index_keys(keys: &Keys, filter: &DeliveryFilter, states: &[DeliveryState]) -> Vec<String> {
        let prefix = &keys.prefix;
        states
            .iter()
            .map(|state| match &filter.event_type {
                None => format!("{prefix}r:s:{state}"),
                Some(TypeFilter::Type(event_type)) => format!("{prefix}r:st:{state}:{event_type}"),
                Some(TypeFilter::Group(group)) => {
                    format!("{prefix}r:sg:{state}:{}", group.as_str())
                }
            })
            .collect()
    }

    pub(super) async fn list_in(
        &self,
        keys: &Keys,
        filter: &DeliveryFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<DeliveryPage, StoreError> {
        if limit == 0 {
            return Ok(DeliveryPage::default());
        }
        let limit = limit.min(MAX_PAGE);
        let indexes = Self::index_keys(keys, filter, &filter.states_or_all());
        let (exact, id_prefix) = id_args(filter);
        let mut connection = self.connection.clone();
        let mut invocation = LIST.prepare_invoke();
        for key in &indexes {
            invocation.key(key);
        }
        invocation
            .arg(&keys.prefix)
            .arg(limit + 1)
            .arg(optional(filter.received_since_ms))
            .arg(optional(filter.received_until_ms))
            .arg(optional(after.map(|cursor| cursor.received_at_ms)))
            .arg(after.map_or("", |cursor| cursor.webhook_id.as_str()))
            .arg(id_prefix)
            .arg(exact)
            .arg(LIST_BUDGET)
            .arg(optional(filter.min_delay_ms));
        let (rows, stop_ms, stop_id): (Vec<SummaryRow>, Option<i64>, Option<String>) = self
            .bounded("list deliveries", invocation.invoke_async(&mut connection))
            .await?;
        let candidates = rows
            .into_iter()
            .map(summary_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let mut page = DeliveryPage::from_candidates(candidates, limit);
        if page.next.is_none()
            && let (Some(received_at_ms), Some(webhook_id)) = (stop_ms, stop_id)
        {
            // The walk's budget ran out before the page was full: go on from where it stopped.
            page.next = Some(Cursor {
                received_at_ms,
                webhook_id,
            });
        }
        Ok(page)
    }

    /// The page of every partition, merged: newest first, never past where a partition's walk
    /// stopped (its own page full, or its budget spent), since what that partition holds
    /// beyond is unread.
    pub(super) async fn list_page(
        &self,
        filter: &DeliveryFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<DeliveryPage, StoreError> {
        if self.parts.len() == 1 {
            return self.list_in(&self.parts[0], filter, after, limit).await;
        }
        let mut all = Vec::new();
        let mut horizon: Option<Cursor> = None;
        for keys in self.parts.iter() {
            let page = self.list_in(keys, filter, after, limit).await?;
            all.extend(page.deliveries);
            if let Some(next) = page.next
                && horizon.as_ref().is_none_or(|h| newer(&next, h))
            {
                horizon = Some(next);
            }
        }
        all.sort_by(|a, b| {
            (b.received_at_ms, &b.webhook_id).cmp(&(a.received_at_ms, &a.webhook_id))
        });
        if let Some(horizon) = &horizon {
            all.retain(|one| !newer(horizon, &Cursor::after(one)));
        }
        let cut = all.len() > limit;
        all.truncate(limit);
        let next = if cut {
            all.last().map(Cursor::after)
        } else {
            horizon
        };
        Ok(DeliveryPage {
            deliveries: all,
            next,
        })
    }

    /// The newest `max` done or dead deliveries that `filter` keeps, replayed: one script per
    /// partition (each one atomic step), each replaying its share of the newest `max` across
    /// every partition, read first from the merged list.
    pub(super) async fn replay_filtered(
        &self,
        filter: &DeliveryFilter,
        by: &str,
        max: usize,
    ) -> Result<u64, StoreError> {
        let max = max.min(MAX_BULK);
        if self.parts.len() == 1 || max == 0 {
            return self.replay_in(&self.parts[0], filter, by, max).await;
        }
        let replayable = DeliveryFilter {
            states: filter
                .states_or_all()
                .into_iter()
                .filter(|state| state.replayable())
                .collect(),
            ..filter.clone()
        };
        if replayable.states.is_empty() {
            return Ok(0);
        }
        let share = self.newest_shares(&replayable, max).await?;
        let mut replayed = 0;
        for (keys, share) in self.parts.iter().zip(share) {
            if share > 0 {
                replayed += self.replay_in(keys, &replayable, by, share).await?;
            }
        }
        Ok(replayed)
    }

    /// Up to `max` dead letters buried before `before_ms`, partition by partition.
    pub(super) async fn purge_dead_before(
        &self,
        before_ms: i64,
        max: usize,
    ) -> Result<u64, StoreError> {
        let mut purged = 0_u64;
        for keys in self.parts.iter() {
            let left = max.saturating_sub(usize::try_from(purged).unwrap_or(usize::MAX));
            if left == 0 {
                break;
            }
            purged += self.purge_dead_in(keys, before_ms, left).await?;
        }
        Ok(purged)
    }

    pub(super) async fn count_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<DeliveryCounts, StoreError> {
        let every_state = DeliveryFilter {
            states: Vec::new(),
            ..filter.clone()
        };
        let mut counts = DeliveryCounts::empty();
        if every_state.webhook_id.is_some() || every_state.min_delay_ms.is_some() {
            // No index holds ids by prefix, nor the delay: the deliveries are walked (an exact
            // id is one).
            let mut after: Option<Cursor> = None;
            loop {
                let page = self
                    .list_page(&every_state, after.as_ref(), COUNT_PAGE)
                    .await?;
                for summary in &page.deliveries {
                    *counts.by_state.entry(summary.state).or_default() += 1;
                    *counts
                        .by_type
                        .entry(summary.event_type.clone())
                        .or_default() += 1;
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => return Ok(counts),
                }
            }
        }
        let (kind, value) = match &filter.event_type {
            None => ("", ""),
            Some(TypeFilter::Type(event_type)) => ("t", event_type.as_str()),
            Some(TypeFilter::Group(group)) => ("g", group.as_str()),
        };
        let mut rows: Vec<(String, String, u64)> = Vec::new();
        for keys in self.parts.iter() {
            let mut connection = self.connection.clone();
            // The schema key only routes the script to the partition's slot on a cluster.
            let mut invocation = COUNTS.key(&keys.schema);
            invocation
                .arg(&keys.prefix)
                .arg(optional(filter.received_since_ms))
                .arg(optional(filter.received_until_ms))
                .arg(kind)
                .arg(value);
            let part: Vec<(String, String, u64)> = self
                .bounded("count deliveries", invocation.invoke_async(&mut connection))
                .await?;
            rows.extend(part);
        }
        for (state, event_type, n) in rows {
            let state = parse_state(&state)?;
            *counts.by_state.entry(state).or_default() += n;
            *counts.by_type.entry(event_type).or_default() += n;
        }
        Ok(counts)
    }

    pub(super) async fn show(
        &self,
        webhook_id: &str,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let keys = self.locate(webhook_id).await?;
        let mut connection = self.connection.clone();
        // The schema key only routes the script to the partition's slot on a cluster.
        let mut invocation = RECORD.key(&keys.schema);
        invocation.arg(webhook_id).arg(&keys.prefix);
        let found: Option<(Fields, Vec<Vec<u8>>)> = self
            .bounded("show a delivery", invocation.invoke_async(&mut connection))
            .await?;
        found
            .map(|(fields, history)| record_from(fields, history))
            .transpose()
    }

    pub(super) async fn replay_in(
        &self,
        keys: &Keys,
        filter: &DeliveryFilter,
        by: &str,
        max: usize,
    ) -> Result<u64, StoreError> {
        let max = max.min(MAX_BULK);
        let states: Vec<DeliveryState> = filter
            .states_or_all()
            .into_iter()
            .filter(|state| state.replayable())
            .collect();
        if states.is_empty() || max == 0 {
            return Ok(0);
        }
        let (exact, id_prefix) = id_args(filter);
        let mut connection = self.connection.clone();
        let mut invocation = REPLAY_MATCHING.key(&keys.stream);
        invocation.key(&keys.dead).key(&keys.dead_index);
        for key in Self::index_keys(keys, filter, &states) {
            invocation.key(key);
        }
        invocation
            .arg(&keys.prefix)
            .arg(max)
            .arg(optional(filter.received_since_ms))
            .arg(optional(filter.received_until_ms))
            .arg(id_prefix)
            .arg(exact)
            .arg(LIST_BUDGET)
            .arg(by)
            .arg(optional(filter.min_delay_ms));
        self.bounded(
            "replay deliveries",
            invocation.invoke_async(&mut connection),
        )
        .await
    }

    pub(super) async fn discard_one(&self, webhook_id: &str, by: &str) -> Result<bool, StoreError> {
        let keys = self.locate(webhook_id).await?;
        let mut connection = self.connection.clone();
        let mut invocation = DISCARD.key(&keys.stream);
        invocation
            .key(&keys.scheduled)
            .key(&keys.due)
            .key(&keys.dead)
            .key(&keys.dead_index)
            .key(keys.id_mark(webhook_id))
            .arg(webhook_id)
            .arg(by)
            .arg(&keys.prefix);
        let discarded: i64 = self
            .bounded(
                "discard a delivery",
                invocation.invoke_async(&mut connection),
            )
            .await?;
        Ok(discarded == 1)
    }

    pub(super) async fn forget_one(&self, webhook_id: &str, by: &str) -> Result<bool, StoreError> {
        let keys = self.locate(webhook_id).await?;
        let mut connection = self.connection.clone();
        let mut invocation = FORGET.key(keys.id_mark(webhook_id));
        invocation.arg(webhook_id).arg(by).arg(&keys.prefix);
        let forgotten: i64 = self
            .bounded("forget an id", invocation.invoke_async(&mut connection))
            .await?;
        Ok(forgotten == 1)
    }

    pub(super) async fn purge_dead_in(
        &self,
        keys: &Keys,
        before_ms: i64,
        max: usize,
    ) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = PURGE_DEAD.key(&keys.dead);
        invocation
            .key(&keys.dead_index)
            .arg(before_ms)
            .arg(max.min(100_000))
            .arg(&keys.prefix);
        self.bounded(
            "purge dead letters",
            invocation.invoke_async(&mut connection),
        )
        .await
    }
}

/// Whether the cursor `a` comes before `b` in the lists' order (newest first: received-at, then
/// id, descending).
fn newer(a: &Cursor, b: &Cursor) -> bool {
    (a.received_at_ms, a.webhook_id.as_bytes()) > (b.received_at_ms, b.webhook_id.as_bytes())
}

/// The exact id and the id prefix a filter keeps (`""` for none).
fn id_args(filter: &DeliveryFilter) -> (&str, &str) {
    match &filter.webhook_id {
        None => ("", ""),
        Some(IdFilter::Exact(id)) => (id.as_str(), ""),
        Some(IdFilter::Prefix(prefix)) => ("", prefix.as_str()),
    }
}

/// A number argument, or `""` for none.
fn optional(value: Option<i64>) -> String {
    value.map(|value| value.to_string()).unwrap_or_default()
}

fn parse_state(name: &str) -> Result<DeliveryState, StoreError> {
    name.parse()
        .map_err(|_| malformed("a delivery's record has an unknown state"))
}

fn summary_from_row(row: SummaryRow) -> Result<DeliverySummary, StoreError> {
    let (webhook_id, event_type, state, received_at_ms, attempts, last_error, next, occurred) = row;
    let state = parse_state(&state)?;
    Ok(DeliverySummary {
        webhook_id,
        event_type,
        state,
        received_at_ms,
        attempts: attempt_count(attempts),
        last_error,
        next_run_at_ms: next.filter(|_| due_states(state)),
        occurred_at_ms: occurred,
    })
}

/// The states with a next run.
fn due_states(state: DeliveryState) -> bool {
    matches!(state, DeliveryState::Waiting | DeliveryState::Retrying)
}

/// A record from its hash's fields and its history list.
fn record_from(fields: Vec<Vec<u8>>, history: Vec<Vec<u8>>) -> Result<DeliveryRecord, StoreError> {
    let mut get = std::collections::HashMap::new();
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        get.insert(name, value);
    }
    let text = |name: &str| -> Result<Option<String>, StoreError> {
        get.get(name.as_bytes())
            .map(|value| {
                String::from_utf8(value.clone())
                    .map_err(|_| malformed("a delivery's record has a text that is not UTF-8"))
            })
            .transpose()
    };
    let number = |name: &str| -> Result<Option<i64>, StoreError> {
        get.get(name.as_bytes())
            .map(|value| {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|value| value.parse::<i64>().ok())
                    .ok_or_else(|| malformed("a delivery's record has a number that is not one"))
            })
            .transpose()
    };
    let state = parse_state(&text("state")?.unwrap_or_default())?;
    let first = get.get(b"first".as_slice()).cloned();
    let kept: Vec<HistoryEntry> = first
        .into_iter()
        .chain(history)
        .filter_map(|entry| {
            let decoded = decode_entry(&entry);
            if decoded.is_none() {
                tracing::warn!("a history entry of a delivery cannot be read; it is left out");
            }
            decoded
        })
        .collect();
    let seq = number("seq")?.unwrap_or(0);
    let dropped = seq.saturating_sub(i64::try_from(kept.len()).unwrap_or(i64::MAX));
    Ok(DeliveryRecord {
        delivery: ReceivedDelivery {
            webhook_id: text("id")?.unwrap_or_default(),
            event_type: text("type")?.unwrap_or_default(),
            webhook_timestamp: number("ts")?.unwrap_or(0),
            signature: text("sig")?.unwrap_or_default(),
            received_at_ms: number("recv")?.unwrap_or(0),
            body: Bytes::from(get.get(b"body".as_slice()).cloned().unwrap_or_default()),
        },
        state,
        attempts: attempt_count(number("a")?.unwrap_or(0)),
        last_error: text("err")?,
        next_run_at_ms: number("next")?.filter(|_| due_states(state)),
        done_at_ms: number("done")?.filter(|_| state == DeliveryState::Done),
        died_at_ms: number("died")?.filter(|_| state == DeliveryState::Dead),
        worker: text("worker")?,
        history: kept,
        history_dropped: u64::try_from(dropped).unwrap_or(0),
    })
}

/// One history entry as `helpers.lua` writes it:
/// `at|kind|number|duration|outcome|len(worker)|has text|` then the worker and the text.
fn decode_entry(entry: &[u8]) -> Option<HistoryEntry> {
    let mut parts = entry.splitn(8, |byte| *byte == b'|');
    let mut next_text = || std::str::from_utf8(parts.next()?).ok();
    let at_ms: i64 = next_text()?.parse().ok()?;
    let kind = next_text()?.to_owned();
    let number: i64 = next_text()?.parse().ok()?;
    let duration: i64 = next_text()?.parse().ok()?;
    let outcome = next_text()?.to_owned();
    let worker_len: usize = next_text()?.parse().ok()?;
    let has_text = next_text()? == "1";
    let rest = parts.next()?;
    let worker = std::str::from_utf8(rest.get(..worker_len)?)
        .ok()?
        .to_owned();
    let text = std::str::from_utf8(rest.get(worker_len..)?)
        .ok()?
        .to_owned();
    let text = has_text.then_some(text);
    let by = || text.clone().unwrap_or_default();
    let event = match kind.as_str() {
        "attempt" => HistoryEvent::Attempt {
            number: attempt_count(number),
            duration_ms: u64::try_from(duration).unwrap_or(0),
            outcome: AttemptOutcome::parse(&outcome).unwrap_or(AttemptOutcome::LeaseExpired),
            error: text.clone(),
            worker,
        },
        "replayed" => HistoryEvent::Replayed { by: by() },
        "discarded" => HistoryEvent::Discarded { by: by() },
        "forgotten" => HistoryEvent::Forgotten { by: by() },
        _ => HistoryEvent::Resent,
    };
    Some(HistoryEntry { at_ms, event })
}

fn malformed(message: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Other, message)
}
