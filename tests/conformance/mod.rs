//! The cross-framework conformance suite: one table of cases that every adapter must pass.
//!
//! # Contract for adapters
//!
//! An adapter's test file (`tests/conformance_<adapter>.rs`) declares `mod conformance;` and calls
//!
//! ```ignore
//! conformance::run_suite("my-adapter", |receiver: Receiver, calls: Calls| async move {
//!     // boot a real server ...
//!     TestServer::new(addr, guard)
//! })
//! .await;
//! ```
//!
//! `start(receiver, calls)` is called once per case, with that case's own [`Receiver`] (its
//! secrets or keys, a [`FixedClock`] at [`NOW`], its body limit, its idempotency store). It must:
//!
//! - bind a real HTTP/1.1 server on `127.0.0.1:0` that uses `receiver` through the adapter
//!   (its layer, middleware, filter or extractor);
//! - serve `POST /webhooks/psapi` with a handler that passes the verified `Delivery<EventData>`
//!   it was given to [`Calls::record`] and answers with the status that call returns (`200`
//!   unless the case says otherwise), with no other effect on the response. `record` may also
//!   wait (to hold a delivery in flight) or panic on purpose: that is the handler waiting or
//!   panicking, and the adapter must treat it so;
//! - report the handler's status to the receiver (its layer, middleware or `run`), so that
//!   idempotency covers the handler;
//! - return a [`TestServer`] whose `url` is the base URL (`http://127.0.0.1:PORT`, no path) and
//!   whose guard stops the server when dropped ([`TestServer::spawn`] does both for a future on
//!   the current tokio runtime).
//!
//! Each case then sends real requests with reqwest and checks the status, the error code of the
//! JSON body (`{"error": "<code>", "message": ...}` with `Content-Type: application/json`), the
//! `Retry-After` header, and whether the handler ran, how often and with which event. All
//! failures are collected and reported in one panic that lists them.
//!
//! The idempotency cases (the design's "Idempotency"): the same delivery twice with a
//! `MemoryStore` runs the handler once and answers the second `200` with an empty body; a retry
//! after the handler answered 500, or panicked, is processed; a delivery whose twin is still in
//! the handler gets `409` with `Retry-After`; a store that always fails gets `503` with
//! `Retry-After` and no handler call, unless the receiver is fail-open.
//!
//! The slow-body case sends a valid delivery's headers, then its body a byte per second, over a
//! raw TCP socket: the receiver's body-read deadline (1 s in that case) must answer 408
//! `body_read_timeout` without running the handler, and the server must then close the
//! connection.
//!
//! Extractors work only behind their layer or middleware (an extractor alone never sees the
//! handler's answer), so every case runs in that one mode; none is skipped.
//!
//! The signature of [`run_suite`] and the shape of [`Calls`] and [`TestServer`] are stable.
#![allow(dead_code)]

use std::{
    any::Any,
    collections::{BTreeMap, VecDeque},
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use agentsync_webhooks::{
    Delivery, EventData, EventRouter, EventType, FixedClock, HandlerError, Idempotency,
    MemoryStore, Receiver, Signer, UpdatesAvailable, Verifier,
    event::samples,
    handoff::{Enqueued, Handoff, ReceivedDelivery},
    idempotency::{Claim, IdempotencyStore, LeaseToken, StoreError, StoreErrorKind, StoreFuture},
    route::Event,
    v1a::SigningKey,
};
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use serde_json::value::RawValue;
use tokio::sync::Notify;

/// The signing secret of every case (the Standard Webhooks test vector secret).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// A second, unrelated secret.
pub const OTHER_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// A `v1a` signing key and its public key (the core's test pair).
const SIGNING_KEY: &str =
    "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
const PUBLIC_KEY: &str = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
/// The time of every case's clock.
pub const NOW: i64 = 1_700_000_000;
/// The body limit of the size cases.
pub const SMALL_LIMIT: usize = 1024;
/// The path every adapter serves.
pub const PATH: &str = "/webhooks/psapi";

/// What the handler was given, case by case, and what it answers.
#[derive(Debug, Clone, Default)]
pub struct Calls(Arc<CallsInner>);

#[derive(Debug, Default)]
struct CallsInner {
    deliveries: Mutex<Vec<Delivery<EventData>>>,
    /// What the next calls do, in order; a plain `200` once it is empty.
    script: Mutex<VecDeque<Reply>>,
    /// Signalled when a held call has been recorded.
    entered: Notify,
    /// Lets a held call answer.
    released: Notify,
    /// What the handoff stored, by `webhook-id`.
    stored: Mutex<Vec<String>>,
    /// What the inline router's handler was given, by `webhook-id`.
    routed: Mutex<Vec<String>>,
}

/// What one handler call does.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// Answers this status.
    Status(u16),
    /// Panics.
    Panic,
    /// Waits for [`Calls::release`], then answers `200`.
    Hold,
}

