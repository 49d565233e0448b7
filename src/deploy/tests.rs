use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use serde_json::json;

use super::*;

fn target(kind: &str, name: &str, container: &str, image: &str) -> TargetImage {
    TargetImage {
        kind: kind.into(),
        name: name.into(),
        container: container.into(),
        image: image.into(),
    }
}

fn deployment(name: &str) -> WorkloadRef {
    WorkloadRef {
        kind: WorkloadKind::Deployment,
        name: name.into(),
    }
}

const LABELS: [(&str, &str); 2] = [
    (DEPLOYMENT_LABEL, "packit"),
    (DEPLOYMENT_NAMESPACE_LABEL, "packit-prod"),
];

#[test]
fn patch_names_only_identity_labels_and_container_images() {
    let containers = vec![
        (
            "service".to_owned(),
            "quay.io/packit/service@sha256:aa".to_owned(),
        ),
        (
            "worker".to_owned(),
            "quay.io/packit/worker@sha256:bb".to_owned(),
        ),
    ];
    let patch = workload_patch(
        &deployment("packit-service"),
        &LABELS,
        "team/train",
        &containers,
    );
    assert_eq!(
        patch,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "packit-service",
                "labels": {
                    "packit.dev/deployment": "packit",
                    "packit.dev/deployment-namespace": "packit-prod",
                },
                "annotations": { "packit.dev/owner": "team/train" },
            },
            "spec": {
                "template": {
                    "metadata": {
                        "labels": {
                            "packit.dev/deployment": "packit",
                            "packit.dev/deployment-namespace": "packit-prod",
                        },
                    },
                    "spec": {
                        "containers": [
                            { "name": "service", "image": "quay.io/packit/service@sha256:aa" },
                            { "name": "worker", "image": "quay.io/packit/worker@sha256:bb" },
                        ],
                    },
                },
            },
        })
    );
}

#[test]
fn patch_of_a_statefulset_has_its_kind() {
    let workload = WorkloadRef {
        kind: WorkloadKind::StatefulSet,
        name: "packit-worker".into(),
    };
    let containers = vec![("worker".to_owned(), "w@sha256:cc".to_owned())];
    let patch = workload_patch(&workload, &LABELS, "team/train", &containers);
    assert_eq!(patch["apiVersion"], "apps/v1");
    assert_eq!(patch["kind"], "StatefulSet");
    assert_eq!(patch["metadata"]["name"], "packit-worker");
    assert_eq!(
        patch["spec"]["template"]["spec"]["containers"],
        json!([{ "name": "worker", "image": "w@sha256:cc" }])
    );
}

#[test]
fn images_are_grouped_per_workload_in_first_seen_order() {
    let images = [
        target("Deployment", "web", "service", "s@sha256:1"),
        target("StatefulSet", "worker", "worker", "w@sha256:2"),
        target("Deployment", "web", "sidecar", "c@sha256:3"),
        // The same container twice with the same image is harmless.
        target("Deployment", "web", "service", "s@sha256:1"),
        // Same name, other kind: another workload.
        target("StatefulSet", "web", "service", "s@sha256:1"),
    ];
    let groups = group_images(&images).unwrap();
    let summary: Vec<(String, Vec<&str>)> = groups
        .iter()
        .map(|g| {
            let containers = g.containers.iter().map(|(c, _)| c.as_str()).collect();
            (g.workload.to_string(), containers)
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("Deployment web".to_owned(), vec!["service", "sidecar"]),
            ("StatefulSet worker".to_owned(), vec!["worker"]),
            ("StatefulSet web".to_owned(), vec!["service"]),
        ]
    );
}

