//! [warp] filters that hand your handler a verified, typed AgentSync webhook.
//!
//! - [`webhook`] (or [`webhook_with`] for a configured [`Receiver`], [`webhook_as`] for your own
//!   payload type) reads the body within the limit, verifies the signature and parses the event,
//!   extracting a [`Webhook`]; a refused delivery is a [`WebhookRejection`].
//! - [`Webhook::run`] runs your handler and records its reply's status with the delivery's
//!   completion (where idempotency hooks in), so that a retry of a handled event is answered as a
//!   duplicate and a retry of a failed one is processed again.
//! - [`recover`] answers every [`WebhookRejection`] with the status and JSON body every adapter
//!   sends, and passes any other rejection (404, 405, ...) on.
//!
//! # Why `then(|hook| hook.run(handler))`
//!
//! A warp filter cannot see the reply of the handler that comes after it, yet the completion
//! needs the reply's status. So the filter extracts a [`Webhook`] and its
//! [`run`](Webhook::run) method runs the handler and finishes the completion with the status of
//! what the handler returned. Handlers that would rather take the whole [`Webhook`] (for example
//! with `and_then`) end with [`Webhook::respond`]. A [`Webhook`] dropped without either (a
//! panic, a cancelled request, a `?` that rejects) drops its completion, which releases the
//! delivery so that the sender's retry is processed.
//!
//! ```
//! use agentsync_webhooks_core::{Delivery, EventData, Verifier};
//! use agentsync_webhooks_warp::{Webhook, webhook};
//! use warp::{Filter, Reply, http::StatusCode};
//!
//! async fn on_event(delivery: Delivery) -> impl Reply {
//!     match delivery.event.data {
//!         EventData::ProducerSyncUpdatesAvailable(d) => println!("pull updatedSince={}", d.updated_since()),
//!         other => println!("ignoring {:?}", other.event_type()),
//!     }
//!     StatusCode::NO_CONTENT
//! }
//!
//! let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
//! let routes = warp::post()
//!     .and(warp::path!("webhooks" / "psapi"))
//!     .and(webhook(verifier))
//!     .then(|hook: Webhook| hook.run(on_event))
//!     .recover(agentsync_webhooks_warp::recover);
//! // warp::serve(routes).run(([127, 0, 0, 1], 3000)).await;
//! # let _ = routes;
//! # Ok::<(), agentsync_webhooks_core::SecretError>(())
//! ```
//!
//! # Idempotency
//!
//! warp has no layer object to configure: the filter takes a [`Receiver`], so the one call is
//! [`Receiver::with_idempotency`] on the receiver given to [`webhook_with`]:
//!
//! ```
//! use agentsync_webhooks_warp::{MemoryStore, Receiver, Verifier, Webhook, webhook_with};
//! use warp::{Filter, http::StatusCode};
//!
//! let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
//! let routes = warp::path!("webhooks" / "psapi")
//!     .and(webhook_with(Receiver::new(verifier).with_idempotency(MemoryStore::new())))
//!     .then(|hook: Webhook| hook.respond(StatusCode::NO_CONTENT))
//!     .recover(agentsync_webhooks_warp::recover);
//! # let _ = routes;
//! # Ok::<(), agentsync_webhooks_core::SecretError>(())
//! ```
//!
//! The filter then claims each `webhook-id` once the signature holds: a retry of a delivery
//! whose reply was 2xx is refused with a [`WebhookRejection`] that [`recover`] answers `200` with
//! an empty body, one still being processed `409` with `Retry-After`, and a store that cannot
//! answer `503` with `Retry-After`, none of them reaching the handler. The status reaches the
//! store only through [`Webhook::run`] or [`Webhook::respond`] (or
//! [`Completion::finish`] after [`Webhook::into_parts`]); a non-2xx reply, a panic or a dropped
//! request releases the id so that the sender's retry is processed.
//!
//! # Bodies without `Content-Length`
//!
//! `warp::body::content_length_limit` refuses a chunked body with 411. These filters hand the
//! body stream to the core's receive port instead, which reads it chunk by chunk up to
//! [`Receiver::body_limit`]: a declared length over the limit is refused with 413 before
//! anything is read, a stream that grows past it with 413 at the chunk that crosses it, and a
//! body still arriving after [`Receiver::body_read_timeout`] with 408, so memory and time stay
//! bounded either way.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod filter;
mod rejection;
mod webhook;

/// The core types that appear in this crate's signatures or configure its receiver, so that one
/// dependency is enough.
pub use agentsync_webhooks_core::{
    Delivery, EventData, EventPayload, Idempotency, MemoryStore, Receiver, Verifier, WebhookError,
    adapter::Completion,
};

pub use crate::{
    filter::{webhook, webhook_as, webhook_with},
    rejection::{WebhookRejection, recover},
    webhook::Webhook,
};
