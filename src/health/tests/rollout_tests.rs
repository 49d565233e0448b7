use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus,
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetSpec, StatefulSetStatus,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::health::{deployment_rollout, statefulset_rollout};
use crate::plan::Rollout;

fn meta(generation: i64) -> ObjectMeta {
    ObjectMeta {
        name: Some("web".into()),
        generation: Some(generation),
        ..Default::default()
    }
}

fn deployment(replicas: Option<i32>, status: DeploymentStatus) -> Deployment {
    Deployment {
        metadata: meta(3),
        spec: Some(DeploymentSpec {
            replicas,
            ..Default::default()
        }),
        status: Some(status),
    }
}

/// Status of a finished rollout of `n` replicas at generation 3.
fn done(n: i32) -> DeploymentStatus {
    DeploymentStatus {
        observed_generation: Some(3),
        replicas: Some(n),
        updated_replicas: Some(n),
        ready_replicas: Some(n),
        available_replicas: Some(n),
        ..Default::default()
    }
}

fn progressing(reason: &str, message: &str) -> DeploymentCondition {
    DeploymentCondition {
        type_: "Progressing".into(),
        status: if reason == "ProgressDeadlineExceeded" {
            "False"
        } else {
            "True"
        }
        .into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        ..Default::default()
    }
}

#[test]
fn deployment_complete_when_every_count_matches() {
    assert_eq!(
        deployment_rollout(&deployment(Some(3), done(3))),
        Rollout::Complete
    );
}

#[test]
fn deployment_replicas_default_to_one() {
    assert_eq!(
        deployment_rollout(&deployment(None, done(1))),
        Rollout::Complete
    );
    assert_eq!(
        deployment_rollout(&deployment(None, done(2))),
        Rollout::Progressing
    );
}

#[test]
fn deployment_scaled_to_zero_is_complete() {
    // The API server leaves zero counts out.
    let status = DeploymentStatus {
        observed_generation: Some(3),
        ..Default::default()
    };
    assert_eq!(
        deployment_rollout(&deployment(Some(0), status)),
        Rollout::Complete
    );
}

#[test]
fn deployment_generation_lag_is_progressing() {
    // The counts describe the previous template.
    let status = DeploymentStatus {
        observed_generation: Some(2),
        ..done(3)
    };
    assert_eq!(
        deployment_rollout(&deployment(Some(3), status)),
        Rollout::Progressing
    );
    let unobserved = DeploymentStatus {
        observed_generation: None,
        ..done(3)
    };
    assert_eq!(
        deployment_rollout(&deployment(Some(3), unobserved)),
        Rollout::Progressing
    );
    let no_status = Deployment {
        status: None,
        ..deployment(Some(3), done(3))
    };
    assert_eq!(deployment_rollout(&no_status), Rollout::Progressing);
}

#[test]
fn deployment_observed_ahead_counts() {
    let status = DeploymentStatus {
        observed_generation: Some(4),
        ..done(3)
    };
    assert_eq!(
        deployment_rollout(&deployment(Some(3), status)),
        Rollout::Complete
    );
}

#[test]
fn deployment_partial_updates_are_progressing() {
    let cases = [
        // New pods not all created.
        DeploymentStatus {
            updated_replicas: Some(2),
            ..done(3)
        },
        // Updated but not ready.
        DeploymentStatus {
            ready_replicas: Some(2),
            available_replicas: Some(2),
            ..done(3)
        },
        // Ready but not yet available (minReadySeconds).
        DeploymentStatus {
            available_replicas: Some(2),
            ..done(3)
        },
        // Old pods still around.
        DeploymentStatus {
            replicas: Some(4),
            ..done(3)
        },
    ];
    for status in cases {
        let d = deployment(Some(3), status.clone());
        assert_eq!(deployment_rollout(&d), Rollout::Progressing, "{status:?}");
    }
}

#[test]
fn deployment_progress_deadline_exceeded_fails() {
    let status = DeploymentStatus {
        updated_replicas: Some(1),
        ready_replicas: Some(0),
        available_replicas: Some(0),
        replicas: Some(1),
        conditions: Some(vec![
            DeploymentCondition {
                type_: "Available".into(),
                status: "False".into(),
                reason: Some("MinimumReplicasUnavailable".into()),
                ..Default::default()
            },
            progressing(
                "ProgressDeadlineExceeded",
                "ReplicaSet \"web-5d4\" has timed out progressing.",
            ),
        ]),
        ..done(1)
    };
    assert_eq!(
        deployment_rollout(&deployment(Some(1), status)),
        Rollout::Failed(
            "ProgressDeadlineExceeded: ReplicaSet \"web-5d4\" has timed out progressing.".into()
        )
    );
}

#[test]
fn deployment_stale_deadline_condition_is_not_a_failure() {
    // The last template failed; a new one was applied but not yet seen.
    let status = DeploymentStatus {
        observed_generation: Some(2),
        conditions: Some(vec![progressing("ProgressDeadlineExceeded", "timed out")]),
        ..done(1)
    };
    assert_eq!(
        deployment_rollout(&deployment(Some(1), status)),
        Rollout::Progressing
    );
}

#[test]
fn deployment_other_progressing_reasons_do_not_fail() {
    let status = DeploymentStatus {
        conditions: Some(vec![progressing("ReplicaSetUpdated", "progressing")]),
        updated_replicas: Some(0),
        ..done(1)
    };
    assert_eq!(
        deployment_rollout(&deployment(Some(1), status)),
        Rollout::Progressing
    );
    let status = DeploymentStatus {
        conditions: Some(vec![progressing("NewReplicaSetAvailable", "done")]),
        ..done(1)
    };
    assert_eq!(
        deployment_rollout(&deployment(Some(1), status)),
        Rollout::Complete
    );
}

