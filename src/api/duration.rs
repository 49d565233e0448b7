//! Durations written as `1h30m`, `15m`, `90s` or `2d`.

use std::fmt;

use chrono::TimeDelta;

/// A duration string that is not of the form `1h30m`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} {expected}", value = .0, expected = BadDuration::EXPECTED)]
pub struct BadDuration(pub String);

impl BadDuration {
    /// What is wrong, for messages that show the value already.
    pub const EXPECTED: &str = "is not a duration like 90s, 15m, 1h30m or 2d";
}

/// Parses `1h30m`-style durations; the unit list is `d`, `h`, `m`, `s`.
pub fn parse(text: &str) -> Result<TimeDelta, BadDuration> {
    let bad = || BadDuration(text.to_owned());
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut number: Option<i64> = None;
    for ch in text.chars() {
        if let Some(digit) = ch.to_digit(10) {
            let n = number.unwrap_or(0);
            number = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(i64::from(digit)))
                    .ok_or_else(bad)?,
            );
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n = number.take().ok_or_else(bad)?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
    }
    if number.is_some() {
        return Err(bad());
    }
    TimeDelta::try_seconds(total).ok_or_else(bad)
}

/// Formats a duration the way it is written in a spec (`1h30m`).
pub struct Display(pub TimeDelta);

impl fmt::Display for Display {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.num_seconds();
        if secs == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse("90s"), Ok(TimeDelta::seconds(90)));
        assert_eq!(parse("15m"), Ok(TimeDelta::minutes(15)));
        assert_eq!(parse("1h30m"), Ok(TimeDelta::minutes(90)));
        assert_eq!(parse("2d"), Ok(TimeDelta::days(2)));
        assert_eq!(parse("0s"), Ok(TimeDelta::zero()));
    }

    #[test]
    fn rejects_malformed() {
        for text in ["", "h", "10", "1x", "1.5h", "-1h", "99999999999999999999s"] {
            assert_eq!(parse(text), Err(BadDuration(text.into())), "{text}");
        }
    }

    #[test]
    fn displays_like_the_spec() {
        assert_eq!(Display(TimeDelta::minutes(90)).to_string(), "1h30m");
        assert_eq!(Display(TimeDelta::seconds(86_401)).to_string(), "1d1s");
        assert_eq!(Display(TimeDelta::zero()).to_string(), "0s");
    }
}
