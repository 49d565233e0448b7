//! `kubectl packit history`: the releases of a deployment, newest first.

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use serde::Serialize;

use super::status::variant_name;
use super::table;
use super::verdicts;
use super::when::age;
use crate::api::PackitRelease;
use crate::api::release::EnvironmentProgress;

/// One release as `history` shows it.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSummary {
    pub name: String,
    pub deployment: String,
    /// `Pending` until the operator wrote a phase.
    pub phase: String,
    /// `Schedule` or `Manual`.
    pub trigger: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commits: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rebuild: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub environments: Vec<Progress>,
}

/// How far a release got in one environment.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub name: String,
    /// The remote cluster the environment is on; none for the operator's
    /// own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// `deployed`, `verified` or `failed`.
    pub state: String,
    /// When it reached that state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// Where it failed: the metric checks and smoke tests whose verdict
    /// is `Fail`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<String>,
}

fn progress(p: &EnvironmentProgress) -> Progress {
    let (state, at) = if p.failed_at.is_some() {
        ("failed", p.failed_at)
    } else if p.verified_at.is_some() {
        ("verified", p.verified_at)
    } else if p.deployed_at.is_some() {
        ("deployed", p.deployed_at)
    } else {
        ("pending", None)
    };
    Progress {
        name: p.name.clone(),
        cluster: p.cluster.clone(),
        state: state.into(),
        at,
        failing: if state == "failed" {
            verdicts::failing(p)
        } else {
            Vec::new()
        },
    }
}

/// A Kubernetes timestamp as a chrono one.
pub(crate) fn created(obj: &impl ResourceExt) -> Option<DateTime<Utc>> {
    obj.creation_timestamp().and_then(|t| {
        DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
    })
}

impl ReleaseSummary {
    pub fn of(r: &PackitRelease) -> Self {
        let status = r.status.clone().unwrap_or_default();
        ReleaseSummary {
            name: r.name_any(),
            deployment: r.spec.deployment.clone(),
            phase: status
                .phase
                .map_or_else(|| "Pending".into(), |p| variant_name(&p)),
            trigger: variant_name(&r.spec.trigger),
            commits: status.commit_summary.clone(),
            created: created(r),
            rebuild: status.rebuild,
            forced: status.forced.is_some(),
            message: status.message.clone(),
            environments: status.environments.iter().map(progress).collect(),
        }
    }
}

/// Newest first: by creation time, then by name (release names count up).
pub fn newest_first(list: &mut [ReleaseSummary]) {
    list.sort_by(|a, b| (b.created, &b.name).cmp(&(a.created, &a.name)));
}

