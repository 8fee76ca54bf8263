//! `dlq list|show|replay`: the dead letters of a durable queue (SQLite, Redis, PostgreSQL), read
//! and replayed through `agentsync-webhooks-queue`, as a service's workers see them.
//!
//! The queue URL may hold a password: it is never printed. Messages name the SQLite file, or the
//! scheme and host of a server, and nothing more.

use std::{collections::HashSet, fmt, path::PathBuf};

use agentsync_webhooks_queue::{
    DeadLetter, Queue, StoreError, StoreErrorKind,
    redis::{RedisBackend, RedisOptions},
    sqlite::DEFAULT_FILE,
};

use clap::{Args, Subcommand, ValueEnum};

use crate::{failure::Failure, input::parse_message_id, output::out};

/// The environment variable `dlq` reads the queue URL from, as the services and examples do.
pub const QUEUE_URL_ENV: &str = "AGENTSYNC_QUEUE_URL";

/// `dlq ...`.
#[derive(Debug, Subcommand)]
#[command(
    after_help = "The queue is the one the service writes to: --queue URL, or \
                        AGENTSYNC_QUEUE_URL (sqlite://PATH, redis://..., postgres://...); unset or \
                        empty, the SQLite file agentsync-webhooks-queue.sqlite3 in the working \
                        directory. Exit status: 1 when the queue cannot be reached or an id is \
                        not a dead letter, 2 on bad input."
)]
pub enum DlqCommand {
    /// One line per dead letter, oldest first (died at, webhook-id, type, attempts, last
    /// error), then the queue's counts.
    List(DlqListArgs),
    /// Everything about one dead letter: its headers, times, last error and body.
    Show(DlqShowArgs),
    /// Move dead letters back to the queue, due at once with their attempts reset (after the
    /// handler or its data was fixed).
    Replay(DlqReplayArgs),
}

/// The queue `dlq` works on.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The queue the service uses: sqlite://PATH, redis://HOST:PORT, postgres://USER@HOST/DB.
    /// Unset or empty: the SQLite file agentsync-webhooks-queue.sqlite3 in the working
    /// directory. Only its scheme and host are ever printed.
    #[arg(long, value_name = "URL", env = QUEUE_URL_ENV, hide_env_values = true,
          value_parser = QueueUrlParser)]
    pub queue: Option<QueueUrl>,
    /// The key prefix of a Redis queue, if the service sets one (RedisOptions::prefix); default
    /// agentsync-webhooks:queue:.
    #[arg(long, value_name = "PREFIX")]
    pub redis_prefix: Option<String>,
}

/// How `dlq list` and `dlq show` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DlqFormat {
    /// Readable lines.
    Text,
    /// JSON: one object per dead letter and line (the summary goes to stderr), for `jq`.
    Json,
}

/// `dlq list`.
#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// At most this many dead letters, the oldest first.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub limit: u64,
    /// Output: readable lines, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = DlqFormat::Text)]
    pub format: DlqFormat,
}

/// `dlq show`.
#[derive(Debug, Args)]
pub struct DlqShowArgs {
    /// The webhook-id of the dead letter.
    #[arg(value_name = "ID", value_parser = parse_message_id)]
    pub id: String,
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Output: readable lines (the body pretty-printed when it is JSON), or one JSON object.
    #[arg(long, value_enum, default_value_t = DlqFormat::Text)]
    pub format: DlqFormat,
}

/// `dlq replay`.
#[derive(Debug, Args)]
pub struct DlqReplayArgs {
    /// The webhook-ids of the dead letters to replay (or --all).
    #[arg(value_name = "ID", value_parser = parse_message_id, conflicts_with = "all")]
    pub ids: Vec<String>,
    /// Replay every dead letter, oldest first.
    #[arg(long)]
    pub all: bool,
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// A last error in `dlq list` is cut to this many characters.
const LIST_ERROR_CHARS: usize = 120;
/// `dlq replay --all` reads the dead letters in batches of this many.
const REPLAY_BATCH: usize = 500;

/// What to check when a SQLite queue does not open.
const CHECK_SQLITE: &str = "that the file is a queue written by agentsync-webhooks-queue and \
                            that you may read and write it";
/// What to check when a Redis queue does not open.
const CHECK_REDIS: &str = "that Redis is running there and that the URL (password, database \
                           number) is the one the service uses";
/// What to check when a PostgreSQL queue does not open.
const CHECK_POSTGRES: &str =
    "that PostgreSQL is running there and accepts this user, password and database";

/// Which engine a queue URL names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Engine {
    Sqlite,
    Redis,
    Postgres,
}

