//! The framework-free core of `agentsync-webhooks`: Standard Webhooks verification and signing,
//! typed AgentSync events, and the errors and status codes every adapter shares.
//!
//! ```
//! use agentsync_webhooks_core::{EventData, EventType, Signer, Verifier};
//!
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let verifier = Verifier::new(secret)?;
//!
//! // What the sender would POST (the signer is what tests and the CLI use).
//! let request = Signer::new(secret)?.example(EventType::ProducerSyncUpdatesAvailable);
//! let headers = request.headers.to_pairs();
//!
//! let delivery = verifier.verify_delivery::<EventData>(&headers, request.body.into())?;
//! match delivery.event.data {
//!     EventData::ProducerSyncUpdatesAvailable(d) => assert_eq!(d.updated_since(), "2025-07-24"),
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adapter;
mod delivery;
mod error;
pub mod event;
pub mod handoff;
pub mod headers;
pub mod idempotency;
mod receiver;
pub mod route;
mod secret;
mod sign;
#[cfg(feature = "v1a")]
pub mod v1a;
mod verify;

pub use crate::{
    adapter::DEFAULT_BODY_LIMIT,
    delivery::Delivery,
    error::WebhookError,
    event::{
        EventData, EventGroup, EventPayload, EventType, NpnActivated, NpnDeactivated, ObjectData,
        RawData, UnknownEventType, UpdatesAvailable, WebhookEvent,
    },
    headers::HeaderLookup,
    idempotency::{Idempotency, IdempotencyStore, MemoryStore},
    receiver::{DEFAULT_ANSWER_BUDGET, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_DELAY_WARNING, Receiver},
    route::{EventRouter, HandlerError},
    secret::{SECRET_PREFIX, Secret, SecretError},
    sign::{SignedHeaders, SignedRequest, Signer, new_message_id},
    verify::{
        Clock, DEFAULT_TOLERANCE, FixedClock, FromEnvError, SECRET_ENV, SystemClock,
        VerifiedHeaders, Verifier, VerifierBuilder,
    },
};
