use chrono::{NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::WebhookError;

fn parse_json<D: EventPayload>(value: serde_json::Value) -> Result<WebhookEvent<D>, WebhookError> {
    parse(value.to_string().as_bytes(), "msg_1", 1_700_000_000)
}

#[test]
fn documented_updates_available_sample() {
    let body = br#"{
        "id": "whe_000012345",
        "type": "producersync.updates_available",
        "timestamp": "2025-07-24T22:51:05.206Z",
        "data": { "runDate": "2025-07-24" }
    }"#;
    let event: WebhookEvent = parse(body, "msg_1", 0).unwrap();
    assert_eq!(event.id, "whe_000012345");
    assert_eq!(
        event.known_type(),
        Some(EventType::ProducerSyncUpdatesAvailable)
    );
    assert_eq!(event.group(), Some(EventGroup::ProducerSync));
    assert_eq!(
        event.timestamp,
        Utc.with_ymd_and_hms(2025, 7, 24, 22, 51, 5).unwrap() + chrono::Duration::milliseconds(206)
    );
    let EventData::ProducerSyncUpdatesAvailable(data) = event.data else {
        panic!("{:?}", event.data)
    };
    assert_eq!(data.run_date, NaiveDate::from_ymd_opt(2025, 7, 24).unwrap());
    assert_eq!(data.updated_since(), "2025-07-24");
}

#[test]
fn every_documented_type_parses_from_its_example() {
    for &t in EventType::ALL {
        let event: WebhookEvent =
            parse_json(samples::example_envelope(t, "whe_1", 1_700_000_000)).unwrap();
        assert_eq!(event.data.event_type(), Some(t), "{t}");
        assert_eq!(event.known_type(), Some(t));
        assert_eq!(event.id, "whe_1");
        assert_eq!(event.timestamp.timestamp(), 1_700_000_000);
    }
}

#[test]
fn npn_payloads_are_typed() {
    let event: WebhookEvent = parse_json(json!({
        "type": "producersync.npn.activated",
        "data": { "npn": "0012345", "activatedAt": "2025-07-24T22:51:05Z" }
    }))
    .unwrap();
    let EventData::ProducerSyncNpnActivated(d) = event.data else {
        panic!()
    };
    assert_eq!(d.npn, "0012345");
    assert_eq!(
        d.activated_at,
        Utc.with_ymd_and_hms(2025, 7, 24, 22, 51, 5).unwrap()
    );

    let event: WebhookEvent = parse_json(json!({
        "type": "producersync.npn.deactivated",
        "data": { "npn": 19370865, "deactivatedAt": "2025-07-24T23:00:00+01:00", "extra": true }
    }))
    .unwrap();
    let EventData::ProducerSyncNpnDeactivated(d) = event.data else {
        panic!()
    };
    assert_eq!(d.npn, "19370865");
    assert_eq!(
        d.deactivated_at,
        Utc.with_ymd_and_hms(2025, 7, 24, 22, 0, 0).unwrap()
    );
}

#[test]
fn unpublished_schemas_stay_objects_with_accessors() {
    let event: WebhookEvent = parse_json(json!({
        "type": "contract.assignment.updated",
        "data": { "npn": 42, "contractAssignmentId": "cas_1" }
    }))
    .unwrap();
    let EventData::ContractAssignmentUpdated(d) = &event.data else {
        panic!()
    };
    assert_eq!(d.npn().as_deref(), Some("42"));
    assert_eq!(d.get_str("contractAssignmentId"), Some("cas_1"));
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Mine {
        contract_assignment_id: String,
    }
    assert_eq!(
        d.to_typed::<Mine>().unwrap().contract_assignment_id,
        "cas_1"
    );
}

