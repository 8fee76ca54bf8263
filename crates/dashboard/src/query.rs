//! A list page's query string: every filter of the record's query as a parameter, so that a
//! view is a URL to share; and the links that keep them.

use agentsync_webhooks_queue::record::{
    Cursor, DeliveryFilter, DeliveryState, IdFilter, TypeFilter,
};

use crate::format;

/// Deliveries on a page unless `limit` says otherwise.
pub(crate) const DEFAULT_LIMIT: usize = 50;
/// The most deliveries on a page.
pub(crate) const MAX_LIMIT: usize = 200;

/// The filters of a list page, as typed (to show them back in the form) and as parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ListQuery {
    /// `state=` (repeated).
    pub states: Vec<DeliveryState>,
    /// `type=`: a type, or a group name.
    pub event_type: String,
    /// `since=`: `1h`, `30m`, `7d`, `2026-12-06T20:57` (UTC) or ms since the epoch.
    pub since: String,
    /// `until=`, like `since`.
    pub until: String,
    /// `id=`: an exact id, or a prefix ending in `*`.
    pub id: String,
    /// `delayed=`: only deliveries received at least this long (`15m`, `1h`, `2d`) after
    /// their event occurred.
    pub delayed: String,
    /// `after=`: the previous page's cursor.
    pub after: Option<Cursor>,
    /// `limit=`.
    pub limit: usize,
    /// `replayed=`: how many the last bulk replay moved (a notice).
    pub replayed: Option<u64>,
    /// What in the query string could not be read.
    pub errors: Vec<String>,
}

impl ListQuery {
    /// Reads a query string (`None`: no query).
    pub(crate) fn parse(query: Option<&str>) -> Self {
        let mut parsed = Self {
            limit: DEFAULT_LIMIT,
            ..Self::default()
        };
        let Some(query) = query else {
            return parsed;
        };
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim();
            match name.as_ref() {
                "state" if value.is_empty() => {}
                "state" => match value.parse::<DeliveryState>() {
                    Ok(state) if !parsed.states.contains(&state) => parsed.states.push(state),
                    Ok(_) => {}
                    Err(error) => parsed.errors.push(error.to_string()),
                },
                "type" => value.clone_into(&mut parsed.event_type),
                "since" => value.clone_into(&mut parsed.since),
                "until" => value.clone_into(&mut parsed.until),
                "id" => value.clone_into(&mut parsed.id),
                "delayed" => value.clone_into(&mut parsed.delayed),
                "after" if value.is_empty() => {}
                "after" => match value.parse::<Cursor>() {
                    Ok(cursor) => parsed.after = Some(cursor),
                    Err(error) => parsed.errors.push(error.to_string()),
                },
                "limit" => match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => parsed.limit = n,
                    _ => parsed
                        .errors
                        .push(format!("limit: a whole number from 1 to {MAX_LIMIT}")),
                },
                "replayed" => parsed.replayed = value.parse().ok(),
                _ => {}
            }
        }
        parsed.states.sort();
        parsed
    }

    /// The record's filter these parameters describe, at `now_ms` (for relative times); an
    /// unreadable time is an error of the query.
    pub(crate) fn filter(&mut self, now_ms: i64) -> DeliveryFilter {
        let mut filter = DeliveryFilter::new().states(self.states.iter().copied());
        if !self.event_type.is_empty() {
            filter.event_type = Some(TypeFilter::parse(&self.event_type));
        }
        for (name, text, slot) in [
            ("since", &self.since, &mut filter.received_since_ms),
            ("until", &self.until, &mut filter.received_until_ms),
        ] {
            if text.is_empty() {
                continue;
            }
            match parse_when(text, now_ms) {
                Some(ms) => *slot = Some(ms),
                None => self.errors.push(format!(
                    "{name}: a time like 1h, 30m, 7d, 2026-12-06T20:57 (UTC) or milliseconds \
                     since the epoch"
                )),
            }
        }
        if !self.delayed.is_empty() {
            match parse_span_ms(&self.delayed).filter(|ms| *ms >= 0) {
                Some(ms) => filter.min_delay_ms = Some(ms),
                None => self
                    .errors
                    .push("delayed over: a duration like 90s, 15m, 1h or 2d".to_owned()),
            }
        }
        if !self.id.is_empty() {
            filter.webhook_id = Some(match self.id.strip_suffix('*') {
                Some(prefix) => IdFilter::Prefix(prefix.to_owned()),
                None => IdFilter::Exact(self.id.clone()),
            });
        }
        filter
    }

    /// The query string of these filters (no cursor), `state` replaced by `states`.
    pub(crate) fn to_query(&self, states: &[DeliveryState], after: Option<&Cursor>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for state in states {
            query.append_pair("state", state.as_str());
        }
        for (name, value) in [
            ("type", &self.event_type),
            ("since", &self.since),
            ("until", &self.until),
            ("id", &self.id),
            ("delayed", &self.delayed),
        ] {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        if self.limit != DEFAULT_LIMIT {
            query.append_pair("limit", &self.limit.to_string());
        }
        if let Some(after) = after {
            query.append_pair("after", &after.to_string());
        }
        query.finish()
    }

    /// `?query`, or nothing when there is none.
    pub(crate) fn link_query(&self, states: &[DeliveryState], after: Option<&Cursor>) -> String {
        let query = self.to_query(states, after);
        if query.is_empty() {
            query
        } else {
            format!("?{query}")
        }
    }
}

