//! `kubectl packit status`: what each PackitDeployment is doing, as a view
//! that prints as text for people or serialises for scripts.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use serde::Serialize;

use super::history::created;
use super::table;
use super::verdicts::{self, EnvironmentVerdicts};
use super::when::{Zone, relative};
use crate::api::checks::JobResult;
use crate::api::{PackitDeployment, PackitRelease};
use crate::schedule::Calendar;

/// One deployment as `status` shows it.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    pub name: String,
    pub namespace: String,
    /// `Idle`, `Building`, `Waiting:<env>`, ...; `Unknown` before the
    /// operator wrote a status.
    pub phase: String,
    pub suspended: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_build: Option<DateTime<Utc>>,
    /// The start of the next production window after now (the open one
    /// is `windowOpenUntil`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_window: Option<DateTime<Utc>>,
    /// The end of the production window open now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_open_until: Option<DateTime<Utc>>,
    /// Set when the window could not be computed here and the stored one
    /// has passed: the operator is yet to recompute it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub window_stale: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
    pub environments: Vec<Environment>,
    pub conditions: Vec<ConditionSummary>,
    /// The metric checks and smoke tests of the release in flight, or else
    /// of the newest release; absent when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// The verdicts recorded on one release, per environment.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub release: String,
    /// Whether it is the release in flight (else the newest one).
    pub in_flight: bool,
    pub environments: Vec<EnvironmentVerdicts>,
}

/// The release in flight.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InFlight {
    pub release: String,
    /// `Building`, `Waiting` or `Verifying`.
    pub stage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub since: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One environment, in promotion order.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    pub name: String,
    /// Namespace of the target workloads.
    pub namespace: String,
    /// The remote cluster they are on (its kubeconfig Secret's name); none
    /// for the operator's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
}

/// A condition without its bookkeeping fields.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConditionSummary {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// The serialised name of a unit enum variant (`Stage::Waiting` -> `Waiting`).
pub(crate) fn variant_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "Unknown".into(),
    }
}

/// The release whose verdicts `status` shows: the one in flight, else the
/// newest of the deployment among `releases`.
fn shown_release<'a>(
    pkd: &PackitDeployment,
    releases: &'a [PackitRelease],
) -> Option<(&'a PackitRelease, bool)> {
    let name = pkd.name_any();
    let ours = releases.iter().filter(|r| r.spec.deployment == name);
    let in_flight = pkd
        .status
        .as_ref()
        .and_then(|s| s.train.in_flight.as_ref())
        .map(|f| f.release.as_str());
    if let Some(f) = in_flight
        && let Some(r) = ours.clone().find(|r| r.name_any() == f)
    {
        return Some((r, true));
    }
    ours.max_by(|a, b| (created(*a), a.name_any()).cmp(&(created(*b), b.name_any())))
        .map(|r| (r, false))
}

fn verification(pkd: &PackitDeployment, releases: &[PackitRelease]) -> Option<Verification> {
    let (r, in_flight) = shown_release(pkd, releases)?;
    let environments = verdicts::of_environments(
        r.status
            .as_ref()
            .map(|s| s.environments.as_slice())
            .unwrap_or_default(),
    );
    (!environments.is_empty()).then(|| Verification {
        release: r.name_any(),
        in_flight,
        environments,
    })
}

