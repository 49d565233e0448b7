//! Bringing every environment's workloads to the release the state says it
//! runs: deploys, promotions and rollbacks alike. The images the targets
//! had before are recorded on that release first, so a rollback never
//! depends on workload history.

use kube::ResourceExt;

use super::releases::{self, progress_of};
use crate::api::PackitRelease;
use crate::controller::observe::Observation;
use crate::controller::targets::{namespace_of, wanted_images};
use crate::controller::{Context, Error};
use crate::deploy::{self, Owner};
use crate::plan::TrainState;

pub async fn converge(
    ctx: &Context,
    obs: &Observation,
    state: &TrainState,
    releases: &[PackitRelease],
) -> Result<(), Error> {
    let owner = Owner {
        name: obs.name(),
        namespace: obs.namespace.clone(),
    };
    let spec = &obs.deployment.spec;
    for (env, env_state) in spec.environments.iter().zip(&state.environments) {
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
        let ns = namespace_of(&obs.namespace, env);
        let current = deploy::current_images(&ctx.client, &ns, &env.targets).await?;
        if current == wanted {
            continue;
        }
        let recorded = release
            .status
            .as_ref()
            .and_then(|s| s.environments.iter().find(|e| e.name == env.name))
            .is_some_and(|e| !e.previous_images.is_empty());
        if !recorded {
            // Only ever the first time: a copy of the release a moment old
            // must not overwrite what was recorded before a partial apply.
            releases::update_status(&releases::api(ctx, obs), name, |s| {
                let progress = progress_of(s, &env.name);
                if progress.previous_images.is_empty() {
                    progress.previous_images = current.clone();
                }
            })
            .await?;
        }
        let applied = deploy::apply_images(&ctx.client, &ns, &owner, &wanted).await?;
        tracing::info!(env = %env.name, release = %name, ?applied, "applied images");
    }
    Ok(())
}
