//! The delivery record on SQLite: the history table's writes, the queries (lists, counts, one
//! delivery) and the operators' actions, each one step inside the group's transaction.

use rusqlite::{
    Connection, OptionalExtension, ToSql, params, params_from_iter, types::ToSqlOutput,
};

use super::{Engine, delivery_from_row};
use crate::{
    backend::attempt_count,
    record::{
        AttemptOutcome, Cursor, DeliveryCounts, DeliveryFilter, DeliveryPage, DeliveryRecord,
        DeliveryState, DeliverySummary, HistoryEntry, HistoryEvent, MAX_BULK, MAX_HISTORY,
    },
    sql::{Placeholders, SqlValue, Where, list_states},
};
use agentsync_webhooks_core::handoff::now_ms;

const NEXT_SEQ: &str = "
UPDATE jobs SET history_seq = history_seq + 1 WHERE webhook_id = ?1 RETURNING history_seq";
const INSERT: &str = "
INSERT INTO history (webhook_id, seq, at_ms, kind, attempt, duration_ms, outcome, error, worker,
                     actor)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
/// Keeps the first entry and the latest after it, [`MAX_HISTORY`] in all.
const TRIM: &str = "DELETE FROM history WHERE webhook_id = ?1 AND seq > 1 AND seq <= ?2";
const FORGET_HISTORY: &str = "DELETE FROM history WHERE webhook_id = ?1";
const HISTORY: &str = "
SELECT at_ms, kind, attempt, duration_ms, outcome, error, worker, actor
FROM history WHERE webhook_id = ?1 ORDER BY seq";
const ONE: &str = "
SELECT webhook_id, event_type, webhook_timestamp, signature, received_at_ms, body, state,
       attempts, last_error, next_run_at_ms, done_at_ms, died_at_ms, worker, history_seq
FROM jobs WHERE webhook_id = ?1";
const REPLAY: &str = "
UPDATE jobs SET state = 'waiting', attempts = 0, next_run_at_ms = ?2, last_error = NULL,
                died_at_ms = NULL, done_at_ms = NULL, forgotten = 0
WHERE webhook_id = ?1 AND state = ?3";
const DISCARD: &str = "
UPDATE jobs SET state = 'dead', died_at_ms = ?2, last_error = ?3
WHERE webhook_id = ?1 AND state IN ('waiting', 'retrying')";
const FORGET: &str = "
UPDATE jobs SET forgotten = 1 WHERE webhook_id = ?1 AND state IN ('done', 'dead')";
const PURGE_DEAD_BEFORE: &str = "
DELETE FROM jobs WHERE rowid IN (
    SELECT rowid FROM jobs INDEXED BY jobs_dead_order WHERE state = 'dead' AND died_at_ms < ?1
    ORDER BY died_at_ms LIMIT ?2)
RETURNING webhook_id";
const SUMMARY_COLUMNS: &str = "webhook_id, event_type, state, received_at_ms, attempts, \
     last_error, next_run_at_ms, occurred_at_ms";

/// The fixed statements of the record, by name, for the plan tests.
#[cfg(feature = "testing")]
pub(super) const STATEMENTS: &[(&str, &str)] = &[
    ("history_next_seq", NEXT_SEQ),
    ("history_trim", TRIM),
    ("history_forget", FORGET_HISTORY),
    ("history", HISTORY),
    ("one", ONE),
    ("replay", REPLAY),
    ("discard", DISCARD),
    ("forget", FORGET),
    ("purge_dead_before", PURGE_DEAD_BEFORE),
];

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Self::Int(value) => value.to_sql(),
            Self::Text(value) => value.to_sql(),
        }
    }
}

/// Appends `event` to the history of `webhook_id`, dropping what the cap leaves out.
pub(super) fn append(
    connection: &Connection,
    webhook_id: &str,
    at_ms: i64,
    event: &HistoryEvent,
) -> rusqlite::Result<()> {
    let Some(seq) = connection
        .prepare_cached(NEXT_SEQ)?
        .query_row(params![webhook_id], |row| row.get::<_, i64>(0))
        .optional()?
    else {
        return Ok(());
    };
    append_at(connection, webhook_id, seq, at_ms, event)
}

