//! What the dashboard shows, computed purely from the objects the user can
//! read: the overview of every train, and one train with its week on a
//! calendar and its releases in full. The page renders these as they are.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use kube::ResourceExt;
use serde::Serialize;

use crate::api::release::{ChangelogStatus, EnvironmentProgress, ImageRef};
use crate::api::{PackitDeployment, PackitRelease};
use crate::cli::history::created;
use crate::cli::status::{DeploymentStatus, variant_name};
use crate::schedule::Calendar;

/// A row of the overview: where a train is and how its last release went.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrainRow {
    #[serde(flatten)]
    pub status: DeploymentStatus,
    /// The reason of the freeze in effect now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_freeze: Option<String>,
    /// The newest release that left the train, and how.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_release: Option<LastRelease>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LastRelease {
    pub name: String,
    pub phase: String,
    pub message: String,
}

/// One train in full.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrainView {
    #[serde(flatten)]
    pub row: TrainRow,
    /// Environments a release must be approved for, and the approvals the
    /// release in flight has.
    pub approval_required: Vec<String>,
    pub approved: Vec<String>,
    pub calendar: Vec<CalendarItem>,
    /// Newest first.
    pub releases: Vec<ReleaseView>,
}

/// Something on the week's calendar; `end` for what lasts.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct CalendarItem {
    pub start: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    /// `build`, `window`, `freeze`, `deploy`, `soak`, `verified`,
    /// `released`, `failed`, `rollback`, `approval`, `scheduled-rollback`.
    pub kind: &'static str,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

/// A release with what the page shows of it.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseView {
    pub name: String,
    pub phase: String,
    pub trigger: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commits: Option<String>,
    pub images: BTreeMap<String, ImageRef>,
    pub environments: Vec<EnvironmentProgress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changelog: Option<ChangelogStatus>,
}

/// How far back and ahead of now the calendar reaches: the page shows the
/// seven days around today.
const BEFORE: TimeDelta = TimeDelta::days(4);
const AHEAD: TimeDelta = TimeDelta::days(5);
/// Hourly builds would fill the week; the page needs no more than this.
const MAX_REPEATS: usize = 64;

/// The releases of `pkd` among `releases`, newest first.
fn releases_of<'a>(
    pkd: &PackitDeployment,
    releases: &'a [PackitRelease],
) -> Vec<&'a PackitRelease> {
    let name = pkd.name_any();
    let mut ours: Vec<&PackitRelease> = releases
        .iter()
        .filter(|r| r.spec.deployment == name && r.namespace() == pkd.namespace())
        .collect();
    ours.sort_by_key(|r| std::cmp::Reverse((created(*r), r.name_any())));
    ours
}

pub fn row(pkd: &PackitDeployment, releases: &[PackitRelease], now: DateTime<Utc>) -> TrainRow {
    let ns_releases: Vec<PackitRelease> = releases
        .iter()
        .filter(|r| r.namespace() == pkd.namespace())
        .cloned()
        .collect();
    let status = DeploymentStatus::of(pkd, &ns_releases, now);
    let active_freeze = Calendar::new(&pkd.spec.schedule)
        .ok()
        .and_then(|c| c.freeze_at(now))
        .map(|f| f.reason);
    let last_release = pkd
        .status
        .as_ref()
        .and_then(|s| s.train.last_finished.as_ref())
        .map(|f| LastRelease {
            name: f.release.clone(),
            phase: variant_name(&f.phase),
            message: f.message.clone(),
        });
    TrainRow {
        status,
        active_freeze,
        last_release,
    }
}

/// The overview: every train, by namespace and name.
pub fn overview(
    pkds: &[PackitDeployment],
    releases: &[PackitRelease],
    now: DateTime<Utc>,
) -> Vec<TrainRow> {
    let mut rows: Vec<TrainRow> = pkds.iter().map(|p| row(p, releases, now)).collect();
    rows.sort_by(|a, b| {
        (&a.status.namespace, &a.status.name).cmp(&(&b.status.namespace, &b.status.name))
    });
    rows
}