fn statefulset(
    replicas: Option<i32>,
    strategy: Option<StatefulSetUpdateStrategy>,
    status: StatefulSetStatus,
) -> StatefulSet {
    StatefulSet {
        metadata: meta(3),
        spec: Some(StatefulSetSpec {
            replicas,
            update_strategy: strategy,
            ..Default::default()
        }),
        status: Some(status),
    }
}

/// A finished rolling update of `n` replicas at generation 3.
fn sts_done(n: i32) -> StatefulSetStatus {
    StatefulSetStatus {
        observed_generation: Some(3),
        replicas: n,
        ready_replicas: Some(n),
        available_replicas: Some(n),
        updated_replicas: Some(n),
        current_replicas: Some(n),
        current_revision: Some("web-new".into()),
        update_revision: Some("web-new".into()),
        ..Default::default()
    }
}

/// A rolling update of 3 replicas with `updated` pods on the new revision.
fn sts_rolling(updated: i32) -> StatefulSetStatus {
    StatefulSetStatus {
        updated_replicas: Some(updated),
        current_replicas: Some(3 - updated),
        current_revision: Some("web-old".into()),
        ..sts_done(3)
    }
}

fn partition(p: i32) -> Option<StatefulSetUpdateStrategy> {
    Some(StatefulSetUpdateStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateStatefulSetStrategy {
            partition: Some(p),
            ..Default::default()
        }),
    })
}

#[test]
fn statefulset_complete_when_revisions_meet() {
    assert_eq!(
        statefulset_rollout(&statefulset(Some(3), None, sts_done(3))),
        Rollout::Complete
    );
}

#[test]
fn statefulset_replicas_default_to_one() {
    assert_eq!(
        statefulset_rollout(&statefulset(None, None, sts_done(1))),
        Rollout::Complete
    );
    assert_eq!(
        statefulset_rollout(&statefulset(None, None, sts_done(2))),
        Rollout::Progressing
    );
}

#[test]
fn statefulset_generation_lag_is_progressing() {
    let status = StatefulSetStatus {
        observed_generation: Some(2),
        ..sts_done(3)
    };
    assert_eq!(
        statefulset_rollout(&statefulset(Some(3), None, status)),
        Rollout::Progressing
    );
    let status = StatefulSetStatus {
        observed_generation: None,
        ..sts_done(3)
    };
    assert_eq!(
        statefulset_rollout(&statefulset(Some(3), None, status)),
        Rollout::Progressing
    );
}

#[test]
fn statefulset_rolling_update_in_progress() {
    for updated in 0..3 {
        let s = statefulset(Some(3), None, sts_rolling(updated));
        assert_eq!(
            statefulset_rollout(&s),
            Rollout::Progressing,
            "{updated} updated"
        );
    }
}

#[test]
fn statefulset_rolling_update_done_before_revision_moves() {
    // All pods updated and ready; the controller moves currentRevision next.
    let s = statefulset(Some(3), None, sts_rolling(3));
    assert_eq!(statefulset_rollout(&s), Rollout::Complete);
}

#[test]
fn statefulset_not_ready_or_unavailable_or_extra_pods() {
    let cases = [
        StatefulSetStatus {
            ready_replicas: Some(2),
            ..sts_done(3)
        },
        StatefulSetStatus {
            available_replicas: Some(2),
            ..sts_done(3)
        },
        StatefulSetStatus {
            replicas: 4,
            ..sts_done(3)
        },
    ];
    for status in cases {
        let s = statefulset(Some(3), None, status.clone());
        assert_eq!(statefulset_rollout(&s), Rollout::Progressing, "{status:?}");
    }
    // availableReplicas is optional: without it, readiness decides.
    let status = StatefulSetStatus {
        available_replicas: None,
        ..sts_done(3)
    };
    assert_eq!(
        statefulset_rollout(&statefulset(Some(3), None, status)),
        Rollout::Complete
    );
}

#[test]
fn statefulset_partition_limits_what_must_be_updated() {
    // Partition 2 of 3: only ordinal 2 is updated.
    let s = statefulset(Some(3), partition(2), sts_rolling(1));
    assert_eq!(statefulset_rollout(&s), Rollout::Complete);
    let s = statefulset(Some(3), partition(1), sts_rolling(1));
    assert_eq!(statefulset_rollout(&s), Rollout::Progressing);
    // A partition above the replica count holds every pod back.
    let s = statefulset(Some(3), partition(5), sts_rolling(0));
    assert_eq!(statefulset_rollout(&s), Rollout::Complete);
}

#[test]
fn statefulset_on_delete_completes_when_every_pod_is_updated() {
    let on_delete = Some(StatefulSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        // Ignored outside RollingUpdate.
        rolling_update: Some(RollingUpdateStatefulSetStrategy {
            partition: Some(2),
            ..Default::default()
        }),
    });
    let s = statefulset(Some(3), on_delete.clone(), sts_rolling(1));
    assert_eq!(statefulset_rollout(&s), Rollout::Progressing);
    let s = statefulset(Some(3), on_delete, sts_rolling(3));
    assert_eq!(statefulset_rollout(&s), Rollout::Complete);
}
