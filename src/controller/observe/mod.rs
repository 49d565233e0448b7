//! Stage 1, observe: everything the decision needs, read once. The train
//! comes from the controller's cache and its releases from the reflector
//! store; the build and health of the release in flight are read from the
//! cluster, the registry and the checks. Nothing here writes.

mod build;
mod health;
mod lockdown;
mod places;
pub mod requests;
mod smoke;
mod sources;
mod spec;
mod targets;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kube::ResourceExt;

use super::{Context, Error, Place};
use crate::api::{PackitDeployment, PackitRelease};
use crate::plan::{HealthReport, Requests, Stage, TrainState};

/// How long a reconcile waits for a cache's first list (a remote
/// cluster's may be slow to answer, and at start-up every train
/// reconciles at once) before it does without.
const CACHE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub use build::{BuildObservation, NewRelease};
pub use requests::BadRequest;
pub use spec::SpecProblem;
pub use targets::{EnvTargets, StaleClaim, owned, owner};
#[cfg(test)]
pub use targets::{ObservedWorkload, Unreachable};

/// What one reconcile knows.
pub struct Observation {
    pub deployment: Arc<PackitDeployment>,
    pub namespace: String,
    pub now: DateTime<Utc>,
    /// This train's releases, oldest first.
    pub releases: Vec<Arc<PackitRelease>>,
    /// Why the spec cannot be acted on; when set, nothing else was read.
    pub spec_problem: Option<SpecProblem>,
    /// Where each environment of the spec lives, in order.
    pub places: Vec<Place>,
    pub requests: Requests,
    /// Request annotations that could not be understood.
    pub bad_requests: Vec<BadRequest>,
    /// The build of the release in flight, while it builds.
    pub build: Option<BuildObservation>,
    /// The environment the release in flight is verified in, while it is.
    pub health: Option<HealthReport>,
    /// Every environment's workloads: images, owner, holds, drift.
    pub targets: Vec<EnvTargets>,
    /// Workloads still claimed though no target names them.
    pub stale_claims: Vec<StaleClaim>,
}

impl Observation {
    pub fn name(&self) -> String {
        self.deployment.name_any()
    }

    /// The planner's persisted state, as last written.
    pub fn state(&self) -> TrainState {
        self.deployment
            .status
            .as_ref()
            .map(|s| s.train.clone())
            .unwrap_or_default()
    }

    /// Where environment `name` lives (home when unknown).
    pub fn place(&self, ctx: &Context, name: &str) -> Place {
        self.deployment
            .spec
            .environments
            .iter()
            .position(|e| e.name == name)
            .and_then(|i| self.places.get(i).cloned())
            .unwrap_or_else(|| Place::home(ctx))
    }

    pub fn release(&self, name: &str) -> Option<&PackitRelease> {
        self.releases
            .iter()
            .find(|r| r.name_any() == name)
            .map(AsRef::as_ref)
    }
}

pub async fn observe(
    ctx: &Context,
    deployment: Arc<PackitDeployment>,
    now: DateTime<Utc>,
) -> Result<Observation, Error> {
    let namespace = deployment.namespace().ok_or(Error::NoNamespace)?;
    // Until the release watch has listed once, "no release" would be a lie.
    ctx.releases_ready
        .wait()
        .await
        .map_err(|_| Error::ReleasesUnavailable)?;
    let releases = ctx.releases_of(&namespace, &deployment.name_any());
    let mut obs = Observation {
        spec_problem: None,
        places: Vec::new(),
        requests: Requests::default(),
        bad_requests: Vec::new(),
        build: None,
        health: None,
        targets: Vec::new(),
        stale_claims: Vec::new(),
        deployment,
        namespace,
        now,
        releases,
    };
    obs.spec_problem = spec::check(ctx, &obs.deployment, &obs.namespace).await;
    if obs.spec_problem.is_some() {
        return Ok(obs);
    }
    match places::resolve(ctx, &obs.deployment, &obs.namespace).await? {
        Ok(places) => obs.places = places,
        Err(problem) => {
            obs.spec_problem = Some(problem);
            return Ok(obs);
        }
    }
    (obs.requests, obs.bad_requests) = requests::parse(obs.deployment.annotations(), now);
    obs.targets = targets::observe(ctx, &obs).await?;
    obs.stale_claims = targets::stale_claims(ctx, &obs, &obs.targets);
    let state = obs.state();
    if let Some(f) = &state.in_flight {
        match (f.stage, &f.environment, obs.release(&f.release)) {
            (Stage::Building, _, current) => {
                obs.build = Some(build::observe(ctx, &obs, &state, f, current).await);
            }
            (Stage::Verifying, Some(env), Some(rel)) => {
                obs.health = health::observe(ctx, &obs, env, rel).await?;
            }
            _ => {}
        }
    }
    Ok(obs)
}
