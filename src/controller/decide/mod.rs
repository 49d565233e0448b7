//! Stage 2, plan: the pure decision. Calls the planner with what was
//! observed and turns its answer into what the actors and the report need:
//! the status to persist, the releases to prune, the Events to publish and
//! when to look again. No I/O, no clock.

mod targets;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::{Resource, ResourceExt};

use super::conditions::{self, DEGRADED, INVALID_SPEC, PROGRESSING, READY, Want, reason};
use super::events::Note;
use super::observe::{Observation, SpecProblem};
use crate::api::deployment::requests::{APPROVE, PROMOTE, ROLLBACK};
use crate::api::{PackitDeployment, PackitDeploymentStatus};
use crate::notify;
use crate::plan::{
    self, Action as Step, BuildResult, Decision, Observed, ReleasePhase, Stage, TrainState,
};

/// The longest the controller waits without a watch event; a safety net,
/// the planner's next instant is normally sooner.
pub const MAX_REQUEUE: Duration = Duration::from_secs(3600);

/// How often a build waiting for an image pushed by CI looks again.
pub const EXTERNAL_POLL: Duration = Duration::from_secs(5);

/// How often a release being verified is looked at without a watch event:
/// the rollout and pod events normally wake it, but watches are lost while
/// the API server restarts and come back only after a relist.
pub const VERIFY_POLL: Duration = Duration::from_secs(10);

/// How often a train with a blocked environment looks again.
pub const BLOCKED_POLL: Duration = Duration::from_secs(15);

/// How often a train whose cluster Secret is missing or unusable looks again.
pub const SECRET_POLL: Duration = Duration::from_secs(15);

/// How often a notification attempt that is overdue is looked at.
pub const OVERDUE_POLL: Duration = Duration::from_secs(5);

/// What a reconcile is going to do.
pub enum Plan {
    /// The spec cannot be acted on: record why, touch nothing, wait for a
    /// change.
    Invalid {
        status: Box<PackitDeploymentStatus>,
        notes: Vec<Note>,
        /// When to look again although nothing changed: a remote cluster's
        /// Secret is not watched, so its repair wakes nobody.
        retry: Option<Duration>,
    },
    Train(Box<TrainPlan>),
}

pub struct TrainPlan {
    pub decision: Decision,
    /// The status to persist before acting: a restart then resumes from
    /// it instead of repeating an action.
    pub status: PackitDeploymentStatus,
    /// Releases past `historyLimit` that nothing protects.
    pub prune: Vec<String>,
    /// Events the decision itself calls for.
    pub notes: Vec<Note>,
    /// When to reconcile again without a watch event.
    pub requeue: Duration,
}

pub fn decide(obs: &Observation) -> Plan {
    let previous = obs.deployment.status.clone().unwrap_or_default();
    if let Some(problem) = &obs.spec_problem {
        return invalid(&obs.deployment, &previous, problem, obs.now);
    }
    let mut state = obs.state();
    let mut notes = reject_bad_requests(obs, &mut state);
    let build = obs.build.as_ref().map(|b| b.result());
    let assessment = targets::assess(&obs.targets, &previous.conditions);
    notes.extend(assessment.notes);
    let observed = Observed {
        name: obs.name(),
        built: obs
            .releases
            .iter()
            .filter(|r| r.spec.images.is_some())
            .map(|r| r.name_any())
            .collect(),
        build,
        health: obs.health.clone(),
        requests: obs.requests.clone(),
        blocked: assessment.blocked,
        unreachable: assessment.unreachable,
    };
    let decision = match plan::plan(&obs.deployment.spec, &state, &observed, obs.now) {
        Ok(d) => d,
        Err(e) => {
            let problem = SpecProblem {
                reason: reason::SPEC_INVALID,
                message: e.to_string(),
            };
            return invalid(&obs.deployment, &previous, &problem, obs.now);
        }
    };
    notes.extend(decision.actions.iter().filter_map(|a| match a {
        Step::Event {
            reason,
            message,
            warning,
        } => Some(Note {
            reason: (*reason).to_owned(),
            message: message.clone(),
            warning: *warning,
        }),
        _ => None,
    }));
    // A rollback is recorded at once; its writes wait for the cluster.
    notes.extend(decision.actions.iter().filter_map(|a| match a {
        Step::Rollback {
            environment, to, ..
        } => observed.unreachable.get(environment).map(|why| {
            Note::warning(
                "RollbackPending",
                format!("rolling {environment} back to {to} as soon as its cluster answers ({why}); trying again"),
            )
        }),
        _ => None,
    }));
    let names: Vec<String> = obs.releases.iter().map(|r| r.name_any()).collect();
    let keep = protected(&obs.deployment, &decision.state);
    let prune = to_prune(&names, &keep, obs.deployment.spec.history_limit as usize);
    Plan::Train(Box::new(TrainPlan {
        status: status(
            &obs.deployment,
            &previous,
            &decision,
            assessment.conditions,
            obs.now,
        ),
        requeue: requeue_after(&decision, &observed, obs.now)
            .min(notification_wait(obs).unwrap_or(MAX_REQUEUE))
            .min(assessment.retry.unwrap_or(MAX_REQUEUE)),
        decision,
        prune,
        notes,
    }))
}

