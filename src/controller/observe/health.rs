//! Health of the environment the release in flight is verified in.

use kube::ResourceExt;

use super::Observation;
use crate::api::PackitRelease;
use crate::controller::targets::{namespace_of, wanted_images};
use crate::controller::{Context, Error};
use crate::health;
use crate::plan::HealthReport;

/// Health of `env_name` for `release`, or none while its workloads do not
/// run the release yet (a stale report must not count).
pub async fn observe(
    ctx: &Context,
    obs: &Observation,
    env_name: &str,
    release: &PackitRelease,
) -> Result<Option<HealthReport>, Error> {
    let spec = &obs.deployment.spec;
    let Some(env) = spec.environments.iter().find(|e| e.name == env_name) else {
        return Ok(None);
    };
    let Some(images) = wanted_images(release, env) else {
        return Ok(None);
    };
    let namespace = namespace_of(&obs.namespace, env);
    let observation = health::observe(&ctx.client, &namespace, &images).await?;
    if !observation.images_match {
        return Ok(None);
    }
    let key = format!(
        "{}/{}/{}/{}",
        obs.namespace,
        obs.name(),
        env.name,
        release.name_any()
    );
    let http = ctx
        .prober
        .probe_due(&key, &env.health.http_checks, obs.now)
        .await;
    Ok(Some(HealthReport {
        release: release.name_any(),
        workloads: observation.workloads,
        http,
    }))
}
