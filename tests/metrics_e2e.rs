//! The axum example's `GET /metrics`, scraped over TCP after valid, duplicate and forged
//! deliveries: the library's counters by outcome, as Prometheus text.

mod handoff_support;

use handoff_support::{ReceiverProcess, Settings, SignedDelivery, TempDir, client, send};

#[tokio::test]
async fn the_example_serves_the_deliveries_counted_by_outcome() {
    let dir = TempDir::new("metrics");
    let settings = Settings {
        queue_url: String::new(),
        workers: 1,
        pull_delay_ms: 0,
    };
    let mut receiver = ReceiverProcess::start("metrics", dir.path(), &settings).await;
    let client = client();

    let first = SignedDelivery::new();
    assert!(send(&client, &receiver.url, &first).await.is_accepted());
    assert!(send(&client, &receiver.url, &first).await.is_duplicate());
    let second = SignedDelivery::new();
    assert!(send(&client, &receiver.url, &second).await.is_accepted());
    let forged = client
        .post(&receiver.url)
        .header("webhook-id", "msg_forged")
        .header("webhook-timestamp", "1")
        .header("webhook-signature", "v1,AAAA")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    // The in-process workers run both stored deliveries.
    receiver
        .wait_processed(&[first.id.clone(), second.id.clone()])
        .await;

    let metrics_url = receiver.url.replace("/webhooks/psapi", "/metrics");
    let text = client
        .get(metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| {
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0, |value| value.trim().parse::<u64>().unwrap())
    };
    let outcome = |outcome: &str| {
        value(&format!(
            "agentsync_webhooks_deliveries_total{{outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(outcome("accepted"), 2, "{text}");
    assert_eq!(outcome("duplicate"), 1, "{text}");
    assert_eq!(outcome("timestamp_too_old"), 1, "{text}");
    assert_eq!(
        value("agentsync_webhooks_attempts_total{result=\"ok\"}"),
        2,
        "{text}"
    );
    assert!(text.contains("agentsync_webhooks_queue_depth"), "{text}");
    assert!(
        text.contains("agentsync_webhooks_handler_duration_seconds"),
        "{text}"
    );
    assert!(!text.contains("msg_"), "no webhook-id as a label: {text}");
}
