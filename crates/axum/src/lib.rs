//! [axum] extractors for verified AgentSync (Standard Webhooks) deliveries.
//!
//! Put [`WebhookLayer`] on the webhook routes and take a [`Webhook`] in the handler:
//!
//! ```
//! use agentsync_webhooks_axum::{Webhook, WebhookLayer};
//! use agentsync_webhooks_core::{EventData, Verifier};
//! use axum::{Router, http::StatusCode, routing::post};
//!
//! async fn psapi(event: Webhook) -> StatusCode {
//!     match &event.data {
//!         EventData::ProducerSyncUpdatesAvailable(d) => println!("pull updatedSince={}", d.updated_since()),
//!         EventData::ProducerSyncNpnActivated(d) => println!("monitor {}", d.npn),
//!         other => println!("ignoring {:?}", other.event_type()),
//!     }
//!     StatusCode::NO_CONTENT
//! }
//!
//! # fn app() -> Result<Router, Box<dyn std::error::Error>> {
//! let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
//! let app: Router = Router::new()
//!     .route("/webhooks/psapi", post(psapi))
//!     .route_layer(WebhookLayer::new(verifier));
//! # Ok(app)
//! # }
//! ```
//!
//! The layer is the recommended setup: it answers refused deliveries before any extractor
//! runs, and it reports the handler's status to the receiver, which is what idempotency
//! (de-duplication of the sender's retries) needs. Turn that on with one call,
//! [`WebhookLayer::with_idempotency`]:
//!
//! ```
//! # use agentsync_webhooks_axum::{Webhook, WebhookLayer};
//! # use agentsync_webhooks_core::{MemoryStore, Verifier};
//! # use axum::{Router, http::StatusCode, routing::post};
//! # async fn psapi(_: Webhook) -> StatusCode { StatusCode::NO_CONTENT }
//! # fn app() -> Result<Router, Box<dyn std::error::Error>> {
//! let layer = WebhookLayer::new(Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?)
//!     // A retry of a delivery the handler answered 2xx: `200`, empty, handler not run.
//!     .with_idempotency(MemoryStore::new());
//! let app: Router = Router::new().route("/webhooks/psapi", post(psapi)).route_layer(layer);
//! # Ok(app)
//! # }
//! ```
//!
//! [`Webhook`] needs the layer: an extractor alone never sees the handler's answer, so it could
//! not report it for idempotency, and the answers would differ from the other frameworks'. On a
//! route without the layer, it answers `500` with a message naming the fix.
//!
//! [axum]: https://docs.rs/axum
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod extract;
mod rejection;

pub use agentsync_webhooks_tower::{VerifiedDelivery, WebhookLayer};

pub use crate::{extract::Webhook, rejection::WebhookRejection};
