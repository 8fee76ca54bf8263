use std::sync::{Arc, Mutex};

use super::*;
use crate::{NpnActivated, ObjectData, UpdatesAvailable, event::samples};

/// Which handler ran, with what attempt: shared between the handlers of one router.
type Log = Arc<Mutex<Vec<(&'static str, String, u32)>>>;

fn recorder<T: Send + 'static>(
    log: &Log,
    name: &'static str,
) -> impl Fn(Event<T>) -> std::future::Ready<Result<(), HandlerError>> + Send + Sync + 'static {
    let log = log.clone();
    move |event: Event<T>| {
        log.lock()
            .unwrap()
            .push((name, event.event_type.clone(), event.attempt));
        std::future::ready(Ok(()))
    }
}

fn body_of(event_type: &str, data: serde_json::Value) -> Bytes {
    serde_json::json!({
        "id": "whe_1",
        "type": event_type,
        "timestamp": "2025-07-24T22:51:05.206Z",
        "data": data,
    })
    .to_string()
    .into()
}

fn stored(event_type: &str, body: Bytes) -> ReceivedDelivery {
    ReceivedDelivery {
        webhook_id: "msg_1".into(),
        event_type: event_type.into(),
        webhook_timestamp: 1_700_000_000,
        signature: "v1,unused".into(),
        received_at_ms: 1_700_000_000_123,
        body,
    }
}

