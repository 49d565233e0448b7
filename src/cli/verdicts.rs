//! The verdicts of metric checks and smoke tests recorded on a release, as
//! `status`, `history` and `logs` show them.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::status::variant_name;
use super::table;
use super::when::relative;
use crate::api::checks::{CheckResult, CheckVerdict, JobResult, JobVerdict};
use crate::api::release::EnvironmentProgress;

/// The verdicts of one environment.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentVerdicts {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckVerdict>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub smoke_tests: Vec<JobVerdict>,
}

/// The environments of a release that have verdicts, in the order the
/// release reached them.
pub fn of_environments(envs: &[EnvironmentProgress]) -> Vec<EnvironmentVerdicts> {
    envs.iter()
        .filter(|e| !e.checks.is_empty() || !e.jobs.is_empty())
        .map(|e| EnvironmentVerdicts {
            name: e.name.clone(),
            checks: e.checks.clone(),
            smoke_tests: e.jobs.clone(),
        })
        .collect()
}

/// The names of the checks and smoke tests whose verdict is `Fail`.
pub fn failing(env: &EnvironmentProgress) -> Vec<String> {
    let checks = env
        .checks
        .iter()
        .filter(|c| c.result == CheckResult::Fail)
        .map(|c| c.name.clone());
    let jobs = env
        .jobs
        .iter()
        .filter(|j| j.result == JobResult::Fail)
        .map(|j| j.name.clone());
    checks.chain(jobs).collect()
}

/// A measured number without float noise: at most 4 decimals, trailing
/// zeros dropped (`0.31`, `12`, `0.0001`).
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    match s {
        // Too small for 4 decimals, but not nothing.
        "0" | "-0" if v != 0.0 => format!("{v:e}"),
        "0" | "-0" => "0".into(),
        s => s.into(),
    }
}

fn plural(n: u32, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// `0.31 (max 0.05), failed 3 in a row of 4`: the value against the bounds
/// (or why there is none) and how the measurements went.
pub fn check_detail(c: &CheckVerdict) -> String {
    let measured = match c.value {
        Some(v) if c.bounds.is_empty() => number(v),
        Some(v) => format!("{} ({})", number(v), c.bounds),
        None if c.message.is_empty() => "no value".into(),
        None => format!("no value: {}", c.message),
    };
    let counts = if c.consecutive_failures > 0 {
        format!(
            "failed {} in a row of {}",
            c.consecutive_failures, c.measurements
        )
    } else {
        plural(c.measurements, "measurement")
    };
    format!("{measured}, {counts}")
}

/// `pod svc-2-staging-checkout-x7k2p: container smoke exited with code 1`,
/// or how long it has been running.
pub fn job_detail(j: &JobVerdict, now: DateTime<Utc>) -> String {
    let pod = j.pod.as_deref();
    let mut parts = Vec::new();
    if j.result == JobResult::Running {
        parts.push(format!("running since {}", relative(j.started_at, now)));
    }
    match (pod, j.message.as_str()) {
        (Some(p), "") => parts.push(format!("pod {p}")),
        // The operator's message names the pod already.
        (Some(p), m) if m.contains(p) => parts.push(m.to_owned()),
        (Some(p), m) => parts.push(format!("pod {p}: {m}")),
        (None, "") => parts.push(format!("Job {}", j.job)),
        (None, m) => parts.push(format!("Job {}: {m}", j.job)),
    }
    parts.join(", ")
}

/// A table of every verdict: environment, check, kind, result, detail.
pub fn table(envs: &[EnvironmentVerdicts], now: DateTime<Utc>) -> String {
    let mut rows = Vec::new();
    for e in envs {
        for c in &e.checks {
            rows.push(vec![
                e.name.clone(),
                c.name.clone(),
                "metric".into(),
                variant_name(&c.result),
                check_detail(c),
            ]);
        }
        for j in &e.smoke_tests {
            rows.push(vec![
                e.name.clone(),
                j.name.clone(),
                "smoke test".into(),
                variant_name(&j.result),
                job_detail(j, now),
            ]);
        }
    }
    table::render(&["ENVIRONMENT", "CHECK", "KIND", "RESULT", "DETAIL"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_without_noise() {
        assert_eq!(number(0.31), "0.31");
        assert_eq!(number(0.1 + 0.2), "0.3");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(-0.00001), "-1e-5");
        assert_eq!(number(1234.56789), "1234.5679");
    }

    fn check(value: Option<f64>, failures: u32, measurements: u32, message: &str) -> CheckVerdict {
        serde_json::from_value(serde_json::json!({
            "name": "error-rate", "result": "Fail", "value": value, "bounds": "max 0.05",
            "consecutiveFailures": failures, "measurements": measurements,
            "measuredAt": "2026-11-30T08:00:00Z", "message": message
        }))
        .unwrap()
    }

    #[test]
    fn check_details() {
        assert_eq!(
            check_detail(&check(Some(0.31), 3, 4, "0.31 > max 0.05")),
            "0.31 (max 0.05), failed 3 in a row of 4"
        );
        assert_eq!(
            check_detail(&check(Some(0.01), 0, 1, "")),
            "0.01 (max 0.05), 1 measurement"
        );
        assert_eq!(
            check_detail(&check(None, 0, 2, "Prometheus unreachable")),
            "no value: Prometheus unreachable, 2 measurements"
        );
    }
}
