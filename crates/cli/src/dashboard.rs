//! `dashboard`: the operator's dashboard (`agentsync-webhooks-dashboard`) served against a queue
//! URL, bound to 127.0.0.1 by default, with basic auth when `AGENTSYNC_DASHBOARD_USER` and
//! `AGENTSYNC_DASHBOARD_PASSWORD` are set. The same pages a service mounts in its own app.
//!
//! The queue URL may hold a password: it is never printed, and the pages name only the engine.

use std::{net::SocketAddr, path::Path, time::Duration};

use agentsync_webhooks_dashboard::{Dashboard, engine_name, serve};
use agentsync_webhooks_queue::{Queue, QueueUrl, StoreError};
use clap::Args;

use crate::failure::Failure;

/// The environment variable the queue URL is read from, as the services and examples do.
const QUEUE_URL_ENV: &str = "AGENTSYNC_QUEUE_URL";
/// The basic-auth user, when set (with the password).
pub const USER_ENV: &str = "AGENTSYNC_DASHBOARD_USER";
/// The basic-auth password, when set (with the user).
pub const PASSWORD_ENV: &str = "AGENTSYNC_DASHBOARD_PASSWORD";

/// `dashboard`.
#[derive(Debug, Args)]
#[command(
    after_help = "Basic auth: set AGENTSYNC_DASHBOARD_USER and AGENTSYNC_DASHBOARD_PASSWORD (both) \
                  to ask every request for them. Bound to 127.0.0.1 unless --bind says otherwise; \
                  bind elsewhere only behind basic auth and HTTPS (a reverse proxy). Exit status: \
                  1 when the queue cannot be opened or the address bound, 2 on bad input."
)]
pub struct DashboardArgs {
    /// The queue the service uses: sqlite://PATH, redis://HOST:PORT, postgres://USER@HOST/DB.
    /// Unset or empty: the SQLite file agentsync-webhooks-queue.sqlite3 in the working
    /// directory. Never printed.
    #[arg(long, value_name = "URL", env = QUEUE_URL_ENV, hide_env_values = true,
          value_parser = QueueUrlParser)]
    pub queue: Option<QueueUrl>,
    /// Where to listen (port 0: any free port, printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub bind: SocketAddr,
    /// Show the record only: no replay, discard or forget (every POST is answered 403).
    #[arg(long)]
    pub read_only: bool,
    /// Seconds between the pages' own refreshes (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub refresh: u64,
}

/// Serves the dashboard until Ctrl-C.
pub async fn run(args: DashboardArgs) -> Result<(), Failure> {
    let url = args
        .queue
        .clone()
        .map_or_else(|| QueueUrl::parse(""), Ok)
        .map_err(|error| Failure::bad_input(format!("bad --queue: {error}")))?;
    let auth = basic_auth()?;
    let (queue, shown) = open(&url).await?;
    let mut dashboard = Dashboard::new(queue)
        .engine(engine_name(&url))
        .read_only(args.read_only)
        .refresh_every(Duration::from_secs(args.refresh));
    if let Some((user, password)) = &auth {
        dashboard = dashboard.basic_auth(user.as_str(), password.as_str());
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| Failure::failed(format!("cannot listen on {}: {e}", args.bind)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::failed(format!("cannot listen on {}: {e}", args.bind)))?;
    println!(
        "dashboard of {shown} on http://{addr}/{}{}",
        if args.read_only { " (read-only)" } else { "" },
        if auth.is_some() { " (basic auth)" } else { "" }
    );
    if !addr.ip().is_loopback() && auth.is_none() {
        eprintln!(
            "warning: listening on {addr} without basic auth: anyone who reaches it can read \
             payloads{}. Set {USER_ENV} and {PASSWORD_ENV}, and serve it over HTTPS",
            if args.read_only {
                ""
            } else {
                " and replay or discard deliveries"
            }
        );
    }
    println!("Ctrl-C to stop");
    serve(listener, dashboard, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| Failure::failed(format!("the dashboard stopped: {e}")))
}

/// The credentials from the environment: both set, or neither.
fn basic_auth() -> Result<Option<(String, String)>, Failure> {
    let read = |name| {
        std::env::var(name)
            .ok()
            .filter(|value: &String| !value.is_empty())
    };
    match (read(USER_ENV), read(PASSWORD_ENV)) {
        (Some(user), Some(password)) if !user.contains(':') => Ok(Some((user, password))),
        (Some(_), Some(_)) => Err(Failure::bad_input(format!(
            "{USER_ENV} cannot hold a ':' (basic auth separates the user from the password with it)"
        ))),
        (None, None) => Ok(None),
        _ => Err(Failure::bad_input(format!(
            "set both {USER_ENV} and {PASSWORD_ENV} for basic auth, or neither"
        ))),
    }
}

/// The queue, opened; what may be said of it (the SQLite file, or the engine).
async fn open(url: &QueueUrl) -> Result<(Queue, String), Failure> {
    let (opened, shown) = match url {
        QueueUrl::Sqlite(path) => {
            let shown = format!("the SQLite file {}", path.display());
            if !Path::new(path).exists() {
                // Opening would create an empty queue there and show nothing.
                let working_directory = std::env::current_dir()
                    .map(|dir| format!(" (the working directory is {})", dir.display()))
                    .unwrap_or_default();
                return Err(Failure::failed(format!(
                    "no queue at {shown}: the file does not exist{working_directory}. Check \
                     --queue or {QUEUE_URL_ENV}: give the URL the service uses"
                )));
            }
            (Queue::sqlite(path).await, shown)
        }
        QueueUrl::Redis(text) => (Queue::from_url(text).await, "a Redis queue".to_owned()),
        QueueUrl::Postgres(text) => (Queue::from_url(text).await, "a PostgreSQL queue".to_owned()),
    };
    let queue = opened.map_err(|error| open_failure(url, &shown, &error))?;
    Ok((queue, shown))
}

/// The failure to open, without the URL's password.
fn open_failure(url: &QueueUrl, shown: &str, error: &StoreError) -> Failure {
    let mut message = error.to_string();
    if let QueueUrl::Redis(text) | QueueUrl::Postgres(text) = url
        && let Ok(parsed) = reqwest::Url::parse(text)
        && let Some(password) = parsed.password().filter(|p| !p.is_empty())
    {
        message = message.replace(password, "***");
    }
    Failure::failed(format!(
        "cannot open {shown} ({:?}): {message}. Check --queue or {QUEUE_URL_ENV}",
        error.kind()
    ))
}

/// The clap value parser of `--queue`: a bad URL exits 2 with the reason, never quoting the
/// URL (clap's own message would, password and all).
#[derive(Debug, Clone, Copy)]
struct QueueUrlParser;

impl clap::builder::TypedValueParser for QueueUrlParser {
    type Value = QueueUrl;

    fn parse_ref(
        &self,
        command: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<QueueUrl, clap::Error> {
        let parsed = match value.to_str() {
            Some(text) => QueueUrl::parse(text).map_err(|error| error.to_string()),
            None => Err("the queue URL is not valid UTF-8".to_owned()),
        };
        parsed.map_err(|reason| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("bad --queue (or {QUEUE_URL_ENV}): {reason}\n"),
            )
            .with_cmd(command)
        })
    }
}
