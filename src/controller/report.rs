//! Stage 4, report: tells what a reconcile did. Publishes the plan's and the
//! actors' Events, records the metrics, and answers the controller runtime
//! with when to come back.

use std::time::Instant;

use chrono::Utc;
use kube::runtime::controller::Action;

use super::Error;
use super::act::Outcomes;
use super::decide::Plan;
use super::events::{Note, Publisher};
use super::observe::Observation;
use crate::api::checks::JobResult;
use crate::metrics::{
    CheckLabels, DeploymentLabels, ErrorLabels, Metrics, PhaseLabels, ResultLabels,
};
use crate::plan::ReleasePhase;

pub async fn report(
    metrics: &Metrics,
    obs: &Observation,
    plan: &Plan,
    outcomes: Outcomes,
    events: &Publisher,
    started: Instant,
) -> Result<Action, Error> {
    let (planned, next) = match plan {
        Plan::Invalid { notes, retry, .. } => (
            notes,
            retry.map_or_else(Action::await_change, Action::requeue),
        ),
        Plan::Train(p) => (&p.notes, Action::requeue(p.requeue)),
    };
    for verdict in obs
        .health
        .iter()
        .flat_map(|h| &h.metrics)
        .filter(|m| m.fresh)
        .filter_map(|m| m.last.as_ref())
    {
        let labels = CheckLabels {
            kind: "metric",
            result: format!("{:?}", verdict.result),
        };
        metrics.checks.get_or_create(&labels).inc();
    }
    // Smoke tests count once, when they finish.
    for verdict in obs
        .health
        .iter()
        .flat_map(|h| &h.jobs)
        .filter_map(|j| j.fresh.as_ref())
        .filter(|v| v.result != JobResult::Running)
    {
        let labels = CheckLabels {
            kind: "job",
            result: format!("{:?}", verdict.result),
        };
        metrics.checks.get_or_create(&labels).inc();
    }
    // Told after the counting above, so that whoever reads an Event finds
    // the measurement behind it counted. A plan's Events are true only
    // once its state is persisted.
    if outcomes.committed {
        for note in planned {
            events.publish(note).await;
        }
    }
    for note in &outcomes.notes {
        events.publish(note).await;
    }
    if let Plan::Train(p) = plan {
        if outcomes.committed {
            record_train(metrics, obs, &p.decision);
        }
        if outcomes.rolled_back && outcomes.error.is_none() {
            // Detected during this reconcile, applied just now.
            let seconds = (Utc::now() - obs.now).to_std().unwrap_or_default();
            metrics.rollback_seconds.observe(seconds.as_secs_f64());
        }
    }
    metrics
        .reconcile_seconds
        .observe(started.elapsed().as_secs_f64());
    let result = match outcomes.error {
        None => Ok(next),
        // Not a failure: `reconcile` plans again from a fresh read.
        Some(Error::Stale) => Err(Error::Stale),
        Some(e) => return failed(metrics, events, e).await,
    };
    if result.is_ok() {
        metrics
            .reconciles
            .get_or_create(&ResultLabels { result: "ok" })
            .inc();
    }
    result
}

/// A reconcile that failed: where the user looks, the Event says what
/// blocks the train (a missing workload, an API error); the retry follows.
pub async fn failed(metrics: &Metrics, events: &Publisher, e: Error) -> Result<Action, Error> {
    events
        .publish(&Note::warning("ReconcileFailed", e.to_string()))
        .await;
    metrics
        .errors
        .get_or_create(&ErrorLabels { kind: e.kind() })
        .inc();
    metrics
        .reconciles
        .get_or_create(&ResultLabels { result: "error" })
        .inc();
    Err(e)
}

/// Releases by phase and the next build and window, for this deployment.
fn record_train(metrics: &Metrics, obs: &Observation, decision: &crate::plan::Decision) {
    let labels = DeploymentLabels {
        namespace: obs.namespace.clone(),
        deployment: obs.name(),
    };
    for phase in ReleasePhase::ALL {
        let count = obs
            .releases
            .iter()
            .filter(|r| r.status.as_ref().and_then(|s| s.phase) == Some(phase))
            .count();
        let phase_labels = PhaseLabels {
            namespace: labels.namespace.clone(),
            deployment: labels.deployment.clone(),
            phase: format!("{phase:?}"),
        };
        metrics
            .releases
            .get_or_create(&phase_labels)
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    for (family, at) in [
        (&metrics.next_build, decision.next_build),
        (&metrics.next_window, decision.next_window),
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
