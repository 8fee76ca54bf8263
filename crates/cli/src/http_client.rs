//! The HTTP client of `send`, `replay` and `listen --forward-to`: plain `http://` only (a local
//! development tool needs no TLS stack), no redirects followed.

use std::time::Duration;

use crate::failure::Failure;

/// A client with `timeout` per request, keeping up to `idle_connections` open for reuse.
pub fn build(timeout: Duration, idle_connections: u64) -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(usize::try_from(idle_connections).unwrap_or(usize::MAX))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "agentsync-webhooks-cli/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| Failure::failed(format!("cannot set up the HTTP client: {e}")))
}

/// An `http://` URL, as a clap value parser (a bad one exits 2 with the reason).
pub fn parse_http_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("{e} (expected e.g. http://127.0.0.1:8080/webhooks/psapi)"))?;
    match url.scheme() {
        "http" if url.host().is_some() => Ok(url),
        "http" => Err("the URL has no host (expected e.g. http://127.0.0.1:3000/webhooks)".into()),
        "https" => Err(
            "this build speaks plain http only (it is a local development tool): use an \
             http:// URL"
                .to_owned(),
        ),
        other => Err(format!("unsupported scheme {other:?}, use http://")),
    }
}
