//! The delivery record on PostgreSQL: the queries (lists, counts, one delivery with its
//! history) and the operators' actions (replay, bulk replay, discard, forget, purge of dead
//! letters), each one statement (or, for one delivery, one read-only snapshot).
//!
//! Lists are one query per state the filter names, each reading an index that ends in
//! `(received_at_ms, webhook_id)` backwards from the cursor, merged newest first
//! ([`DeliveryPage::from_candidates`]). Counts are one `GROUP BY state, event_type` (hashed,
//! never sorted) over the rows the filter's index selects: over a time range (or everything),
//! the overall index alone, which carries the state and the type.

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::{
    Row,
    types::{IsNull, ToSql, Type, to_sql_checked},
};

use super::{
    backend::{PostgresBackend, delivery_from_row, pg_error},
    statements::{DELIVERY_COLUMNS, NOW_MS, delete_batch, log_history},
};
use crate::{
    backend::attempt_count,
    record::{
        AttemptOutcome, Cursor, DeliveryCounts, DeliveryFilter, DeliveryPage, DeliveryRecord,
        DeliveryState, DeliverySummary, HistoryEntry, HistoryEvent, IdFilter, MAX_BULK, TypeFilter,
    },
    sql::{Placeholders, SqlValue, Where, list_states},
};
use agentsync_webhooks_core::idempotency::StoreError;

const SUMMARY_COLUMNS: &str = "webhook_id, event_type, state, received_at_ms, attempts, \
     last_error, next_run_at_ms, occurred_at_ms";

impl ToSql for SqlValue {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Self::Int(value) => value.to_sql(ty, out),
            Self::Text(value) => value.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty) || <String as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// The record's fixed statements of one table.
#[derive(Debug)]
pub(super) struct RecordStatements {
    one: String,
    history: String,
    replay: String,
    discard: String,
    forget: String,
    purge_dead_before: String,
}

/// An operator's action on the rows `source` (a data-modifying `WITH` part) returned, with
/// `kind` in their history and `$2` as who asked; answers how many.
fn action(t: &str, source: &str, update: &str, kind: &str) -> String {
    let log = log_history(
        t,
        source,
        None,
        &format!("{NOW_MS}, '{kind}', NULL, NULL, NULL, NULL, NULL, $2"),
    );
    format!(
        "WITH {source} AS (
            {update}
            RETURNING webhook_id, history_seq
         ), {log}
         SELECT count(*) FROM {source}"
    )
}

impl RecordStatements {
    pub(super) fn new(t: &str) -> Self {
        Self {
            one: format!(
                "SELECT {DELIVERY_COLUMNS}, state, attempts, last_error, next_run_at_ms,
                        done_at_ms, died_at_ms, worker, history_seq
                 FROM {t} WHERE webhook_id = $1"
            ),
            history: format!(
                "SELECT at_ms, kind, attempt, duration_ms, outcome, error, worker, actor
                 FROM {t}_history WHERE webhook_id = $1 ORDER BY seq"
            ),
            // $1: the ids, $2: who asked, $3: the states they may be in (done, dead).
            replay: action(
                t,
                "replayed",
                &format!(
                    "UPDATE {t} SET state = 'waiting', attempts = 0, next_run_at_ms = {NOW_MS},
                                    last_error = NULL, died_at_ms = NULL, done_at_ms = NULL,
                                    forgotten = false, history_seq = history_seq + 1
                     WHERE webhook_id = ANY($1::text[]) AND state = ANY($3::text[])"
                ),
                "replayed",
            ),
            // $1: the id, $2: who asked, $3: the error shown.
            discard: action(
                t,
                "discarded",
                &format!(
                    "UPDATE {t} SET state = 'dead', died_at_ms = {NOW_MS}, last_error = $3,
                                    history_seq = history_seq + 1
                     WHERE webhook_id = $1 AND state IN ('waiting', 'retrying')"
                ),
                "discarded",
            ),
            // $1: the id, $2: who asked.
            forget: action(
                t,
                "forgot",
                &format!(
                    "UPDATE {t} SET forgotten = true, history_seq = history_seq + 1
                     WHERE webhook_id = $1 AND state IN ('done', 'dead')"
                ),
                "forgotten",
            ),
            // $1: died before (ms), $2: at most this many, oldest first.
            purge_dead_before: delete_batch(
                t,
                &format!(
                    "SELECT webhook_id FROM {t} WHERE state = 'dead' AND died_at_ms < $1
                     ORDER BY died_at_ms LIMIT $2"
                ),
            ),
        }
    }

