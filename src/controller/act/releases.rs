//! Writing PackitReleases: creating them, their phases and progress.

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::api::release::{EnvironmentProgress, NotificationDelivery};
use crate::api::{PackitRelease, PackitReleaseStatus};
use crate::controller::observe::{NewRelease, Observation};
use crate::controller::{Context, Error, MANAGER};
use crate::notify::outbox;
use crate::plan::{Approval, ReleasePhase};

pub fn api(ctx: &Context, obs: &Observation) -> Api<PackitRelease> {
    Api::namespaced(ctx.client.clone(), &obs.namespace)
}

/// Creates the release with its first status (or finds the one that
/// exists: creating it again after a restart is harmless).
pub async fn create(
    ctx: &Context,
    obs: &Observation,
    new: &NewRelease,
) -> Result<PackitRelease, Error> {
    let api = api(ctx, obs);
    let name = new.release.name_any();
    match api.create(&PostParams::default(), &new.release).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.is_already_exists() => {}
        Err(e) => return Err(e.into()),
    }
    let rebuild = new.rebuild;
    let created = update_status(&api, &name, |s| {
        s.phase.get_or_insert(ReleasePhase::Building);
        s.commit_summary = Some(new.commit_summary.clone());
        s.rebuild = rebuild;
        if rebuild {
            s.message = Some("no new commits: rebuilt for base-image updates".into());
        }
    })
    .await?;
    Ok(created)
}

/// Records a phase, the environment's progress it implies and the
/// notifications it calls for; none when the release object is gone.
pub async fn set_phase(
    ctx: &Context,
    obs: &Observation,
    release: &str,
    phase: ReleasePhase,
    environment: Option<&str>,
    message: &str,
    notifications: Vec<NotificationDelivery>,
) -> Result<Option<PackitRelease>, Error> {
    let api = api(ctx, obs);
    let now = obs.now;
    let updated = update_status(&api, release, |s| {
        s.phase = Some(phase);
        // In the same write as the phase: a crash after it loses nothing.
        outbox::enqueue(&mut s.notifications, notifications);
        s.message = Some(message.to_owned());
        let Some(env) = environment else { return };
        let progress = progress_of(s, env);
        match phase {
            ReleasePhase::Staging | ReleasePhase::Production => {
                progress.deployed_at = Some(now);
                progress.verified_at = None;
                progress.failed_at = None;
            }
            ReleasePhase::Verified | ReleasePhase::Released => progress.verified_at = Some(now),
            ReleasePhase::StagingFailed
            | ReleasePhase::RolledBack
            | ReleasePhase::Failed
            | ReleasePhase::Cancelled => progress.failed_at = Some(now),
            _ => {}
        }
        progress.message = Some(message.to_owned());
    })
    .await;
    Ok(unless_gone(updated, release, "phase")?)
}

/// Records a person's approval in the release's progress of the
/// environment; none when the release object is gone.
pub async fn record_approval(
    ctx: &Context,
    obs: &Observation,
    release: &str,
    approval: &Approval,
) -> Result<Option<PackitRelease>, Error> {
    let updated = update_status(&api(ctx, obs), release, |s| {
        progress_of(s, &approval.environment).approval = Some(approval.clone());
    })
    .await;
    Ok(unless_gone(updated, release, "approval")?)
}

/// A status write to a release deleted in the meantime records nothing and
/// is no error.
fn unless_gone(
    updated: Result<PackitRelease, kube::Error>,
    release: &str,
    what: &str,
) -> Result<Option<PackitRelease>, kube::Error> {
    match updated {
        Ok(rel) => Ok(Some(rel)),
        Err(kube::Error::Api(e)) if e.is_not_found() => {
            tracing::info!(release, "release object is gone; {what} not recorded");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The progress entry of `env`, added when missing.
pub fn progress_of<'a>(s: &'a mut PackitReleaseStatus, env: &str) -> &'a mut EnvironmentProgress {
    let i = match s.environments.iter().position(|e| e.name == env) {
        Some(i) => i,
        None => {
            s.environments.push(EnvironmentProgress {
                name: env.to_owned(),
                ..Default::default()
            });
            s.environments.len() - 1
        }
    };
    &mut s.environments[i]
}

/// Read-modify-write of a release's status under the operator's field
/// manager (the status has one writer), guarded by the resource version it
/// read. Returns the release as written (as read when nothing changed).
pub async fn update_status(
    api: &Api<PackitRelease>,
    name: &str,
    change: impl FnOnce(&mut PackitReleaseStatus),
) -> Result<PackitRelease, kube::Error> {
    let current = api.get(name).await?;
    let mut status = current.status.clone().unwrap_or_default();
    let before = status.clone();
    change(&mut status);
    if status == before {
        return Ok(current);
    }
    let patch = json!({
        "apiVersion": "packit.dev/v1alpha1",
        "kind": "PackitRelease",
        "metadata": { "name": name, "resourceVersion": current.resource_version() },
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
}

/// Like [`update_status`], for a writer that races the reconciles (the
/// notification attempts): a conflict reads again and applies `change` to
/// what is there now, so no other writer's fields are lost.
pub async fn modify_status(
    api: &Api<PackitRelease>,
    name: &str,
    mut change: impl FnMut(&mut PackitReleaseStatus),
) -> Result<PackitRelease, kube::Error> {
    let mut tries = 0;
    loop {
        tries += 1;
        match update_status(api, name, &mut change).await {
            Err(kube::Error::Api(e)) if e.code == 409 && tries < 5 => continue,
            other => return other,
        }
    }
}
