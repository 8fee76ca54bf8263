//! `webhook-timestamp`: strict parsing and the replay window.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};
#[cfg(not(any(target_os = "linux", target_os = "android")))]
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{WebhookError, headers::WEBHOOK_TIMESTAMP};

/// Longer than any integer worth reading; longer values are refused before parsing.
pub(crate) const MAX_TIMESTAMP_LEN: usize = 32;

/// Where "now" comes from, so tests can pin it.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now_unix_secs(&self) -> i64;
}

/// The system clock.
///
/// On Linux it reads `CLOCK_REALTIME_COARSE`: the time of the kernel's last tick (at most a few
/// milliseconds behind), about 5 ns a read against about 23 for the precise clock on the same
/// machine, a quarter of what verification costs over its hash. A replay window counted in whole
/// seconds (minutes, by default) does not see the difference. Elsewhere:
/// [`SystemTime::now`](std::time::SystemTime::now).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn now_unix_secs(&self) -> i64 {
        rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse).tv_sec
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn now_unix_secs(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
        }
    }
}

/// A clock that says what it is told; clones share the same time.
///
/// ```
/// use agentsync_webhooks_core::{Clock, FixedClock};
///
/// let clock = FixedClock::new(1_614_265_330);
/// clock.advance(10);
/// assert_eq!(clock.now_unix_secs(), 1_614_265_340);
/// ```
#[derive(Debug, Clone, Default)]
pub struct FixedClock(Arc<AtomicI64>);

impl FixedClock {
    /// A clock stopped at `unix_secs`.
    pub fn new(unix_secs: i64) -> Self {
        Self(Arc::new(AtomicI64::new(unix_secs)))
    }

    /// Sets the time.
    pub fn set(&self, unix_secs: i64) {
        self.0.store(unix_secs, Ordering::SeqCst);
    }

    /// Moves the time forward (or back, with a negative value).
    pub fn advance(&self, secs: i64) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(secs))
            });
    }
}

impl Clock for FixedClock {
    fn now_unix_secs(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Parses `-?[0-9]+`, saturating at the ends of `i64`; anything else (`+5`, ` 5`, `5.0`, empty)
/// is refused.
pub(crate) fn parse(raw: &[u8]) -> Result<i64, WebhookError> {
    if raw.len() > MAX_TIMESTAMP_LEN {
        return Err(WebhookError::InvalidHeader {
            name: WEBHOOK_TIMESTAMP,
            reason: "too long",
        });
    }
    let (negative, digits) = match raw {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, raw),
    };
    if digits.is_empty() {
        return Err(WebhookError::InvalidTimestamp);
    }
    // One pass: every byte checked, the value read as it goes; up to 18 digits cannot overflow,
    // so only longer values pay for saturating arithmetic (wrapping only ever meets a value
    // with a non-digit in it, which is refused).
    let mut not_digit = false;
    let magnitude = if digits.len() <= 18 {
        // Eight digits at a time where there are eight (a 10-digit timestamp: one word and
        // two digits), then one at a time.
        let (words, tail) = digits.as_chunks::<8>();
        let acc = words.iter().fold(0i64, |acc, word| {
            let word = u64::from_le_bytes(*word);
            not_digit |= !eight_digits(word);
            acc.wrapping_mul(100_000_000)
                .wrapping_add(eight_digits_value(word).cast_signed())
        });
        tail.iter().fold(acc, |acc, d| {
            let digit = d.wrapping_sub(b'0');
            not_digit |= digit > 9;
            acc.wrapping_mul(10).wrapping_add(i64::from(digit))
        })
    } else {
        digits.iter().fold(0i64, |acc, d| {
            let digit = d.wrapping_sub(b'0');
            not_digit |= digit > 9;
            acc.saturating_mul(10).saturating_add(i64::from(digit))
        })
    };
    if not_digit {
        return Err(WebhookError::InvalidTimestamp);
    }
    Ok(if negative { -magnitude } else { magnitude })
}

/// Whether the eight bytes of `word` (first byte lowest) are all ASCII digits: each byte's high
/// nibble is 3 and adding 6 leaves it 3 (a carry between bytes starts only at a byte whose high
/// nibble is already not 3).
fn eight_digits(word: u64) -> bool {
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    (word & HIGH_NIBBLES) | ((word.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES) >> 4)
        == 0x3333_3333_3333_3333
}

/// The value of eight ASCII digits (first byte lowest, the most significant digit), combined
/// in three multiplications: pairs, then fours, then the eight. Meaningless unless
/// [`eight_digits`] holds, which the caller checks.
fn eight_digits_value(word: u64) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    let word = word.wrapping_sub(0x3030_3030_3030_3030);
    let pairs = word.wrapping_mul(10).wrapping_add(word >> 8);
    ((pairs & MASK)
        .wrapping_mul(MUL1)
        .wrapping_add(((pairs >> 16) & MASK).wrapping_mul(MUL2)))
        >> 32
}

