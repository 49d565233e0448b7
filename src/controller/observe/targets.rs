//! The target workloads of every environment as they are now: their
//! images, who owns them, holds, changes made behind the train's back, and
//! other trains reaching for the same workloads. Reads workloads; writes
//! nothing.

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::Observation;
use crate::api::PackitDeployment;
use crate::api::deployment::{Environment, WorkloadKind};
use crate::controller::targets::{namespace_of, wanted_images};
use crate::controller::{Context, Error};
use crate::deploy::{self, Claim, DeployError, Drift, Owner, Workload, WorkloadRef, group_images};
use crate::labels;

/// One environment's workloads.
#[derive(Debug, Clone)]
pub struct EnvTargets {
    pub environment: String,
    pub namespace: String,
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

/// A workload this train still owns though no target names it any more.
#[derive(Debug, Clone)]
pub struct StaleClaim {
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
        let mut workloads = Vec::new();
        for (kind, name) in env.workloads() {
            let workload = WorkloadRef {
                kind,
                name: name.to_owned(),
            };
            let object = match Workload::get(&ctx.client, &namespace, &workload).await {
                Ok(o) => Some(o),
                Err(DeployError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            let claim = object
                .as_ref()
                .map_or(Claim::Free, |o| deploy::claim_of(o, &owner));
            let drift = match (&object, &claim) {
                (Some(o), Claim::Ours) => wanted
                    .iter()
                    .find(|g| g.workload == workload)
                    .map(|g| deploy::drift(o, &g.containers))
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            let contenders = if claim == Claim::Ours {
                contenders(ctx, &owner, &namespace, &workload)
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
        let held = deployment_hold.clone().or_else(|| {
            workloads.iter().find_map(|w| {
                let why = deploy::hold_of(w.object.as_ref()?)?;
                Some(format!("{} {why}", w.workload))
            })
        });
        all.push(EnvTargets {
            environment: env.name.clone(),
            namespace,
            workloads,
            held,
        });
    }
    Ok(all)
}

/// Other trains the controller sees whose targets name the same workload.
fn contenders(
    ctx: &Context,
    owner: &Owner,
    namespace: &str,
    workload: &WorkloadRef,
) -> Vec<String> {
    let me = ObjectRef::<PackitDeployment>::new(&owner.name).within(&owner.namespace);
    let mut found: Vec<String> = ctx
        .trains
        .state()
        .iter()
        .filter(|d| {
            ObjectRef::from_obj(d.as_ref()) != me && d.metadata.deletion_timestamp.is_none()
        })
        .filter(|d| {
            let Some(own) = d.namespace() else {
                return false;
            };
            d.spec
                .environments
                .iter()
                .any(|e| namespace_of(&own, e) == namespace && targets(e, workload))
        })
        .filter_map(|d| Some(format!("{}/{}", d.namespace()?, d.name_any())))
        .collect();
    found.sort();
    found
}

fn targets(env: &Environment, workload: &WorkloadRef) -> bool {
    env.targets
        .iter()
        .any(|t| t.kind == workload.kind && t.name == workload.name)
}

/// Workloads this train owns (by the watch caches) that no target of the
/// spec names now: they are given back.
pub fn stale_claims(ctx: &Context, obs: &Observation, current: &[EnvTargets]) -> Vec<StaleClaim> {
    let owner = owner(&obs.deployment, &obs.namespace);
    let targeted = |ns: &str, w: &WorkloadRef| {
        current
            .iter()
            .any(|e| e.namespace == ns && e.workloads.iter().any(|o| &o.workload == w))
    };
    owned(ctx, &owner)
        .into_iter()
        .filter(|c| !targeted(&c.namespace, &c.workload))
        .collect()
}

/// Every workload the watch caches show claimed by `owner`.
pub fn owned(ctx: &Context, owner: &Owner) -> Vec<StaleClaim> {
    let value = owner.claim_value();
    let mine = |meta: &kube::api::ObjectMeta| {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(labels::OWNER))
            .is_some_and(|v| *v == value)
    };
    let claim = |kind, meta: &kube::api::ObjectMeta| {
        Some(StaleClaim {
            namespace: meta.namespace.clone()?,
            workload: WorkloadRef {
                kind,
                name: meta.name.clone()?,
            },
            resource_version: meta.resource_version.clone(),
        })
    };
    let deployments = ctx.deployments.state();
    let statefulsets = ctx.statefulsets.state();
    deployments
        .iter()
        .filter(|d| mine(&d.metadata))
        .filter_map(|d| claim(WorkloadKind::Deployment, &d.metadata))
        .chain(
            statefulsets
                .iter()
                .filter(|s| mine(&s.metadata))
                .filter_map(|s| claim(WorkloadKind::StatefulSet, &s.metadata)),
        )
        .collect()
}
