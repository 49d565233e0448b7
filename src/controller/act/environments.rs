//! Bringing every environment's workloads to the release the state says it
//! runs: deploys, promotions and rollbacks alike. The images the targets
//! had before are recorded on that release first, so a rollback never
//! depends on workload history.
//!
//! A workload is written only by the train that owns it: a free one is
//! claimed first, one owned by another train is never touched. A held
//! environment is left as it is unless it is being rolled back; a change
//! someone else made is reverted or held by the environment's policy; and a
//! workload written too often in a minute is left alone for a person.

use std::time::Instant;

use kube::ResourceExt;

use super::claims;
use super::releases::{self, progress_of};
use crate::api::PackitRelease;
use crate::api::deployment::{DriftPolicy, Environment};
use crate::api::release::TargetImage;
use crate::controller::events::Note;
use crate::controller::observe::{EnvTargets, Observation, owner};
use crate::controller::targets::wanted_images;
use crate::controller::{Context, Error};
use crate::deploy::{self, Claim, DeployError, WriteLog, kind_name};
use crate::labels;
use crate::plan::{Action as Step, TrainState};
use crate::remote::is_unreachable;

pub async fn converge(
    ctx: &Context,
    obs: &Observation,
    state: &TrainState,
    actions: &[Step],
    releases: &[PackitRelease],
    notes: &mut Vec<Note>,
) -> Result<(), Error> {
    let spec = &obs.deployment.spec;
    for ((env, env_state), targets) in spec
        .environments
        .iter()
        .zip(&state.environments)
        .zip(&obs.targets)
    {
        // Never write a workload another train owns (the condition says
        // so), nor one on a cluster that did not answer (it is tried again).
        if targets.conflict().is_some() || targets.unreachable.is_some() {
            continue;
        }
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
        let write = Write {
            env,
            targets,
            release,
            wanted: &wanted,
        };
        match write.converge(ctx, obs, actions, notes).await {
            Ok(()) => record_refusal(ctx, obs, &write, None, notes).await?,
            // The API server's own "no": the release fails with its words
            // instead of waiting for a rollout that cannot come.
            Err(e) if refused(&e) => {
                record_refusal(ctx, obs, &write, Some(e.to_string()), notes).await?
            }
            // The remote went away after it was read: not the release's
            // fault; the reconcile is tried again.
            Err(e)
                if unreachable(&e)
                    && let Some(cluster) = &targets.cluster =>
            {
                return Err(Error::Cluster(format!(
                    "{}: cluster {cluster} did not answer: {e}",
                    env.name,
                )));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One environment brought to one release.
struct Write<'a> {
    env: &'a Environment,
    targets: &'a EnvTargets,
    release: &'a PackitRelease,
    wanted: &'a [TargetImage],
}

impl Write<'_> {
    async fn converge(
        &self,
        ctx: &Context,
        obs: &Observation,
        actions: &[Step],
        notes: &mut Vec<Note>,
    ) -> Result<(), Error> {
        let (env, targets, release, wanted) = (self.env, self.targets, self.release, self.wanted);
        let name = &release.name_any();
        let owner = owner(&obs.deployment, &obs.namespace);
        let place = obs.place(ctx, &env.name);
        let client = place.client.clone();
        let observed = |w: &deploy::WorkloadRef| {
            targets
                .workloads
                .iter()
                .find(|o| &o.workload == w)
                .and_then(|o| o.object.as_ref())
        };
        let current = deploy::images_of(&targets.namespace, &env.targets, observed)?;
        if current == *wanted {
            // Up to date; a workload still nobody's is claimed all the same.
            if targets.workloads.iter().all(|w| w.claim == Claim::Ours) {
                return Ok(());
            }
        } else {
            let rolling_back = actions.iter().any(
                |a| matches!(a, Step::Rollback { environment, .. } if *environment == env.name),
            );
            let change = Change {
                client: &client,
                env,
                targets,
                release: name,
                current: &current,
                wanted,
                rolling_back,
            };
            if !change.allowed(ctx, notes).await? {
                return Ok(());
            }
            let recorded = release
                .status
                .as_ref()
                .and_then(|s| s.environments.iter().find(|e| e.name == env.name))
                .is_some_and(|e| !e.previous_images.is_empty());
            if !recorded {
                // Only ever the first time: a copy of the release a moment
                // old must not overwrite what was recorded before a partial
                // apply.
                releases::update_status(&releases::api(ctx, obs), name, |s| {
                    let progress = progress_of(s, &env.name);
                    if progress.previous_images.is_empty() {
                        progress.previous_images = current.clone();
                        progress.cluster = targets.cluster.clone();
                    }
                })
                .await?;
            }
        }
        claims::prepare(ctx, obs, targets).await?;
        let applied = deploy::apply_observed(
            &client,
            place.cached(),
            &targets.namespace,
            &owner,
            wanted,
            observed,
        )
        .await
        .map_err(claims::lost_race)?;
        claims::claimed(targets, &applied, notes);
        tracing::info!(env = %env.name, release = %name, ?applied, "applied images");
        Ok(())
    }
}

fn unreachable(e: &Error) -> bool {
    match e {
        Error::Deploy(DeployError::Apply { source, .. } | DeployError::Read { source, .. })
        | Error::Kube(source) => is_unreachable(source),
        _ => false,
    }
}

/// Errors that trying again will not mend: the workload or container is
/// missing, or the API server refused the write (RBAC, admission, invalid).
fn refused(e: &Error) -> bool {
    match e {
        Error::Deploy(DeployError::Apply { source, .. } | DeployError::Read { source, .. }) => {
            matches!(source, kube::Error::Api(s) if matches!(s.code, 400 | 403 | 404 | 422))
        }
        Error::Deploy(
            DeployError::NotFound { .. }
            | DeployError::NoContainer { .. }
            | DeployError::NoImage { .. }
            | DeployError::ConflictingImages { .. }
            | DeployError::UnknownKind(_)
            | DeployError::LabelValue { .. },
        ) => true,
        _ => false,
    }
}

/// Records on the release why its images cannot be applied to the
/// environment (with an Event the first time), or clears it once they are.
async fn record_refusal(
    ctx: &Context,
    obs: &Observation,
    write: &Write<'_>,
    why: Option<String>,
    notes: &mut Vec<Note>,
) -> Result<(), Error> {
    let env = &write.env.name;
    let recorded = write
        .release
        .status
        .as_ref()
        .and_then(|s| s.environments.iter().find(|e| &e.name == env))
        .and_then(|e| e.deploy_error.clone());
    if recorded == why {
        return Ok(());
    }
    let name = write.release.name_any();
    if let Some(why) = &why {
        notes.push(Note::warning(
            "DeployFailed",
            format!("{name} cannot be deployed to {env}: {why}"),
        ));
    }
    releases::update_status(&releases::api(ctx, obs), &name, |s| {
        progress_of(s, env).deploy_error = why;
    })
    .await?;
    Ok(())
}

/// An environment about to get other images.
struct Change<'a> {
    client: &'a kube::Client,
    env: &'a Environment,
    targets: &'a EnvTargets,
    release: &'a str,
    current: &'a [TargetImage],
    wanted: &'a [TargetImage],
    rolling_back: bool,
}

impl Change<'_> {
    /// Whether the write may go ahead: not while held (unless rolling
    /// back), not over a change the `Hold` policy keeps, not past the write
    /// limit. Tells what it reverts.
    async fn allowed(&self, ctx: &Context, notes: &mut Vec<Note>) -> Result<bool, Error> {
        let (env, targets) = (self.env, self.targets);
        if !self.rolling_back {
            if let Some(why) = &targets.held {
                tracing::debug!(env = %env.name, %why, "held: not written");
                return Ok(false);
            }
            let kept = targets
                .workloads
                .iter()
                .flat_map(|w| &w.drift)
                .any(|d| !d.unheld);
            if kept && env.on_drift == DriftPolicy::Hold {
                hold_drifted(self.client, targets, notes).await?;
                return Ok(false);
            }
        }
        for w in &targets.workloads {
            for d in &w.drift {
                notes.push(Note::warning(
                    "DriftReverted",
                    format!(
                        "{}: {} container {:?} was set to {} by {}; {} runs {} there, put back",
                        env.name,
                        w.workload,
                        d.container,
                        d.image,
                        d.writer,
                        self.release,
                        d.wanted
                    ),
                ));
            }
        }
        within_write_limit(ctx, self.client, targets, self.current, self.wanted, notes).await
    }
}

