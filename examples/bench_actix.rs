//! The server side of the HTTP benchmark: the same actix-web route with and without verification.
//!
//! ```sh
//! # servers and load generator share the secret through the environment
//! export AGENTSYNC_WEBHOOK_SECRET=$(cargo run -q -p agentsync-webhooks-cli -- secret new)
//! cargo build --release --example bench_actix
//! MODE=layer PORT=3001 target/release/examples/bench_actix &
//! MODE=bare  PORT=3002 target/release/examples/bench_actix &
//! cargo run --release -p agentsync-webhooks-cli -- send --url http://127.0.0.1:3001/webhooks/psapi \
//!     --event producersync.updates_available --count 100000 --concurrency 64
//! # ... and the same against :3002; compare requests/s and p99.
//! ```
//!
//! `MODE=layer`: `WebhookMiddleware` plus the `Webhook` extractor (read within the limit,
//! verify, parse, hand over). `MODE=bare`: a handler that only parses the JSON body, no
//! verification: the floor the middleware is measured against (target: at most 5% fewer
//! requests/s). `MODE=floor`: `bare` plus `Verifier::verify` on the headers and body, the
//! least any verifying receiver adds to `bare`. `MODE=floor-typed`: `floor` with the
//! middleware's parse (the typed `Delivery`, as the port parses it) in place of `bare`'s
//! `serde_json::Value`, so that "layer over floor-typed" is what the middleware adds over
//! verifying and parsing alike. `WORKERS` sets actix's worker count (default: one per core).

use std::error::Error;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use agentsync_webhooks::{
    Delivery, EventData, Verifier,
    actix::{ActixHeaders, Webhook, WebhookMiddleware},
};

const PATH: &str = "/webhooks/psapi";

/// `MODE=layer`: the event is verified and typed by the time the handler runs.
async fn verified(event: Webhook) -> HttpResponse {
    match event.data {
        EventData::Unknown { .. } => HttpResponse::Accepted().finish(),
        _ => HttpResponse::Ok().finish(),
    }
}

/// `MODE=bare`: the same answer from the unverified JSON.
async fn bare(body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(json) if json.get("type").is_some_and(|t| t.is_string()) => HttpResponse::Ok().finish(),
        _ => HttpResponse::BadRequest().finish(),
    }
}

/// `MODE=floor`: the bare handler plus the signature check alone (no middleware, no typed
/// parse): the least any verifying receiver must add to `bare`.
async fn floor(
    verifier: web::Data<Verifier>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    match verifier.verify(&ActixHeaders(request.headers()), &body) {
        Ok(_) => bare(body).await,
        Err(_) => HttpResponse::Unauthorized().finish(),
    }
}

/// `MODE=floor-typed`: the signature check and the middleware's typed parse, answered as
/// `verified` answers: what the middleware does without the middleware.
async fn floor_typed(
    verifier: web::Data<Verifier>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let headers = ActixHeaders(request.headers());
    let Ok(verified) = verifier.verify(&headers, &body) else {
        return HttpResponse::Unauthorized().finish();
    };
    match Delivery::<EventData>::parse(verified.id, verified.timestamp, body) {
        Ok(delivery) => match delivery.event.data {
            EventData::Unknown { .. } => HttpResponse::Accepted().finish(),
            _ => HttpResponse::Ok().finish(),
        },
        Err(_) => HttpResponse::BadRequest().finish(),
    }
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let secret = std::env::var("AGENTSYNC_WEBHOOK_SECRET").map_err(
        |_| "set AGENTSYNC_WEBHOOK_SECRET (the same secret the load generator signs with)",
    )?;
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT={port:?} is not a port number"))?,
        Err(_) => 3000,
    };
    let workers: Option<usize> = match std::env::var("WORKERS") {
        Ok(n) => Some(
            n.parse()
                .map_err(|_| format!("WORKERS={n:?} is not a number"))?,
        ),
        Err(_) => None,
    };
    let mode = std::env::var("MODE").unwrap_or_else(|_| "layer".into());
    let verifier = match mode.as_str() {
        "layer" | "floor" | "floor-typed" => Some(Verifier::new(&secret)?),
        "bare" => None,
        other => {
            return Err(format!(
                "MODE={other:?}: use MODE=layer, MODE=bare, MODE=floor or MODE=floor-typed"
            )
            .into());
        }
    };
    let floor_mode = mode == "floor";
    let floor_typed_mode = mode == "floor-typed";

    let mut server = HttpServer::new(move || {
        let verifier = verifier.clone();
        App::new().configure(move |cfg| match verifier {
            Some(verifier) if floor_mode => {
                cfg.app_data(web::Data::new(verifier))
                    .route(PATH, web::post().to(floor));
            }
            Some(verifier) if floor_typed_mode => {
                cfg.app_data(web::Data::new(verifier))
                    .route(PATH, web::post().to(floor_typed));
            }
            Some(verifier) => {
                cfg.service(
                    web::resource(PATH)
                        .wrap(WebhookMiddleware::new(verifier))
                        .route(web::post().to(verified)),
                );
            }
            None => {
                cfg.route(PATH, web::post().to(bare));
            }
        })
    });
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    let server = server.bind(("127.0.0.1", port))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or("the server is bound to no address")?;
    println!("bench_actix MODE={mode} on http://{addr}/webhooks/psapi");
    server.run().await?;
    Ok(())
}