pub fn train(pkd: &PackitDeployment, releases: &[PackitRelease], now: DateTime<Utc>) -> TrainView {
    let ours = releases_of(pkd, releases);
    let in_flight = pkd.status.as_ref().and_then(|s| s.train.in_flight.as_ref());
    TrainView {
        row: row(pkd, releases, now),
        approval_required: pkd
            .spec
            .environments
            .iter()
            .filter(|e| e.requires_approval())
            .map(|e| e.name.clone())
            .collect(),
        approved: in_flight
            .map(|f| f.approvals.iter().map(|a| a.environment.clone()).collect())
            .unwrap_or_default(),
        calendar: calendar(pkd, &ours, now),
        releases: ours.into_iter().map(release_view).collect(),
    }
}

fn release_view(r: &PackitRelease) -> ReleaseView {
    let status = r.status.clone().unwrap_or_default();
    ReleaseView {
        name: r.name_any(),
        phase: status
            .phase
            .map_or_else(|| "Pending".to_owned(), |p| variant_name(&p)),
        trigger: variant_name(&r.spec.trigger),
        created: created(r),
        message: status.message,
        commits: status.commit_summary,
        images: r.spec.images.clone().unwrap_or_default(),
        environments: status.environments,
        changelog: status.changelog,
    }
}

/// The week around `now`: the schedule's builds, windows and freezes, what
/// the releases did, and the rollbacks asked for later.
fn calendar(
    pkd: &PackitDeployment,
    releases: &[&PackitRelease],
    now: DateTime<Utc>,
) -> Vec<CalendarItem> {
    let (from, to) = (now - BEFORE, now + AHEAD);
    let mut items = Vec::new();
    if let Ok(cal) = Calendar::new(&pkd.spec.schedule) {
        items.extend(schedule_items(&cal, from, now, to));
    }
    for f in &pkd.spec.schedule.freezes {
        if f.start < to && f.end > from {
            items.push(CalendarItem {
                start: f.start,
                end: Some(f.end),
                kind: "freeze",
                label: format!("Freeze: {}", f.reason),
                environment: None,
                release: None,
            });
        }
    }
    let production = pkd.spec.environments.last().map(|e| e.name.as_str());
    for r in releases {
        items.extend(release_items(r, production, now));
    }
    if let Some(s) = &pkd.status {
        items.extend(s.train.scheduled_rollbacks.iter().map(|r| CalendarItem {
            start: r.at,
            end: None,
            kind: "scheduled-rollback",
            label: format!(
                "Rollback of {} to {}",
                r.environment,
                r.to.as_deref().unwrap_or("the previous good release")
            ),
            environment: Some(r.environment.clone()),
            release: r.to.clone(),
        }));
    }
    items.retain(|i| i.start < to && i.end.unwrap_or(i.start) >= from);
    items.sort();
    items
}