/// [`append`] as entry `seq`, for a statement that already counted it in `history_seq`.
pub(super) fn append_at(
    connection: &Connection,
    webhook_id: &str,
    seq: i64,
    at_ms: i64,
    event: &HistoryEvent,
) -> rusqlite::Result<()> {
    let (attempt, duration, outcome, error, worker, actor) = match event {
        HistoryEvent::Attempt {
            number,
            duration_ms,
            outcome,
            error,
            worker,
        } => (
            Some(i64::from(*number)),
            Some(i64::try_from(*duration_ms).unwrap_or(i64::MAX)),
            Some(outcome.as_str()),
            error.as_deref(),
            Some(worker.as_str()),
            None,
        ),
        HistoryEvent::Replayed { by }
        | HistoryEvent::Discarded { by }
        | HistoryEvent::Forgotten { by } => (None, None, None, None, None, Some(by.as_str())),
        HistoryEvent::Resent => (None, None, None, None, None, None),
    };
    connection.prepare_cached(INSERT)?.execute(params![
        webhook_id,
        seq,
        at_ms,
        event.kind(),
        attempt,
        duration,
        outcome,
        error,
        worker,
        actor
    ])?;
    let cap = i64::try_from(MAX_HISTORY).unwrap_or(i64::MAX);
    if seq > cap {
        connection
            .prepare_cached(TRIM)?
            .execute(params![webhook_id, seq - cap + 1])?;
    }
    Ok(())
}

/// Deletes the history of a delivery whose row is gone.
pub(super) fn forget_history(connection: &Connection, webhook_id: &str) -> rusqlite::Result<()> {
    connection
        .prepare_cached(FORGET_HISTORY)?
        .execute(params![webhook_id])
        .map(drop)
}

/// The list query for one state (or every state), newest first.
pub(super) fn list_sql(
    filter: &DeliveryFilter,
    state: Option<DeliveryState>,
    after: Option<&Cursor>,
    limit: usize,
) -> (String, Vec<SqlValue>) {
    let mut clause = Where::filter(Placeholders::Question, filter, state, after);
    let limit = clause.bind(SqlValue::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    (
        format!(
            "SELECT {SUMMARY_COLUMNS} FROM jobs {} \
             ORDER BY received_at_ms DESC, webhook_id DESC LIMIT {limit}",
            clause.sql()
        ),
        clause.values,
    )
}

/// The counts query: every state and type of what `filter` keeps, its states aside, then a
/// column per window of `since_ms` (those received since it). It groups along the index on
/// `(state, event_type, received_at_ms)`, whose order is the grouping's and which holds the
/// received-at: one walk of that index, never a sort, whatever the time range or the windows.
/// A type or an id filter narrows by its own index instead.
pub(super) fn counts_sql(filter: &DeliveryFilter, since_ms: &[i64]) -> (String, Vec<SqlValue>) {
    let all_states = DeliveryFilter {
        states: Vec::new(),
        ..filter.clone()
    };
    let mut clause = Where::filter(Placeholders::Question, &all_states, None, None);
    let hint = if filter.event_type.is_none() && filter.webhook_id.is_none() {
        "INDEXED BY jobs_counts"
    } else {
        ""
    };
    let windows: String = since_ms
        .iter()
        .map(|since| {
            let p = clause.bind(SqlValue::Int(*since));
            format!(", sum(received_at_ms >= {p})")
        })
        .collect();
    (
        format!(
            "SELECT state, event_type, count(*){windows} FROM jobs {hint} {} \
             GROUP BY state, event_type",
            clause.sql()
        ),
        clause.values,
    )
}

fn summary_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeliverySummary> {
    let state = state_from(row, 2)?;
    Ok(DeliverySummary {
        webhook_id: row.get(0)?,
        event_type: row.get(1)?,
        state,
        received_at_ms: row.get(3)?,
        attempts: attempt_count(row.get(4)?),
        last_error: row.get(5)?,
        next_run_at_ms: matches!(state, DeliveryState::Waiting | DeliveryState::Retrying)
            .then(|| row.get(6))
            .transpose()?,
        occurred_at_ms: row.get(7)?,
    })
}

fn state_from(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<DeliveryState> {
    let name: String = row.get(column)?;
    name.parse().map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            Box::new(err),
        )
    })
}

fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<HistoryEntry> {
    let at_ms = row.get(0)?;
    let kind: String = row.get(1)?;
    let actor =
        || -> rusqlite::Result<String> { Ok(row.get::<_, Option<String>>(7)?.unwrap_or_default()) };
    let event = match kind.as_str() {
        "attempt" => {
            let outcome: Option<String> = row.get(4)?;
            HistoryEvent::Attempt {
                number: attempt_count(row.get::<_, Option<i64>>(2)?.unwrap_or(0)),
                duration_ms: u64::try_from(row.get::<_, Option<i64>>(3)?.unwrap_or(0)).unwrap_or(0),
                outcome: outcome
                    .as_deref()
                    .and_then(AttemptOutcome::parse)
                    .unwrap_or(AttemptOutcome::LeaseExpired),
                error: row.get(5)?,
                worker: row.get::<_, Option<String>>(6)?.unwrap_or_default(),
            }
        }
        "replayed" => HistoryEvent::Replayed { by: actor()? },
        "discarded" => HistoryEvent::Discarded { by: actor()? },
        "forgotten" => HistoryEvent::Forgotten { by: actor()? },
        _ => HistoryEvent::Resent,
    };
    Ok(HistoryEntry { at_ms, event })
}

impl Engine {
    /// One page: a query per state the filter names (each served by the state's index, in
    /// order), merged newest first.
    pub(super) fn list(
        &mut self,
        filter: &DeliveryFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> rusqlite::Result<DeliveryPage> {
        let wanted = limit.saturating_add(1);
        let mut candidates = Vec::new();
        for state in list_states(filter) {
            let (sql, values) = list_sql(filter, state, after, wanted);
            let mut statement = self.connection.prepare_cached(&sql)?;
            let rows = statement.query_map(params_from_iter(values.iter()), summary_from_row)?;
            for row in rows {
                candidates.push(row?);
            }
        }
        Ok(DeliveryPage::from_candidates(candidates, limit))
    }

    pub(super) fn counts(&mut self, filter: &DeliveryFilter) -> rusqlite::Result<DeliveryCounts> {
        Ok(self.counts_since(filter, &[])?.swap_remove(0))
    }

    /// The counts of `filter`, then of each window of `since_ms`, from one query.
    pub(super) fn counts_since(
        &mut self,
        filter: &DeliveryFilter,
        since_ms: &[i64],
    ) -> rusqlite::Result<Vec<DeliveryCounts>> {
        let (sql, values) = counts_sql(filter, since_ms);
        let mut counts = vec![DeliveryCounts::empty(); 1 + since_ms.len()];
        let mut statement = self.connection.prepare_cached(&sql)?;
        let mut rows = statement.query(params_from_iter(values.iter()))?;
        while let Some(row) = rows.next()? {
            let state = state_from(row, 0)?;
            let event_type: String = row.get(1)?;
            for (column, counts) in counts.iter_mut().enumerate() {
                // `sum` of no row is NULL; a window none of the group's rows is in is 0.
                let n = row.get::<_, Option<i64>>(2 + column)?.unwrap_or(0);
                let n = u64::try_from(n).unwrap_or(0);
                if n > 0 {
                    *counts.by_state.entry(state).or_default() += n;
                    *counts.by_type.entry(event_type.clone()).or_default() += n;
                }
            }
        }
        Ok(counts)
    }

    pub(super) fn delivery(
        &mut self,
        webhook_id: &str,
    ) -> rusqlite::Result<Option<DeliveryRecord>> {
        let found = self
            .connection
            .prepare_cached(ONE)?
            .query_row(params![webhook_id], |row| {
                Ok((
                    DeliveryRecord {
                        delivery: delivery_from_row(row)?,
                        state: state_from(row, 6)?,
                        attempts: attempt_count(row.get(7)?),
                        last_error: row.get(8)?,
                        next_run_at_ms: row.get(9)?,
                        done_at_ms: row.get(10)?,
                        died_at_ms: row.get(11)?,
                        worker: row.get(12)?,
                        history: Vec::new(),
                        history_dropped: 0,
                    },
                    row.get::<_, i64>(13)?,
                ))
            })
            .optional()?;
        let Some((mut record, seq)) = found else {
            return Ok(None);
        };
        if !matches!(
            record.state,
            DeliveryState::Waiting | DeliveryState::Retrying
        ) {
            record.next_run_at_ms = None;
        }
        record.history = self
            .connection
            .prepare_cached(HISTORY)?
            .query_map(params![webhook_id], entry_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        let kept = i64::try_from(record.history.len()).unwrap_or(i64::MAX);
        record.history_dropped = u64::try_from(seq.saturating_sub(kept)).unwrap_or(0);
        Ok(Some(record))
    }

    /// Replays `webhook_id` if it is in one of `states`, recording who asked.
    pub(super) fn replay(
        &mut self,
        webhook_id: &str,
        by: &str,
        states: &[DeliveryState],
    ) -> rusqlite::Result<bool> {
        let now = now_ms();
        for state in states {
            let changed = self.connection.prepare_cached(REPLAY)?.execute(params![
                webhook_id,
                now,
                state.as_str()
            ])?;
            if changed == 1 {
                append(
                    &self.connection,
                    webhook_id,
                    now,
                    &HistoryEvent::Replayed { by: by.to_owned() },
                )?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Replays every done or dead delivery `filter` keeps, newest first, at most `max` (and
    /// [`MAX_BULK`]), in one savepoint: all or none.
    pub(super) fn replay_matching(
        &mut self,
        filter: &DeliveryFilter,
        by: &str,
        max: usize,
    ) -> rusqlite::Result<u64> {
        let max = max.min(MAX_BULK);
        let replayable = DeliveryFilter {
            states: filter
                .states_or_all()
                .into_iter()
                .filter(|state| state.replayable())
                .collect(),
            ..filter.clone()
        };
        if replayable.states.is_empty() || max == 0 {
            return Ok(0);
        }
        let page = self.list(&replayable, None, max)?;
        let savepoint = self.connection.savepoint()?;
        let now = now_ms();
        let mut replayed = 0;
        for summary in &page.deliveries {
            let changed = savepoint.prepare_cached(REPLAY)?.execute(params![
                summary.webhook_id,
                now,
                summary.state.as_str()
            ])?;
            if changed == 1 {
                append(
                    &savepoint,
                    &summary.webhook_id,
                    now,
                    &HistoryEvent::Replayed { by: by.to_owned() },
                )?;
                replayed += 1;
            }
        }
        savepoint.commit()?;
        Ok(replayed)
    }

    pub(super) fn discard(&mut self, webhook_id: &str, by: &str) -> rusqlite::Result<bool> {
        let now = now_ms();
        let error = format!("discarded by operator ({by})");
        let changed = self
            .connection
            .prepare_cached(DISCARD)?
            .execute(params![webhook_id, now, error])?;
        if changed == 1 {
            append(
                &self.connection,
                webhook_id,
                now,
                &HistoryEvent::Discarded { by: by.to_owned() },
            )?;
        }
        Ok(changed == 1)
    }

    pub(super) fn forget(&mut self, webhook_id: &str, by: &str) -> rusqlite::Result<bool> {
        let changed = self
            .connection
            .prepare_cached(FORGET)?
            .execute(params![webhook_id])?;
        if changed == 1 {
            append(
                &self.connection,
                webhook_id,
                now_ms(),
                &HistoryEvent::Forgotten { by: by.to_owned() },
            )?;
        }
        Ok(changed == 1)
    }

    pub(super) fn purge_dead(&mut self, before_ms: i64, max: usize) -> rusqlite::Result<u64> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.delete_rows(PURGE_DEAD_BEFORE, before_ms, max)
    }
}
