//! The calendar of a train: cron schedules in an IANA time zone, the
//! production window and freezes. Every function takes the instant it asks
//! about; nothing here reads the clock.

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;

pub use crate::api::cron::parse_cron;
use crate::api::cron::{ParsedSchedule, next_match, parse_schedule};
use crate::api::deployment::Schedule;
use crate::api::validate::SpecError;

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

/// `t + d`, or the end of time when that is past what can be represented:
/// persisted instants and spec durations are outside data, and a deadline
/// beyond the year 262143 is as good as never.
pub fn later(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(if d < TimeDelta::zero() {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
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

impl From<ParsedSchedule> for Calendar {
    fn from(p: ParsedSchedule) -> Self {
        Self {
            tz: p.tz,
            build: p.build,
            window: p.window,
            freezes: p
                .freezes
                .into_iter()
                .map(|(start, end, reason)| (Interval { start, end }, reason))
                .collect(),
        }
    }
}

impl Calendar {
    /// Parses the schedule; every problem is reported with its field path.
    pub fn new(schedule: &Schedule) -> Result<Self, Vec<SpecError>> {
        parse_schedule(schedule).map(Self::from)
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
                end: later(start, *length),
            };
            if open.contains(now) {
                return Some(open);
            }
        }
        next_match(cron, self.tz, now).map(|start| Interval {
            start,
            end: later(start, *length),
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

fn previous_match(cron: &Cron, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !crate::api::cron::searchable(t) {
        return None;
    }
    cron.find_previous_occurrence(&t.with_timezone(&tz), true)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests;