fn example(event_type: EventType) -> ReceivedDelivery {
    let body = samples::example_body(event_type, "whe_1", 1_700_000_000);
    stored(event_type.as_str(), body.into())
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn full_router(log: &Log) -> EventRouter {
    EventRouter::new()
        .on(
            EventType::ProducerSyncUpdatesAvailable,
            recorder::<UpdatesAvailable>(log, "type"),
        )
        .on_group(EventGroup::Contract, recorder::<ObjectData>(log, "group"))
        .on_group(
            EventGroup::ProducerSync,
            recorder::<EventData>(log, "producersync"),
        )
        .on_unknown(recorder::<serde_json::Value>(log, "unknown"))
}

#[test]
fn type_beats_group_beats_unknown() {
    let log = Log::default();
    let router = full_router(&log);
    let cases = [
        (
            example(EventType::ProducerSyncUpdatesAvailable),
            Routed::Type(EventType::ProducerSyncUpdatesAvailable),
            "type",
        ),
        (
            example(EventType::ProducerSyncNpnActivated),
            Routed::Group(EventGroup::ProducerSync),
            "producersync",
        ),
        (
            example(EventType::ContractPacketSubmitted),
            Routed::Group(EventGroup::Contract),
            "group",
        ),
        // An undocumented type of a known group goes to the group.
        (
            stored(
                "contract.new_thing",
                body_of("contract.new_thing", serde_json::json!({"a": 1})),
            ),
            Routed::Group(EventGroup::Contract),
            "group",
        ),
        (
            stored(
                "billing.invoice.paid",
                body_of("billing.invoice.paid", serde_json::json!(7)),
            ),
            Routed::Unknown,
            "unknown",
        ),
        // A documented type with no type or group handler is acknowledged, not "unknown".
        (
            example(EventType::ProducerPhoneDeleted),
            Routed::Acknowledged,
            "",
        ),
    ];
    for (delivery, expected, handler) in cases {
        log.lock().unwrap().clear();
        let routed = block_on(router.dispatch(&delivery, 1)).unwrap();
        assert_eq!(routed, expected, "{}", delivery.event_type);
        let ran: Vec<_> = log.lock().unwrap().iter().map(|(n, _, _)| *n).collect();
        if handler.is_empty() {
            assert!(ran.is_empty(), "{ran:?}");
        } else {
            assert_eq!(ran, [handler], "{}", delivery.event_type);
        }
    }
}

#[test]
fn an_event_with_no_handler_is_acknowledged_on_every_path() {
    let router = EventRouter::new();
    let delivery = example(EventType::ContractUpdated);
    assert_eq!(
        block_on(router.dispatch(&delivery, 1)).unwrap(),
        Routed::Acknowledged
    );
    let parsed = Delivery::<EventData>::parse("msg_1", 1, delivery.body.clone()).unwrap();
    assert_eq!(
        block_on(router.dispatch_delivery(parsed)).unwrap(),
        Routed::Acknowledged
    );
    assert_eq!(
        block_on(router.dispatch_raw("msg_1", 1, delivery.body)).unwrap(),
        Routed::Acknowledged
    );
    // Unknown types too, when there is no unknown handler.
    let unknown = stored("x.y", body_of("x.y", serde_json::json!({})));
    assert_eq!(
        block_on(router.dispatch(&unknown, 1)).unwrap(),
        Routed::Acknowledged
    );
}

#[test]
fn data_that_does_not_fit_is_permanent_and_names_the_path() {
    let log = Log::default();
    // The contract group's data parsed as UpdatesAvailable: a handler written for the wrong type.
    let router = EventRouter::new()
        .on_group(
            EventGroup::Contract,
            recorder::<UpdatesAvailable>(&log, "wrong"),
        )
        .on(
            EventType::ProducerSyncNpnActivated,
            recorder::<NpnActivated>(&log, "npn"),
        );
    let err = block_on(router.dispatch(&example(EventType::ContractUpdated), 1)).unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(err.code(), "invalid_event_data");
    assert!(err.to_string().contains("runDate"), "{err}");

    // A documented type whose data misstates a field: the path of the field.
    let bad = body_of(
        "producersync.npn.activated",
        serde_json::json!({"npn": "1", "activatedAt": 12}),
    );
    let err = block_on(router.dispatch(&stored("producersync.npn.activated", bad.clone()), 1))
        .unwrap_err();
    assert_eq!(err.code(), "invalid_event_data");
    match err.webhook_error() {
        Some(WebhookError::InvalidEventData { path, .. }) => assert_eq!(path, "activatedAt"),
        other => panic!("{other:?}"),
    }
    assert!(block_on(router.dispatch_raw("msg_1", 1, bad)).is_err());
    assert!(log.lock().unwrap().is_empty(), "no handler ran");

    // Not an envelope at all.
    let err = block_on(router.dispatch_raw("msg_1", 1, "{\"data\":{}}".into())).unwrap_err();
    assert_eq!((err.code(), err.is_permanent()), ("invalid_payload", true));
}

#[test]
fn handler_errors_keep_their_kind() {
    async fn flaky(_: Event<EventData>) -> Result<(), HandlerError> {
        Err(std::io::Error::other("ProducerSync is down"))?
    }
    async fn refuses(_: Event<EventData>) -> Result<(), HandlerError> {
        Err(HandlerError::permanent("not our producer"))
    }
    async fn busy(_: Event<EventData>) -> Result<(), HandlerError> {
        let _: u32 = "x".parse()?;
        Ok(())
    }
    let router = EventRouter::new()
        .on(EventType::ContractUpdated, flaky)
        .on(EventType::ProducerUpdated, refuses)
        .on(EventType::ProducerDeleted, busy);
    let err = block_on(router.dispatch(&example(EventType::ContractUpdated), 1)).unwrap_err();
    assert_eq!((err.code(), err.is_permanent()), ("handler_failed", false));
    assert_eq!(err.to_string(), "ProducerSync is down");
    let err = block_on(router.dispatch(&example(EventType::ProducerUpdated), 1)).unwrap_err();
    assert_eq!(
        (err.code(), err.is_permanent()),
        ("handler_permanent", true)
    );
    let err = block_on(router.dispatch(&example(EventType::ProducerDeleted), 1)).unwrap_err();
    assert_eq!(err.kind(), HandlerErrorKind::Retryable);
    assert!(
        err.error()
            .downcast_ref::<std::num::ParseIntError>()
            .is_some()
    );
}

#[test]
fn the_event_carries_the_delivery() {
    let seen: Arc<Mutex<Option<Event<UpdatesAvailable>>>> = Arc::default();
    let slot = seen.clone();
    let router = EventRouter::new().on(
        EventType::ProducerSyncUpdatesAvailable,
        move |event: Event<UpdatesAvailable>| {
            *slot.lock().unwrap() = Some(event);
            async { Ok::<_, HandlerError>(()) }
        },
    );
    let delivery = example(EventType::ProducerSyncUpdatesAvailable);
    block_on(router.dispatch(&delivery, 4)).unwrap();
    let event = seen.lock().unwrap().take().unwrap();
    assert_eq!(event.data.updated_since(), "2025-07-24");
    assert_eq!(event.webhook_id, "msg_1");
    assert_eq!(event.id, "whe_1");
    assert_eq!(event.event_type, "producersync.updates_available");
    assert_eq!(event.webhook_timestamp, 1_700_000_000);
    assert_eq!(event.timestamp.timestamp(), 1_700_000_000);
    assert_eq!(event.attempt, 4);
    assert_eq!(event.received_at_ms, Some(1_700_000_000_123));
    assert_eq!(event.raw_body, delivery.body);

    // Inline: attempt 1, no received-at, the parsed data moved in.
    let parsed = Delivery::<EventData>::parse("msg_9", 1, delivery.body.clone()).unwrap();
    block_on(router.dispatch_delivery(parsed)).unwrap();
    let event = seen.lock().unwrap().take().unwrap();
    assert_eq!((event.webhook_id.as_str(), event.attempt), ("msg_9", 1));
    assert_eq!(event.received_at_ms, None);
}

#[test]
fn the_router_is_cheap_to_share() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<EventRouter>();
    fn sendable<T: Send + 'static>(_: &T) {}
    let log = Log::default();
    let router = full_router(&log);
    sendable(&router.dispatch(&example(EventType::ContractUpdated), 1));
    let clone = router.clone();
    assert!(Arc::ptr_eq(&router.routes, &clone.routes));
    // Registering on a clone does not change the original.
    let more = clone.on(
        EventType::ProducerPhoneDeleted,
        recorder::<EventData>(&log, "x"),
    );
    assert!(more.handles("id.producer.phone.deleted"));
    assert!(!router.handles("id.producer.phone.deleted"));
    assert!(format!("{router:?}").contains("producersync.updates_available"));
}