#[test]
fn the_envelope_needs_only_a_type() {
    let event: WebhookEvent = parse(
        br#"{"type":"id.producer.deleted"}"#,
        "msg_fallback",
        1_614_265_330,
    )
    .unwrap();
    assert_eq!(event.id, "msg_fallback");
    assert_eq!(event.timestamp.timestamp(), 1_614_265_330);
    assert_eq!(
        event.data,
        EventData::ProducerDeleted(ObjectData::default())
    );
    let nulled: WebhookEvent =
        parse(br#"{"type":"id.producer.deleted","data":null}"#, "m", 0).unwrap();
    assert_eq!(
        nulled.data,
        EventData::ProducerDeleted(ObjectData::default())
    );
}

#[test]
fn unknown_types_are_kept_not_refused() {
    let event: WebhookEvent = parse_json(json!({
        "id": "whe_2", "type": "endpoint.verification", "data": { "challenge": [1, 2] }, "more": 1
    }))
    .unwrap();
    assert_eq!(event.known_type(), None);
    assert_eq!(event.group(), None);
    assert_eq!(
        event.data,
        EventData::Unknown {
            event_type: "endpoint.verification".into(),
            data: RawData::from_string(r#"{"challenge":[1,2]}"#.into()).unwrap()
        }
    );
    let future: WebhookEvent = parse_json(json!({ "type": "contract.future.thing" })).unwrap();
    assert_eq!(future.group(), Some(EventGroup::Contract));
    assert!(matches!(future.data, EventData::Unknown { .. }));
}

#[test]
fn missing_documented_fields_name_their_path() {
    let err = parse_json::<EventData>(json!({
        "type": "producersync.updates_available", "data": { "rundate": "2025-07-24" }
    }))
    .unwrap_err();
    assert_eq!((err.code(), err.status()), ("invalid_event_data", 400));
    let err = parse_json::<EventData>(json!({
        "type": "producersync.npn.activated", "data": { "npn": "1", "activatedAt": "yesterday" }
    }))
    .unwrap_err();
    let WebhookError::InvalidEventData {
        event_type, path, ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (event_type.as_str(), path.as_str()),
        ("producersync.npn.activated", "activatedAt")
    );
    let err =
        parse_json::<EventData>(json!({ "type": "contract.updated", "data": [1] })).unwrap_err();
    assert_eq!(err.code(), "invalid_event_data");
}

#[test]
fn bodies_that_are_not_envelopes() {
    for body in [
        &b""[..],
        b"null",
        b"[]",
        b"[\"producersync.updates_available\"]",
        b"{}",
        b"{\"type\":1}",
        b"not json",
        b"{\"type\":\"x\"",
        b"\xff\xfe",
    ] {
        let err = parse::<EventData>(body, "m", 0).unwrap_err();
        assert_eq!(
            (err.code(), err.status()),
            ("invalid_payload", 400),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    let err = parse::<EventData>(br#"{"type":"x","timestamp":"yesterday"}"#, "m", 0).unwrap_err();
    assert_eq!(err.code(), "invalid_payload");
}

#[test]
fn users_bring_their_own_payload_type() {
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct RunDateOnly {
        run_date: String,
    }
    let event: WebhookEvent<RunDateOnly> = parse_json(json!({
        "type": "producersync.updates_available", "data": { "runDate": "2025-07-24" }
    }))
    .unwrap();
    assert_eq!(
        event.data,
        RunDateOnly {
            run_date: "2025-07-24".into()
        }
    );
    let raw: WebhookEvent<serde_json::Value> =
        parse_json(json!({ "type": "anything", "data": { "a": 1 } })).unwrap();
    assert_eq!(raw.data, json!({ "a": 1 }));
}

/// An unknown type's `data` is never parsed on receipt: a number beyond `f64`, a depth beyond
/// serde_json's recursion limit, any shape, arrive as sent, byte for byte.
#[test]
fn unknown_data_of_any_number_or_depth_is_accepted() {
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    for data in [
        r#"{"amount": 1e400, "n": -1e400}"#.to_owned(),
        deep,
        "\"text\"".into(),
    ] {
        let body = format!(r#"{{"type":"future.thing","data":{data}}}"#);
        let event = parse::<EventData>(body.as_bytes(), "msg_1", 0);
        let Ok(EventData::Unknown {
            event_type,
            data: raw,
        }) = event.as_ref().map(|e| &e.data)
        else {
            panic!("{data:.40}: {event:?}")
        };
        assert_eq!(
            (event_type.as_str(), raw.get()),
            ("future.thing", data.as_str())
        );
        assert_eq!(raw.to_string(), data);
    }
    let missing: WebhookEvent = parse(br#"{"type":"future.thing"}"#, "m", 0).unwrap();
    let EventData::Unknown { data, .. } = missing.data else {
        panic!("{missing:?}")
    };
    assert_eq!(data.get(), "{}");
}

#[test]
fn unknown_data_parses_on_demand() {
    let body = br#"{"type":"future.thing","data":{"id":"x_1","amount":1e400,"list":[1]}}"#;
    let event: WebhookEvent = parse(body, "m", 0).unwrap();
    let EventData::Unknown { data, .. } = &event.data else {
        panic!("{event:?}")
    };
    #[derive(Debug, Deserialize, PartialEq)]
    struct Mine {
        id: String,
        list: Vec<u8>,
    }
    assert_eq!(
        data.parse::<Mine>().unwrap(),
        Mine {
            id: "x_1".into(),
            list: vec![1]
        }
    );
    // Where 1e400 cannot be held, asking for it is the error, as serde's.
    let err = data.parse::<serde_json::Value>().unwrap_err();
    assert!(err.to_string().contains("number out of range"), "{err}");
    let small = RawData::from_string(r#"{"a": [1, 2]}"#.into()).unwrap();
    assert_eq!(
        small.parse::<serde_json::Value>().unwrap(),
        json!({ "a": [1, 2] })
    );
}

/// Known types keep their typed parse; who wants no typing asks for `RawData`, which takes any
/// `data`, whatever the type.
#[test]
fn raw_data_is_the_untyped_payload() {
    let huge = br#"{"type":"contract.updated","data":{"amount":1e400}}"#;
    let err = parse::<EventData>(huge, "m", 0).unwrap_err();
    assert_eq!(err.code(), "invalid_event_data");
    let raw: WebhookEvent<RawData> = parse(huge, "m", 0).unwrap();
    assert_eq!(raw.data.get(), r#"{"amount":1e400}"#);
    let missing = br#"{"type":"producersync.npn.activated","data":{"npn":"1"}}"#;
    assert_eq!(
        parse::<EventData>(missing, "m", 0).unwrap_err().code(),
        "invalid_event_data"
    );
    let raw: WebhookEvent<RawData> = parse(missing, "m", 0).unwrap();
    assert_eq!(raw.data.get(), r#"{"npn":"1"}"#);
}
