//! The port's metrics, through the `metrics` facade (feature `metrics`): names and labels are
//! stable, label values are bounded (no ids; unknown event types share `unknown`).
//!
//! Every key is built once, not per delivery: the facade's macros build a key with a label
//! vector (an allocation) on every call, recorder or not, which would cost more than the rest of
//! the bookkeeping together. The recorder is still looked up on every call, so a recorder
//! installed after the first delivery sees every later one.

/// Every delivery the port answered, by outcome: `accepted`, `duplicate`, `in_flight`,
/// `processed` or `handler_failed` (inline router), or a refusal's code.
pub const DELIVERIES_TOTAL: &str = "agentsync_webhooks_deliveries_total";
/// How long the handler took to answer an accepted delivery, by `event_type` and `result`
/// (`ok` for a 2xx, `error` otherwise).
pub const HANDLER_DURATION_SECONDS: &str = "agentsync_webhooks_handler_duration_seconds";
/// Handlers that answered past the budget of the sender's 5 s, by `event_type`.
pub const LATE_ANSWERS_TOTAL: &str = "agentsync_webhooks_late_answers_total";
/// How late events arrive: received minus occurred (the envelope's `timestamp`), in seconds,
/// by `event_type`; recorded once per accepted delivery. Events without a `timestamp` are not
/// counted (their stand-in, the attempt's `webhook-timestamp`, measures nothing).
pub const EVENT_DELAY_SECONDS: &str = "agentsync_webhooks_event_delay_seconds";
/// Stale events (older than the newest processed event of their ordering key) recorded
/// without running their handler, by `event_type`; counted inline and by the workers.
pub const STALE_EVENTS_TOTAL: &str = "agentsync_webhooks_stale_events_total";

