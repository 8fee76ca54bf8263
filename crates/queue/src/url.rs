//! [`QueueUrl`]: the queue URL a service reads from its configuration, parsed without
//! connecting to anything.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use agentsync_webhooks_core::idempotency::{StoreError, StoreErrorKind};

#[cfg(feature = "sqlite")]
use crate::sqlite::DEFAULT_FILE;
/// The same name as `crate::sqlite::DEFAULT_FILE`, for a build without the `sqlite` feature
/// (whose `from_url` then fails naming the feature).
#[cfg(not(feature = "sqlite"))]
const DEFAULT_FILE: &str = "agentsync-webhooks-queue.sqlite3";

/// The queue a URL names (the value of `AGENTSYNC_QUEUE_URL`), parsed but not opened:
/// [`Queue::from_url`](crate::Queue::from_url) is [`QueueUrl::parse`] then the engine's open.
///
/// | URL | `QueueUrl` |
/// |---|---|
/// | `""` (empty, or only whitespace) | [`Sqlite`](Self::Sqlite) of `agentsync-webhooks-queue.sqlite3` (in the working directory) |
/// | `sqlite://PATH`, `sqlite:PATH` | [`Sqlite`](Self::Sqlite) of `PATH` |
/// | `redis://...`, `rediss://...`, `redis+unix://...`, `unix://...` | [`Redis`](Self::Redis) of the URL |
/// | `redis+cluster://HOST:PORT[,HOST:PORT...]`, `rediss+cluster://...` | [`Redis`](Self::Redis) of the URL: a Redis Cluster, the hosts its seed nodes |
/// | `postgres://...`, `postgresql://...` | [`Postgres`](Self::Postgres) of the URL (several `HOST:PORT` for a primary and its standbys) |
///
/// # Settings in the URL
///
/// So that a deployment configures its queue without code, and two services share one engine
/// safely, the query string may hold the queue's own settings ([`QueueUrl::settings`]); they
/// are taken out before the URL reaches the engine's driver ([`QueueUrl::engine_url`]), and
/// every other parameter is the driver's:
///
/// | parameter | engine | setting |
/// |---|---|---|
/// | `prefix=TEXT` | Redis | `RedisOptions::prefix` (percent-encoded: `prefix=billing%3Aqueue%3A`) |
/// | `group=NAME` | Redis | `RedisOptions::group` |
/// | `partitions=N` | Redis | `RedisOptions::partitions` (1 to 256) |
/// | `persistence=required` (or `warn`, the default) | Redis | `RedisOptions::require_persistence` |
/// | `wait_replicas=N`, `wait_timeout_ms=MS` (default 500) | Redis | `RedisOptions::wait_for_replicas` |
/// | `table=NAME` | PostgreSQL | `PostgresOptions::table` |
///
/// PostgreSQL's own parameters pass through to its driver: for a primary and its standbys,
/// list every host and ask for the writable one,
/// `postgres://app:pw@db1:5432,db2:5432/app?target_session_attrs=read-write`: the driver tries
/// the hosts in turn and keeps the first that accepts writes, so after a failover a reconnect
/// finds the new primary.
///
/// Schemes are case-insensitive and the URL is trimmed of surrounding whitespace. Parsing does
/// not depend on the cargo features: a URL whose engine this build lacks parses, and
/// `from_url` then fails naming the feature.
///
/// The Redis and PostgreSQL URLs may hold a password: `Debug` shows only their scheme, and no
/// parse error quotes the URL.
///
/// ```
/// use std::path::Path;
/// use agentsync_webhooks_queue::QueueUrl;
///
/// assert_eq!(
///     QueueUrl::parse("sqlite:///var/lib/app/queue.sqlite3")?,
///     QueueUrl::Sqlite("/var/lib/app/queue.sqlite3".into())
/// );
/// assert_eq!(
///     QueueUrl::parse("")?,
///     QueueUrl::Sqlite("agentsync-webhooks-queue.sqlite3".into())
/// );
/// let redis = QueueUrl::parse(" redis://:s3cret@127.0.0.1:6379/2 ")?;
/// assert_eq!(redis, QueueUrl::Redis("redis://:s3cret@127.0.0.1:6379/2".into()));
/// assert_eq!(format!("{redis:?}"), r#"Redis("redis://<redacted>")"#);
///
/// let cluster = QueueUrl::parse("redis+cluster://a:7000,b:7000?prefix=billing%3A&partitions=3")?;
/// assert_eq!(cluster.settings().prefix.as_deref(), Some("billing:"));
/// assert_eq!(cluster.settings().partitions, Some(3));
/// assert_eq!(cluster.engine_url(), "redis+cluster://a:7000,b:7000");
///
/// let pg = QueueUrl::parse("postgres://u:pw@db1,db2/app?target_session_attrs=read-write&table=billing_queue")?;
/// assert_eq!(pg.settings().table.as_deref(), Some("billing_queue"));
/// assert_eq!(pg.engine_url(), "postgres://u:pw@db1,db2/app?target_session_attrs=read-write");
///
/// let unknown = QueueUrl::parse("mysql://root:s3cret@db/app").unwrap_err();
/// assert!(unknown.to_string().starts_with("unknown queue URL"));
/// assert!(!unknown.to_string().contains("s3cret"));
/// assert!(QueueUrl::parse("sqlite://").is_err());
/// # Ok::<(), agentsync_webhooks_queue::StoreError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum QueueUrl {
    /// A SQLite file (never an empty path).
    Sqlite(PathBuf),
    /// A Redis URL (`redis`, `rediss`, `redis+unix`, `unix`, `redis+cluster` or
    /// `rediss+cluster` scheme), trimmed, with its settings ([`engine_url`](Self::engine_url)
    /// is what the Redis client reads).
    Redis(String),
    /// A PostgreSQL URL (`postgres` or `postgresql` scheme), trimmed, with its settings
    /// ([`engine_url`](Self::engine_url) is what the PostgreSQL client reads).
    Postgres(String),
}