/// Marks request annotations that cannot be parsed as handled, each with
/// one Event.
fn reject_bad_requests(obs: &Observation, state: &mut TrainState) -> Vec<Note> {
    let mut notes = Vec::new();
    for b in &obs.bad_requests {
        let handled = match b.annotation {
            PROMOTE => &mut state.handled.promote,
            ROLLBACK => &mut state.handled.rollback,
            APPROVE => &mut state.handled.approve,
            _ => &mut state.handled.release,
        };
        if handled.as_deref() != Some(b.value.as_str()) {
            *handled = Some(b.value.clone());
            let message = format!("{} ignored: {}", b.annotation, b.why);
            notes.push(Note::warning("RequestRejected", message));
        }
    }
    notes
}

fn invalid(
    pkd: &PackitDeployment,
    previous: &PackitDeploymentStatus,
    problem: &SpecProblem,
    now: DateTime<Utc>,
) -> Plan {
    let message = &problem.message;
    let before = previous.conditions.iter().find(|c| c.type_ == INVALID_SPEC);
    let mut notes = Vec::new();
    if before.is_none_or(|c| c.status != "True" || &c.message != message) {
        notes.push(Note::warning(
            "InvalidSpec",
            format!("nothing is deployed until this is fixed: {message}"),
        ));
    }
    let wanted = [
        Want::new(INVALID_SPEC, true, problem.reason, message.clone()),
        Want::new(READY, false, problem.reason, message.clone()),
    ];
    let generation = pkd.meta().generation;
    let mut status = previous.clone();
    status.conditions = conditions::merge(&previous.conditions, &wanted, generation, now);
    status.observed_generation = generation;
    status.phase = Some("InvalidSpec".into());
    Plan::Invalid {
        status: Box::new(status),
        notes,
        retry: (problem.reason == reason::CLUSTER_CONFIG_INVALID).then_some(SECRET_POLL),
    }
}

