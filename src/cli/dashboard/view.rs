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
        items.extend(schedule_items(&cal, from, to));
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

fn schedule_items(cal: &Calendar, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<CalendarItem> {
    let mut items = Vec::new();
    let mut t = from;
    while items.len() < MAX_REPEATS
        && let Some(at) = cal.next_build_after(t)
        && at < to
    {
        items.push(CalendarItem {
            start: at,
            end: None,
            kind: "build",
            label: "Scheduled build".into(),
            environment: None,
            release: None,
        });
        t = at;
    }
    if !cal.has_window() {
        return items;
    }
    let mut t = from;
    let mut windows = 0;
    while windows < MAX_REPEATS
        && let Some(w) = cal.window(t)
        && w.start < to
    {
        items.push(CalendarItem {
            start: w.start,
            end: Some(w.end),
            kind: "window",
            label: "Production window".into(),
            environment: None,
            release: None,
        });
        windows += 1;
        // The next window starts after this one ends.
        t = w.end.max(t + TimeDelta::seconds(1));
    }
    items
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
