//! Smoke-test Jobs: the Job made from a test's pod template, and what a
//! finished one left behind (its last pod, why it failed, its log's tail).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client, ResourceExt};

use crate::api::checks::SmokeTest;
use crate::build::job::run_once;
use crate::labels;

/// Lines and bytes of a pod's log kept on the release.
const LOG_LINES: i64 = 20;
const LOG_BYTES: usize = 2048;

/// The release, environment and train a smoke-test Job belongs to.
pub struct SmokeRun<'a> {
    pub deployment: &'a str,
    pub deployment_namespace: &'a str,
    pub release: &'a str,
    pub environment: &'a str,
    /// The environment's namespace, where the Job runs.
    pub namespace: &'a str,
}

impl SmokeRun<'_> {
    fn labels(&self) -> BTreeMap<String, String> {
        [
            (labels::DEPLOYMENT, self.deployment),
            (labels::DEPLOYMENT_NAMESPACE, self.deployment_namespace),
            (labels::RELEASE, self.release),
            (labels::ENVIRONMENT, self.environment),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), labels::label_value(v)))
        .collect()
    }
}

/// One Job per test, release and environment.
pub fn job_name(release: &str, environment: &str, test: &str) -> String {
    labels::label_value(&format!("{release}-{environment}-{test}"))
}

/// The Job of `test`: its template with the run's facts as env vars, run
/// once, stopped at the timeout.
pub fn smoke_job(test: &SmokeTest, run: &SmokeRun<'_>, timeout_seconds: i64) -> Job {
    let mut job_labels = run.labels();
    job_labels.insert(labels::SMOKE_TEST.to_owned(), test.name.clone());
    let mut template = test.template.clone();
    let env = [
        ("PACKIT_RELEASE", run.release),
        ("PACKIT_ENVIRONMENT", run.environment),
        ("PACKIT_NAMESPACE", run.namespace),
    ];
    run_once(&mut template, &job_labels, &env);
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(run.release, run.environment, &test.name)),
            namespace: Some(run.namespace.to_owned()),
            labels: Some(job_labels),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(timeout_seconds.max(1)),
            template,
            ..Default::default()
        }),
        status: None,
    }
}

/// The smoke-test Jobs of a run, by test name.
pub async fn list(
    client: &Client,
    run: &SmokeRun<'_>,
) -> Result<BTreeMap<String, Job>, kube::Error> {
    let selector = run
        .labels()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let jobs = Api::<Job>::namespaced(client.clone(), run.namespace)
        .list(&ListParams::default().labels(&selector))
        .await?;
    Ok(jobs
        .items
        .into_iter()
        .filter_map(|j| Some((j.labels().get(labels::SMOKE_TEST)?.clone(), j)))
        .collect())
}

/// What a finished Job's last pod says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodReport {
    pub pod: Option<String>,
    /// A terminated container's exit code and message, when one failed.
    pub failure: Option<String>,
    /// The log's last lines, or why they could not be read.
    pub log_tail: String,
}

/// Reads the last pod of `job` and the tail of its log.
pub async fn last_pod(client: &Client, namespace: &str, job: &str) -> PodReport {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let listed = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await;
    let pod = match listed {
        Ok(list) => list
            .items
            .into_iter()
            .max_by_key(|p| p.metadata.creation_timestamp.clone()),
        Err(e) => {
            return PodReport {
                log_tail: format!("(pods of Job {job} could not be listed: {e})"),
                ..Default::default()
            };
        }
    };
    let Some(pod) = pod else {
        return PodReport {
            log_tail: format!("(Job {job} has no pod left)"),
            ..Default::default()
        };
    };
    let name = pod.name_any();
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone());
    let params = LogParams {
        container,
        tail_lines: Some(LOG_LINES),
        limit_bytes: Some(LOG_BYTES as i64),
        ..Default::default()
    };
    let log_tail = match pods.logs(&name, &params).await {
        Ok(log) => tail(&log, LOG_BYTES),
        Err(e) => format!("(log of pod {name} unavailable: {e})"),
    };
    PodReport {
        failure: pod_failure(&pod),
        pod: Some(name),
        log_tail,
    }
}

/// How the pod's first failed container ended.
fn pod_failure(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|s| {
        let t = s.state.as_ref()?.terminated.as_ref()?;
        (t.exit_code != 0).then(|| {
            let mut why = format!("container {} exited with code {}", s.name, t.exit_code);
            let detail: Vec<&str> = [t.reason.as_deref(), t.message.as_deref()]
                .into_iter()
                .flatten()
                .filter(|d| !d.is_empty())
                .collect();
            if !detail.is_empty() {
                why.push_str(&format!(" ({})", detail.join(": ")));
            }
            why
        })
    })
}

/// The end of `log`, at most `max` bytes, cut at a line start.
fn tail(log: &str, max: usize) -> String {
    let log = log.trim_end();
    if log.len() <= max {
        return log.to_owned();
    }
    let mut start = log.len() - max;
    while !log.is_char_boundary(start) {
        start += 1;
    }
    let cut = &log[start..];
    if log.as_bytes()[start - 1] == b'\n' {
        return cut.to_owned();
    }
    cut.find('\n').map_or(cut, |i| &cut[i + 1..]).to_owned()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    use super::*;

    fn test() -> SmokeTest {
        SmokeTest {
            name: "checkout".into(),
            template: PodTemplateSpec {
                spec: Some(PodSpec {
                    restart_policy: Some("Always".into()),
                    containers: vec![Container {
                        name: "smoke".into(),
                        image: Some("curl".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
            timeout: "5m".into(),
        }
    }

    #[test]
    fn the_job_runs_once_labelled_with_the_release_and_knows_it() {
        let run = SmokeRun {
            deployment: "packit",
            deployment_namespace: "packit-system",
            release: "packit-20261203-120000",
            environment: "production",
            namespace: "packit-prod",
        };
        let job = smoke_job(&test(), &run, 300);
        assert_eq!(
            job.metadata.name.as_deref(),
            Some("packit-20261203-120000-production-checkout")
        );
        let labels = job.metadata.labels.clone().unwrap();
        assert_eq!(labels[labels::RELEASE], "packit-20261203-120000");
        assert_eq!(labels[labels::SMOKE_TEST], "checkout");
        let spec = job.spec.unwrap();
        assert_eq!(spec.active_deadline_seconds, Some(300));
        assert_eq!(spec.backoff_limit, Some(0));
        let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(pod_labels[labels::ENVIRONMENT], "production");
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let env: Vec<_> = pod.containers[0]
            .env
            .iter()
            .flatten()
            .map(|v| (v.name.as_str(), v.value.as_deref().unwrap_or_default()))
            .collect();
        assert!(env.contains(&("PACKIT_RELEASE", "packit-20261203-120000")));
        assert!(env.contains(&("PACKIT_NAMESPACE", "packit-prod")));
    }

    #[test]
    fn the_log_tail_keeps_whole_lines_within_the_limit() {
        assert_eq!(tail("a\nb\n", 10), "a\nb");
        assert_eq!(tail("first line\nsecond\nthird\n", 12), "second\nthird");
        assert_eq!(tail("first line\nsecond\nthird\n", 11), "third");
        let wide = "é".repeat(10);
        assert!(tail(&wide, 5).len() <= 5);
    }
}
