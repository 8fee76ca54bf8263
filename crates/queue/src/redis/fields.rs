//! A stream entry's fields, read back into a delivery (and a dead letter's extras).

use agentsync_webhooks_core::{
    handoff::ReceivedDelivery,
    idempotency::{StoreError, StoreErrorKind},
};
use bytes::Bytes;

use crate::backend::{DeadLetter, attempt_count};

/// The fields of a stream entry, read back.
pub(super) struct Fields {
    pub(super) delivery: ReceivedDelivery,
    pub(super) attempts: i64,
    /// A keyed delivery's ordering key and occurred-at (ms).
    pub(super) order: Option<(String, i64)>,
    error: String,
    died_at_ms: i64,
}

impl Fields {
    pub(super) fn parse(raw: Vec<Vec<u8>>) -> Result<Self, StoreError> {
        Self::parse_keeping(raw).map_err(|(err, _)| err)
    }

    /// [`Fields::parse`], the fields given back with the error when they do not decode (for
    /// [`Mended::of`]); the body is moved out only once every field has decoded.
    pub(super) fn parse_keeping(mut raw: Vec<Vec<u8>>) -> Result<Self, (StoreError, Vec<Vec<u8>>)> {
        let decoded = (|| {
            let mut webhook_id = None;
            let mut event_type = None;
            let mut webhook_timestamp = None;
            let mut signature = None;
            let mut received_at_ms = None;
            let mut body = None;
            let mut attempts = 0;
            let mut error = String::new();
            let mut died_at_ms = 0;
            let mut key = None;
            let mut occurred_at_ms = None;
            for (i, pair) in raw.chunks_exact(2).enumerate() {
                let value = pair[1].as_slice();
                match pair[0].as_slice() {
                    b"id" => webhook_id = Some(text(value)?),
                    b"type" => event_type = Some(text(value)?),
                    b"ts" => webhook_timestamp = Some(number(value)?),
                    b"sig" => signature = Some(text(value)?),
                    b"recv" => received_at_ms = Some(number(value)?),
                    b"body" => body = Some(2 * i + 1),
                    b"a" => attempts = number(value)?,
                    b"err" => error = text(value)?,
                    b"died" => died_at_ms = number(value)?,
                    b"ok" => key = Some(text(value)?),
                    b"oat" => occurred_at_ms = Some(number(value)?),
                    _ => {}
                }
            }
            match (
                webhook_id,
                event_type,
                webhook_timestamp,
                signature,
                received_at_ms,
                body,
            ) {
                (
                    Some(webhook_id),
                    Some(event_type),
                    Some(webhook_timestamp),
                    Some(signature),
                    Some(received_at_ms),
                    Some(body),
                ) => Ok((
                    webhook_id,
                    event_type,
                    webhook_timestamp,
                    signature,
                    received_at_ms,
                    body,
                    attempts,
                    key.zip(occurred_at_ms),
                    error,
                    died_at_ms,
                )),
                _ => Err(malformed("a queue entry lacks a field")),
            }
        })();
        match decoded {
            Ok((
                webhook_id,
                event_type,
                webhook_timestamp,
                signature,
                received_at_ms,
                body,
                attempts,
                order,
                error,
                died_at_ms,
            )) => Ok(Self {
                delivery: ReceivedDelivery {
                    webhook_id,
                    event_type,
                    webhook_timestamp,
                    signature,
                    received_at_ms,
                    body: Bytes::from(std::mem::take(&mut raw[body])),
                },
                attempts,
                order,
                error,
                died_at_ms,
            }),
            Err(err) => Err((err, raw)),
        }
    }

    pub(super) fn into_dead_letter(self) -> DeadLetter {
        DeadLetter {
            delivery: self.delivery,
            attempts: attempt_count(self.attempts),
            last_error: self.error,
            died_at_ms: self.died_at_ms,
        }
    }
}

fn text(value: &[u8]) -> Result<String, StoreError> {
    std::str::from_utf8(value)
        .map(str::to_owned)
        .map_err(|_| malformed("a queue entry has a text field that is not UTF-8"))
}

fn number(value: &[u8]) -> Result<i64, StoreError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| malformed("a queue entry has a number field that is not a number"))
}

fn malformed(message: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Other, message)
}

/// Field name-value pairs, in order.
pub(super) type FieldPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// What a claimed entry that does not decode becomes: the flaws found (one sentence each,
/// naming the field and what it held) and, when its webhook id and body are there, fields that
/// decode, for a dead letter: each field that does not hold what this library writes mended to
/// a value that does (a text field's bytes kept where they can be, a missing text empty, a
/// timestamp that is not a number 0, a received-at that is not a number the entry's time), the
/// ordering key dropped when it or its occurred-at does not decode. Without an id or a body
/// there is nothing to replay: `fields` is `None`, and the entry goes to the quarantine.
pub(super) struct Mended {
    /// What was wrong, one sentence each.
    pub(super) flaws: Vec<String>,
    /// The fields of the dead letter (without `a`, `err`, `died`, which the bury writes), and
    /// the attempts the entry held (0 when not a number).
    pub(super) dead: Option<(FieldPairs, i64)>,
}

