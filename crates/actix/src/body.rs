//! Reading an actix payload within the receiver's limit, then the core's accept step.

use std::{future::poll_fn, pin::Pin};

use actix_web::{dev::Payload, http::header::HeaderMap};
use agentsync_webhooks_core::{
    Accepted, EventPayload, Receiver, WebhookError, headers::content_length,
};
use futures_core::Stream;

use crate::ActixHeaders;

/// Collects the body (413 on a declared length over the limit before reading, 413 at the chunk
/// that crosses it), then verifies and parses it with the core.
pub(crate) async fn accept<D: EventPayload>(
    receiver: &Receiver,
    headers: &HeaderMap,
    mut payload: Payload,
) -> Result<Accepted<D>, WebhookError> {
    let mut collector = receiver.collector(content_length(&ActixHeaders(headers)))?;
    while let Some(chunk) = poll_fn(|cx| Pin::new(&mut payload).poll_next(cx)).await {
        let chunk = chunk.map_err(|e| WebhookError::BodyRead(e.to_string()))?;
        collector.push_buf(chunk)?;
    }
    receiver
        .accept(&ActixHeaders(headers), collector.finish())
        .await
}