/// The scheduled builds and production windows between `from` and `to`.
/// A schedule too dense to list them all (a window every minute) lists
/// the ones from `now` on.
fn schedule_items(
    cal: &Calendar,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<CalendarItem> {
    let builds = |from| {
        repeated(from, to, |t| {
            let at = cal.next_build_after(t)?;
            Some((at, at))
        })
    };
    let windows = |from| {
        if !cal.has_window() {
            return Vec::new();
        }
        repeated(from, to, |t| {
            let w = cal.window(t)?;
            // The next window starts after this one ends.
            Some((w.start, w.end.max(t + TimeDelta::seconds(1))))
        })
    };
    let dense = |list: &Vec<(DateTime<Utc>, DateTime<Utc>)>| {
        list.len() == MAX_REPEATS && list.last().is_some_and(|(start, _)| *start < now)
    };
    let mut b = builds(from);
    if dense(&b) {
        b = builds(now);
    }
    let mut w = windows(from);
    if dense(&w) {
        w = windows(now);
    }
    let build = b.into_iter().map(|(start, _)| CalendarItem {
        start,
        end: None,
        kind: "build",
        label: "Scheduled build".into(),
        environment: None,
        release: None,
    });
    let window = w.into_iter().map(|(start, end)| CalendarItem {
        start,
        end: Some(end),
        kind: "window",
        label: "Production window".into(),
        environment: None,
        release: None,
    });
    build.chain(window).collect()
}

/// Up to [`MAX_REPEATS`] occurrences `(start, next)` from `from` on that
/// start before `to`; `next` is where to look for the one after.
fn repeated(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    next: impl Fn(DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut t = from;
    while out.len() < MAX_REPEATS
        && let Some((start, after)) = next(t)
        && start < to
    {
        out.push((start, after));
        t = after;
    }
    out
}

fn release_items(
    r: &PackitRelease,
    production: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<CalendarItem> {
    let name = r.name_any();
    let status = r.status.clone().unwrap_or_default();
    let item = |start, end, kind, label: String, env: Option<&str>| CalendarItem {
        start,
        end,
        kind,
        label,
        environment: env.map(str::to_owned),
        release: Some(name.clone()),
    };
    let mut items = Vec::new();
    if let Some(at) = created(r) {
        items.push(item(at, None, "build", format!("Build {name}"), None));
    }
    let rolled_back = status.phase == Some(crate::plan::ReleasePhase::RolledBack);
    for e in &status.environments {
        let env = Some(e.name.as_str());
        let is_production = production == env;
        if let Some(a) = &e.approval {
            let by = a.reported_user.as_deref().unwrap_or("someone");
            let label = format!("Approved for {} by {by}", e.name);
            items.push(item(a.approved_at, None, "approval", label, env));
        }
        let Some(deployed) = e.deployed_at else {
            continue;
        };
        items.push(item(
            deployed,
            None,
            "deploy",
            format!("{name} to {}", e.name),
            env,
        ));
        // Verification (the soak in production) lasts until a verdict, or
        // until now while it runs.
        let verdict = e.verified_at.or(e.failed_at);
        let running = verdict.is_none() && !status.phase.is_some_and(|p| p.is_final());
        if let Some(end) = verdict.or(running.then_some(now)) {
            let kind = if is_production { "soak" } else { "verify" };
            let label = format!("Verifying {name} in {}", e.name);
            items.push(item(deployed, Some(end), kind, label, env));
        }
        if let Some(at) = e.verified_at {
            let (kind, label) = if is_production {
                ("released", format!("{name} released"))
            } else {
                ("verified", format!("{name} verified in {}", e.name))
            };
            items.push(item(at, None, kind, label, env));
        }
        if let Some(at) = e.failed_at {
            let (kind, label) = if is_production && rolled_back {
                ("rollback", format!("{name} rolled back"))
            } else {
                ("failed", format!("{name} failed in {}", e.name))
            };
            items.push(item(at, None, kind, label, env));
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    /// Wednesday 16 December 2026, 12:00 UTC: the example train builds on
    /// Friday 18:00 and deploys in the Sunday 23:00 window (Prague).
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 16, 12, 0, 0).unwrap()
    }

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, h, 0, 0).unwrap()
    }

    fn release(name: &str, created: DateTime<Utc>, status: serde_json::Value) -> PackitRelease {
        serde_json::from_value(json!({
            "apiVersion": "packit.dev/v1alpha1",
            "kind": "PackitRelease",
            "metadata": { "name": name, "namespace": "packit-system", "creationTimestamp": created.to_rfc3339() },
            "spec": {
                "deployment": "packit-service",
                "trigger": "Schedule",
                "components": [{ "name": "service", "source": { "url": "https://github.com/packit/packit-service.git", "commit": "0123456789012345678901234567890123456789" } }]
            },
            "status": status,
        }))
        .unwrap()
    }

    fn train_with(status: serde_json::Value) -> PackitDeployment {
        let mut pkd = crate::api::tests::example();
        pkd.status = Some(serde_json::from_value(status).unwrap());
        pkd
    }

    fn kinds(items: &[CalendarItem], kind: &str) -> Vec<(DateTime<Utc>, String)> {
        items
            .iter()
            .filter(|i| i.kind == kind)
            .map(|i| (i.start, i.label.clone()))
            .collect()
    }

    #[test]
    fn the_week_holds_the_schedule_and_what_the_releases_did() {
        let pkd = train_with(json!({
            "scheduledRollbacks": [{ "environment": "production", "at": at(21, 8).to_rfc3339(), "requestedAt": at(16, 9).to_rfc3339() }]
        }));
        let rolled_back = release(
            "svc-2",
            at(14, 9),
            json!({
                "phase": "RolledBack",
                "environments": [
                    { "name": "staging", "deployedAt": at(14, 10).to_rfc3339(), "verifiedAt": at(14, 11).to_rfc3339() },
                    { "name": "production", "deployedAt": at(14, 22).to_rfc3339(), "failedAt": at(14, 23).to_rfc3339(),
                      "approval": { "environment": "production", "approvedAt": at(14, 12).to_rfc3339(), "reportedUser": "alice" } }
                ]
            }),
        );
        let view = train(&pkd, &[rolled_back], now());
        let c = &view.calendar;
        // Friday 18 December 18:00 in Prague is 17:00 UTC; the window Sunday
        // 20 December 23:00 is 22:00 UTC, for 4 hours.
        assert_eq!(
            kinds(c, "build")
                .iter()
                .filter(|(_, l)| l == "Scheduled build")
                .count(),
            1
        );
        assert!(kinds(c, "build").contains(&(at(18, 17), "Scheduled build".into())));
        let windows: Vec<_> = c.iter().filter(|i| i.kind == "window").collect();
        assert_eq!(windows.len(), 2, "last Sunday's and the next: {windows:?}");
        assert_eq!(
            (windows[1].start, windows[1].end),
            (at(20, 22), Some(at(21, 2)))
        );
        assert_eq!(
            kinds(c, "approval"),
            [(at(14, 12), "Approved for production by alice".into())]
        );
        assert_eq!(
            kinds(c, "rollback"),
            [(at(14, 23), "svc-2 rolled back".into())]
        );
        assert_eq!(
            kinds(c, "verified"),
            [(at(14, 11), "svc-2 verified in staging".into())]
        );
        let soak = c
            .iter()
            .find(|i| i.kind == "soak")
            .expect("the production soak");
        assert_eq!((soak.start, soak.end), (at(14, 22), Some(at(14, 23))));
        assert_eq!(
            kinds(c, "scheduled-rollback"),
            [(
                at(21, 8),
                "Rollback of production to the previous good release".into()
            )]
        );
        assert!(c.windows(2).all(|w| w[0] <= w[1]), "sorted by time");
        assert_eq!(view.approval_required, Vec::<String>::new());
    }

    #[test]
    fn freezes_in_the_week_are_shown_and_one_in_effect_is_named() {
        let pkd = train_with(json!({}));
        let in_freeze = at(22, 12);
        let view = train(&pkd, &[], in_freeze);
        assert_eq!(
            kinds(&view.calendar, "freeze"),
            [(
                Utc.with_ymd_and_hms(2026, 12, 20, 23, 0, 0).unwrap(),
                "Freeze: winter holidays".into()
            )]
        );
        assert_eq!(view.row.active_freeze.as_deref(), Some("winter holidays"));
        assert_eq!(row(&pkd, &[], now()).active_freeze, None);
    }

    #[test]
    fn a_dense_schedule_lists_what_comes_from_now() {
        let mut pkd = train_with(json!({}));
        pkd.spec.schedule.production = Some(crate::api::deployment::Window {
            start: "*/15 * * * * *".into(),
            duration: "10s".into(),
        });
        let view = train(&pkd, &[], now());
        let windows = kinds(&view.calendar, "window");
        assert_eq!(windows.len(), MAX_REPEATS);
        assert!(
            windows[0].0 <= now() && now() < windows[1].0,
            "{:?}",
            windows[0]
        );
    }

    #[test]
    fn releases_newest_first_with_verification_running_until_now() {
        let pkd = train_with(json!({
            "inFlight": { "release": "svc-2", "stage": "Verifying", "environment": "staging", "since": at(16, 10).to_rfc3339(),
                          "approvals": [{ "environment": "production", "approvedAt": at(16, 11).to_rfc3339() }] },
            "lastFinished": { "release": "svc-1", "phase": "Released", "message": "released to production" }
        }));
        let mut pkd = pkd;
        pkd.spec.environments[1].approval =
            Some(crate::api::deployment::ApprovalSpec { required: true });
        let old = release("svc-1", at(11, 17), json!({ "phase": "Released" }));
        let new = release(
            "svc-2",
            at(16, 9),
            json!({ "phase": "Staging", "environments": [{ "name": "staging", "deployedAt": at(16, 10).to_rfc3339() }] }),
        );
        let other: PackitRelease = {
            let mut r = release("other-1", at(16, 11), json!({}));
            r.spec.deployment = "other".into();
            r
        };
        let view = train(&pkd, &[old, other, new], now());
        let names: Vec<&str> = view.releases.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["svc-2", "svc-1"]);
        let verifying = view
            .calendar
            .iter()
            .find(|i| i.kind == "verify")
            .expect("verifying");
        assert_eq!((verifying.start, verifying.end), (at(16, 10), Some(now())));
        assert_eq!(view.approval_required, ["production"]);
        assert_eq!(view.approved, ["production"]);
        let last = view.row.last_release.expect("the last release");
        assert_eq!(
            (last.name.as_str(), last.phase.as_str()),
            ("svc-1", "Released")
        );
    }
}
