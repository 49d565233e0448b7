//! Smoke-test Jobs of the release in flight in one environment: what the
//! release records, what the Jobs say now, and a finished Job's last pod.

use chrono::{DateTime, Utc};
use kube::ResourceExt;

use super::Observation;
use crate::api::PackitRelease;
use crate::api::checks::{JobResult, JobVerdict};
use crate::api::deployment::Environment;
use crate::build::job::finished;
use crate::controller::targets::namespace_of;
use crate::controller::{Context, Error};
use crate::health::smoke::{self, SmokeRun};
use crate::plan::{JobHealth, JobState};

pub async fn observe(
    ctx: &Context,
    obs: &Observation,
    env: &Environment,
    release: &PackitRelease,
) -> Result<Vec<JobHealth>, Error> {
    if env.health.jobs.is_empty() {
        return Ok(Vec::new());
    }
    let (name, release_name) = (obs.name(), release.name_any());
    let namespace = namespace_of(&obs.namespace, env);
    let run = SmokeRun {
        deployment: &name,
        deployment_namespace: &obs.namespace,
        release: &release_name,
        environment: &env.name,
        namespace: &namespace,
    };
    let client = obs.place(ctx, &env.name).client;
    let jobs = smoke::list(&client, &run).await?;
    let recorded = release
        .status
        .as_ref()
        .and_then(|s| s.environments.iter().find(|e| e.name == env.name))
        .map(|e| e.jobs.as_slice())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(env.health.jobs.len());
    for test in &env.health.jobs {
        let before = recorded.iter().find(|v| v.name == test.name);
        let now = match (before, jobs.get(&test.name)) {
            // A verdict is final once recorded; the Job may be gone.
            (Some(v), _) if v.result != JobResult::Running => None,
            (_, Some(job)) => {
                let started = job
                    .creation_timestamp()
                    .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
                    .unwrap_or(obs.now);
                Some(verdict(&client, &namespace, &test.name, job, started, obs.now).await)
            }
            (Some(v), None) => Some(JobVerdict {
                result: JobResult::Fail,
                finished_at: Some(obs.now),
                message: format!("Job {} was deleted before it finished", v.job),
                ..v.clone()
            }),
            (None, None) => None,
        };
        let current = now.as_ref().or(before);
        out.push(JobHealth {
            name: test.name.clone(),
            state: current.map_or(JobState::NotStarted, state),
            fresh: now.filter(|n| Some(n) != before),
        });
    }
    Ok(out)
}

/// The verdict a Job gives now; a finished one's last pod is read once.
async fn verdict(
    client: &kube::Client,
    namespace: &str,
    test: &str,
    job: &k8s_openapi::api::batch::v1::Job,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> JobVerdict {
    let mut verdict = JobVerdict {
        name: test.to_owned(),
        job: job.name_any(),
        result: JobResult::Running,
        started_at,
        finished_at: None,
        pod: None,
        message: String::new(),
        log_tail: String::new(),
    };
    let Some(outcome) = finished(job) else {
        return verdict;
    };
    let pod = smoke::last_pod(client, namespace, &verdict.job).await;
    verdict.finished_at = Some(now);
    verdict.log_tail = pod.log_tail;
    match outcome {
        Ok(()) => verdict.result = JobResult::Pass,
        Err(reason) => {
            verdict.result = JobResult::Fail;
            verdict.message = match (&pod.pod, pod.failure) {
                (Some(p), Some(f)) => format!("{reason}; pod {p}: {f}"),
                (Some(p), None) => format!("{reason}; pod {p}"),
                _ => reason,
            };
        }
    }
    verdict.pod = pod.pod;
    verdict
}

fn state(v: &JobVerdict) -> JobState {
    match v.result {
        JobResult::Running => JobState::Running {
            since: v.started_at,
        },
        JobResult::Pass => JobState::Passed,
        JobResult::Fail => JobState::Failed(v.message.clone()),
    }
}
