//! `listen`: a verifying receiver that prints one line per delivery.
//!
//! The receiving side is the library itself (`WebhookLayer` and the axum `Webhook` extractor),
//! so what `listen` accepts or refuses, with which status and error body, is what a service
//! using the library would. A middleware around it watches every answer and prints the line:
//! accepted deliveries from what the handler reports, refused ones from the error body the
//! library sent back.

mod args;
mod forward;
mod observe;
mod receive;
mod record;
mod save;

use std::{net::SocketAddr, sync::Arc};

use agentsync_webhooks_axum::WebhookLayer;
use agentsync_webhooks_core::{Receiver, Secret, idempotency::MemoryStore};
use axum::{Router, http::StatusCode, middleware, routing::post};
use tokio::sync::Notify;

pub use self::args::{Format, ListenArgs};
use self::{forward::Forwarder, record::Printer, save::Saver};
use crate::{
    events::EventSelection,
    failure::Failure,
    keys::{self, SECRET_ENV},
    output::out,
};

/// What every request of a `listen` run shares.
pub struct App {
    /// The paths that receive deliveries.
    paths: Vec<String>,
    /// `--events`: the types processed; the others are answered 200 as filtered.
    events: Option<EventSelection>,
    /// `--forward-to`.
    forward: Option<Forwarder>,
    /// `--fail-rate` / `--status`.
    answers: Answers,
    /// `--save`.
    save: Option<Saver>,
    /// Prints the lines.
    printer: Printer,
    /// Notified when stdout is closed: the listener stops, quietly.
    shutdown: Notify,
}

/// The status verified deliveries get, for rehearsing a sender's retries.
#[derive(Debug, Clone, Copy)]
struct Answers {
    fail_rate: Option<f64>,
    status: Option<u16>,
}

impl Answers {
    /// The status to answer instead of processing, if any: with a fail rate, that fraction of
    /// deliveries gets `status` (500 by default); without, every delivery gets `status`.
    fn pick(self) -> Option<StatusCode> {
        let code = match (self.fail_rate, self.status) {
            (Some(rate), status) => (fastrand::f64() < rate).then(|| status.unwrap_or(500))?,
            (None, Some(status)) => status,
            (None, None) => return None,
        };
        StatusCode::from_u16(code).ok()
    }
}

/// Binds, prints how to send a test event, and serves until Ctrl-C (or until stdout closes).
pub async fn run(args: ListenArgs, secret_from_env: bool) -> Result<(), Failure> {
    let (secret, generated) = match &args.secret {
        Some(secret) => (secret.clone(), false),
        None => {
            let secret = Secret::generate().map_err(Failure::failed)?;
            (secret.expose_whsec(), true)
        }
    };
    let mut receiver = Receiver::new(keys::verifier(&secret)?)
        .with_body_read_timeout(std::time::Duration::from_secs(args.body_read_timeout));
    if !args.no_idempotency {
        receiver = receiver.with_idempotency(MemoryStore::new());
    }
    let layer = WebhookLayer::from_receiver(receiver);
    if args.status == Some(410) {
        eprintln!("warning: a Standard Webhooks sender disables an endpoint that answers 410 Gone");
    }
    let save = args.save.as_deref().map(Saver::new).transpose()?;
    let forward = args.forward_to.clone().map(Forwarder::new).transpose()?;

    let listener = bind(&args.host, args.port).await?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::failed(format!("cannot read the bound address: {e}")))?;
    let base = base_url(&args.host, local);
    let urls: Vec<String> = args.path.iter().map(|p| format!("{base}{p}")).collect();

    let banner = Banner {
        to_stderr: args.format == Format::Json,
    };
    if generated {
        banner.line(format_args!(
            "No secret given (--secret or AGENTSYNC_WEBHOOK_SECRET), so this one was generated \
             for this run:\n\n    {secret}\n"
        ))?;
    }
    // The ready `send` line. Only a secret generated here is printed: a given one is an
    // endpoint's, and this output ends up in scrollback, logs and CI transcripts.
    let (secret_flag, where_from) = if generated {
        (format!("--secret {} ", secret.trim()), String::new())
    } else if secret_from_env {
        (String::new(), format!(" (with {SECRET_ENV} set there too)"))
    } else if keys::is_v1a(&secret) {
        // The signing key whose public key this is.
        ("--secret whsk_... ".to_owned(), String::new())
    } else {
        (
            format!("--secret \"${SECRET_ENV}\" "),
            format!(" (with {SECRET_ENV} set there to the secret given to --secret)"),
        )
    };
    banner.line(format_args!(
        "Send a signed test event from another terminal{where_from}:\n\n    {} --url {} \
         {secret_flag}--event producersync.updates_available\n",
        send_command(),
        urls.first().map_or("", String::as_str),
    ))?;
    if let Some(forward) = &forward {
        banner.line(format_args!(
            "Forwarding verified deliveries to {} (the sender gets its answer)",
            forward.url()
        ))?;
    }
    if let Some(save) = &save {
        banner.line(format_args!(
            "Saving every delivery in {} (send them again with `replay`)",
            save.dir().display()
        ))?;
    }
    let dedup = if args.no_idempotency {
        "every delivery processed, repeated webhook-ids too"
    } else {
        "each webhook-id processed once"
    };
    banner.line(format_args!(
        "Listening on {} ({dedup}; Ctrl-C to stop; times are UTC)",
        urls.join(" and ")
    ))?;

    let app = Arc::new(App {
        paths: args.path.clone(),
        events: args.events.clone(),
        forward,
        answers: Answers {
            fail_rate: args.fail_rate,
            status: args.status,
        },
        save,
        printer: Printer {
            format: args.format,
            color: args.color.enabled(),
            verbose: args.verbose,
        },
        shutdown: Notify::new(),
    });
    let mut router = Router::new();
    for path in &args.path {
        // The layer wraps the POST handler only: another method gets axum's 405.
        router = router.route(path, post(receive::receive).route_layer(layer.clone()));
    }
    let router = router
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(Arc::clone(&app))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            observe::observe,
        ));
    let stop = Arc::clone(&app);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = stop.shutdown.notified() => {}
            }
        })
        .await
        .map_err(|e| Failure::failed(format!("the listener stopped: {e}")))
}

