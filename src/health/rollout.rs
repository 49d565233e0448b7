//! Rollout state of a workload from its status alone: pure.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};

use crate::plan::Rollout;

/// The reason of a Deployment's `Progressing` condition once its
/// `progressDeadlineSeconds` passed without progress.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// Rollout state of a Deployment, the way `kubectl rollout status` reads it.
///
/// Nothing is judged before the controller has seen the current spec
/// (`status.observedGeneration >= metadata.generation`): until then the
/// status, conditions included, describes an earlier template.
pub fn deployment_rollout(d: &Deployment) -> Rollout {
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = &d.status else {
        return Rollout::Progressing;
    };
    if status.observed_generation.is_none_or(|o| o < generation) {
        return Rollout::Progressing;
    }
    let deadline_exceeded = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED)
    });
    if let Some(condition) = deadline_exceeded {
        let message = condition.message.as_deref().unwrap_or_default();
        return Rollout::Failed(format!("{PROGRESS_DEADLINE_EXCEEDED}: {message}"));
    }
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    // `status.replicas` above the wanted count means old pods remain.
    let counts = [
        status.updated_replicas,
        status.ready_replicas,
        status.available_replicas,
        status.replicas,
    ];
    if counts.iter().all(|c| c.unwrap_or(0) == wanted) {
        Rollout::Complete
    } else {
        Rollout::Progressing
    }
}

/// Rollout state of a StatefulSet. It has no progress deadline, so it is
/// never `Failed`: the rollout timeout covers a stuck one.
///
/// Complete once the controller has seen the current spec, every wanted pod
/// is ready (and available, when reported), and the update has reached every
/// pod it should: the update revision became the current one, or the pods
/// at or above a rolling update's partition (all of them without one, or
/// with `OnDelete`, where the current revision is never moved) are updated.
pub fn statefulset_rollout(s: &StatefulSet) -> Rollout {
    let generation = s.metadata.generation.unwrap_or(0);
    let Some(status) = &s.status else {
        return Rollout::Progressing;
    };
    if status.observed_generation.is_none_or(|o| o < generation) {
        return Rollout::Progressing;
    }
    let spec = s.spec.as_ref();
    let wanted = spec.and_then(|s| s.replicas).unwrap_or(1);
    let partition = spec
        .and_then(|s| s.update_strategy.as_ref())
        .filter(|u| u.type_.as_deref().is_none_or(|t| t == "RollingUpdate"))
        .and_then(|u| u.rolling_update.as_ref()?.partition)
        .unwrap_or(0)
        .clamp(0, wanted.max(0));
    let ready = status.ready_replicas.unwrap_or(0);
    let available_ok = status.available_replicas.is_none_or(|a| a == wanted);
    let revisions_equal = status.update_revision == status.current_revision;
    let updated_enough = status.updated_replicas.unwrap_or(0) >= wanted - partition;
    if ready == wanted
        && status.replicas == wanted
        && available_ok
        && (revisions_equal || updated_enough)
    {
        Rollout::Complete
    } else {
        Rollout::Progressing
    }
}
