use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Europe::Prague;

use super::*;
use crate::api::deployment::{Freeze, Schedule, Window};

/// A Prague wall-clock time, for readable tables. Ambiguous times take the
/// earlier instant; tests that care use `utc` instead.
fn prague(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Prague
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .earliest()
        .expect("a wall-clock time that exists")
        .with_timezone(&Utc)
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn calendar(build: Option<&str>, window: Option<(&str, &str)>, freezes: Vec<Freeze>) -> Calendar {
    Calendar::new(&Schedule {
        time_zone: "Europe/Prague".into(),
        build: build.map(Into::into),
        production: window.map(|(start, duration)| Window {
            start: start.into(),
            duration: duration.into(),
        }),
        freezes,
        suspend: false,
    })
    .expect("valid schedule")
}

#[test]
fn next_build_follows_the_cron_in_the_time_zone() {
    let cal = calendar(Some("0 18 * * FRI"), None, vec![]);
    let cases = [
        // (now, next build)
        (prague(2026, 11, 18, 9, 0), prague(2026, 11, 20, 18, 0)),
        (prague(2026, 11, 20, 18, 0), prague(2026, 11, 27, 18, 0)),
        (prague(2026, 11, 20, 17, 59), prague(2026, 11, 20, 18, 0)),
        // Summer time: 18:00 CEST is 16:00 UTC.
        (prague(2026, 7, 1, 0, 0), utc(2026, 7, 3, 16, 0)),
    ];
    for (now, want) in cases {
        assert_eq!(cal.next_build_after(now), Some(want), "now = {now}");
    }
}

#[test]
fn due_build_is_the_latest_slot_after_the_last_one_handled() {
    let cal = calendar(Some("0 18 * * FRI"), None, vec![]);
    let last = prague(2026, 11, 13, 18, 0);
    // Not yet due.
    assert_eq!(cal.due_build(last, prague(2026, 11, 20, 17, 0)), None);
    // Due at the slot.
    assert_eq!(
        cal.due_build(last, prague(2026, 11, 20, 18, 0)),
        Some(prague(2026, 11, 20, 18, 0))
    );
    // Down for two weeks: one build, for the latest slot.
    assert_eq!(
        cal.due_build(last, prague(2026, 12, 1, 9, 0)),
        Some(prague(2026, 11, 27, 18, 0))
    );
    // Already handled.
    assert_eq!(
        cal.due_build(prague(2026, 11, 20, 18, 0), prague(2026, 11, 21, 0, 0)),
        None
    );
}

#[test]
fn seconds_field_is_accepted_for_fast_schedules() {
    let cal = calendar(Some("*/20 * * * * *"), None, vec![]);
    let now = utc(2026, 11, 24, 10, 0) + TimeDelta::seconds(5);
    assert_eq!(
        cal.next_build_after(now),
        Some(utc(2026, 11, 24, 10, 0) + TimeDelta::seconds(20))
    );
}

#[test]
fn friday_build_then_sunday_monday_night_window() {
    // Build Friday 18:00; window Sunday 23:00 for 4 hours (into Monday).
    let cal = calendar(Some("0 18 * * FRI"), Some(("0 23 * * SUN", "4h")), vec![]);
    let built = prague(2026, 11, 20, 18, 0);
    let w = cal.window(built).unwrap();
    assert_eq!(w.start, prague(2026, 11, 22, 23, 0));
    assert_eq!(w.end, prague(2026, 11, 23, 3, 0));
    // Closed on Saturday, reopening at the window start.
    assert_eq!(
        cal.production_gate(prague(2026, 11, 21, 12, 0)),
        Gate::Closed {
            why: format!(
                "waiting for the production window at {}",
                w.start.to_rfc3339()
            ),
            reopens: Some(w.start),
        }
    );
    // Open on Monday 01:30, inside the window that began on Sunday.
    assert_eq!(cal.production_gate(prague(2026, 11, 23, 1, 30)), Gate::Open);
    assert_eq!(cal.window(prague(2026, 11, 23, 1, 30)), Some(w));
    // Closed again at the end (half-open interval).
    assert!(
        matches!(cal.production_gate(w.end), Gate::Closed { reopens: Some(t), .. } if t == prague(2026, 11, 29, 23, 0))
    );
}

/// Window at 02:30 on Sunday nights, 3 hours long, across both DST nights.
/// Spring forward (29 March 2026): 02:30 does not exist; the window opens at
/// 03:00 CEST, the first instant after the gap, and still lasts 3 hours.
/// Fall back (25 October 2026): 02:30 happens twice; the window opens once,
/// at the first 02:30 (CEST), and is not reopened by the second.
#[test]
fn dst_nights_in_prague_with_a_window_at_0230() {
    let cal = calendar(None, Some(("30 2 * * SUN", "3h")), vec![]);
    let cases = [
        // (asked at, window start, window end) - all in UTC
        // An ordinary winter Sunday: 02:30 CET = 01:30 UTC.
        (
            utc(2026, 3, 21, 12, 0),
            utc(2026, 3, 22, 1, 30),
            utc(2026, 3, 22, 4, 30),
        ),
        // DST starts: 03:00 CEST = 01:00 UTC.
        (
            utc(2026, 3, 28, 12, 0),
            utc(2026, 3, 29, 1, 0),
            utc(2026, 3, 29, 4, 0),
        ),
        // Inside that shifted window.
        (
            utc(2026, 3, 29, 2, 0),
            utc(2026, 3, 29, 1, 0),
            utc(2026, 3, 29, 4, 0),
        ),
        // The next Sunday is normal summer time: 02:30 CEST = 00:30 UTC.
        (
            utc(2026, 4, 4, 12, 0),
            utc(2026, 4, 5, 0, 30),
            utc(2026, 4, 5, 3, 30),
        ),
        // DST ends: the first 02:30 is CEST = 00:30 UTC.
        (
            utc(2026, 10, 24, 12, 0),
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 25, 3, 30),
        ),
        // During the repeated hour (02:45 CET = 01:45 UTC) it is the same
        // window, not a second one starting at 02:30 CET.
        (
            utc(2026, 10, 25, 1, 45),
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 25, 3, 30),
        ),
        // The next Sunday is winter time: 02:30 CET = 01:30 UTC.
        (
            utc(2026, 10, 26, 12, 0),
            utc(2026, 11, 1, 1, 30),
            utc(2026, 11, 1, 4, 30),
        ),
    ];
    for (at, start, end) in cases {
        assert_eq!(
            cal.window(at),
            Some(Interval { start, end }),
            "asked at {at}"
        );
    }
    // After the fall-back window closes there is no second one that night.
    let after = utc(2026, 10, 25, 3, 30);
    assert_eq!(
        cal.window(after).map(|w| w.start),
        Some(utc(2026, 11, 1, 1, 30))
    );
}