impl Calls {
    /// Records one handler call and says what the handler answers: call it from the handler
    /// with the delivery it received, and answer the returned status. It may wait first (a
    /// delivery held in flight) or panic (the handler panicking on purpose).
    pub async fn record(&self, delivery: Delivery<EventData>) -> u16 {
        lock(&self.0.deliveries).push(delivery);
        let reply = lock(&self.0.script)
            .pop_front()
            .unwrap_or(Reply::Status(200));
        match reply {
            Reply::Status(status) => status,
            Reply::Panic => panic!("conformance: the handler panics on purpose"),
            Reply::Hold => {
                self.0.entered.notify_one();
                self.0.released.notified().await;
                200
            }
        }
    }

    /// Everything recorded so far.
    pub fn take(&self) -> Vec<Delivery<EventData>> {
        std::mem::take(&mut *lock(&self.0.deliveries))
    }

    /// How many calls were recorded so far.
    fn count(&self) -> usize {
        lock(&self.0.deliveries).len()
    }

    /// Makes the next calls do `replies`, in order.
    fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.0.script).extend(replies);
    }

    /// Waits until a held call has been recorded.
    async fn entered(&self) {
        self.0.entered.notified().await;
    }

    /// Lets the held call answer.
    fn release(&self) {
        self.0.released.notify_one();
    }
}

/// A lock that a panicking handler (on purpose) does not poison for the other cases.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running server: its base URL, and a guard that stops it when dropped.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`, without a path.
    pub url: String,
    /// Stops the server when dropped.
    pub _guard: Box<dyn Any + Send>,
}

impl TestServer {
    /// A server listening on `addr`, stopped when `guard` is dropped.
    pub fn new(addr: SocketAddr, guard: impl Any + Send) -> Self {
        Self {
            url: format!("http://{addr}"),
            _guard: Box::new(guard),
        }
    }

    /// Runs `serve` on the current tokio runtime, aborted when the server is dropped.
    pub fn spawn(addr: SocketAddr, serve: impl Future<Output = ()> + Send + 'static) -> Self {
        Self::new(addr, AbortOnDrop(tokio::spawn(serve)))
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a case expects back.
#[derive(Debug, Clone)]
enum Expect {
    /// `200`, and the handler ran once per send with this delivery.
    Handled {
        event_type: String,
        /// `None` for an unknown type, which must arrive as `EventData::Unknown`.
        known: Option<EventType>,
    },
    /// This status and error code, and the handler never ran.
    Rejected { status: u16, code: &'static str },
}

#[derive(Debug, Clone)]
enum Body {
    /// Sent with a `Content-Length`.
    Full(Vec<u8>),
    /// Sent chunked, without a `Content-Length`, in these chunks.
    Chunked(Vec<Vec<u8>>),
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Full(b) => b.clone(),
            Self::Chunked(chunks) => chunks.concat(),
        }
    }
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    receiver: Receiver,
    headers: Vec<(String, Vec<u8>)>,
    body: Body,
    /// How many times the request is sent.
    sends: usize,
    expect: Expect,
}

impl Case {
    /// A delivery of `body` signed with [`SECRET`] at [`NOW`], to the default receiver.
    fn signed(name: impl Into<String>, body: Vec<u8>, expect: Expect) -> Self {
        let id = "msg_2b6Sw8sPa0QmIl6ExUwL6p4ZrTA";
        let headers = Signer::new(SECRET).unwrap().sign(id, NOW, &body);
        Self {
            name: name.into(),
            receiver: receiver(),
            headers: pairs(
                &headers.id,
                &headers.timestamp.to_string(),
                &headers.signature,
            ),
            body: Body::Full(body),
            sends: 1,
            expect,
        }
    }

    fn with_receiver(mut self, receiver: Receiver) -> Self {
        self.receiver = receiver;
        self
    }

    fn with_headers(mut self, headers: Vec<(String, Vec<u8>)>) -> Self {
        self.headers = headers;
        self
    }

    /// Replaces (or, with `None`, removes) a header.
    fn set_header(mut self, name: &str, value: Option<&[u8]>) -> Self {
        self.headers.retain(|(n, _)| n != name);
        if let Some(value) = value {
            self.headers.push((name.to_owned(), value.to_vec()));
        }
        self
    }

    fn header(&self, name: &str) -> &[u8] {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default()
    }

    fn with_body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    fn sent(mut self, times: usize) -> Self {
        self.sends = times;
        self
    }
}

fn handled(event_type: &str) -> Expect {
    Expect::Handled {
        event_type: event_type.to_owned(),
        known: event_type.parse().ok(),
    }
}

fn rejected(status: u16, code: &'static str) -> Expect {
    Expect::Rejected { status, code }
}

fn pairs(id: &str, timestamp: &str, signature: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        ("webhook-id".into(), id.as_bytes().to_vec()),
        ("webhook-timestamp".into(), timestamp.as_bytes().to_vec()),
        ("webhook-signature".into(), signature.as_bytes().to_vec()),
    ]
}

fn verifier_builder() -> agentsync_webhooks::VerifierBuilder {
    Verifier::builder()
        .secret(SECRET)
        .unwrap()
        .clock(FixedClock::new(NOW))
}

/// [`SECRET`], a clock at [`NOW`], the default tolerance and body limit.
fn receiver() -> Receiver {
    Receiver::new(verifier_builder().build().unwrap())
}