#[test]
fn inline_answers_keep_internals_out_of_the_body() {
    use crate::adapter::{ErrorBody, Rejection};

    let failed = HandlerError::retryable("password=hunter2 rejected by db-7");
    let answer = Rejection::routed(Err(failed), "msg_1");
    assert_eq!((answer.status(), answer.retry_after()), (500, None));
    let body: ErrorBody<'_> = serde_json::from_slice(answer.body()).unwrap();
    assert_eq!(body.error, "handler_failed");
    assert!(!body.message.contains("hunter2"));

    let refused = Rejection::routed(Err(HandlerError::permanent("no")), "msg_1");
    assert_eq!(
        (refused.status(), refused.code()),
        (500, "handler_permanent")
    );

    let busy =
        HandlerError::retryable("locked").with_retry_after(std::time::Duration::from_millis(1500));
    assert_eq!(Rejection::routed(Err(busy), "msg_1").retry_after(), Some(2));

    let unparsable = block_on(
        EventRouter::new()
            .on(
                EventType::ContractUpdated,
                recorder::<UpdatesAvailable>(&Log::default(), "x"),
            )
            .dispatch(&example(EventType::ContractUpdated), 1),
    )
    .unwrap_err();
    let answer = Rejection::routed(Err(unparsable), "msg_2");
    assert_eq!(
        (answer.status(), answer.code()),
        (400, "invalid_event_data")
    );

    let processed = Rejection::routed(Ok(Routed::Acknowledged), "msg_3");
    assert_eq!((processed.status(), processed.code()), (200, "processed"));
    assert!(processed.body().is_empty());
}

fn npn_body(event_type: EventType, npn: &str, at: &str) -> Bytes {
    let data = match event_type {
        EventType::ProducerSyncNpnActivated => {
            serde_json::json!({"npn": npn, "activatedAt": at})
        }
        _ => serde_json::json!({"npn": npn, "deactivatedAt": at}),
    };
    serde_json::json!({"id": "whe_1", "type": event_type.as_str(), "timestamp": at, "data": data})
        .to_string()
        .into()
}

#[test]
fn npn_events_are_keyed_by_default_and_other_types_are_not() {
    let ordering = EventRouter::new().ordering().clone();
    let activated = stored(
        "producersync.npn.activated",
        npn_body(
            EventType::ProducerSyncNpnActivated,
            "0012345",
            "2025-07-24T10:05:00Z",
        ),
    );
    let order = ordering.order_of(&activated).unwrap();
    assert_eq!(order.key, "npn:0012345");
    assert_eq!(order.occurred_at_ms, 1_753_351_500_000);
    assert!(
        ordering
            .order_of(&example(EventType::ProducerSyncUpdatesAvailable))
            .is_none()
    );
    assert!(
        ordering
            .order_of(&example(EventType::ContractUpdated))
            .is_none()
    );
    // A user's group key, and the default removed.
    let custom = EventRouter::new()
        .ordered_by(EventGroup::Contract, |e: &Event<ObjectData>| e.data.npn())
        .unordered(EventType::ProducerSyncNpnActivated);
    assert!(custom.ordering().order_of(&activated).is_none());
    let contract = stored(
        "contract.updated",
        body_of("contract.updated", serde_json::json!({"npn": 42})),
    );
    assert_eq!(custom.ordering().order_of(&contract).unwrap().key, "42");
}

