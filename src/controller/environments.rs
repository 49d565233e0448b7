//! Environments: which namespaces a deployment may touch, bringing each
//! environment's workloads to the release the state says it runs, and
//! reading their health.

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, ResourceExt};

use super::Error;
use super::reconcile::Reconciler;
use super::release::{image_of, update_status};
use crate::api::PackitRelease;
use crate::api::deployment::Environment;
use crate::api::release::TargetImage;
use crate::deploy::{self, Owner};
use crate::health;
use crate::labels;
use crate::plan::{HealthReport, TrainState};

/// The namespace of an environment's workloads.
pub fn namespace_of(r: &Reconciler<'_>, env: &Environment) -> String {
    env.namespace.clone().unwrap_or_else(|| r.namespace.clone())
}

/// Tenant isolation: another namespace must name this deployment's
/// namespace in its `packit.dev/allow-from` annotation.
pub async fn check_namespaces(r: &Reconciler<'_>) -> Result<(), String> {
    let namespaces: Api<Namespace> = Api::all(r.ctx.client.clone());
    for (i, env) in r.pkd.spec.environments.iter().enumerate() {
        let ns = namespace_of(r, env);
        if ns == r.namespace {
            continue;
        }
        let field = format!("spec.environments[{i}].namespace");
        let found = namespaces
            .get_opt(&ns)
            .await
            .map_err(|e| format!("{field}: cannot read namespace {ns:?}: {e}"))?
            .ok_or_else(|| format!("{field}: namespace {ns:?} does not exist"))?;
        let allowed = found
            .annotations()
            .get(labels::ALLOW_FROM)
            .is_some_and(|v| v.split(',').any(|n| n.trim() == r.namespace));
        if !allowed {
            return Err(format!(
                "{field}: namespace {ns:?} has not opted in; annotate it with {}={} to let this deployment manage its workloads",
                labels::ALLOW_FROM,
                r.namespace
            ));
        }
    }
    Ok(())
}

/// The images a release puts on an environment's targets.
pub fn wanted_images(release: &PackitRelease, env: &Environment) -> Option<Vec<TargetImage>> {
    env.targets
        .iter()
        .map(|t| {
            Some(TargetImage {
                kind: format!("{:?}", t.kind),
                name: t.name.clone(),
                container: t.container.clone(),
                image: image_of(release, &t.component)?.to_owned(),
            })
        })
        .collect()
}

/// Health of `env` for `release`, or none while its workloads do not run
/// the release yet (a stale report must not count).
pub async fn health(
    r: &Reconciler<'_>,
    env_name: &str,
    release: &PackitRelease,
) -> Result<Option<HealthReport>, Error> {
    let Some(env) = r.pkd.spec.environments.iter().find(|e| e.name == env_name) else {
        return Ok(None);
    };
    let Some(images) = wanted_images(release, env) else {
        return Ok(None);
    };
    let observation = health::observe(&r.ctx.client, &namespace_of(r, env), &images).await?;
    if !observation.images_match {
        return Ok(None);
    }
    let key = format!(
        "{}/{}/{}/{}",
        r.namespace,
        r.name(),
        env.name,
        release.name_any()
    );
    let http = r
        .ctx
        .prober
        .probe_due(&key, &env.health.http_checks, r.now)
        .await;
    Ok(Some(HealthReport {
        release: release.name_any(),
        workloads: observation.workloads,
        http,
    }))
}

/// Brings every environment to the release the state says it runs. The
/// images the targets had before are recorded on that release first, so a
/// rollback never depends on workload history.
pub async fn ensure(
    r: &Reconciler<'_>,
    state: &TrainState,
    releases: &[PackitRelease],
) -> Result<(), Error> {
    let owner = Owner {
        name: r.name(),
        namespace: r.namespace.clone(),
    };
    for (env, env_state) in r.pkd.spec.environments.iter().zip(&state.environments) {
        let Some(name) = &env_state.release else {
            continue;
        };
        let Some(release) = releases.iter().find(|x| &x.name_any() == name) else {
            tracing::warn!(release = %name, env = %env.name, "release to run is missing");
            continue;
        };
        let Some(wanted) = wanted_images(release, env) else {
            continue;
        };
        let ns = namespace_of(r, env);
        let current = deploy::current_images(&r.ctx.client, &ns, &env.targets).await?;
        if current == wanted {
            continue;
        }
        let recorded = release
            .status
            .as_ref()
            .and_then(|s| s.environments.iter().find(|e| e.name == env.name))
            .is_some_and(|e| !e.previous_images.is_empty());
        if !recorded {
            update_status(&r.releases_api(), name, |s| {
                match s.environments.iter_mut().find(|e| e.name == env.name) {
                    Some(e) => e.previous_images = current.clone(),
                    None => s
                        .environments
                        .push(crate::api::release::EnvironmentProgress {
                            name: env.name.clone(),
                            previous_images: current.clone(),
                            ..Default::default()
                        }),
                }
            })
            .await?;
        }
        let applied = deploy::apply_images(&r.ctx.client, &ns, &owner, &wanted).await?;
        tracing::info!(env = %env.name, release = %name, ?applied, "applied images");
    }
    Ok(())
}
