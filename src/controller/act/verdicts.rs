//! Recording the latest verdict of each check on the release, so
//! `kubectl get pkr -o yaml` says which check decided and why.

use super::releases::{self, progress_of};
use crate::api::PackitRelease;
use crate::controller::observe::Observation;
use crate::controller::{Context, Error};

/// Writes the verdicts measured during this reconcile; returns the release
/// when it changed.
pub async fn record(ctx: &Context, obs: &Observation) -> Result<Option<PackitRelease>, Error> {
    let Some(report) = &obs.health else {
        return Ok(None);
    };
    let fresh: Vec<_> = report
        .metrics
        .iter()
        .filter(|m| m.fresh)
        .filter_map(|m| m.last.clone())
        .collect();
    let state = obs.state();
    let Some(env) = state.in_flight.as_ref().and_then(|f| f.environment.clone()) else {
        return Ok(None);
    };
    if fresh.is_empty() {
        return Ok(None);
    }
    let api = releases::api(ctx, obs);
    let updated = releases::update_status(&api, &report.release, |s| {
        let checks = &mut progress_of(s, &env).checks;
        for verdict in fresh {
            match checks.iter_mut().find(|c| c.name == verdict.name) {
                Some(c) => *c = verdict,
                None => checks.push(verdict),
            }
        }
    })
    .await;
    match updated {
        Ok(rel) => Ok(Some(rel)),
        Err(kube::Error::Api(e)) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}
