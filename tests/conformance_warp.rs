//! The conformance suite against warp: the `webhook_with` filter, the handler run through
//! `Webhook::run`, and `recover` answering the refusals, on a real warp server.

mod conformance;

use agentsync_webhooks::{
    Delivery, Receiver,
    warp::{Webhook, webhook_with},
};
use conformance::{Calls, TestServer};
use tokio::net::TcpListener;
use warp::{Filter, http::StatusCode};

async fn start(receiver: Receiver, calls: Calls) -> TestServer {
    let routes = warp::path!("webhooks" / "psapi")
        .and(warp::post())
        .and(webhook_with(receiver))
        .then(move |hook: Webhook| {
            let calls = calls.clone();
            hook.run(move |delivery: Delivery| async move {
                StatusCode::from_u16(calls.record(delivery).await).unwrap()
            })
        })
        .recover(agentsync_webhooks::warp::recover);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    TestServer::spawn(addr, warp::serve(routes).incoming(listener).run())
}

#[tokio::test]
async fn warp_filter_passes_the_conformance_suite() {
    conformance::run_suite("warp filter", start).await;
}
