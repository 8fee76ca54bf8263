//! How stored values are shown: times, one-line cells, escaped control characters, JSON bodies
//! re-indented in their own order, and signatures shortened.

use std::time::Duration;

use agentsync_webhooks_queue::record::{
    DeliveryCounts, DeliveryFilter, DeliveryState, IdFilter, TypeFilter,
};

/// Milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms since the epoch"),
        |at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// `text` on one line: runs of whitespace (newlines too) become one space, other control
/// characters are escaped (a stored value must not drive the terminal), and past `max`
/// characters it is cut with `...`.
pub fn one_line(text: &str, max: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let escaped = printable(&joined);
    if escaped.chars().count() <= max {
        return escaped;
    }
    let mut cut: String = escaped.chars().take(max.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}

/// `text` with its control characters other than newline and tab escaped (`\u{1b}`).
pub fn printable(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// The body re-indented, two spaces a level, when it is JSON; the members keep their order and
/// the numbers and strings their exact text.
pub fn pretty_json(body: &[u8]) -> Option<String> {
    // Checked, not parsed into values: 1e400 or any depth is JSON, shown as stored.
    serde_json::from_slice::<Box<serde_json::value::RawValue>>(body).ok()?;
    let text = std::str::from_utf8(body).ok()?;
    let mut pretty = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |pretty: &mut String, depth: usize| {
        pretty.push('\n');
        pretty.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            pretty.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                pretty.push(c);
            }
            '{' | '[' => {
                pretty.push(c);
                while chars.peek().is_some_and(|next| next.is_ascii_whitespace()) {
                    chars.next();
                }
                if chars.peek().is_some_and(|next| matches!(next, '}' | ']')) {
                    // `{}` and `[]` stay on one line.
                    pretty.extend(chars.next());
                } else {
                    depth += 1;
                    newline(&mut pretty, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut pretty, depth);
                pretty.push(c);
            }
            ',' => {
                pretty.push(c);
                newline(&mut pretty, depth);
            }
            ':' => pretty.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => pretty.push(c),
        }
    }
    Some(pretty)
}

/// A time given in ms since the epoch as RFC 3339 UTC with milliseconds, or `null`.
pub fn rfc3339_json(ms: Option<i64>) -> serde_json::Value {
    ms.map_or(serde_json::Value::Null, |ms| rfc3339_ms(ms).into())
}

/// `1 attempt`, `5 attempts`.
pub fn attempts_text(attempts: u32) -> String {
    match attempts {
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts"),
    }
}

/// The widest of `values` once shown on one line, in characters.
pub fn column_width<'a>(values: impl Iterator<Item = &'a String>) -> usize {
    values
        .map(|value| one_line(value, usize::MAX).chars().count())
        .max()
        .unwrap_or(0)
}

/// How many characters of each signature `short_signature` keeps after its version.
const SIGNATURE_CHARS: usize = 8;

