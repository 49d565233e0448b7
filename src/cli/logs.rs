//! `kubectl packit logs --smoke-tests`: which smoke-test Jobs of a release
//! to show, where they ran, and the headers and notes printed around their
//! logs.

use chrono::{DateTime, Utc};
use kube::ResourceExt;

use super::status::variant_name;
use super::when::relative;
use super::{Failure, Result};
use crate::api::PackitDeployment;
use crate::api::checks::{JobResult, JobVerdict};
use crate::api::release::EnvironmentProgress;

/// The smoke tests of a release in the environments it reached, filtered by
/// environment and test name; an error names what there is.
pub fn select<'a>(
    release: &str,
    envs: &'a [EnvironmentProgress],
    environment: Option<&str>,
    test: Option<&str>,
) -> Result<Vec<(&'a str, &'a JobVerdict)>> {
    let all: Vec<(&str, &JobVerdict)> = envs
        .iter()
        .flat_map(|e| e.jobs.iter().map(move |j| (e.name.as_str(), j)))
        .collect();
    if all.is_empty() {
        return Err(Failure::not_found(format!(
            "release {release} has no smoke tests: none has run in any environment it reached \
             (spec.environments[].health.jobs of its PackitDeployment); its build logs: \
             kubectl packit logs {release}"
        )));
    }
    let names = |list: &[(&str, &JobVerdict)]| {
        let shown: Vec<String> = list
            .iter()
            .map(|(env, j)| format!("{} in {env}", j.name))
            .collect();
        shown.join(", ")
    };
    let in_env: Vec<(&str, &JobVerdict)> = all
        .iter()
        .copied()
        .filter(|(env, _)| environment.is_none_or(|e| e == *env))
        .collect();
    if in_env.is_empty() {
        return Err(Failure::not_found(format!(
            "release {release} ran no smoke test in {:?}; it ran: {}",
            environment.unwrap_or_default(),
            names(&all)
        )));
    }
    let chosen: Vec<(&str, &JobVerdict)> = in_env
        .iter()
        .copied()
        .filter(|(_, j)| test.is_none_or(|t| t == j.name))
        .collect();
    if chosen.is_empty() {
        return Err(Failure::not_found(format!(
            "release {release} has no smoke test {:?}{}; it ran: {}",
            test.unwrap_or_default(),
            environment.map_or_else(String::new, |e| format!(" in {e}")),
            names(&in_env)
        )));
    }
    Ok(chosen)
}

/// The namespace an environment's Jobs run in: the environment's own, or
/// the deployment's (as the operator decides it). Without the deployment
/// (deleted) or the environment (removed from it), the release's namespace,
/// which is the deployment's.
pub fn namespace_of(pkd: Option<&PackitDeployment>, release_namespace: &str, env: &str) -> String {
    let deployment_namespace = pkd
        .and_then(|p| p.namespace())
        .unwrap_or_else(|| release_namespace.to_owned());
    pkd.and_then(|p| p.spec.environments.iter().find(|e| e.name == env))
        .and_then(|e| e.namespace.clone())
        .unwrap_or(deployment_namespace)
}

/// The lines printed before a smoke test's log: test, environment, result,
/// Job, pod and the recorded message.
pub fn header(
    env: &str,
    namespace: &str,
    v: &JobVerdict,
    pod: Option<&str>,
    now: DateTime<Utc>,
) -> String {
    let when = match (v.result, v.finished_at) {
        (JobResult::Running, _) | (_, None) => format!("started {}", relative(v.started_at, now)),
        (_, Some(t)) => format!("finished {}", relative(t, now)),
    };
    let mut out = format!(
        "== smoke test {} in {env}: {} ({when})\n",
        v.name,
        variant_name(&v.result)
    );
    out.push_str(&format!("   Job:     {} (namespace {namespace})\n", v.job));
    out.push_str(&format!("   Pod:     {}\n", pod.unwrap_or("none recorded")));
    if !v.message.is_empty() {
        out.push_str(&format!("   Message: {}\n", v.message));
    }
    out
}

/// The line before a log read from the pod now.
pub fn live_note(pod: &str, container: Option<&str>) -> String {
    match container {
        Some(c) => format!("-- log of pod {pod}, container {c}:\n"),
        None => format!("-- log of pod {pod}:\n"),
    }
}