/// The queue's own settings a URL's query string holds (see [`QueueUrl`]); `None` (or `false`)
/// for each one not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UrlSettings {
    /// `prefix=`: the Redis key prefix.
    pub prefix: Option<String>,
    /// `group=`: the Redis consumer group.
    pub group: Option<String>,
    /// `partitions=`: the Redis partition count.
    pub partitions: Option<usize>,
    /// `persistence=required`: refuse a Redis that would not keep a 2xx.
    pub require_persistence: bool,
    /// `wait_replicas=` and `wait_timeout_ms=`: replicas each enqueue waits for, and how long.
    pub wait_replicas: Option<(u32, Duration)>,
    /// `table=`: the PostgreSQL table.
    pub table: Option<String>,
}

/// The parameters the queue takes out of a URL, per engine.
const REDIS_SETTINGS: &[&str] = &[
    "prefix",
    "group",
    "partitions",
    "persistence",
    "wait_replicas",
    "wait_timeout_ms",
];
const POSTGRES_SETTINGS: &[&str] = &["table"];

/// How long `wait_replicas` waits when `wait_timeout_ms` is not given.
const DEFAULT_WAIT_MS: u64 = 500;

impl QueueUrl {
    /// Parses `url` (see the table on [`QueueUrl`]). Fails, with
    /// [`StoreErrorKind::Other`] and a message that does not quote `url`, on an unknown scheme
    /// and on a `sqlite:` URL without a path.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            None if url.is_empty() => Ok(Self::Sqlite(PathBuf::from(DEFAULT_FILE))),
            Some("sqlite") => {
                // "sqlite:" is ASCII, matched case-insensitively: a char boundary.
                let rest = url.get("sqlite:".len()..).unwrap_or_default();
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() {
                    return Err(StoreError::new(
                        StoreErrorKind::Other,
                        "a sqlite: queue URL needs a file path (sqlite://PATH)",
                    ));
                }
                Ok(Self::Sqlite(PathBuf::from(path)))
            }
            Some(
                "redis" | "rediss" | "redis+unix" | "unix" | "redis+cluster" | "rediss+cluster",
            ) => {
                let parsed = Self::Redis(url.to_owned());
                parsed.read_settings()?;
                Ok(parsed)
            }
            Some("postgres" | "postgresql") => {
                let parsed = Self::Postgres(url.to_owned());
                parsed.read_settings()?;
                Ok(parsed)
            }
            _ => Err(StoreError::new(
                StoreErrorKind::Other,
                "unknown queue URL: expected empty (a SQLite file in the working directory), \
                 sqlite://PATH, redis://..., redis+cluster://... or postgres://...",
            )),
        }
    }

    /// The queue's settings from the URL's query string (checked by [`parse`](Self::parse)).
    pub fn settings(&self) -> UrlSettings {
        self.read_settings().unwrap_or_default()
    }

    /// The URL for the engine's driver: the settings of [`settings`](Self::settings) taken
    /// out of the query string, every other parameter kept in its order. A SQLite file's URL
    /// is its path.
    pub fn engine_url(&self) -> String {
        match self {
            Self::Sqlite(path) => path.to_string_lossy().into_owned(),
            Self::Redis(url) => without(url, REDIS_SETTINGS),
            Self::Postgres(url) => without(url, POSTGRES_SETTINGS),
        }
    }

    /// Whether the URL names a Redis Cluster (`redis+cluster://`, `rediss+cluster://`).
    pub fn is_redis_cluster(&self) -> bool {
        match self {
            Self::Redis(url) => url
                .split_once(':')
                .is_some_and(|(scheme, _)| scheme.to_ascii_lowercase().ends_with("+cluster")),
            _ => false,
        }
    }

    fn read_settings(&self) -> Result<UrlSettings, StoreError> {
        let (url, names) = match self {
            Self::Sqlite(_) => return Ok(UrlSettings::default()),
            Self::Redis(url) => (url, REDIS_SETTINGS),
            Self::Postgres(url) => (url, POSTGRES_SETTINGS),
        };
        let mut settings = UrlSettings::default();
        let mut wait_timeout = None;
        for (name, value) in query_pairs(url) {
            if !names.contains(&name) {
                continue;
            }
            let value = percent_decode(value)
                .ok_or_else(|| bad(name, "is not valid percent-encoded UTF-8"))?;
            match name {
                "prefix" => settings.prefix = Some(non_empty(name, value)?),
                "group" => settings.group = Some(non_empty(name, value)?),
                "table" => settings.table = Some(non_empty(name, value)?),
                "partitions" => {
                    let n = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=256).contains(n))
                        .ok_or_else(|| bad(name, "takes a number from 1 to 256"))?;
                    settings.partitions = Some(n);
                }
                "persistence" => {
                    settings.require_persistence = match value.as_str() {
                        "required" => true,
                        "warn" => false,
                        _ => return Err(bad(name, "takes required or warn")),
                    }
                }
                "wait_replicas" => {
                    let n = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad(name, "takes a number of replicas, at least 1"))?;
                    settings.wait_replicas = Some((n, Duration::from_millis(DEFAULT_WAIT_MS)));
                }
                "wait_timeout_ms" => {
                    let ms = value
                        .parse::<u64>()
                        .ok()
                        .filter(|ms| (1..=60_000).contains(ms))
                        .ok_or_else(|| bad(name, "takes milliseconds, 1 to 60000"))?;
                    wait_timeout = Some(Duration::from_millis(ms));
                }
                _ => {}
            }
        }
        match (&mut settings.wait_replicas, wait_timeout) {
            (Some((_, timeout)), Some(given)) => *timeout = given,
            (None, Some(_)) => return Err(bad("wait_timeout_ms", "needs wait_replicas")),
            _ => {}
        }
        Ok(settings)
    }
}