    /// The fixed statements, by name, for the plan tests.
    #[cfg(feature = "testing")]
    pub(super) fn by_name(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("one", self.one.as_str()),
            ("history", self.history.as_str()),
            ("replay", self.replay.as_str()),
            ("discard", self.discard.as_str()),
            ("forget", self.forget.as_str()),
            ("purge_dead_before", self.purge_dead_before.as_str()),
        ]
    }
}

/// The list query of table `t` for one state (or every state), newest first.
///
/// Two things steer a generic plan (which knows no parameter's value) to the index that serves
/// the filter:
///
/// - A filter on one state, one type or one group alone compares the cursor as `(state,
///   received_at_ms, webhook_id) < ($state, ...)` (or the type's, the group's column first;
///   on the first page, `(state, received_at_ms) <= ($state, i64::MAX)`): the same rows, a
///   condition only the index led by that column can take, so that a page of a rare type is
///   read from the type's index, not filtered out of the overall one (whose order follows the
///   table's, which a generic plan finds cheaper to read).
/// - An id prefix selects a range of the primary key first (`MATERIALIZED`), then sorts those
///   rows and keeps the page: read backwards along the received-at index instead, a prefix
///   that matches little would walk all of it.
pub(super) fn list_sql(
    t: &str,
    filter: &DeliveryFilter,
    state: Option<DeliveryState>,
    after: Option<&Cursor>,
    limit: usize,
) -> (String, Vec<SqlValue>) {
    let mut clause = Where::filter(Placeholders::Dollar, filter, state, None);
    let lead = match (state, &filter.event_type) {
        (Some(state), None) => Some(("state", state.as_str().to_owned())),
        (None, Some(TypeFilter::Type(event_type))) => Some(("event_type", event_type.clone())),
        (None, Some(TypeFilter::Group(group))) => Some(("event_group", group.as_str().to_owned())),
        _ => None,
    };
    let lead = lead.map(|(column, value)| (column, clause.bind(SqlValue::Text(value))));
    match (after, lead) {
        (Some(cursor), lead) => {
            let ms = clause.bind(SqlValue::Int(cursor.received_at_ms));
            let id = clause.bind(SqlValue::Text(cursor.webhook_id.clone()));
            clause.and(match lead {
                Some((column, value)) => {
                    format!("({column}, received_at_ms, webhook_id) < ({value}, {ms}, {id})")
                }
                None => format!("(received_at_ms, webhook_id) < ({ms}, {id})"),
            });
        }
        // Always true beside `column = value`: the first page's start, in the lead's index.
        (None, Some((column, value))) => {
            clause.and(format!(
                "({column}, received_at_ms) <= ({value}, {})",
                i64::MAX
            ));
        }
        (None, None) => {}
    }
    let limit = clause.bind(SqlValue::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    let order = format!("ORDER BY received_at_ms DESC, webhook_id DESC LIMIT {limit}");
    let sql = if matches!(filter.webhook_id, Some(IdFilter::Prefix(_))) {
        format!(
            "WITH matching AS MATERIALIZED (SELECT {SUMMARY_COLUMNS} FROM {t} {})
             SELECT {SUMMARY_COLUMNS} FROM matching {order}",
            clause.sql()
        )
    } else {
        format!("SELECT {SUMMARY_COLUMNS} FROM {t} {} {order}", clause.sql())
    };
    (sql, clause.values)
}

/// The counts query of table `t`: by state and type together (a handful of groups, hashed),
/// of what `filter` keeps, its states aside.
pub(super) fn counts_sql(t: &str, filter: &DeliveryFilter) -> (String, Vec<SqlValue>) {
    let all_states = DeliveryFilter {
        states: Vec::new(),
        ..filter.clone()
    };
    let clause = Where::filter(Placeholders::Dollar, &all_states, None, None);
    (
        format!(
            "SELECT state, event_type, count(*) FROM {t} {} GROUP BY state, event_type",
            clause.sql()
        ),
        clause.values,
    )
}

/// The list and counts queries of table `t` for each shape of filter, by name, for the plan
/// tests (the shapes of `sqlite::statements_for_tests`).
#[cfg(feature = "testing")]
pub(super) fn shapes_for_tests(t: &str) -> Vec<(String, String)> {
    use crate::record::DeliveryState::{Dead, Retrying};
    let cursor = Cursor {
        received_at_ms: 1,
        webhook_id: "msg".into(),
    };
    let shapes = [
        ("everything", DeliveryFilter::new(), None),
        ("one state", DeliveryFilter::new().state(Dead), Some(Dead)),
        (
            "a type",
            DeliveryFilter::new().event_type("contract.signed"),
            None,
        ),
        (
            "a group",
            DeliveryFilter::new().event_type("contract"),
            None,
        ),
        (
            "a time range",
            DeliveryFilter::new().received_since(1).received_until(2),
            None,
        ),
        ("an id", DeliveryFilter::new().id("msg_1"), None),
        (
            "an id prefix",
            DeliveryFilter::new().id_prefix("msg_"),
            None,
        ),
        (
            "a state and a type",
            DeliveryFilter::new()
                .state(Retrying)
                .event_type("producersync.updates_available"),
            Some(Retrying),
        ),
        (
            "a state and a group",
            DeliveryFilter::new().state(Dead).event_type("contract"),
            Some(Dead),
        ),
        (
            "a state and a time range",
            DeliveryFilter::new().state(Dead).received_since(1),
            Some(Dead),
        ),
    ];
    let mut statements = Vec::new();
    for (shape, filter, state) in shapes {
        for (page, after) in [("first page", None), ("next page", Some(&cursor))] {
            let (sql, _) = list_sql(t, &filter, state, after, 51);
            statements.push((format!("list: {shape}, {page}"), sql));
        }
        if state.is_none() {
            let (sql, _) = counts_sql(t, &filter);
            statements.push((format!("counts: {shape}"), sql));
        }
    }
    statements
}

fn state_from(row: &Row, column: usize) -> Result<DeliveryState, tokio_postgres::Error> {
    let name: String = row.try_get(column)?;
    // A state the check constraint lets in is one of these; anything else reads as dead,
    // where an operator sees it.
    Ok(name.parse().unwrap_or(DeliveryState::Dead))
}

fn summary_from_row(row: &Row) -> Result<DeliverySummary, tokio_postgres::Error> {
    let state = state_from(row, 2)?;
    Ok(DeliverySummary {
        webhook_id: row.try_get(0)?,
        event_type: row.try_get(1)?,
        state,
        received_at_ms: row.try_get(3)?,
        attempts: attempt_count(i64::from(row.try_get::<_, i32>(4)?)),
        last_error: row.try_get(5)?,
        next_run_at_ms: matches!(state, DeliveryState::Waiting | DeliveryState::Retrying)
            .then(|| row.try_get(6))
            .transpose()?,
        occurred_at_ms: row.try_get(7)?,
    })
}

fn entry_from_row(row: &Row) -> Result<HistoryEntry, tokio_postgres::Error> {
    let at_ms = row.try_get(0)?;
    let kind: String = row.try_get(1)?;
    let actor = || -> Result<String, tokio_postgres::Error> {
        Ok(row.try_get::<_, Option<String>>(7)?.unwrap_or_default())
    };
    let event = match kind.as_str() {
        "attempt" => {
            let outcome: Option<String> = row.try_get(4)?;
            HistoryEvent::Attempt {
                number: attempt_count(i64::from(row.try_get::<_, Option<i32>>(2)?.unwrap_or(0))),
                duration_ms: u64::try_from(row.try_get::<_, Option<i64>>(3)?.unwrap_or(0))
                    .unwrap_or(0),
                outcome: outcome
                    .as_deref()
                    .and_then(AttemptOutcome::parse)
                    .unwrap_or(AttemptOutcome::LeaseExpired),
                error: row.try_get(5)?,
                worker: row.try_get::<_, Option<String>>(6)?.unwrap_or_default(),
            }
        }
        "replayed" => HistoryEvent::Replayed { by: actor()? },
        "discarded" => HistoryEvent::Discarded { by: actor()? },
        "forgotten" => HistoryEvent::Forgotten { by: actor()? },
        _ => HistoryEvent::Resent,
    };
    Ok(HistoryEntry { at_ms, event })
}

/// `values` as the parameters of a statement.
fn params(values: &[SqlValue]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|value| value as &(dyn ToSql + Sync))
        .collect()
}