/// The text `history` prints.
pub fn render(list: &[ReleaseSummary], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            let mut trigger = r.trigger.clone();
            if r.rebuild {
                trigger.push_str(" (rebuild)");
            }
            let mut envs: Vec<String> = r
                .environments
                .iter()
                .map(|e| {
                    let name = match &e.cluster {
                        Some(c) => format!("{}@{c}", e.name),
                        None => e.name.clone(),
                    };
                    if e.failing.is_empty() {
                        format!("{name}={}", e.state)
                    } else {
                        format!("{name}={}({})", e.state, e.failing.join(","))
                    }
                })
                .collect();
            if r.forced {
                envs.push("(forced)".into());
            }
            vec![
                r.name.clone(),
                r.deployment.clone(),
                r.phase.clone(),
                trigger,
                r.commits.clone().unwrap_or_else(|| "-".into()),
                r.created.map_or_else(|| "-".into(), |t| age(t, now)),
                if envs.is_empty() {
                    "-".into()
                } else {
                    envs.join(" ")
                },
            ]
        })
        .collect();
    table::render(
        &[
            "NAME",
            "DEPLOYMENT",
            "PHASE",
            "TRIGGER",
            "COMMITS",
            "AGE",
            "ENVIRONMENTS",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        crate::cli::test_now()
    }

    fn release(name: &str, created: &str, status: serde_json::Value) -> PackitRelease {
        serde_json::from_value(json!({
            "apiVersion": "packit.dev/v1alpha1",
            "kind": "PackitRelease",
            "metadata": { "name": name, "namespace": "team", "creationTimestamp": created },
            "spec": {
                "deployment": "svc",
                "trigger": "Schedule",
                "components": [{ "name": "service",
                                 "source": { "url": "https://example.com/s.git", "commit": "0123456789012345678901234567890123456789" } }]
            },
            "status": status
        }))
        .unwrap()
    }

    fn sample() -> Vec<ReleaseSummary> {
        let mut list: Vec<ReleaseSummary> = [
            release("svc-1", "2026-11-23T08:00:00Z", json!({
                "phase": "Released", "commitSummary": "service=0123456",
                "environments": [
                    { "name": "staging", "deployedAt": "2026-11-23T08:05:00Z", "verifiedAt": "2026-11-23T08:20:00Z" },
                    { "name": "production", "cluster": "prod-eu", "deployedAt": "2026-11-23T23:00:00Z", "verifiedAt": "2026-11-24T00:00:00Z" }
                ]
            })),
            release("svc-2", "2026-11-30T06:00:00Z", json!({
                "phase": "StagingFailed", "rebuild": true, "message": "error-rate failed",
                "environments": [{ "name": "staging", "deployedAt": "2026-11-30T06:05:00Z", "failedAt": "2026-11-30T06:10:00Z",
                    "checks": [
                        { "name": "error-rate", "result": "Fail", "value": 0.31, "bounds": "max 0.05",
                          "consecutiveFailures": 3, "measurements": 4, "measuredAt": "2026-11-30T06:10:00Z" },
                        { "name": "latency", "result": "Pass", "value": 0.1, "bounds": "max 0.5",
                          "consecutiveFailures": 0, "measurements": 4, "measuredAt": "2026-11-30T06:10:00Z" }
                    ],
                    "jobs": [{ "name": "checkout", "job": "svc-2-staging-checkout", "result": "Fail",
                               "startedAt": "2026-11-30T06:06:00Z", "pod": "svc-2-staging-checkout-abcde" }] }]
            })),
            release("svc-3", "2026-11-30T08:29:15Z", json!({})),
        ]
        .iter()
        .map(ReleaseSummary::of)
        .collect();
        newest_first(&mut list);
        list
    }

    #[test]
    fn newest_first_with_progress() {
        let list = sample();
        let names: Vec<&str> = list.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["svc-3", "svc-2", "svc-1"]);
        assert_eq!(list[0].phase, "Pending");
        assert_eq!(list[1].environments[0].state, "failed");
        assert_eq!(list[2].environments[1].state, "verified");
        assert_eq!(list[2].environments[1].cluster.as_deref(), Some("prod-eu"));
        assert!(list[2].environments[0].failing.is_empty());
        let json = serde_json::to_value(&list[1]).unwrap();
        assert_eq!(
            json["environments"][0]["failing"],
            json!(["error-rate", "checkout"])
        );
        assert!(
            serde_json::to_value(&list[2]).unwrap()["environments"][0]
                .get("failing")
                .is_none()
        );
        assert_eq!(json["rebuild"], true);
        assert_eq!(json["trigger"], "Schedule");
        assert!(json.get("forced").is_none());
    }

    #[test]
    fn text_for_people() {
        let expected = "\
NAME    DEPLOYMENT   PHASE           TRIGGER              COMMITS           AGE   ENVIRONMENTS
svc-3   svc          Pending         Schedule             -                 45s   -
svc-2   svc          StagingFailed   Schedule (rebuild)   -                 2h    staging=failed(error-rate,checkout)
svc-1   svc          Released        Schedule             service=0123456   7d    staging=verified production@prod-eu=verified
";
        assert_eq!(render(&sample(), now()), expected);
    }
}
