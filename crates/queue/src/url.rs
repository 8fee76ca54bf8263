//! [`QueueUrl`]: the queue URL a service reads from its configuration, parsed without
//! connecting to anything.

use std::fmt;
use std::path::PathBuf;

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
/// | `postgres://...`, `postgresql://...` | [`Postgres`](Self::Postgres) of the URL |
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
    /// A Redis URL (`redis`, `rediss`, `redis+unix` or `unix` scheme), trimmed, as the Redis
    /// client reads it.
    Redis(String),
    /// A PostgreSQL URL (`postgres` or `postgresql` scheme), trimmed, as the PostgreSQL client
    /// reads it.
    Postgres(String),
}

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
            Some("redis" | "rediss" | "redis+unix" | "unix") => Ok(Self::Redis(url.to_owned())),
            Some("postgres" | "postgresql") => Ok(Self::Postgres(url.to_owned())),
            _ => Err(StoreError::new(
                StoreErrorKind::Other,
                "unknown queue URL: expected empty (a SQLite file in the working directory), \
                 sqlite://PATH, redis://... or postgres://...",
            )),
        }
    }
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
    fn debug_hides_the_password() {
        for url in ["redis://:hunter22@h", "postgres://u:hunter22@h/db"] {
            let parsed = QueueUrl::parse(url).ok();
            let shown = format!("{parsed:?}");
            assert!(!shown.contains("hunter22"), "{shown}");
        }
    }
}