#[test]
fn inline_an_older_event_of_a_key_is_stale_and_ties_run() {
    let log: Log = Arc::default();
    let router = EventRouter::new()
        .on(
            EventType::ProducerSyncNpnActivated,
            recorder::<NpnActivated>(&log, "activated"),
        )
        .on(
            EventType::ProducerSyncNpnDeactivated,
            recorder::<crate::NpnDeactivated>(&log, "deactivated"),
        );
    let dispatch = |t: EventType, at: &str| {
        block_on(router.dispatch_raw("msg_x", 1_700_000_000, npn_body(t, "0012345", at)))
    };
    let activated = EventType::ProducerSyncNpnActivated;
    let deactivated = EventType::ProducerSyncNpnDeactivated;
    assert_eq!(
        dispatch(activated, "2025-07-24T10:05:00Z").unwrap(),
        Routed::Type(activated)
    );
    // Deactivated at 10:00, retried until after the activation at 10:05: stale, not run.
    assert_eq!(
        dispatch(deactivated, "2025-07-24T10:00:00Z").unwrap(),
        Routed::Stale
    );
    // Equal timestamps are not stale.
    assert_eq!(
        dispatch(deactivated, "2025-07-24T10:05:00Z").unwrap(),
        Routed::Type(deactivated)
    );
    let ran: Vec<_> = log.lock().unwrap().iter().map(|e| e.0).collect();
    assert_eq!(ran, ["activated", "deactivated"]);
}

#[test]
fn a_handler_that_opts_in_sees_stale_events_flagged() {
    type Seen = Arc<Mutex<Vec<(bool, Option<String>)>>>;
    let seen: Seen = Arc::default();
    let handler = {
        let seen = seen.clone();
        move |event: Event<crate::NpnDeactivated>| {
            seen.lock()
                .unwrap()
                .push((event.stale, event.ordering_key.clone()));
            std::future::ready(Ok(()))
        }
    };
    let router = EventRouter::new()
        .on(EventType::ProducerSyncNpnDeactivated, handler)
        .receive_stale(EventType::ProducerSyncNpnDeactivated);
    let deactivated = EventType::ProducerSyncNpnDeactivated;
    let body = |at| npn_body(deactivated, "7", at);
    block_on(router.dispatch_raw("m1", 1, body("2025-07-24T10:05:00Z"))).unwrap();
    block_on(router.dispatch_raw("m2", 1, body("2025-07-24T10:00:00Z"))).unwrap();
    // What the workers pass: the queue's key and verdict.
    let stored = stored(deactivated.as_str(), body("2025-07-24T09:00:00Z"));
    block_on(router.dispatch_with(&stored, JobContext::attempt(1).with_key("npn:7", true)))
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (false, Some("npn:7".into())),
            (true, Some("npn:7".into())),
            (true, Some("npn:7".into())),
        ]
    );
    // Without the opt-in, a stale job is not run.
    let plain = EventRouter::new().on(
        EventType::ProducerSyncNpnDeactivated,
        |_: Event<crate::NpnDeactivated>| async { panic!("a stale event ran") },
    );
    assert_eq!(
        block_on(plain.dispatch_with(&stored, JobContext::attempt(1).with_key("npn:7", true)))
            .unwrap(),
        Routed::Stale
    );
}

#[test]
fn the_delay_is_received_minus_occurred() {
    let delivery = Delivery::<EventData>::parse(
        "msg_1",
        1_753_351_500 + 3 * 3600,
        npn_body(
            EventType::ProducerSyncNpnActivated,
            "1",
            "2025-07-24T10:05:00Z",
        ),
    )
    .unwrap();
    let event = Event::from_delivery(delivery);
    assert_eq!(event.delay_ms(), 3 * 3600 * 1000);
    assert_eq!(
        event.timestamp_source,
        crate::event::TimestampSource::Envelope
    );
    assert_eq!(event.with_received_at_ms(1_753_351_500_000).delay_ms(), 0);
}
