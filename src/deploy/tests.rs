use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use serde_json::json;

use super::workload::group_images;
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
    let patch = workload_patch(&deployment("packit-service"), &LABELS, &containers);
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
    let patch = workload_patch(&workload, &LABELS, &containers);
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