/// A queue URL from `--queue` or `AGENTSYNC_QUEUE_URL`, checked the way `Queue::from_url` reads
/// it. Its `Debug` and [`Display`](fmt::Display) never show the password.
#[derive(Clone)]
pub struct QueueUrl {
    /// The URL as given (possibly with a password): only ever passed to the library.
    url: String,
    engine: Engine,
    /// The SQLite file, for a SQLite queue.
    sqlite_path: Option<PathBuf>,
    /// What may be shown: the SQLite file, or the scheme and host of a server.
    shown: String,
    /// The password in the URL, if any, to scrub from the library's messages.
    password: Option<String>,
}

impl QueueUrl {
    /// The queue an unset or empty `--queue` means: the SQLite file
    /// `agentsync-webhooks-queue.sqlite3` in the working directory.
    pub fn default_sqlite() -> Self {
        Self {
            url: String::new(),
            engine: Engine::Sqlite,
            sqlite_path: Some(PathBuf::from(DEFAULT_FILE)),
            shown: format!("the SQLite file {DEFAULT_FILE} in the working directory"),
            password: None,
        }
    }

    /// Parses `sqlite://PATH`, `sqlite:PATH`, `redis://...`, `rediss://...`, `postgres://...`,
    /// `postgresql://...`, or nothing (the default SQLite file), as a clap value parser: anything
    /// else exits 2 with the reason, which never quotes the URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = text.trim();
        if url.is_empty() {
            return Ok(Self::default_sqlite());
        }
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(unknown_scheme());
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() {
                    return Err("a sqlite: queue URL needs a file path (sqlite://PATH)".to_owned());
                }
                Ok(Self {
                    url: url.to_owned(),
                    engine: Engine::Sqlite,
                    sqlite_path: Some(PathBuf::from(path)),
                    shown: format!("the SQLite file {path}"),
                    password: None,
                })
            }
            "redis" | "rediss" | "redis+unix" | "unix" => Self::server(url, Engine::Redis),
            "postgres" | "postgresql" => Self::server(url, Engine::Postgres),
            _ => Err(unknown_scheme()),
        }
    }

    /// A Redis or PostgreSQL URL: it must parse, and is shown as its scheme and host.
    fn server(url: &str, engine: Engine) -> Result<Self, String> {
        // The parser's message describes the problem without quoting the URL.
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a valid queue URL: {e}"))?;
        let scheme = parsed.scheme();
        let needs_host = matches!(scheme, "redis" | "rediss");
        let shown = match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) if !host.is_empty() => format!("{scheme}://{host}:{port}"),
            (Some(host), None) if !host.is_empty() => format!("{scheme}://{host}"),
            _ if needs_host => {
                return Err(format!(
                    "a {scheme}:// queue URL needs a host, e.g. {scheme}://127.0.0.1:6379"
                ));
            }
            _ => format!("{scheme}://"),
        };
        let password = parsed
            .password()
            .filter(|password| !password.is_empty())
            .map(str::to_owned)
            // A password may also be a query parameter (redis+unix:///path?pass=...).
            .or_else(|| {
                parsed
                    .query_pairs()
                    .find(|(name, _)| name == "pass" || name == "password")
                    .map(|(_, value)| value.into_owned())
            });
        Ok(Self {
            url: url.to_owned(),
            engine,
            sqlite_path: None,
            shown,
            password,
        })
    }

    /// `text` with the URL's password (as written and percent-decoded) replaced by `***`.
    fn scrub(&self, text: &str) -> String {
        let Some(password) = &self.password else {
            return text.to_owned();
        };
        let mut scrubbed = text.replace(password.as_str(), "***");
        if let Ok(decoded) = percent_decode(password)
            && !decoded.is_empty()
        {
            scrubbed = scrubbed.replace(decoded.as_str(), "***");
        }
        scrubbed
    }
}