fn example(event_type: EventType) -> Vec<u8> {
    samples::example_body(event_type, "whe_2b6Sw8sPa0QmIl6ExUwL6p4ZrTA", NOW)
}

fn updates_available() -> Vec<u8> {
    example(EventType::ProducerSyncUpdatesAvailable)
}

/// A `v1` entry that decodes to 32 bytes and matches nothing.
fn decoy(n: u8) -> String {
    let tag = Signer::new(OTHER_SECRET)
        .unwrap()
        .signature("msg_decoy", i64::from(n), b"decoy");
    tag.trim_start_matches("v1,").to_owned()
}

/// Every case of the suite.
fn cases() -> Vec<Case> {
    let body = updates_available;
    let ok = || handled(EventType::ProducerSyncUpdatesAvailable.as_str());
    let mut cases = Vec::new();

    // Every documented type, typed; and an unknown one, as `Unknown`.
    for &event_type in EventType::ALL {
        cases.push(Case::signed(
            format!("valid {}", event_type.as_str()),
            example(event_type),
            handled(event_type.as_str()),
        ));
    }
    let unknown = br#"{"id":"whe_1","type":"producersync.something_new","timestamp":"2023-11-14T22:13:20.000Z","data":{"anything":[1,2]}}"#;
    cases.push(Case::signed(
        "unknown event type",
        unknown.to_vec(),
        handled("producersync.something_new"),
    ));
    let no_data = br#"{"type":"producersync.brand_new"}"#;
    cases.push(Case::signed(
        "unknown event type, minimal envelope",
        no_data.to_vec(),
        handled("producersync.brand_new"),
    ));
    // An unknown type's data is kept as sent, never parsed: no number (beyond f64) or depth
    // (beyond serde_json's 128 levels) in it can refuse the delivery.
    let huge = format!(
        r#"{{"type":"billing.invoice.paid","data":{{"amount": 1e400, "deep": {}0{}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    cases.push(Case::signed(
        "unknown event type, data with 1e400 and 200 levels deep",
        huge.into_bytes(),
        handled("billing.invoice.paid"),
    ));

    // svix-* headers instead of webhook-*.
    let base = Case::signed("svix headers", body(), ok());
    let svix = [
        ("svix-id", base.header("webhook-id").to_vec()),
        ("svix-timestamp", base.header("webhook-timestamp").to_vec()),
        ("svix-signature", base.header("webhook-signature").to_vec()),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v))
    .collect();
    cases.push(base.with_headers(svix));

    // Each header missing.
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        cases.push(
            Case::signed(
                format!("{name} missing"),
                body(),
                rejected(400, "missing_header"),
            )
            .set_header(name, None),
        );
    }

    // Each header malformed or oversized.
    let malformed: Vec<(&str, &str, Vec<u8>, &'static str)> = vec![
        ("webhook-id", "empty", Vec::new(), "invalid_header"),
        (
            "webhook-id",
            "with a space",
            b"msg 1".to_vec(),
            "invalid_header",
        ),
        (
            "webhook-id",
            "not ASCII",
            b"msg_\xff".to_vec(),
            "invalid_header",
        ),
        ("webhook-id", "oversized", vec![b'a'; 257], "invalid_header"),
        (
            "webhook-timestamp",
            "empty",
            Vec::new(),
            "invalid_timestamp",
        ),
        (
            "webhook-timestamp",
            "oversized",
            vec![b'1'; 33],
            "invalid_header",
        ),
        ("webhook-signature", "empty", Vec::new(), "invalid_header"),
        (
            "webhook-signature",
            "oversized",
            format!("v1,{}", "A".repeat(9000)).into_bytes(),
            "invalid_header",
        ),
    ];
    for (name, what, value, code) in malformed {
        cases.push(
            Case::signed(format!("{name} {what}"), body(), rejected(400, code))
                .set_header(name, Some(&value)),
        );
    }

    // The replay window: inclusive at ±tolerance, refused one second past.
    for (offset, expect) in [
        (-300, ok()),
        (300, ok()),
        (-301, rejected(401, "timestamp_too_old")),
        (301, rejected(401, "timestamp_too_new")),
    ] {
        let ts = NOW + offset;
        let headers = Signer::new(SECRET).unwrap().sign("msg_window", ts, &body());
        cases.push(
            Case::signed(format!("timestamp {offset:+} s"), body(), expect).with_headers(pairs(
                &headers.id,
                &ts.to_string(),
                &headers.signature,
            )),
        );
    }

    // Timestamps that are not integer seconds (signed as sent, so only the format is wrong).
    for raw in [
        "1700000000.5",
        "1.7e9",
        "+1700000000",
        "0x6553f100",
        "abc",
        "2023-11-14T22:13:20Z",
        "-",
    ] {
        let signature = Signer::new(SECRET).unwrap().signature("msg_ts", 0, &body());
        cases.push(
            Case::signed(
                format!("timestamp {raw:?}"),
                body(),
                rejected(400, "invalid_timestamp"),
            )
            .with_headers(pairs("msg_ts", raw, &signature)),
        );
    }

    // Secrets.
    let other = Signer::new(OTHER_SECRET)
        .unwrap()
        .sign("msg_other", NOW, &body());
    cases.push(
        Case::signed("wrong secret", body(), rejected(401, "signature_mismatch"))
            .with_headers(pairs(&other.id, &NOW.to_string(), &other.signature)),
    );
    let rotated = || {
        Receiver::new(
            Verifier::builder()
                .secret(OTHER_SECRET)
                .unwrap()
                .secret(SECRET)
                .unwrap()
                .clock(FixedClock::new(NOW))
                .build()
                .unwrap(),
        )
    };
    cases
        .push(Case::signed("second of two rotated secrets", body(), ok()).with_receiver(rotated()));
    cases.push(
        Case::signed("first of two rotated secrets", body(), ok())
            .with_receiver(rotated())
            .with_headers(pairs(&other.id, &NOW.to_string(), &other.signature)),
    );

    // The valid signature among decoys; only garbage; an empty v1 entry.
    let valid = Case::signed("", body(), ok());
    let good = String::from_utf8(valid.header("webhook-signature").to_vec()).unwrap();
    let (d1, d2) = (format!("v1,{}", decoy(1)), format!("v1,{}", decoy(2)));
    for (place, signature) in [
        ("first", format!("{good} {d1} {d2}")),
        ("middle", format!("{d1} {good} {d2}")),
        ("last", format!("{d1} {d2} {good}")),
        (
            "last, after garbage",
            format!("v1 x,y v2,abc v1,!!! {good}"),
        ),
    ] {
        cases.push(
            Case::signed(
                format!("valid signature {place} among decoys"),
                body(),
                ok(),
            )
            .set_header("webhook-signature", Some(signature.as_bytes())),
        );
    }
    for (what, signature) in [
        ("only garbage entries", "v1,garbage v2,abc nocomma v1a,!!"),
        ("only decoys", &format!("{d1} {d2}")),
        ("v1,", "v1,"),
        ("v1, and a bare comma", "v1, ,"),
        ("v2 with the right tag", &good.replacen("v1,", "v2,", 1)),
    ] {
        cases.push(
            Case::signed(
                format!("signature: {what}"),
                body(),
                rejected(401, "signature_mismatch"),
            )
            .set_header("webhook-signature", Some(signature.as_bytes())),
        );
    }

    // v1a (Ed25519) against trusted keys only.
    let v1a_receiver = || {
        Receiver::new(
            Verifier::builder()
                .public_key(PUBLIC_KEY)
                .unwrap()
                .clock(FixedClock::new(NOW))
                .build()
                .unwrap(),
        )
    };
    let trusted = Signer::default()
        .with_signing_key(SIGNING_KEY.parse().unwrap())
        .sign("msg_v1a", NOW, &body());
    cases.push(
        Case::signed("v1a with a trusted key", body(), ok())
            .with_receiver(v1a_receiver())
            .with_headers(pairs(&trusted.id, &NOW.to_string(), &trusted.signature)),
    );
    let untrusted = Signer::default()
        .with_signing_key(SigningKey::generate().unwrap())
        .sign("msg_v1a", NOW, &body());
    cases.push(
        Case::signed(
            "v1a with an untrusted key",
            body(),
            rejected(401, "signature_mismatch"),
        )
        .with_receiver(v1a_receiver())
        .with_headers(pairs(&untrusted.id, &NOW.to_string(), &untrusted.signature)),
    );

    // Bodies.
    let mut tampered = body();
    let last = tampered.len() - 2;
    tampered[last] ^= 0x01;
    cases.push(
        Case::signed(
            "body changed by one byte",
            body(),
            rejected(401, "signature_mismatch"),
        )
        .with_body(Body::Full(tampered)),
    );
    cases.push(Case::signed(
        "empty body",
        Vec::new(),
        rejected(400, "invalid_payload"),
    ));
    cases.push(Case::signed(
        "non-JSON body",
        b"type=producersync.updates_available".to_vec(),
        rejected(400, "invalid_payload"),
    ));
    cases.push(Case::signed(
        "JSON array body",
        b"[1,2,3]".to_vec(),
        rejected(400, "invalid_payload"),
    ));
    cases.push(Case::signed(
        "JSON object without a type",
        br#"{"id":"whe_1","data":{"runDate":"2025-07-24"}}"#.to_vec(),
        rejected(400, "invalid_payload"),
    ));
    cases.push(Case::signed(
        "truncated JSON",
        br#"{"type":"producersync.updates_available","data":{"#.to_vec(),
        rejected(400, "invalid_payload"),
    ));
    cases.push(Case::signed(
        "known type with data missing a documented field",
        br#"{"type":"producersync.updates_available","data":{}}"#.to_vec(),
        rejected(400, "invalid_event_data"),
    ));

    // The body limit.
    let small = || Receiver::new(verifier_builder().build().unwrap()).with_body_limit(SMALL_LIMIT);
    let padded = |len: usize| {
        let mut b = body();
        b.resize(len, b' ');
        b
    };
    cases.push(
        Case::signed("body exactly at the limit", padded(SMALL_LIMIT), ok()).with_receiver(small()),
    );
    cases.push(
        Case::signed(
            "body over the limit, with Content-Length",
            padded(SMALL_LIMIT + 1),
            rejected(413, "payload_too_large"),
        )
        .with_receiver(small()),
    );
    cases.push(
        Case::signed(
            "body far over the limit, with Content-Length",
            padded(4 * SMALL_LIMIT),
            rejected(413, "payload_too_large"),
        )
        .with_receiver(small()),
    );
    let chunks = |b: Vec<u8>| Body::Chunked(b.chunks(256).map(<[u8]>::to_vec).collect());
    cases.push(
        Case::signed("chunked body within the limit", padded(SMALL_LIMIT), ok())
            .with_receiver(small())
            .with_body(chunks(padded(SMALL_LIMIT))),
    );
    cases.push(
        Case::signed(
            "chunked body over the limit, without Content-Length",
            padded(4 * SMALL_LIMIT),
            rejected(413, "payload_too_large"),
        )
        .with_receiver(small())
        .with_body(chunks(padded(4 * SMALL_LIMIT))),
    );

    // The same delivery twice without idempotency: both verified, both processed.
    cases.push(Case::signed("same valid request twice", body(), ok()).sent(2));

    cases
}

