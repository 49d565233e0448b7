//! Claims on workloads: taken on the first deploy, given back when no
//! target names the workload any more or the train is deleted. The
//! deployment carries a finalizer while it may own anything, so a deleted
//! train always gives its workloads back.

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::api::PackitDeployment;
use crate::controller::events::Note;
use crate::controller::observe::{EnvTargets, Observation, StaleClaim, owned, owner};
use crate::controller::targets::location;
use crate::controller::{Context, Error, MANAGER, Place};
use crate::deploy::{self, Claim, DeployError};
use crate::labels::CLAIMS_FINALIZER;
use crate::remote::ClusterError;

/// Before an environment is written: a workload the write will claim needs
/// the finalizer on the train first (state before action), so a deleted
/// train always gives it back.
pub async fn prepare(ctx: &Context, obs: &Observation, targets: &EnvTargets) -> Result<(), Error> {
    if targets.workloads.iter().any(|w| w.claim == Claim::Free) {
        add_finalizer(ctx, &obs.deployment).await?;
    }
    Ok(())
}

/// Tells which workloads a write claimed.
pub fn claimed(targets: &EnvTargets, applied: &deploy::Applied, notes: &mut Vec<Note>) {
    for w in &applied.claimed {
        notes.push(Note::normal(
            "Claimed",
            format!(
                "{}: {w} in {} is now driven by this train only",
                targets.environment,
                location(&targets.namespace, targets.cluster.as_deref())
            ),
        ));
    }
}

/// Gives back workloads no target names any more.
pub async fn release_stale(obs: &Observation, notes: &mut Vec<Note>) -> Result<(), Error> {
    for c in &obs.stale_claims {
        give_back(c).await?;
        notes.push(Note::normal(
            "GivenBack",
            format!(
                "{} in {} is no longer a target: given back",
                c.workload,
                c.place.describe(&c.namespace)
            ),
        ));
    }
    Ok(())
}

/// A deleted train: gives back everything it owns, then lets it go.
pub async fn release_all(ctx: &Context, deployment: &PackitDeployment) -> Result<(), Error> {
    if !has_finalizer(deployment) {
        return Ok(());
    }
    let namespace = deployment.namespace().ok_or(Error::NoNamespace)?;
    let mut places = Vec::new();
    for cluster in deployment
        .spec
        .environments
        .iter()
        .filter_map(|e| e.cluster.as_ref())
    {
        match ctx.clusters.get(&namespace, cluster).await {
            Ok(remote) => places.push(Place::on(remote)),
            // No usable Secret: the cluster cannot be reached ever again.
            Err(ClusterError::Invalid(why) | ClusterError::Refused(why)) => {
                tracing::warn!(%why, "a remote cluster's workloads are not given back")
            }
            Err(ClusterError::Home(why)) => return Err(Error::Cluster(why)),
        }
    }
    for c in owned(ctx, &owner(deployment, &namespace), &places) {
        give_back(&c).await?;
    }
    let kept: Vec<&String> = deployment
        .finalizers()
        .iter()
        .filter(|f| *f != CLAIMS_FINALIZER)
        .collect();
    patch_finalizers(ctx, deployment, json!(kept)).await
}

async fn give_back(c: &StaleClaim) -> Result<(), Error> {
    match deploy::release(
        &c.place.client,
        &c.namespace,
        &c.workload,
        c.resource_version.as_deref(),
    )
    .await
    {
        // Deleted meanwhile: nothing to give back.
        Err(DeployError::Apply {
            source: kube::Error::Api(s),
            ..
        }) if s.code == 404 => Ok(()),
        other => other.map_err(lost_race),
    }
}

fn has_finalizer(deployment: &PackitDeployment) -> bool {
    deployment
        .finalizers()
        .iter()
        .any(|f| f == CLAIMS_FINALIZER)
}

async fn add_finalizer(ctx: &Context, deployment: &PackitDeployment) -> Result<(), Error> {
    if has_finalizer(deployment) {
        return Ok(());
    }
    let mut all: Vec<&str> = deployment.finalizers().iter().map(String::as_str).collect();
    all.push(CLAIMS_FINALIZER);
    patch_finalizers(ctx, deployment, json!(all)).await
}

/// Replaces the finalizers with `list`, if they are still as observed: a
/// JSON patch whose test fails when another writer changed them meanwhile.
async fn patch_finalizers(
    ctx: &Context,
    deployment: &PackitDeployment,
    list: serde_json::Value,
) -> Result<(), Error> {
    let namespace = deployment.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<PackitDeployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let observed = deployment.metadata.finalizers.clone();
    let patch: json_patch::Patch = serde_json::from_value(json!([
        { "op": "test", "path": "/metadata/finalizers", "value": observed },
        { "op": "add", "path": "/metadata/finalizers", "value": list },
    ]))?;
    let params = PatchParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PatchParams::default()
    };
    match api
        .patch(&deployment.name_any(), &params, &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => Ok(()),
        // The test failed (422) or the object is gone (404): look again.
        Err(kube::Error::Api(s)) if s.code == 422 => Err(Error::Stale),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A write against a workload that changed since it was read: the
/// reconcile reads it again (another train may have won it).
pub fn lost_race(e: DeployError) -> Error {
    match e {
        DeployError::Apply {
            source: kube::Error::Api(s),
            ..
        } if s.code == 409 => Error::Stale,
        DeployError::Claimed { .. } => Error::Stale,
        e => e.into(),
    }
}
