//! What the port records through the `metrics` facade, read by a recorder of the test's own:
//! one key per delivery outcome, one histogram per handler answer (the adapter's handler or the
//! inline router's), labels from a bounded set.
#![cfg(all(feature = "metrics", feature = "receive"))]

use std::sync::{Arc, Mutex};

use agentsync_webhooks_core::{
    EventData, EventRouter, EventType, HandlerError, Receiver, Signer, Verifier,
    adapter::{
        full_body,
        metrics::{DELIVERIES_TOTAL, EVENT_DELAY_SECONDS, HANDLER_DURATION_SECONDS},
    },
    route::Event,
};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Every registration: the port registers its key each time it records, so these are also the
/// recordings.
#[derive(Default, Clone)]
struct Registrations(Arc<Mutex<Vec<String>>>);

impl Registrations {
    fn push(&self, key: &Key) {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let entry = format!("{}{{{}}}", key.name(), labels.join(","));
        self.0.lock().unwrap().push(entry);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Recorder for Registrations {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.push(key);
        Counter::noop()
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.push(key);
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.push(key);
        Histogram::noop()
    }
}

/// Runs `deliveries` on a current-thread runtime with `recorder` as this thread's recorder.
fn recorded<F: std::future::Future<Output = ()>>(
    recorder: &Registrations,
    deliveries: F,
) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    metrics::with_local_recorder(recorder, || runtime.block_on(deliveries));
    recorder.take()
}

fn key(name: &str, labels: &str) -> String {
    format!("{name}{{{labels}}}")
}

#[test]
fn an_answered_delivery_counts_its_outcome_and_its_handlers_time() {
    let recorder = Registrations::default();
    let signer = Signer::new(SECRET).unwrap();
    let receiver = Receiver::new(Verifier::new(SECRET).unwrap());
    let seen = recorded(&recorder, async {
        let request = signer.example(EventType::ContractUpdated);
        let headers = request.headers.to_pairs();
        let accepted = receiver
            .receive::<EventData, _, _>(&headers, None, full_body(request.body.into()))
            .await
            .unwrap();
        accepted.completion.finish(500).await;

        let forged = receiver
            .receive::<EventData, _, _>(&headers, None, full_body("{}".into()))
            .await;
        assert_eq!(forged.unwrap_err().code(), "signature_mismatch");
    });
    assert_eq!(
        seen,
        [
            // The event's delay, once per accepted delivery.
            key(EVENT_DELAY_SECONDS, "event_type=contract.updated"),
            key(DELIVERIES_TOTAL, "outcome=accepted"),
            key(
                HANDLER_DURATION_SECONDS,
                "event_type=contract.updated,result=error"
            ),
            key(DELIVERIES_TOTAL, "outcome=signature_mismatch"),
        ]
    );
}

#[test]
fn the_inline_routers_handlers_are_timed_too_and_unknown_types_share_one_label() {
    async fn ok(_: Event<EventData>) -> Result<(), HandlerError> {
        Ok(())
    }
    let recorder = Registrations::default();
    let signer = Signer::new(SECRET).unwrap();
    let receiver = Receiver::new(Verifier::new(SECRET).unwrap()).with_route(
        EventRouter::new()
            .on(EventType::ProducerSyncUpdatesAvailable, ok)
            .on_unknown(ok),
    );
    let seen = recorded(&recorder, async {
        let known = signer.example(EventType::ProducerSyncUpdatesAvailable);
        let unknown = r#"{"type":"producersync.something_new","data":{}}"#;
        for (headers, body) in [
            (known.headers, known.body),
            (
                signer.sign_now(unknown.as_bytes()),
                unknown.as_bytes().to_vec(),
            ),
        ] {
            let headers = headers.to_pairs();
            let answer = receiver
                .receive::<EventData, _, _>(&headers, None, full_body(body.into()))
                .await
                .unwrap_err();
            assert_eq!(answer.code(), "processed");
        }
    });
    assert_eq!(
        seen,
        [
            // The unknown type's envelope has no `timestamp`: its delay is not counted.
            key(
                EVENT_DELAY_SECONDS,
                "event_type=producersync.updates_available"
            ),
            key(
                HANDLER_DURATION_SECONDS,
                "event_type=producersync.updates_available,result=ok"
            ),
            key(DELIVERIES_TOTAL, "outcome=processed"),
            key(HANDLER_DURATION_SECONDS, "event_type=unknown,result=ok"),
            key(DELIVERIES_TOTAL, "outcome=processed"),
        ]
    );
}