/// Runs every case against the adapter that `start` boots; panics once, listing every failure.
pub async fn run_suite<F, Fut>(adapter: &str, start: F)
where
    F: Fn(Receiver, Calls) -> Fut,
    Fut: Future<Output = TestServer>,
{
    run(adapter, start).await;
}

async fn run<F, Fut>(adapter: &str, start: F)
where
    F: Fn(Receiver, Calls) -> Fut,
    Fut: Future<Output = TestServer>,
{
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let cases = cases();
    let scenarios = Scenario::ALL;
    let total = cases.len() + scenarios.len();
    let mut failures = Vec::new();
    for case in cases {
        let calls = Calls::default();
        let server = start(case.receiver.clone(), calls.clone()).await;
        let mut problems = Vec::new();
        for attempt in 1..=case.sends {
            match send(&client, &server.url, &case).await {
                Ok(response) => check_response(&case, &response, &mut problems),
                Err(e) => problems.push(format!("send #{attempt} failed: {e}")),
            }
        }
        check_calls(&case, &calls.take(), &mut problems);
        drop(server);
        if !problems.is_empty() {
            failures.push(format!("  {}: {}", case.name, problems.join("; ")));
        }
    }
    for scenario in scenarios {
        let calls = Calls::default();
        let server = start(scenario.receiver(&calls), calls.clone()).await;
        let problems = scenario.play(&client, &server.url, &calls).await;
        drop(server);
        if !problems.is_empty() {
            failures.push(format!("  {}: {}", scenario.name(), problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{adapter}: {} of {total} conformance cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The idempotency cases: several requests of one delivery, checked one by one.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// Sent twice: the handler runs once; the second answer is an empty 200.
    Duplicate,
    /// The handler answers 500; the retry is processed.
    RetryAfterError,
    /// The handler panics; the retry is processed.
    RetryAfterPanic,
    /// A second delivery while the first is in the handler: 409 with `Retry-After`.
    InFlight,
    /// The store always fails: 503 with `Retry-After`, the handler never runs.
    StoreUnavailable,
    /// The store always fails but the receiver is fail-open: processed (every time).
    FailOpen,
    /// The body arrives a byte per second: 408 once the deadline passes, handler not run,
    /// connection closed.
    SlowBody,
    /// With a handoff: stored before the handler runs; the retry is a duplicate, not stored
    /// again, handler not run.
    HandoffStored,
    /// With a handoff whose queue cannot be written: 503 with `Retry-After`, handler not run.
    HandoffUnavailable,
    /// With an inline router: the router's handler runs instead of the framework's; its
    /// failure is a 500 that the retry gets past, answered 200 empty; the next retry is a
    /// duplicate.
    RoutedInline,
}

impl Scenario {
    const ALL: [Self; 10] = [
        Self::Duplicate,
        Self::RetryAfterError,
        Self::RetryAfterPanic,
        Self::InFlight,
        Self::StoreUnavailable,
        Self::FailOpen,
        Self::SlowBody,
        Self::HandoffStored,
        Self::HandoffUnavailable,
        Self::RoutedInline,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Duplicate => "idempotency: same delivery twice",
            Self::RetryAfterError => "idempotency: retry after the handler answered 500",
            Self::RetryAfterPanic => "idempotency: retry after the handler panicked",
            Self::InFlight => "idempotency: second delivery while the first is in the handler",
            Self::StoreUnavailable => "idempotency: store unavailable",
            Self::FailOpen => "idempotency: store unavailable, fail-open",
            Self::SlowBody => "a body sent a byte per second",
            Self::HandoffStored => "handoff: stored, then a duplicate",
            Self::HandoffUnavailable => "handoff: queue unavailable",
            Self::RoutedInline => "inline router: failed, retried, then a duplicate",
        }
    }

    fn receiver(self, calls: &Calls) -> Receiver {
        let idempotency = match self {
            Self::StoreUnavailable => Idempotency::new(FailingStore),
            Self::FailOpen => Idempotency::new(FailingStore).fail_open(),
            Self::SlowBody => return receiver().with_body_read_timeout(SLOW_BODY_DEADLINE),
            Self::HandoffStored => return receiver().with_handoff(RecordingHandoff(calls.clone())),
            Self::HandoffUnavailable => return receiver().with_handoff(FailingStore),
            Self::RoutedInline => {
                return receiver()
                    .with_idempotency(MemoryStore::new())
                    .with_route(failing_once_router(calls.clone()));
            }
            _ => Idempotency::new(MemoryStore::new()),
        };
        receiver().with_idempotency(idempotency)
    }

    /// Sends the delivery as the case says; returns what went wrong.
    async fn play(self, client: &reqwest::Client, url: &str, calls: &Calls) -> Vec<String> {
        let case = Case::signed(
            self.name(),
            updates_available(),
            handled(EventType::ProducerSyncUpdatesAvailable.as_str()),
        );
        let mut problems = Vec::new();
        let send = || send(client, url, &case);
        let (expected_calls, answers) = match self {
            Self::Duplicate => {
                let first = send().await;
                let second = send().await;
                let answers = [
                    ("first", first, OK),
                    ("duplicate", second, Answer::Duplicate),
                ];
                (1, answers.into())
            }
            Self::RetryAfterError => {
                calls.script([Reply::Status(500)]);
                let first = send().await;
                let retry = send().await;
                let answers = [("first", first, Answer::Status(500)), ("retry", retry, OK)];
                (2, answers.into())
            }
            Self::RetryAfterPanic => {
                calls.script([Reply::Panic]);
                // A panicking handler ends in a 500 or a dropped connection, by framework.
                if let Ok(response) = send().await
                    && response.status != 500
                {
                    problems.push(format!(
                        "the panicking handler's answer: {}",
                        response.status
                    ));
                }
                (2, vec![("retry", send().await, OK)])
            }
            Self::InFlight => {
                calls.script([Reply::Hold]);
                let Some(second) = in_flight(client, url, &case, calls, &mut problems).await else {
                    return problems;
                };
                let in_flight = Answer::Refused(409, "in_flight");
                (1, vec![("while in flight", second, in_flight)])
            }
            Self::StoreUnavailable => {
                let unavailable = Answer::Refused(503, "store_unavailable");
                (0, vec![("first", send().await, unavailable)])
            }
            Self::FailOpen => {
                let first = send().await;
                let second = send().await;
                (2, [("first", first, OK), ("second", second, OK)].into())
            }
            Self::SlowBody => {
                problems.extend(slow_body(url, &case).await);
                (0, Vec::new())
            }
            Self::HandoffStored => {
                let first = send().await;
                let retry = send().await;
                let stored = lock(&calls.0.stored).clone();
                if stored
                    .iter()
                    .map(String::as_bytes)
                    .ne([case.header("webhook-id")])
                {
                    problems.push(format!("stored {stored:?}, expected the id once"));
                }
                let answers = [("first", first, OK), ("retry", retry, Answer::Duplicate)];
                (1, answers.into())
            }
            Self::HandoffUnavailable => {
                let unavailable = Answer::Refused(503, "store_unavailable");
                (0, vec![("first", send().await, unavailable)])
            }
            Self::RoutedInline => {
                let first = send().await;
                let retry = send().await;
                let again = send().await;
                let routed = lock(&calls.0.routed).len();
                if routed != 2 {
                    problems.push(format!(
                        "the router's handler ran {routed} time(s), expected 2"
                    ));
                }
                let failed = Answer::Failed(500, "handler_failed");
                let answers = [
                    ("first", first, failed),
                    ("retry", retry, Answer::Duplicate),
                    ("again", again, Answer::Duplicate),
                ];
                (0, answers.into())
            }
        };
        for (what, response, answer) in answers {
            let mut found = Vec::new();
            match response {
                Ok(response) => answer.check(&response, &mut found),
                Err(e) => found.push(format!("send failed: {e}")),
            }
            problems.extend(found.into_iter().map(|p| format!("{what}: {p}")));
        }
        let ran = calls.count();
        if ran != expected_calls {
            problems.push(format!(
                "the handler ran {ran} time(s), expected {expected_calls}"
            ));
        }
        problems
    }
}

/// What an idempotency case expects of one answer.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// The handler's status.
    Status(u16),
    /// A duplicate: `200` with an empty body.
    Duplicate,
    /// A refusal with this status and code, and a `Retry-After`.
    Refused(u16, &'static str),
    /// A failure with this status and code, without `Retry-After`.
    Failed(u16, &'static str),
}

/// The handler's `200`.
const OK: Answer = Answer::Status(200);

impl Answer {
    fn check(self, response: &Response, problems: &mut Vec<String>) {
        match self {
            Self::Status(status) => check_status(response, status, problems),
            Self::Duplicate => {
                check_status(response, 200, problems);
                if !response.body.is_empty() {
                    let body = String::from_utf8_lossy(&response.body);
                    problems.push(format!("body {body:?}, expected an empty body"));
                }
            }
            Self::Refused(status, code) => check_error(response, status, code, true, problems),
            Self::Failed(status, code) => check_error(response, status, code, false, problems),
        }
    }
}

/// Holds a first delivery in the handler, sends the second meanwhile and returns its answer
/// (`None` if the first never reached the handler); then lets the first one finish, which must
/// answer 200.
async fn in_flight(
    client: &reqwest::Client,
    url: &str,
    case: &Case,
    calls: &Calls,
    problems: &mut Vec<String>,
) -> Option<Result<Response, String>> {
    let first = {
        let (client, url, case) = (client.clone(), url.to_owned(), case.clone());
        tokio::spawn(async move { send(&client, &url, &case).await })
    };
    let mut first = std::pin::pin!(first);
    tokio::select! {
        () = calls.entered() => {}
        answer = &mut first => {
            let answer = answer.map_err(|e| e.to_string()).and_then(|r| r);
            problems.push(format!(
                "first: answered before reaching the handler: {:?}",
                answer.map(|r| r.status)
            ));
            return None;
        }
    }
    let second = send(client, url, case).await;
    calls.release();
    match first.await.map_err(|e| e.to_string()).and_then(|r| r) {
        Ok(response) => {
            let mut found = Vec::new();
            check_status(&response, 200, &mut found);
            problems.extend(found.into_iter().map(|p| format!("first: {p}")));
        }
        Err(e) => problems.push(format!("first: send failed: {e}")),
    }
    Some(second)
}

/// The body-read deadline of the slow-body case.
const SLOW_BODY_DEADLINE: Duration = Duration::from_secs(1);

/// Sends `case`'s headers at once and its body a byte per second over a raw socket; expects a
/// 408 `body_read_timeout` long before the body could have arrived, then the connection closed.
async fn slow_body(url: &str, case: &Case) -> Vec<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mut problems = Vec::new();
    let addr = url.trim_start_matches("http://").to_owned();
    let stream = match tokio::net::TcpStream::connect(&addr).await {
        Ok(stream) => stream,
        Err(e) => return vec![format!("connect: {e}")],
    };
    let (mut reader, mut writer) = stream.into_split();
    let body = case.body.bytes();
    let mut head = format!(
        "POST {PATH} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (name, value) in &case.headers {
        head.extend_from_slice(format!("{name}: ").as_bytes());
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let drip = tokio::spawn(async move {
        writer.write_all(&head).await?;
        for byte in body {
            writer.write_all(&[byte]).await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok::<_, std::io::Error>(writer)
    });
    // The deadline is 1 s; the whole body would take minutes. 20 s bounds a hung server.
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = reader.read(&mut buf).await {
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    drip.abort();
    let answer = String::from_utf8_lossy(&answer);
    if closed.is_err() {
        problems.push(format!(
            "the connection was still open 20 s later (answer so far: {answer:?})"
        ));
    }
    if !answer.starts_with("HTTP/1.1 408") {
        problems.push(format!("expected a 408 answer, got {answer:?}"));
    }
    if !answer.contains("\"error\":\"body_read_timeout\"") {
        problems.push(format!(
            "expected the body_read_timeout code, got {answer:?}"
        ));
    }
    problems
}

/// A store that cannot be reached, whatever is asked.
#[derive(Debug)]
struct FailingStore;

impl FailingStore {
    fn error() -> StoreError {
        StoreError::new(
            StoreErrorKind::Unreachable,
            "conformance: the store is down",
        )
    }
}

impl Handoff for FailingStore {
    fn enqueue<'a>(&'a self, _: &'a ReceivedDelivery) -> StoreFuture<'a, Enqueued> {
        Box::pin(async { Err(Self::error()) })
    }
}

/// A handoff that records what it stores in the case's [`Calls`], and knows each id once.
#[derive(Debug)]
struct RecordingHandoff(Calls);

impl Handoff for RecordingHandoff {
    fn enqueue<'a>(&'a self, delivery: &'a ReceivedDelivery) -> StoreFuture<'a, Enqueued> {
        let mut stored = lock(&self.0.0.stored);
        let enqueued = if stored.contains(&delivery.webhook_id) {
            Enqueued::Duplicate
        } else {
            stored.push(delivery.webhook_id.clone());
            Enqueued::New
        };
        Box::pin(std::future::ready(Ok(enqueued)))
    }
}

/// A router whose `producersync.updates_available` handler records each run in `calls` and
/// fails the first one.
fn failing_once_router(calls: Calls) -> EventRouter {
    EventRouter::new().on(
        EventType::ProducerSyncUpdatesAvailable,
        move |event: Event<UpdatesAvailable>| {
            let calls = calls.clone();
            async move {
                let runs = {
                    let mut routed = lock(&calls.0.routed);
                    routed.push(event.webhook_id.clone());
                    routed.len()
                };
                if runs == 1 {
                    return Err(HandlerError::retryable("conformance: the first run fails"));
                }
                Ok(())
            }
        },
    )
}

impl IdempotencyStore for FailingStore {
    fn claim<'a>(&'a self, _: &'a str, _: Duration) -> StoreFuture<'a, Claim> {
        Box::pin(async { Err(Self::error()) })
    }

    fn complete<'a>(&'a self, _: &'a str, _: LeaseToken, _: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(Self::error()) })
    }

    fn release<'a>(&'a self, _: &'a str, _: LeaseToken) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(Self::error()) })
    }

    fn release_detached(&self, _: &str, _: LeaseToken) {}

    fn forget<'a>(&'a self, _: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(Self::error()) })
    }
}

struct Response {
    status: u16,
    content_type: Option<String>,
    retry_after: Option<String>,
    body: Bytes,
}

async fn send(client: &reqwest::Client, url: &str, case: &Case) -> Result<Response, String> {
    let mut request = client.post(format!("{url}{PATH}"));
    for (name, value) in &case.headers {
        let value = reqwest::header::HeaderValue::from_bytes(value).map_err(|e| e.to_string())?;
        request = request.header(name.as_str(), value);
    }
    request = match &case.body {
        Body::Full(bytes) => request.body(bytes.clone()),
        Body::Chunked(chunks) => request.body(reqwest::Body::wrap(Chunks(
            chunks.iter().cloned().map(Bytes::from).collect(),
        ))),
    };
    let response = request.send().await.map_err(|e| format!("{e:?}"))?;
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let (content_type, retry_after) = (header("content-type"), header("retry-after"));
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| format!("{e:?}"))?;
    Ok(Response {
        status,
        content_type,
        retry_after,
        body,
    })
}