/// A time parameter: relative (`90s`, `30m`, `1h`, `7d`: that long before `now_ms`) or
/// absolute ([`format::parse_time`]).
pub(crate) fn parse_when(text: &str, now_ms: i64) -> Option<i64> {
    let text = text.trim();
    if !matches!(text.chars().last()?, 's' | 'm' | 'h' | 'd') {
        return format::parse_time(text);
    }
    Some(now_ms.saturating_sub(parse_span_ms(text)?))
}

/// A span (`90s`, `15m`, `1h`, `2d`) in ms: a whole number and one unit.
pub(crate) fn parse_span_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let unit = match text.chars().last()? {
        's' => 1_000,
        'm' => 60_000,
        'h' => format::HOUR_MS,
        'd' => format::DAY_MS,
        _ => return None,
    };
    let n: i64 = text[..text.len() - 1].parse().ok()?;
    n.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_is_a_parameter_and_round_trips() {
        let cursor = "1700000000123.6d73675f31";
        let mut query = ListQuery::parse(Some(&format!(
            "state=dead&state=retrying&type=contract&since=1h&until=2026-12-06T20:57&id=msg_*\
             &after={cursor}&limit=20&delayed=15m"
        )));
        assert!(query.errors.is_empty(), "{:?}", query.errors);
        let filter = query.filter(10 * format::HOUR_MS);
        assert_eq!(
            filter.states,
            [DeliveryState::Retrying, DeliveryState::Dead]
        );
        assert_eq!(
            filter.event_type,
            Some(TypeFilter::Group(
                agentsync_webhooks_core::EventGroup::Contract
            ))
        );
        assert_eq!(filter.received_since_ms, Some(9 * format::HOUR_MS));
        assert_eq!(
            filter.received_until_ms,
            format::parse_time("2026-12-06T20:57")
        );
        assert_eq!(filter.webhook_id, Some(IdFilter::Prefix("msg_".into())));
        assert_eq!(
            query.after.as_ref().map(ToString::to_string).as_deref(),
            Some(cursor)
        );
        assert_eq!(query.limit, 20);
        assert_eq!(filter.min_delay_ms, Some(15 * 60_000));

        let again = ListQuery::parse(Some(&query.to_query(&query.states, query.after.as_ref())));
        assert_eq!(again.states, query.states);
        assert_eq!(again.delayed, query.delayed);
        assert_eq!(
            (
                again.event_type,
                again.since,
                again.until,
                again.id,
                again.after,
                again.limit
            ),
            (
                query.event_type,
                query.since,
                query.until,
                query.id,
                query.after,
                query.limit
            )
        );
    }

    #[test]
    fn unreadable_parameters_are_errors_never_ignored() {
        let mut query =
            ListQuery::parse(Some("state=lost&after=nope&limit=0&since=soon&delayed=-5m"));
        let _ = query.filter(0);
        assert_eq!(query.errors.len(), 5, "{:?}", query.errors);
        assert_eq!(ListQuery::parse(None).limit, DEFAULT_LIMIT);
        assert_eq!(
            ListQuery::parse(Some("id=msg_1")).filter(0).webhook_id,
            Some(IdFilter::Exact("msg_1".into()))
        );
    }
}
