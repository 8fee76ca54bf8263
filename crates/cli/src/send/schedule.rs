//! Retry schedules: when each delivery attempt is made, as the sender does it.

use std::time::Duration;

/// The most attempts a custom schedule may list.
const MAX_ATTEMPTS: usize = 100;
/// Each delay is stretched or shrunk by up to this fraction, as real senders do to spread load.
const JITTER: f64 = 0.1;

/// The delay before each attempt (the first is usually zero: "immediately").
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    name: &'static str,
    delays: Vec<Duration>,
}

impl Schedule {
    /// A compressed exponential schedule for trying things out: immediately, 0.5 s, 1 s, 2 s,
    /// 4 s, 8 s.
    pub fn quick() -> Self {
        let delays = [0, 500, 1_000, 2_000, 4_000, 8_000].map(Duration::from_millis);
        Self {
            name: "quick",
            delays: delays.to_vec(),
        }
    }

    /// The Svix schedule AgentSync's sender uses: immediately, 5 s, 5 min, 30 min, 2 h, 5 h,
    /// 10 h, 10 h (about 28 hours in all).
    pub fn svix() -> Self {
        let delays = [0, 5, 300, 1_800, 7_200, 18_000, 36_000, 36_000].map(Duration::from_secs);
        Self {
            name: "svix",
            delays: delays.to_vec(),
        }
    }

    /// One attempt, no retry.
    pub fn none() -> Self {
        Self {
            name: "none",
            delays: vec![Duration::ZERO],
        }
    }

    /// `quick`, `svix`, `none`, or comma-separated delays such as `0,250ms,1s,2m`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "quick" => return Ok(Self::quick()),
            "svix" => return Ok(Self::svix()),
            "none" => return Ok(Self::none()),
            _ => {}
        }
        let delays = text
            .split(',')
            .map(parse_delay)
            .collect::<Result<Vec<_>, _>>()?;
        if delays.len() > MAX_ATTEMPTS {
            return Err(format!("at most {MAX_ATTEMPTS} attempts"));
        }
        Ok(Self {
            name: "custom",
            delays,
        })
    }

    /// The delay before each attempt, in order.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// How many attempts a delivery gets.
    pub fn attempts(&self) -> usize {
        self.delays.len()
    }

    /// `quick: immediately, 0.5 s, 1 s, ...`.
    pub fn describe(&self) -> String {
        let delays: Vec<String> = self
            .delays
            .iter()
            .map(|d| {
                if d.is_zero() {
                    "immediately".to_owned()
                } else {
                    human_delay(*d)
                }
            })
            .collect();
        let jitter = if self.delays.iter().any(|d| !d.is_zero()) {
            " (delays ±10% jitter)"
        } else {
            ""
        };
        format!("{}: {}{jitter}", self.name, delays.join(", "))
    }
}

/// `delay` stretched or shrunk at random by up to [`JITTER`].
pub fn jittered(delay: Duration) -> Duration {
    delay.mul_f64(1.0 + JITTER * (2.0 * fastrand::f64() - 1.0))
}

/// `0`, or a number with a unit: `250ms`, `1.5s`, `5m`, `5min`, `2h`.
fn parse_delay(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "bad delay {text:?} in --schedule: use quick, svix, none, or delays with units \
             such as 0,250ms,1s,5m,2h"
        )
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().map_err(|_| bad())?;
    let seconds_per_unit = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3_600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(number * seconds_per_unit).map_err(|_| bad())
}

/// `250 ms`, `1.5 s`, `5 min`, `2 h`.
pub fn human_delay(delay: Duration) -> String {
    let secs = delay.as_secs_f64();
    if secs < 1.0 {
        format!("{} ms", delay.as_millis())
    } else if secs < 60.0 {
        format!("{} s", trim_decimals(secs))
    } else if secs < 3_600.0 {
        format!("{} min", trim_decimals(secs / 60.0))
    } else {
        format!("{} h", trim_decimals(secs / 3_600.0))
    }
}

fn trim_decimals(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_schedules() {
        assert_eq!(Schedule::svix().attempts(), 8);
        assert_eq!(
            Schedule::svix().describe(),
            "svix: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (delays ±10% jitter)"
        );
        assert_eq!(
            Schedule::parse("none").unwrap().describe(),
            "none: immediately"
        );
        assert_eq!(Schedule::parse("quick").unwrap(), Schedule::quick());
    }

    #[test]
    fn custom_delays() {
        let s = Schedule::parse("0, 250ms,1.5s,2m,1h").unwrap();
        assert_eq!(
            s.delays(),
            [0, 250, 1_500, 120_000, 3_600_000].map(Duration::from_millis)
        );
        for bad in ["", "5", "1x", "-1s", "s", "1e400s"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(10));
            assert!(d >= Duration::from_secs(9) && d <= Duration::from_secs(11));
        }
        assert_eq!(jittered(Duration::ZERO), Duration::ZERO);
    }
}