fn check_response(case: &Case, response: &Response, problems: &mut Vec<String>) {
    match &case.expect {
        Expect::Handled { .. } => check_status(response, 200, problems),
        Expect::Rejected { status, code } => check_error(response, *status, code, false, problems),
    }
}

fn check_status(response: &Response, status: u16, problems: &mut Vec<String>) {
    if response.status != status {
        let body = String::from_utf8_lossy(&response.body);
        problems.push(format!(
            "status {} (body {body:?}), expected {status}",
            response.status
        ));
    }
}

/// A refusal: `status`, a JSON body with `code` and a message, and a positive `Retry-After`
/// exactly when `retry_after`.
fn check_error(
    response: &Response,
    status: u16,
    code: &str,
    retry_after: bool,
    problems: &mut Vec<String>,
) {
    check_status(response, status, problems);
    if !response
        .content_type
        .as_deref()
        .is_some_and(|ct| ct.starts_with("application/json"))
    {
        problems.push(format!(
            "content-type {:?}, expected application/json",
            response.content_type
        ));
    }
    match serde_json::from_slice::<serde_json::Value>(&response.body) {
        Ok(json) => {
            if json["error"] != *code {
                problems.push(format!("error code {}, expected {code:?}", json["error"]));
            }
            if json["message"].as_str().is_none_or(str::is_empty) {
                problems.push(format!("no message in {json}"));
            }
        }
        Err(e) => {
            let body = String::from_utf8_lossy(&response.body);
            problems.push(format!("body {body:?} is not JSON: {e}"));
        }
    }
    match (&response.retry_after, retry_after) {
        (Some(value), false) => problems.push(format!("unexpected Retry-After {value}")),
        (None, true) => problems.push("no Retry-After".into()),
        (Some(value), true) if value.parse::<u64>().is_ok_and(|secs| secs > 0) => {}
        (Some(value), true) => problems.push(format!("Retry-After {value:?}, expected seconds")),
        (None, false) => {}
    }
}

