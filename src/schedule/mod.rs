//! The calendar of a train: cron schedules in an IANA time zone, the
//! production window and freezes. Every function takes the instant it asks
//! about; nothing here reads the clock.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

use crate::api::deployment::Schedule;
use crate::api::duration;
use crate::api::validate::SpecError;

/// How far ahead a window must open at least once; covers 29 February.
const WINDOW_HORIZON_DAYS: i64 = 5 * 366;

/// A half-open interval `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

/// A freeze in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveFreeze {
    pub until: DateTime<Utc>,
    pub reason: String,
}

/// Whether the train may deploy on its own at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Deploys are allowed now.
    Open,
    /// Not now; `reopens` is the earliest instant worth asking again.
    Closed {
        why: String,
        reopens: Option<DateTime<Utc>>,
    },
}

/// A parsed, validated `spec.schedule`.
#[derive(Debug, Clone)]
pub struct Calendar {
    tz: Tz,
    build: Option<Cron>,
    window: Option<(Cron, TimeDelta)>,
    freezes: Vec<(Interval, String)>,
}

/// Parses a cron expression of 5 fields, or 6 with seconds first.
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expr)
        .map_err(|e| e.to_string())
}

impl Calendar {
    /// Parses the schedule; every problem is reported with its field path.
    pub fn new(schedule: &Schedule) -> Result<Self, Vec<SpecError>> {
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
                Err(e) => {
                    errors.push(SpecError::new(
                        "spec.schedule.production.duration",
                        &w.duration,
                        e.to_string(),
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
                let interval = Interval {
                    start: f.start,
                    end: f.end,
                };
                freezes.push((interval, f.reason.clone()));
            }
        }
        if let (Some(tz), Some((cron, _)), Some(w)) = (tz, &window, &schedule.production) {
            // A pattern such as 30 February parses but never matches.
            let probe = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single();
            let opens = probe.is_some_and(|p| {
                next_match(cron, tz, p)
                    .is_some_and(|t| t - p < TimeDelta::days(WINDOW_HORIZON_DAYS))
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
            (Some(tz), true) => Ok(Self {
                tz,
                build,
                window,
                freezes,
            }),
            _ => Err(errors),
        }
    }

    /// The first scheduled build strictly after `t`.
    pub fn next_build_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.build.as_ref().and_then(|c| next_match(c, self.tz, t))
    }

    /// The latest scheduled build at or before `now`, if it is after `since`.
    pub fn due_build(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = self.build.as_ref()?;
        let latest = previous_match(cron, self.tz, now)?;
        (latest > since).then_some(latest)
    }

    /// Whether a production window is configured.
    pub fn has_window(&self) -> bool {
        self.window.is_some()
    }

    /// The production window open at `now`, or the next one. Without a
    /// configured window production is always open.
    pub fn window(&self, now: DateTime<Utc>) -> Option<Interval> {
        let Some((cron, length)) = &self.window else {
            return Some(Interval {
                start: now,
                end: DateTime::<Utc>::MAX_UTC,
            });
        };
        if let Some(start) = previous_match(cron, self.tz, now) {
            let open = Interval {
                start,
                end: start + *length,
            };
            if open.contains(now) {
                return Some(open);
            }
        }
        next_match(cron, self.tz, now).map(|start| Interval {
            start,
            end: start + *length,
        })
    }

    /// The freeze in effect at `now`; overlapping freezes extend each other.
    pub fn freeze_at(&self, now: DateTime<Utc>) -> Option<ActiveFreeze> {
        let (first, reason) = self.freezes.iter().find(|(i, _)| i.contains(now))?;
        let mut until = first.end;
        // Chain freezes that start before the current one ends.
        while let Some((next, _)) = self
            .freezes
            .iter()
            .find(|(i, _)| i.contains(until) && i.end > until)
        {
            until = next.end;
        }
        Some(ActiveFreeze {
            until,
            reason: reason.clone(),
        })
    }

    /// May the train deploy to a non-production environment on its own now?
    pub fn staging_gate(&self, now: DateTime<Utc>) -> Gate {
        match self.freeze_at(now) {
            Some(f) => Gate::Closed {
                why: freeze_message(&f),
                reopens: Some(f.until),
            },
            None => Gate::Open,
        }
    }

    /// May the train deploy to production on its own now? Inside the window
    /// and outside every freeze.
    pub fn production_gate(&self, now: DateTime<Utc>) -> Gate {
        let mut t = now;
        // Look for the first instant that is both in a window and unfrozen;
        // bounded because freezes are finite and windows recur.
        for _ in 0..64 {
            let Some(window) = self.window(t) else {
                return Gate::Closed {
                    why: "the production window never opens".into(),
                    reopens: None,
                };
            };
            if !window.contains(t) {
                t = window.start;
                continue;
            }
            match self.freeze_at(t) {
                Some(f) if f.until < window.end => t = f.until,
                Some(_) => t = window.end,
                None if t == now => return Gate::Open,
                None => break,
            }
        }
        let why = match (self.freeze_at(now), self.window(now)) {
            (Some(f), _) => freeze_message(&f),
            (None, Some(w)) if !w.contains(now) => {
                format!(
                    "waiting for the production window at {}",
                    w.start.to_rfc3339()
                )
            }
            _ => "waiting for the production window".into(),
        };
        Gate::Closed {
            why,
            reopens: (t > now).then_some(t),
        }
    }
}

fn freeze_message(f: &ActiveFreeze) -> String {
    if f.reason.is_empty() {
        format!("frozen until {}", f.until.to_rfc3339())
    } else {
        format!("frozen until {}: {}", f.until.to_rfc3339(), f.reason)
    }
}

fn next_match(cron: &Cron, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&t.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn previous_match(cron: &Cron, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&t.with_timezone(&tz), true)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests;
