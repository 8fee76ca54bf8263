//! actix-web 4 middleware and extractor that verify AgentSync (Standard Webhooks) deliveries.
//!
//! Two ways to use it, which answer every request alike (the status table of the design notes,
//! the same JSON error bodies as every other adapter):
//!
//! - [`WebhookMiddleware`] on a scope or resource: it reads the body within a limit, verifies and
//!   parses it, stores the [`Delivery`] in the request extensions, restores the body for other
//!   extractors, and reports the handler's status to the core. With
//!   [`with_idempotency`](WebhookMiddleware::with_idempotency) each `webhook-id` is processed
//!   once: the sender's retries of a delivery the handler answered 2xx get an empty `200`.
//! - The [`Webhook`] extractor in handler signatures: it reads what the middleware stored, or,
//!   without the middleware, verifies by itself with a `web::Data<Verifier>` (or
//!   `web::Data<Receiver>`) from the app data; alone, it verifies but cannot de-duplicate.
//!
//! ```
//! use actix_web::{App, HttpResponse, test, web};
//! use agentsync_webhooks_actix::{Webhook, WebhookMiddleware};
//! use agentsync_webhooks_core::{EventData, EventType, Signer, Verifier};
//!
//! async fn psapi(Webhook(delivery): Webhook) -> HttpResponse {
//!     match delivery.event.data {
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

mod body;
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
    rejection::{WebhookRejection, rejection_response},
};
