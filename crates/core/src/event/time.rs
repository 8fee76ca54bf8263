//! Date and time fields: the strict RFC 3339 / ISO 8601 forms AgentSync sends take chrono's
//! dedicated fast parsers; anything else falls back to chrono's general (relaxed) parsing, so
//! nothing that parsed before is refused.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, de::Error as _};

/// An RFC 3339 instant, e.g. `2025-07-24T22:51:05.206Z`.
pub(crate) fn instant<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    parse_instant(&text).map_err(D::Error::custom)
}

/// [`instant`], for an optional field.
pub(crate) fn optional_instant<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
    text.map(|t| parse_instant(&t))
        .transpose()
        .map_err(D::Error::custom)
}

/// A calendar date, e.g. `2025-07-24`.
pub(crate) fn date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NaiveDate, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    parse_date(&text).map_err(D::Error::custom)
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| text.parse::<DateTime<chrono::FixedOffset>>())
        .map(|t| t.with_timezone(&Utc))
}

fn parse_date(text: &str) -> Result<NaiveDate, chrono::ParseError> {
    let fast = match text.as_bytes() {
        [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1]
            if [y0, y1, y2, y3, m0, m1, d0, d1]
                .iter()
                .all(|b| b.is_ascii_digit()) =>
        {
            let n = |digits: &[&u8]| {
                digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 10 + u32::from(**d - b'0'))
            };
            let year = i32::try_from(n(&[y0, y1, y2, y3])).ok();
            year.and_then(|y| NaiveDate::from_ymd_opt(y, n(&[m0, m1]), n(&[d0, d1])))
        }
        _ => None,
    };
    fast.map_or_else(|| text.parse(), Ok)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn instants_strict_and_relaxed() {
        let t = Utc.with_ymd_and_hms(2025, 7, 24, 22, 51, 5).unwrap();
        assert_eq!(parse_instant("2025-07-24T22:51:05Z").unwrap(), t);
        assert_eq!(parse_instant("2025-07-24T23:51:05+01:00").unwrap(), t);
        assert_eq!(parse_instant("2025-07-24 22:51:05Z").unwrap(), t);
        assert_eq!(
            parse_instant("2025-07-24T22:51:05.206Z")
                .unwrap()
                .timestamp_subsec_millis(),
            206
        );
        assert!(parse_instant("yesterday").is_err());
        assert!(parse_instant("2025-07-24").is_err());
    }

    #[test]
    fn dates_fast_and_fallback() {
        assert_eq!(
            parse_date("2025-07-24").unwrap(),
            NaiveDate::from_ymd_opt(2025, 7, 24).unwrap()
        );
        assert_eq!(
            parse_date("+2025-07-24").unwrap(),
            NaiveDate::from_ymd_opt(2025, 7, 24).unwrap()
        );
        // chrono's relaxed form, as before: single-digit months and days.
        assert_eq!(
            parse_date("2025-7-4").unwrap(),
            NaiveDate::from_ymd_opt(2025, 7, 4).unwrap()
        );
        for bad in ["2025-02-30", "2025-13-01", "24/07/2025", ""] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }
}
