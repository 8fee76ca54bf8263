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
