//! The queue a `queue` or `dlq` command works on: its URL (from `--queue` or
//! `AGENTSYNC_QUEUE_URL`), checked the way `Queue::from_url` reads it, and opened with messages
//! that say what to check.
//!
//! The queue URL may hold a password: it is never printed. Messages name the SQLite file, or the
//! scheme and host of a server, and nothing more.

use std::{fmt, path::PathBuf};

use agentsync_webhooks_queue::{
    Queue, StoreError, StoreErrorKind,
    redis::{RedisBackend, RedisOptions},
    sqlite::DEFAULT_FILE,
};
use clap::Args;

use crate::failure::Failure;

/// The environment variable the queue URL is read from, as the services and examples do.
pub const QUEUE_URL_ENV: &str = "AGENTSYNC_QUEUE_URL";

/// The queue a command works on.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The queue the service uses: sqlite://PATH, redis://HOST:PORT,
    /// redis+cluster://HOST:PORT,HOST:PORT..., postgres://USER@HOST/DB.
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

    /// Parses `sqlite://PATH`, `sqlite:PATH`, `redis://...`, `rediss://...`,
    /// `redis+cluster://HOST:PORT,HOST:PORT...`, `rediss+cluster://...`, `postgres://...`,
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
            "redis+cluster" | "rediss+cluster" => Self::cluster(url, scheme, rest),
            "postgres" | "postgresql" => Self::server(url, Engine::Postgres),
            _ => Err(unknown_scheme()),
        }
    }

    /// A Redis Cluster URL, `redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...][/...]`
    /// (the seed nodes, comma-separated, as `Queue::from_url` reads it): every host named, shown
    /// as the scheme and the hosts.
    fn cluster(url: &str, scheme: &str, rest: &str) -> Result<Self, String> {
        let scheme = scheme.to_ascii_lowercase();
        let needs_hosts = || {
            format!(
                "a {scheme}:// queue URL needs its nodes, e.g. {scheme}://10.0.0.1:7000,10.0.0.2:7000"
            )
        };
        let rest = rest.strip_prefix("//").ok_or_else(needs_hosts)?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (user_info, hosts) = match authority.rsplit_once('@') {
            Some((user_info, hosts)) => (Some(user_info), hosts),
            None => (None, authority),
        };
        let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
        if hosts
            .iter()
            .any(|host| host.is_empty() || host.contains(char::is_whitespace))
        {
            return Err(needs_hosts());
        }
        for host in &hosts {
            // Each node must be a host with an optional port, as a redis:// URL has it.
            reqwest::Url::parse(&format!("redis://{host}"))
                .ok()
                .filter(|parsed| parsed.host_str().is_some_and(|h| !h.is_empty()))
                .ok_or_else(|| {
                    format!("not a valid {scheme}:// queue URL: a node is not HOST:PORT")
                })?;
        }
        let password = user_info
            .and_then(|user_info| user_info.split_once(':'))
            .map(|(_, password)| password.to_owned())
            .filter(|password| !password.is_empty());
        Ok(Self {
            url: url.to_owned(),
            engine: Engine::Redis,
            sqlite_path: None,
            shown: format!("{scheme}://{}", hosts.join(",")),
            password,
        })
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
     working directory), sqlite://PATH, redis://HOST:PORT, redis+cluster://HOST:PORT,HOST:PORT... \
     or postgres://USER@HOST/DB"
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

/// The queue `args` name, opened; a failure says what to check.
pub async fn open(args: &QueueArgs) -> Result<(Queue, QueueUrl), Failure> {
    let queue_url = args.queue.clone().unwrap_or_else(QueueUrl::default_sqlite);
    if args.redis_prefix.is_some() && queue_url.engine != Engine::Redis {
        return Err(Failure::bad_input(
            "--redis-prefix is for a Redis queue (--queue redis://...)",
        ));
    }
    if let Some(path) = &queue_url.sqlite_path
        && !path.exists()
    {
        // Opening would create an empty queue there and report no deliveries.
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
pub fn store_failure(what: &str, queue_url: &QueueUrl, error: &StoreError) -> Failure {
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
        let cluster =
            QueueUrl::parse("redis+cluster://:pa%24s@10.0.0.1:7000,10.0.0.2:7001/?partitions=3")
                .unwrap();
        assert_eq!(
            cluster.to_string(),
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7001"
        );
        assert!(cluster.engine == Engine::Redis);
        assert!(!format!("{cluster:?}").contains("pa%24s"));
        assert_eq!(cluster.scrub("auth pa$s failed"), "auth *** failed");
        let tls = QueueUrl::parse("rediss+cluster://a:1,b:2").unwrap();
        assert_eq!(tls.to_string(), "rediss+cluster://a:1,b:2");
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
            "redis+cluster://",
            "redis+cluster://:pw@a:1,,b:2",
            "rediss+cluster:a:1",
        ] {
            let error = QueueUrl::parse(bad).unwrap_err();
            assert!(!error.contains("pw@"), "{bad}: {error}");
        }
    }
}
