//! The apply patch and what the field manager owns: pure functions.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};

use super::workload::{WorkloadRef, kind_name};

/// Where managed fields record the template containers' fields.
pub(super) const CONTAINERS_FIELDS: &str = "/f:spec/f:template/f:spec/f:containers";

/// The partial object applied to a workload: its identity, `labels` on the
/// workload and on the pod template, the owner annotation (`owner`, applied
/// every time: it is this manager's, so an apply without it would remove
/// it), and `name` + `image` of each container.
pub fn workload_patch(
    workload: &WorkloadRef,
    labels: &[(&str, &str)],
    owner: &str,
    containers: &[(String, String)],
) -> Value {
    let labels: Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    let containers: Vec<Value> = containers
        .iter()
        .map(|(name, image)| json!({ "name": name, "image": image }))
        .collect();
    json!({
        "apiVersion": "apps/v1",
        "kind": kind_name(workload.kind),
        "metadata": {
            "name": workload.name,
            "labels": labels,
            "annotations": { crate::labels::OWNER: owner },
        },
        "spec": {
            "template": {
                "metadata": { "labels": labels },
                "spec": { "containers": containers },
            },
        },
    })
}

/// Names of the template containers whose `image` `manager` set by apply,
/// read from the workload's managed fields.
pub fn owned_container_images(metadata: &ObjectMeta, manager: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let entries = metadata.managed_fields.iter().flatten();
    for entry in entries.filter(|e| {
        e.manager.as_deref() == Some(manager)
            && e.operation.as_deref() == Some("Apply")
            && e.subresource.as_deref().unwrap_or_default().is_empty()
    }) {
        let containers = entry
            .fields_v1
            .as_ref()
            .and_then(|f| f.0.pointer(CONTAINERS_FIELDS))
            .and_then(Value::as_object);
        for (key, fields) in containers.into_iter().flatten() {
            // List-map entries are keyed `k:{"name":"<container>"}`.
            let name = key
                .strip_prefix("k:")
                .and_then(|k| serde_json::from_str::<Value>(k).ok())
                .and_then(|k| k.get("name")?.as_str().map(str::to_owned));
            if let Some(name) = name
                && fields.get("f:image").is_some()
            {
                names.insert(name);
            }
        }
    }
    names
}
