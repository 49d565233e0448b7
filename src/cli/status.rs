//! `kubectl packit status`: what each PackitDeployment is doing, as a view
//! that prints as text for people or serialises for scripts.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use serde::Serialize;

use super::table;
use super::when::{Zone, relative};
use crate::api::PackitDeployment;

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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_window: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
    pub environments: Vec<Environment>,
    pub conditions: Vec<ConditionSummary>,
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

impl DeploymentStatus {
    pub fn of(pkd: &PackitDeployment) -> Self {
        let namespace = pkd.namespace().unwrap_or_default();
        let status = pkd.status.clone().unwrap_or_default();
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
            next_build: status.next_build,
            next_window: status.next_window,
            in_flight: status.train.in_flight.as_ref().map(|f| InFlight {
                release: f.release.clone(),
                stage: variant_name(&f.stage),
                environment: f.environment.clone(),
                since: f.since,
                message: f.message.clone(),
            }),
            environments,
            conditions: status.conditions.iter().map(summary).collect(),
        }
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
    field(
        "Next window:",
        when(d.next_window, now, zone, "none (no production window)"),
    );
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
    let rows: Vec<Vec<String>> = d
        .environments
        .iter()
        .map(|e| {
            let mut release = e.release.clone().unwrap_or_else(|| "-".into());
            if let Some(pin) = &e.pin {
                release.push_str(&format!(" (pinned to {pin})"));
            }
            vec![
                e.name.clone(),
                e.namespace.clone(),
                release,
                e.deployed_at
                    .map_or_else(|| "-".into(), |t| relative(t, now)),
            ]
        })
        .collect();
    out.push('\n');
    for line in table::render(&["ENVIRONMENT", "NAMESPACE", "RELEASE", "DEPLOYED"], &rows).lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 8, 30, 0)
            .single()
            .unwrap()
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
        let s = DeploymentStatus::of(&pkd());
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
            &[DeploymentStatus::of(&pkd())],
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
