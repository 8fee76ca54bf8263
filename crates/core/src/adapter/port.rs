//! The receive port: the one entry point every adapter calls.

use std::{
    convert::Infallible,
    fmt::Display,
    future::poll_fn,
    pin::{Pin, pin},
    task::{Context, Poll},
    time::Instant,
};

use bytes::{Buf, Bytes};
use futures_core::Stream;

use super::{Accepted, BodyCollector, Rejection};
use tracing::Instrument as _;

use super::Observed;
use crate::{
    EventPayload, EventRouter, EventType, HeaderLookup, Receiver, WebhookError,
    headers::{content_length, id_for_log},
};

impl Receiver {
    /// The port: reads the body within the limit and the body-read deadline, then verifies,
    /// claims or stores, and parses it; every refusal comes back as a logged [`Rejection`].
    ///
    /// `size_hint` is the body's exact size when the framework knows it without a
    /// `Content-Length` header (the header, when present, wins). A declared size over the limit
    /// is refused before a byte is read; a stream that grows past it is refused at the chunk
    /// that crosses it; a body still arriving after
    /// [`body_read_timeout`](Receiver::body_read_timeout) is refused with 408.
    ///
    /// ```
    /// use agentsync_webhooks_core::{EventData, EventType, Receiver, Signer, Verifier, adapter::full_body};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    /// let receiver = Receiver::new(Verifier::new(secret)?);
    /// let request = Signer::new(secret)?.example(EventType::ProducerSyncUpdatesAvailable);
    /// let headers = request.headers.to_pairs();
    ///
    /// let accepted = receiver.receive::<EventData, _, _>(&headers, None, full_body(request.body.into())).await?;
    /// assert_eq!(accepted.delivery.event.event_type, "producersync.updates_available");
    /// accepted.completion.finish(200).await;
    ///
    /// let forged = receiver.receive::<EventData, _, _>(&headers, None, full_body("{}".into())).await;
    /// assert_eq!(forged.unwrap_err().status(), 401);
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(run()).unwrap();
    /// ```
    pub async fn receive<D, C, E>(
        &self,
        headers: &(impl HeaderLookup + ?Sized),
        size_hint: Option<u64>,
        body: impl Stream<Item = Result<C, E>>,
    ) -> Result<Accepted<D>, Rejection>
    where
        D: EventPayload,
        C: Buf,
        E: Display,
    {
        let span = tracing::info_span!(
            "webhook",
            webhook.id = id_for_log(headers),
            "webhook.type" = tracing::field::Empty,
            webhook.timestamp = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let steps = self.receive_in_span::<D, C, E>(headers, size_hint, body, started);
        // No subscriber wants the span: skip entering and leaving it on every poll.
        let answered = if span.is_disabled() {
            steps.await
        } else {
            steps.instrument(span.clone()).await
        };
        match answered {
            Ok(mut accepted) => {
                let known = accepted.delivery.event.known_type();
                accepted.completion.observe(Observed {
                    span,
                    started,
                    budget: self.answer_budget(),
                    // Only the late-answer warning reads it: no copy when nothing listens.
                    webhook_id: if tracing::enabled!(tracing::Level::WARN) {
                        accepted.delivery.webhook_id.clone()
                    } else {
                        String::new()
                    },
                    event_type: known.map_or("unknown", EventType::as_str),
                });
                Ok(accepted)
            }
            Err(rejection) => {
                super::metrics::delivery(rejection.code());
                if !span.is_disabled() {
                    span.record("http.response.status_code", rejection.status());
                    span.record("error.type", rejection.code());
                    span.record("elapsed_ms", elapsed_ms(started));
                }
                Err(rejection)
            }
        }
    }

    /// The port's steps, inside the delivery's span.
    async fn receive_in_span<D, C, E>(
        &self,
        headers: &(impl HeaderLookup + ?Sized),
        size_hint: Option<u64>,
        body: impl Stream<Item = Result<C, E>>,
        started: Instant,
    ) -> Result<Accepted<D>, Rejection>
    where
        D: EventPayload,
        C: Buf,
        E: Display,
    {
        let accepted = async {
            let declared = content_length(headers).or(size_hint);
            let collector = BodyCollector::new(declared, self.body_limit())?;
            let timeout = self.body_read_timeout();
            let body = tokio::time::timeout(timeout, collect(collector, body))
                .await
                .map_err(|_elapsed| WebhookError::BodyReadTimeout {
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                })??;
            self.accept::<D>(headers, body).await
        };
        let accepted = accepted
            .await
            .map_err(|error| Rejection::for_request(error, headers))?;
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record("webhook.type", accepted.delivery.event.event_type.as_str());
            span.record("webhook.timestamp", accepted.delivery.webhook_timestamp);
        }
        tracing::debug!(
            payload = %String::from_utf8_lossy(&accepted.delivery.raw_body),
            "webhook payload"
        );
        match self.router() {
            Some(router) if !accepted.completion.is_stored() => {
                let budget = (started, self.answer_budget());
                Err(route(router, accepted, budget).await)
            }
            _ => Ok(accepted),
        }
    }
}

/// Runs the inline router on an accepted delivery, reports its status, and answers with it.
/// `budget` is when the port started and how long the handler may take before a warning.
async fn route<D>(
    router: &EventRouter,
    accepted: Accepted<D>,
    (started, budget): (Instant, std::time::Duration),
) -> Rejection {
    let Accepted {
        delivery,
        completion,
    } = accepted;
    // Each handler parses the payload as its own type; dropping `D` here keeps the future
    // `Send` whatever `D` is.
    let (webhook_id, timestamp, body) = (
        delivery.webhook_id,
        delivery.webhook_timestamp,
        delivery.raw_body,
    );
    let event_type = delivery
        .event
        .known_type()
        .map_or("unknown", EventType::as_str);
    drop(delivery.event);
    let answer = Rejection::routed(
        router.dispatch_raw(&webhook_id, timestamp, body).await,
        &webhook_id,
    );
    let span = tracing::Span::current();
    super::late_answer(&span, &webhook_id, event_type, started.elapsed(), budget);
    completion.finish(answer.status()).await;
    answer
}

/// Reads every chunk into `collector`; a transport error is [`WebhookError::BodyRead`].
async fn collect<C: Buf, E: Display>(
    mut collector: BodyCollector,
    body: impl Stream<Item = Result<C, E>>,
) -> Result<Bytes, WebhookError> {
    let mut body = pin!(body);
    while let Some(chunk) = poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        collector.push_buf(chunk.map_err(|e| WebhookError::BodyRead(e.to_string()))?)?;
    }
    Ok(collector.finish())
}

/// Milliseconds since `started`, for logs and spans.
pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A body that is already in memory, as the one-chunk stream [`Receiver::receive`] reads.
pub fn full_body(bytes: Bytes) -> FullBody {
    FullBody(Some(bytes))
}

/// The stream of [`full_body`]: one chunk, then the end.
#[derive(Debug)]
pub struct FullBody(Option<Bytes>);

impl Stream for FullBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.take().map(Ok))
    }
}
