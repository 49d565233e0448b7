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