fn status(
    pkd: &PackitDeployment,
    previous: &PackitDeploymentStatus,
    d: &Decision,
    targets: Vec<Want>,
    now: DateTime<Utc>,
) -> PackitDeploymentStatus {
    let generation = pkd.meta().generation;
    let mut wanted = wanted_conditions(&d.state, &d.phase);
    wanted.extend(targets);
    PackitDeploymentStatus {
        observed_generation: generation,
        conditions: conditions::merge(&previous.conditions, &wanted, generation, now),
        phase: Some(d.phase.clone()),
        releases: Some(summary(&d.state)),
        next_build: d.next_build,
        next_window: d.next_window,
        train: d.state.clone(),
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
/// instant, sooner right after a build started (to create its release),
/// while waiting for CI's images (a registry push triggers no watch), while
/// verifying, or while an environment is blocked (a claim given back or a
/// hold lifted on a workload of another train wakes nobody here).
fn requeue_after(decision: &Decision, observed: &Observed, now: DateTime<Utc>) -> Duration {
    let build = observed.build.as_ref();
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
    } else if build == Some(&BuildResult::Running) {
        planned.min(EXTERNAL_POLL)
    } else if verifying {
        planned.min(VERIFY_POLL)
    } else if !observed.blocked.is_empty() {
        planned.min(BLOCKED_POLL)
    } else {
        planned
    };
    wait.max(Duration::from_millis(200))
}

/// How long until the next notification attempt of the train's releases
/// is due; none while nothing is pending. One due already is being
/// attempted by this reconcile, and recording its result wakes the train:
/// looking again after [`OVERDUE_POLL`] only covers an attempt that could
/// not start.
fn notification_wait(obs: &Observation) -> Option<Duration> {
    let entries = obs
        .releases
        .iter()
        .filter_map(|r| r.status.as_ref())
        .flat_map(|s| &s.notifications);
    let due = notify::outbox::next_due(entries)?;
    Some(match (due - obs.now).to_std() {
        Ok(wait) if !wait.is_zero() => wait,
        _ => OVERDUE_POLL,
    })
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

/// Releases the controller must never delete: running somewhere, in
/// flight, the last verified one of each environment, or pinned.
fn protected(pkd: &PackitDeployment, state: &TrainState) -> BTreeSet<String> {
    let mut keep = BTreeSet::new();
    keep.extend(state.in_flight.as_ref().map(|f| f.release.clone()));
    for e in &state.environments {
        keep.extend(e.release.clone());
        keep.extend(e.verified.last().cloned());
    }
    keep.extend(pkd.spec.environments.iter().filter_map(|e| e.pin.clone()));
    keep
}

/// Names to delete: everything past the newest `limit`, except `keep`.
/// `releases` is sorted oldest first.
fn to_prune(releases: &[String], keep: &BTreeSet<String>, limit: usize) -> Vec<String> {
    let excess = releases.len().saturating_sub(limit);
    releases[..excess]
        .iter()
        .filter(|r| !keep.contains(*r))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use serde_json::json;

    use super::*;
    use crate::api::PackitRelease;
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
            ..Observed::default()
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
        // A blocked environment is looked at again: nothing else wakes it.
        let blocked = Observed {
            blocked: [("production".to_owned(), "held".to_owned())].into(),
            ..Observed::default()
        };
        assert_eq!(
            requeue_after(&decision(Some(3600), vec![], now), &blocked, now),
            BLOCKED_POLL
        );
    }

    fn observation(now: DateTime<Utc>, outbox: serde_json::Value) -> Observation {
        let release: PackitRelease = serde_json::from_value(json!({
            "apiVersion": "packit.dev/v1alpha1", "kind": "PackitRelease",
            "metadata": { "name": "r", "namespace": "ns" },
            "spec": { "deployment": "d", "trigger": "Manual", "components": [] },
            "status": { "notifications": outbox },
        }))
        .unwrap();
        Observation {
            deployment: std::sync::Arc::new(crate::api::tests::example()),
            namespace: "ns".into(),
            now,
            releases: vec![std::sync::Arc::new(release)],
            spec_problem: None,
            places: Vec::new(),
            requests: Default::default(),
            bad_requests: Vec::new(),
            build: None,
            health: None,
            targets: Vec::new(),
            stale_claims: Vec::new(),
        }
    }

    fn entry(state: &str, next: Option<DateTime<Utc>>) -> serde_json::Value {
        json!({
            "id": format!("{state}-{next:?}"), "webhook": 0, "target": "https://h", "urlDigest": "x",
            "phase": "Staging", "at": "2026-03-02T10:00:00Z", "state": state,
            "attempts": 1, "nextAttemptAt": next,
        })
    }

    #[test]
    fn looks_again_when_the_next_notification_attempt_is_due() {
        let now: DateTime<Utc> = "2026-03-02T10:00:10Z".parse().unwrap();
        let soon = now + TimeDelta::seconds(4);
        let later = now + TimeDelta::seconds(30);
        let obs = observation(
            now,
            json!([
                entry("Pending", Some(later)),
                entry("Pending", Some(soon)),
                entry("Failed", None)
            ]),
        );
        assert_eq!(notification_wait(&obs), Some(Duration::from_secs(4)));
        // Overdue: being attempted now; its result wakes the train.
        let obs = observation(
            now,
            json!([entry("Pending", Some(now - TimeDelta::seconds(1)))]),
        );
        assert_eq!(notification_wait(&obs), Some(OVERDUE_POLL));
        let obs = observation(now, json!([entry("Delivered", None)]));
        assert_eq!(notification_wait(&obs), None);
    }

    #[test]
    fn prunes_past_the_limit_but_keeps_the_protected() {
        let names: Vec<String> = (1..=6).map(|i| format!("r{i}")).collect();
        let keep: BTreeSet<String> = ["r1".to_owned(), "r5".to_owned()].into();
        assert_eq!(to_prune(&names, &keep, 3), ["r2", "r3"]);
        assert!(to_prune(&names, &keep, 10).is_empty());
    }
}
