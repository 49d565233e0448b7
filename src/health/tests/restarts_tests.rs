use crate::client::{CachedPod, CachedPodStatus, ContainerRestarts};

use crate::health::{restarts_since_deploy, runs_image, selected};

fn status(name: &str, image: &str, image_id: &str, restarts: i32) -> ContainerRestarts {
    ContainerRestarts {
        name: name.into(),
        image: image.into(),
        image_id: image_id.into(),
        restart_count: restarts,
    }
}

fn pod(statuses: Vec<ContainerRestarts>) -> CachedPod {
    CachedPod {
        status: Some(CachedPodStatus {
            container_statuses: Some(statuses),
        }),
        ..Default::default()
    }
}

const NEW: &str = "quay.io/packit/service@sha256:1111";
const OLD: &str = "quay.io/packit/service@sha256:0000";

fn wanted() -> Vec<(String, String)> {
    vec![
        ("service".to_owned(), NEW.to_owned()),
        (
            "worker".to_owned(),
            "quay.io/packit/worker@sha256:2222".to_owned(),
        ),
    ]
}

#[test]
fn counts_only_target_containers_running_the_wanted_image() {
    let pods = [
        // New pod: both targets count, the sidecar does not.
        pod(vec![
            status("service", NEW, "", 2),
            status("worker", "quay.io/packit/worker@sha256:2222", "", 1),
            status("proxy", "envoy:1", "", 7),
        ]),
        // Old pod from before the deploy: its restarts are not ours.
        pod(vec![status("service", OLD, "", 40)]),
        // A pod without status yet.
        CachedPod::default(),
        // Another new pod.
        pod(vec![status("service", NEW, "", 3)]),
    ];
    assert_eq!(restarts_since_deploy(&pods, &wanted()), 6);
    assert_eq!(restarts_since_deploy(&[], &wanted()), 0);
}

#[test]
fn negative_counts_are_ignored_and_sums_saturate() {
    let pods = [
        pod(vec![status("service", NEW, "", -1)]),
        pod(vec![status("service", NEW, "", i32::MAX)]),
        pod(vec![status("service", NEW, "", i32::MAX)]),
        pod(vec![status("service", NEW, "", i32::MAX)]),
    ];
    assert_eq!(restarts_since_deploy(&pods, &wanted()), u32::MAX);
}

#[test]
fn images_by_digest_match_normalised_references() {
    let wanted = "nginx@sha256:abcd";
    assert!(runs_image(&status("c", wanted, "", 0), wanted));
    // The runtime reports the full name.
    assert!(runs_image(
        &status("c", "docker.io/library/nginx@sha256:abcd", "", 0),
        wanted
    ));
    // Or a tag, with the digest in imageID.
    assert!(runs_image(
        &status(
            "c",
            "docker.io/library/nginx:1.27",
            "docker.io/library/nginx@sha256:abcd",
            0
        ),
        wanted
    ));
    assert!(!runs_image(
        &status("c", "nginx@sha256:ef01", "nginx@sha256:ef01", 0),
        wanted
    ));
    // A tag only matches itself.
    assert!(runs_image(&status("c", "nginx:1.27", "", 0), "nginx:1.27"));
    assert!(!runs_image(
        &status("c", "nginx:1.26", "docker.io/library/nginx@sha256:abcd", 0),
        "nginx:1.27"
    ));
    // "sha256:..." without '@' (an image ID) is no reference digest.
    assert!(!runs_image(&status("c", "x", "sha256:abcd", 0), wanted));
}

#[test]
fn a_workload_counts_only_the_pods_its_selector_picks_in_its_namespace() {
    use std::sync::Arc;

    use kube::core::{Expression, Selector};

    let labelled = |namespace: &str, app: &str, restarts| {
        let mut p = pod(vec![status("service", NEW, "", restarts)]);
        p.metadata.namespace = Some(namespace.into());
        p.metadata.labels = Some([("app".to_owned(), app.to_owned())].into());
        Arc::new(p)
    };
    let pods = [
        labelled("prod", "web", 1),
        labelled("prod", "web", 2),
        labelled("prod", "worker", 10),
        labelled("stg", "web", 100),
    ];
    let web: Selector = Expression::Equal("app".into(), "web".into()).into();
    let count = |namespace| restarts_since_deploy(selected(&pods, namespace, &web), &wanted());
    assert_eq!(count("prod"), 3);
    assert_eq!(count("stg"), 100);
    assert_eq!(count("other"), 0);
}
