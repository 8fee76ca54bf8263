//! `RedisStore` against a real Redis: the shared store contract, the key layout, several
//! instances racing, and an unreachable, silent or restarted Redis.
//!
//! Uses `REDIS_URL` (default `redis://127.0.0.1:6379`). When `REDIS_URL` is set, an unreachable
//! Redis fails every test; when it is not, tests that need the real Redis are skipped with a note.
//! Every test works under its own key prefix, so tests run in parallel and runs do not collide.

use std::{
    net::TcpListener as StdTcpListener,
    process::Stdio,
    time::{Duration, Instant},
};

use agentsync_webhooks_core::{
    EventData, EventType, Receiver, Signer, Verifier, WebhookError,
    idempotency::{Claim, Idempotency, IdempotencyStore, StoreErrorKind, contract::StoreContract},
};
use agentsync_webhooks_redis::{
    RedisStore,
    testing::{namespace, real_store},
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MINUTE: Duration = Duration::from_secs(60);

async fn contract(case: &'static str) -> Option<StoreContract> {
    let store = real_store(case).await?;
    Some(StoreContract::new(
        store,
        namespace(case),
        tokio::time::sleep,
    ))
}

agentsync_webhooks_core::store_contract_tests!(contract);

/// An address where nothing listens.
fn closed_port_url() -> String {
    let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("redis://127.0.0.1:{port}")
}

fn receiver(idempotency: Idempotency) -> Receiver {
    Receiver::new(Verifier::new(SECRET).unwrap()).with_idempotency(idempotency)
}

#[tokio::test]
async fn unreachable_redis_is_a_503_then_normal_against_the_real_one() {
    let test = "unreachable_redis_is_a_503_then_normal_against_the_real_one";
    let url = closed_port_url();
    let err = RedisStore::connect(&url).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unreachable, "{err}");

    let down = RedisStore::connect_lazy(&url).unwrap();
    let err = down.claim("msg_1", MINUTE).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unreachable, "{err}");

    let request = Signer::new(SECRET)
        .unwrap()
        .example(EventType::ProducerSyncUpdatesAvailable);
    let headers = request.headers.to_pairs();
    let prefix = namespace(test);
    let refused = receiver(Idempotency::new(down).with_key_prefix(&prefix))
        .accept::<EventData>(&headers, request.body.clone().into())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, WebhookError::StoreUnavailable { .. }),
        "{refused:?}"
    );
    assert_eq!((refused.status(), refused.retry_after()), (503, Some(30)));

    // The same delivery, once the store answers: processed, then a duplicate.
    let Some(store) = real_store(test).await else {
        return;
    };
    let up = receiver(Idempotency::new(store).with_key_prefix(&prefix));
    let accepted = up
        .accept::<EventData>(&headers, request.body.clone().into())
        .await
        .unwrap();
    accepted.completion.finish(200).await;
    let again = up.accept::<EventData>(&headers, request.body.into()).await;
    assert!(matches!(again, Err(WebhookError::Duplicate)), "{again:?}");
}

#[tokio::test]
async fn a_silent_redis_times_out_instead_of_hanging() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let store = RedisStore::connect_lazy(&url)
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let err = store.claim("msg_1", MINUTE).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Timeout, "{err}");
    silent.abort();
}

#[tokio::test]
async fn keys_hold_the_documented_values() {
    let test = "keys_hold_the_documented_values";
    let Some(store) = real_store(test).await else {
        return;
    };
    let key = format!("{}msg_1", namespace(test));
    let mut connection = store.connection().clone();
    let get = |connection: &mut agentsync_webhooks_redis::connection::RedisConnection,
               key: String| {
        let mut connection = connection.clone();
        async move {
            let value: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut connection)
                .await
                .unwrap();
            let pttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut connection)
                .await
                .unwrap();
            (value, pttl)
        }
    };

    let Claim::New(token) = store.claim(&key, MINUTE).await.unwrap() else {
        panic!("new")
    };
    let (value, pttl) = get(&mut connection, key.clone()).await;
    assert_eq!(value, Some(format!("lease:{token}")));
    assert!((1..=60_000).contains(&pttl), "lease expiry {pttl} ms");

    assert!(store.complete(&key, token, 2 * MINUTE).await.unwrap());
    let (value, pttl) = get(&mut connection, key.clone()).await;
    assert_eq!(value.as_deref(), Some("done"));
    assert!(
        (60_000..=120_000).contains(&pttl),
        "completion expiry {pttl} ms"
    );

    assert!(store.forget(&key).await.unwrap());
    assert_eq!(get(&mut connection, key).await, (None, -2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_for_one_id_have_one_winner() {
    let test = "two_instances_racing_for_one_id_have_one_winner";
    let (Some(first), Some(second)) = (real_store(test).await, real_store(test).await) else {
        return;
    };
    let key = format!("{}msg_1", namespace(test));
    let mut racers = Vec::new();
    for i in 0..500 {
        let store = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let key = key.clone();
        racers.push(tokio::spawn(async move { store.claim(&key, MINUTE).await }));
    }
    let mut new = 0;
    for racer in racers {
        match racer.await.unwrap().unwrap() {
            Claim::New(_) => new += 1,
            Claim::InFlight { .. } => {}
            Claim::Done => panic!("done without a completion"),
        }
    }
    assert_eq!(new, 1);
}

#[tokio::test]
async fn outside_a_runtime_an_abandoned_claim_waits_for_its_lease() {
    let test = "outside_a_runtime_an_abandoned_claim_waits_for_its_lease";
    let Some(store) = real_store(test).await else {
        return;
    };
    let key = format!("{}msg_1", namespace(test));
    let Claim::New(token) = store.claim(&key, MINUTE).await.unwrap() else {
        panic!("new")
    };
    let detached = store.clone();
    let release_key = key.clone();
    std::thread::spawn(move || detached.release_detached(&release_key, token))
        .join()
        .unwrap();
    assert!(matches!(
        store.claim(&key, MINUTE).await.unwrap(),
        Claim::InFlight { .. }
    ));
}

/// A private `redis-server` on `port`, stopped when dropped.
fn spawn_redis_server(port: u16) -> tokio::process::Child {
    tokio::process::Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Claims `key` until the store answers, for at most 10 s.
async fn claim_until_answered(store: &RedisStore, key: &str) -> Claim {
    let start = Instant::now();
    loop {
        match store.claim(key, MINUTE).await {
            Ok(claim) => return claim,
            Err(err) if start.elapsed() > Duration::from_secs(10) => {
                panic!("Redis did not come back: {err}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn a_restarted_redis_is_used_again_without_a_new_store() {
    let has_redis_server = std::process::Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !has_redis_server {
        eprintln!("skipping: no redis-server binary to start and stop");
        return;
    }
    let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("redis://127.0.0.1:{port}");

    let mut server = spawn_redis_server(port);
    let store = RedisStore::connect_lazy(&url).unwrap();
    assert!(matches!(
        claim_until_answered(&store, "msg_before").await,
        Claim::New(_)
    ));

    server.kill().await.unwrap();
    server.wait().await.unwrap();
    let err = store.claim("msg_while_down", MINUTE).await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            StoreErrorKind::Unreachable | StoreErrorKind::Timeout
        ),
        "{err}"
    );

    let _server = spawn_redis_server(port);
    assert!(matches!(
        claim_until_answered(&store, "msg_after").await,
        Claim::New(_)
    ));
}
