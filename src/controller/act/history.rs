//! Pruning old PackitReleases past `historyLimit`, and their smoke-test
//! Jobs (which live in the environments' namespaces, out of reach of owner
//! references).

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::{DeleteParams, ListParams};

use super::releases;
use crate::controller::observe::Observation;
use crate::controller::{Context, Error, Place};
use crate::labels;

pub async fn prune(ctx: &Context, obs: &Observation, names: &[String]) -> Result<(), Error> {
    // Their Jobs on a cluster that does not answer would be left behind:
    // pruned once every cluster is back.
    if obs.targets.iter().any(|t| t.unreachable.is_some()) {
        return Ok(());
    }
    let api = releases::api(ctx, obs);
    for name in names {
        tracing::info!(release = %name, "pruning");
        smoke_jobs(ctx, obs, name).await?;
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Deletes a release's smoke-test Jobs (and, in the background, their pods).
async fn smoke_jobs(ctx: &Context, obs: &Observation, release: &str) -> Result<(), Error> {
    // One list per namespace and cluster.
    let mut places: Vec<(String, Place)> = Vec::new();
    for targets in &obs.targets {
        if !places
            .iter()
            .any(|(ns, p)| *ns == targets.namespace && p.cluster() == targets.cluster.as_deref())
        {
            places.push((
                targets.namespace.clone(),
                obs.place(ctx, &targets.environment),
            ));
        }
    }
    let selector = format!(
        "{}={},{}={},{}={},{}",
        labels::DEPLOYMENT,
        labels::label_value(&obs.name()),
        labels::DEPLOYMENT_NAMESPACE,
        obs.namespace,
        labels::RELEASE,
        labels::label_value(release),
        labels::SMOKE_TEST,
    );
    for (namespace, place) in places {
        let api: Api<Job> = Api::namespaced(place.client, &namespace);
        for job in api
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
        {
            let name = job.metadata.name.unwrap_or_default();
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