#[test]
fn dst_night_builds_run_once() {
    // A build at 02:30 every day: once on the fall-back night, once (at
    // 03:00) on the spring-forward night.
    let cal = calendar(Some("30 2 * * *"), None, vec![]);
    assert_eq!(
        cal.next_build_after(utc(2026, 3, 28, 12, 0)),
        Some(utc(2026, 3, 29, 1, 0))
    );
    assert_eq!(
        cal.next_build_after(utc(2026, 10, 24, 12, 0)),
        Some(utc(2026, 10, 25, 0, 30))
    );
    assert_eq!(
        cal.next_build_after(utc(2026, 10, 25, 0, 30)),
        Some(utc(2026, 10, 26, 1, 30))
    );
}

#[test]
fn a_freeze_covering_a_whole_window_pushes_production_to_the_next_window() {
    let freeze = Freeze {
        start: prague(2026, 12, 19, 0, 0),
        end: prague(2026, 12, 28, 0, 0),
        reason: "holidays".into(),
    };
    let cal = calendar(None, Some(("0 1 * * MON", "3h")), vec![freeze]);
    // Monday 21 December 01:30 is inside the window but frozen.
    let gate = cal.production_gate(prague(2026, 12, 21, 1, 30));
    assert_eq!(
        gate,
        Gate::Closed {
            why: format!(
                "frozen until {}: holidays",
                prague(2026, 12, 28, 0, 0).to_rfc3339()
            ),
            reopens: Some(prague(2026, 12, 28, 1, 0)),
        }
    );
    // Staging is frozen too, until the freeze ends.
    assert!(matches!(
        cal.staging_gate(prague(2026, 12, 21, 1, 30)),
        Gate::Closed { reopens: Some(t), .. } if t == prague(2026, 12, 28, 0, 0)
    ));
    assert_eq!(cal.production_gate(prague(2026, 12, 28, 1, 0)), Gate::Open);
}

