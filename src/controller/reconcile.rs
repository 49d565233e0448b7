//! One reconcile: validate -> observe -> plan -> persist the state -> act.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::conditions::{self, DEGRADED, INVALID_SPEC, PROGRESSING, READY, Want, reason};
use super::{
    Context, Error, MANAGER, build, changelog, environments, history, notifications, release,
    requests,
};
use crate::api::deployment::requests::{PROMOTE, ROLLBACK};
use crate::api::validate::validate;
use crate::api::{PackitDeployment, PackitDeploymentStatus, PackitRelease};
use crate::labels;
use crate::metrics::{DeploymentLabels, ErrorLabels, PhaseLabels, ResultLabels};
use crate::plan::{
    self, Action as Step, BuildResult, Decision, Observed, ReleasePhase, RollbackCause, Stage,
    TrainState,
};

/// The longest the controller waits without a watch event; a safety net,
/// the planner's next instant is normally sooner.
const MAX_REQUEUE: Duration = Duration::from_secs(3600);

/// How often a build waiting for an image pushed by CI looks again.
const EXTERNAL_POLL: Duration = Duration::from_secs(5);

/// How often a release being verified is looked at without a watch event:
/// the rollout and pod events normally wake it, but watches are lost while
/// the API server restarts and come back only after a relist.
const VERIFY_POLL: Duration = Duration::from_secs(10);

pub async fn reconcile(obj: Arc<PackitDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<PackitDeployment> = Api::namespaced(ctx.client.clone(), &namespace);
    // Plan from a fresh copy: the watch cache can lag behind this
    // controller's own last status write, and a stale state would repeat
    // actions.
    let Some(pkd) = api.get_opt(&obj.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if pkd.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let now = Utc::now();
    let r = Reconciler {
        recorder: Recorder::new(ctx.client.clone(), ctx.reporter.clone()),
        ctx: &ctx,
        api,
        namespace,
        pkd,
        now,
    };
    let started = std::time::Instant::now();
    let result = r.run().await;
    let m = &ctx.metrics;
    m.reconcile_seconds.observe(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "ok" } else { "error" };
    m.reconciles
        .get_or_create(&ResultLabels { result: outcome })
        .inc();
    if let Err(e) = &result {
        m.errors
            .get_or_create(&ErrorLabels { kind: e.kind() })
            .inc();
        // Where the user looks: the Event says what blocks the train (a
        // missing workload, an API error); the retry follows.
        r.event("ReconcileFailed", e.to_string(), true).await;
    }
    result
}

pub(super) struct Reconciler<'a> {
    pub ctx: &'a Context,
    pub recorder: Recorder,
    pub api: Api<PackitDeployment>,
    pub namespace: String,
    pub pkd: PackitDeployment,
    pub now: DateTime<Utc>,
}

