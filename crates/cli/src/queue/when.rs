//! The times of `--since`, `--until` and `--older-than`: an RFC 3339 time, a date, or a
//! duration ago (`30m`, `1h`, `2d`, `1h30m`); and the durations of `--delayed-over`, in the same
//! units.

use std::time::Duration;

use agentsync_webhooks_core::handoff::now_ms;

/// What a time flag takes, for its messages.
const EXPECTED: &str = "expected an RFC 3339 time (2026-05-12T09:30:00Z), a date (2026-05-12, \
                        midnight UTC) or a duration ago (90s, 30m, 1h, 2d, 1w, 1h30m)";

/// A time flag's value as ms since the epoch; a duration is counted back from now.
pub fn parse_time(text: &str) -> Result<i64, String> {
    parse_time_at(text, now_ms())
}

/// [`parse_time`] with `now` given.
fn parse_time_at(text: &str, now: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_millis());
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date
            .and_hms_opt(0, 0, 0)
            .map(|midnight| midnight.and_utc().timestamp_millis())
            .ok_or_else(|| EXPECTED.to_owned());
    }
    let ago = parse_duration_ms(text).ok_or_else(|| EXPECTED.to_owned())?;
    Ok(now.saturating_sub(ago))
}

/// A duration flag's value (`15m`, `1h30m`, `2d`), in the units of the time flags.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    parse_duration_ms(text.trim())
        .and_then(|ms| u64::try_from(ms).ok())
        .map(Duration::from_millis)
        .ok_or_else(|| "expected a duration with its unit (90s, 15m, 1h, 2d, 1w, 1h30m)".to_owned())
}

/// `30m`, `1h30m`, `2d` in ms; `None` for anything else (a bare number has no unit).
fn parse_duration_ms(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let (number, after) = rest.split_at(digits);
        let units = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(units);
        let unit_ms: i64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return None,
        };
        let number: i64 = number.parse().ok()?;
        total = total.checked_add(number.checked_mul(unit_ms)?)?;
        rest = after;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn durations_are_counted_back_from_now() {
        for (text, ago) in [
            ("90s", 90_000),
            ("30m", 1_800_000),
            ("1h", 3_600_000),
            ("2d", 172_800_000),
            ("1w", 604_800_000),
            ("1h30m", 5_400_000),
            (" 0s ", 0),
        ] {
            assert_eq!(parse_time_at(text, NOW), Ok(NOW - ago), "{text}");
        }
    }

    #[test]
    fn times_and_dates_are_absolute() {
        assert_eq!(
            parse_time_at("2023-11-14T22:13:20.123Z", NOW),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_time_at("2023-11-14T23:13:20+01:00", NOW),
            Ok(1_700_000_000_000)
        );
        assert_eq!(parse_time_at("2023-11-14", NOW), Ok(1_699_920_000_000));
    }

    #[test]
    fn durations_take_the_time_flags_units_and_refuse_a_bare_number() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration(" 1h30m "), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "15", "m", "-5m", "5 parsecs", "99999999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn anything_else_says_what_is_expected() {
        for bad in [
            "",
            "1",
            "h",
            "1y",
            "1h30",
            "-1h",
            "yesterday",
            "99999999999999999999d",
        ] {
            let error = parse_time_at(bad, NOW).unwrap_err();
            assert!(error.contains("RFC 3339"), "{bad}: {error}");
        }
    }
}
