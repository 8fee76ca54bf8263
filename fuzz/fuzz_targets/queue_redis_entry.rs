//! The Redis queue reading back a stream entry (`XREADGROUP`/`XRANGE` field-value pairs) that
//! someone wrote by hand: structured (`arbitrary`) fields, known names or any bytes, with
//! well-formed values, numbers or any bytes, repeated, in any order, with an odd trailing one,
//! through the decoder every read of the backend uses.
//!
//! NOT BUILT YET: it needs, in `crates/queue/src/redis/mod.rs`, under the `testing` feature,
//!
//! ```ignore
//! #[cfg(feature = "testing")]
//! #[doc(hidden)]
//! pub fn decode_entry_for_fuzzing(fields: Vec<Vec<u8>>) -> Result<DeadLetter, StoreError> {
//!     Fields::parse(fields).map(Fields::into_dead_letter)
//! }
//! ```
//!
//! then `features = ["redis", "testing"]` on the queue dependency and a `[[bin]]` for this file
//! in `fuzz/Cargo.toml` (see README.md).
//!
//! Checks: it never panics; it agrees with a from-scratch model of the entry format (pairs in
//! order, an odd last element ignored, unknown names ignored, the last value of a name wins, a
//! text field must be UTF-8 and a number field an `i64` in decimal wherever it appears, `id`,
//! `type`, `ts`, `sig`, `recv` and `body` required, `a`, `err` and `died` default to 0, "" and
//! 0, attempts saturate into a `u32`); what it decodes, written back as an entry, decodes to the
//! same; an error is `Other`, and is the sentence a canonical entry with the same fault gets
//! (a field missing, a text that is not UTF-8, a number that is not one), so it quotes nothing.
#![no_main]

use agentsync_webhooks_queue::{DeadLetter, StoreErrorKind, redis::decode_entry_for_fuzzing};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Known {
    Id,
    Type,
    Ts,
    Sig,
    Recv,
    Body,
    Attempts,
    Error,
    Died,
}

impl Known {
    const ALL: [Known; 9] = [
        Known::Id,
        Known::Type,
        Known::Ts,
        Known::Sig,
        Known::Recv,
        Known::Body,
        Known::Attempts,
        Known::Error,
        Known::Died,
    ];

    fn name(self) -> &'static [u8] {
        match self {
            Known::Id => b"id",
            Known::Type => b"type",
            Known::Ts => b"ts",
            Known::Sig => b"sig",
            Known::Recv => b"recv",
            Known::Body => b"body",
            Known::Attempts => b"a",
            Known::Error => b"err",
            Known::Died => b"died",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Known::Id | Known::Type | Known::Sig | Known::Error => Kind::Text,
            Known::Ts | Known::Recv | Known::Attempts | Known::Died => Kind::Number,
            Known::Body => Kind::Bytes,
        }
    }
}

enum Kind {
    Text,
    Number,
    Bytes,
}

