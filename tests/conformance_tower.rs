//! The conformance suite against `WebhookLayer` on a plain hyper 1 server.

mod conformance;

use std::convert::Infallible;

use agentsync_webhooks::{
    Receiver,
    tower::{VerifiedDelivery, WebhookLayer},
};
use bytes::Bytes;
use conformance::{Calls, TestServer};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::{net::TcpListener, task::JoinSet};
use tower::{ServiceBuilder, service_fn};

/// The handler: records the delivery and answers as the case says, after checking that its body
/// is the verified bytes, shared.
async fn handle(
    calls: Calls,
    request: Request<Full<Bytes>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let Some(delivery) = request.extensions().get::<VerifiedDelivery>().cloned() else {
        return Ok(status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no VerifiedDelivery",
        ));
    };
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    if body != delivery.raw_body || body.as_ptr() != delivery.raw_body.as_ptr() {
        return Ok(status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "body is not the verified bytes",
        ));
    }
    let answer = calls.record(delivery.delivery().clone()).await;
    Ok(status(StatusCode::from_u16(answer).unwrap(), ""))
}

fn status(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(message.as_bytes())));
    *response.status_mut() = status;
    response
}

async fn start(receiver: Receiver, calls: Calls) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ServiceBuilder::new()
        .layer(WebhookLayer::from_receiver(receiver))
        .service(service_fn(move |request| handle(calls.clone(), request)));
    TestServer::spawn(addr, async move {
        // Dropping the set (when the server is stopped) ends every connection too.
        let mut connections = JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            connections.spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

#[tokio::test]
async fn tower_layer_on_hyper_passes_the_conformance_suite() {
    conformance::run_suite("tower", start).await;
}