impl DeploymentStatus {
    /// The view of `pkd` at `now`; `releases` (of any deployment in its
    /// namespace) give the verdicts of its release in flight or newest
    /// release.
    pub fn of(pkd: &PackitDeployment, releases: &[PackitRelease], now: DateTime<Utc>) -> Self {
        let namespace = pkd.namespace().unwrap_or_default();
        let status = pkd.status.clone().unwrap_or_default();
        let window = window_at(pkd, status.next_window, now);
        let environments = pkd
            .spec
            .environments
            .iter()
            .map(|env| {
                let state = status
                    .train
                    .environments
                    .iter()
                    .find(|s| s.name == env.name);
                Environment {
                    name: env.name.clone(),
                    namespace: env.namespace.clone().unwrap_or_else(|| namespace.clone()),
                    cluster: crate::remote::cluster_name(env).map(str::to_owned),
                    release: state.and_then(|s| s.release.clone()),
                    deployed_at: state.and_then(|s| s.deployed_at),
                    pin: env.pin.clone(),
                }
            })
            .collect();
        DeploymentStatus {
            name: pkd.name_any(),
            namespace,
            phase: status.phase.clone().unwrap_or_else(|| "Unknown".into()),
            suspended: pkd.spec.schedule.suspend,
            next_build: status.next_build.filter(|t| *t >= now).or_else(|| {
                Calendar::new(&pkd.spec.schedule)
                    .ok()
                    .filter(|_| !pkd.spec.schedule.suspend)
                    .and_then(|c| c.next_build_after(now))
            }),
            next_window: window.next,
            window_open_until: window.open_until,
            window_stale: window.stale,
            in_flight: status.train.in_flight.as_ref().map(|f| InFlight {
                release: f.release.clone(),
                stage: variant_name(&f.stage),
                environment: f.environment.clone(),
                since: f.since,
                message: f.message.clone(),
            }),
            environments,
            conditions: status.conditions.iter().map(summary).collect(),
            verification: verification(pkd, releases),
        }
    }
}

/// The production window as `status` shows it.
#[derive(Debug, Default, PartialEq)]
struct WindowView {
    next: Option<DateTime<Utc>>,
    open_until: Option<DateTime<Utc>>,
    stale: bool,
}

/// The production window at `now`, from the spec's schedule with this
/// clock: `status.nextWindow` is only as fresh as the last reconcile, and a
/// window that passed is never shown as the next. The stored value is the
/// fallback when the schedule cannot be read here.
fn window_at(
    pkd: &PackitDeployment,
    stored: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> WindowView {
    let Ok(calendar) = Calendar::new(&pkd.spec.schedule) else {
        return WindowView {
            next: stored,
            open_until: None,
            stale: stored.is_some_and(|t| t < now),
        };
    };
    if !calendar.has_window() {
        return WindowView::default();
    }
    match calendar.window(now) {
        Some(w) if w.start <= now => WindowView {
            next: calendar.window(w.end).map(|n| n.start),
            open_until: Some(w.end),
            stale: false,
        },
        w => WindowView {
            next: w.map(|w| w.start),
            ..WindowView::default()
        },
    }
}

fn summary(c: &Condition) -> ConditionSummary {
    ConditionSummary {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
    }
}

/// Whether a condition reports trouble: not Ready, or Degraded/InvalidSpec.
fn is_problem(c: &ConditionSummary) -> bool {
    match c.type_.as_str() {
        "Ready" => c.status != "True",
        "Progressing" => false,
        _ => c.status == "True",
    }
}

/// `Ready, Progressing (Waiting)`: the conditions that hold, with reasons
/// where they add something.
pub fn conditions_line(conditions: &[ConditionSummary]) -> String {
    let held: Vec<String> = conditions
        .iter()
        .filter(|c| c.status == "True")
        .map(|c| {
            if c.reason.is_empty() || c.reason == c.type_ {
                c.type_.clone()
            } else {
                format!("{} ({})", c.type_, c.reason)
            }
        })
        .collect();
    if held.is_empty() {
        let ready = conditions.iter().find(|c| c.type_ == "Ready");
        return match ready {
            Some(c) => format!("not Ready ({})", c.reason),
            None => "none yet".into(),
        };
    }
    let mut line = held.join(", ");
    if conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status != "True")
    {
        line = format!("not Ready, {line}");
    }
    line
}

fn when(t: Option<DateTime<Utc>>, now: DateTime<Utc>, zone: &Zone, none: &str) -> String {
    match t {
        Some(t) => format!("{} ({})", zone.show(t), relative(t, now)),
        None => none.into(),
    }
}

fn window_line(d: &DeploymentStatus, now: DateTime<Utc>, zone: &Zone) -> String {
    match (d.window_open_until, d.next_window) {
        (Some(end), next) => {
            let mut line = format!("open now, until {}", when(Some(end), now, zone, ""));
            if let Some(next) = next {
                line.push_str(&format!("; then {}", when(Some(next), now, zone, "")));
            }
            line
        }
        (None, Some(t)) if d.window_stale || t < now => {
            format!(
                "being recomputed (the last one known, {}, has passed)",
                zone.show(t)
            )
        }
        (None, next) => when(next, now, zone, "none (no production window)"),
    }
}

