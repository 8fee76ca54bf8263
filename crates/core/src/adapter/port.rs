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

use super::{
    Accepted, BodyCollector, InSpan, Observed, Rejection,
    observe::{delivery_span, in_scope},
};
use crate::{
    EventPayload, EventRouter, EventType, HeaderLookup, Receiver, WebhookError,
    headers::content_length,
};

impl Receiver {
    /// The port: reads the body within the limit and the body-read deadline, then verifies,
    /// claims or stores, and parses it; every refusal comes back as a logged [`Rejection`].
    ///
    /// `size_hint` is the body's exact size when the framework knows it (hyper does, from the
    /// `Content-Length` it checked); without one the `Content-Length` header is read here. A
    /// declared size over the limit is refused before a byte is read; a stream that grows past
    /// it is refused at the chunk that crosses it; a body still arriving after
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
        // One `async fn` for every step, each awaited where it is made. The span is entered
        // where the port logs (refusals) and around the inline router's handlers; reading,
        // verifying and claiming run outside it (the stores' own warnings name the webhook-id),
        // because a level of `async fn` or an `Instrumented` wrapper around them copies the
        // whole future once more per delivery. What only some receivers run (the router, the
        // body-read timer, the handoff) is boxed where it runs, so that it does not make every
        // delivery's future larger: each adapter moves that future at least once.
        let span = delivery_span(headers);
        let span = span.as_ref();
        let started = Instant::now();
        let refused = |error| {
            let rejection = in_scope(span, || Rejection::for_request(error, headers));
            answered(span, started, rejection)
        };
        let body = match self.read_body(headers, size_hint, body).await {
            Ok(body) => body,
            Err(error) => return Err(refused(error)),
        };
        let mut accepted = match self.accept::<D>(headers, body).await {
            Ok(accepted) => accepted,
            Err(error) => return Err(refused(error)),
        };
        let event_type = accepted.delivery.event.known_type();
        if let Some(span) = span {
            span.record("webhook.type", accepted.delivery.event.event_type.as_str());
            span.record("webhook.timestamp", accepted.delivery.webhook_timestamp);
        }
        super::observe::event_time(
            span,
            event_type,
            (
                &accepted.delivery.webhook_id,
                accepted.delivery.event.timestamp,
                accepted.delivery.event.timestamp_source,
            ),
            accepted.delivery.webhook_timestamp,
            self.delay_warning(),
        );
        tracing::debug!(
            parent: span.and_then(tracing::Span::id),
            payload = %String::from_utf8_lossy(&accepted.delivery.raw_body),
            "webhook payload"
        );
        let budget = self.answer_budget();
        if let Some(router) = self.router()
            && !accepted.completion.is_stored()
        {
            let routed = Box::pin(route(router, accepted, (started, budget, event_type), span));
            let answer = InSpan::new(span, routed).await;
            return Err(answered(span, started, answer));
        }
        accepted.completion.observe(Observed::new(
            span,
            &accepted.delivery.webhook_id,
            started,
            budget,
            event_type,
        ));
        Ok(accepted)
    }

    /// Reads the body within the limit and the body-read deadline.
    async fn read_body<C: Buf, E: Display>(
        &self,
        headers: &(impl HeaderLookup + ?Sized),
        size_hint: Option<u64>,
        body: impl Stream<Item = Result<C, E>>,
    ) -> Result<Bytes, WebhookError> {
        // The framework's exact size first: it is free, where the header is a lookup and a parse.
        let declared = size_hint.or_else(|| content_length(headers));
        let collector = BodyCollector::new(declared, self.body_limit())?;
        let mut collect = pin!(collect(collector, body));
        // A body the server has already buffered whole is read in one poll: no timer for it
        // (making one costs a clock read, a runtime handle and its drop on every delivery).
        if let Poll::Ready(read) = poll_once(collect.as_mut()).await {
            return read;
        }
        // Boxed: the timer is larger than the rest of this future, and only a body still
        // arriving needs it.
        let timeout = self.body_read_timeout();
        Box::pin(tokio::time::timeout(timeout, collect))
            .await
            .map_err(|_elapsed| WebhookError::BodyReadTimeout {
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            })?
    }
}

/// Counts and records an answer the port gives itself (a refusal, a duplicate, or the inline
/// router's); `error.type` only for an error status, as OpenTelemetry means it.
fn answered(span: Option<&tracing::Span>, started: Instant, answer: Rejection) -> Rejection {
    super::metrics::delivery(answer.code());
    if let Some(span) = span {
        span.record("http.response.status_code", answer.status());
        if answer.status() >= 400 {
            span.record("error.type", answer.code());
        }
        span.record("elapsed_ms", elapsed_ms(started));
    }
    answer
}

/// Runs the inline router on an accepted delivery, reports its status, and answers with it.
/// `budget` is when the port started, how long the handler may take before a warning, and the
/// event's documented type.
async fn route<D>(
    router: &EventRouter,
    accepted: Accepted<D>,
    (started, budget, event_type): (Instant, std::time::Duration, Option<EventType>),
    span: Option<&tracing::Span>,
) -> Rejection {
    let Accepted {
        delivery,
        completion,
    } = accepted;
    let delivery = *delivery;
    // Each handler parses the payload as its own type; dropping `D` here keeps the future
    // `Send` whatever `D` is.
    let (webhook_id, timestamp, body) = (
        delivery.webhook_id,
        delivery.webhook_timestamp,
        delivery.raw_body,
    );
    drop(delivery.event);
    let answer = Rejection::routed(
        router.dispatch_raw(&webhook_id, timestamp, body).await,
        &webhook_id,
    );
    let elapsed = started.elapsed();
    super::metrics::handler(event_type, (200..300).contains(&answer.status()), elapsed);
    let parent = span.and_then(tracing::Span::id);
    super::late_answer(parent, &webhook_id, event_type, elapsed, budget);
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

/// Polls `future` once, as the [`Poll`] it gave.
async fn poll_once<F: Future>(mut future: Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
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
