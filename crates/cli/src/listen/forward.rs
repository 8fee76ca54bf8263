//! `--forward-to`: a verified delivery goes on to the local app with the exact body and the
//! signing and content-type headers as received; the sender gets the app's answer.

use std::error::Error as _;

use axum::{
    body::Bytes,
    http::{HeaderMap, StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
};

use crate::{failure::Failure, http_client, send::ATTEMPT_TIMEOUT};

/// The largest answer of the app passed back to the sender.
const APP_BODY_LIMIT: usize = 1024 * 1024;

/// Forwards to one URL.
pub struct Forwarder {
    client: reqwest::Client,
    url: reqwest::Url,
}

/// Why a delivery could not be forwarded: answered 502 (app unreachable) or 504 (too slow).
#[derive(Debug)]
pub struct ForwardFailure {
    status: StatusCode,
    /// One sentence, for the line and the error body.
    pub message: String,
}

impl IntoResponse for ForwardFailure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": "forward_failed", "message": self.message});
        (
            self.status,
            [(CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

impl Forwarder {
    /// A forwarder to `url` (already checked to be `http://`).
    pub fn new(url: reqwest::Url) -> Result<Self, Failure> {
        Ok(Self {
            client: http_client::build(ATTEMPT_TIMEOUT, 8)?,
            url,
        })
    }

    /// The app's URL.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// POSTs `body` with the `webhook-*`, `svix-*` and `content-type` headers of `received`,
    /// and turns the app's answer into the sender's.
    pub async fn forward(
        &self,
        received: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ForwardFailure> {
        let mut headers = HeaderMap::new();
        for (name, value) in received {
            let name_text = name.as_str();
            if name_text.starts_with("webhook-")
                || name_text.starts_with("svix-")
                || name == CONTENT_TYPE
            {
                headers.append(name.clone(), value.clone());
            }
        }
        let request = self
            .client
            .post(self.url.clone())
            .headers(headers)
            .body(body);
        let mut answer = request.send().await.map_err(|e| self.failure(&e))?;
        let status = answer.status();
        let content_type = answer.headers_mut().remove(CONTENT_TYPE);
        let mut received = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(|e| self.failure(&e))? {
            if received.len() + chunk.len() > APP_BODY_LIMIT {
                break; // the sender shows an excerpt at most
            }
            received.extend_from_slice(&chunk);
        }
        let mut response = (status, received).into_response();
        match content_type {
            Some(value) => {
                response.headers_mut().insert(CONTENT_TYPE, value);
            }
            None => {
                response.headers_mut().remove(CONTENT_TYPE);
            }
        }
        Ok(response)
    }

    fn failure(&self, error: &reqwest::Error) -> ForwardFailure {
        if error.is_timeout() {
            return ForwardFailure {
                status: StatusCode::GATEWAY_TIMEOUT,
                message: format!(
                    "the app at {} did not answer within {} s (the sender gives up then too)",
                    self.url,
                    ATTEMPT_TIMEOUT.as_secs()
                ),
            };
        }
        let mut cause = error.to_string();
        let mut source = error.source();
        while let Some(inner) = source {
            cause = inner.to_string();
            source = inner.source();
        }
        ForwardFailure {
            status: StatusCode::BAD_GATEWAY,
            message: format!("cannot reach the app at {}: {cause}", self.url),
        }
    }
}
