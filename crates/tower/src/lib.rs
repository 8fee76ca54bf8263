//! A [tower] layer that verifies AgentSync (Standard Webhooks) deliveries before your service
//! sees them, for axum, hyper, tonic-style stacks or any `tower::Service` over `http` 1.
//!
//! [`WebhookLayer`] runs every request through the core's receive port ([`Receiver::receive`]):
//! it collects the body within a limit and a deadline, verifies the signature and timestamp,
//! parses the event, and passes the request on with the verified
//! [`VerifiedDelivery`] in its extensions and the very same bytes as its body. Refused
//! deliveries are answered by the layer (status, small JSON body with a stable code, a `tracing`
//! event) and never reach the inner service. With
//! [`with_idempotency`](WebhookLayer::with_idempotency), each `webhook-id` is processed once: the
//! sender's retries of a delivery the service answered 2xx get an empty `200` from the layer.
//!
//! ```
//! use agentsync_webhooks_core::{EventData, Signer, Verifier, EventType};
//! use agentsync_webhooks_tower::{VerifiedDelivery, WebhookLayer};
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let service = ServiceBuilder::new()
//!     .layer(WebhookLayer::new(Verifier::new(secret)?))
//!     .service(service_fn(|request: Request<Full<Bytes>>| async move {
//!         // Only verified deliveries get here.
//!         let delivery = request.extensions().get::<VerifiedDelivery>();
//!         let status = match delivery.map(|d| &d.event.data) {
//!             Some(EventData::ProducerSyncUpdatesAvailable(d)) => {
//!                 println!("pull with updatedSince={}", d.updated_since());
//!                 StatusCode::OK
//!             }
//!             _ => StatusCode::NO_CONTENT,
//!         };
//!         let mut response = Response::new(Full::<Bytes>::default());
//!         *response.status_mut() = status;
//!         Ok::<_, std::convert::Infallible>(response)
//!     }));
//!
//! // A signed test delivery, as the sender would POST it.
//! let signed = Signer::new(secret)?.example(EventType::ProducerSyncUpdatesAvailable);
//! let mut request = Request::post("/webhooks/psapi").body(Full::new(Bytes::from(signed.body)))?;
//! *request.headers_mut() = signed.headers.to_header_map();
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! // A forged one never reaches the service.
//! let forged = Request::post("/webhooks/psapi").body(Full::new(Bytes::from_static(b"{}")))?;
//! assert_eq!(service.oneshot(forged).await?.status(), StatusCode::BAD_REQUEST);
//! # Ok(())
//! # }
//! ```
//!
//! [tower]: https://docs.rs/tower
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod delivery;
mod layer;

/// The core types the layer is configured with, so that one dependency is enough.
pub use agentsync_webhooks_core::{Idempotency, MemoryStore, Receiver};

pub use crate::{
    body::ResponseBody,
    delivery::VerifiedDelivery,
    layer::{ResponseFuture, WebhookLayer, WebhookService},
};
