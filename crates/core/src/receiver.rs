//! What an endpoint accepts: the verifier, the limits and, if enabled, idempotency or the handoff.

use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;

use crate::{
    Delivery, EventPayload, EventRouter, HeaderLookup, Verifier, WebhookError,
    adapter::{Accepted, Completion, DEFAULT_BODY_LIMIT},
    handoff::{Enqueued, Handoff, ReceivedDelivery, now_ms},
    headers::{SVIX_SIGNATURE, WEBHOOK_SIGNATURE, webhook_or_svix},
    idempotency::{DEFAULT_UNAVAILABLE_RETRY_AFTER, Idempotency, whole_seconds},
};

/// How long the body of a request may take to arrive: 10 s. The sender gives up after 5 s, so a
/// body still arriving after 10 s is a stalled or hostile client holding a connection.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a handler may take to answer before the port warns: 3 s of the sender's 5 s.
pub const DEFAULT_ANSWER_BUDGET: Duration = Duration::from_secs(3);

/// How late an event may arrive (received minus occurred) before the port logs a warning: 15
/// minutes. The sender retries for about a day, so a late event is a sign of failed attempts
/// before this one.
pub const DEFAULT_DELAY_WARNING: Duration = Duration::from_secs(15 * 60);

/// Everything an endpoint needs to accept deliveries: the verifier, the body limit and
/// body-read deadline, and what happens once a delivery is verified (nothing more, idempotency,
/// or the durable handoff).
///
/// Adapters hold one (it is cheap to clone) and run every request through its one entry point,
/// [`receive`](Self::receive) (the port), so every framework decides alike.
///
/// ```
/// use std::time::Duration;
/// use agentsync_webhooks_core::{MemoryStore, Receiver, Verifier};
///
/// let receiver = Receiver::new(Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?)
///     .with_body_limit(256 * 1024)
///     .with_body_read_timeout(Duration::from_secs(5))
///     .with_idempotency(MemoryStore::new());
/// assert_eq!(receiver.body_limit(), 256 * 1024);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Receiver {
    verifier: Verifier,
    body_limit: usize,
    body_read_timeout: Duration,
    answer_budget: Duration,
    delay_warning: Duration,
    idempotency: Option<Idempotency>,
    handoff: Option<Arc<dyn Handoff>>,
    router: Option<EventRouter>,
}