impl Mended {
    /// `raw`, the fields of the stream entry `entry` (`<ms>-<seq>`), which did not decode.
    pub(super) fn of(raw: &[Vec<u8>], entry: &str) -> Self {
        // The last value of each field, as `Fields::parse` reads them.
        let mut last: Vec<(&[u8], &[u8])> = Vec::new();
        for pair in raw.chunks_exact(2) {
            let (name, value) = (pair[0].as_slice(), pair[1].as_slice());
            match last.iter_mut().find(|(known, _)| *known == name) {
                Some(slot) => slot.1 = value,
                None => last.push((name, value)),
            }
        }
        if raw.len() % 2 == 1 {
            // A field name without a value (not something XADD can write).
            last.push((raw[raw.len() - 1].as_slice(), b""));
        }
        let get = |name: &[u8]| {
            last.iter()
                .find(|(known, _)| *known == name)
                .map(|(_, v)| *v)
        };
        let mut flaws = Vec::new();
        let mut out: FieldPairs = Vec::new();
        let text_field =
            |name: &'static str, what: &str, flaws: &mut Vec<String>| match get(name.as_bytes()) {
                None => {
                    flaws.push(format!("field `{name}` ({what}) is missing"));
                    Vec::new()
                }
                Some(value) if std::str::from_utf8(value).is_err() => {
                    flaws.push(format!(
                        "field `{name}` ({what}) is not UTF-8: {}",
                        shown(value)
                    ));
                    String::from_utf8_lossy(value).into_owned().into_bytes()
                }
                Some(value) => value.to_vec(),
            };
        let id = get(b"id").filter(|id| std::str::from_utf8(id).is_ok() && !id.is_empty());
        match get(b"id") {
            None => flaws.push("field `id` (the webhook id) is missing".to_owned()),
            Some(value) if std::str::from_utf8(value).is_err() => flaws.push(format!(
                "field `id` (the webhook id) is not UTF-8: {}",
                shown(value)
            )),
            Some(b"") => flaws.push("field `id` (the webhook id) is empty".to_owned()),
            Some(_) => {}
        }
        let body = get(b"body");
        if body.is_none() {
            flaws.push("field `body` (the raw body) is missing".to_owned());
        }
        out.push((b"id".to_vec(), id.unwrap_or_default().to_vec()));
        out.push((
            b"type".to_vec(),
            text_field("type", "the event type", &mut flaws),
        ));
        out.push((
            b"sig".to_vec(),
            text_field("sig", "the signature header", &mut flaws),
        ));
        let mut number_field =
            |name: &'static str, what: &str, default: i64| match get(name.as_bytes()) {
                Some(value) if number(value).is_ok() => value.to_vec(),
                Some(value) => {
                    flaws.push(format!(
                        "field `{name}` ({what}) is not a number: {}",
                        shown(value)
                    ));
                    default.to_string().into_bytes()
                }
                None => {
                    flaws.push(format!("field `{name}` ({what}) is missing"));
                    default.to_string().into_bytes()
                }
            };
        let entry_ms = entry
            .split_once('-')
            .and_then(|(ms, _)| ms.parse().ok())
            .unwrap_or(0);
        out.push((
            b"ts".to_vec(),
            number_field("ts", "the webhook timestamp", 0),
        ));
        out.push((
            b"recv".to_vec(),
            number_field("recv", "the received-at", entry_ms),
        ));
        let attempts = match get(b"a") {
            None => 0,
            Some(value) => number(value).unwrap_or_else(|_| {
                flaws.push(format!(
                    "field `a` (the attempts) is not a number: {}",
                    shown(value)
                ));
                0
            }),
        };
        match (get(b"ok"), get(b"oat")) {
            (Some(key), Some(at)) => {
                let key_ok = std::str::from_utf8(key).is_ok();
                let at_ok = number(at).is_ok();
                if !key_ok {
                    flaws.push(format!(
                        "field `ok` (the ordering key) is not UTF-8: {}",
                        shown(key)
                    ));
                }
                if !at_ok {
                    flaws.push(format!(
                        "field `oat` (the occurred-at) is not a number: {}",
                        shown(at)
                    ));
                }
                if key_ok && at_ok {
                    out.push((b"ok".to_vec(), key.to_vec()));
                    out.push((b"oat".to_vec(), at.to_vec()));
                } else {
                    flaws.push("its ordering key is dropped".to_owned());
                }
            }
            (Some(key), None) if std::str::from_utf8(key).is_err() => flaws.push(format!(
                "field `ok` (the ordering key) is not UTF-8: {}",
                shown(key)
            )),
            (None, Some(at)) if number(at).is_err() => flaws.push(format!(
                "field `oat` (the occurred-at) is not a number: {}",
                shown(at)
            )),
            _ => {}
        }
        for field in [b"err".as_slice(), b"died"] {
            if let Some(value) = get(field)
                && (std::str::from_utf8(value).is_err()
                    || (field == b"died" && number(value).is_err()))
            {
                flaws.push(format!(
                    "field `{}` is not what this library writes: {}",
                    String::from_utf8_lossy(field),
                    shown(value)
                ));
            }
        }
        // Fields this library does not read are kept as they are.
        const KNOWN: &[&[u8]] = &[
            b"id", b"type", b"ts", b"sig", b"recv", b"body", b"a", b"err", b"died", b"ok", b"oat",
        ];
        for (name, value) in &last {
            if !KNOWN.contains(name) {
                out.push((name.to_vec(), value.to_vec()));
            }
        }
        let dead = match (id, body) {
            (Some(_), Some(body)) => {
                out.push((b"body".to_vec(), body.to_vec()));
                Some((out, attempts))
            }
            _ => None,
        };
        Self { flaws, dead }
    }
}

