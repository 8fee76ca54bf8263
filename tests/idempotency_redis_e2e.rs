//! Idempotency end to end with `RedisStore`: axum servers behind `WebhookLayer`, real signed
//! deliveries resent byte for byte, and a real Redis.
//!
//! Uses `REDIS_URL` (default `redis://127.0.0.1:6379`). When `REDIS_URL` is set, an unreachable
//! Redis fails every test; when it is not, the tests are skipped with a note. Every test works
//! under its own key prefix (unique to the test and the run), so tests run in parallel and again.

mod idempotency_support;

use std::{
    net::TcpListener as StdTcpListener,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use agentsync_webhooks::{
    axum::Webhook,
    idempotency::{Claim, Idempotency},
    redis::{
        RedisStore,
        redis::{self, ConnectionAddr, IntoConnectionInfo, aio::ConnectionManager},
        testing::{namespace, real_store, redis_url},
    },
};
use axum::{http::StatusCode, response::IntoResponse, routing::post};
use idempotency_support::{
    Answer, DELIVERIES, OVERLAP, PATIENCE, PROCESSED, SignedDelivery, Tally, burst, client,
    receiver, send, serve, wait_until,
};
use tokio::net::{TcpListener, TcpStream};

/// Idempotency in `store` under `prefix`, remembering ids for ten minutes rather than 72 h, so
/// that test runs do not pile keys up in a shared Redis.
fn scoped(store: RedisStore, prefix: &str) -> Idempotency {
    Idempotency::new(store)
        .with_key_prefix(prefix)
        .with_ttl(Duration::from_secs(600))
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Sends `delivery` again while the answer is `waiting` (as the sender retries), for at most
/// [`PATIENCE`]; the first other answer.
async fn send_while(
    client: &reqwest::Client,
    url: &str,
    delivery: &SignedDelivery,
    waiting: Answer,
) -> Answer {
    let start = Instant::now();
    loop {
        let answer = send(client, url, delivery).await;
        if answer != waiting {
            return answer;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "still {waiting:?} for {} after {PATIENCE:?}",
            delivery.id
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A handler that counts its runs in `calls` and answers [`PROCESSED`] once `answered` reached
/// [`OVERLAP`] (or after [`PATIENCE`]).
fn overlapping_handler(
    calls: &Arc<AtomicUsize>,
    answered: &Arc<AtomicUsize>,
) -> axum::routing::MethodRouter {
    let (calls, answered) = (Arc::clone(calls), Arc::clone(answered));
    post(move |_event: Webhook| async move {
        calls.fetch_add(1, Ordering::SeqCst);
        wait_until(PATIENCE, || answered.load(Ordering::SeqCst) >= OVERLAP).await;
        PROCESSED
    })
}

/// A handler that counts its runs and answers [`PROCESSED`].
fn counting_handler(calls: &Arc<AtomicUsize>) -> axum::routing::MethodRouter {
    let calls = Arc::clone(calls);
    post(move |_event: Webhook| async move {
        calls.fetch_add(1, Ordering::SeqCst);
        PROCESSED
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_sharing_redis_run_the_handler_once_for_500_concurrent_deliveries() {
    let test = "two_instances_sharing_redis";
    // Each instance has its own connection to the same Redis and the same namespace.
    let (Some(first_store), Some(second_store)) = (real_store(test).await, real_store(test).await)
    else {
        return;
    };
    let prefix = namespace(test);
    let calls = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let first = serve(
        receiver().with_idempotency(scoped(first_store, &prefix)),
        overlapping_handler(&calls, &answered),
    )
    .await;
    let second = serve(
        receiver().with_idempotency(scoped(second_store, &prefix)),
        overlapping_handler(&calls, &answered),
    )
    .await;
    let client = client();
    let delivery = SignedDelivery::new();

    let answers = burst(
        &client,
        &[&first.url, &second.url],
        &delivery,
        DELIVERIES,
        &answered,
    )
    .await;
    let tally = Tally::of(&answers);
    eprintln!(
        "{DELIVERIES} x {} over two instances: {tally:?}",
        delivery.id
    );
    tally.assert_one_run_of_a_burst(calls.load(Ordering::SeqCst));

    // The sender's next retries, to either instance: duplicates.
    for url in [&first.url, &second.url] {
        assert_eq!(send(&client, url, &delivery).await, Answer::Duplicate);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_500_from_the_handler_lets_the_retry_be_processed() {
    let test = "handler_500_then_retry";
    let Some(store) = real_store(test).await else {
        return;
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = Arc::clone(&calls);
        move |_event: Webhook| async move {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                (StatusCode::INTERNAL_SERVER_ERROR, "database down").into_response()
            } else {
                PROCESSED.into_response()
            }
        }
    };
    let idempotency = scoped(store, &namespace(test));
    let server = serve(receiver().with_idempotency(idempotency), post(handler)).await;
    let client = client();
    let delivery = SignedDelivery::new();

    let failed = send(&client, &server.url, &delivery).await;
    assert!(
        matches!(&failed, Answer::Other { status: 500, body, .. } if body == "database down"),
        "{failed:?}"
    );
    // The 500 released the claim before it was sent, so the retry runs at once.
    assert_eq!(
        send(&client, &server.url, &delivery).await,
        Answer::Processed
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        send(&client, &server.url, &delivery).await,
        Answer::Duplicate
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_panicking_handler_lets_the_retry_be_processed() {
    let test = "handler_panic_then_retry";
    let Some(store) = real_store(test).await else {
        return;
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = Arc::clone(&calls);
        move |_event: Webhook| async move {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("the handler panics on purpose (idempotency test)");
            }
            PROCESSED
        }
    };
    let idempotency = scoped(store, &namespace(test));
    let server = serve(receiver().with_idempotency(idempotency), post(handler)).await;
    let client = client();
    let delivery = SignedDelivery::new();

    // axum does not catch panics: the connection is closed without an answer (a 500 if some
    // layer catches it).
    let failed = send(&client, &server.url, &delivery).await;
    assert!(
        matches!(
            &failed,
            Answer::Unanswered(_) | Answer::Other { status: 500, .. }
        ),
        "{failed:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The abandoned claim is released in the background: until that lands, a retry is in flight.
    let retried = send_while(&client, &server.url, &delivery, Answer::InFlight).await;
    assert_eq!(retried, Answer::Processed);
    eprintln!("the panicking delivery got {failed:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        send(&client, &server.url, &delivery).await,
        Answer::Duplicate
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_claim_never_finished_expires_with_its_lease_and_the_retry_is_processed() {
    let test = "lease_expiry";
    let Some(store) = real_store(test).await else {
        return;
    };
    let lease = Duration::from_millis(300);
    let idempotency = scoped(store, &namespace(test)).with_lease(lease);
    let calls = Arc::new(AtomicUsize::new(0));
    let server = serve(
        receiver().with_idempotency(idempotency.clone()),
        counting_handler(&calls),
    )
    .await;
    let client = client();
    let delivery = SignedDelivery::new();

    // A delivery claimed by an instance that is then killed: never completed nor released.
    let claimed_at = Instant::now();
    let claim = idempotency
        .store()
        .claim(&idempotency.key(&delivery.id), lease)
        .await
        .unwrap();
    assert!(matches!(claim, Claim::New(_)), "{claim:?}");

    let during = send(&client, &server.url, &delivery).await;
    eprintln!("during the lease: {during:?}");
    if claimed_at.elapsed() < lease {
        // Answered before the lease could have run out: the claim still holds the id.
        assert_eq!(during, Answer::InFlight);
    }
    if during == Answer::InFlight {
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        tokio::time::sleep_until((claimed_at + lease + Duration::from_millis(200)).into()).await;
        let retried = send_while(&client, &server.url, &delivery, Answer::InFlight).await;
        assert_eq!(retried, Answer::Processed);
    } else {
        // This machine was slow enough that the lease ran out before the first send.
        assert_eq!(during, Answer::Processed);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        send(&client, &server.url, &delivery).await,
        Answer::Duplicate
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unreachable_redis_is_a_503_then_the_reachable_store_processes_the_delivery() {
    let test = "unreachable_then_real";
    let Some(store) = real_store(test).await else {
        return;
    };
    let prefix = namespace(test);
    let calls = Arc::new(AtomicUsize::new(0));
    let down = RedisStore::connect_lazy(&format!("redis://127.0.0.1:{}", closed_port())).unwrap();
    let unreachable = serve(
        receiver().with_idempotency(scoped(down, &prefix)),
        counting_handler(&calls),
    )
    .await;
    let client = client();
    let delivery = SignedDelivery::new();

    for _ in 0..3 {
        assert_eq!(
            send(&client, &unreachable.url, &delivery).await,
            Answer::Unavailable
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let reachable = serve(
        receiver().with_idempotency(scoped(store, &prefix)),
        counting_handler(&calls),
    )
    .await;
    assert_eq!(
        send(&client, &reachable.url, &delivery).await,
        Answer::Processed
    );
    assert_eq!(
        send(&client, &reachable.url, &delivery).await,
        Answer::Duplicate
    );
    // Fail-closed: the instance without its store still processes nothing.
    assert_eq!(
        send(&client, &unreachable.url, &delivery).await,
        Answer::Unavailable
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_server_whose_redis_becomes_reachable_processes_the_retry() {
    let test = "redis_becomes_reachable";
    if real_store(test).await.is_none() {
        return;
    }
    let (url, _) = redis_url();
    let info = url.as_str().into_connection_info().unwrap();
    let ConnectionAddr::Tcp(redis_host, redis_port) = info.addr().clone() else {
        eprintln!("skipping {test}: REDIS_URL is not plain TCP, which this test forwards");
        return;
    };
    // The store's address: nothing listens there yet.
    let port = closed_port();
    let info = info.set_addr(ConnectionAddr::Tcp("127.0.0.1".to_owned(), port));
    let connection = ConnectionManager::new_lazy_with_config(
        redis::Client::open(info).unwrap(),
        RedisStore::connection_config(),
    )
    .unwrap();
    let store = RedisStore::from_connection_manager(connection);
    let calls = Arc::new(AtomicUsize::new(0));
    let server = serve(
        receiver().with_idempotency(scoped(store, &namespace(test))),
        counting_handler(&calls),
    )
    .await;
    let client = client();
    let delivery = SignedDelivery::new();

    assert_eq!(
        send(&client, &server.url, &delivery).await,
        Answer::Unavailable
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // Redis comes up at the store's address (a forwarder to the real one).
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let forwarder = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = (redis_host.clone(), redis_port);
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });

    // The sender's retries: 503 until the store reconnects, then processed once.
    let retried = send_while(&client, &server.url, &delivery, Answer::Unavailable).await;
    assert_eq!(retried, Answer::Processed);
    assert_eq!(
        send(&client, &server.url, &delivery).await,
        Answer::Duplicate
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    forwarder.abort();
}
