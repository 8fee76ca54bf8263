//! The handler behind the library's layer: only verified, new deliveries get here. It filters
//! (`--events`), fails on purpose (`--fail-rate`, `--status`) or forwards (`--forward-to`), and
//! tells the printer what it did.

use std::sync::Arc;

use agentsync_webhooks_axum::Webhook;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse as _, Response},
};

use super::App;

/// What the handler did with a verified delivery (a response extension, for the printer).
#[derive(Debug, Clone)]
pub struct Handled {
    /// The delivery's `type`.
    pub event_type: String,
    /// Whether the type is one of the documented ones.
    pub known_type: bool,
    /// What happened to it.
    pub action: Action,
}

/// What happened to a verified delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Processed (printed), answered with the status of the response.
    Accepted,
    /// Not among `--events`: answered 200 without processing.
    Filtered,
    /// Answered the `--fail-rate` / `--status` error.
    FailedOnPurpose,
    /// Forwarded; the sender gets the app's answer.
    Forwarded,
    /// Could not be forwarded (the app is down or too slow): 502 or 504.
    ForwardFailed(String),
}

/// Runs for each verified delivery.
pub async fn receive(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    webhook: Webhook,
) -> Response {
    let event_type = webhook.event_type.clone();
    let known_type = webhook.known_type().is_some();
    let handled = |action| Handled {
        event_type: event_type.clone(),
        known_type,
        action,
    };
    if let Some(events) = &app.events
        && !events.matches(&event_type)
    {
        return with(StatusCode::OK.into_response(), handled(Action::Filtered));
    }
    if let Some(status) = app.answers.pick() {
        let action = if status.is_success() {
            Action::Accepted
        } else {
            Action::FailedOnPurpose
        };
        return with(status.into_response(), handled(action));
    }
    if let Some(forward) = &app.forward {
        let body = webhook.into_delivery().raw_body;
        return match forward.forward(&headers, body).await {
            Ok(response) => with(response, handled(Action::Forwarded)),
            Err(failure) => {
                let action = Action::ForwardFailed(failure.message.clone());
                with(failure.into_response(), handled(action))
            }
        };
    }
    with(StatusCode::OK.into_response(), handled(Action::Accepted))
}

fn with(mut response: Response, handled: Handled) -> Response {
    response.extensions_mut().insert(handled);
    response
}