/// The text `status` prints: a block per deployment.
pub fn render(list: &[DeploymentStatus], now: DateTime<Utc>, zone: &Zone) -> String {
    let blocks: Vec<String> = list.iter().map(|d| render_one(d, now, zone)).collect();
    blocks.join("\n")
}

fn render_one(d: &DeploymentStatus, now: DateTime<Utc>, zone: &Zone) -> String {
    let mut out = format!("{} (namespace {})\n", d.name, d.namespace);
    let phase = if d.suspended {
        format!("{} (suspended)", d.phase)
    } else {
        d.phase.clone()
    };
    let mut field = |k: &str, v: String| out.push_str(&format!("  {k:<13}{v}\n"));
    field("Phase:", phase);
    field(
        "Next build:",
        when(d.next_build, now, zone, "none scheduled"),
    );
    field("Next window:", window_line(d, now, zone));
    if let Some(f) = &d.in_flight {
        let mut v = format!("{} {}", f.release, f.stage.to_lowercase());
        if let Some(env) = &f.environment {
            let prep = if f.stage == "Waiting" { "for" } else { "in" };
            v.push_str(&format!(" {prep} {env}"));
        }
        v.push_str(&format!(" since {}", relative(f.since, now)));
        if let Some(m) = f.message.as_deref().filter(|m| !m.is_empty()) {
            v.push_str(&format!(": {m}"));
        }
        field("In flight:", v);
    }
    field("Conditions:", conditions_line(&d.conditions));
    for c in d.conditions.iter().filter(|c| is_problem(c)) {
        field("", format!("{} {}: {}", c.type_, c.reason, c.message));
    }
    // The cluster column only for trains that reach beyond this cluster.
    let remote = d.environments.iter().any(|e| e.cluster.is_some());
    let rows: Vec<Vec<String>> = d
        .environments
        .iter()
        .map(|e| {
            let mut release = e.release.clone().unwrap_or_else(|| "-".into());
            if let Some(pin) = &e.pin {
                release.push_str(&format!(" (pinned to {pin})"));
            }
            let mut row = vec![e.name.clone()];
            if remote {
                row.push(e.cluster.clone().unwrap_or_else(|| "(this)".into()));
            }
            row.extend([
                e.namespace.clone(),
                release,
                e.deployed_at
                    .map_or_else(|| "-".into(), |t| relative(t, now)),
            ]);
            row
        })
        .collect();
    let headers: &[&str] = if remote {
        &["ENVIRONMENT", "CLUSTER", "NAMESPACE", "RELEASE", "DEPLOYED"]
    } else {
        &["ENVIRONMENT", "NAMESPACE", "RELEASE", "DEPLOYED"]
    };
    out.push('\n');
    for line in table::render(headers, &rows).lines() {
        out.push_str(&format!("  {line}\n"));
    }
    if let Some(v) = &d.verification {
        let which = if v.in_flight { "in flight" } else { "newest" };
        out.push_str(&format!("\n  Checks of {} ({which}):\n", v.release));
        for line in verdicts::table(&v.environments, now).lines() {
            out.push_str(&format!("  {line}\n"));
        }
        let failed_test = v
            .environments
            .iter()
            .flat_map(|e| &e.smoke_tests)
            .any(|j| j.result == JobResult::Fail);
        if failed_test {
            out.push_str(&format!(
                "  Smoke-test logs: kubectl packit logs {} --smoke-tests -n {}\n",
                v.release, d.namespace
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {

    use super::*;

    fn now() -> DateTime<Utc> {
        crate::cli::test_now()
    }

    fn cond(t: &str, s: &str, r: &str, m: &str) -> ConditionSummary {
        ConditionSummary {
            type_: t.into(),
            status: s.into(),
            reason: r.into(),
            message: m.into(),
        }
    }

    fn pkd() -> PackitDeployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "packit.dev/v1alpha1",
            "kind": "PackitDeployment",
            "metadata": { "name": "svc", "namespace": "team" },
            "spec": {
                "components": [{ "name": "service", "source": { "url": "https://example.com/s.git" },
                                 "image": "quay.io/x/s", "build": { "strategy": "External" } }],
                "schedule": { "build": "0 18 * * FRI" },
                "environments": [
                    { "name": "staging", "targets": [{ "kind": "Deployment", "name": "s", "container": "s", "component": "service" }] },
                    { "name": "production", "namespace": "prod", "pin": "svc-1",
                      "targets": [{ "kind": "Deployment", "name": "s", "container": "s", "component": "service" }] }
                ]
            },
            "status": {
                "phase": "Waiting:production",
                "nextBuild": "2026-12-04T17:00:00Z",
                "conditions": [
                    { "type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "2026-11-30T08:00:00Z" },
                    { "type": "Progressing", "status": "True", "reason": "Waiting", "message": "", "lastTransitionTime": "2026-11-30T08:00:00Z" },
                    { "type": "Degraded", "status": "False", "reason": "AsExpected", "message": "", "lastTransitionTime": "2026-11-30T08:00:00Z" }
                ],
                "inFlight": { "release": "svc-2", "stage": "Waiting", "environment": "production",
                              "since": "2026-11-30T06:00:00Z", "message": "outside the production window" },
                "environments": [
                    { "name": "staging", "release": "svc-2", "deployedAt": "2026-11-30T07:30:00Z" },
                    { "name": "production", "release": "svc-1", "deployedAt": "2026-11-23T08:30:00Z" }
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn view_joins_spec_and_status() {
        let s = DeploymentStatus::of(&pkd(), &[], now());
        assert_eq!(s.phase, "Waiting:production");
        assert_eq!(s.environments[0].namespace, "team");
        assert_eq!(s.environments[1].namespace, "prod");
        assert_eq!(s.environments[1].release.as_deref(), Some("svc-1"));
        assert_eq!(
            s.in_flight.as_ref().map(|f| f.stage.as_str()),
            Some("Waiting")
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["conditions"][1]["type"], "Progressing");
        assert_eq!(json["nextBuild"], "2026-12-04T17:00:00Z");
        assert!(json.get("nextWindow").is_none());
    }

    #[test]
    fn text_for_people() {
        let text = render(
            &[DeploymentStatus::of(&pkd(), &[], now())],
            now(),
            &Zone::Named(chrono_tz::UTC),
        );
        let expected = "\
svc (namespace team)
  Phase:       Waiting:production
  Next build:  2026-12-04 17:00 +00:00 (in 4d 8h)
  Next window: none (no production window)
  In flight:   svc-2 waiting for production since 2h 30m ago: outside the production window
  Conditions:  Ready, Progressing (Waiting)

  ENVIRONMENT   NAMESPACE   RELEASE                   DEPLOYED
  staging       team        svc-2                     1h 0m ago
  production    prod        svc-1 (pinned to svc-1)   7d 0h ago
";
        assert_eq!(text, expected);
    }

    #[test]
    fn environments_on_other_clusters_name_their_cluster() {
        let mut d = pkd();
        d.spec.environments[1].cluster = serde_json::from_value(
            serde_json::json!({ "kubeconfigSecretRef": { "name": "prod-eu" } }),
        )
        .unwrap();
        let view = DeploymentStatus::of(&d, &[], now());
        assert_eq!(view.environments[1].cluster.as_deref(), Some("prod-eu"));
        let text = render(&[view], now(), &Zone::Named(chrono_tz::UTC));
        assert!(
            text.contains(
                "  ENVIRONMENT   CLUSTER   NAMESPACE   RELEASE                   DEPLOYED
  staging       (this)    team        svc-2                     1h 0m ago
  production    prod-eu   prod        svc-1 (pinned to svc-1)   7d 0h ago
"
            ),
            "{text}"
        );
    }

    /// A deployment with a production window (Mondays 10:00 for 2h, UTC)
    /// whose stored `nextWindow` is `stored`.
    fn windowed(window: &str, stored: &str) -> PackitDeployment {
        let mut d = pkd();
        d.spec.schedule = serde_json::from_value(serde_json::json!({
            "timeZone": "UTC",
            "production": { "start": window, "duration": "2h" }
        }))
        .unwrap();
        if let Some(s) = d.status.as_mut() {
            s.next_window = Some(stored.parse().unwrap());
        }
        d
    }

    fn window_text(d: &PackitDeployment, now: DateTime<Utc>) -> String {
        let text = render(
            &[DeploymentStatus::of(d, &[], now)],
            now,
            &Zone::Named(chrono_tz::UTC),
        );
        let line = text.lines().find(|l| l.contains("Next window:"));
        line.unwrap_or_default().trim().to_owned()
    }

    #[test]
    fn a_window_that_passed_is_never_shown_as_the_next() {
        // Monday 2026-11-30 08:30: the window stored is last week's.
        let d = windowed("0 10 * * MON", "2026-11-23T10:00:00Z");
        let s = DeploymentStatus::of(&d, &[], now());
        assert_eq!(s.next_window, Some("2026-11-30T10:00:00Z".parse().unwrap()));
        assert_eq!(s.window_open_until, None);
        assert_eq!(
            window_text(&d, now()),
            "Next window: 2026-11-30 10:00 +00:00 (in 1h 30m)"
        );
        // Inside the window: open, and the one after it is next.
        let open = now() + chrono::TimeDelta::minutes(100);
        let s = DeploymentStatus::of(&d, &[], open);
        assert_eq!(
            s.window_open_until,
            Some("2026-11-30T12:00:00Z".parse().unwrap())
        );
        assert_eq!(s.next_window, Some("2026-12-07T10:00:00Z".parse().unwrap()));
        assert_eq!(
            window_text(&d, open),
            "Next window: open now, until 2026-11-30 12:00 +00:00 (in 1h 50m); \
             then 2026-12-07 10:00 +00:00 (in 6d 23h)"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["windowOpenUntil"], "2026-11-30T12:00:00Z");
    }

    #[test]
    fn a_stored_window_in_the_past_that_cannot_be_recomputed_says_so() {
        let d = windowed("not a cron", "2026-11-23T10:00:00Z");
        let s = DeploymentStatus::of(&d, &[], now());
        assert!(s.window_stale);
        assert_eq!(
            window_text(&d, now()),
            "Next window: being recomputed (the last one known, 2026-11-23 10:00 +00:00, has passed)"
        );
        // Still ahead: shown as stored.
        let d = windowed("not a cron", "2026-12-07T10:00:00Z");
        assert_eq!(
            window_text(&d, now()),
            "Next window: 2026-12-07 10:00 +00:00 (in 7d 1h)"
        );
    }

    fn release(
        name: &str,
        deployment: &str,
        created: &str,
        status: serde_json::Value,
    ) -> PackitRelease {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "packit.dev/v1alpha1",
            "kind": "PackitRelease",
            "metadata": { "name": name, "namespace": "team", "creationTimestamp": created },
            "spec": {
                "deployment": deployment,
                "trigger": "Schedule",
                "components": [{ "name": "service",
                                 "source": { "url": "https://example.com/s.git", "commit": "0123456789012345678901234567890123456789" } }]
            },
            "status": status
        }))
        .unwrap()
    }

    /// svc-2 (in flight) failed a metric check and a smoke test in staging;
    /// svc-1 passed its checks; other-9 is another deployment's.
    fn releases() -> Vec<PackitRelease> {
        vec![
            release(
                "svc-1",
                "svc",
                "2026-11-23T08:00:00Z",
                serde_json::json!({
                    "phase": "Released",
                    "environments": [{ "name": "staging", "verifiedAt": "2026-11-23T09:00:00Z", "checks": [
                        { "name": "error-rate", "result": "Pass", "value": 0.01, "bounds": "max 0.05",
                          "consecutiveFailures": 0, "measurements": 12, "measuredAt": "2026-11-23T09:00:00Z" }
                    ] }]
                }),
            ),
            release(
                "svc-2",
                "svc",
                "2026-11-30T06:00:00Z",
                serde_json::json!({
                    "phase": "Staging",
                    "environments": [
                        { "name": "staging", "deployedAt": "2026-11-30T07:30:00Z",
                          "checks": [
                            { "name": "error-rate", "result": "Fail", "value": 0.31, "bounds": "max 0.05",
                              "consecutiveFailures": 3, "measurements": 4, "measuredAt": "2026-11-30T08:29:00Z",
                              "message": "0.31 > max 0.05" },
                            { "name": "latency", "result": "Inconclusive", "bounds": "min 0, max 0.5",
                              "consecutiveFailures": 0, "measurements": 2, "measuredAt": "2026-11-30T08:29:00Z",
                              "message": "empty result" }
                          ],
                          "jobs": [
                            { "name": "checkout", "job": "svc-2-staging-checkout", "result": "Fail",
                              "startedAt": "2026-11-30T07:35:00Z", "finishedAt": "2026-11-30T07:36:00Z",
                              "pod": "svc-2-staging-checkout-abcde",
                              "message": "BackoffLimitExceeded; pod svc-2-staging-checkout-abcde: container smoke exited with code 1",
                              "logTail": "GET /checkout 500\n" },
                            { "name": "login", "job": "svc-2-staging-login", "result": "Running",
                              "startedAt": "2026-11-30T08:25:00Z" }
                          ] }
                    ]
                }),
            ),
            release(
                "other-9",
                "other",
                "2026-11-30T08:00:00Z",
                serde_json::json!({
                    "environments": [{ "name": "staging", "checks": [
                        { "name": "x", "result": "Fail", "bounds": "max 1", "consecutiveFailures": 1,
                          "measurements": 1, "measuredAt": "2026-11-30T08:00:00Z" }
                    ] }]
                }),
            ),
        ]
    }

    #[test]
    fn checks_of_the_release_in_flight() {
        let s = DeploymentStatus::of(&pkd(), &releases(), now());
        let v = s.verification.as_ref().expect("verdicts of svc-2");
        assert_eq!((v.release.as_str(), v.in_flight), ("svc-2", true));
        let json = serde_json::to_value(&s).unwrap();
        let staging = &json["verification"]["environments"][0];
        assert_eq!(staging["name"], "staging");
        assert_eq!(staging["checks"][0]["consecutiveFailures"], 3);
        assert_eq!(
            staging["smokeTests"][0]["pod"],
            "svc-2-staging-checkout-abcde"
        );

        let text = render(&[s], now(), &Zone::Named(chrono_tz::UTC));
        let expected = "
  Checks of svc-2 (in flight):
  ENVIRONMENT   CHECK        KIND         RESULT         DETAIL
  staging       error-rate   metric       Fail           0.31 (max 0.05), failed 3 in a row of 4
  staging       latency      metric       Inconclusive   no value: empty result, 2 measurements
  staging       checkout     smoke test   Fail           BackoffLimitExceeded; pod svc-2-staging-checkout-abcde: container smoke exited with code 1
  staging       login        smoke test   Running        running since 5m ago, Job svc-2-staging-login
  Smoke-test logs: kubectl packit logs svc-2 --smoke-tests -n team
";
        assert!(text.ends_with(expected), "{text}");
    }

    #[test]
    fn checks_of_the_newest_release_when_none_is_in_flight() {
        let mut idle = pkd();
        if let Some(s) = idle.status.as_mut() {
            s.train.in_flight = None;
        }
        let mut list = releases();
        list.retain(|r| r.name_any() != "svc-2");
        let s = DeploymentStatus::of(&idle, &list, now());
        let text = render(&[s], now(), &Zone::Named(chrono_tz::UTC));
        assert!(
            text.ends_with(
                "
  Checks of svc-1 (newest):
  ENVIRONMENT   CHECK        KIND     RESULT   DETAIL
  staging       error-rate   metric   Pass     0.01 (max 0.05), 12 measurements
"
            ),
            "{text}"
        );
        // A release without verdicts shows none.
        let s = DeploymentStatus::of(
            &idle,
            &[release(
                "svc-3",
                "svc",
                "2026-11-30T08:00:00Z",
                serde_json::json!({}),
            )],
            now(),
        );
        assert_eq!(s.verification, None);
        assert!(
            serde_json::to_value(&s)
                .unwrap()
                .get("verification")
                .is_none()
        );
    }

    #[test]
    fn conditions_summary_names_trouble() {
        assert_eq!(conditions_line(&[]), "none yet");
        let bad = [
            cond("Ready", "False", "RolledBack", "x"),
            cond("Degraded", "True", "RolledBack", "production rolled back"),
        ];
        assert_eq!(conditions_line(&bad), "not Ready, Degraded (RolledBack)");
        assert!(is_problem(&bad[0]) && is_problem(&bad[1]));
        assert!(!is_problem(&cond("Progressing", "True", "Building", "")));
    }
}
