//! What the SQL engines share of the record's queries: a [`DeliveryFilter`] as a `WHERE`
//! clause with its parameters, written once for SQLite's `?N` and PostgreSQL's `$N`.

use agentsync_webhooks_core::EventGroup;

use crate::record::{Cursor, DeliveryFilter, DeliveryState, IdFilter, TypeFilter};

/// One parameter of a generated statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqlValue {
    Int(i64),
    Text(String),
}

/// How an engine writes its `n`th (1-based) placeholder.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Placeholders {
    /// `?1`, `?2`, ...
    Question,
    /// `$1`, `$2`, ...
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Dollar,
}

/// A `WHERE` clause under construction: its conditions and parameters.
#[derive(Debug)]
pub(crate) struct Where {
    style: Placeholders,
    conditions: Vec<String>,
    pub(crate) values: Vec<SqlValue>,
}

impl Where {
    pub(crate) fn new(style: Placeholders) -> Self {
        Self {
            style,
            conditions: Vec::new(),
            values: Vec::new(),
        }
    }

    /// The placeholder for a new parameter `value`.
    pub(crate) fn bind(&mut self, value: SqlValue) -> String {
        self.values.push(value);
        match self.style {
            Placeholders::Question => format!("?{}", self.values.len()),
            Placeholders::Dollar => format!("${}", self.values.len()),
        }
    }

    /// Adds a condition (already written with placeholders from [`bind`](Self::bind)).
    pub(crate) fn and(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    /// The filter's type, time, id and delay conditions, and its state (`state`: one state, or the
    /// filter's states are left to the caller). `cursor`: only what comes after it, newest
    /// first.
    pub(crate) fn filter(
        style: Placeholders,
        filter: &DeliveryFilter,
        state: Option<DeliveryState>,
        cursor: Option<&Cursor>,
    ) -> Self {
        let mut clause = Self::new(style);
        if let Some(state) = state {
            let p = clause.bind(SqlValue::Text(state.as_str().to_owned()));
            clause.and(format!("state = {p}"));
        }
        match &filter.event_type {
            None => {}
            Some(TypeFilter::Type(event_type)) => {
                let p = clause.bind(SqlValue::Text(event_type.clone()));
                clause.and(format!("event_type = {p}"));
            }
            Some(TypeFilter::Group(group)) => {
                let p = clause.bind(SqlValue::Text(group.as_str().to_owned()));
                clause.and(format!("event_group = {p}"));
            }
        }
        if let Some(since) = filter.received_since_ms {
            let p = clause.bind(SqlValue::Int(since));
            clause.and(format!("received_at_ms >= {p}"));
        }
        if let Some(until) = filter.received_until_ms {
            let p = clause.bind(SqlValue::Int(until));
            clause.and(format!("received_at_ms < {p}"));
        }
        match &filter.webhook_id {
            None => {}
            Some(IdFilter::Exact(id)) => {
                let p = clause.bind(SqlValue::Text(id.clone()));
                clause.and(format!("webhook_id = {p}"));
            }
            Some(IdFilter::Prefix(prefix)) => {
                // A range, so that an index on the id serves it (LIKE would not, and would
                // read `%` and `_` in the prefix as wildcards).
                let low = clause.bind(SqlValue::Text(prefix.clone()));
                let high = clause.bind(SqlValue::Text(format!("{prefix}\u{10FFFF}")));
                clause.and(format!("webhook_id >= {low} AND webhook_id < {high}"));
            }
        }
        if let Some(min) = filter.min_delay_ms {
            // No index holds the delay: it narrows the rows the other conditions' index walk
            // returns. A row stored without an occurred-at has no delay and is left out.
            let p = clause.bind(SqlValue::Int(min));
            clause.and(format!(
                "occurred_at_ms IS NOT NULL AND received_at_ms - occurred_at_ms >= {p}"
            ));
        }
        if let Some(cursor) = cursor {
            let ms = clause.bind(SqlValue::Int(cursor.received_at_ms));
            let id = clause.bind(SqlValue::Text(cursor.webhook_id.clone()));
            clause.and(format!("(received_at_ms, webhook_id) < ({ms}, {id})"));
        }
        clause
    }

    /// `WHERE ...`, or nothing when there is no condition.
    pub(crate) fn sql(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }
}

/// The portal group a stored type belongs to, as the `event_group` column holds it (`''` for
/// a type in no group).
pub(crate) fn group_of(event_type: &str) -> &'static str {
    EventGroup::of(event_type).map_or("", EventGroup::as_str)
}

/// The states one list query per state reads: the filter's states, or `None` for one query
/// over every state.
pub(crate) fn list_states(filter: &DeliveryFilter) -> Vec<Option<DeliveryState>> {
    if filter.states.is_empty() {
        vec![None]
    } else {
        filter.states_or_all().into_iter().map(Some).collect()
    }
}
