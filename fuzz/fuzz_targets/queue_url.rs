//! The queue URL a service reads from its configuration (`AGENTSYNC_QUEUE_URL`):
//! arbitrary bytes, as text, through `QueueUrl::parse`.
//!
//! Checks: it never panics; it agrees with a from-scratch model of the table in its docs (trim,
//! scheme up to the first `:` without case, `sqlite:` then an optional `//` then a non-empty
//! path, the Redis and PostgreSQL schemes keep the trimmed URL as it is); what it accepts parses
//! again to the same (`sqlite://` + the path, the Redis or PostgreSQL URL itself), and surrounding
//! whitespace changes nothing; `Debug` of a Redis or PostgreSQL URL is its scheme alone; an
//! error is the same error as for a canonical input of its kind, so it quotes nothing of the
//! input, and changing the password of a `scheme://user:password@...` input changes nothing
//! but the URL kept.
#![no_main]

use std::path::Path;

use agentsync_webhooks_queue::{QueueUrl, StoreErrorKind};
use libfuzzer_sys::fuzz_target;

/// The file an empty URL names (`sqlite::DEFAULT_FILE`).
const DEFAULT_FILE: &str = "agentsync-webhooks-queue.sqlite3";

/// What the model expects.
#[derive(Debug, PartialEq)]
enum Expected {
    Sqlite(String),
    Redis,
    Postgres,
    /// `sqlite:` without a path.
    NoPath,
    Unknown,
}

fn model(url: &str) -> Expected {
    let url = url.trim_matches(char::is_whitespace);
    if url.is_empty() {
        return Expected::Sqlite(DEFAULT_FILE.to_owned());
    }
    let Some(colon) = url.find(':') else {
        return Expected::Unknown;
    };
    let scheme = &url[..colon];
    let rest = &url[colon + 1..];
    let is = |name: &str| scheme.eq_ignore_ascii_case(name);
    if is("sqlite") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            Expected::NoPath
        } else {
            Expected::Sqlite(path.to_owned())
        }
    } else if ["redis", "rediss", "redis+unix", "unix"]
        .into_iter()
        .any(is)
    {
        Expected::Redis
    } else if is("postgres") || is("postgresql") {
        Expected::Postgres
    } else {
        Expected::Unknown
    }
}

/// The result as something comparable: the value, or the error's kind and full `Debug`.
fn outcome(url: &str) -> Result<QueueUrl, (StoreErrorKind, String)> {
    QueueUrl::parse(url).map_err(|error| (error.kind(), format!("{error:?} / {error}")))
}

/// The password of a `scheme://user:password@host...` URL: after the first `:` of the part
/// between `://` and the last `@`.
fn password_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let at = start + url[start..].rfind('@')?;
    let colon = start + url[start..at].find(':')? + 1;
    (colon < at).then_some((colon, at))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = outcome(&text);
    let trimmed = text.trim();

    match (&parsed, model(&text)) {
        (Ok(QueueUrl::Sqlite(path)), Expected::Sqlite(expected)) => {
            assert!(!path.as_os_str().is_empty());
            assert_eq!(path, Path::new(&expected));
            let again = format!("sqlite://{}", path.to_str().expect("parsed from text"));
            assert_eq!(outcome(&again).ok(), Some(QueueUrl::Sqlite(path.clone())));
        }
        (Ok(url @ (QueueUrl::Redis(kept) | QueueUrl::Postgres(kept))), expected) => {
            assert!(
                matches!(
                    (url, expected),
                    (QueueUrl::Redis(_), Expected::Redis)
                        | (QueueUrl::Postgres(_), Expected::Postgres)
                ),
                "{text:?} parsed as {url:?}"
            );
            assert_eq!(kept, trimmed);
            assert_eq!(outcome(kept).as_ref().ok(), Some(url));
            let scheme = trimmed
                .split_once(':')
                .map(|(scheme, _)| scheme)
                .unwrap_or_default();
            let variant = if matches!(url, QueueUrl::Redis(_)) {
                "Redis"
            } else {
                "Postgres"
            };
            assert_eq!(
                format!("{url:?}"),
                format!("{variant}(\"{scheme}://<redacted>\")")
            );
        }
        (Err(error), Expected::NoPath) => assert_eq!(Err(error), outcome("sqlite:").as_ref()),
        (Err(error), Expected::Unknown) => {
            assert_eq!(error.0, StoreErrorKind::Other);
            assert_eq!(Err(error), outcome("unknown:").as_ref());
        }
        (parsed, expected) => panic!("{text:?}: parsed {parsed:?}, the model says {expected:?}"),
    }

    // Surrounding whitespace changes nothing.
    assert_eq!(outcome(&format!(" \t{text}\r\n ")), parsed);

    // Another password of the same length: the same outcome but for the URL kept.
    if let Some((from, to)) = password_span(trimmed) {
        let other: String = trimmed[from..to]
            .chars()
            .map(|c| if c == 'x' { 'y' } else { 'x' })
            .collect();
        let changed = format!("{}{other}{}", &trimmed[..from], &trimmed[to..]);
        match (&parsed, outcome(&changed)) {
            (Ok(QueueUrl::Sqlite(_)), Ok(QueueUrl::Sqlite(_))) => {}
            (Ok(QueueUrl::Redis(_)), Ok(again @ QueueUrl::Redis(_)))
            | (Ok(QueueUrl::Postgres(_)), Ok(again @ QueueUrl::Postgres(_))) => {
                assert_eq!(
                    format!("{:?}", parsed.as_ref().ok()),
                    format!("{:?}", Some(&again))
                );
            }
            (Err(error), Err(again)) => assert_eq!(error, &again),
            (parsed, again) => panic!("{text:?}: {parsed:?}, with another password {again:?}"),
        }
    }
});