#[test]
fn a_freeze_ending_inside_a_window_reopens_at_its_end() {
    let freeze = Freeze {
        start: prague(2026, 11, 22, 0, 0),
        end: prague(2026, 11, 23, 2, 0),
        reason: String::new(),
    };
    let cal = calendar(None, Some(("0 1 * * MON", "3h")), vec![freeze]);
    assert!(matches!(
        cal.production_gate(prague(2026, 11, 23, 1, 0)),
        Gate::Closed { reopens: Some(t), .. } if t == prague(2026, 11, 23, 2, 0)
    ));
    assert_eq!(cal.production_gate(prague(2026, 11, 23, 2, 0)), Gate::Open);
}

#[test]
fn overlapping_freezes_chain() {
    let cal = calendar(
        None,
        None,
        vec![
            Freeze {
                start: utc(2026, 12, 1, 0, 0),
                end: utc(2026, 12, 5, 0, 0),
                reason: "a".into(),
            },
            Freeze {
                start: utc(2026, 12, 4, 0, 0),
                end: utc(2026, 12, 9, 0, 0),
                reason: "b".into(),
            },
        ],
    );
    assert_eq!(
        cal.freeze_at(utc(2026, 12, 2, 0, 0)).map(|f| f.until),
        Some(utc(2026, 12, 9, 0, 0))
    );
    assert_eq!(cal.freeze_at(utc(2026, 12, 9, 0, 0)), None);
}

#[test]
fn without_a_window_production_is_open_unless_frozen() {
    let cal = calendar(None, None, vec![]);
    assert_eq!(cal.production_gate(utc(2026, 11, 24, 12, 0)), Gate::Open);
    assert!(!cal.has_window());
}

#[test]
fn bad_schedules_name_the_field_and_value() {
    let bad = Schedule {
        time_zone: "Europe/Pargue".into(),
        build: Some("61 * * * *".into()),
        production: Some(Window {
            start: "0 0 30 2 *".into(),
            duration: "0s".into(),
        }),
        freezes: vec![Freeze {
            start: utc(2026, 12, 2, 0, 0),
            end: utc(2026, 12, 1, 0, 0),
            reason: String::new(),
        }],
        suspend: false,
    };
    let errors = Calendar::new(&bad).unwrap_err();
    let fields: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.field.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("spec.schedule.timeZone", "Europe/Pargue"),
            ("spec.schedule.build", "61 * * * *"),
            ("spec.schedule.production.duration", "0s"),
            ("spec.schedule.freezes[0].end", "2026-12-01T00:00:00+00:00"),
        ]
    );
    assert!(
        errors[0].to_string().contains("IANA time zone"),
        "{}",
        errors[0]
    );
    assert!(
        errors[2].to_string().contains("longer than zero"),
        "{}",
        errors[2]
    );
    assert!(
        errors[3].to_string().contains("after the start"),
        "{}",
        errors[3]
    );
}

#[test]
fn a_window_that_never_opens_is_rejected() {
    let never = Schedule {
        time_zone: "UTC".into(),
        production: Some(Window {
            start: "0 0 30 2 *".into(),
            duration: "1h".into(),
        }),
        ..Default::default()
    };
    let errors = Calendar::new(&never).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "spec.schedule.production.start");
    assert!(errors[0].message.contains("never"), "{}", errors[0]);
}
