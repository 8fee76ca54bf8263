//! What the port records of each delivery: its span, the receipt log line, the metrics and the
//! answer budget's warning.
//!
//! Built to cost next to nothing when nothing listens: no span (not even a disabled one) unless
//! a subscriber takes `info`, metric keys built once, the handler polled in place.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tracing::Span;

use super::metrics;
use crate::EventType;
#[cfg(feature = "receive")]
use crate::{HeaderLookup, headers::id_for_log};

/// What the port knows of a delivery it accepted, to log its receipt once it is answered.
///
/// Small on purpose: a `Completion` moves several times per delivery, and what only a
/// subscriber reads (the span, the id for the warning) is boxed, and only made when one
/// listens.
#[derive(Debug)]
pub(crate) struct Observed {
    /// When the port started on it.
    started: Instant,
    /// How long an answer may take before it is worth a warning, in milliseconds.
    budget_ms: u32,
    /// The documented type, if it is one: a bounded label.
    event_type: Option<EventType>,
    /// For subscribers only.
    traced: Option<Box<Traced>>,
}

/// The parts of [`Observed`] that only a tracing subscriber reads.
#[derive(Debug)]
struct Traced {
    /// The delivery's span (`webhook.id`, `webhook.type`, ...), or `Span::none()` when no
    /// subscriber wants it.
    span: Span,
    /// For the late-answer warning; empty when nothing listens at `warn`.
    webhook_id: String,
}

impl Observed {
    #[cfg(feature = "receive")]
    pub(crate) fn new(
        span: Option<&Span>,
        webhook_id: &str,
        started: Instant,
        budget: Duration,
        event_type: Option<EventType>,
    ) -> Self {
        // The global level first: one load, where `enabled!` asks the callsite's interest.
        let warned = tracing::level_filters::LevelFilter::current() >= tracing::Level::WARN
            && tracing::enabled!(tracing::Level::WARN);
        let traced = (warned || span.is_some()).then(|| {
            Box::new(Traced {
                span: span.cloned().unwrap_or_else(Span::none),
                webhook_id: if warned {
                    webhook_id.to_owned()
                } else {
                    String::new()
                },
            })
        });
        Self {
            started,
            budget_ms: u32::try_from(budget.as_millis()).unwrap_or(u32::MAX),
            event_type,
            traced,
        }
    }

    /// The delivery's span, if a subscriber wants it.
    pub(crate) fn span(&self) -> Option<&Span> {
        self.traced
            .as_ref()
            .map(|traced| &traced.span)
            .filter(|span| !span.is_disabled())
    }

    /// Logs the receipt (every accepted delivery, at info) and, for a handler that answered
    /// within the request, a warning once it used more than the budget of the sender's 5 s.
    pub(crate) fn answered(&self, status: u16, stored: bool) {
        let elapsed = self.started.elapsed();
        let span = self.span();
        if let Some(span) = span {
            span.record("http.response.status_code", status);
            span.record("elapsed_ms", millis(elapsed));
        }
        let parent = span.and_then(Span::id);
        tracing::info!(
            parent: parent.clone(),
            status,
            elapsed_ms = millis(elapsed),
            stored,
            "webhook receipt"
        );
        metrics::answered(self.event_type, (200..300).contains(&status), elapsed);
        if !stored {
            let webhook_id = self.traced.as_ref().map_or("", |t| &t.webhook_id);
            let budget = Duration::from_millis(self.budget_ms.into());
            late_answer(parent, webhook_id, self.event_type, elapsed, budget);
        }
    }
}

/// Whole milliseconds, for logs and spans.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Warns when a handler that answered within the request used more than `budget` of the
/// sender's 5 s, naming the delivery and the fix.
#[inline]
pub(crate) fn late_answer(
    parent: Option<tracing::Id>,
    webhook_id: &str,
    event_type: Option<EventType>,
    elapsed: Duration,
    budget: Duration,
) {
    if elapsed > budget {
        warn_late(parent, webhook_id, event_type, elapsed, budget);
    }
}

