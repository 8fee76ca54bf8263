//! `listen`: a verifying receiver that prints one line per delivery.
//!
//! The receiving side is the library itself, so what `listen` accepts or refuses (and with which
//! status and error body) is what a service using the library would. A middleware around it
//! watches every answer and prints the line: accepted deliveries from what the handler saw,
//! refused ones from the error body the library sent back.

use std::net::SocketAddr;

use agentsync_webhooks_axum::{Webhook, WebhookLayer};
use agentsync_webhooks_core::headers::id_for_log;
use agentsync_webhooks_core::{Receiver, Secret, Verifier, idempotency::MemoryStore};
use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::post,
};

use crate::{
    cli::ListenArgs,
    failure::{Failure, bad_secret},
};

/// The largest error body the printer reads back from a refusal.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Whether to print each delivery's JSON (the handler's state).
#[derive(Clone, Copy)]
struct Verbose(bool);

/// What the handler tells the printer about an accepted delivery (a response extension).
#[derive(Clone)]
struct Received {
    webhook_id: String,
    event_type: String,
    known_type: bool,
    pretty_body: Option<String>,
}

/// Binds, prints how to send a test event, and serves until Ctrl-C.
pub async fn run(args: ListenArgs) -> Result<(), Failure> {
    let (secret, generated) = match &args.secret {
        Some(secret) => (secret.clone(), false),
        None => {
            let secret = Secret::generate().map_err(Failure::failed)?;
            (secret.expose_whsec(), true)
        }
    };
    let mut receiver = Receiver::new(Verifier::new(&secret).map_err(bad_secret)?);
    if !args.no_idempotency {
        receiver = receiver.with_idempotency(MemoryStore::new());
    }
    let layer = WebhookLayer::from_receiver(receiver);

    let bind = SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(bind).await.map_err(|e| {
        Failure::failed(format!(
            "cannot listen on {bind}: {e} (is another listener running? choose another --port)"
        ))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::failed(format!("cannot read the bound address: {e}")))?;
    let url = format!("http://{local}{}", args.path);

    if generated {
        println!(
            "No secret given (--secret or AGENTSYNC_WEBHOOK_SECRET), so this one was generated \
             for this run:\n\n    {secret}\n"
        );
        println!("Send a signed test event from another terminal:\n");
        println!(
            "    {} --url {url} --secret {secret} --event producersync.updates_available\n",
            send_command()
        );
    }
    let dedup = if args.no_idempotency {
        "every delivery processed, repeated webhook-ids too"
    } else {
        "each webhook-id processed once"
    };
    println!("Listening on {url} ({dedup}; Ctrl-C to stop; times are UTC)");

    let router = Router::new()
        .route(&args.path, post(receive))
        .route_layer(layer)
        .fallback(not_here)
        .with_state(Verbose(args.verbose))
        .layer(middleware::from_fn(print_outcome));
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Failure::failed(format!("the listener stopped: {e}")))
}

/// How to invoke `send` the same way this process was started.
fn send_command() -> &'static str {
    if std::env::var_os("CARGO_MANIFEST_DIR").is_some() {
        "cargo run -p agentsync-webhooks-cli -- send"
    } else {
        "agentsync-webhooks send"
    }
}

/// Runs behind the library's layer, so only verified deliveries get here; hands what it got to
/// the printer.
async fn receive(State(verbose): State<Verbose>, event: Webhook) -> Response {
    let delivery = event.delivery();
    let received = Received {
        webhook_id: delivery.webhook_id.clone(),
        event_type: delivery.event.event_type.clone(),
        known_type: delivery.event.known_type().is_some(),
        pretty_body: verbose.0.then(|| pretty_json(&delivery.raw_body)),
    };
    let mut response = StatusCode::OK.into_response();
    response.extensions_mut().insert(received);
    response
}

/// Anything that is not a POST to the webhook path.
async fn not_here(request: Request) -> StatusCode {
    println!(
        "{}  {} {} -> 404 (deliveries go to POST on the listening path)",
        now(),
        request.method(),
        request.uri().path()
    );
    StatusCode::NOT_FOUND
}

/// Prints one line per delivery on the webhook path, whatever answered it.
async fn print_outcome(request: Request, next: Next) -> Response {
    let id = id_for_log(request.headers()).unwrap_or("-").to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if let Some(received) = response.extensions().get::<Received>().cloned() {
        let unknown = if received.known_type {
            ""
        } else {
            " (unknown type)"
        };
        println!(
            "{}  {:<34}  {:<42}  {} accepted{unknown}",
            now(),
            received.webhook_id,
            received.event_type,
            status.as_u16()
        );
        if let Some(pretty) = &received.pretty_body {
            println!("{}", indent(pretty));
        }
        return response;
    }
    if status == StatusCode::NOT_FOUND && response.headers().get(header::CONTENT_TYPE).is_none() {
        return response; // printed by `not_here`
    }
    // Not accepted by the handler: a refusal by the library, or a duplicate it acknowledged.
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, ERROR_BODY_LIMIT)
        .await
        .unwrap_or_default();
    let outcome = describe_refusal(status, &bytes);
    println!("{}  {id:<34}  {:<42}  {outcome}", now(), "-");
    Response::from_parts(parts, Body::from(bytes))
}

/// `401 signature_mismatch: <message>`, or what an answer without an error body means.
fn describe_refusal(status: StatusCode, body: &[u8]) -> String {
    let code = status.as_u16();
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(error) if error.get("error").is_some() => {
            let name = error["error"].as_str().unwrap_or("error");
            let message = error["message"].as_str().unwrap_or("");
            format!("{code} {name}: {message}")
        }
        _ if status == StatusCode::OK => {
            format!("{code} duplicate: already processed, handler not run")
        }
        _ => format!("{code} {}", status.canonical_reason().unwrap_or("")),
    }
}

fn pretty_json(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn now() -> String {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .format("%H:%M:%S")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_show_code_and_hint() {
        let body = br#"{"error":"signature_mismatch","message":"no signature matches"}"#;
        assert_eq!(
            describe_refusal(StatusCode::UNAUTHORIZED, body),
            "401 signature_mismatch: no signature matches"
        );
        assert_eq!(
            describe_refusal(StatusCode::OK, b""),
            "200 duplicate: already processed, handler not run"
        );
        assert_eq!(
            describe_refusal(StatusCode::INTERNAL_SERVER_ERROR, b"boom"),
            "500 Internal Server Error"
        );
    }
}
