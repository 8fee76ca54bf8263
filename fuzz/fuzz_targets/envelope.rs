//! The envelope and typed `data` of an authenticated body: arbitrary bytes through
//! `Delivery::parse`, typed (`EventData`), untyped as sent (`RawData`) and untyped as a
//! `serde_json::Value`.
//!
//! Checks: every refusal is a 400 (`invalid_payload` or `invalid_event_data`; `RawData` refuses
//! only envelopes, with `invalid_payload`); the three parses agree on the envelope; an unknown
//! `type` is never an error and keeps its `data` byte for byte as `RawData` does; a typed
//! failure names a documented type whose `data` was kept by `RawData`; the `Value` parse fails
//! only on a `data` that `RawData::parse::<Value>` refuses too, and otherwise equals it; a body
//! that is a JSON object with a string `id`/`type` keeps them, and a missing `id` is the
//! `webhook-id`, and its `data` is kept as a slice of the body (`{}` when it has none or null); a
//! missing `timestamp` is the `webhook-timestamp`, and an out-of-range one is a 400, never a
//! panic.
#![no_main]

use agentsync_webhooks_core::{Delivery, EventData, EventType, RawData, WebhookError};
use agentsync_webhooks_fuzz::{NOW, check_error};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    let typed = Delivery::<EventData>::parse(ID, NOW, body.clone());
    let raw = Delivery::<RawData>::parse(ID, NOW, body.clone());
    let value = Delivery::<Value>::parse(ID, NOW, body.clone());
    for e in [
        &typed.as_ref().err(),
        &raw.as_ref().err(),
        &value.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!(e.status(), 400, "{e:?}");
        assert!(
            matches!(e.code(), "invalid_payload" | "invalid_event_data"),
            "{e:?}"
        );
        check_error(e);
    }
    if let Err(e) = &raw {
        assert_eq!(e.code(), "invalid_payload", "RawData refused a data: {e:?}");
    }
    match (&typed, &raw) {
        (Ok(typed), Ok(raw)) => {
            let (t, r) = (&typed.event, &raw.event);
            assert_eq!(
                (&t.id, &t.event_type, t.timestamp),
                (&r.id, &r.event_type, r.timestamp)
            );
            if t.known_type().is_none() {
                let EventData::Unknown { event_type, data } = &t.data else {
                    panic!("an unknown type parsed as {:?}", t.data)
                };
                assert_eq!((event_type, data), (&t.event_type, &r.data));
            }
            assert_eq!(
                typed.to_payload::<RawData>().map(|d| d.event).as_ref(),
                Ok(r)
            );
        }
        (Ok(_), Err(e)) => panic!("typed data parsed but the raw JSON did not: {e:?}"),
        (Err(e), Ok(raw)) => match e {
            WebhookError::InvalidEventData { event_type, .. } => {
                assert_eq!(event_type, &raw.event.event_type);
                assert!(event_type.parse::<EventType>().is_ok(), "{e:?}");
            }
            _ => panic!("the envelope parsed untyped only: {e:?}"),
        },
        (Err(e), Err(_)) => assert_eq!(e.code(), "invalid_payload", "{e:?}"),
    }
    match (&raw, &value) {
        (Ok(raw), Ok(value)) => {
            let (r, v) = (&raw.event, &value.event);
            assert_eq!(
                (&r.id, &r.event_type, r.timestamp),
                (&v.id, &v.event_type, v.timestamp)
            );
            assert_eq!(r.data.parse::<Value>().ok().as_ref(), Some(&v.data));
        }
        (Ok(raw), Err(e)) => {
            assert_eq!(e.code(), "invalid_event_data", "{e:?}");
            assert!(raw.event.data.parse::<Value>().is_err(), "{e:?}");
        }
        (Err(e), Ok(_)) => panic!("a Value parsed but RawData did not: {e:?}"),
        (Err(_), Err(_)) => {}
    }

    if let (Ok(Value::Object(object)), Ok(raw)) = (serde_json::from_slice::<Value>(data), &raw) {
        let event = &raw.event;
        assert_eq!(
            Some(event.event_type.as_str()),
            object.get("type").and_then(Value::as_str)
        );
        match object.get("id") {
            Some(Value::String(id)) => assert_eq!(&event.id, id),
            None | Some(Value::Null) => assert_eq!(event.id, ID),
            Some(other) => panic!("a non-string id {other} was accepted"),
        }
        if matches!(object.get("timestamp"), None | Some(Value::Null)) {
            assert_eq!(event.timestamp.timestamp(), NOW);
        }
        // The `data` as sent, byte for byte, or `{}` when there is none (or it is null).
        let kept = event.data.get().as_bytes();
        if !matches!(object.get("data"), None | Some(Value::Null)) {
            assert!(
                data.windows(kept.len()).any(|window| window == kept),
                "{:?} is not in the body",
                event.data
            );
        } else {
            assert_eq!(event.data.get(), "{}");
        }
    }

    // With a webhook-timestamp no date can hold, only an envelope without a timestamp fails.
    match (Delivery::<RawData>::parse(ID, i64::MAX, body), &raw) {
        (Ok(far), Ok(raw)) => assert_eq!(far.event, raw.event),
        (Err(e), Ok(_)) => assert_eq!(e.code(), "invalid_payload", "{e:?}"),
        (Ok(_), Err(e)) => panic!("refused only with a valid webhook-timestamp: {e:?}"),
        (Err(far), Err(e)) => assert_eq!(far.status(), e.status()),
    }
});