#[derive(Arbitrary, Debug)]
enum Name {
    Known(Known),
    Other(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Value {
    /// What the backend writes for the field.
    WellFormed,
    Number(i64),
    Text(String),
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    fields: Vec<(Name, Value)>,
    /// A name without its value at the end.
    trailing: Option<Vec<u8>>,
}

fn well_formed(known: Known) -> Vec<u8> {
    match known {
        Known::Id => b"msg_1".to_vec(),
        Known::Type => b"producersync.updates_available".to_vec(),
        Known::Ts => b"1700000000".to_vec(),
        Known::Sig => b"v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".to_vec(),
        Known::Recv => b"1700000000123".to_vec(),
        Known::Body => br#"{"type":"producersync.updates_available"}"#.to_vec(),
        Known::Attempts => b"3".to_vec(),
        Known::Error => b"handler failed".to_vec(),
        Known::Died => b"1700000000999".to_vec(),
    }
}

/// The model's reading: the last value of each known name, or `Err` at the first value that
/// does not fit its field.
fn model(raw: &[Vec<u8>]) -> Result<[Option<Vec<u8>>; 9], ()> {
    let mut last: [Option<Vec<u8>>; 9] = Default::default();
    for pair in raw.chunks_exact(2) {
        // The event-time fields: the ordering key is text, its occurred-at a number; checked
        // like the others, not part of a dead letter.
        let event_time = match pair[0].as_slice() {
            b"ok" => Some(std::str::from_utf8(&pair[1]).is_ok()),
            b"oat" => Some(std::str::from_utf8(&pair[1]).is_ok_and(|v| v.parse::<i64>().is_ok())),
            _ => None,
        };
        if let Some(fits) = event_time {
            if !fits {
                return Err(());
            }
            continue;
        }
        let Some(i) = Known::ALL
            .iter()
            .position(|k| k.name() == pair[0].as_slice())
        else {
            continue;
        };
        let value = &pair[1];
        let fits = match Known::ALL[i].kind() {
            Kind::Text => std::str::from_utf8(value).is_ok(),
            Kind::Number => std::str::from_utf8(value).is_ok_and(|v| v.parse::<i64>().is_ok()),
            Kind::Bytes => true,
        };
        if !fits {
            return Err(());
        }
        last[i] = Some(value.clone());
    }
    Ok(last)
}

fn text(value: &Option<Vec<u8>>) -> Option<String> {
    value
        .as_ref()
        .map(|v| String::from_utf8(v.clone()).expect("checked"))
}

fn number(value: &Option<Vec<u8>>) -> Option<i64> {
    text(value).map(|v| v.parse().expect("checked"))
}

/// The entry the backend would write for `letter`.
fn entry(letter: &DeadLetter) -> Vec<Vec<u8>> {
    let d = &letter.delivery;
    [
        (&b"id"[..], d.webhook_id.as_bytes().to_vec()),
        (b"type", d.event_type.as_bytes().to_vec()),
        (b"ts", d.webhook_timestamp.to_string().into_bytes()),
        (b"sig", d.signature.as_bytes().to_vec()),
        (b"recv", d.received_at_ms.to_string().into_bytes()),
        (b"body", d.body.to_vec()),
        (b"a", letter.attempts.to_string().into_bytes()),
        (b"err", letter.last_error.as_bytes().to_vec()),
        (b"died", letter.died_at_ms.to_string().into_bytes()),
    ]
    .into_iter()
    .flat_map(|(name, value)| [name.to_vec(), value])
    .collect()
}

fuzz_target!(|input: Input| {
    let mut raw: Vec<Vec<u8>> = Vec::new();
    for (name, value) in input.fields.iter().take(64) {
        let value = match (value, name) {
            (Value::WellFormed, Name::Known(known)) => well_formed(*known),
            (Value::WellFormed, Name::Other(_)) => b"x".to_vec(),
            (Value::Number(n), _) => n.to_string().into_bytes(),
            (Value::Text(s), _) => s.as_bytes().to_vec(),
            (Value::Bytes(b), _) => b.clone(),
        };
        let name = match name {
            Name::Known(known) => known.name().to_vec(),
            Name::Other(other) => other.clone(),
        };
        raw.push(name);
        raw.push(value);
    }
    raw.extend(input.trailing.clone());

    let decoded = decode_entry_for_fuzzing(raw.clone());
    let expected = model(&raw);
    match (&decoded, &expected) {
        (Ok(letter), Ok(last)) => {
            let d = &letter.delivery;
            assert_eq!(Some(&d.webhook_id), text(&last[0]).as_ref());
            assert_eq!(Some(&d.event_type), text(&last[1]).as_ref());
            assert_eq!(Some(d.webhook_timestamp), number(&last[2]));
            assert_eq!(Some(&d.signature), text(&last[3]).as_ref());
            assert_eq!(Some(d.received_at_ms), number(&last[4]));
            assert_eq!(Some(&d.body[..]), last[5].as_deref());
            let attempts = number(&last[6]).unwrap_or(0);
            assert_eq!(
                letter.attempts,
                u32::try_from(attempts.max(0)).unwrap_or(u32::MAX)
            );
            assert_eq!(letter.last_error, text(&last[7]).unwrap_or_default());
            assert_eq!(letter.died_at_ms, number(&last[8]).unwrap_or(0));

            let again = decode_entry_for_fuzzing(entry(letter)).expect("its own entry decodes");
            assert_eq!(entry(&again), entry(letter));
        }
        (Err(error), Err(())) => {
            assert_eq!(error.kind(), StoreErrorKind::Other, "{error:?}");
        }
        (Err(error), Ok(last)) => {
            assert!(
                last[..6].iter().any(Option::is_none),
                "refused an entry with every field: {error:?}"
            );
            assert_eq!(error.kind(), StoreErrorKind::Other, "{error:?}");
        }
        (Ok(letter), Err(())) => panic!("decoded an entry with a malformed field: {letter:?}"),
    }
    if let Err(error) = &decoded {
        // The same sentence as for a canonical entry with the same fault: no value is quoted.
        let message = error.to_string();
        let canonical = [
            vec![],
            vec![b"id".to_vec(), vec![0xff]],
            vec![b"ts".to_vec(), b"x".to_vec()],
        ]
        .map(|entry| {
            decode_entry_for_fuzzing(entry).map_or_else(|e| e.to_string(), |_| String::new())
        });
        assert!(
            canonical.contains(&message),
            "{message:?} is none of {canonical:?}"
        );
    }
});
