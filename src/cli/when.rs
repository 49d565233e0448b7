//! Times people type for `rollback --at`: RFC 3339, or friendly forms
//! resolved in a time zone (the local one unless `--tz` names another).

use chrono::{
    DateTime, Datelike, Days, Local, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Utc, Weekday,
};
use chrono_tz::Tz;

/// The time zone friendly times are read in and times are shown in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    /// The machine's local time zone.
    Local,
    /// An IANA time zone from `--tz`.
    Named(Tz),
}

impl Zone {
    /// `--tz NAME`, or the local zone.
    pub fn from_arg(tz: Option<&str>) -> Result<Self, String> {
        match tz {
            None => Ok(Zone::Local),
            Some(name) => name.parse::<Tz>().map(Zone::Named).map_err(|_| {
                format!("--tz: {name:?} is not an IANA time zone name (for example Europe/Prague or UTC)")
            }),
        }
    }

    /// The wall-clock date and time of `t` in this zone.
    pub fn naive(&self, t: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Local => t.with_timezone(&Local).naive_local(),
            Zone::Named(tz) => t.with_timezone(tz).naive_local(),
        }
    }

    /// `t` as `2026-11-30 09:00 +01:00`.
    pub fn show(&self, t: DateTime<Utc>) -> String {
        let fmt = "%Y-%m-%d %H:%M %:z";
        match self {
            Zone::Local => t.with_timezone(&Local).format(fmt).to_string(),
            Zone::Named(tz) => t.with_timezone(tz).format(fmt).to_string(),
        }
    }

    /// The instant a wall-clock time stands for. On the night clocks go
    /// back the earlier of the two is meant; a time skipped when they go
    /// forward does not exist.
    fn instant(&self, local: NaiveDateTime) -> Result<DateTime<Utc>, String> {
        let found = match self {
            Zone::Local => map(Local.from_local_datetime(&local)),
            Zone::Named(tz) => map(tz.from_local_datetime(&local)),
        };
        found.ok_or_else(|| {
            format!(
                "{} does not exist in this time zone (the clocks skip it); pick another time",
                local.format("%Y-%m-%d %H:%M")
            )
        })
    }
}

fn map<T: TimeZone>(r: LocalResult<DateTime<T>>) -> Option<DateTime<Utc>> {
    r.earliest().map(|t| t.with_timezone(&Utc))
}

/// The forms [`resolve`] accepts, for error messages and `--help`.
pub const FORMS: &str = "an RFC 3339 time (2026-11-30T09:00:00+01:00), \
    `2026-11-30 09:00`, `09:00` (the next 09:00), `today 17:00`, `tomorrow 08:00`, \
    a weekday and time (`monday 09:00`: the next Monday at 09:00), or `+2h`, `+30m`, `+1d`";

/// Reads `text` as an instant; friendly forms are resolved in `zone`
/// relative to `now`. Times in the past are refused: a rollback at a past
/// time would run at once, which is what leaving out `--at` says.
pub fn resolve(text: &str, now: DateTime<Utc>, zone: &Zone) -> Result<DateTime<Utc>, String> {
    let t = parse(text.trim(), now, zone)
        .map_err(|why| format!("--at {text:?}: {why}; use {FORMS}"))?;
    if t <= now {
        return Err(format!(
            "--at {text:?} is in the past ({}); leave out --at to act now",
            zone.show(t)
        ));
    }
    Ok(t)
}

fn parse(text: &str, now: DateTime<Utc>, zone: &Zone) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Some(d) = text.strip_prefix('+') {
        let delta = crate::api::duration::parse(d.trim()).map_err(|e| e.to_string())?;
        return Ok(now + delta);
    }
    let lower = text.to_ascii_lowercase();
    for fmt in [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(local) = NaiveDateTime::parse_from_str(text, fmt) {
            return zone.instant(local);
        }
    }
    let today = zone.naive(now).date();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let (day, time) = match words.as_slice() {
        [time] => (None, *time),
        [day, time] => (Some(*day), *time),
        _ => return Err("not a time I understand".into()),
    };
    let time = clock(time)?;
    let at = |date: NaiveDate| zone.instant(date.and_time(time));
    match day {
        None => {
            let t = at(today)?;
            if t > now { Ok(t) } else { at(next_day(today)?) }
        }
        Some("today") => at(today),
        Some("tomorrow") => at(next_day(today)?),
        Some(name) => {
            let wd: Weekday = name
                .parse()
                .map_err(|_| format!("{name:?} is not a day (today, tomorrow or a weekday)"))?;
            let mut date = today;
            // Today counts when the time is still ahead, else the next one.
            for _ in 0..8 {
                if date.weekday() == wd {
                    let t = at(date)?;
                    if t > now {
                        return Ok(t);
                    }
                }
                date = next_day(date)?;
            }
            Err("no such day ahead".into())
        }
    }
}

fn clock(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .map_err(|_| format!("{text:?} is not a time of day (HH:MM)"))
}

fn next_day(d: NaiveDate) -> Result<NaiveDate, String> {
    d.checked_add_days(Days::new(1))
        .ok_or_else(|| "date out of range".to_owned())
}

