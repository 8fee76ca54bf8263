//! The filters: the core's receive port on warp's headers and body stream.

use std::sync::Arc;

use warp::{Filter, Rejection, http::HeaderMap};

use crate::{EventData, EventPayload, Receiver, Verifier, Webhook, WebhookRejection};

/// Extracts the verified delivery as a [`Webhook`](crate::Webhook) with typed [`EventData`], using the default
/// body limit and no idempotency (see [`webhook_with`](crate::webhook_with) for both).
///
/// Rejects with a [`WebhookRejection`](crate::WebhookRejection); add [`recover`](crate::recover) to answer it. See the
/// [crate documentation](crate) for the whole route.
pub fn webhook(
    verifier: Verifier,
) -> impl Filter<Extract = (Webhook,), Error = Rejection> + Clone + Send + Sync + 'static {
    webhook_with(Receiver::new(verifier))
}

/// Like [`webhook`](crate::webhook), with a configured [`Receiver`]: its body limit and, with
/// [`Receiver::with_idempotency`], one processing per `webhook-id` (a duplicate of a handled
/// delivery is answered 200 without running the handler, one still in progress 409; see
/// [Idempotency](crate#idempotency)).
///
/// ```
/// use agentsync_webhooks_warp::{MemoryStore, Receiver, Verifier};
///
/// let receiver = Receiver::new(Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?)
///     .with_body_limit(64 * 1024)
///     .with_idempotency(MemoryStore::new());
/// let filter = agentsync_webhooks_warp::webhook_with(receiver);
/// # let _ = filter;
/// # Ok::<(), agentsync_webhooks_core::SecretError>(())
/// ```
pub fn webhook_with(
    receiver: Receiver,
) -> impl Filter<Extract = (Webhook,), Error = Rejection> + Clone + Send + Sync + 'static {
    webhook_as::<EventData>(receiver)
}

/// Like [`webhook_with`](crate::webhook_with), with `data` parsed as your own type `D` whatever the event type: any
/// `serde::de::DeserializeOwned` type, or `serde_json::Value` for no typing at all.
///
/// A body whose `data` does not fit `D` is refused with 400 (`invalid_event_data`) before the
/// handler runs. To keep [`EventData`] and parse some events further, use
/// [`Delivery::reparse`](crate::Delivery::reparse) in the handler instead.
///
/// ```
/// use agentsync_webhooks_core::{Delivery, Receiver, Verifier};
/// use agentsync_webhooks_warp::{Webhook, webhook_as};
/// use warp::{Filter, http::StatusCode};
///
/// #[derive(serde::Deserialize)]
/// #[serde(rename_all = "camelCase")]
/// struct RunDate {
///     run_date: String,
/// }
///
/// let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
/// let route = warp::path!("webhooks" / "psapi")
///     .and(webhook_as::<RunDate>(Receiver::new(verifier)))
///     .then(|hook: Webhook<RunDate>| {
///         hook.run(|delivery: Delivery<RunDate>| async move {
///             println!("run date {}", delivery.event.data.run_date);
///             StatusCode::OK
///         })
///     });
/// # let _ = route;
/// # Ok::<(), agentsync_webhooks_core::SecretError>(())
/// ```
pub fn webhook_as<D>(
    receiver: Receiver,
) -> impl Filter<Extract = (Webhook<D>,), Error = Rejection> + Clone + Send + Sync + 'static
where
    D: EventPayload + Send + 'static,
{
    let receiver = Arc::new(receiver);
    warp::header::headers_cloned()
        .and(warp::body::stream())
        .and_then(move |headers: HeaderMap, body| {
            let receiver = Arc::clone(&receiver);
            async move {
                match receiver.receive::<D, _, _>(&headers, None, body).await {
                    Ok(accepted) => Ok(Webhook::from(accepted)),
                    Err(rejection) => Err(warp::reject::custom(WebhookRejection(rejection))),
                }
            }
        })
}