fn check_calls(case: &Case, calls: &[Delivery<EventData>], problems: &mut Vec<String>) {
    match &case.expect {
        Expect::Rejected { .. } => {
            if !calls.is_empty() {
                problems.push(format!("the handler ran {} time(s)", calls.len()));
            }
        }
        Expect::Handled { event_type, known } => {
            if calls.len() != case.sends {
                problems.push(format!(
                    "the handler ran {} time(s), expected {}",
                    calls.len(),
                    case.sends
                ));
            }
            let sent_id = case
                .headers
                .iter()
                .find(|(n, _)| n == "webhook-id" || n == "svix-id")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
            for delivery in calls {
                if &delivery.event.event_type != event_type {
                    problems.push(format!("handler got type {:?}", delivery.event.event_type));
                }
                match (known, &delivery.event.data) {
                    (
                        None,
                        EventData::Unknown {
                            event_type: t,
                            data,
                        },
                    ) if t == event_type => {
                        let sent = sent_data(&case.body.bytes());
                        if sent.as_deref() != Some(data.get()) {
                            problems.push(format!("handler got data {data}, sent {sent:?}"));
                        }
                    }
                    (Some(k), data) if data.event_type() == Some(*k) => {}
                    (_, data) => problems.push(format!("handler got data {data:?}")),
                }
                if Some(&delivery.webhook_id) != sent_id.as_ref() {
                    problems.push(format!("handler got webhook id {:?}", delivery.webhook_id));
                }
                if delivery.raw_body[..] != case.body.bytes()[..] {
                    problems.push("handler got a raw body other than the one sent".into());
                }
            }
        }
    }
}

/// The `data` of an envelope as its exact text (`{}` when absent or null, as the design says).
fn sent_data(body: &[u8]) -> Option<String> {
    let envelope: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(body).ok()?;
    Some(match envelope.get("data").map(|d| d.get()) {
        None | Some("null") => "{}".to_owned(),
        Some(data) => data.to_owned(),
    })
}

/// A request body sent chunk by chunk, with no length known in advance (so: chunked).
struct Chunks(VecDeque<Bytes>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
