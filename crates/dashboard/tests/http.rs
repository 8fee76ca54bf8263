//! The dashboard over real HTTP on 127.0.0.1, with a real client (reqwest): on its own
//! listener ([`serve`], as the CLI runs it), and mounted in the axum example's app.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use agentsync_webhooks_dashboard::{Dashboard, serve};
use agentsync_webhooks_queue::{Queue, record::DeliveryState};
use support::{App, contract_body, updates_body};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn mounted_in_the_axum_app_under_its_prefix() {
    let app = App::start().await;
    let dead = app
        .send(
            "/webhooks/contracting",
            &contract_body("contract.signed", "x"),
        )
        .await;
    app.send("/webhooks/psapi", &updates_body()).await;
    app.wait_for_counts("one dead, one done", |counts| {
        counts.state(DeliveryState::Dead) == 1 && counts.state(DeliveryState::Done) == 1
    })
    .await;
    let client = client();

    for path in ["/admin/webhooks", "/admin/webhooks/"] {
        let page = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(
            page.headers()["content-type"],
            "text/html; charset=utf-8",
            "{path}"
        );
        let page = page.text().await.unwrap();
        assert!(page.contains(r#"href="/admin/webhooks/dead""#), "{page}");
        assert!(page.contains(r#"data-state="dead">1<"#), "{page}");
    }
    let list = client
        .get(app.url("/admin/webhooks/deliveries?state=dead&type=contract"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        list.contains(&format!(r#"href="/admin/webhooks/deliveries/{dead}""#)),
        "{list}"
    );
    let css = client
        .get(app.url("/admin/webhooks/assets/dashboard.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    // The read-only mount refuses what the other accepts.
    let origin = app.url("");
    let refused = client
        .post(app.url(&format!("/ro/webhooks/deliveries/{dead}/replay")))
        .header("origin", &origin)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let accepted = client
        .post(app.url(&format!("/admin/webhooks/deliveries/{dead}/forget")))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 303);
    assert_eq!(
        accepted.headers()["location"],
        format!("/admin/webhooks/deliveries/{dead}?done=forget").as_str()
    );
}

#[tokio::test]
async fn on_a_listener_of_its_own_with_an_explicit_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::sqlite(dir.path().join("queue.sqlite3"))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let dashboard = Dashboard::new(queue)
        .mount_path("/ops/webhooks")
        .refresh_every(Duration::ZERO);
    let server = tokio::spawn(serve(listener, dashboard, async {
        let _ = stopped.await;
    }));
    let client = client();
    // With the prefix (a front that dispatches on it) and without (a proxy that strips it).
    for path in ["/ops/webhooks/deliveries", "/deliveries"] {
        let page = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{path}");
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        let page = page.text().await.unwrap();
        assert!(
            page.contains(r#"action="/ops/webhooks/deliveries""#),
            "{page}"
        );
        assert!(page.contains(r#"data-refresh="0""#), "no refresh: {page}");
        assert!(!page.contains("live-toggle"));
    }
    let missing = client
        .get(format!("http://{addr}/ops/webhooks/deliveries/msg_none"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
