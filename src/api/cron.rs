//! The syntax of `spec.schedule`: cron expressions (5 fields, or 6 with
//! seconds first) read in an IANA time zone, the production window and
//! freezes. Validation checks a schedule with it; `crate::schedule` builds
//! its calendar on what it parses.

use chrono::{DateTime, Datelike, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

use super::deployment::Schedule;
use super::duration::{self, BadDuration};
use super::validate::SpecError;

/// How far ahead a window must open at least once; covers 29 February.
const WINDOW_HORIZON_DAYS: i64 = 5 * 366;

/// A schedule whose every part parsed.
#[derive(Debug, Clone)]
pub struct ParsedSchedule {
    pub tz: Tz,
    pub build: Option<Cron>,
    /// The window's start pattern and length.
    pub window: Option<(Cron, TimeDelta)>,
    /// Start, end and reason of each freeze.
    pub freezes: Vec<(DateTime<Utc>, DateTime<Utc>, String)>,
}

/// Parses a cron expression of 5 fields, or 6 with seconds first.
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expr)
        .map_err(|e| e.to_string())
}

/// The first match of `cron` in `tz` strictly after `t`.
pub fn next_match(cron: &Cron, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !searchable(t) {
        return None;
    }
    cron.find_next_occurrence(&t.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether schedules are searched around `t`: far from the ends of what
/// chrono represents, where converting to a time zone's local time
/// overflows. Instants outside come from bad data (a persisted status, a
/// clock far off); no schedule matches there.
pub fn searchable(t: DateTime<Utc>) -> bool {
    (1..=9999).contains(&t.year())
}

/// Parses a schedule; every problem is reported with its field path.
pub fn parse_schedule(schedule: &Schedule) -> Result<ParsedSchedule, Vec<SpecError>> {
    let mut errors = Vec::new();
    let tz = schedule
        .time_zone
        .parse::<Tz>()
        .map_err(|_| {
            errors.push(SpecError::new(
                "spec.schedule.timeZone",
                &schedule.time_zone,
                "is not an IANA time zone name (for example Europe/Prague)",
            ))
        })
        .ok();
    let build = schedule.build.as_deref().and_then(|expr| {
        parse_cron(expr)
            .map_err(|e| {
                errors.push(SpecError::new(
                    "spec.schedule.build",
                    expr,
                    format!("is not a valid cron expression: {e}"),
                ))
            })
            .ok()
    });
    let window = schedule.production.as_ref().and_then(|w| {
        let start = parse_cron(&w.start)
            .map_err(|e| {
                errors.push(SpecError::new(
                    "spec.schedule.production.start",
                    &w.start,
                    format!("is not a valid cron expression: {e}"),
                ))
            })
            .ok();
        let length = match duration::parse(&w.duration) {
            Ok(d) if d > TimeDelta::zero() => Some(d),
            Ok(_) => {
                errors.push(SpecError::new(
                    "spec.schedule.production.duration",
                    &w.duration,
                    "must be longer than zero: the window would never be open",
                ));
                None
            }
            Err(_) => {
                errors.push(SpecError::new(
                    "spec.schedule.production.duration",
                    &w.duration,
                    BadDuration::EXPECTED,
                ));
                None
            }
        };
        start.zip(length)
    });
    let mut freezes = Vec::new();
    for (i, f) in schedule.freezes.iter().enumerate() {
        if f.end <= f.start {
            errors.push(SpecError::new(
                format!("spec.schedule.freezes[{i}].end"),
                f.end.to_rfc3339(),
                format!("must be after the start {}", f.start.to_rfc3339()),
            ));
        } else {
            freezes.push((f.start, f.end, f.reason.clone()));
        }
    }
    if let (Some(tz), Some((cron, _)), Some(w)) = (tz, &window, &schedule.production) {
        // A pattern such as 30 February parses but never matches.
        let probe = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single();
        let opens = probe.is_some_and(|p| {
            next_match(cron, tz, p).is_some_and(|t| t - p < TimeDelta::days(WINDOW_HORIZON_DAYS))
        });
        if !opens {
            errors.push(SpecError::new(
                "spec.schedule.production.start",
                &w.start,
                "never matches: the production window would never open",
            ));
        }
    }
    match (tz, errors.is_empty()) {
        (Some(tz), true) => Ok(ParsedSchedule {
            tz,
            build,
            window,
            freezes,
        }),
        _ => Err(errors),
    }
}
