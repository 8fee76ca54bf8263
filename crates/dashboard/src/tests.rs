//! Rendering and security, without a server: requests handed to [`Dashboard::handle`].

use super::*;
use agentsync_webhooks_queue::ReceivedDelivery;

async fn queue() -> (tempfile::TempDir, Queue) {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::sqlite(dir.path().join("queue.sqlite3"))
        .await
        .unwrap();
    (dir, queue)
}

fn delivery(id: &str, event_type: &str, body: &str) -> ReceivedDelivery {
    ReceivedDelivery {
        webhook_id: id.into(),
        event_type: event_type.into(),
        webhook_timestamp: 1_700_000_000,
        signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".into(),
        received_at_ms: now_ms(),
        body: Bytes::from(body.to_owned()),
    }
}

async fn get(dashboard: &Dashboard, uri: &str) -> (StatusCode, String) {
    answer(dashboard, Request::get(uri).body(String::new()).unwrap()).await
}

async fn answer(dashboard: &Dashboard, request: Request<String>) -> (StatusCode, String) {
    let response = dashboard.handle(request).await;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn post(uri: &str, headers: &[(&str, &str)]) -> Request<String> {
    let mut request =
        Request::post(uri).header("content-type", "application/x-www-form-urlencoded");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(String::new()).unwrap()
}

/// Stores a delivery and makes it dead (claimed, then buried).
async fn dead_delivery(queue: &Queue, id: &str, body: &str) {
    queue
        .enqueue(&delivery(id, "contract.signed", body))
        .await
        .unwrap();
    let jobs = queue
        .backend()
        .claim(10, Duration::from_secs(30))
        .await
        .unwrap();
    for job in &jobs {
        queue
            .backend()
            .bury(job, "handler failed: <b>upstream</b> said 500")
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_script_in_a_payload_is_shown_as_text() {
    let (_dir, queue) = queue().await;
    let evil =
        r#"{"type":"contract.signed","data":{"name":"<script>alert(1)</script>","q":"\"'&"}}"#;
    queue
        .enqueue(&delivery(
            "msg_<img src=x onerror=alert(2)>",
            "contract.<i>signed</i>",
            evil,
        ))
        .await
        .unwrap();
    let dashboard = Dashboard::new(queue).title("<b>ops</b>");
    let (status, list) = get(&dashboard, "/deliveries").await;
    assert_eq!(status, 200);
    assert!(!list.contains("<img src=x"), "{list}");
    assert!(!list.contains("<i>signed"), "{list}");
    assert!(list.contains("msg_&lt;img src=x onerror=alert(2)&gt;"));
    assert!(list.contains("&lt;b&gt;ops&lt;/b&gt;"));
    // The link to it is percent-encoded, so it opens the same delivery.
    assert!(list.contains("/deliveries/msg_%3Cimg%20src%3Dx%20onerror%3Dalert%282%29%3E"));

    let (status, page) = get(
        &dashboard,
        "/deliveries/msg_%3Cimg%20src%3Dx%20onerror%3Dalert%282%29%3E",
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // Pretty-printed, quotes escaped.
    assert!(
        page.contains("&quot;name&quot;: &quot;&lt;script&gt;"),
        "{page}"
    );
    assert!(page.contains(r#"\&quot;'&amp;"#), "{page}");
}

#[tokio::test]
async fn the_signature_is_shortened_and_errors_escaped() {
    let (_dir, queue) = queue().await;
    dead_delivery(&queue, "msg_dead", r#"{"type":"contract.signed"}"#).await;
    let dashboard = Dashboard::new(queue);
    let (status, page) = get(&dashboard, "/deliveries/msg_dead").await;
    assert_eq!(status, 200);
    assert!(page.contains("v1,K5oZfz…pI4="), "{page}");
    assert!(!page.contains("K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN"));
    assert!(page.contains("handler failed: &lt;b&gt;upstream&lt;/b&gt; said 500"));
    assert!(!page.contains("<b>upstream"));
    // A dead delivery: replay and forget, not discard.
    assert!(
        page.contains(r#"action="/deliveries/msg_dead/replay""#),
        "{page}"
    );
    assert!(page.contains(r#"action="/deliveries/msg_dead/forget""#));
    assert!(!page.contains(r#"action="/deliveries/msg_dead/discard""#));
}

#[tokio::test]
async fn links_start_at_the_mount_prefix() {
    let (_dir, queue) = queue().await;
    dead_delivery(&queue, "msg_1", "{}").await;
    for (dashboard, uri) in [
        (
            Dashboard::new(queue.clone()).mount_path("/admin/webhooks/"),
            "/admin/webhooks/dead",
        ),
        // A proxy that strips the prefix: the request comes without it.
        (
            Dashboard::new(queue.clone()).mount_path("admin/webhooks"),
            "/dead",
        ),
    ] {
        let (status, page) = get(&dashboard, uri).await;
        assert_eq!(status, 200, "{uri}");
        for link in [
            r#"href="/admin/webhooks/""#,
            r#"href="/admin/webhooks/deliveries""#,
            r#"href="/admin/webhooks/deliveries/msg_1""#,
            r#"href="/admin/webhooks/assets/dashboard.css?v="#,
            r#"src="/admin/webhooks/assets/dashboard.js?v="#,
            r#"href="/admin/webhooks/dead/replay?state=dead""#,
        ] {
            assert!(page.contains(link), "{link} in {page}");
        }
        assert!(!page.contains(r#"href="/deliveries"#), "{page}");
    }
}

#[tokio::test]
async fn axum_nest_service_prefix_is_found_from_original_uri() {
    use tower::ServiceExt as _;
    let (_dir, queue) = queue().await;
    let app = axum::Router::new().nest_service("/ops/hooks", Dashboard::new(queue));
    for uri in ["/ops/hooks", "/ops/hooks/", "/ops/hooks/deliveries"] {
        let response = app
            .clone()
            .oneshot(Request::get(uri).body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{uri}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let page = String::from_utf8(body.to_vec()).unwrap();
        assert!(page.contains(r#"href="/ops/hooks/dead""#), "{uri}: {page}");
    }
}

#[test]
fn prefixes_stripped_by_a_router_are_recovered() {
    assert_eq!(
        stripped_prefix("/admin/webhooks/dead", "/dead"),
        "/admin/webhooks"
    );
    assert_eq!(stripped_prefix("/admin/webhooks", "/"), "/admin/webhooks");
    assert_eq!(stripped_prefix("/admin/webhooks/", "/"), "/admin/webhooks");
    assert_eq!(stripped_prefix("/dead", "/dead"), "");
    assert_eq!(normalize_prefix("/"), "");
    assert_eq!(normalize_prefix("admin/"), "/admin");
}

#[tokio::test]
async fn actions_need_a_same_origin_post() {
    let (_dir, queue) = queue().await;
    dead_delivery(&queue, "msg_1", "{}").await;
    let dashboard = Dashboard::new(queue.clone());
    let uri = "/deliveries/msg_1/replay";
    for headers in [
        &[][..],
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
        // Sec-Fetch-Site wins over a matching Origin.
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://dash.test"),
            ("host", "dash.test"),
        ][..],
        &[("origin", "http://evil.test"), ("host", "dash.test")][..],
        &[("origin", "null"), ("host", "dash.test")][..],
    ] {
        let (status, page) = answer(&dashboard, post(uri, headers)).await;
        assert_eq!(status, 403, "{headers:?}");
        assert!(page.contains("refused"), "{page}");
    }
    assert_eq!(
        queue.delivery("msg_1").await.unwrap().unwrap().state,
        DeliveryState::Dead,
        "nothing refused was done"
    );
    let response = dashboard
        .handle(post(
            uri,
            &[("origin", "http://dash.test"), ("host", "dash.test")],
        ))
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/deliveries/msg_1?done=replay"
    );
    let record = queue.delivery("msg_1").await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Waiting);
    assert!(
        record.history.iter().any(|entry| entry.event
            == agentsync_webhooks_queue::record::HistoryEvent::Replayed { by: ACTOR.into() }),
        "{:?}",
        record.history
    );
    // Replaying a waiting delivery does nothing and says so.
    let response = dashboard
        .handle(post(uri, &[("sec-fetch-site", "same-origin")]))
        .await;
    assert_eq!(
        response.headers()[header::LOCATION],
        "/deliveries/msg_1?failed=replay"
    );
    // GET never acts.
    let (status, _) = get(&dashboard, uri).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn read_only_hides_actions_and_refuses_posts() {
    let (_dir, queue) = queue().await;
    dead_delivery(&queue, "msg_1", "{}").await;
    let dashboard = Dashboard::new(queue.clone()).read_only(true);
    let (_, page) = get(&dashboard, "/deliveries/msg_1").await;
    assert!(!page.contains("<form method=\"post\""), "{page}");
    assert!(page.contains("read-only"));
    let (_, dead) = get(&dashboard, "/dead").await;
    assert!(!dead.contains("replay-all"), "{dead}");
    let (status, _) = get(&dashboard, "/dead/replay?state=dead").await;
    assert_eq!(status, 403);
    for uri in [
        "/deliveries/msg_1/replay",
        "/deliveries/msg_1/forget",
        "/dead/replay",
        "/anything",
    ] {
        let (status, _) = answer(&dashboard, post(uri, &[("sec-fetch-site", "same-origin")])).await;
        assert_eq!(status, 403, "{uri}");
    }
    assert_eq!(
        queue.delivery("msg_1").await.unwrap().unwrap().state,
        DeliveryState::Dead
    );
}

#[tokio::test]
async fn replay_all_matching_shows_its_count_and_is_bounded_by_it() {
    let (_dir, queue) = queue().await;
    for i in 0..3 {
        dead_delivery(&queue, &format!("msg_{i}"), "{}").await;
    }
    let dashboard = Dashboard::new(queue.clone());
    let (_, page) = get(&dashboard, "/dead?type=contract").await;
    assert!(
        page.contains(r#"href="/dead/replay?state=dead&amp;type=contract""#),
        "{page}"
    );
    let (status, page) = get(&dashboard, "/dead/replay?state=dead&type=contract").await;
    assert_eq!(status, 200);
    assert!(page.contains("3 dead letters match"), "{page}");
    assert!(page.contains("Replay all 3 matching"), "{page}");
    assert!(
        page.contains(r#"action="/dead/replay?state=dead&amp;type=contract""#),
        "{page}"
    );
    // The form says 2 (say, the count an operator saw before one more died): 2 are replayed.
    let mut request = post(
        "/dead/replay?state=dead&type=contract",
        &[("sec-fetch-site", "same-origin")],
    );
    *request.body_mut() = "expected=2".into();
    let response = dashboard.handle(request).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/dead?type=contract&replayed=2"
    );
    assert_eq!(queue.stats().await.unwrap().dead, 1);
    let (_, page) = get(&dashboard, "/dead?type=contract&replayed=2").await;
    assert!(page.contains("Replayed 2 dead letters"), "{page}");
}

#[tokio::test]
async fn the_overview_counts_and_names_only_the_engine_kind() {
    let (_dir, queue) = queue().await;
    dead_delivery(&queue, "msg_dead", "{}").await;
    queue
        .enqueue(&delivery(
            "msg_wait",
            "producersync.updates_available",
            "{}",
        ))
        .await
        .unwrap();
    let url = QueueUrl::parse("postgres://app:s3cret@db.internal/app").unwrap();
    let dashboard = Dashboard::new(queue).engine(engine_name(&url));
    let (status, page) = get(&dashboard, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("engine: PostgreSQL"));
    assert!(!page.contains("s3cret") && !page.contains("db.internal"));
    assert!(page.contains(r#"data-state="dead">1<"#), "{page}");
    assert!(page.contains(r#"data-state="waiting">1<"#), "{page}");
    assert!(page.contains("<code>contract.signed</code>"));
    assert!(page.contains("<svg"));
    assert!(page.contains(r#"data-refresh="5""#));
    assert!(page.contains(r#"id="live-toggle""#));
}

#[tokio::test]
async fn lists_filter_by_every_parameter_and_page_by_cursor() {
    let (_dir, queue) = queue().await;
    dead_delivery(&queue, "msg_c", "{}").await;
    for i in 0..5 {
        queue
            .enqueue(&delivery(
                &format!("msg_p{i}"),
                "producersync.updates_available",
                "{}",
            ))
            .await
            .unwrap();
    }
    let dashboard = Dashboard::new(queue);
    let (_, page) = get(&dashboard, "/deliveries?type=contract").await;
    assert!(page.contains("msg_c") && !page.contains("msg_p0"), "{page}");
    let (_, page) = get(&dashboard, "/deliveries?state=waiting&limit=2").await;
    assert_eq!(page.matches("<tr data-id=").count(), 2);
    let next = page
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    assert!(
        next.starts_with("/deliveries?state=waiting&limit=2&after="),
        "{next}"
    );
    let (status, second) = get(&dashboard, &next).await;
    assert_eq!(status, 200);
    assert_eq!(second.matches("<tr data-id=").count(), 2);
    let (_, page) = get(&dashboard, "/deliveries?id=msg_p*&since=1h").await;
    assert_eq!(page.matches("<tr data-id=").count(), 5);
    let (status, page) = get(&dashboard, "/deliveries?after=garbage&state=lost").await;
    assert_eq!(status, 400);
    assert!(page.contains("unknown delivery state"), "{page}");
}

/// A delivery received at 2026-12-06T10:00:00Z whose event occurred at `occurred` (RFC 3339).
fn occurred_at(id: &str, occurred: &str) -> ReceivedDelivery {
    ReceivedDelivery {
        received_at_ms: 1_796_551_200_000,
        ..delivery(
            id,
            "contract.signed",
            &format!(r#"{{"type":"contract.signed","timestamp":"{occurred}","data":{{}}}}"#),
        )
    }
}

/// The row of `id` in a list page.
fn row<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("<tr data-id=\"{id}\""))
        .unwrap_or_else(|| panic!("{id}: {page}"));
    let rest = &page[start..];
    &rest[..rest.find("</tr>").unwrap()]
}

#[tokio::test]
async fn lists_show_each_delay_and_filter_the_delayed_ones() {
    let (_dir, queue) = queue().await;
    for (id, occurred) in [
        ("msg_late", "2026-12-06T08:00:00Z"),
        ("msg_later", "2026-12-05T10:00:00Z"),
        ("msg_prompt", "2026-12-06T09:59:56Z"),
    ] {
        queue.enqueue(&occurred_at(id, occurred)).await.unwrap();
    }
    // No envelope: no occurred-at on record, an empty cell, never "delayed".
    queue
        .enqueue(&delivery("msg_opaque", "contract.signed", "not json"))
        .await
        .unwrap();
    let dashboard = Dashboard::new(queue.clone());
    let (_, page) = get(&dashboard, "/deliveries").await;
    assert!(page.contains(">delay</th>"), "{page}");
    assert!(
        row(&page, "msg_late").contains(">2 h 00 min</td>"),
        "{page}"
    );
    assert!(
        row(&page, "msg_late").contains("title=\"occurred 2026-12-06 08:00:00Z\""),
        "{page}"
    );
    assert!(row(&page, "msg_prompt").contains(">4.0 s</td>"), "{page}");
    assert!(
        row(&page, "msg_opaque").contains("<td class=\"num delay\"></td>"),
        "{page}"
    );

    let (status, page) = get(&dashboard, "/deliveries?delayed=1h&limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(page.matches("<tr data-id=").count(), 1, "{page}");
    // One received-at: newest first is by id, descending.
    assert!(
        page.contains(r#"<tr data-id="msg_later""#) && !page.contains("msg_prompt"),
        "{page}"
    );
    assert!(page.contains(r#"name="delayed" value="1h""#), "{page}");
    let next = page
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    assert!(
        next.starts_with("/deliveries?delayed=1h&limit=1&after="),
        "{next}"
    );
    let (_, second) = get(&dashboard, &next).await;
    assert_eq!(second.matches("<tr data-id=").count(), 1, "{second}");
    assert!(second.contains(r#"<tr data-id="msg_late""#), "{second}");
    assert!(!second.contains("rel=\"next\""), "{second}");

    let (status, page) = get(&dashboard, "/deliveries?delayed=%3Cscript%3Ealert(1)").await;
    assert_eq!(status, 400);
    assert!(page.contains("delayed over: a duration"), "{page}");
    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)"), "{page}");

    // The dead letters: the same column and filter.
    let jobs = queue
        .backend()
        .claim(10, Duration::from_secs(30))
        .await
        .unwrap();
    for job in &jobs {
        queue.backend().bury(job, "failed").await.unwrap();
    }
    let (_, page) = get(&dashboard, "/dead?delayed=2h").await;
    assert!(page.contains(">delay</th>"), "{page}");
    assert_eq!(page.matches("<tr data-id=").count(), 2, "{page}");
    assert!(row(&page, "msg_later").contains(">1 d 0 h</td>"), "{page}");
    assert!(
        page.contains("/dead/replay?state=dead&amp;delayed=2h"),
        "{page}"
    );
}

#[tokio::test]
async fn pages_carry_security_headers_and_unknown_paths_are_404() {
    let (_dir, queue) = queue().await;
    let dashboard = Dashboard::new(queue).basic_auth("ops", "pw");
    let response = dashboard
        .handle(Request::get("/").body(String::new()).unwrap())
        .await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    // "ops:pw"
    let authorized = |uri: &str| {
        Request::get(uri)
            .header("authorization", "Basic b3BzOnB3")
            .body(String::new())
            .unwrap()
    };
    let response = dashboard.handle(authorized("/")).await;
    assert_eq!(response.status(), 200);
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(dashboard.handle(authorized("/nope")).await.status(), 404);
    assert_eq!(
        dashboard
            .handle(authorized("/deliveries/nope"))
            .await
            .status(),
        404
    );
    let js = dashboard.handle(authorized("/assets/dashboard.js")).await;
    assert_eq!(
        js.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
}