/// Records one accepted event's delay, in seconds (negative delays count as zero).
#[cfg(feature = "receive")]
pub(crate) fn event_delay(event_type: Option<crate::EventType>, delay_ms: i64) {
    #[cfg(feature = "metrics")]
    {
        #[allow(clippy::cast_precision_loss)]
        let seconds = delay_ms.max(0) as f64 / 1000.0;
        keys::histogram(&keys::per_type().delay[keys::index(event_type)]).record(seconds);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (event_type, delay_ms);
}

/// Counts one stale event skipped.
pub fn stale(event_type: Option<crate::EventType>) {
    #[cfg(feature = "metrics")]
    keys::counter(&keys::per_type().stale[keys::index(event_type)]).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = event_type;
}

/// Counts one delivery with `outcome`.
#[cfg(feature = "receive")]
pub(crate) fn delivery(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    keys::counter(&keys::outcome(outcome)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// Counts one delivery handed to its handler, and records the handler's answer: `accepted` and
/// [`handler`] through one lookup of the recorder.
pub(crate) fn answered(
    event_type: Option<crate::EventType>,
    ok: bool,
    elapsed: std::time::Duration,
) {
    #[cfg(feature = "metrics")]
    {
        let duration = &keys::per_type().handler[keys::index(event_type)][usize::from(!ok)];
        metrics::with_recorder(|recorder| {
            recorder
                .register_counter(&keys::ACCEPTED, &keys::METADATA)
                .increment(1);
            recorder
                .register_histogram(duration, &keys::METADATA)
                .record(elapsed.as_secs_f64());
        });
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (event_type, ok, elapsed);
}

/// Records a handler's answer for an event of type `event_type` (`None`: not documented).
#[cfg(feature = "receive")]
pub(crate) fn handler(
    event_type: Option<crate::EventType>,
    ok: bool,
    elapsed: std::time::Duration,
) {
    #[cfg(feature = "metrics")]
    keys::histogram(&keys::per_type().handler[keys::index(event_type)][usize::from(!ok)])
        .record(elapsed.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (event_type, ok, elapsed);
}

/// Counts one late answer.
pub(crate) fn late_answer(event_type: Option<crate::EventType>) {
    #[cfg(feature = "metrics")]
    keys::counter(&keys::per_type().late[keys::index(event_type)]).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = event_type;
}

/// The label value of an event type: its name, or `unknown` for an undocumented one.
pub(crate) fn event_type_label(event_type: Option<crate::EventType>) -> &'static str {
    event_type.map_or("unknown", crate::EventType::as_str)
}

#[cfg(feature = "metrics")]
mod keys {
    #[cfg(feature = "receive")]
    use std::borrow::Cow;
    use std::sync::OnceLock;

    #[cfg(feature = "receive")]
    use metrics::Histogram;
    use metrics::{Counter, Key, Label, Level, Metadata};

    #[cfg(feature = "receive")]
    use super::DELIVERIES_TOTAL;
    use super::{
        EVENT_DELAY_SECONDS, HANDLER_DURATION_SECONDS, LATE_ANSWERS_TOTAL, STALE_EVENTS_TOTAL,
    };
    use crate::EventType;

    static ACCEPTED_LABELS: [Label; 1] = [Label::from_static_parts("outcome", "accepted")];
    /// `deliveries_total{outcome="accepted"}`, counted by [`answered`](super::answered).
    pub(super) static ACCEPTED: Key =
        Key::from_static_parts(super::DELIVERIES_TOTAL, &ACCEPTED_LABELS);

    pub(super) static METADATA: Metadata<'static> =
        Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

    pub(super) fn counter(key: &Key) -> Counter {
        metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA))
    }

    #[cfg(feature = "receive")]
    pub(super) fn histogram(key: &Key) -> Histogram {
        metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA))
    }

    /// The key of `outcome`: a static one for every outcome the port knows, built on the spot
    /// for any other (a code added without a line here still counts).
    #[cfg(feature = "receive")]
    pub(super) fn outcome(outcome: &'static str) -> Cow<'static, Key> {
        macro_rules! known {
            ($($known:literal),+ $(,)?) => {
                match outcome {
                    $($known => {
                        static LABELS: [Label; 1] = [Label::from_static_parts("outcome", $known)];
                        static KEY: Key = Key::from_static_parts(DELIVERIES_TOTAL, &LABELS);
                        Cow::Borrowed(&KEY)
                    })+
                    other => Cow::Owned(Key::from_parts(
                        DELIVERIES_TOTAL,
                        vec![Label::from_static_parts("outcome", other)],
                    )),
                }
            };
        }
        // `accepted` is counted by `answered`, with `ACCEPTED`.
        known!(
            "duplicate",
            "in_flight",
            "processed",
            "handler_failed",
            "missing_header",
            "invalid_header",
            "invalid_timestamp",
            "timestamp_too_old",
            "timestamp_too_new",
            "signature_mismatch",
            "payload_too_large",
            "body_read_timeout",
            "body_read_failed",
            "invalid_payload",
            "invalid_event_data",
            "store_unavailable",
        )
    }

    /// The keys that carry an `event_type` label, one per documented type plus `unknown`.
    pub(super) struct PerType {
        /// `[ok, error]` per type.
        pub(super) handler: Vec<[Key; 2]>,
        pub(super) late: Vec<Key>,
        #[cfg_attr(not(feature = "receive"), allow(dead_code))]
        pub(super) delay: Vec<Key>,
        pub(super) stale: Vec<Key>,
    }

    /// Where `event_type`'s keys are in [`PerType`]: its place in [`EventType::ALL`] (which
    /// lists the variants in declaration order, so the discriminant is that place), and the
    /// last place for an undocumented type.
    pub(super) fn index(event_type: Option<EventType>) -> usize {
        event_type.map_or(EventType::ALL.len(), |t| t as usize)
    }

    pub(super) fn per_type() -> &'static PerType {
        static KEYS: OnceLock<PerType> = OnceLock::new();
        KEYS.get_or_init(|| {
            let labels = || EventType::ALL.iter().map(|t| t.as_str()).chain(["unknown"]);
            let key = |name: &'static str, labels: Vec<Label>| Key::from_parts(name, labels);
            PerType {
                handler: labels()
                    .map(|t| {
                        ["ok", "error"].map(|result| {
                            key(
                                HANDLER_DURATION_SECONDS,
                                vec![
                                    Label::from_static_parts("event_type", t),
                                    Label::from_static_parts("result", result),
                                ],
                            )
                        })
                    })
                    .collect(),
                late: labels()
                    .map(|t| {
                        key(
                            LATE_ANSWERS_TOTAL,
                            vec![Label::from_static_parts("event_type", t)],
                        )
                    })
                    .collect(),
                delay: labels()
                    .map(|t| {
                        key(
                            EVENT_DELAY_SECONDS,
                            vec![Label::from_static_parts("event_type", t)],
                        )
                    })
                    .collect(),
                stale: labels()
                    .map(|t| {
                        key(
                            STALE_EVENTS_TOTAL,
                            vec![Label::from_static_parts("event_type", t)],
                        )
                    })
                    .collect(),
            }
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_event_type_has_its_own_keys_and_unknown_shares_one() {
            let keys = per_type();
            for (i, t) in EventType::ALL.iter().enumerate() {
                assert_eq!(index(Some(*t)), i);
                let ok = &keys.handler[i][0];
                assert_eq!(ok.name(), HANDLER_DURATION_SECONDS);
                let labels: Vec<_> = ok.labels().map(|l| (l.key(), l.value())).collect();
                assert_eq!(labels, [("event_type", t.as_str()), ("result", "ok")]);
                let error = &keys.handler[i][1];
                assert_eq!(error.labels().nth(1).map(|l| l.value()), Some("error"));
                let late = &keys.late[i];
                assert_eq!(late.labels().next().map(|l| l.value()), Some(t.as_str()));
            }
            let unknown = index(None);
            assert_eq!(keys.handler.len(), unknown + 1);
            assert_eq!(
                keys.late[unknown].labels().next().map(|l| l.value()),
                Some("unknown")
            );
        }

        #[test]
        fn outcomes_known_or_not_carry_their_label() {
            for outcome in ["accepted", "signature_mismatch", "a_code_added_later"] {
                let key = super::outcome(outcome);
                assert_eq!(key.name(), DELIVERIES_TOTAL);
                let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
                assert_eq!(labels, [("outcome", outcome)]);
            }
        }
    }
}