/// Refuses a timestamp more than `tolerance_secs` away from `now`, in either direction.
pub(crate) fn check(timestamp: i64, now: i64, tolerance_secs: u64) -> Result<(), WebhookError> {
    let behind = i128::from(now) - i128::from(timestamp);
    let saturate = |v: i128| u64::try_from(v).unwrap_or(u64::MAX);
    if behind > i128::from(tolerance_secs) {
        Err(WebhookError::TimestampTooOld {
            age_secs: saturate(behind),
            tolerance_secs,
        })
    } else if -behind > i128::from(tolerance_secs) {
        Err(WebhookError::TimestampTooNew {
            ahead_secs: saturate(-behind),
            tolerance_secs,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_integers_strictly_and_saturates() {
        assert_eq!(parse(b"1614265330"), Ok(1_614_265_330));
        assert_eq!(parse(b"0001614265330"), Ok(1_614_265_330));
        assert_eq!(parse(b"-1"), Ok(-1));
        assert_eq!(parse(b"-9223372036854775808"), Ok(i64::MIN + 1));
        assert_eq!(parse(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse(b"18446744073709551615"), Ok(i64::MAX));
        assert_eq!(parse(b"99999999999999999999"), Ok(i64::MAX));
        assert_eq!(parse(b"-99999999999999999999"), Ok(i64::MIN + 1));
        for bad in [
            &b"+5"[..],
            b" 5",
            b"5 ",
            b"5.0",
            b"",
            b"-",
            b"1e9",
            b"0x10",
            b"\xff",
        ] {
            assert_eq!(parse(bad), Err(WebhookError::InvalidTimestamp), "{bad:?}");
        }
        assert!(matches!(
            parse(&[b'1'; 33]),
            Err(WebhookError::InvalidHeader { .. })
        ));
    }

    /// Every length up to 20 digits, every byte value at every place, read as `str::parse`
    /// reads an integer (which saturation only changes past `i64`).
    #[test]
    fn parses_as_str_parse_does() {
        let digits = b"1614265330987654321098";
        for len in 1..=20 {
            for position in 0..len {
                for byte in 0..=255u8 {
                    let mut raw = digits[..len].to_vec();
                    raw[position] = byte;
                    if raw[0] == b'-' {
                        continue; // the sign: its own cases above
                    }
                    let expected = std::str::from_utf8(&raw)
                        .ok()
                        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                        .map(|s| s.parse::<i64>().unwrap_or(i64::MAX));
                    assert_eq!(parse(&raw).ok(), expected, "{raw:?}");
                }
            }
        }
        for word in [*b"00000000", *b"99999999", *b"12345678", *b"09090909"] {
            assert!(eight_digits(u64::from_le_bytes(word)));
            let text = std::str::from_utf8(&word).unwrap();
            assert_eq!(
                eight_digits_value(u64::from_le_bytes(word)),
                text.parse::<u64>().unwrap()
            );
        }
    }

    #[test]
    fn tolerance_is_inclusive_both_ways() {
        let now = 1_000_000;
        assert_eq!(check(now - 300, now, 300), Ok(()));
        assert_eq!(check(now + 300, now, 300), Ok(()));
        assert_eq!(
            check(now - 301, now, 300),
            Err(WebhookError::TimestampTooOld {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            check(now + 301, now, 300),
            Err(WebhookError::TimestampTooNew {
                ahead_secs: 301,
                tolerance_secs: 300
            })
        );
        // Zero means "exactly now", never "disabled".
        assert_eq!(check(now, now, 0), Ok(()));
        assert!(check(now + 1, now, 0).is_err());
    }

    #[test]
    fn extremes_do_not_overflow() {
        assert!(matches!(
            check(i64::MIN, i64::MAX, 300),
            Err(WebhookError::TimestampTooOld { .. })
        ));
        assert!(matches!(
            check(i64::MAX, i64::MIN, u64::MAX / 2),
            Err(WebhookError::TimestampTooNew { .. })
        ));
        assert_eq!(check(i64::MAX, i64::MAX, u64::MAX), Ok(()));
    }

    #[test]
    fn fixed_clock_is_shared_between_clones() {
        let a = FixedClock::new(5);
        let b = a.clone();
        a.advance(i64::MAX);
        assert_eq!(b.now_unix_secs(), i64::MAX);
        b.set(-3);
        assert_eq!(a.now_unix_secs(), -3);
        assert!(SystemClock.now_unix_secs() > 1_700_000_000);
    }

    #[test]
    fn the_system_clock_is_the_wall_clock_to_the_second() {
        // The coarse clock runs at most a tick behind the precise one, never ahead: read
        // between two precise reads, it falls within them, give or take that tick.
        let precise = || {
            i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
            )
            .unwrap()
        };
        for _ in 0..1_000 {
            let before = precise();
            let now = SystemClock.now_unix_secs();
            let after = precise();
            assert!(
                (before - 1..=after).contains(&now),
                "{before} <= {now} <= {after}"
            );
        }
    }
}
