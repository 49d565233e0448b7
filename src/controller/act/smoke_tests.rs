//! Starting smoke-test Jobs in an environment's namespace. A Job the API
//! refuses (a bad pod template, a quota, missing RBAC) is recorded as the
//! test's failure, so the release fails with the API's reason instead of
//! waiting for its timeout.

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::PostParams;

use super::verdicts;
use crate::api::PackitRelease;
use crate::api::checks::{JobResult, JobVerdict};
use crate::api::duration;
use crate::controller::events::Note;
use crate::controller::observe::Observation;
use crate::controller::targets::namespace_of;
use crate::controller::{Context, Error};
use crate::health::smoke::{SmokeRun, job_name, smoke_job};

/// Creates the Job of `test` for `release` in `environment`; returns the
/// release when a refusal was recorded on it.
pub async fn start(
    ctx: &Context,
    obs: &Observation,
    environment: &str,
    release: &str,
    test: &str,
    notes: &mut Vec<Note>,
) -> Result<Option<PackitRelease>, Error> {
    let spec = &obs.deployment.spec;
    let Some(env) = spec.environments.iter().find(|e| e.name == environment) else {
        return Ok(None);
    };
    let Some(smoke) = env.health.jobs.iter().find(|j| j.name == test) else {
        return Ok(None);
    };
    let (name, namespace) = (obs.name(), namespace_of(&obs.namespace, env));
    let run = SmokeRun {
        deployment: &name,
        deployment_namespace: &obs.namespace,
        release,
        environment,
        namespace: &namespace,
    };
    let timeout = duration::parse(&smoke.timeout).map_or(300, |t| t.num_seconds());
    let job = smoke_job(smoke, &run, timeout);
    let place = obs.place(ctx, environment);
    let api: Api<Job> = Api::namespaced(place.client.clone(), &namespace);
    match api.create(&PostParams::default(), &job).await {
        Ok(_) => {
            notes.push(Note::normal(
                "SmokeTestStarted",
                format!(
                    "{release}: smoke test {test} started in {environment} (Job {} in {})",
                    job_name(release, environment, test),
                    place.describe(&namespace)
                ),
            ));
            Ok(None)
        }
        Err(kube::Error::Api(e)) if e.is_already_exists() => Ok(None),
        Err(kube::Error::Api(e)) => {
            let verdict = JobVerdict {
                name: test.to_owned(),
                job: job_name(release, environment, test),
                result: JobResult::Fail,
                started_at: obs.now,
                finished_at: Some(obs.now),
                pod: None,
                message: format!(
                    "the Job could not be created in namespace {namespace}: {}",
                    e.message
                ),
                log_tail: String::new(),
            };
            verdicts::record_job(ctx, obs, release, environment, verdict).await
        }
        Err(e) => Err(e.into()),
    }
}
