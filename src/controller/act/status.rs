//! Persisting the PackitDeployment's status.

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::api::{PackitDeployment, PackitDeploymentStatus};
use crate::controller::observe::Observation;
use crate::controller::{Context, Error, MANAGER};

/// Server-side apply of the whole status, guarded by the resource version
/// that was observed: when the cache was behind (or another writer came
/// first) this fails with [`Error::Stale`] instead of acting on old state.
pub async fn persist(
    ctx: &Context,
    obs: &Observation,
    status: &PackitDeploymentStatus,
) -> Result<(), Error> {
    if obs.deployment.status.as_ref() == Some(status) {
        return Ok(());
    }
    tracing::debug!(
        deployment = %obs.name(),
        changed = ?changed_fields(obs.deployment.status.as_ref(), status),
        "persisting the status"
    );
    let api: Api<PackitDeployment> = Api::namespaced(ctx.client.clone(), &obs.namespace);
    let name = obs.name();
    let patch = json!({
        "apiVersion": "packit.dev/v1alpha1",
        "kind": "PackitDeployment",
        "metadata": { "name": name, "resourceVersion": obs.deployment.resource_version() },
        "status": status,
    });
    match api
        .patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Err(Error::Stale),
        Err(e) => Err(e.into()),
    }
}

/// The top-level status fields that differ, for the debug log.
fn changed_fields(
    old: Option<&PackitDeploymentStatus>,
    new: &PackitDeploymentStatus,
) -> Vec<String> {
    let as_map = |s: Option<&PackitDeploymentStatus>| match s.map(serde_json::to_value) {
        Some(Ok(serde_json::Value::Object(m))) => m,
        _ => serde_json::Map::new(),
    };
    let (old, new) = (as_map(old), as_map(Some(new)));
    let mut keys: Vec<String> = old.keys().chain(new.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.retain(|k| old.get(k) != new.get(k));
    keys
}
