//! Verification checks beyond rollout and restarts: PromQL queries against
//! the application's own metrics, smoke-test Jobs, and what their verdicts
//! look like on a release.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::deployment::LocalObjectRef;
use super::schema::{DNS_LABEL, DURATION, preserve_unknown_object};

/// A PromQL query whose result must stay within bounds while a release is
/// verified.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricCheck {
    /// Name of the check (a DNS label), e.g. `error-rate`; verdicts and
    /// Events name it.
    #[schemars(regex(pattern = DNS_LABEL), length(max = 63))]
    pub name: String,

    /// The Prometheus server to ask.
    pub prometheus: PrometheusSource,

    /// PromQL returning one number (a scalar, or a vector of one sample).
    /// `{{ namespace }}`, `{{ environment }}`, `{{ release }}`,
    /// `{{ deployment }}`, `{{ workloads }}` (the target workload names as a
    /// regular expression alternation, `a|b`) and `{{ interval }}` (e.g.
    /// `30s`) are replaced before the query runs.
    #[schemars(length(min = 1, max = 4096))]
    pub query: String,

    /// Bounds a measurement must stay within (inclusive).
    pub threshold_range: ThresholdRange,

    /// Time between measurements.
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = DURATION))]
    pub interval: String,

    /// Failed measurements in a row that fail the release.
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_threshold: u32,

    /// What a measurement without a number means: an empty result, or
    /// Prometheus unreachable or answering with an error. `Fail` counts it
    /// as a failed measurement, `Pass` as a passing one, `Wait` as neither:
    /// the release is verified only once the check passed at least once,
    /// and fails if the soak and the rollout timeout pass without that.
    #[serde(default)]
    pub on_no_data: OnNoData,
}

/// Where Prometheus answers.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSource {
    /// Base URL of the Prometheus HTTP API, e.g.
    /// `http://prometheus.monitoring:9090`.
    #[schemars(
        regex(pattern = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"),
        length(max = 2048)
    )]
    pub address: String,
    /// Secret in the PackitDeployment's namespace with the credentials: a
    /// `token` key (bearer token), or `username` and `password` keys (basic
    /// auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectRef>,
}

/// Inclusive bounds; at least one is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.min) || has(self.max)").message("thresholdRange needs min, max or both"),
    validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max").message("thresholdRange.min must not be above max")
)]
pub struct ThresholdRange {
    /// The lowest value that passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The highest value that passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl ThresholdRange {
    /// Whether `value` is within the bounds.
    pub fn contains(&self, value: f64) -> bool {
        self.min.is_none_or(|m| value >= m) && self.max.is_none_or(|m| value <= m)
    }

    /// Which bound `value` breaks, as `> max 0.05`; none when within.
    pub fn broken_by(&self, value: f64) -> Option<String> {
        match (self.min, self.max) {
            (Some(min), _) if value < min => Some(format!("< min {min}")),
            (_, Some(max)) if value > max => Some(format!("> max {max}")),
            _ => None,
        }
    }
}

/// What a measurement without a number counts as.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnNoData {
    Fail,
    Pass,
    #[default]
    Wait,
}

/// The latest verdict of one check, recorded on the release.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckVerdict {
    /// The check's name.
    pub name: String,
    /// `Pass`, `Fail` or `Inconclusive`.
    pub result: CheckResult,
    /// The measured value, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The bounds, as `min 0, max 0.05`.
    pub bounds: String,
    /// Failed measurements in a row.
    pub consecutive_failures: u32,
    /// Measurements so far in this environment.
    pub measurements: u32,
    /// When it was measured.
    pub measured_at: DateTime<Utc>,
    /// What was measured or what went wrong.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The outcome of one measurement.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckResult {
    Pass,
    Fail,
    Inconclusive,
}

/// A Job run in the environment's namespace once the rollout is complete;
/// the release passes only when it completes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SmokeTest {
    /// Name of the test (a DNS label), e.g. `checkout`; the Job is named
    /// after the release, the environment and this.
    #[schemars(regex(pattern = DNS_LABEL), length(max = 30))]
    pub name: String,

    /// Pod template of the Job. The operator adds `PACKIT_RELEASE`,
    /// `PACKIT_ENVIRONMENT` and `PACKIT_NAMESPACE` to every container, runs
    /// the pod once (`restartPolicy: Never`) and labels it with the
    /// release.
    #[schemars(schema_with = "preserve_unknown_object")]
    pub template: PodTemplateSpec,

    /// How long the Job may run before it counts as failed (it is then
    /// stopped by its `activeDeadlineSeconds`).
    #[serde(default = "default_job_timeout")]
    #[schemars(regex(pattern = DURATION))]
    pub timeout: String,
}

/// Where one smoke-test Job of a release stands, recorded on the release.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobVerdict {
    /// The smoke test's name.
    pub name: String,
    /// The Job's name, in the environment's namespace.
    pub job: String,
    /// `Running`, `Pass` or `Fail`.
    pub result: JobResult,
    /// When the Job was created.
    pub started_at: DateTime<Utc>,
    /// When the verdict was reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The Job's last pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The last lines of the pod's log (at most 20 lines, 2 KiB).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_tail: String,
}

/// The outcome of a smoke-test Job so far.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobResult {
    Running,
    Pass,
    Fail,
}

/// The variables a query may use.
pub const QUERY_VARIABLES: [&str; 6] = [
    "namespace",
    "environment",
    "release",
    "deployment",
    "workloads",
    "interval",
];

/// Fills `{{ name }}` variables in; an unknown variable or an unclosed
/// `{{` is an error naming it.
pub fn fill_query(query: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed {{{{ at {:?}", &rest[start..]))?;
        let name = after[..end].trim();
        out.push_str(&value(name).ok_or_else(|| {
            format!(
                "unknown variable {{{{ {name} }}}}; known: {}",
                QUERY_VARIABLES.join(", ")
            )
        })?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `query` uses only known variables.
pub fn check_query(query: &str) -> Result<(), String> {
    fill_query(query, |name| {
        QUERY_VARIABLES.contains(&name).then(String::new)
    })
    .map(|_| ())
}

fn default_interval() -> String {
    "30s".into()
}
fn default_failure_threshold() -> u32 {
    3
}
fn default_job_timeout() -> String {
    "5m".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_filled_and_unknown_ones_refused() {
        let filled = fill_query(
            r#"sum(rate(errors{namespace="{{ namespace }}",pod=~"{{workloads}}-.*"}[{{ interval }}]))"#,
            |n| match n {
                "namespace" => Some("stg".into()),
                "workloads" => Some("web|worker".into()),
                "interval" => Some("30s".into()),
                _ => None,
            },
        );
        assert_eq!(
            filled.unwrap(),
            r#"sum(rate(errors{namespace="stg",pod=~"web|worker-.*"}[30s]))"#
        );
        let err = check_query("up{job=\"{{ nope }}\"}").unwrap_err();
        assert!(err.contains("unknown variable {{ nope }}"), "{err}");
        assert!(
            check_query("up{{ release")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(check_query("vector(1)").is_ok());
    }

    #[test]
    fn bounds_are_inclusive_and_say_which_one_broke() {
        let r = ThresholdRange {
            min: Some(0.0),
            max: Some(0.05),
        };
        assert!(r.contains(0.05) && r.contains(0.0) && !r.contains(0.31));
        assert_eq!(r.broken_by(0.31).as_deref(), Some("> max 0.05"));
        assert_eq!(r.broken_by(-1.0).as_deref(), Some("< min 0"));
        assert_eq!(r.broken_by(0.01), None);
    }
}