/// Where the banner goes: stdout, or stderr when stdout carries JSON lines.
struct Banner {
    to_stderr: bool,
}

impl Banner {
    fn line(&self, text: std::fmt::Arguments<'_>) -> Result<(), Failure> {
        if self.to_stderr {
            eprintln!("{text}");
        } else {
            out!("{text}");
        }
        Ok(())
    }
}

/// Binds `host` (an address, or a name such as `localhost`, IPv4 first) on `port`.
async fn bind(host: &str, port: u16) -> Result<tokio::net::TcpListener, Failure> {
    let mut addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Failure::bad_input(format!("cannot resolve --host {host}: {e}")))?
        .collect();
    addresses.sort_by_key(|a| a.is_ipv6());
    addresses.dedup();
    let mut last_error = None;
    for address in &addresses {
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some((address, e)),
        }
    }
    Err(match last_error {
        Some((address, e)) => Failure::failed(format!(
            "cannot listen on {address}: {e} (is another listener running? choose another --port)"
        )),
        None => Failure::bad_input(format!("--host {host} resolves to no address")),
    })
}

/// `http://127.0.0.1:8080`, or with the host name as given (`http://localhost:8080`).
fn base_url(host: &str, local: SocketAddr) -> String {
    if host.parse::<std::net::IpAddr>().is_ok() {
        format!("http://{local}")
    } else {
        format!("http://{host}:{}", local.port())
    }
}

/// How to invoke `send` the same way this process was started.
fn send_command() -> &'static str {
    if std::env::var_os("CARGO_MANIFEST_DIR").is_some() {
        "cargo run -p agentsync-webhooks-cli -- send"
    } else {
        "agentsync-webhooks send"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_status_and_fail_rate() {
        let none = Answers {
            fail_rate: None,
            status: None,
        };
        assert_eq!(none.pick(), None);
        let always = Answers {
            fail_rate: None,
            status: Some(503),
        };
        assert_eq!(always.pick(), Some(StatusCode::SERVICE_UNAVAILABLE));
        let every = Answers {
            fail_rate: Some(1.0),
            status: None,
        };
        assert_eq!(every.pick(), Some(StatusCode::INTERNAL_SERVER_ERROR));
        let never = Answers {
            fail_rate: Some(0.0),
            status: Some(503),
        };
        assert_eq!(never.pick(), None);
    }

    #[test]
    fn urls_keep_a_host_name() {
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(base_url("127.0.0.1", local), "http://127.0.0.1:8080");
        assert_eq!(base_url("localhost", local), "http://localhost:8080");
    }
}