impl Reconciler<'_> {
    pub fn name(&self) -> String {
        self.pkd.name_any()
    }

    pub fn releases_api(&self) -> Api<PackitRelease> {
        Api::namespaced(self.ctx.client.clone(), &self.namespace)
    }

    pub async fn event(&self, reason: &str, message: String, warning: bool) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(truncate(message, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self
            .recorder
            .publish(&event, &self.pkd.object_ref(&()))
            .await
        {
            tracing::warn!(error = %e, "publishing an Event failed");
        }
    }

    async fn run(&self) -> Result<Action, Error> {
        let status = self.pkd.status.clone().unwrap_or_default();
        if let Err((why, message)) = self.check_spec().await {
            return self.invalid(&status, why, message).await;
        }
        let releases = self.releases().await?;
        let mut state = status.train.clone();
        let observed = self.observe(&mut state, &releases).await?;
        let decision = match plan::plan(&self.pkd.spec, &state, &observed, self.now) {
            Ok(d) => d,
            Err(e) => {
                return self
                    .invalid(&status, reason::SPEC_INVALID, e.to_string())
                    .await;
            }
        };
        // Persist the new state before acting on it: a restart then resumes
        // from it instead of repeating an action.
        self.write_status(&status, &decision).await?;
        self.act(&decision, &releases).await?;
        let releases = self.releases().await?;
        // Written as soon as the release exists: its commits are known.
        let in_flight = decision.state.in_flight.as_ref().and_then(|f| {
            releases
                .iter()
                .find(|r| r.name_any() == f.release && r.status.is_some())
        });
        if let Some(rel) = in_flight {
            changelog::ensure(self, rel).await?;
        }
        environments::ensure(self, &decision.state, &releases).await?;
        let automatic_rollback = decision.actions.iter().any(|a| {
            matches!(
                a,
                Step::Rollback {
                    cause: RollbackCause::Automatic(_),
                    ..
                }
            )
        });
        if automatic_rollback {
            // Detected during this reconcile, applied by `ensure` just now.
            let seconds = (Utc::now() - self.now)
                .to_std()
                .unwrap_or_default()
                .as_secs_f64();
            self.ctx.metrics.rollback_seconds.observe(seconds);
        }
        self.record_metrics(&decision, &releases);
        history::prune(self, &decision.state, &releases).await?;
        Ok(Action::requeue(requeue_after(
            &decision, &observed, self.now,
        )))
    }

    /// What the planner needs to know: requests, built releases, and the
    /// build or health of the release in flight. Requests that cannot be
    /// parsed are rejected here, once each.
    async fn observe(
        &self,
        state: &mut TrainState,
        releases: &[PackitRelease],
    ) -> Result<Observed, Error> {
        let (requests, bad) = requests::parse(self.pkd.annotations(), self.now);
        for b in bad {
            let handled = match b.annotation {
                PROMOTE => &mut state.handled.promote,
                ROLLBACK => &mut state.handled.rollback,
                _ => &mut state.handled.release,
            };
            if handled.as_deref() != Some(b.value.as_str()) {
                *handled = Some(b.value.clone());
                let message = format!("{} ignored: {}", b.annotation, b.why);
                self.event("RequestRejected", message, true).await;
            }
        }
        let mut observed = Observed {
            name: self.name(),
            built: releases
                .iter()
                .filter(|r| r.spec.images.is_some())
                .map(ResourceExt::name_any)
                .collect(),
            requests,
            ..Default::default()
        };
        if let Some(f) = &state.in_flight {
            let current = releases.iter().find(|r| r.name_any() == f.release);
            match (f.stage, &f.environment, current) {
                (Stage::Building, _, _) => {
                    observed.build = Some(build::observe(self, state, f, current, releases).await);
                }
                (Stage::Verifying, Some(env), Some(rel)) => {
                    observed.health = environments::health(self, env, rel).await?;
                }
                _ => {}
            }
        }
        Ok(observed)
    }

    /// Carries out the decision's steps; deploys and rollbacks happen in
    /// `environments::ensure`, which brings every environment to its release.
    async fn act(&self, decision: &Decision, releases: &[PackitRelease]) -> Result<(), Error> {
        for step in &decision.actions {
            match step {
                Step::StartBuild { release, trigger } => {
                    let created =
                        release::create(self, release, *trigger, &decision.state, releases).await;
                    if let Err(e) = created {
                        // The next reconcile (soon) tries again and fails the build.
                        self.event(reason::SOURCE_UNAVAILABLE, format!("{release}: {e}"), true)
                            .await;
                    }
                }
                Step::SetPhase {
                    release,
                    phase,
                    environment,
                    message,
                } => {
                    release::set_phase(self, release, *phase, environment.as_deref(), message)
                        .await?;
                    notifications::send(self, release, *phase, environment.as_deref(), message)
                        .await?;
                }
                Step::Event {
                    reason,
                    message,
                    warning,
                } => {
                    self.event(reason, message.clone(), *warning).await;
                }
                Step::Deploy { .. } | Step::Rollback { .. } => {}
            }
        }
        Ok(())
    }

    /// Releases by phase and the next build and window, for this deployment.
    fn record_metrics(&self, decision: &Decision, releases: &[PackitRelease]) {
        let m = &self.ctx.metrics;
        let labels = DeploymentLabels {
            namespace: self.namespace.clone(),
            deployment: self.name(),
        };
        for phase in ReleasePhase::ALL {
            let count = releases
                .iter()
                .filter(|r| r.status.as_ref().and_then(|s| s.phase) == Some(phase))
                .count();
            let phase_labels = PhaseLabels {
                namespace: labels.namespace.clone(),
                deployment: labels.deployment.clone(),
                phase: format!("{phase:?}"),
            };
            m.releases
                .get_or_create(&phase_labels)
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        for (family, at) in [
            (&m.next_build, decision.next_build),
            (&m.next_window, decision.next_window),
        ] {
            match at {
                Some(t) => {
                    family.get_or_create(&labels).set(t.timestamp());
                }
                None => {
                    family.remove(&labels);
                }
            }
        }
    }

    /// Spec problems the schema cannot catch, and namespaces that did not
    /// opt in.
    async fn check_spec(&self) -> Result<(), (&'static str, String)> {
        validate(&self.pkd.spec).map_err(|e| (reason::SPEC_INVALID, e.to_string()))?;
        environments::check_namespaces(self)
            .await
            .map_err(|m| (reason::NAMESPACE_NOT_ALLOWED, m))
    }

    async fn releases(&self) -> Result<Vec<PackitRelease>, Error> {
        let selector = format!("{}={}", labels::DEPLOYMENT, self.name());
        let mut list = self
            .releases_api()
            .list(&ListParams::default().labels(&selector))
            .await?
            .items;
        list.sort_by_key(|r| (r.creation_timestamp(), r.name_any()));
        Ok(list)
    }

    async fn invalid(
        &self,
        status: &PackitDeploymentStatus,
        why: &'static str,
        message: String,
    ) -> Result<Action, Error> {
        let previous = status.conditions.iter().find(|c| c.type_ == INVALID_SPEC);
        if previous.is_none_or(|c| c.status != "True" || c.message != message) {
            self.event(
                "InvalidSpec",
                format!("nothing is deployed until this is fixed: {message}"),
                true,
            )
            .await;
        }
        let wanted = [
            Want::new(INVALID_SPEC, true, why, message.clone()),
            Want::new(READY, false, why, message),
        ];
        let mut next = status.clone();
        next.conditions = conditions::merge(
            &status.conditions,
            &wanted,
            self.pkd.meta().generation,
            self.now,
        );
        next.observed_generation = self.pkd.meta().generation;
        next.phase = Some("InvalidSpec".into());
        self.apply_status(&next).await?;
        Ok(Action::await_change())
    }

    async fn write_status(
        &self,
        previous: &PackitDeploymentStatus,
        d: &Decision,
    ) -> Result<(), Error> {
        let wanted = wanted_conditions(&d.state, &d.phase);
        let status = PackitDeploymentStatus {
            observed_generation: self.pkd.meta().generation,
            conditions: conditions::merge(
                &previous.conditions,
                &wanted,
                self.pkd.meta().generation,
                self.now,
            ),
            phase: Some(d.phase.clone()),
            releases: Some(summary(&d.state)),
            next_build: d.next_build,
            next_window: d.next_window,
            train: d.state.clone(),
        };
        self.apply_status(&status).await
    }

    /// Server-side apply of the whole status, guarded by the resource
    /// version read at the start: a concurrent writer makes this fail
    /// instead of being overwritten.
    async fn apply_status(&self, status: &PackitDeploymentStatus) -> Result<(), Error> {
        let patch = json!({
            "apiVersion": "packit.dev/v1alpha1",
            "kind": "PackitDeployment",
            "metadata": { "name": self.name(), "resourceVersion": self.pkd.resource_version() },
            "status": status,
        });
        self.api
            .patch_status(
                &self.name(),
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        Ok(())
    }
}

/// Ready, Progressing and Degraded from the train's state: degraded while
/// the last release that left the train failed.
fn wanted_conditions(state: &TrainState, phase: &str) -> Vec<Want> {
    let failed = state.last_finished.as_ref().filter(|f| {
        matches!(
            f.phase,
            ReleasePhase::BuildFailed
                | ReleasePhase::StagingFailed
                | ReleasePhase::RolledBack
                | ReleasePhase::Failed
        )
    });
    let progressing = match &state.in_flight {
        Some(f) => Want::new(
            PROGRESSING,
            true,
            reason::RELEASE_IN_FLIGHT,
            format!("{}: {phase}", f.release),
        ),
        None => Want::new(PROGRESSING, false, reason::IDLE, "no release in flight"),
    };
    let (ready, degraded) = match failed {
        Some(f) => {
            let message = format!("{} {:?}: {}", f.release, f.phase, f.message);
            (
                Want::new(READY, false, reason::LAST_RELEASE_FAILED, message.clone()),
                Want::new(DEGRADED, true, reason::LAST_RELEASE_FAILED, message),
            )
        }
        None => (
            Want::new(READY, true, reason::HEALTHY, "no failed release"),
            Want::new(DEGRADED, false, reason::HEALTHY, ""),
        ),
    };
    vec![
        Want::new(INVALID_SPEC, false, reason::SPEC_VALID, ""),
        ready,
        progressing,
        degraded,
    ]
}

/// When to reconcile again without a watch event: the planner's next
/// instant, sooner right after a build started (to create its Job), while
/// waiting for CI's images (a registry push triggers no watch) or while
/// verifying.
fn requeue_after(decision: &Decision, observed: &Observed, now: DateTime<Utc>) -> Duration {
    let planned = decision.requeue_at.map_or(MAX_REQUEUE, |t| {
        (t - now).to_std().unwrap_or_default().min(MAX_REQUEUE)
    });
    let started = decision
        .actions
        .iter()
        .any(|a| matches!(a, Step::StartBuild { .. }));
    let verifying = decision
        .state
        .in_flight
        .as_ref()
        .is_some_and(|f| f.stage == Stage::Verifying);
    let wait = if started {
        planned.min(Duration::from_secs(1))
    } else if observed.build == Some(BuildResult::Running) {
        planned.min(EXTERNAL_POLL)
    } else if verifying {
        planned.min(VERIFY_POLL)
    } else {
        planned
    };
    wait.max(Duration::from_millis(200))
}

/// `staging=<release> production=<release>` for `kubectl get`.
fn summary(state: &TrainState) -> String {
    let parts: Vec<String> = state
        .environments
        .iter()
        .map(|e| format!("{}={}", e.name, e.release.as_deref().unwrap_or("-")))
        .collect();
    parts.join(" ")
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max.saturating_sub(3);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Releases the controller must never delete: running somewhere, in
/// flight, the last verified one of each environment, or pinned.
pub(super) fn protected(pkd: &PackitDeployment, state: &TrainState) -> BTreeSet<String> {
    let mut keep = BTreeSet::new();
    keep.extend(state.in_flight.as_ref().map(|f| f.release.clone()));
    for e in &state.environments {
        keep.extend(e.release.clone());
        keep.extend(e.verified.last().cloned());
    }
    keep.extend(pkd.spec.environments.iter().filter_map(|e| e.pin.clone()));
    keep
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::api::release::Trigger;

    fn decision(requeue_in: Option<i64>, actions: Vec<Step>, now: DateTime<Utc>) -> Decision {
        Decision {
            actions,
            state: TrainState::default(),
            requeue_at: requeue_in.map(|s| now + TimeDelta::seconds(s)),
            phase: "Idle".into(),
            next_build: None,
            next_window: None,
        }
    }

    #[test]
    fn requeues_at_the_planned_instant_or_sooner_when_polling() {
        let now = Utc::now();
        let idle = Observed::default();
        let building = Observed {
            build: Some(BuildResult::Running),
            ..Default::default()
        };
        assert_eq!(
            requeue_after(&decision(Some(90), vec![], now), &idle, now),
            Duration::from_secs(90)
        );
        assert_eq!(
            requeue_after(&decision(None, vec![], now), &idle, now),
            MAX_REQUEUE
        );
        assert_eq!(
            requeue_after(&decision(Some(86_400), vec![], now), &idle, now),
            MAX_REQUEUE
        );
        assert_eq!(
            requeue_after(&decision(Some(3600), vec![], now), &building, now),
            EXTERNAL_POLL
        );
        let start = Step::StartBuild {
            release: "r".into(),
            trigger: Trigger::Manual,
        };
        assert_eq!(
            requeue_after(&decision(Some(3600), vec![start], now), &idle, now),
            Duration::from_secs(1)
        );
        // A planned instant in the past still waits a moment.
        assert_eq!(
            requeue_after(&decision(Some(-5), vec![], now), &idle, now),
            Duration::from_millis(200)
        );
        // Verifying looks again even when no watch event comes.
        let mut verifying = decision(Some(3600), vec![], now);
        verifying.state.in_flight = serde_json::from_value(json!({
            "release": "r", "stage": "Verifying", "environment": "staging", "since": now
        }))
        .unwrap();
        assert_eq!(requeue_after(&verifying, &idle, now), VERIFY_POLL);
        let mut soon = decision(Some(3), vec![], now);
        soon.state.in_flight = verifying.state.in_flight.clone();
        assert_eq!(requeue_after(&soon, &idle, now), Duration::from_secs(3));
    }
}