#[test]
fn one_container_with_two_images_is_refused() {
    let images = [
        target("Deployment", "web", "service", "s@sha256:1"),
        target("Deployment", "web", "service", "s@sha256:2"),
    ];
    let err = group_images(&images).unwrap_err();
    assert!(
        matches!(err, DeployError::ConflictingImages { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "Deployment web: container \"service\" is given two images, s@sha256:1 and s@sha256:2"
    );
}

#[test]
fn unknown_kinds_are_refused() {
    let err = group_images(&[target("DaemonSet", "x", "c", "i")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown workload kind \"DaemonSet\": expected Deployment or StatefulSet"
    );
    assert_eq!(
        parse_kind("StatefulSet").unwrap(),
        WorkloadKind::StatefulSet
    );
    assert_eq!(kind_name(WorkloadKind::Deployment), "Deployment");
}

fn managed(
    manager: &str,
    operation: &str,
    subresource: Option<&str>,
    fields: serde_json::Value,
) -> ManagedFieldsEntry {
    ManagedFieldsEntry {
        manager: Some(manager.into()),
        operation: Some(operation.into()),
        subresource: subresource.map(Into::into),
        fields_type: Some("FieldsV1".into()),
        fields_v1: Some(FieldsV1(fields)),
        ..Default::default()
    }
}

#[test]
fn owned_images_come_from_this_managers_apply_entry_only() {
    let ours = json!({
        "f:metadata": { "f:labels": { "f:packit.dev/deployment": {} } },
        "f:spec": { "f:template": { "f:spec": { "f:containers": {
            "k:{\"name\":\"service\"}": { ".": {}, "f:image": {}, "f:name": {} },
            "k:{\"name\":\"worker\"}": { ".": {}, "f:image": {}, "f:name": {} },
            // Owning the entry without its image does not count.
            "k:{\"name\":\"sidecar\"}": { ".": {}, "f:name": {} },
        } } } }
    });
    let theirs = json!({
        "f:spec": { "f:template": { "f:spec": { "f:containers": {
            "k:{\"name\":\"proxy\"}": { ".": {}, "f:image": {}, "f:name": {} },
        } } } }
    });
    let meta = ObjectMeta {
        managed_fields: Some(vec![
            managed(FIELD_MANAGER, "Apply", None, ours.clone()),
            managed("kubectl-client-side-apply", "Update", None, theirs.clone()),
            // An Update by the same manager name is not its apply.
            managed(FIELD_MANAGER, "Update", None, theirs.clone()),
            managed(FIELD_MANAGER, "Apply", Some("status"), theirs),
        ]),
        ..Default::default()
    };
    let owned: Vec<String> = owned_container_images(&meta, FIELD_MANAGER)
        .into_iter()
        .collect();
    assert_eq!(owned, ["service", "worker"]);
    assert!(owned_container_images(&ObjectMeta::default(), FIELD_MANAGER).is_empty());
}

#[test]
fn label_values_are_checked() {
    for ok in ["packit", "packit-prod", "a", "a.b_c-d", &"x".repeat(63)] {
        assert!(check_label_value(ok).is_ok(), "{ok}");
    }
    for bad in ["", "-packit", "packit-", "pack/it", &"x".repeat(64)] {
        let err = check_label_value(bad).unwrap_err();
        assert!(matches!(err, DeployError::LabelValue { .. }), "{bad}");
    }
}

#[test]
fn labels_must_all_be_present_with_their_values() {
    let mut present = std::collections::BTreeMap::new();
    present.insert(DEPLOYMENT_LABEL.to_owned(), "packit".to_owned());
    assert!(!has_labels(Some(&present), &LABELS));
    present.insert(DEPLOYMENT_NAMESPACE_LABEL.to_owned(), "other".to_owned());
    assert!(!has_labels(Some(&present), &LABELS));
    present.insert(
        DEPLOYMENT_NAMESPACE_LABEL.to_owned(),
        "packit-prod".to_owned(),
    );
    present.insert("app".to_owned(), "web".to_owned());
    assert!(has_labels(Some(&present), &LABELS));
    assert!(!has_labels(None, &LABELS));
}

/// A Deployment `web` as read from the cluster: containers `service`,
/// `worker` and `proxy`, `labels` on it and its template, and the managed
/// fields given.
fn read_web(labels: serde_json::Value, managed_fields: Vec<ManagedFieldsEntry>) -> Workload {
    let mut d: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web", "labels": labels },
        "spec": {
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": labels },
                "spec": { "containers": [
                    { "name": "service", "image": "s@sha256:1" },
                    { "name": "worker", "image": "w@sha256:1" },
                    { "name": "proxy", "image": "envoy:1" },
                ] },
            },
        },
    }))
    .unwrap();
    d.metadata.managed_fields = Some(managed_fields);
    Workload::Deployment(Box::new(d))
}