/// The warning and the count of [`late_answer`]: out of line, as it is the rare case.
#[cold]
fn warn_late(
    parent: Option<tracing::Id>,
    webhook_id: &str,
    event_type: Option<EventType>,
    elapsed: Duration,
    budget: Duration,
) {
    metrics::late_answer(event_type);
    tracing::warn!(
        parent: parent,
        webhook_id,
        event_type = metrics::event_type_label(event_type),
        elapsed_ms = millis(elapsed),
        budget_ms = millis(budget),
        "the handler answered late for a sender that waits 5 s: move the work to the durable handoff (with_handoff) and answer at once"
    );
}

/// Records an accepted event's delay (the attempt's `webhook-timestamp` minus the envelope's
/// `timestamp`: no clock read) on its span and in the histogram, and warns past `threshold`.
/// An event whose `timestamp` is the stand-in is marked, not counted.
#[cfg(feature = "receive")]
#[inline]
pub(super) fn event_time(
    span: Option<&Span>,
    event_type: Option<EventType>,
    event: (
        &str,
        chrono::DateTime<chrono::Utc>,
        crate::event::TimestampSource,
    ),
    webhook_timestamp: i64,
    threshold: Duration,
) {
    let (webhook_id, occurred, source) = event;
    let delay_ms = webhook_timestamp
        .saturating_mul(1000)
        .saturating_sub(occurred.timestamp_millis());
    if let Some(span) = span {
        span.record("webhook.delay_ms", delay_ms);
        span.record("webhook.occurred_at_source", source.as_str());
    }
    if source != crate::event::TimestampSource::Envelope {
        return;
    }
    metrics::event_delay(event_type, delay_ms);
    if u128::try_from(delay_ms).is_ok_and(|ms| ms > threshold.as_millis()) {
        warn_delayed(span, webhook_id, event_type, delay_ms, threshold);
    }
}

#[cfg(feature = "receive")]
#[cold]
fn warn_delayed(
    span: Option<&Span>,
    webhook_id: &str,
    event_type: Option<EventType>,
    delay_ms: i64,
    threshold: Duration,
) {
    tracing::warn!(
        parent: span.and_then(Span::id),
        webhook_id,
        event_type = metrics::event_type_label(event_type),
        delay_ms,
        threshold_ms = millis(threshold),
        "webhook event arrived late: the sender retried it (earlier attempts failed), or it queued at the sender"
    );
}

/// The delivery's span, or `None` when no subscriber takes `info`.
///
/// A disabled span that keeps its metadata still asks the `log` crate on every enter, exit,
/// record and drop when tracing's `log` feature is on (axum turns it on by default), and that
/// costs more per delivery than everything else the port records: a span is only worth its
/// cost when a subscriber reads it.
#[cfg(feature = "receive")]
pub(super) fn delivery_span(headers: &(impl HeaderLookup + ?Sized)) -> Option<Span> {
    if tracing::level_filters::LevelFilter::current() < tracing::Level::INFO {
        return None;
    }
    let span = tracing::info_span!(
        "webhook",
        webhook.id = id_for_log(headers),
        "webhook.type" = tracing::field::Empty,
        webhook.timestamp = tracing::field::Empty,
        "webhook.delay_ms" = tracing::field::Empty,
        "webhook.occurred_at_source" = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
        elapsed_ms = tracing::field::Empty,
    );
    (!span.is_disabled()).then_some(span)
}

/// `f` run inside `span`, if there is one.
#[cfg(feature = "receive")]
pub(super) fn in_scope<R>(span: Option<&Span>, f: impl FnOnce() -> R) -> R {
    match span {
        Some(span) => span.in_scope(f),
        None => f(),
    }
}

pin_project_lite::pin_project! {
    /// A future polled inside a delivery's span: what
    /// [`Completion::in_span`](super::Completion::in_span) returns.
    ///
    /// Unlike `tracing::Instrumented`, it borrows the span rather than holding a clone, and
    /// does not touch it at all when the delivery has none, so that running a handler in its
    /// span costs nothing when no subscriber listens.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct InSpan<'a, F> {
        span: Option<&'a Span>,
        #[pin]
        future: F,
    }
}

impl<'a, F> InSpan<'a, F> {
    pub(super) fn new(span: Option<&'a Span>, future: F) -> Self {
        Self { span, future }
    }
}

impl<F: Future> Future for InSpan<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        match this.span {
            Some(span) => span.in_scope(|| this.future.poll(cx)),
            None => this.future.poll(cx),
        }
    }
}
