//! The warp side of the HTTP benchmark: the same endpoint with and without the webhook filter.
//!
//! `MODE=layer` verifies and parses every delivery with `agentsync_webhooks::warp::webhook`;
//! `MODE=bare` only parses the JSON body (no verification), the baseline; `MODE=floor` is `bare`
//! plus `Verifier::verify` on the three headers and the body, the least any verifying receiver
//! adds to `bare`; `MODE=floor-typed` is `floor` with the filter's parse (the typed `Delivery`,
//! as the port parses it) in place of `bare`'s `serde_json::Value`, so that "layer over
//! floor-typed" is what the filter adds over verifying and parsing alike. All answer 200.
//!
//! ```sh
//! # server and load generator share the secret through the environment
//! export AGENTSYNC_WEBHOOK_SECRET=$(cargo run -q -p agentsync-webhooks-cli -- secret new)
//! MODE=layer PORT=3000 cargo run --release --example bench_warp &
//! cargo run --release -p agentsync-webhooks-cli -- send --url http://127.0.0.1:3000/webhooks/psapi \
//!     --event producersync.updates_available --count 20000 --concurrency 32
//! ```

use std::{error::Error, hint::black_box, net::Ipv4Addr};

use agentsync_webhooks::{
    Delivery, EventData, Verifier,
    headers::{WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP},
    warp::{Webhook, webhook},
};
use tokio::net::TcpListener;
use warp::{
    Filter,
    http::{HeaderValue, StatusCode},
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let secret = std::env::var("AGENTSYNC_WEBHOOK_SECRET")
        .map_err(|_| "set AGENTSYNC_WEBHOOK_SECRET to the secret the load generator signs with")?;
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT={port} is not a port number"))?,
        Err(_) => 3000,
    };
    let mode = std::env::var("MODE").unwrap_or_else(|_| "layer".to_owned());
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;
    let path = warp::path!("webhooks" / "psapi").and(warp::post());

    match mode.as_str() {
        "layer" => {
            let routes = path
                .and(webhook(Verifier::new(&secret)?))
                .then(|hook: Webhook| {
                    hook.run(|delivery: Delivery| async move {
                        black_box(&delivery.event);
                        StatusCode::OK
                    })
                })
                .recover(agentsync_webhooks::warp::recover);
            println!("bench_warp MODE=layer on http://{addr}/webhooks/psapi");
            warp::serve(routes).incoming(listener).run().await;
        }
        "bare" => {
            let routes =
                path.and(warp::body::bytes()).map(
                    |body: bytes::Bytes| match serde_json::from_slice::<serde_json::Value>(&body) {
                        Ok(event) => {
                            black_box(&event);
                            StatusCode::OK
                        }
                        Err(_) => StatusCode::BAD_REQUEST,
                    },
                );
            println!("bench_warp MODE=bare on http://{addr}/webhooks/psapi");
            warp::serve(routes).incoming(listener).run().await;
        }
        "floor" => {
            // The three headers borrowed as values (no `HeaderMap` clone), the body, the check.
            let verifier = Verifier::new(&secret)?;
            let routes = path
                .and(warp::header::value(WEBHOOK_ID))
                .and(warp::header::value(WEBHOOK_TIMESTAMP))
                .and(warp::header::value(WEBHOOK_SIGNATURE))
                .and(warp::body::bytes())
                .map(
                    move |id: HeaderValue,
                          timestamp: HeaderValue,
                          signature: HeaderValue,
                          body: bytes::Bytes| {
                        let headers = [
                            (WEBHOOK_ID, id),
                            (WEBHOOK_TIMESTAMP, timestamp),
                            (WEBHOOK_SIGNATURE, signature),
                        ];
                        if verifier.verify(&headers, &body).is_err() {
                            return StatusCode::UNAUTHORIZED;
                        }
                        match serde_json::from_slice::<serde_json::Value>(&body) {
                            Ok(event) => {
                                black_box(&event);
                                StatusCode::OK
                            }
                            Err(_) => StatusCode::BAD_REQUEST,
                        }
                    },
                );
            println!("bench_warp MODE=floor on http://{addr}/webhooks/psapi");
            warp::serve(routes).incoming(listener).run().await;
        }
        "floor-typed" => {
            // `floor`'s headers and check, then the filter's typed parse.
            let verifier = Verifier::new(&secret)?;
            let routes = path
                .and(warp::header::value(WEBHOOK_ID))
                .and(warp::header::value(WEBHOOK_TIMESTAMP))
                .and(warp::header::value(WEBHOOK_SIGNATURE))
                .and(warp::body::bytes())
                .map(
                    move |id: HeaderValue,
                          timestamp: HeaderValue,
                          signature: HeaderValue,
                          body: bytes::Bytes| {
                        let headers = [
                            (WEBHOOK_ID, id),
                            (WEBHOOK_TIMESTAMP, timestamp),
                            (WEBHOOK_SIGNATURE, signature),
                        ];
                        let Ok(verified) = verifier.verify(&headers, &body) else {
                            return StatusCode::UNAUTHORIZED;
                        };
                        match Delivery::<EventData>::parse(verified.id, verified.timestamp, body) {
                            Ok(delivery) => {
                                black_box(&delivery.event);
                                StatusCode::OK
                            }
                            Err(_) => StatusCode::BAD_REQUEST,
                        }
                    },
                );
            println!("bench_warp MODE=floor-typed on http://{addr}/webhooks/psapi");
            warp::serve(routes).incoming(listener).run().await;
        }
        other => {
            return Err(format!(
                "MODE={other}: use MODE=layer, MODE=bare, MODE=floor or MODE=floor-typed"
            )
            .into());
        }
    }
    Ok(())
}
