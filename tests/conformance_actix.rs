//! The conformance suite against the actix-web adapter: the middleware with the `Webhook`
//! extractor.
//!
//! Each case boots a real `HttpServer` bound on 127.0.0.1:0, in its own thread with its own
//! actix `System`, and stops it when the case is done.

mod conformance;

use std::{net::SocketAddr, sync::mpsc, thread};

use actix_web::{App, HttpResponse, HttpServer, dev::ServerHandle, http::StatusCode, web};
use agentsync_webhooks::{
    Receiver,
    actix::{Webhook, WebhookMiddleware},
};
use conformance::{Calls, TestServer};

/// Behind the middleware: records the delivery and answers as the case says, after checking
/// that another extractor still reads the verified bytes.
async fn behind_middleware(
    webhook: Webhook,
    body: web::Bytes,
    calls: web::Data<Calls>,
) -> HttpResponse {
    if body != webhook.raw_body() {
        return HttpResponse::InternalServerError().body("body is not the verified bytes");
    }
    answer(calls.record(webhook.into_delivery()).await)
}

/// The status the case asked for, with no body.
fn answer(status: u16) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap()).finish()
}

/// Stops the server (and so its thread) when the case is done.
struct StopOnDrop(ServerHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // Sending the stop command is synchronous; its completion need not be awaited.
        drop(self.0.stop(false));
    }
}

/// Runs an app configured by `configure` on 127.0.0.1:0 in a thread of its own.
fn serve(configure: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static) -> TestServer {
    let (started, addr) = mpsc::channel::<(SocketAddr, ServerHandle)>();
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || App::new().configure(configure.clone()))
                .workers(1)
                .disable_signals()
                .bind(("127.0.0.1", 0))
                .unwrap();
            let addr = server.addrs()[0];
            let server = server.run();
            started.send((addr, server.handle())).unwrap();
            server.await.unwrap();
        });
    });
    let (addr, handle) = addr.recv().unwrap();
    TestServer::new(addr, StopOnDrop(handle))
}

async fn start_middleware(receiver: Receiver, calls: Calls) -> TestServer {
    serve(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(calls.clone())).service(
            web::scope("/webhooks")
                .wrap(WebhookMiddleware::from_receiver(receiver.clone()))
                .route("/psapi", web::post().to(behind_middleware)),
        );
    })
}

#[tokio::test]
async fn actix_middleware_passes_the_conformance_suite() {
    conformance::run_suite("actix middleware", start_middleware).await;
}