/// A `webhook-signature` header shortened: each space-separated `version,signature` keeps its
/// version and the first few characters, enough to tell two apart, never enough to reuse.
///
/// The whole header is an HMAC (or Ed25519 signature) of the body that anyone holding it can
/// replay against the receiver within the timestamp tolerance: it is not printed in full.
pub fn short_signature(header: &str) -> String {
    header
        .split_whitespace()
        .map(|part| {
            let (version, signature) = part.split_once(',').unwrap_or(("", part));
            let kept: String = signature.chars().take(SIGNATURE_CHARS).collect();
            let cut = if signature.chars().count() > SIGNATURE_CHARS {
                "..."
            } else {
                ""
            };
            let version = if version.is_empty() {
                String::new()
            } else {
                format!("{},", printable(version))
            };
            format!("{version}{}{cut}", printable(&kept))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A duration as people read it: `850 ms`, `42 s`, `3m 05s`, `2h 10m`, `3d 4h`.
pub fn human_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    let secs = duration.as_secs();
    match secs {
        0 => format!("{ms} ms"),
        1..60 => format!("{secs} s"),
        60..3_600 => format!("{}m {:02}s", secs / 60, secs % 60),
        3_600..86_400 => format!("{}h {:02}m", secs / 3_600, secs % 3_600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

/// The body as a JSON value for `--format json`: the JSON itself when it parses (and whether it
/// did), else the text, lossily.
pub fn body_json(body: &[u8]) -> (serde_json::Value, bool) {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => (json, true),
        Err(_) => (
            serde_json::Value::String(String::from_utf8_lossy(body).into_owned()),
            false,
        ),
    }
}

/// What `filter` keeps, in words (plural unless `count` is 1): `dead letters`, `retrying or
/// dead deliveries of group contract received since 2026-05-12T08:00:00.000Z`.
pub fn what(filter: &DeliveryFilter, count: u64) -> String {
    let one = count == 1;
    let mut words = if filter.states == [DeliveryState::Dead] {
        (if one { "dead letter" } else { "dead letters" }).to_owned()
    } else {
        let noun = if one { "delivery" } else { "deliveries" };
        if filter.states.is_empty() {
            noun.to_owned()
        } else {
            let states: Vec<&str> = filter
                .states_or_all()
                .into_iter()
                .map(DeliveryState::as_str)
                .collect();
            let listed = match states.split_last() {
                Some((last, [])) => (*last).to_owned(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            };
            format!("{listed} {noun}")
        }
    };
    match &filter.event_type {
        Some(TypeFilter::Type(t)) => words.push_str(&format!(" of type {}", one_line(t, 256))),
        Some(TypeFilter::Group(g)) => words.push_str(&format!(" of group {}", g.as_str())),
        None => {}
    }
    match (filter.received_since_ms, filter.received_until_ms) {
        (Some(since), Some(until)) => words.push_str(&format!(
            " received from {} to {}",
            rfc3339_ms(since),
            rfc3339_ms(until)
        )),
        (Some(since), None) => words.push_str(&format!(" received since {}", rfc3339_ms(since))),
        (None, Some(until)) => words.push_str(&format!(" received before {}", rfc3339_ms(until))),
        (None, None) => {}
    }
    match &filter.webhook_id {
        Some(IdFilter::Exact(id)) => words.push_str(&format!(" with webhook-id {id}")),
        Some(IdFilter::Prefix(prefix)) => {
            words.push_str(&format!(" with a webhook-id starting {prefix}"));
        }
        None => {}
    }
    if let Some(min) = filter.min_delay_ms {
        let min = Duration::from_millis(u64::try_from(min).unwrap_or(0));
        words.push_str(&format!(
            " received at least {} after their event occurred",
            human_duration(min)
        ));
    }
    words
}

/// A delivery's delay (received minus occurred) for a table: `delay 2h 00m`, or `delay -`
/// when its occurred-at is not on record.
pub fn delay_text(delay: Option<Duration>) -> String {
    delay.map_or_else(
        || "delay -".to_owned(),
        |delay| format!("delay {}", human_duration(delay)),
    )
}

/// The non-zero counts by state, in a delivery's life order: `1 waiting, 2 dead` (or `none`).
pub fn by_state(counts: &DeliveryCounts) -> String {
    let parts: Vec<String> = DeliveryState::ALL
        .into_iter()
        .filter_map(|state| {
            let n = counts.state(state);
            (n > 0).then(|| format!("{n} {state}"))
        })
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// How many deliveries of `counts` are in the states `filter` keeps.
pub fn matching(filter: &DeliveryFilter, counts: &DeliveryCounts) -> u64 {
    filter
        .states_or_all()
        .into_iter()
        .map(|state| counts.state(state))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_is_shown_safely() {
        assert_eq!(
            one_line("boom\n  at line 2\x1b[31m", 100),
            "boom at line 2\\u{1b}[31m"
        );
        assert_eq!(one_line("abcdefghij", 8), "abcde...");
        assert_eq!(printable("a\nb\u{7}"), "a\nb\\u{7}");
    }

    #[test]
    fn json_bodies_are_reindented_in_their_order() {
        let body = br#"{"type":"x","data":{"b":1,"a":[1.50,{}, []],"s":"a,{\"b\":[c]}"}}"#;
        assert_eq!(
            pretty_json(body).unwrap(),
            "{\n  \"type\": \"x\",\n  \"data\": {\n    \"b\": 1,\n    \"a\": [\n      1.50,\n      \
             {},\n      []\n    ],\n    \"s\": \"a,{\\\"b\\\":[c]}\"\n  }\n}"
        );
        assert_eq!(pretty_json(b"not json"), None);
        assert_eq!(pretty_json(b"42").as_deref(), Some("42"));
    }

    #[test]
    fn signatures_are_shortened_each_to_its_version_and_a_few_characters() {
        assert_eq!(
            short_signature("v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="),
            "v1,K5oZfzN9..."
        );
        assert_eq!(
            short_signature("v1,K5oZfzN95Z9UVu1E v1a,hnkZ2pj9o9NDN/H/pI4= v1,short"),
            "v1,K5oZfzN9... v1a,hnkZ2pj9... v1,short"
        );
        assert_eq!(short_signature("garbage\x1b[31mmore"), "garbage\\u{1b}...");
        assert_eq!(short_signature(""), "");
    }

    #[test]
    fn filters_are_said_in_words() {
        use agentsync_webhooks_core::EventGroup;

        let dead = DeliveryFilter::new().state(DeliveryState::Dead);
        assert_eq!(what(&dead, 2), "dead letters");
        assert_eq!(what(&dead, 1), "dead letter");
        assert_eq!(what(&DeliveryFilter::new(), 1), "delivery");
        let failed = DeliveryFilter::new()
            .states([DeliveryState::Dead, DeliveryState::Retrying])
            .group(EventGroup::Contract)
            .received_since(1_700_000_000_123)
            .id_prefix("msg_");
        assert_eq!(
            what(&failed, 0),
            "retrying or dead deliveries of group contract received since \
             2023-11-14T22:13:20.123Z with a webhook-id starting msg_"
        );
        let three = DeliveryFilter::new()
            .states([
                DeliveryState::Done,
                DeliveryState::Waiting,
                DeliveryState::Dead,
            ])
            .event_type("contract.updated");
        assert_eq!(
            what(&three, 3),
            "waiting, done or dead deliveries of type contract.updated"
        );
        let mut counts = DeliveryCounts::empty();
        assert_eq!(by_state(&counts), "none");
        counts.by_state.insert(DeliveryState::Dead, 2);
        counts.by_state.insert(DeliveryState::Waiting, 1);
        assert_eq!(by_state(&counts), "1 waiting, 2 dead");
        assert_eq!(matching(&dead, &counts), 2);
        assert_eq!(matching(&DeliveryFilter::new(), &counts), 3);
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(human_duration(Duration::from_secs(42)), "42 s");
        assert_eq!(human_duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(human_duration(Duration::from_secs(7_800)), "2h 10m");
        assert_eq!(human_duration(Duration::from_secs(273_600)), "3d 4h");
    }
}
