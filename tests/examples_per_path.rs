//! The framework examples as their users run them (a child process each, over real TCP): a
//! verifier per path (`AGENTSYNC_PSAPI_SECRET`, `AGENTSYNC_CONTRACTING_SECRET`), so a delivery
//! signed for one path is refused `401` on the other; `GET /healthz` answers `200` with the queue
//! up and `503` with the reason while its engine is unreachable, `200` again once it is back; a
//! queue that cannot be opened is one line on stderr and exit 1 (issue 22, points 5 and 6).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod handoff_support;

use agentsync_webhooks::EventType;
use handoff_support::*;

/// The contracting endpoint's own secret (the psapi path has [`SECRET`]).
const CONTRACTING_SECRET: &str = "whsec_Y29udHJhY3Rpbmctc2VjcmV0LWZvci10aGUtdGVzdHM=";

/// Each path accepts its own deliveries and refuses the other's, and `/healthz` is 200.
async fn per_path_secrets_and_healthz(example: &str) {
    let dir = TempDir::new(example);
    let settings = Settings {
        queue_url: String::new(),
        workers: 0,
        pull_delay_ms: 0,
    };
    let env = [
        ("AGENTSYNC_PSAPI_SECRET", SECRET),
        ("AGENTSYNC_CONTRACTING_SECRET", CONTRACTING_SECRET),
    ];
    let receiver =
        ReceiverProcess::start_example(example, example, dir.path(), &settings, &env).await;
    let base = receiver.url.strip_suffix(PATH).unwrap().to_owned();
    let (psapi, contracting) = (
        format!("{base}{PATH}"),
        format!("{base}/webhooks/contracting"),
    );
    let client = client();

    let for_psapi = SignedDelivery::new();
    let for_contracting = SignedDelivery::signed_with(CONTRACTING_SECRET);
    let refused = send(&client, &contracting, &for_psapi).await;
    assert_eq!(
        refused.status, 401,
        "{example}: psapi's delivery on contracting: {refused:?}"
    );
    let refused = send(&client, &psapi, &for_contracting).await;
    assert_eq!(
        refused.status, 401,
        "{example}: contracting's delivery on psapi: {refused:?}"
    );
    let accepted = send(&client, &psapi, &for_psapi).await;
    assert!(accepted.is_accepted(), "{example}: on psapi: {accepted:?}");
    let accepted = send(&client, &contracting, &for_contracting).await;
    assert!(
        accepted.is_accepted(),
        "{example}: on contracting: {accepted:?}"
    );

    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "{example}: /healthz");
    let health: serde_json::Value = serde_json::from_str(&health.text().await.unwrap()).unwrap();
    assert_eq!(health["status"], "ok", "{example}: {health}");
    assert!(health["warnings"].is_array(), "{example}: {health}");
    drop(receiver);
}

/// `GET /healthz` with the queue's Redis behind a proxy that goes down: 200, then 503 with the
/// engine's error as the reason while it is down, then 200 again once it is back (the library
/// reconnects on its own).
async fn healthz_is_503_while_the_engine_is_down(example: &str) {
    let Some(db) = RedisDb::take(&format!("healthz-503-{example}")) else {
        return;
    };
    let proxy = Proxy::start(redis_authority(&db.url)).await;
    let dir = TempDir::new(example);
    let settings = Settings {
        queue_url: through_port(&db.url, proxy.port),
        workers: 0,
        pull_delay_ms: 0,
    };
    let receiver =
        ReceiverProcess::start_example(example, example, dir.path(), &settings, &[]).await;
    let healthz = format!("{}/healthz", receiver.url.strip_suffix(PATH).unwrap());
    let client = client();
    let health = |expected: u16| {
        let (client, healthz) = (client.clone(), healthz.clone());
        async move {
            // The engine's timeouts decide how soon the answer changes; poll until it does.
            let start = std::time::Instant::now();
            loop {
                let answer = client.get(&healthz).send().await.unwrap();
                let status = answer.status().as_u16();
                let body: serde_json::Value =
                    serde_json::from_str(&answer.text().await.unwrap()).unwrap();
                if status == expected {
                    return body;
                }
                assert!(
                    start.elapsed() < BOUND,
                    "{example}: /healthz stayed {status} ({body}), expected {expected}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };

    let up = health(200).await;
    assert_eq!(up["status"], "ok", "{example}: {up}");
    assert_eq!(up["engine"], "redis", "{example}: {up}");

    proxy.go_down().await;
    let down = health(503).await;
    assert_eq!(down["status"], "unavailable", "{example}: {down}");
    let reason = down["reason"].as_str().unwrap_or_default();
    assert!(
        !reason.is_empty(),
        "{example}: a 503 names its reason: {down}"
    );

    proxy.go_up();
    let again = health(200).await;
    assert_eq!(again["status"], "ok", "{example}: {again}");
    drop(receiver);
}

/// A queue that cannot be opened: one line with the cause and the fix, exit 1.
async fn unreachable_queue_is_one_line_and_exit_1(example: &str) {
    let exe = example_executable(example).await;
    let output = tokio::process::Command::new(exe)
        .env("AGENTSYNC_WEBHOOK_SECRET", SECRET)
        // Port 1: nothing listens there.
        .env("AGENTSYNC_QUEUE_URL", "redis://127.0.0.1:1/")
        .env("PORT", "0")
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{example}: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: the queue could not be opened: ") && last.contains("fix: "),
        "{example}: {stderr}"
    );
    assert!(!stderr.contains("StoreError {"), "{example}: {stderr}");
}

/// `producersync.npn.activated` and `.deactivated` reach their handlers, which log the NPN.
async fn npn_events_are_logged(example: &str) {
    let dir = TempDir::new(example);
    let settings = Settings {
        queue_url: String::new(),
        workers: 2,
        pull_delay_ms: 0,
    };
    let mut receiver =
        ReceiverProcess::start_example(example, example, dir.path(), &settings, &[]).await;
    let client = client();
    for (event_type, message) in [
        (EventType::ProducerSyncNpnActivated, "npn activated"),
        (EventType::ProducerSyncNpnDeactivated, "npn deactivated"),
    ] {
        let delivery = SignedDelivery::example(event_type, SECRET);
        let answer = send(&client, &receiver.url, &delivery).await;
        assert!(
            answer.is_accepted(),
            "{example}: {event_type:?}: {answer:?}"
        );
        let line = receiver
            .wait_for_line(message, |line| {
                (line.contains(message) && line.contains(&delivery.id)).then(|| line.to_owned())
            })
            .await;
        assert!(line.contains("npn="), "{example}: {line}");
    }
    drop(receiver);
}

macro_rules! example_tests {
    ($($example:ident),*) => {
        $(mod $example {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_delivery_signed_for_one_path_is_401_on_the_other_and_healthz_is_200() {
                super::per_path_secrets_and_healthz(stringify!($example)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn healthz_is_503_with_the_reason_while_the_engine_is_down() {
                super::healthz_is_503_while_the_engine_is_down(stringify!($example)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_unreachable_queue_is_one_line_with_the_fix_and_exit_1() {
                super::unreachable_queue_is_one_line_and_exit_1(stringify!($example)).await;
            }
        })*
    };
}

example_tests!(actix, axum, warp, tower_hyper);

/// The examples with workers and an `EventRouter` (tower_hyper hands off to the queue only).
mod npn {
    macro_rules! npn_tests {
        ($($example:ident),*) => {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $example() {
                super::npn_events_are_logged(stringify!($example)).await;
            })*
        };
    }

    npn_tests!(actix, axum, warp);
}
