//! How values are written on the pages: times, durations, shortened signatures, pretty JSON,
//! error texts without a URL's password. Everything here returns plain text; the templates
//! escape it.

use std::fmt::Write as _;

/// Milliseconds in an hour.
pub(crate) const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in a day.
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;

/// `ms` since the epoch as `2026-12-06 20:57:13Z` (UTC, to the second).
pub(crate) fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// A `datetime-local` value (`2026-12-06T20:57`, seconds optional), read as UTC, or a whole
/// number of milliseconds since the epoch; `None` for anything else.
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = text.split_once(['T', ' '])?;
    let mut date = date.splitn(3, '-');
    let year: i64 = date.next()?.parse().ok()?;
    let month: u32 = date.next()?.parse().ok()?;
    let day: u32 = date.next()?.parse().ok()?;
    let mut time = time.splitn(3, ':');
    let hour: i64 = time.next()?.parse().ok()?;
    let minute: i64 = time.next()?.parse().ok()?;
    let second: f64 = time.next().map_or(Some(0.0), |s| s.parse().ok())?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0.0..60.0).contains(&second)
        || !(1..=9999).contains(&year)
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // `second` is in [0, 60): its milliseconds fit.
    #[allow(clippy::cast_possible_truncation)]
    let second_ms = (second * 1000.0) as i64;
    Some(((days * 86_400 + hour * 3600 + minute * 60) * 1000) + second_ms)
}

/// A span of milliseconds as `850 ms`, `12.3 s`, `4 min 05 s`, `3 h 20 min`, `2 d 4 h`.
pub(crate) fn duration_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{}.{} s", ms / 1000, (ms % 1000) / 100),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, (ms / 1000) % 60),
        3_600_000..86_400_000 => format!("{} h {:02} min", ms / 3_600_000, (ms / 60_000) % 60),
        _ => format!("{} d {} h", ms / 86_400_000, (ms / 3_600_000) % 24),
    }
}

/// How long ago `then_ms` was at `now_ms` (`in 3.0 s` for a time to come).
pub(crate) fn ago(then_ms: i64, now_ms: i64) -> String {
    let delta = now_ms.saturating_sub(then_ms);
    if delta >= 0 {
        format!("{} ago", duration_ms(delta.unsigned_abs()))
    } else {
        format!("in {}", duration_ms(delta.unsigned_abs()))
    }
}

/// A number with thousands separators: `100,000`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A `webhook-signature` header shortened for the page: each `version,signature` entry keeps
/// its version, the first 6 and the last 4 characters of its signature (`v1,K5oZfz…pI4=`).
/// Enough to tell two apart, too little to be copied anywhere.
pub(crate) fn short_signature(header: &str) -> String {
    header
        .split_ascii_whitespace()
        .map(|entry| {
            let (version, signature) = entry.split_once(',').unwrap_or(("", entry));
            let chars: Vec<char> = signature.chars().collect();
            let short = if chars.len() <= 12 {
                "…".to_owned()
            } else {
                let head: String = chars[..6].iter().collect();
                let tail: String = chars[chars.len() - 4..].iter().collect();
                format!("{head}…{tail}")
            };
            if version.is_empty() {
                short
            } else {
                format!("{version},{short}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The body re-indented, two spaces a level, when it is JSON (checked without building values,
/// so `1e400` or a deep document is shown as stored: members keep their order, numbers and
/// strings their exact text); `None` when it is not JSON.
pub(crate) fn pretty_json(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
    let text = std::str::from_utf8(body).ok()?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on its line.
                while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

/// `text` with the user information of any URL in it (`scheme://user:password@host`) replaced
/// by `***`: an engine's error may quote where it connects to.
pub(crate) fn scrub_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(user_end) => {
                out.push_str("***");
                rest = &tail[user_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => {
            let mut cut = text[..end].to_owned();
            cut.push('…');
            cut
        }
        None => text.to_owned(),
    }
}

/// The body as text for the page when it is not JSON: UTF-8 (invalid bytes replaced).
pub(crate) fn body_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are small and positive by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_and_read_back() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14 22:13:20Z");
        assert_eq!(parse_time("2023-11-14T22:13"), Some(1_699_999_980_000));
        assert_eq!(parse_time("2023-11-14T22:13:20"), Some(1_700_000_000_000));
        assert_eq!(parse_time("1700000000123"), Some(1_700_000_000_123));
        for bad in ["", "yesterday", "2023-13-01T00:00", "2023-11-14T25:00"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        for ms in [0, 951_782_400_000, 4_102_444_800_000] {
            assert_eq!(parse_time(&utc(ms).replace(' ', "T")), Some(ms));
        }
    }

    #[test]
    fn durations_and_counts_read_well() {
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(12_345), "12.3 s");
        assert_eq!(duration_ms(245_000), "4 min 05 s");
        assert_eq!(duration_ms(12_000_000), "3 h 20 min");
        assert_eq!(ago(1_000, 4_000), "3.0 s ago");
        assert_eq!(ago(4_000, 1_000), "in 3.0 s");
        assert_eq!(count(100_000), "100,000");
        assert_eq!(count(999), "999");
    }

    #[test]
    fn signatures_are_shortened_entry_by_entry() {
        assert_eq!(
            short_signature("v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="),
            "v1,K5oZfz…pI4="
        );
        assert_eq!(
            short_signature(
                "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v1a,BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
            ),
            "v1,AAAAAA…AAA= v1a,BBBBBB…BBBB"
        );
        assert_eq!(short_signature("v1,short"), "v1,…");
    }

    #[test]
    fn json_is_reindented_as_stored() {
        assert_eq!(
            pretty_json(br#"{"type":"a","data":{"n":1e400,"s":"x,{\"y\":1}","e":[],"o":{}}}"#)
                .as_deref(),
            Some(
                "{\n  \"type\": \"a\",\n  \"data\": {\n    \"n\": 1e400,\n    \"s\": \"x,{\\\"y\\\":1}\",\n    \"e\": [],\n    \"o\": {}\n  }\n}"
            )
        );
        assert_eq!(pretty_json(b"not json"), None);
        assert_eq!(pretty_json(b"42").as_deref(), Some("42"));
    }

    #[test]
    fn passwords_in_urls_are_scrubbed() {
        assert_eq!(
            scrub_urls("cannot reach redis://:s3cret@db:6379/2 (timed out)"),
            "cannot reach redis://***@db:6379/2 (timed out)"
        );
        assert_eq!(
            scrub_urls("postgres://app:pw@h/db and postgres://h/db"),
            "postgres://***@h/db and postgres://h/db"
        );
        assert_eq!(scrub_urls("no url here"), "no url here");
    }

    #[test]
    fn text_is_cut_at_characters() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hé", 2), "hé");
        assert_eq!(body_text(b"a\x00b\xff"), "a\\u{0000}b\u{fffd}");
    }
}