fn changed(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

impl PostgresBackend {
    /// One page: a query per state the filter names, merged newest first.
    pub(super) async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<DeliveryPage, StoreError> {
        let wanted = limit.saturating_add(1);
        let queries: Vec<(String, Vec<SqlValue>)> = list_states(filter)
            .into_iter()
            .map(|state| list_sql(self.table(), filter, state, after, wanted))
            .collect();
        let rows = self
            .bounded("list deliveries", |client| async move {
                let mut rows = Vec::new();
                for (sql, values) in &queries {
                    let statement = client.prepare_cached(sql).await?;
                    rows.extend(client.query(&statement, &params(values)).await?);
                }
                Ok(rows)
            })
            .await?;
        let candidates = rows
            .iter()
            .map(summary_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| pg_error("read a delivery", &err))?;
        Ok(DeliveryPage::from_candidates(candidates, limit))
    }

    pub(super) async fn count_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<DeliveryCounts, StoreError> {
        let (sql, values) = counts_sql(self.table(), filter);
        let (sql, values) = (&sql, &values);
        let rows = self
            .bounded("count deliveries", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                client.query(&statement, &params(values)).await
            })
            .await?;
        let mut counts = DeliveryCounts::empty();
        for row in &rows {
            let read = || -> Result<(DeliveryState, String, i64), tokio_postgres::Error> {
                Ok((state_from(row, 0)?, row.try_get(1)?, row.try_get(2)?))
            };
            let (state, event_type, n) = read().map_err(|err| pg_error("read a count", &err))?;
            *counts.by_state.entry(state).or_default() += changed(n);
            *counts.by_type.entry(event_type).or_default() += changed(n);
        }
        Ok(counts)
    }

    /// The delivery and its history, read in one snapshot.
    pub(super) async fn delivery_record(
        &self,
        webhook_id: &str,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let (one, history) = (&self.record.one, &self.record.history);
        let found = self
            .bounded("show a delivery", |mut client| async move {
                let transaction = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await?;
                let one = transaction.prepare_cached(one).await?;
                let Some(row) = transaction.query_opt(&one, &[&webhook_id]).await? else {
                    return Ok(None);
                };
                let history = transaction.prepare_cached(history).await?;
                let entries = transaction.query(&history, &[&webhook_id]).await?;
                transaction.commit().await?;
                Ok(Some((row, entries)))
            })
            .await?;
        let Some((row, entries)) = found else {
            return Ok(None);
        };
        let read = || -> Result<DeliveryRecord, tokio_postgres::Error> {
            let state = state_from(&row, 6)?;
            let history = entries
                .iter()
                .map(entry_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            let seq = i64::from(row.try_get::<_, i32>(13)?);
            let kept = i64::try_from(history.len()).unwrap_or(i64::MAX);
            Ok(DeliveryRecord {
                delivery: delivery_from_row(&row)?,
                state,
                attempts: attempt_count(i64::from(row.try_get::<_, i32>(7)?)),
                last_error: row.try_get(8)?,
                next_run_at_ms: matches!(state, DeliveryState::Waiting | DeliveryState::Retrying)
                    .then(|| row.try_get(9))
                    .transpose()?,
                done_at_ms: row.try_get(10)?,
                died_at_ms: row.try_get(11)?,
                // The last worker that claimed it, as the other engines show it.
                worker: row.try_get(12)?,
                history,
                history_dropped: u64::try_from(seq.saturating_sub(kept)).unwrap_or(0),
            })
        };
        read()
            .map(Some)
            .map_err(|err| pg_error("read a delivery", &err))
    }

    /// Replays those of `ids` that are in one of `states`, recording who asked; how many.
    pub(super) async fn replay_ids(
        &self,
        ids: &[String],
        by: &str,
        states: &[DeliveryState],
    ) -> Result<u64, StoreError> {
        let states: Vec<&str> = states.iter().map(|state| state.as_str()).collect();
        let sql = &self.record.replay;
        let (states, ids) = (&states, &ids);
        let count: i64 = self
            .bounded_durable("replay", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                client
                    .query_one(&statement, &[ids, &by, states])
                    .await?
                    .try_get(0)
            })
            .await?;
        Ok(changed(count))
    }

    /// Replays every done or dead delivery `filter` keeps, newest first, at most `max` (and
    /// [`MAX_BULK`]), in one statement: all or none.
    pub(super) async fn replay_filtered(
        &self,
        filter: &DeliveryFilter,
        by: &str,
        max: usize,
    ) -> Result<u64, StoreError> {
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
        let page = self.list_deliveries(&replayable, None, max).await?;
        let ids: Vec<String> = page
            .deliveries
            .into_iter()
            .map(|summary| summary.webhook_id)
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        self.replay_ids(&ids, by, &replayable.states).await
    }

    /// Runs one of the actions on one id (`$1`), with `by` (`$2`) and `extra` after them.
    async fn act(
        &self,
        what: &'static str,
        sql: &str,
        webhook_id: &str,
        by: &str,
        extra: Option<&str>,
    ) -> Result<bool, StoreError> {
        let count: i64 = self
            .bounded_durable(what, |client| async move {
                let statement = client.prepare_cached(sql).await?;
                let row = match extra {
                    Some(extra) => {
                        client
                            .query_one(&statement, &[&webhook_id, &by, &extra])
                            .await?
                    }
                    None => client.query_one(&statement, &[&webhook_id, &by]).await?,
                };
                row.try_get(0)
            })
            .await?;
        Ok(count == 1)
    }

    pub(super) async fn discard_delivery(
        &self,
        webhook_id: &str,
        by: &str,
    ) -> Result<bool, StoreError> {
        let error = format!("discarded by operator ({by})");
        self.act(
            "discard a delivery",
            &self.record.discard,
            webhook_id,
            by,
            Some(&error),
        )
        .await
    }

    pub(super) async fn forget_id(&self, webhook_id: &str, by: &str) -> Result<bool, StoreError> {
        self.act("forget an id", &self.record.forget, webhook_id, by, None)
            .await
    }

    pub(super) async fn purge_dead_before(
        &self,
        before_ms: i64,
        max: usize,
    ) -> Result<u64, StoreError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let sql = &self.record.purge_dead_before;
        let count: i64 = self
            .bounded_durable("purge dead letters", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                client
                    .query_one(&statement, &[&before_ms, &max])
                    .await?
                    .try_get(0)
            })
            .await?;
        Ok(changed(count))
    }
}
