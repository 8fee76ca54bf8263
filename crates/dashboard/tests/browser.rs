//! The dashboard in a real browser: Debian's `chromium`, headless, driven through WebDriver by
//! the `chromedriver` this test starts on a free port (`apt-get install -y chromium
//! chromium-driver`; nothing here downloads a browser or a driver). The app is the axum
//! example's on SQLite (see `support`): deliveries are signed and sent through the real server,
//! and its workers' contract handler fails until the test fixes it.
//!
//! Scenarios, in one browser session: the overview shows what was sent; the live refresh can be
//! paused and resumed; a filter by type narrows the list; the delivery page shows each attempt's
//! error; clicking replay makes the delivery run and the page (refreshing itself) shows it done;
//! a payload holding `<script>` is shown as text and never runs; read-only mode shows no action
//! and a `POST` is 403; a cross-site form `POST` is refused. The core of it (the overview shows
//! the deliveries, the delivery page each attempt's error, replay runs it) runs again on Redis
//! (`REDIS_URL`) and PostgreSQL (`POSTGRES_URL`), each skipped when its variable is unset.
//!
//! `CHROMIUM` and `CHROMEDRIVER` name the binaries (default `/usr/bin/chromium`,
//! `/usr/bin/chromedriver`). Without them the test fails under CI (`CI` set) and is skipped with
//! a note otherwise. With `DASHBOARD_SCREENSHOTS=DIR` it writes `dashboard-overview.png` and
//! `dashboard-delivery.png` there (`crates/dashboard/screenshots.sh` does, for `docs/`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use agentsync_webhooks_queue::record::DeliveryState;
use fantoccini::{Client, ClientBuilder, Locator};
use support::{App, BOUND, contract_body, engine_queue, updates_body};

/// Chromium and its driver, stopped on drop.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn binary(variable: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    path.exists().then_some(path)
}