impl fmt::Display for QueueUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for QueueUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("QueueUrl").field(&self.shown).finish()
    }
}

/// The clap value parser of `--queue`: a bad URL exits 2 with the reason, and the message never
/// quotes the URL (clap's own would, password and all).
#[derive(Debug, Clone, Copy)]
pub struct QueueUrlParser;

impl clap::builder::TypedValueParser for QueueUrlParser {
    type Value = QueueUrl;

    fn parse_ref(
        &self,
        command: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<QueueUrl, clap::Error> {
        let parsed = match value.to_str() {
            Some(text) => QueueUrl::parse(text),
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

fn unknown_scheme() -> String {
    "unknown queue URL: expected nothing (the SQLite file agentsync-webhooks-queue.sqlite3 in the \
     working directory), sqlite://PATH, redis://HOST:PORT or postgres://USER@HOST/DB"
        .to_owned()
}

/// `%XX` sequences decoded, as a URL's user info is written.
fn percent_decode(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded)
}

/// Runs one `dlq` subcommand.
pub async fn run(command: DlqCommand) -> Result<(), Failure> {
    match command {
        DlqCommand::List(args) => list(args).await,
        DlqCommand::Show(args) => show(args).await,
        DlqCommand::Replay(args) => replay(args).await,
    }
}

/// The queue `args` name, opened; a failure says what to check.
async fn open(args: &QueueArgs) -> Result<(Queue, QueueUrl), Failure> {
    let queue_url = args.queue.clone().unwrap_or_else(QueueUrl::default_sqlite);
    if args.redis_prefix.is_some() && queue_url.engine != Engine::Redis {
        return Err(Failure::bad_input(
            "--redis-prefix is for a Redis queue (--queue redis://...)",
        ));
    }
    if let Some(path) = &queue_url.sqlite_path
        && !path.exists()
    {
        // Opening would create an empty queue there and report no dead letters.
        let working_directory = std::env::current_dir()
            .map(|dir| format!(" (the working directory is {})", dir.display()))
            .unwrap_or_default();
        return Err(Failure::failed(format!(
            "no queue at {queue_url}: the file does not exist{working_directory}. Check --queue \
             or {QUEUE_URL_ENV}: give the URL the service uses (sqlite://PATH, redis://..., \
             postgres://...)"
        )));
    }
    let opened = match &args.redis_prefix {
        Some(prefix) => {
            RedisBackend::connect_with(&queue_url.url, RedisOptions::new().prefix(prefix.as_str()))
                .await
                .map(Queue::new)
        }
        None => Queue::from_url(&queue_url.url).await,
    };
    let queue = opened.map_err(|error| {
        let check = match queue_url.engine {
            Engine::Sqlite => CHECK_SQLITE,
            Engine::Redis => CHECK_REDIS,
            Engine::Postgres => CHECK_POSTGRES,
        };
        Failure::failed(format!(
            "cannot open the queue at {queue_url}{}: {}. Check {check} (--queue or \
             {QUEUE_URL_ENV})",
            error_kind(&error),
            queue_url.scrub(&error.to_string()),
        ))
    })?;
    Ok((queue, queue_url))
}

/// A failed queue call after the queue opened: exit 1, without the password.
fn store_failure(what: &str, queue_url: &QueueUrl, error: &StoreError) -> Failure {
    Failure::failed(format!(
        "{what} in {queue_url} failed{}: {}",
        error_kind(error),
        queue_url.scrub(&error.to_string())
    ))
}

/// ` (unreachable)`, ` (timed out)`, or nothing for another failure (the message says it).
fn error_kind(error: &StoreError) -> &'static str {
    match error.kind() {
        StoreErrorKind::Unreachable => " (unreachable)",
        StoreErrorKind::Timeout => " (timed out)",
        _ => "",
    }
}

/// `dlq list`.
async fn list(args: DlqListArgs) -> Result<(), Failure> {
    let (queue, queue_url) = open(&args.queue).await?;
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let dead_letters = queue
        .dead_letters(limit)
        .await
        .map_err(|e| store_failure("reading the dead letters", &queue_url, &e))?;
    let stats = queue
        .stats()
        .await
        .map_err(|e| store_failure("reading the queue's counts", &queue_url, &e))?;
    let summary = if dead_letters.is_empty() {
        format!(
            "No dead letters in {queue_url} (queue: {} waiting or running).",
            stats.depth
        )
    } else {
        let shown = u64::try_from(dead_letters.len()).unwrap_or(u64::MAX);
        let more = if stats.dead > shown {
            format!(" (the oldest {shown} shown: --limit for more)")
        } else {
            String::new()
        };
        format!(
            "queue: {} waiting or running, {} dead{more}",
            stats.depth, stats.dead
        )
    };
    match args.format {
        DlqFormat::Json => {
            for dead in &dead_letters {
                out!("{}", list_json(dead));
            }
            // Stdout holds only the objects, for `jq`.
            eprintln!("{summary}");
        }
        DlqFormat::Text => {
            let id_width = column_width(dead_letters.iter().map(|d| &d.delivery.webhook_id));
            let type_width = column_width(dead_letters.iter().map(|d| &d.delivery.event_type));
            for dead in &dead_letters {
                out!(
                    "{}  {:id_width$}  {:type_width$}  {:>11}  {}",
                    rfc3339_ms(dead.died_at_ms),
                    one_line(&dead.delivery.webhook_id, usize::MAX),
                    one_line(&dead.delivery.event_type, usize::MAX),
                    attempts_text(dead.attempts),
                    one_line(&dead.last_error, LIST_ERROR_CHARS),
                );
            }
            out!("{summary}");
        }
    }
    Ok(())
}

/// `1 attempt`, `5 attempts`.
fn attempts_text(attempts: u32) -> String {
    match attempts {
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts"),
    }
}

/// The widest of `values` once shown on one line, in characters.
fn column_width<'a>(values: impl Iterator<Item = &'a String>) -> usize {
    values
        .map(|value| one_line(value, usize::MAX).chars().count())
        .max()
        .unwrap_or(0)
}

/// One `dlq list --format json` line.
fn list_json(dead: &DeadLetter) -> serde_json::Value {
    serde_json::json!({
        "webhook_id": dead.delivery.webhook_id,
        "type": dead.delivery.event_type,
        "attempts": dead.attempts,
        "last_error": dead.last_error,
        "died_at": rfc3339_ms(dead.died_at_ms),
        "received_at": rfc3339_ms(dead.delivery.received_at_ms),
        "webhook_timestamp": dead.delivery.webhook_timestamp,
    })
}

/// `dlq show`.
async fn show(args: DlqShowArgs) -> Result<(), Failure> {
    let (queue, queue_url) = open(&args.queue).await?;
    let dead = queue
        .dead_letter(&args.id)
        .await
        .map_err(|e| store_failure("reading the dead letter", &queue_url, &e))?
        .ok_or_else(|| {
            Failure::failed(format!(
                "{} is not in the dead letters of {queue_url} (`agentsync-webhooks dlq list` \
                 lists them)",
                args.id
            ))
        })?;
    let delivery = &dead.delivery;
    match args.format {
        DlqFormat::Json => {
            let (body, body_is_json) =
                match serde_json::from_slice::<serde_json::Value>(&delivery.body) {
                    Ok(json) => (json, true),
                    Err(_) => (
                        serde_json::Value::String(
                            String::from_utf8_lossy(&delivery.body).into_owned(),
                        ),
                        false,
                    ),
                };
            let object = serde_json::json!({
                "webhook_id": delivery.webhook_id,
                "type": delivery.event_type,
                "attempts": dead.attempts,
                "last_error": dead.last_error,
                "died_at": rfc3339_ms(dead.died_at_ms),
                "died_at_ms": dead.died_at_ms,
                "received_at": rfc3339_ms(delivery.received_at_ms),
                "received_at_ms": delivery.received_at_ms,
                "webhook_timestamp": delivery.webhook_timestamp,
                "webhook_signature": delivery.signature,
                "body_bytes": delivery.body.len(),
                "body_is_json": body_is_json,
                "body": body,
            });
            out!("{object}");
        }
        DlqFormat::Text => {
            let signed_at = chrono::DateTime::from_timestamp(delivery.webhook_timestamp, 0)
                .map(|at| {
                    format!(
                        " ({})",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )
                })
                .unwrap_or_default();
            out!(
                "webhook-id         {}",
                one_line(&delivery.webhook_id, usize::MAX)
            );
            out!(
                "type               {}",
                one_line(&delivery.event_type, usize::MAX)
            );
            out!("attempts           {}", dead.attempts);
            out!("died at            {}", rfc3339_ms(dead.died_at_ms));
            out!("received at        {}", rfc3339_ms(delivery.received_at_ms));
            out!(
                "webhook-timestamp  {}{signed_at}",
                delivery.webhook_timestamp
            );
            out!(
                "webhook-signature  {}",
                one_line(&delivery.signature, usize::MAX)
            );
            out!("last error");
            for line in printable(&dead.last_error).lines() {
                out!("  {line}");
            }
            let (kind, text) = match pretty_json(&delivery.body) {
                Some(pretty) => ("JSON", pretty),
                None => ("not JSON, shown as text", {
                    printable(&String::from_utf8_lossy(&delivery.body))
                }),
            };
            out!("body ({} bytes, {kind})", delivery.body.len());
            out!("{text}");
        }
    }
    Ok(())
}

/// `dlq replay`.
async fn replay(args: DlqReplayArgs) -> Result<(), Failure> {
    if args.ids.is_empty() && !args.all {
        return Err(Failure::bad_input(
            "dlq replay needs the webhook-ids to replay (`dlq list` shows them), or --all for \
             every dead letter",
        ));
    }
    let (queue, queue_url) = open(&args.queue).await?;
    let mut asked = 0usize;
    let mut missing = 0usize;
    if args.all {
        // Oldest first, a batch at a time; an id seen before (a replay that did not take) ends it.
        let mut seen = HashSet::new();
        loop {
            let batch = queue
                .dead_letters(REPLAY_BATCH)
                .await
                .map_err(|e| store_failure("reading the dead letters", &queue_url, &e))?;
            let fresh: Vec<String> = batch
                .into_iter()
                .map(|dead| dead.delivery.webhook_id)
                .filter(|id| seen.insert(id.clone()))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for id in fresh {
                asked += 1;
                missing += usize::from(!replay_one(&queue, &queue_url, &id).await?);
            }
        }
        if asked == 0 {
            out!("No dead letters in {queue_url}: nothing to replay.");
        }
    } else {
        let mut seen = HashSet::new();
        for id in args.ids.iter().filter(|id| seen.insert(id.as_str())) {
            asked += 1;
            missing += usize::from(!replay_one(&queue, &queue_url, id).await?);
        }
    }
    match missing {
        0 => Ok(()),
        n => Err(Failure::failed(format!(
            "{n} of {asked} ids were not in the dead letters of {queue_url} \
             (`agentsync-webhooks dlq list` lists them)"
        ))),
    }
}

/// Replays `id` and prints one line; whether it was a dead letter.
async fn replay_one(queue: &Queue, queue_url: &QueueUrl, id: &str) -> Result<bool, Failure> {
    let replayed = queue
        .replay(id)
        .await
        .map_err(|e| store_failure(&format!("replaying {id}"), queue_url, &e))?;
    let outcome = if replayed {
        "replayed"
    } else {
        "not in the dead letters"
    };
    out!("{}  {outcome}", one_line(id, usize::MAX));
    Ok(replayed)
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds.
fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms since the epoch"),
        |at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// `text` on one line: runs of whitespace (newlines too) become one space, other control
/// characters are escaped (a stored value must not drive the terminal), and past `max`
/// characters it is cut with `...`.
fn one_line(text: &str, max: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let escaped = printable(&joined);
    if escaped.chars().count() <= max {
        return escaped;
    }
    let mut cut: String = escaped.chars().take(max.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}

/// `text` with its control characters other than newline and tab escaped (`\u{1b}`).
fn printable(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// The body re-indented, two spaces a level, when it is JSON; the members keep their order and
/// the numbers and strings their exact text.
fn pretty_json(body: &[u8]) -> Option<String> {
    // Checked, not parsed into values: 1e400 or any depth is JSON, shown as stored.
    serde_json::from_slice::<Box<serde_json::value::RawValue>>(body).ok()?;
    let text = std::str::from_utf8(body).ok()?;
    let mut pretty = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |pretty: &mut String, depth: usize| {
        pretty.push('\n');
        pretty.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            pretty.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                pretty.push(c);
            }
            '{' | '[' => {
                pretty.push(c);
                while chars.peek().is_some_and(|next| next.is_ascii_whitespace()) {
                    chars.next();
                }
                if chars.peek().is_some_and(|next| matches!(next, '}' | ']')) {
                    // `{}` and `[]` stay on one line.
                    pretty.extend(chars.next());
                } else {
                    depth += 1;
                    newline(&mut pretty, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut pretty, depth);
                pretty.push(c);
            }
            ',' => {
                pretty.push(c);
                newline(&mut pretty, depth);
            }
            ':' => pretty.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => pretty.push(c),
        }
    }
    Some(pretty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_are_checked_and_shown_without_their_password() {
        let redis = QueueUrl::parse("redis://:s3cr%40t@cache.internal:6380/2").unwrap();
        assert_eq!(redis.to_string(), "redis://cache.internal:6380");
        assert!(!format!("{redis:?}").contains("s3cr"));
        assert_eq!(
            redis.scrub("auth s3cr%40t / s3cr@t failed"),
            "auth *** / *** failed"
        );
        let postgres = QueueUrl::parse("postgres://app:hunter2@db:5432/app").unwrap();
        assert_eq!(postgres.to_string(), "postgres://db:5432");
        let sqlite = QueueUrl::parse("sqlite://dir/q.sqlite3").unwrap();
        assert_eq!(sqlite.sqlite_path, Some(PathBuf::from("dir/q.sqlite3")));
        assert_eq!(
            QueueUrl::parse("  ").unwrap().sqlite_path,
            Some(PathBuf::from(DEFAULT_FILE))
        );
        for bad in [
            "mysql://x",
            "queue.sqlite3",
            "sqlite://",
            "redis://",
            "redis://:pw@a b",
        ] {
            let error = QueueUrl::parse(bad).unwrap_err();
            assert!(!error.contains("pw@"), "{bad}: {error}");
        }
    }

    #[test]
    fn stored_text_is_shown_safely() {
        assert_eq!(
            one_line("boom\n  at line 2\x1b[31m", 100),
            "boom at line 2\\u{1b}[31m"
        );
        assert_eq!(one_line("abcdefghij", 8), "abcde...");
        assert_eq!(printable("a\nb\u{7}"), "a\nb\\u{7}");
    }

    #[test]
    fn json_bodies_are_reindented_in_their_order() {
        let body = br#"{"type":"x","data":{"b":1,"a":[1.50,{}, []],"s":"a,{\"b\":[c]}"}}"#;
        assert_eq!(
            pretty_json(body).unwrap(),
            "{\n  \"type\": \"x\",\n  \"data\": {\n    \"b\": 1,\n    \"a\": [\n      1.50,\n      \
             {},\n      []\n    ],\n    \"s\": \"a,{\\\"b\\\":[c]}\"\n  }\n}"
        );
        assert_eq!(pretty_json(b"not json"), None);
        assert_eq!(pretty_json(b"42").as_deref(), Some("42"));
        // JSON that a `serde_json::Value` cannot hold is still JSON, shown as stored.
        assert_eq!(
            pretty_json(br#"{"data":{"n":1e400}}"#).as_deref(),
            Some("{\n  \"data\": {\n    \"n\": 1e400\n  }\n}")
        );
    }
}
