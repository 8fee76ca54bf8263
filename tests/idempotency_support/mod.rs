//! What the idempotency end-to-end tests share: an axum server behind `WebhookLayer` with
//! idempotency, one signed delivery resent byte for byte (as the sender's retries are), a reqwest
//! client, and the answers classified.
//!
//! The handlers of these tests answer `200` with the body [`PROCESSED`], so that the handler's
//! answer can be told apart from the empty `200` of a duplicate.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use agentsync_webhooks::{EventType, Receiver, Signer, Verifier, tower::WebhookLayer};
use axum::{Router, routing::MethodRouter};
use tokio::{net::TcpListener, task::JoinSet};

/// The signing secret of every test (the Standard Webhooks test vector secret).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The path the servers serve.
pub const PATH: &str = "/webhooks/psapi";
/// The body of the handlers' own `200`.
pub const PROCESSED: &str = "processed";
/// The longest any test waits for something to happen (a bound, never an assertion on speed).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One signed delivery: the same bytes and headers on every send, as the sender's retries.
#[derive(Debug, Clone)]
pub struct SignedDelivery {
    /// The `webhook-id`.
    pub id: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl SignedDelivery {
    /// A fresh documented example (new id, signed now).
    pub fn new() -> Self {
        let signed = Signer::new(SECRET)
            .unwrap()
            .example(EventType::ProducerSyncUpdatesAvailable);
        Self {
            id: signed.headers.id.clone(),
            headers: signed.headers.to_pairs().to_vec(),
            body: signed.body,
        }
    }
}

/// A receiver with the test secret; the tests add idempotency to it.
pub fn receiver() -> Receiver {
    Receiver::new(Verifier::new(SECRET).unwrap())
}

/// A server on 127.0.0.1:0: `POST` [`PATH`] behind `WebhookLayer::from_receiver(receiver)`,
/// stopped when dropped.
pub struct Server {
    /// `http://127.0.0.1:PORT/webhooks/psapi`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `route` (such as `post(handler)`) at [`PATH`] behind the layer.
pub async fn serve(receiver: Receiver, route: MethodRouter) -> Server {
    let app = Router::new()
        .route(PATH, route)
        .route_layer(WebhookLayer::from_receiver(receiver));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{PATH}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { url, task }
}

/// A client with a bound on every request.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

/// What the server answered to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The handler's own `200` (body [`PROCESSED`]).
    Processed,
    /// `200` with an empty body: a duplicate of a processed id.
    Duplicate,
    /// `409` `in_flight` with a `Retry-After` of at least one second.
    InFlight,
    /// `503` `store_unavailable` with a `Retry-After` of at least one second.
    Unavailable,
    /// Anything else: status, `Retry-After` and body as received.
    Other {
        status: u16,
        retry_after: Option<String>,
        body: String,
    },
    /// No HTTP answer (such as a connection closed by a panicking handler).
    Unanswered(String),
}

/// Sends `delivery` once to `url`.
pub async fn send(client: &reqwest::Client, url: &str, delivery: &SignedDelivery) -> Answer {
    let mut request = client.post(url);
    for (name, value) in &delivery.headers {
        request = request.header(*name, value);
    }
    let response = match request.body(delivery.body.clone()).send().await {
        Ok(response) => response,
        Err(err) => return Answer::Unanswered(err.to_string()),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let body = match response.text().await {
        Ok(body) => body,
        Err(err) => return Answer::Unanswered(format!("status {status}, body lost: {err}")),
    };
    let error_code = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| json.get("error")?.as_str().map(str::to_owned));
    let waits = retry_after
        .as_deref()
        .and_then(|value| value.parse::<u64>().ok())
        .is_some_and(|secs| secs >= 1);
    match (status, error_code.as_deref(), waits) {
        (200, _, false) if body == PROCESSED => Answer::Processed,
        (200, _, false) if body.is_empty() => Answer::Duplicate,
        (409, Some("in_flight"), true) => Answer::InFlight,
        (503, Some("store_unavailable"), true) => Answer::Unavailable,
        _ => Answer::Other {
            status,
            retry_after,
            body,
        },
    }
}

/// Sends `count` copies of `delivery` at once, to each of `urls` in turn, and returns the
/// answers. `answered` counts the answers as they arrive, so a handler can hold its claim until
/// enough others were answered (see [`wait_until`]).
pub async fn burst(
    client: &reqwest::Client,
    urls: &[&str],
    delivery: &SignedDelivery,
    count: usize,
    answered: &Arc<AtomicUsize>,
) -> Vec<Answer> {
    let mut sends = JoinSet::new();
    for i in 0..count {
        let client = client.clone();
        let url = urls[i % urls.len()].to_owned();
        let delivery = delivery.clone();
        let answered = Arc::clone(answered);
        sends.spawn(async move {
            let answer = send(&client, &url, &delivery).await;
            answered.fetch_add(1, Ordering::SeqCst);
            answer
        });
    }
    sends.join_all().await
}

/// Waits until `condition` holds, for at most `limit`; whether it held.
pub async fn wait_until(limit: Duration, condition: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while !condition() {
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Concurrent copies of one delivery.
pub const DELIVERIES: usize = 500;
/// How many other copies the handler waits to see answered before it returns, so that they
/// overlap its claim for certain (they can only be answered `409` meanwhile).
pub const OVERLAP: usize = 100;

/// How many answers of each kind, for assertions and their messages.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub processed: usize,
    pub duplicate: usize,
    pub in_flight: usize,
    /// Every answer that is none of the above.
    pub other: Vec<Answer>,
}

impl Tally {
    /// Counts `answers`.
    pub fn of(answers: &[Answer]) -> Self {
        let mut tally = Self::default();
        for answer in answers {
            match answer {
                Answer::Processed => tally.processed += 1,
                Answer::Duplicate => tally.duplicate += 1,
                Answer::InFlight => tally.in_flight += 1,
                other => tally.other.push(other.clone()),
            }
        }
        tally
    }

    /// What a [`burst`] of [`DELIVERIES`] copies must give, whatever the store: `handler_runs`
    /// is 1, one answer is processed, and every other is a duplicate or in flight, at least the
    /// [`OVERLAP`] sent while the handler ran being in flight.
    pub fn assert_one_run_of_a_burst(&self, handler_runs: usize) {
        let tally = self;
        assert_eq!(handler_runs, 1, "handler runs: {tally:?}");
        assert_eq!(tally.processed, 1, "{tally:?}");
        assert!(tally.other.is_empty(), "answers not 200 or 409: {tally:?}");
        assert_eq!(
            tally.duplicate + tally.in_flight,
            DELIVERIES - 1,
            "{tally:?}"
        );
        assert!(
            tally.in_flight >= OVERLAP,
            "the {OVERLAP} answers sent while the handler ran must be 409: {tally:?}"
        );
    }
}