impl Receiver {
    /// A receiver with the default body limit and body-read deadline.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            body_limit: DEFAULT_BODY_LIMIT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            answer_budget: DEFAULT_ANSWER_BUDGET,
            delay_warning: DEFAULT_DELAY_WARNING,
            idempotency: None,
            handoff: None,
            router: None,
        }
    }

    /// Sets the largest body accepted, in bytes (default [`DEFAULT_BODY_LIMIT`]); larger ones are
    /// answered 413 before they are read (declared) or at the chunk that crosses it (streamed).
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// Sets how long a body may take to arrive (default [`DEFAULT_BODY_READ_TIMEOUT`]); a slower
    /// one is answered 408 (`body_read_timeout`), the handler does not run, and the connection is
    /// closed.
    pub fn with_body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// Sets how long a handler may take to answer before the port logs a warning naming the
    /// delivery and pointing to the handoff (default [`DEFAULT_ANSWER_BUDGET`], 3 s of the
    /// sender's 5 s). With the handoff the handler only acknowledges, so no warning is due.
    pub fn with_answer_budget(mut self, budget: Duration) -> Self {
        self.answer_budget = budget;
        self
    }

    /// How long a handler may take to answer before the port warns.
    pub fn answer_budget(&self) -> Duration {
        self.answer_budget
    }

    /// Sets how late an event may arrive before the port logs a warning naming its
    /// webhook-id, type and delay (default [`DEFAULT_DELAY_WARNING`], 15 minutes).
    ///
    /// The delay is the attempt's `webhook-timestamp` (which the verifier checked is within its
    /// tolerance of this host's clock: no clock is read for it) minus the envelope's
    /// `timestamp`; it is also recorded on the delivery's span (`webhook.delay_ms`) and, with
    /// feature `metrics`, in the histogram `agentsync_webhooks_event_delay_seconds{event_type}`.
    /// An envelope without a `timestamp` has the `webhook-timestamp` standing in for it: its
    /// delay is zero by construction, so it is neither counted nor warned about, and its span
    /// says `webhook.occurred_at_source = "webhook-timestamp"`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentsync_webhooks_core::{Receiver, Verifier};
    ///
    /// let receiver = Receiver::new(Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?)
    ///     .with_delay_warning(Duration::from_secs(3600));
    /// assert_eq!(receiver.delay_warning(), Duration::from_secs(3600));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_delay_warning(mut self, threshold: Duration) -> Self {
        self.delay_warning = threshold;
        self
    }

    /// How late an event may arrive before the port warns.
    pub fn delay_warning(&self) -> Duration {
        self.delay_warning
    }

    /// Processes each `webhook-id` once: pass a store (such as
    /// [`MemoryStore`](crate::idempotency::MemoryStore)) for the defaults, or an
    /// [`Idempotency`] to set the key prefix, lease, TTL or fail-open.
    ///
    /// The id is claimed once the signature holds: a duplicate of a processed id is answered 200
    /// with an empty body, one being processed 409, a store failure 503, none of them running
    /// the handler. [`Completion::finish`] records a 2xx as processed and releases the id
    /// otherwise; dropping the completion unfinished (a panic, a cancelled request) releases it
    /// too.
    ///
    /// ```
    /// use agentsync_webhooks_core::{Receiver, Verifier, idempotency::{Idempotency, MemoryStore}};
    ///
    /// let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
    /// let namespaced = Receiver::new(verifier)
    ///     .with_idempotency(Idempotency::new(MemoryStore::new()).with_key_prefix("billing:"));
    /// assert_eq!(namespaced.idempotency().map(Idempotency::key_prefix), Some("billing:"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_idempotency(mut self, idempotency: impl Into<Idempotency>) -> Self {
        self.idempotency = Some(idempotency.into());
        self
    }

    /// Writes every verified delivery to a durable queue before the handler runs, so that the
    /// handler only has to answer 202 and the work happens on workers (see
    /// [`handoff`](crate::handoff)). The queue de-duplicates by `webhook-id` in the same step, so
    /// this replaces [`with_idempotency`](Self::with_idempotency): a delivery already stored is
    /// answered 200 with an empty body, a queue that cannot be written 503 with `Retry-After`.
    pub fn with_handoff(mut self, queue: impl Handoff) -> Self {
        self.handoff = Some(Arc::new(queue));
        self
    }

    /// Runs `router` on every verified delivery, in the request, and answers with its result:
    /// `200` once a handler processed the event (or none was registered for it), `500` when it
    /// failed (the sender retries). The framework's own handler is then not called. For work
    /// longer than the sender's 5 s, prefer [`with_handoff`](Self::with_handoff) and run the
    /// same router on workers; with a handoff, the router set here is not used.
    ///
    /// ```
    /// use agentsync_webhooks_core::{EventRouter, EventType, MemoryStore, Receiver, UpdatesAvailable, Verifier};
    /// use agentsync_webhooks_core::route::{Event, HandlerError};
    ///
    /// async fn pull(event: Event<UpdatesAvailable>) -> Result<(), HandlerError> {
    ///     println!("pull updatedSince={}", event.data.updated_since());
    ///     Ok(())
    /// }
    ///
    /// let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, pull);
    /// let receiver = Receiver::new(Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?)
    ///     .with_idempotency(MemoryStore::new())
    ///     .with_route(router);
    /// assert!(receiver.router().is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_route(mut self, router: EventRouter) -> Self {
        self.router = Some(router);
        self
    }

    /// The inline router, if any.
    pub fn router(&self) -> Option<&EventRouter> {
        self.router.as_ref()
    }

    /// The idempotency settings, if enabled (to [`forget`](Idempotency::forget) an id).
    pub fn idempotency(&self) -> Option<&Idempotency> {
        self.idempotency.as_ref()
    }

    /// Whether verified deliveries are written to a queue before the handler runs.
    pub fn has_handoff(&self) -> bool {
        self.handoff.is_some()
    }

    /// The largest body accepted, in bytes.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// How long a body may take to arrive.
    pub fn body_read_timeout(&self) -> Duration {
        self.body_read_timeout
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Verifies, claims or stores, and parses a delivery whose body is already in memory: the
    /// port's steps after the body was read, for integrations that get the whole body at once
    /// (a serverless function, a test). Refusals are returned, not logged.
    ///
    /// With idempotency the id is claimed after the signature holds and before the body is
    /// parsed (a body that then fails to parse releases the claim); with the handoff the body is
    /// parsed first, so that only deliveries a worker can process are stored. The returned
    /// future is `Send` whatever `D` is.
    ///
    /// ```
    /// use agentsync_webhooks_core::{EventData, EventType, MemoryStore, Receiver, Signer, Verifier, WebhookError};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    /// let receiver = Receiver::new(Verifier::new(secret)?).with_idempotency(MemoryStore::new());
    /// let request = Signer::new(secret)?.example(EventType::ProducerSyncUpdatesAvailable);
    /// let headers = request.headers.to_pairs();
    ///
    /// let accepted = receiver.accept::<EventData>(&headers, request.body.clone().into()).await?;
    /// accepted.completion.finish(200).await; // the handler answered 200
    /// let again = receiver.accept::<EventData>(&headers, request.body.into()).await;
    /// assert!(matches!(again, Err(WebhookError::Duplicate)));
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
    /// ```
    pub async fn accept<D: EventPayload>(
        &self,
        headers: &(impl HeaderLookup + ?Sized),
        body: Bytes,
    ) -> Result<Accepted<D>, WebhookError> {
        if body.len() > self.body_limit {
            return Err(WebhookError::PayloadTooLarge {
                limit: self.body_limit,
            });
        }
        let verified = self.verifier.verify(headers, &body)?;
        if let Some(handoff) = &self.handoff {
            // Boxed, as the release below: what the handoff holds across its write (the record
            // it stores) would otherwise make every receiver's future larger, and this future
            // is moved at least once per delivery. Beside the write, the box costs nothing.
            let received = received::<D>(headers, verified.id, verified.timestamp, &body)?;
            Box::pin(enqueue(handoff.as_ref(), received)).await?;
            let delivery = Box::new(Delivery::parse(verified.id, verified.timestamp, body)?);
            return Ok(Accepted {
                delivery,
                completion: Completion::stored(),
            });
        }
        let claim = match &self.idempotency {
            Some(idempotency) => idempotency.claim(verified.id).await?,
            None => None,
        };
        // The parse result must not outlive this statement: holding a `D` across the release's
        // `.await` would make the future `Send` only for `Send` payloads.
        let err = match Delivery::parse(verified.id, verified.timestamp, body) {
            Ok(delivery) => {
                return Ok(Accepted {
                    delivery: Box::new(delivery),
                    completion: Completion::claimed(claim),
                });
            }
            Err(err) => err,
        };
        if let Some(claim) = claim {
            Box::pin(claim.release()).await;
        }
        Err(err)
    }
}

