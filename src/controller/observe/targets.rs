//! The target workloads of every environment as they are now: their
//! images, who owns them, holds, changes made behind the train's back, and
//! other trains reaching for the same workloads. Reads workloads; writes
//! nothing.

use kube::ResourceExt;

use super::{CACHE_WAIT, Observation};
use crate::api::PackitDeployment;
use crate::api::deployment::Environment;
use crate::controller::targets::{namespace_of, wanted_images};
use crate::controller::{Context, Error, Place};
use crate::deploy::{self, Claim, DeployError, Drift, Owner, Workload, WorkloadRef, group_images};
use crate::labels;
use crate::remote::is_unreachable;

/// One environment's workloads.
#[derive(Debug, Clone)]
pub struct EnvTargets {
    pub environment: String,
    pub namespace: String,
    /// The remote cluster it is on; none at home.
    pub cluster: Option<String>,
    /// The remote cluster did not answer: nothing was read, nothing may be
    /// written, the train looks again after the wait.
    pub unreachable: Option<Unreachable>,
    pub workloads: Vec<ObservedWorkload>,
    /// Why the environment is held (an annotation on the deployment or on
    /// one of its workloads).
    pub held: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ObservedWorkload {
    pub workload: WorkloadRef,
    /// `None` when it does not exist.
    pub object: Option<Workload>,
    pub claim: Claim,
    /// Target containers someone else changed, against the release the
    /// environment runs.
    pub drift: Vec<Drift>,
    /// Other trains that target it too while it is ours.
    pub contenders: Vec<String>,
}

impl EnvTargets {
    /// The first workload another train owns, with its owner.
    pub fn conflict(&self) -> Option<(&WorkloadRef, &str)> {
        self.workloads.iter().find_map(|w| match &w.claim {
            Claim::Other(owner) => Some((&w.workload, owner.as_str())),
            _ => None,
        })
    }
}

/// A remote cluster that did not answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreachable {
    pub cluster: String,
    pub error: String,
    /// When to try again.
    pub retry: std::time::Duration,
}

/// A workload this train still owns though no target names it any more.
#[derive(Debug, Clone)]
pub struct StaleClaim {
    pub place: Place,
    pub namespace: String,
    pub workload: WorkloadRef,
    pub resource_version: Option<String>,
}

pub fn owner(deployment: &PackitDeployment, namespace: &str) -> Owner {
    Owner {
        name: deployment.name_any(),
        namespace: namespace.to_owned(),
    }
}

pub async fn observe(ctx: &Context, obs: &Observation) -> Result<Vec<EnvTargets>, Error> {
    let spec = &obs.deployment.spec;
    let owner = owner(&obs.deployment, &obs.namespace);
    let state = obs.state();
    let deployment_hold =
        obs.deployment
            .annotations()
            .get(labels::HOLD)
            .map(|why| match why.trim() {
                "" => "held on the PackitDeployment".to_owned(),
                why => format!("held on the PackitDeployment: {why}"),
            });
    let mut all = Vec::with_capacity(spec.environments.len());
    for (i, env) in spec.environments.iter().enumerate() {
        let namespace = namespace_of(&obs.namespace, env);
        let place = obs
            .places
            .get(i)
            .cloned()
            .unwrap_or_else(|| Place::home(ctx));
        // Drift is measured against the release the environment runs.
        let wanted = state
            .environments
            .get(i)
            .and_then(|e| e.release.as_deref())
            .and_then(|r| obs.release(r))
            .and_then(|r| wanted_images(r, env))
            .map(|images| group_images(&images))
            .transpose()?
            .unwrap_or_default();
        let mut env_targets = EnvTargets {
            environment: env.name.clone(),
            namespace,
            cluster: place.cluster().map(str::to_owned),
            unreachable: None,
            workloads: Vec::new(),
            held: None,
        };
        match read_workloads(ctx, &owner, &place, &env_targets, env, &wanted).await {
            Ok(workloads) => env_targets.workloads = workloads,
            Err(unreachable) => env_targets.unreachable = Some(unreachable?),
        }
        env_targets.held = deployment_hold.clone().or_else(|| {
            env_targets.workloads.iter().find_map(|w| {
                let why = deploy::hold_of(w.object.as_ref()?)?;
                Some(format!("{} {why}", w.workload))
            })
        });
        all.push(env_targets);
    }
    Ok(all)
}

