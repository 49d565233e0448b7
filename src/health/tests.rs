mod http_tests;
mod restarts_tests;
mod rollout_tests;

/// The controller shares one prober and runs these futures on a
/// multi-threaded runtime: a compile-time check.
#[test]
fn prober_and_futures_are_shareable() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let prober = super::HttpProber::new(Default::default()).unwrap();
    send_sync(&prober);
    send(prober.probe_due("key", &[], chrono::Utc::now()));
    let owner = crate::deploy::Owner {
        name: "packit".into(),
        namespace: "packit".into(),
    };
    // Never called: no client is made.
    let _futures = |c: kube::Client| {
        send(crate::deploy::apply_images(&c, "ns", &owner, &[]));
        send(crate::deploy::current_images(&c, "ns", &[]));
    };
}

/// `assess` judges the workloads a reconcile read and the pods of the
/// cache: each workload's rollout, and restarts of its own pods only.
#[test]
fn assess_reads_rollout_and_restarts_of_each_workload() {
    use std::sync::Arc;

    use crate::api::release::TargetImage;
    use crate::client::CachedPod;
    use crate::deploy::{DeployError, Workload, WorkloadRef};
    use crate::plan::Rollout;

    let deployment = |name: &str, image: &str| {
        Workload::Deployment(Box::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "prod", "generation": 2},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "app", "image": image}]},
                    },
                },
                "status": {
                    "observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                    "availableReplicas": 1, "readyReplicas": 1,
                },
            }))
            .unwrap(),
        ))
    };
    let pod = |app: &str, image: &str, restarts: i32| {
        Arc::new(
            serde_json::from_value::<CachedPod>(serde_json::json!({
                "metadata": {"name": format!("{app}-1"), "namespace": "prod", "labels": {"app": app}},
                "status": {"containerStatuses": [
                    {"name": "app", "image": image, "imageID": "", "restartCount": restarts},
                ]},
            }))
            .unwrap(),
        )
    };
    let target = |name: &str, image: &str| TargetImage {
        kind: "Deployment".into(),
        name: name.into(),
        container: "app".into(),
        image: image.into(),
    };
    let workloads = [
        ("web", deployment("web", "web:2")),
        ("worker", deployment("worker", "worker:1")),
    ];
    let find = |w: &WorkloadRef| {
        workloads
            .iter()
            .find(|(name, _)| *name == w.name)
            .map(|(_, o)| o)
    };
    let pods = [pod("web", "web:2", 3), pod("worker", "worker:1", 7)];

    let seen = super::assess(
        "prod",
        find,
        &pods,
        &[target("web", "web:2"), target("worker", "worker:2")],
    )
    .unwrap();
    // The worker still runs its old image: the report is stale.
    assert!(!seen.images_match);
    assert_eq!(seen.workloads.len(), 2);
    assert_eq!(seen.workloads[0].rollout, Rollout::Complete);
    assert_eq!(seen.workloads[0].restarts, 3);
    // The worker's restarts are of another image than the wanted one.
    assert_eq!(seen.workloads[1].restarts, 0);

    let missing = super::assess("prod", find, &pods, &[target("db", "db:1")]).unwrap_err();
    assert!(
        matches!(&missing, super::HealthError::Workload(e) if matches!(**e, DeployError::NotFound { .. })),
        "{missing:?}"
    );
}