/// The `name=value` pairs of `url`'s query string (before any `#`), raw.
fn query_pairs(url: &str) -> impl Iterator<Item = (&str, &str)> {
    let query = url
        .split_once('?')
        .map_or("", |(_, query)| query)
        .split('#')
        .next()
        .unwrap_or_default();
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// `url` without the query parameters named in `names`.
fn without(url: &str, names: &[&str]) -> String {
    let Some((base, rest)) = url.split_once('?') else {
        return url.to_owned();
    };
    let (query, fragment) = rest
        .split_once('#')
        .map_or((rest, None), |(q, f)| (q, Some(f)));
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| !names.contains(&pair.split_once('=').map_or(*pair, |(name, _)| name)))
        .collect();
    let mut out = base.to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// `%XX` and `+` decoded; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                // Two hex digits exactly: `from_str_radix` alone would take `%+a` as 0x0a.
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn non_empty(name: &str, value: String) -> Result<String, StoreError> {
    if value.is_empty() {
        Err(bad(name, "may not be empty"))
    } else {
        Ok(value)
    }
}

/// A setting's error: names the parameter, never quotes the URL or the value.
fn bad(name: &str, why: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        format!("queue URL setting {name}= {why}"),
    )
}

impl fmt::Debug for QueueUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Redis(url) => f.debug_tuple("Redis").field(&Redacted(url)).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&Redacted(url)).finish(),
        }
    }
}