/// How long ago `then` was, as `kubectl get` shows ages: `45s`, `12m`,
/// `5h`, `3d`.
pub fn age(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    span((now - then).num_seconds().max(0))
}

/// `in 3d 4h` / `2h ago`, coarse on purpose: it is read, not computed with.
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    if secs >= 0 {
        format!("in {}", span2(secs))
    } else {
        format!("{} ago", span2(-secs))
    }
}

fn span(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn span2(secs: i64) -> String {
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Monday 30 November 2026, 09:30 in Prague (08:30 UTC).
    fn now() -> DateTime<Utc> {
        crate::cli::test_now()
    }
    fn prague() -> Zone {
        Zone::Named(chrono_tz::Europe::Prague)
    }
    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().unwrap()
    }
    fn at(text: &str) -> Result<DateTime<Utc>, String> {
        resolve(text, now(), &prague())
    }

    #[test]
    fn rfc3339_and_offsets() {
        assert_eq!(at("2026-12-01T10:00:00+01:00"), Ok(utc(2026, 12, 1, 9, 0)));
        assert_eq!(at("2026-12-01T10:00:00Z"), Ok(utc(2026, 12, 1, 10, 0)));
        assert_eq!(at("+2h"), Ok(utc(2026, 11, 30, 10, 30)));
        assert_eq!(at("+1h30m"), Ok(utc(2026, 11, 30, 10, 0)));
        assert_eq!(at(" +1d "), Ok(utc(2026, 12, 1, 8, 30)));
    }

    #[test]
    fn friendly_forms_in_the_zone() {
        // Prague is UTC+1 in winter.
        assert_eq!(at("2026-12-01 09:00"), Ok(utc(2026, 12, 1, 8, 0)));
        assert_eq!(at("2026-12-01T09:00"), Ok(utc(2026, 12, 1, 8, 0)));
        assert_eq!(at("tomorrow 08:00"), Ok(utc(2026, 12, 1, 7, 0)));
        assert_eq!(at("Today 17:00"), Ok(utc(2026, 11, 30, 16, 0)));
        // The next 09:00 is tomorrow's (it is 09:30), the next 10:00 today's.
        assert_eq!(at("09:00"), Ok(utc(2026, 12, 1, 8, 0)));
        assert_eq!(at("10:00"), Ok(utc(2026, 11, 30, 9, 0)));
        // It is Monday 09:30: Monday 10:00 is today, Monday 09:00 next week.
        assert_eq!(at("monday 10:00"), Ok(utc(2026, 11, 30, 9, 0)));
        assert_eq!(at("monday 09:00"), Ok(utc(2026, 12, 7, 8, 0)));
        assert_eq!(at("fri 18:00"), Ok(utc(2026, 12, 4, 17, 0)));
        let utc_zone = Zone::Named(chrono_tz::UTC);
        assert_eq!(
            resolve("tomorrow 08:00", now(), &utc_zone),
            Ok(utc(2026, 12, 1, 8, 0))
        );
    }

    #[test]
    fn daylight_saving_nights() {
        let march = Utc
            .with_ymd_and_hms(2027, 3, 27, 12, 0, 0)
            .single()
            .unwrap();
        // 02:30 on 28 March 2027 does not exist in Prague.
        let gap = resolve("2027-03-28 02:30", march, &prague()).unwrap_err();
        assert!(gap.contains("does not exist"), "{gap}");
        let october = Utc
            .with_ymd_and_hms(2027, 10, 30, 12, 0, 0)
            .single()
            .unwrap();
        // 02:30 on 31 October 2027 happens twice: the first (summer time) counts.
        assert_eq!(
            resolve("sunday 02:30", october, &prague()),
            Ok(utc(2027, 10, 31, 0, 30))
        );
    }

    #[test]
    fn refusals_say_what_to_type() {
        let past = at("today 08:00").unwrap_err();
        assert!(
            past.contains("in the past") && past.contains("leave out --at"),
            "{past}"
        );
        for bad in ["next week", "someday 10:00", "25:00", "+2x", "monday"] {
            let e = at(bad).unwrap_err();
            assert!(e.contains("tomorrow 08:00"), "{bad}: {e}");
        }
        assert!(Zone::from_arg(Some("Europe/Pargue")).is_err());
        assert_eq!(Zone::from_arg(Some("UTC")), Ok(Zone::Named(chrono_tz::UTC)));
    }

    #[test]
    fn ages_and_relative_times() {
        assert_eq!(age(now() - chrono::TimeDelta::seconds(45), now()), "45s");
        assert_eq!(age(now() - chrono::TimeDelta::minutes(90), now()), "90m");
        assert_eq!(age(now() - chrono::TimeDelta::hours(5), now()), "5h");
        assert_eq!(age(now() - chrono::TimeDelta::days(3), now()), "3d");
        assert_eq!(age(now() + chrono::TimeDelta::days(3), now()), "0s");
        assert_eq!(relative(utc(2026, 12, 4, 17, 0), now()), "in 4d 8h");
        assert_eq!(relative(utc(2026, 11, 30, 6, 0), now()), "2h 30m ago");
        assert_eq!(relative(now(), now()), "in 0s");
        assert_eq!(
            prague().show(utc(2026, 12, 4, 17, 0)),
            "2026-12-04 18:00 +01:00"
        );
    }
}
