//! Stage 3, act: carries out a plan and says how it went. The only stage
//! that writes: the deployment's status, releases, builder and smoke-test
//! Jobs, and workloads. Each actor is idempotent, so a plan carried out
//! twice (after a restart, or from a cache a moment old) changes nothing
//! the second time.
//!
//! Order matters: the status is persisted first (write-ahead, guarded by
//! the resource version that was observed), then the build's follow-ups,
//! the checks' verdicts, the smoke tests to start, the phases (with their
//! notifications queued in the same write), the changelog, the environments,
//! the notification attempts that are due, and the history.

mod builds;
mod changelog;
mod claims;
mod environments;
mod history;
mod notify;
mod releases;
mod smoke_tests;
mod status;
mod verdicts;

use kube::ResourceExt;

use super::decide::TrainPlan;
use super::events::{Note, Publisher};
use super::observe::Observation;
use super::{Context, Error};
use crate::api::{PackitDeploymentStatus, PackitRelease};
use crate::plan::{Action as Step, RollbackCause, Stage};

/// How carrying out a plan went.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// The plan's status was persisted: its Events may be told.
    pub committed: bool,
    /// What the actors want people to know.
    pub notes: Vec<Note>,
    /// An automatic rollback was applied (for the rollback-time metric).
    pub rolled_back: bool,
    /// The first failure; nothing after it was tried.
    pub error: Option<Error>,
}

pub use claims::release_all;

/// Records an invalid spec's status.
pub async fn record_invalid(
    ctx: &Context,
    obs: &Observation,
    status: &PackitDeploymentStatus,
) -> Outcomes {
    match status::persist(ctx, obs, status).await {
        Ok(()) => Outcomes {
            committed: true,
            ..Default::default()
        },
        Err(e) => Outcomes {
            error: Some(e),
            ..Default::default()
        },
    }
}

pub async fn act(
    ctx: &Context,
    obs: &Observation,
    plan: &TrainPlan,
    events: &Publisher,
) -> Outcomes {
    let mut out = Outcomes::default();
    if let Err(e) = status::persist(ctx, obs, &plan.status).await {
        out.error = Some(e);
        return out;
    }
    out.committed = true;
    if let Err(e) = carry_out(ctx, obs, plan, events, &mut out).await {
        out.error = Some(e);
    }
    out
}

async fn carry_out(
    ctx: &Context,
    obs: &Observation,
    plan: &TrainPlan,
    events: &Publisher,
    out: &mut Outcomes,
) -> Result<(), Error> {
    let d = &plan.decision;
    // The releases as this reconcile leaves them: what the actors create or
    // change replaces the observed copy.
    let mut releases: Vec<PackitRelease> = obs.releases.iter().map(|r| (**r).clone()).collect();
    let building = d
        .state
        .in_flight
        .as_ref()
        .filter(|f| f.stage == Stage::Building);
    if let (Some(f), Some(build)) = (building, &obs.build)
        && let Some(rel) = builds::follow_up(ctx, obs, &f.release, build, &mut out.notes).await?
    {
        upsert(&mut releases, rel);
    }
    if let Some(rel) = verdicts::record(ctx, obs).await? {
        upsert(&mut releases, rel);
    }
    for step in &d.actions {
        if let Step::RunSmokeTest {
            environment,
            release,
            test,
        } = step
            && let Some(rel) =
                smoke_tests::start(ctx, obs, environment, release, test, &mut out.notes).await?
        {
            upsert(&mut releases, rel);
        }
    }
    for step in &d.actions {
        if let Step::SetPhase {
            release,
            phase,
            environment,
            message,
        } = step
        {
            let queued = notify::queue(obs, release, *phase, environment.as_deref(), message);
            let recorded = releases::set_phase(
                ctx,
                obs,
                release,
                *phase,
                environment.as_deref(),
                message,
                queued,
            )
            .await?;
            if let Some(rel) = recorded {
                upsert(&mut releases, rel);
            }
        }
    }
    for step in &d.actions {
        if let Step::RecordApproval { release, approval } = step
            && let Some(rel) = releases::record_approval(ctx, obs, release, approval).await?
        {
            upsert(&mut releases, rel);
        }
    }
    // Written as soon as the release exists: its commits are known.
    let in_flight = d.state.in_flight.as_ref().and_then(|f| {
        releases
            .iter()
            .find(|r| r.name_any() == f.release && r.status.is_some())
    });
    if let Some(rel) = in_flight.cloned() {
        let rel = changelog::ensure(ctx, obs, rel, &mut out.notes).await?;
        upsert(&mut releases, rel);
    }
    // Workloads first: a slow webhook must not hold a rollback back. The
    // notifications are delivered even when the workloads fail to converge.
    let converged =
        environments::converge(ctx, obs, &d.state, &d.actions, &releases, &mut out.notes).await;
    notify::deliver_due(ctx, obs, &mut releases, events, &mut out.notes).await;
    converged?;
    claims::release_stale(obs, &mut out.notes).await?;
    out.rolled_back = d.actions.iter().any(|a| {
        matches!(
            a,
            Step::Rollback {
                cause: RollbackCause::Automatic(_),
                ..
            }
        )
    });
    history::prune(ctx, obs, &plan.prune).await
}

/// Replaces the release of the same name, or adds it.
fn upsert(releases: &mut Vec<PackitRelease>, release: PackitRelease) {
    match releases
        .iter_mut()
        .find(|r| r.name_any() == release.name_any())
    {
        Some(r) => *r = release,
        None => releases.push(release),
    }
}