/// A field's value for a reason: as text when it is, else its bytes in hex; at most 64 bytes.
fn shown(value: &[u8]) -> String {
    let cut = &value[..value.len().min(64)];
    let more = if cut.len() < value.len() { "…" } else { "" };
    match std::str::from_utf8(cut) {
        Ok(text) => format!("{text:?}{more}"),
        Err(_) => {
            let hex: String = cut.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}{more}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pairs: &[(&str, &[u8])]) -> Vec<Vec<u8>> {
        pairs
            .iter()
            .flat_map(|(name, value)| [name.as_bytes().to_vec(), value.to_vec()])
            .collect()
    }

    const GOOD: &[(&str, &[u8])] = &[
        ("id", b"msg_1"),
        ("type", b"producersync.updates_available"),
        ("ts", b"1700000000"),
        ("sig", b"v1,abc"),
        ("recv", b"1700000000123"),
        ("body", b"{\"a\":1}"),
        ("a", b"2"),
        ("ok", b"npn:1"),
        ("oat", b"10"),
    ];

    /// `GOOD` with `name` left out (`None`) or set to `value`.
    fn changed(name: &str, value: Option<&'static [u8]>) -> Vec<Vec<u8>> {
        let pairs: Vec<(&str, &[u8])> = GOOD
            .iter()
            .filter_map(|&(n, v)| match (n == name, value) {
                (false, _) => Some((n, v)),
                (true, Some(value)) => Some((n, value)),
                (true, None) => None,
            })
            .collect();
        entry(&pairs)
    }

    #[test]
    fn a_good_entry_parses_with_its_body() {
        let fields = Fields::parse_keeping(entry(GOOD)).unwrap_or_else(|(err, _)| panic!("{err}"));
        assert_eq!(&fields.delivery.body[..], b"{\"a\":1}");
        assert_eq!(fields.attempts, 2);
        assert_eq!(fields.order, Some(("npn:1".to_owned(), 10)));
    }

    /// Each broken entry is given back whole; mended, one with its id and body decodes (the
    /// bury's `a`, `err`, `died` added) and keeps them, one without is for the quarantine.
    #[test]
    fn a_broken_entry_is_given_back_and_mended_into_fields_that_decode() {
        let cases: Vec<(&str, Vec<Vec<u8>>, bool)> = vec![
            ("ts", changed("ts", Some(b"soon")), true),
            ("recv", changed("recv", Some(b"x")), true),
            ("recv", changed("recv", None), true),
            ("sig", changed("sig", Some(b"\xff\xfe")), true),
            ("type", changed("type", None), true),
            ("a", changed("a", Some(b"many")), true),
            ("oat", changed("oat", Some(b"yesterday")), true),
            ("id", changed("id", None), false),
            ("id", changed("id", Some(b"\xff")), false),
            ("body", changed("body", None), false),
        ];
        for (what, raw, buried) in cases {
            let (_, back) = Fields::parse_keeping(raw.clone())
                .map(|_| ())
                .expect_err(what);
            assert_eq!(back, raw, "{what}: the fields are given back whole");
            let mended = Mended::of(&back, "1700000000999-0");
            assert!(
                mended
                    .flaws
                    .iter()
                    .any(|flaw| flaw.contains(&format!("`{what}`"))),
                "{what}: {:?}",
                mended.flaws
            );
            let Some((fields, _attempts)) = mended.dead else {
                assert!(!buried, "{what}: not mended into a dead letter");
                continue;
            };
            assert!(buried, "{what}: mended though it has no id or body");
            let mut dead: Vec<Vec<u8>> = fields
                .into_iter()
                .flat_map(|(name, value)| [name, value])
                .collect();
            dead.extend(entry(&[("a", b"3"), ("err", b"why"), ("died", b"5")]));
            let fields = Fields::parse(dead).unwrap_or_else(|err| panic!("{what}: {err}"));
            assert_eq!(fields.delivery.webhook_id, "msg_1", "{what}");
            assert_eq!(&fields.delivery.body[..], b"{\"a\":1}", "{what}");
            if what == "oat" {
                assert_eq!(fields.order, None, "{what}: the key is dropped");
            }
            if what == "recv" {
                assert_eq!(fields.delivery.received_at_ms, 1_700_000_000_999);
            }
        }
    }
}