/// A URL shown as its scheme only: what follows may hold a user and a password.
struct Redacted<'a>(&'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `parse` only builds these from a URL with a known, plain ASCII scheme before ':'.
        let scheme = self.0.split_once(':').map_or("", |(scheme, _)| scheme);
        write!(f, "\"{scheme}://<redacted>\"")
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_percent_escape_is_two_hex_digits_exactly() {
        assert_eq!(super::percent_decode("a%2Fb+c").as_deref(), Some("a/b c"));
        for bad in ["%+a", "%-1", "% a", "%g0", "%4", "%"] {
            assert_eq!(super::percent_decode(bad), None, "{bad}");
        }
    }

    use super::*;

    #[test]
    fn the_schemes_and_their_errors() {
        assert_eq!(
            QueueUrl::parse("  ").ok(),
            Some(QueueUrl::Sqlite(DEFAULT_FILE.into()))
        );
        assert_eq!(
            QueueUrl::parse("SQLite:q.db").ok(),
            Some(QueueUrl::Sqlite("q.db".into()))
        );
        assert_eq!(
            QueueUrl::parse("sqlite://q.db").ok(),
            Some(QueueUrl::Sqlite("q.db".into()))
        );
        assert_eq!(
            QueueUrl::parse("REDISS://h").ok(),
            Some(QueueUrl::Redis("REDISS://h".into()))
        );
        assert_eq!(
            QueueUrl::parse("redis+unix:///tmp/r.sock").ok(),
            Some(QueueUrl::Redis("redis+unix:///tmp/r.sock".into()))
        );
        assert_eq!(
            QueueUrl::parse("postgresql://u:p@h/db").ok(),
            Some(QueueUrl::Postgres("postgresql://u:p@h/db".into()))
        );
        for bad in [
            "sqlite:",
            "sqlite://",
            "nothing",
            "http://u:hunter22@h",
            ":x",
        ] {
            let error = QueueUrl::parse(bad).err();
            assert!(error.is_some(), "{bad:?} parsed");
            let error = error.map(|error| error.to_string()).unwrap_or_default();
            assert!(!error.contains("hunter22"), "{error}");
        }
    }

    #[test]
    fn settings_come_out_of_the_url() {
        let url = QueueUrl::parse(
            "redis://:hunter22@h:6379/2?prefix=%7Bbilling%7D%3Aq%3A&group=billing&partitions=3\
             &persistence=required&wait_replicas=1&wait_timeout_ms=250&protocol=resp3",
        )
        .unwrap();
        let settings = url.settings();
        assert_eq!(settings.prefix.as_deref(), Some("{billing}:q:"));
        assert_eq!(settings.group.as_deref(), Some("billing"));
        assert_eq!(settings.partitions, Some(3));
        assert!(settings.require_persistence);
        assert_eq!(
            settings.wait_replicas,
            Some((1, Duration::from_millis(250)))
        );
        // The driver's own parameters stay.
        assert_eq!(
            url.engine_url(),
            "redis://:hunter22@h:6379/2?protocol=resp3"
        );
        assert!(!url.is_redis_cluster());

        let cluster = QueueUrl::parse("REDISS+CLUSTER://a:1,b:2/?wait_replicas=2").unwrap();
        assert!(cluster.is_redis_cluster());
        assert_eq!(
            cluster.settings().wait_replicas,
            Some((2, Duration::from_millis(DEFAULT_WAIT_MS)))
        );
        assert_eq!(cluster.engine_url(), "REDISS+CLUSTER://a:1,b:2/");

        let pg = QueueUrl::parse(
            "postgresql://u:hunter22@db1:5432,db2:5432/app?target_session_attrs=read-write&table=q2",
        )
        .unwrap();
        assert_eq!(pg.settings().table.as_deref(), Some("q2"));
        assert_eq!(
            pg.engine_url(),
            "postgresql://u:hunter22@db1:5432,db2:5432/app?target_session_attrs=read-write"
        );
        // A Redis setting in a PostgreSQL URL is the driver's (which refuses it), and back.
        assert_eq!(
            QueueUrl::parse("postgres://h/db?prefix=x")
                .unwrap()
                .settings(),
            UrlSettings::default()
        );
        assert_eq!(
            QueueUrl::parse("redis://h?table=x").unwrap().engine_url(),
            "redis://h?table=x"
        );
        // No settings: the URL as it is.
        assert_eq!(
            QueueUrl::parse("redis://h:1").unwrap().engine_url(),
            "redis://h:1"
        );
    }

    #[test]
    fn a_bad_setting_is_refused_naming_it_and_nothing_else() {
        for (url, named) in [
            ("redis://:hunter22@h?partitions=0", "partitions="),
            ("redis://:hunter22@h?partitions=hunter22", "partitions="),
            ("redis://:hunter22@h?partitions=257", "partitions="),
            ("redis://:hunter22@h?persistence=hunter22", "persistence="),
            ("redis://:hunter22@h?prefix=", "prefix="),
            ("redis://:hunter22@h?prefix=%ZZ", "prefix="),
            ("redis://:hunter22@h?wait_replicas=0", "wait_replicas="),
            (
                "redis://:hunter22@h?wait_timeout_ms=100",
                "wait_timeout_ms=",
            ),
            ("postgres://u:hunter22@h/db?table=", "table="),
        ] {
            let error = QueueUrl::parse(url).err().map(|e| e.to_string());
            let error = error.unwrap_or_else(|| panic!("{url} parsed"));
            assert!(error.contains(named), "{error}");
            assert!(!error.contains("hunter22"), "{error}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        for url in ["redis://:hunter22@h", "postgres://u:hunter22@h/db"] {
            let parsed = QueueUrl::parse(url).ok();
            let shown = format!("{parsed:?}");
            assert!(!shown.contains("hunter22"), "{shown}");
        }
    }
}
