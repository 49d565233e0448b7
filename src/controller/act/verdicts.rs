//! Recording the latest verdict of each check on the release, so
//! `kubectl get pkr -o yaml` says which check decided and why.

use super::releases::{self, progress_of};
use crate::api::PackitRelease;
use crate::api::checks::JobVerdict;
use crate::controller::observe::Observation;
use crate::controller::{Context, Error};

/// Writes the verdicts measured during this reconcile; returns the release
/// when it changed.
pub async fn record(ctx: &Context, obs: &Observation) -> Result<Option<PackitRelease>, Error> {
    let Some(report) = &obs.health else {
        return Ok(None);
    };
    let metrics: Vec<_> = report
        .metrics
        .iter()
        .filter(|m| m.fresh)
        .filter_map(|m| m.last.clone())
        .collect();
    let jobs: Vec<_> = report.jobs.iter().filter_map(|j| j.fresh.clone()).collect();
    let state = obs.state();
    let Some(env) = state.in_flight.as_ref().and_then(|f| f.environment.clone()) else {
        return Ok(None);
    };
    if metrics.is_empty() && jobs.is_empty() {
        return Ok(None);
    }
    let api = releases::api(ctx, obs);
    let updated = releases::update_status(&api, &report.release, |s| {
        let progress = progress_of(s, &env);
        for verdict in metrics {
            match progress.checks.iter_mut().find(|c| c.name == verdict.name) {
                Some(c) => *c = verdict,
                None => progress.checks.push(verdict),
            }
        }
        for verdict in jobs {
            upsert_job(&mut progress.jobs, verdict);
        }
    })
    .await;
    match updated {
        Ok(rel) => Ok(Some(rel)),
        Err(kube::Error::Api(e)) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Records a smoke test's verdict on the release directly (the actor that
/// could not create its Job says why).
pub async fn record_job(
    ctx: &Context,
    obs: &Observation,
    release: &str,
    env: &str,
    verdict: JobVerdict,
) -> Result<Option<PackitRelease>, Error> {
    let api = releases::api(ctx, obs);
    let updated = releases::update_status(&api, release, |s| {
        upsert_job(&mut progress_of(s, env).jobs, verdict);
    })
    .await;
    match updated {
        Ok(rel) => Ok(Some(rel)),
        Err(kube::Error::Api(e)) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn upsert_job(jobs: &mut Vec<JobVerdict>, verdict: JobVerdict) {
    match jobs.iter_mut().find(|j| j.name == verdict.name) {
        Some(j) => *j = verdict,
        None => jobs.push(verdict),
    }
}