/// An environment's workloads, or why its remote cluster did not answer
/// (any other error is the reconcile's).
async fn read_workloads(
    ctx: &Context,
    owner: &Owner,
    place: &Place,
    targets: &EnvTargets,
    env: &Environment,
    wanted: &[deploy::WorkloadImages],
) -> Result<Vec<ObservedWorkload>, Result<Unreachable, Error>> {
    let namespace = &targets.namespace;
    if let Some(cache) = place.cached() {
        // Until the cache has listed, every target would be read from the
        // API server: at start-up, every target of every train at once.
        let _ = tokio::time::timeout(CACHE_WAIT, cache.listed()).await;
    }
    // Read together: a reconcile that finds a failed check waits for these
    // reads before it rolls back.
    let reads = env.workloads().into_iter().map(|(kind, name)| async move {
        let workload = WorkloadRef {
            kind,
            name: name.to_owned(),
        };
        if let Some(cached) = place.cached().and_then(|c| c.get(namespace, &workload)) {
            return Ok((workload, Some(cached)));
        }
        match Workload::get(&place.client, namespace, &workload).await {
            Ok(o) => Ok((workload, Some(o))),
            Err(DeployError::NotFound { .. }) => Ok((workload, None)),
            Err(e) => Err(unreachable(place, &e).ok_or_else(|| e.into())),
        }
    });
    let mut workloads = Vec::new();
    for (workload, object) in futures::future::try_join_all(reads).await? {
        let claim = object
            .as_ref()
            .map_or(Claim::Free, |o| deploy::claim_of(o, owner));
        let drift = match (&object, &claim) {
            (Some(o), Claim::Ours) => wanted
                .iter()
                .find(|g| g.workload == workload)
                .map(|g| deploy::drift(o, &g.containers))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let contenders = if claim == Claim::Ours {
            contenders(ctx, owner, namespace, &workload)
        } else {
            Vec::new()
        };
        workloads.push(ObservedWorkload {
            workload,
            object,
            claim,
            drift,
            contenders,
        });
    }
    if let Some(remote) = &place.remote {
        remote.reach.succeeded();
    }
    Ok(workloads)
}

/// A read that failed on a remote cluster that did not answer: the
/// environment waits (any other error fails the reconcile).
fn unreachable(place: &Place, e: &DeployError) -> Option<Unreachable> {
    match (&place.remote, e) {
        (Some(remote), DeployError::Read { source, .. }) if is_unreachable(source) => {
            Some(Unreachable {
                cluster: remote.name.clone(),
                error: source.to_string(),
                retry: remote.reach.failed(),
            })
        }
        _ => None,
    }
}

/// Other trains the controller sees whose targets name the same workload.
fn contenders(
    ctx: &Context,
    owner: &Owner,
    namespace: &str,
    workload: &WorkloadRef,
) -> Vec<String> {
    let mut found: Vec<String> = ctx
        .trains_targeting(namespace, workload)
        .iter()
        .filter(|d| d.metadata.deletion_timestamp.is_none())
        .filter_map(|d| {
            let (own, name) = (
                d.metadata.namespace.as_deref()?,
                d.metadata.name.as_deref()?,
            );
            let me = own == owner.namespace && name == owner.name;
            (!me).then(|| format!("{own}/{name}"))
        })
        .collect();
    found.sort();
    found
}

/// Workloads this train owns (by the watch caches) that no target of the
/// spec names now: they are given back.
pub fn stale_claims(ctx: &Context, obs: &Observation, current: &[EnvTargets]) -> Vec<StaleClaim> {
    let owner = owner(&obs.deployment, &obs.namespace);
    let targeted = |c: &StaleClaim| {
        current.iter().any(|e| {
            e.namespace == c.namespace
                && e.cluster.as_deref() == c.place.cluster()
                && e.workloads.iter().any(|o| o.workload == c.workload)
        })
    };
    // An environment that did not answer was not read: its claims stand.
    let unread = |c: &StaleClaim| {
        current
            .iter()
            .any(|e| e.unreachable.is_some() && e.cluster.as_deref() == c.place.cluster())
    };
    owned(ctx, &owner, &obs.places)
        .into_iter()
        .filter(|c| !targeted(c) && !unread(c))
        .collect()
}

/// Every workload the watch caches show claimed by `owner`, at home and
/// on the remote clusters of `places`.
pub fn owned(ctx: &Context, owner: &Owner, places: &[Place]) -> Vec<StaleClaim> {
    let mut out = claimed_in(&Place::home(ctx), owner);
    let mut seen = Vec::new();
    for remote in places.iter().filter_map(|p| p.remote.as_ref()) {
        if seen.contains(&remote.name) {
            continue;
        }
        seen.push(remote.name.clone());
        out.extend(claimed_in(&Place::on(remote.clone()), owner));
    }
    out
}

fn claimed_in(place: &Place, owner: &Owner) -> Vec<StaleClaim> {
    place
        .workloads
        .claimed_by(&owner.claim_value())
        .into_iter()
        .map(|c| StaleClaim {
            place: place.clone(),
            namespace: c.namespace,
            workload: c.workload,
            resource_version: c.resource_version,
        })
        .collect()
}
