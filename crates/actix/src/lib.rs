//! actix-web 4 middleware and extractor that verify AgentSync (Standard Webhooks) deliveries.
//!
//! [`WebhookMiddleware`] on a scope or resource runs every request through the core's receive
//! port: it reads the body within a limit and a deadline, verifies and parses it, stores the
//! [`Delivery`] in the request extensions, restores the body for other extractors, and reports
//! the handler's status to the core. The [`Webhook`] extractor in a handler's signature reads what
//! it stored. With [`with_idempotency`](WebhookMiddleware::with_idempotency) each `webhook-id` is
//! processed once: the sender's retries of a delivery the handler answered 2xx get an empty
//! `200`. Every answer is the one every other adapter gives (the status table of the design
//! notes, the same JSON error bodies).
//!
//! ```
//! use actix_web::{App, HttpResponse, test, web};
//! use agentsync_webhooks_actix::{Webhook, WebhookMiddleware};
//! use agentsync_webhooks_core::{EventData, EventType, Signer, Verifier};
//!
//! async fn psapi(event: Webhook) -> HttpResponse {
//!     match event.into_event().data {
//!         EventData::ProducerSyncUpdatesAvailable(d) => println!("pull updatedSince={}", d.updated_since()),
//!         other => println!("{:?}", other.event_type()),
//!     }
//!     HttpResponse::NoContent().finish()
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let app = test::init_service(
//!     App::new().service(
//!         web::scope("/webhooks")
//!             .wrap(WebhookMiddleware::new(Verifier::new(secret)?))
//!             .route("/psapi", web::post().to(psapi)),
//!     ),
//! )
//! .await;
//!
//! let sent = Signer::new(secret)?.example(EventType::ProducerSyncUpdatesAvailable);
//! let mut request = test::TestRequest::post().uri("/webhooks/psapi");
//! for header in sent.headers.to_pairs() {
//!     request = request.insert_header(header);
//! }
//! let response = test::call_service(&app, request.set_payload(sent.body).to_request()).await;
//! assert_eq!(response.status(), 204);
//!
//! // Unsigned: 400 with `{"error":"missing_header",...}`, the handler never runs.
//! let response = test::call_service(&app, test::TestRequest::post().uri("/webhooks/psapi").to_request()).await;
//! assert_eq!(response.status(), 400);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! actix-web 4 is built on `http` 0.2; this crate bridges its headers to the core with
//! [`ActixHeaders`] and never exposes `http` 1 types.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod extract;
mod headers;
mod middleware;
mod rejection;

pub use agentsync_webhooks_core::{
    Delivery, EventData, Idempotency, MemoryStore, Receiver, Verifier, WebhookError,
};

pub use crate::{
    extract::Webhook,
    headers::ActixHeaders,
    middleware::{WebhookMiddleware, WebhookMiddlewareService},
    rejection::WebhookRejection,
};