/// The `Hold` policy: the drifted workloads get a hold naming the change,
/// which a person lifts (`kubectl packit unhold`).
async fn hold_drifted(
    client: &kube::Client,
    targets: &EnvTargets,
    notes: &mut Vec<Note>,
) -> Result<(), Error> {
    for w in targets
        .workloads
        .iter()
        .filter(|w| w.drift.iter().any(|d| !d.unheld))
    {
        let what: Vec<String> = w
            .drift
            .iter()
            .map(|d| {
                format!(
                    "container {:?} set to {} by {}",
                    d.container, d.image, d.writer
                )
            })
            .collect();
        let why = format!("changed outside the train: {}", what.join(", "));
        // Recorded first: once a person lifts the hold, this change is
        // reverted, not held again.
        deploy::set_annotation(
            client,
            &targets.namespace,
            &w.workload,
            labels::DRIFT_HELD,
            &deploy::held_value(&w.drift),
        )
        .await?;
        deploy::set_annotation(client, &targets.namespace, &w.workload, labels::HOLD, &why).await?;
        notes.push(Note::warning(
            "DriftHeld",
            format!(
                "{}: {} {why}; held until kubectl packit unhold",
                targets.environment, w.workload
            ),
        ));
    }
    Ok(())
}

/// Counts a write of every workload about to change; one written too often
/// this minute is marked as a fight instead, and nothing of the environment
/// is written.
async fn within_write_limit(
    ctx: &Context,
    client: &kube::Client,
    targets: &EnvTargets,
    current: &[TargetImage],
    wanted: &[TargetImage],
    notes: &mut Vec<Note>,
) -> Result<bool, Error> {
    let changing = targets.workloads.iter().filter(|w| {
        current.iter().zip(wanted).any(|(c, x)| {
            c.name == w.workload.name && c.kind == kind_name(w.workload.kind) && c != x
        })
    });
    let now = Instant::now();
    let mut over = Vec::new();
    {
        let mut log = ctx.writes.lock().unwrap_or_else(|p| p.into_inner());
        for w in changing {
            let key = format!("{}/{}", targets.namespace, w.workload);
            if !log.allow(&key, now) {
                log.forget(&key);
                over.push(w);
            }
        }
    }
    for w in &over {
        let writer = w
            .drift
            .first()
            .map_or("another writer", |d| d.writer.as_str());
        deploy::set_annotation(
            client,
            &targets.namespace,
            &w.workload,
            labels::FIGHTING,
            writer,
        )
        .await?;
        notes.push(Note::warning(
            "Fighting",
            format!(
                "{}: {} written {} times in a minute, {writer} keeps changing it; stopped until kubectl packit unhold",
                targets.environment,
                w.workload,
                WriteLog::LIMIT
            ),
        ));
    }
    Ok(over.is_empty())
}