/// Starts chromedriver on a free port and a headless Chromium session with a fresh profile;
/// `None` (skipped) when they are not installed and this is not CI.
async fn browser() -> Option<Browser> {
    let (Some(chromium), Some(chromedriver)) = (
        binary("CHROMIUM", "/usr/bin/chromium"),
        binary("CHROMEDRIVER", "/usr/bin/chromedriver"),
    ) else {
        let hint = "Chromium or chromedriver is missing: apt-get install -y chromium \
                    chromium-driver (or set CHROMIUM and CHROMEDRIVER)";
        assert!(std::env::var_os("CI").is_none(), "{hint}");
        eprintln!("skipped: {hint}");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let capabilities = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        },
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    let start = Instant::now();
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => break client,
            Err(error) => {
                assert!(start.elapsed() < BOUND, "no WebDriver session: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    Some(Browser {
        client,
        driver,
        _profile: profile,
    })
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Waits until the element `css` (found again each time: the live refresh replaces it) has
/// `expected` as its text.
async fn wait_for_text(client: &Client, css: &str, expected: &str) {
    let start = Instant::now();
    loop {
        let found = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.ok(),
            Err(_) => None,
        };
        if found.as_deref() == Some(expected) {
            return;
        }
        assert!(
            start.elapsed() < BOUND,
            "{css}: {found:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(client: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("DASHBOARD_SCREENSHOTS") {
        let png = client.screenshot().await.unwrap();
        let path = PathBuf::from(dir).join(name);
        std::fs::write(&path, png).unwrap();
        eprintln!("wrote {}", path.display());
    }
}

/// `fetch(url, {method: "POST"})` from the page: the status.
async fn post_from_page(client: &Client, url: &str) -> u64 {
    let status = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(arguments[0], { method: 'POST', body: new URLSearchParams({ expected: '1' }) })
               .then(r => done(r.status), e => done(String(e)));",
            vec![serde_json::Value::String(url.to_owned())],
        )
        .await
        .unwrap();
    status.as_u64().unwrap_or_else(|| panic!("{status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let Some(browser) = browser().await else {
        return;
    };
    let client = &browser.client;
    let app = App::start().await;

    // Deliveries through the real server: contract events fail until dead, updates succeed.
    let mut dead_ids = Vec::new();
    for note in ["first", "second"] {
        dead_ids.push(
            app.send(
                "/webhooks/contracting",
                &contract_body("contract.signed", note),
            )
            .await,
        );
    }
    let script = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">";
    let script_id = app
        .send(
            "/webhooks/contracting",
            &contract_body("contract.updated", script),
        )
        .await;
    for _ in 0..3 {
        app.send("/webhooks/psapi", &updates_body()).await;
    }
    app.wait_for_counts("3 dead, 3 done", |counts| {
        counts.state(DeliveryState::Dead) == 3 && counts.state(DeliveryState::Done) == 3
    })
    .await;

    // The overview shows them.
    client.goto(&app.url("/admin/webhooks/")).await.unwrap();
    assert_eq!(text(client, r#"[data-state="dead"]"#).await, "3");
    assert_eq!(text(client, r#"[data-state="done"]"#).await, "3");
    assert!(
        text(client, "table.types")
            .await
            .contains("contract.signed")
    );
    assert!(text(client, "header .engine").await.contains("SQLite"));
    let bars = client
        .find_all(Locator::Css("svg.chart rect"))
        .await
        .unwrap();
    assert!(bars.len() >= 3, "a bar per type: {}", bars.len());
    screenshot(client, "dashboard-overview.png").await;

    // Live refresh: paused with one click (nothing changes), resumed with another.
    client
        .find(Locator::Css("#live-toggle"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text(client, "#live-toggle").await, "Paused");
    app.send("/webhooks/psapi", &updates_body()).await;
    app.wait_for_counts("4 done", |c| c.state(DeliveryState::Done) == 4)
        .await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(text(client, r#"[data-state="done"]"#).await, "3", "paused");
    client
        .find(Locator::Css("#live-toggle"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(client, r#"[data-state="done"]"#, "4").await;

    // A filter by type narrows the list (and is in the URL).
    client
        .goto(&app.url("/admin/webhooks/deliveries"))
        .await
        .unwrap();
    assert_eq!(
        client
            .find_all(Locator::Css("tr[data-id]"))
            .await
            .unwrap()
            .len(),
        7
    );
    client
        .find(Locator::Css(r#"input[name="type"]"#))
        .await
        .unwrap()
        .send_keys("contract.signed")
        .await
        .unwrap();
    client
        .find(Locator::Css("form.filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let start = Instant::now();
    while !client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("type=contract.signed")
    {
        assert!(start.elapsed() < BOUND, "the filter was not submitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = client.find_all(Locator::Css("tr[data-id]")).await.unwrap();
    let mut shown = Vec::new();
    for row in rows {
        shown.push(row.attr("data-id").await.unwrap().unwrap());
    }
    shown.sort();
    let mut expected = dead_ids.clone();
    expected.sort();
    assert_eq!(shown, expected);

    // The delivery page shows each attempt's error.
    client
        .find(Locator::Css(&format!(r#"a.id[href$="{}"]"#, dead_ids[0])))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(client, "#state", "dead").await;
    let attempts = client
        .find_all(Locator::Css("tr.entry-attempt"))
        .await
        .unwrap();
    assert_eq!(attempts.len(), 3);
    for (i, attempt) in attempts.iter().enumerate() {
        let row = attempt.text().await.unwrap();
        assert!(
            row.contains(&format!("contract store unavailable (attempt {})", i + 1)),
            "{row}"
        );
    }
    assert!(text(client, "code.signature").await.contains('…'));
    screenshot(client, "dashboard-delivery.png").await;

    // Fixed: clicking replay makes it run, and the page shows it done on its own.
    app.failing.store(false, Ordering::SeqCst);
    client
        .find(Locator::Css("button.replay"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(
        client,
        "p.notice",
        "Replayed: it is waiting to run again now.",
    )
    .await;
    wait_for_text(client, "#state", "done").await;
    assert!(text(client, "table.history").await.contains("replayed"));
    let record = app.queue.delivery(&dead_ids[0]).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Done);

    // A payload holding <script> is shown as text and never runs.
    client
        .goto(&app.url(&format!("/admin/webhooks/deliveries/{script_id}")))
        .await
        .unwrap();
    // As stored: JSON, its quotes escaped.
    let payload = text(client, "pre.payload").await;
    assert!(
        payload.contains(&serde_json::to_string(script).unwrap()),
        "{payload}"
    );
    assert!(
        client
            .find_all(Locator::Css("main script, main img"))
            .await
            .unwrap()
            .is_empty()
    );
    let ran = client
        .execute("return window.__xss === undefined;", vec![])
        .await
        .unwrap();
    assert_eq!(
        ran,
        serde_json::Value::Bool(true),
        "the payload's script ran"
    );
    assert!(client.get_alert_text().await.is_err(), "no alert");

    // Read-only: no action on the page, and a POST is 403.
    let read_only = app.url(&format!("/ro/webhooks/deliveries/{}", dead_ids[1]));
    client.goto(&read_only).await.unwrap();
    assert!(text(client, "header .readonly").await.contains("read-only"));
    assert!(
        client
            .find_all(Locator::Css("form[method=post], button.action"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        post_from_page(client, &format!("{read_only}/replay")).await,
        403
    );
    assert_eq!(
        post_from_page(client, &app.url("/ro/webhooks/dead/replay?state=dead")).await,
        403
    );

    // A cross-site form POST is refused: a page on another site (localhost, not 127.0.0.1)
    // whose form targets the dashboard.
    let target = app.url(&format!(
        "/admin/webhooks/deliveries/{}/forget",
        dead_ids[1]
    ));
    let evil = format!(
        "<!DOCTYPE html><form method=post action=\"{target}\"><button id=go>win a prize</button></form>"
    );
    let evil_app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let evil = evil.clone();
            async move { axum::response::Html(evil) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, evil_app).await });
    client
        .goto(&format!("http://localhost:{evil_port}/"))
        .await
        .unwrap();
    client
        .find(Locator::Css("#go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(client, "h1", "Refused").await;
    assert!(text(client, "p.message").await.contains("refused"));
    let record = app.queue.delivery(&dead_ids[1]).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Dead);
    assert!(
        !record.history.iter().any(|entry| matches!(
            entry.event,
            agentsync_webhooks_queue::record::HistoryEvent::Forgotten { .. }
        )),
        "nothing was forgotten"
    );
    // 3 contract deliveries, 3 attempts each, then the replay's run.
    assert!(app.runs.load(Ordering::SeqCst) >= 10);
    drop(browser);
}

/// The core scenario on `app`: a contract delivery that fails until dead and an update that
/// succeeds are on the overview; the dead one's page shows each attempt's error; replayed once
/// the handler is fixed, it runs and its page shows it done.
async fn core_scenario(client: &Client, app: &App, engine: &str) {
    let dead = app
        .send(
            "/webhooks/contracting",
            &contract_body("contract.signed", engine),
        )
        .await;
    app.send("/webhooks/psapi", &updates_body()).await;
    app.wait_for_counts("1 dead, 1 done", |counts| {
        counts.state(DeliveryState::Dead) == 1 && counts.state(DeliveryState::Done) == 1
    })
    .await;
    client.goto(&app.url("/admin/webhooks/")).await.unwrap();
    assert_eq!(
        text(client, r#"[data-state="dead"]"#).await,
        "1",
        "{engine}"
    );
    assert_eq!(
        text(client, r#"[data-state="done"]"#).await,
        "1",
        "{engine}"
    );
    assert!(text(client, "header .engine").await.contains(engine));
    client
        .goto(&app.url(&format!("/admin/webhooks/deliveries/{dead}")))
        .await
        .unwrap();
    wait_for_text(client, "#state", "dead").await;
    let attempts = client
        .find_all(Locator::Css("tr.entry-attempt"))
        .await
        .unwrap();
    assert_eq!(attempts.len(), 3, "{engine}");
    for (i, attempt) in attempts.iter().enumerate() {
        let row = attempt.text().await.unwrap();
        assert!(
            row.contains(&format!("contract store unavailable (attempt {})", i + 1)),
            "{engine}: {row}"
        );
    }
    app.failing.store(false, Ordering::SeqCst);
    client
        .find(Locator::Css("button.replay"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(client, "#state", "done").await;
    let record = app.queue.delivery(&dead).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Done, "{engine}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_scenario_on_redis_and_postgresql() {
    let Some(browser) = browser().await else {
        return;
    };
    for (variable, engine) in [("REDIS_URL", "Redis"), ("POSTGRES_URL", "PostgreSQL")] {
        let Some((queue, scratch)) = engine_queue(variable, "browser").await else {
            continue;
        };
        let app = App::start_on(queue, engine, tempfile::tempdir().unwrap()).await;
        core_scenario(&browser.client, &app, engine).await;
        drop(app);
        scratch.remove().await;
    }
    drop(browser);
}