/// Writes `received` to the handoff's queue: a duplicate, or a queue that cannot be written, is
/// the refusal the port answers with.
async fn enqueue(handoff: &dyn Handoff, received: ReceivedDelivery) -> Result<(), WebhookError> {
    match handoff.enqueue(&received).await {
        Ok(Enqueued::New) => Ok(()),
        Ok(Enqueued::Duplicate) => Err(WebhookError::Duplicate),
        Err(err) => {
            tracing::warn!(webhook_id = received.webhook_id.as_str(), error = %err, "queue unavailable");
            Err(WebhookError::StoreUnavailable {
                detail: err.kind().as_str().to_owned(),
                retry_after_secs: whole_seconds(DEFAULT_UNAVAILABLE_RETRY_AFTER),
            })
        }
    }
}

/// The record the handoff stores: checked to parse first (a delivery no worker could process is
/// refused with 400 and never stored), then described without holding the parsed payload, so
/// that the future stays `Send` whatever the payload type.
fn received<D: EventPayload>(
    headers: &(impl HeaderLookup + ?Sized),
    webhook_id: &str,
    webhook_timestamp: i64,
    body: &Bytes,
) -> Result<ReceivedDelivery, WebhookError> {
    let event_type = Delivery::<D>::parse(webhook_id, webhook_timestamp, body.clone())?
        .event
        .event_type;
    let signature = webhook_or_svix(headers, WEBHOOK_SIGNATURE, SVIX_SIGNATURE)?;
    Ok(ReceivedDelivery {
        webhook_id: webhook_id.to_owned(),
        event_type,
        webhook_timestamp,
        signature: String::from_utf8_lossy(signature).into_owned(),
        received_at_ms: now_ms(),
        body: body.clone(),
    })
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("verifier", &self.verifier)
            .field("body_limit", &self.body_limit)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("answer_budget", &self.answer_budget)
            .field("delay_warning", &self.delay_warning)
            .field("idempotency", &self.idempotency)
            .field("handoff", &self.handoff.is_some())
            .field("router", &self.router)
            .finish()
    }
}