/// The recorded tail, when the pod's log could not be read now (`why`),
/// cut to the last `tail` lines.
pub fn recorded(why: &str, log_tail: &str, tail: Option<i64>) -> String {
    let mut out = format!("-- {why}; the log tail recorded on the release:\n");
    let text = match tail {
        Some(n) => last_lines(log_tail, n),
        None => log_tail,
    };
    if text.trim().is_empty() {
        out.push_str("(nothing was recorded)\n");
    } else {
        out.push_str(text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The last `n` lines of `text` (all of it when `n` is negative).
pub fn last_lines(text: &str, n: i64) -> &str {
    let Ok(n) = usize::try_from(n) else {
        return text;
    };
    if n == 0 {
        return "";
    }
    // Skip a final newline so it does not count as an empty last line.
    let body = text.strip_suffix('\n').unwrap_or(text);
    match body.rmatch_indices('\n').nth(n - 1) {
        Some((i, _)) => &text[i + 1..],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        crate::cli::test_now()
    }

    fn envs() -> Vec<EnvironmentProgress> {
        serde_json::from_value(json!([
            { "name": "staging", "jobs": [
                { "name": "checkout", "job": "svc-2-staging-checkout", "result": "Fail",
                  "startedAt": "2026-11-30T07:35:00Z", "finishedAt": "2026-11-30T07:36:00Z",
                  "pod": "svc-2-staging-checkout-abcde",
                  "message": "BackoffLimitExceeded; pod svc-2-staging-checkout-abcde: container smoke exited with code 1",
                  "logTail": "starting\nGET /checkout 500\n" },
                { "name": "login", "job": "svc-2-staging-login", "result": "Pass",
                  "startedAt": "2026-11-30T07:35:00Z", "finishedAt": "2026-11-30T07:35:30Z",
                  "pod": "svc-2-staging-login-fghij" }
            ] },
            { "name": "production", "jobs": [
                { "name": "checkout", "job": "svc-2-production-checkout", "result": "Running",
                  "startedAt": "2026-11-30T08:28:00Z" }
            ] }
        ]))
        .unwrap()
    }

    fn picked(env: Option<&str>, test: Option<&str>) -> Result<Vec<String>> {
        let envs = envs();
        let list = select("svc-2", &envs, env, test)?;
        Ok(list
            .iter()
            .map(|(e, j)| format!("{e}/{}", j.name))
            .collect())
    }

    #[test]
    fn smoke_tests_are_picked_by_environment_and_name() {
        assert_eq!(
            picked(None, None).unwrap(),
            ["staging/checkout", "staging/login", "production/checkout"]
        );
        assert_eq!(
            picked(Some("staging"), None).unwrap(),
            ["staging/checkout", "staging/login"]
        );
        assert_eq!(
            picked(None, Some("checkout")).unwrap(),
            ["staging/checkout", "production/checkout"]
        );
        assert_eq!(
            picked(Some("production"), Some("checkout")).unwrap(),
            ["production/checkout"]
        );
        let f = picked(Some("qa"), None).unwrap_err();
        assert_eq!(f.exit, super::super::Exit::NotFound);
        assert!(
            f.message
                .contains("no smoke test in \"qa\"; it ran: checkout in staging, login in staging, checkout in production"),
            "{}",
            f.message
        );
        let f = picked(Some("production"), Some("login")).unwrap_err();
        assert!(
            f.message
                .contains("no smoke test \"login\" in production; it ran: checkout in production"),
            "{}",
            f.message
        );
        let none: Vec<EnvironmentProgress> =
            serde_json::from_value(json!([{ "name": "staging" }])).unwrap();
        let f = select("svc-1", &none, None, None).unwrap_err();
        assert_eq!(f.exit, super::super::Exit::NotFound);
        assert!(
            f.message.contains("release svc-1 has no smoke tests"),
            "{}",
            f.message
        );
    }

    #[test]
    fn headers_name_test_environment_job_and_pod() {
        let envs = envs();
        let failed = &envs[0].jobs[0];
        assert_eq!(
            header("staging", "team", failed, failed.pod.as_deref(), now()),
            "\
== smoke test checkout in staging: Fail (finished 54m ago)
   Job:     svc-2-staging-checkout (namespace team)
   Pod:     svc-2-staging-checkout-abcde
   Message: BackoffLimitExceeded; pod svc-2-staging-checkout-abcde: container smoke exited with code 1
"
        );
        let running = &envs[1].jobs[0];
        assert_eq!(
            header("production", "prod", running, None, now()),
            "\
== smoke test checkout in production: Running (started 2m ago)
   Job:     svc-2-production-checkout (namespace prod)
   Pod:     none recorded
"
        );
        assert_eq!(
            live_note("p", Some("smoke")),
            "-- log of pod p, container smoke:\n"
        );
    }

    #[test]
    fn recorded_tail_is_labelled_and_cut() {
        assert_eq!(
            recorded("pod p is gone", "a\nb\nc\n", Some(2)),
            "-- pod p is gone; the log tail recorded on the release:\nb\nc\n"
        );
        assert_eq!(
            recorded("pod p is gone", "a", None),
            "-- pod p is gone; the log tail recorded on the release:\na\n"
        );
        assert_eq!(
            recorded("x", "", None),
            "-- x; the log tail recorded on the release:\n(nothing was recorded)\n"
        );
        assert_eq!(last_lines("a\nb\nc", 1), "c");
        assert_eq!(last_lines("a\nb\nc\n", 5), "a\nb\nc\n");
        assert_eq!(last_lines("a\nb\n", 0), "");
        assert_eq!(last_lines("a\nb\n", -1), "a\nb\n");
    }

    #[test]
    fn namespaces_follow_the_deployment_spec() {
        let pkd: PackitDeployment = serde_json::from_value(json!({
            "apiVersion": "packit.dev/v1alpha1",
            "kind": "PackitDeployment",
            "metadata": { "name": "svc", "namespace": "team" },
            "spec": {
                "components": [{ "name": "service", "source": { "url": "https://example.com/s.git" },
                                 "image": "quay.io/x/s", "build": { "strategy": "External" } }],
                "schedule": { "build": "0 18 * * FRI" },
                "environments": [
                    { "name": "staging", "targets": [{ "kind": "Deployment", "name": "s", "container": "s", "component": "service" }] },
                    { "name": "production", "namespace": "prod",
                      "targets": [{ "kind": "Deployment", "name": "s", "container": "s", "component": "service" }] }
                ]
            }
        }))
        .unwrap();
        assert_eq!(namespace_of(Some(&pkd), "team", "staging"), "team");
        assert_eq!(namespace_of(Some(&pkd), "team", "production"), "prod");
        assert_eq!(namespace_of(Some(&pkd), "team", "removed"), "team");
        assert_eq!(namespace_of(None, "team", "production"), "team");
    }
}