fn owner_labels() -> serde_json::Value {
    json!({ "app": "web", DEPLOYMENT_LABEL: "packit", DEPLOYMENT_NAMESPACE_LABEL: "packit-prod" })
}

fn web_images(pairs: &[(&str, &str)]) -> WorkloadImages {
    WorkloadImages {
        workload: deployment("web"),
        containers: pairs
            .iter()
            .map(|(c, i)| ((*c).to_owned(), (*i).to_owned()))
            .collect(),
    }
}

fn owns_images_of(containers: &[&str]) -> ManagedFieldsEntry {
    let entries: serde_json::Map<String, serde_json::Value> = containers
        .iter()
        .map(|c| {
            let key = format!("k:{}", json!({ "name": c }));
            (key, json!({ ".": {}, "f:image": {}, "f:name": {} }))
        })
        .collect();
    managed(
        FIELD_MANAGER,
        "Apply",
        None,
        json!({ "f:spec": { "f:template": { "f:spec": { "f:containers": entries } } } }),
    )
}

#[test]
fn nothing_to_apply_when_images_and_labels_are_there() {
    let web = read_web(owner_labels(), vec![]);
    let wanted = web_images(&[("service", "s@sha256:1"), ("worker", "w@sha256:1")]);
    assert_eq!(
        containers_to_apply(&web, &wanted, "ns", &LABELS, true).unwrap(),
        None
    );
}

#[test]
fn a_new_image_is_applied_for_the_targets_only() {
    let web = read_web(owner_labels(), vec![]);
    let wanted = web_images(&[("service", "s@sha256:2"), ("worker", "w@sha256:1")]);
    assert_eq!(
        containers_to_apply(&web, &wanted, "ns", &LABELS, true).unwrap(),
        Some(vec![
            ("service".to_owned(), "s@sha256:2".to_owned()),
            ("worker".to_owned(), "w@sha256:1".to_owned()),
        ])
    );
}

#[test]
fn missing_labels_are_applied_even_with_the_images_in_place() {
    let wanted = web_images(&[("service", "s@sha256:1")]);
    let unlabelled = read_web(json!({ "app": "web" }), vec![]);
    assert!(
        containers_to_apply(&unlabelled, &wanted, "ns", &LABELS, true)
            .unwrap()
            .is_some()
    );
    // Labelled for another owner.
    let other = read_web(
        json!({ DEPLOYMENT_LABEL: "packit", DEPLOYMENT_NAMESPACE_LABEL: "elsewhere" }),
        vec![],
    );
    assert!(
        containers_to_apply(&other, &wanted, "ns", &LABELS, true)
            .unwrap()
            .is_some()
    );
    // Labels on the workload only, not on its pods.
    let Workload::Deployment(mut d) = read_web(owner_labels(), vec![]) else {
        unreachable!()
    };
    if let Some(spec) = d.spec.as_mut() {
        spec.template.metadata = None;
    }
    let half = Workload::Deployment(d);
    assert!(
        containers_to_apply(&half, &wanted, "ns", &LABELS, true)
            .unwrap()
            .is_some()
    );
}

#[test]
fn containers_this_manager_set_before_keep_their_current_image() {
    // The worker and a container since removed were targets earlier.
    let web = read_web(
        owner_labels(),
        vec![owns_images_of(&["service", "worker", "gone"])],
    );
    let wanted = web_images(&[("service", "s@sha256:2")]);
    assert_eq!(
        containers_to_apply(&web, &wanted, "ns", &LABELS, true).unwrap(),
        Some(vec![
            ("service".to_owned(), "s@sha256:2".to_owned()),
            ("worker".to_owned(), "w@sha256:1".to_owned()),
        ])
    );
}

#[test]
fn a_container_missing_from_the_template_is_an_error() {
    let web = read_web(owner_labels(), vec![]);
    let wanted = web_images(&[("service", "s@sha256:2"), ("cron", "c@sha256:2")]);
    let err = containers_to_apply(&web, &wanted, "packit-prod", &LABELS, true).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Deployment web in namespace packit-prod has no container \"cron\""
    );
}
