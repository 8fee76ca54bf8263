//! The operator's dashboard mounted in the warp example (a child process, over real TCP): warp
//! has no `nest_service`, so the example's server sends the requests under `/admin/webhooks`
//! to the dashboard's tower service, behind its own basic auth, and the rest to warp's filters.
//! The overview answers under the prefix with links under it, a delivery sent through the
//! example's receiver is listed, no login is 401, and an action `POST` from another origin is
//! refused (403) while the same one from the dashboard's own origin is taken.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod handoff_support;

use base64::Engine as _;
use handoff_support::*;

const USER: &str = "ops";
const PASSWORD: &str = "a long password";

#[tokio::test]
async fn the_warp_example_serves_the_dashboard_under_its_prefix_behind_basic_auth() {
    let dir = TempDir::new("dashboard-warp");
    let settings = Settings {
        queue_url: String::new(),
        workers: 0,
        pull_delay_ms: 0,
    };
    let env = [
        ("AGENTSYNC_DASHBOARD_USER", USER),
        ("AGENTSYNC_DASHBOARD_PASSWORD", PASSWORD),
    ];
    let receiver =
        ReceiverProcess::start_example("warp", "warp", dir.path(), &settings, &env).await;
    let base = receiver.url.strip_suffix(PATH).unwrap().to_owned();
    let host = base.strip_prefix("http://").unwrap().to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(BOUND)
        .build()
        .unwrap();
    let login = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );

    let delivery = SignedDelivery::new();
    let accepted = send(&client, &receiver.url, &delivery).await;
    assert!(accepted.is_accepted(), "{accepted:?}");

    let refused = client
        .get(format!("{base}/admin/webhooks/"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "no login");
    assert!(refused.headers().contains_key("www-authenticate"));
    let wrong = client
        .get(format!("{base}/admin/webhooks/"))
        .header("authorization", "Basic b3BzOm5vcGU=")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401, "a wrong password");

    for path in ["/admin/webhooks", "/admin/webhooks/"] {
        let page = client
            .get(format!("{base}{path}"))
            .header("authorization", &login)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        let page = page.text().await.unwrap();
        assert!(page.contains(r#"href="/admin/webhooks/dead""#), "{page}");
        assert!(page.contains(r#"data-state="waiting">1<"#), "{page}");
    }
    let list = client
        .get(format!("{base}/admin/webhooks/deliveries"))
        .header("authorization", &login)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        list.contains(&format!(
            r#"href="/admin/webhooks/deliveries/{}""#,
            delivery.id
        )),
        "{list}"
    );
    // warp's own routes are untouched: /healthz, and its refusal outside both.
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let elsewhere = client
        .get(format!("{base}/admin/webhooksx"))
        .header("authorization", &login)
        .send()
        .await
        .unwrap();
    // warp's refusal (its 405: only POST routes match there), not the dashboard's page.
    assert!(
        matches!(elsewhere.status().as_u16(), 404 | 405),
        "only the prefix's own paths: {}",
        elsewhere.status()
    );

    // An action from another origin is refused; from the dashboard's own, it is taken (the
    // waiting delivery is discarded, and the answer sends the browser back to its page).
    let discard = format!("{base}/admin/webhooks/deliveries/{}/discard", delivery.id);
    let cross = client
        .post(&discard)
        .header("authorization", &login)
        .header("origin", "http://evil.test")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403, "a cross-origin POST");
    let cross_site = client
        .post(&discard)
        .header("authorization", &login)
        .header("sec-fetch-site", "cross-site")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403, "Sec-Fetch-Site: cross-site");
    let page = client
        .get(format!("{base}/admin/webhooks/deliveries/{}", delivery.id))
        .header("authorization", &login)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"<dd id="state"><span class="state state-waiting">"#),
        "still waiting: {page}"
    );

    let same = client
        .post(&discard)
        .header("authorization", &login)
        .header("origin", format!("http://{host}"))
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 303, "a same-origin POST");
    assert_eq!(
        same.headers()["location"],
        format!("/admin/webhooks/deliveries/{}?done=discard", delivery.id).as_str()
    );
    let page = client
        .get(format!("{base}/admin/webhooks/deliveries/{}", delivery.id))
        .header("authorization", &login)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"<dd id="state"><span class="state state-dead">"#),
        "discarded: {page}"
    );
    drop(receiver);
}
