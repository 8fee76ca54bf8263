//! The middleware around everything `listen` serves: it keeps a copy of the body as the library
//! reads it, then prints (and with `--save` saves) each request with its answer.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use agentsync_webhooks_core::{DEFAULT_BODY_LIMIT, headers::id_for_log};
use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::Response,
};
use http_body_util::BodyExt as _;
use serde_json::value::RawValue;

use super::{
    App,
    receive::{Action, Handled},
    record::{Outcome, Record},
};
use crate::capture::Capture;

/// The largest error body read back from a refusal.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Prints one record per request, whatever answered it.
pub async fn observe(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let at = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let on_webhook_path = app.paths.contains(&path);
    let webhook_id = id_for_log(request.headers()).map(str::to_owned);
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let delivery = on_webhook_path && method == Method::POST;
    let (request, copy) = if delivery {
        tee(request)
    } else {
        (request, Arc::default())
    };

    let response = next.run(request).await;
    let status = response.status();
    let body = copy
        .lock()
        .map(|bytes| Bytes::copy_from_slice(&bytes))
        .unwrap_or_default();
    let mut record = Record {
        at,
        method: method.to_string(),
        path: path.clone(),
        webhook_id,
        event_type: None,
        unknown_type: false,
        status: status.as_u16(),
        outcome: Outcome::Other,
        bytes: body.len(),
        ms: 0.0,
        app_status: None,
        saved: None,
        headers: headers.clone(),
        body: body.clone(),
    };
    let response = if !on_webhook_path {
        record.outcome = Outcome::NotFound;
        response
    } else if !delivery {
        record.outcome = Outcome::MethodNotAllowed;
        response
    } else if let Some(handled) = response.extensions().get::<Handled>().cloned() {
        record.event_type = Some(handled.event_type);
        record.unknown_type = !handled.known_type;
        record.outcome = match handled.action {
            Action::Accepted => Outcome::Accepted,
            Action::Filtered => Outcome::Filtered,
            Action::FailedOnPurpose => Outcome::FailedOnPurpose,
            Action::Forwarded => {
                record.app_status = Some(status.as_u16());
                Outcome::Forwarded
            }
            Action::ForwardFailed(reason) => Outcome::ForwardFailed(reason),
        };
        response
    } else {
        // Answered by the library: a refusal, or a duplicate it acknowledged.
        record.event_type = claimed_type(&body);
        let (parts, answer) = response.into_parts();
        let answer = axum::body::to_bytes(answer, ERROR_BODY_LIMIT)
            .await
            .unwrap_or_default();
        record.outcome = library_outcome(status, &answer);
        Response::from_parts(parts, Body::from(answer))
    };
    record.ms = started.elapsed().as_secs_f64() * 1_000.0;
    if delivery && let Some(save) = &app.save {
        let capture = Capture {
            method: method.to_string(),
            path,
            headers,
            body: body.to_vec(),
        };
        record.saved = save.save(&capture, record.webhook_id.as_deref());
    }
    if app.printer.print(&record).is_err() {
        // Nobody reads the lines any more (`listen | head`): stop, after answering this one.
        app.shutdown.notify_one();
    }
    response
}

/// The request with a body that copies what is read of it (up to the body limit and one byte)
/// into the returned buffer, so that the library's limit and deadline stay in charge.
fn tee(request: Request) -> (Request, Arc<Mutex<Vec<u8>>>) {
    let copy = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&copy);
    let (parts, body) = request.into_parts();
    let body = body.map_frame(move |frame| {
        if let (Some(data), Ok(mut sink)) = (frame.data_ref(), sink.lock()) {
            let room = (DEFAULT_BODY_LIMIT + 1).saturating_sub(sink.len());
            sink.extend_from_slice(&data[..data.len().min(room)]);
        }
        frame
    });
    (Request::from_parts(parts, Body::new(body)), copy)
}

/// The `type` a body claims, if it is a JSON object with one (shown, not trusted).
fn claimed_type(body: &[u8]) -> Option<String> {
    // Members kept raw: a `data` that a `Value` cannot hold (1e400) still shows its type.
    let members: HashMap<String, Box<RawValue>> = serde_json::from_slice(body).ok()?;
    serde_json::from_str(members.get("type")?.get()).ok()
}

/// What the library's answer means: its error body, or a 200 without one (a duplicate).
fn library_outcome(status: StatusCode, body: &[u8]) -> Outcome {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(error) if error.get("error").is_some() => Outcome::Refused {
            code: error["error"].as_str().unwrap_or("error").to_owned(),
            message: error["message"].as_str().unwrap_or("").to_owned(),
        },
        _ if status == StatusCode::OK => Outcome::Duplicate,
        _ => Outcome::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_duplicates() {
        let body = br#"{"error":"signature_mismatch","message":"no signature matches"}"#;
        assert_eq!(
            library_outcome(StatusCode::UNAUTHORIZED, body),
            Outcome::Refused {
                code: "signature_mismatch".into(),
                message: "no signature matches".into()
            }
        );
        assert_eq!(library_outcome(StatusCode::OK, b""), Outcome::Duplicate);
        assert_eq!(
            library_outcome(StatusCode::INTERNAL_SERVER_ERROR, b"boom"),
            Outcome::Other
        );
        assert_eq!(
            claimed_type(br#"{"type":"contract.updated"}"#).as_deref(),
            Some("contract.updated")
        );
        assert_eq!(claimed_type(b"not json"), None);
        assert_eq!(
            claimed_type(br#"{"type":"future.thing","data":{"n":1e400}}"#).as_deref(),
            Some("future.thing")
        );
    }
}
