//! What the port logs for every delivery: the span with its OpenTelemetry-style fields, the
//! receipt of an accepted delivery, the refusal of a forged one, and the warning for a handler
//! that answers late for the sender's 5 s.

use std::{
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use agentsync_webhooks::{EventType, Signer, Verifier, tower::WebhookLayer};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt as _, service_fn};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Everything the subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn request(body: &[u8], headers: http::HeaderMap) -> Request<Full<Bytes>> {
    let mut request = Request::post("/webhooks/psapi")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    *request.headers_mut() = headers;
    request
}

#[tokio::test]
async fn every_delivery_is_logged_in_its_span_and_a_late_answer_is_flagged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let layer = WebhookLayer::new(Verifier::new(SECRET).unwrap())
        .with_answer_budget(Duration::from_millis(10));
    let service =
        ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(|_: Request<Full<Bytes>>| async {
                // Longer than the 10 ms budget: the layer warns once it answers.
                tokio::time::sleep(Duration::from_millis(50)).await;
                tracing::info!("inside the handler");
                Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
            }));

    let signed = Signer::new(SECRET)
        .unwrap()
        .example(EventType::ProducerSyncUpdatesAvailable);
    let headers = signed.headers.to_header_map();
    let accepted = service
        .clone()
        .oneshot(request(&signed.body, headers.clone()))
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
    let mut forged = headers;
    forged.insert("webhook-signature", "v1,AAAA".parse().unwrap());
    let refused = service
        .oneshot(request(&signed.body, forged))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let logs = captured.text();
    let id = &signed.headers.id;
    let span = format!("webhook{{webhook.id=\"{id}\"");
    let line = |needle: &str| {
        logs.lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{logs}"))
            .to_owned()
    };
    let handler = line("inside the handler");
    assert!(handler.contains(&span), "{handler}");
    assert!(
        handler.contains("webhook.type=\"producersync.updates_available\""),
        "{handler}"
    );
    let receipt = line("webhook receipt");
    assert!(
        receipt.contains(&span) && receipt.contains("status=200"),
        "{receipt}"
    );
    let late = line("answered late");
    assert!(late.contains(&format!("webhook_id=\"{id}\"")), "{late}");
    assert!(
        late.contains("event_type=\"producersync.updates_available\""),
        "{late}"
    );
    let refusal = line("webhook delivery refused");
    assert!(
        refusal.contains(&span) && refusal.contains("signature_mismatch"),
        "{refusal}"
    );
    assert!(!logs.contains(SECRET), "a secret in the logs:\n{logs}");
}

#[tokio::test]
async fn a_late_event_carries_its_delay_on_the_span_and_is_warned_about() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let layer = WebhookLayer::new(Verifier::new(SECRET).unwrap());
    let service =
        ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(|_: Request<Full<Bytes>>| async {
                tracing::info!("inside the handler");
                Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
            }));
    // Deactivated three hours ago, delivered now (the sender retried it): past 15 minutes.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let occurred = i64::try_from(now).unwrap() - 3 * 3600;
    let at = rfc3339(occurred);
    let body = format!(
        r#"{{"type":"producersync.npn.deactivated","timestamp":"{at}","data":{{"npn":"0012345","deactivatedAt":"{at}"}}}}"#
    );
    let signer = Signer::new(SECRET).unwrap();
    let headers = signer.sign_now(body.as_bytes());
    let answered = service
        .clone()
        .oneshot(request(body.as_bytes(), headers.to_header_map()))
        .await
        .unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    // Without a `timestamp`: the webhook-timestamp stands in, marked, and no warning.
    let bare = r#"{"type":"producersync.updates_available","data":{"updatedSince":"2025-07-24","runDate":"2025-07-24"}}"#;
    let bare_headers = signer.sign_now(bare.as_bytes());
    service
        .oneshot(request(bare.as_bytes(), bare_headers.to_header_map()))
        .await
        .unwrap();

    let logs = captured.text();
    let late: Vec<_> = logs
        .lines()
        .filter(|line| line.contains("arrived late"))
        .collect();
    assert_eq!(late.len(), 1, "{logs}");
    assert!(
        late[0].contains(&format!("webhook_id=\"{}\"", headers.id)),
        "{}",
        late[0]
    );
    assert!(
        late[0].contains("event_type=\"producersync.npn.deactivated\""),
        "{}",
        late[0]
    );
    let delay: i64 = late[0]
        .split("delay_ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (3 * 3600 * 1000..=3 * 3600 * 1000 + 10_000).contains(&delay),
        "{delay}"
    );
    let handler = logs
        .lines()
        .find(|line| line.contains("inside the handler"))
        .unwrap();
    assert!(handler.contains("webhook.delay_ms="), "{handler}");
    assert!(
        handler.contains("webhook.occurred_at_source=\"envelope\""),
        "{handler}"
    );
    assert!(
        logs.contains("webhook.occurred_at_source=\"webhook-timestamp\""),
        "{logs}"
    );
}

/// `secs` since the epoch as an RFC 3339 UTC instant (Howard Hinnant's civil-from-days).
fn rfc3339(secs: i64) -> String {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
