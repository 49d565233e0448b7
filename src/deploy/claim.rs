//! One train per workload: the owner annotation, holds, and who changed a
//! container behind the train's back. Reading them is pure; the writes are
//! merge patches of annotations only, never of the workload's spec.

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::workload::{Workload, WorkloadRef};
use super::{DeployError, FIELD_MANAGER, Owner};
use crate::api::deployment::WorkloadKind;
use crate::labels::{DRIFT_HELD, FIGHTING, HOLD, OWNER};

impl Owner {
    /// The owner annotation's value: `<namespace>/<name>`.
    pub fn claim_value(&self) -> String {
        crate::labels::train_key(&self.namespace, &self.name)
    }
}

/// Who drives a workload, by its owner annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody yet: the next deploy claims it.
    Free,
    Ours,
    /// Another train, `<namespace>/<name>`.
    Other(String),
}

/// The claim on `object` as seen by `owner`.
pub fn claim_of(object: &Workload, owner: &Owner) -> Claim {
    match annotation(object, OWNER) {
        None | Some("") => Claim::Free,
        Some(v) if v == owner.claim_value() => Claim::Ours,
        Some(v) => Claim::Other(v.to_owned()),
    }
}

/// Why writes to `object` are held, if they are: a hold (any value; empty
/// says so) or the operator's own stop after a fight.
pub fn hold_of(object: &Workload) -> Option<String> {
    if let Some(manager) = annotation(object, FIGHTING) {
        return Some(format!("stopped writing: {manager} keeps changing it"));
    }
    annotation(object, HOLD).map(|why| match why.trim() {
        "" => "held".to_owned(),
        why => format!("held: {why}"),
    })
}

/// The field manager behind a fight the operator stopped, if it did.
pub fn fighting_with(object: &Workload) -> Option<&str> {
    annotation(object, FIGHTING)
}

fn annotation<'a>(object: &'a Workload, key: &str) -> Option<&'a str> {
    object
        .metadata()
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// A target container whose image someone else set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub container: String,
    /// What it runs now.
    pub image: String,
    /// What the release puts there.
    pub wanted: String,
    /// The field manager that owns the image now (`unknown` when the
    /// managed fields do not say).
    pub writer: String,
    /// This very change was held before and a person lifted the hold: it
    /// is the train's to revert now.
    pub unheld: bool,
}

impl Drift {
    /// How a held change is recorded in [`DRIFT_HELD`].
    pub fn key(&self) -> String {
        format!("{}={}", self.container, self.image)
    }
}

/// The [`DRIFT_HELD`] value recording `drift` as held.
pub fn held_value(drift: &[Drift]) -> String {
    drift.iter().map(Drift::key).collect::<Vec<_>>().join(",")
}

/// Target containers of a workload this train applied before whose image
/// differs from `wanted` and is no longer ours: someone else wrote it. A
/// container that simply runs an older release (ours) is not drift, it is
/// a deploy to come.
pub fn drift(object: &Workload, wanted: &[(String, String)]) -> Vec<Drift> {
    let ours = super::owned_container_images(object.metadata(), FIELD_MANAGER);
    wanted
        .iter()
        .filter_map(|(container, image)| {
            let current = object.containers().iter().find(|c| &c.name == container)?;
            let current = current.image.as_deref().unwrap_or_default();
            if current == image || ours.contains(container) {
                return None;
            }
            let mut d = Drift {
                container: container.clone(),
                image: current.to_owned(),
                wanted: image.clone(),
                writer: image_writer(object, container).unwrap_or_else(|| "unknown".to_owned()),
                unheld: false,
            };
            d.unheld = annotation(object, HOLD).is_none()
                && annotation(object, DRIFT_HELD)
                    .is_some_and(|held| held.split(',').any(|k| k == d.key()));
            Some(d)
        })
        .collect()
}

/// The field manager whose managed fields hold `container`'s image.
fn image_writer(object: &Workload, container: &str) -> Option<String> {
    let key = format!("k:{}", json!({ "name": container }));
    object
        .metadata()
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| e.subresource.as_deref().unwrap_or_default().is_empty())
        .filter(|e| e.manager.as_deref() != Some(FIELD_MANAGER))
        .find(|e| {
            e.fields_v1
                .as_ref()
                .and_then(|f| f.0.pointer(super::patch::CONTAINERS_FIELDS))
                .and_then(|c| c.get(&key))
                .and_then(|c| c.get("f:image"))
                .is_some()
        })
        .and_then(|e| e.manager.clone())
}

/// Gives a workload back: removes the owner annotation, only if it is
/// still `owner`'s (the precondition again).
pub async fn release(
    client: &Client,
    namespace: &str,
    workload: &WorkloadRef,
    resource_version: Option<&str>,
) -> Result<(), DeployError> {
    let patch = json!({
        "metadata": {
            "resourceVersion": resource_version,
            "annotations": { OWNER: Value::Null },
        }
    });
    annotate(client, namespace, workload, &patch).await
}

/// Sets one annotation on a workload (a hold, or a stopped fight).
pub async fn set_annotation(
    client: &Client,
    namespace: &str,
    workload: &WorkloadRef,
    key: &str,
    value: &str,
) -> Result<(), DeployError> {
    let patch = json!({ "metadata": { "annotations": { key: value } } });
    annotate(client, namespace, workload, &patch).await
}

async fn annotate(
    client: &Client,
    namespace: &str,
    workload: &WorkloadRef,
    patch: &Value,
) -> Result<(), DeployError> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let name = workload.name.as_str();
    let result = match workload.kind {
        WorkloadKind::Deployment => {
            Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), namespace)
                .patch(name, &params, &Patch::Merge(patch))
                .await
                .map(drop)
        }
        WorkloadKind::StatefulSet => {
            Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(client.clone(), namespace)
                .patch(name, &params, &Patch::Merge(patch))
                .await
                .map(drop)
        }
    };
    result.map_err(|source| DeployError::Apply {
        workload: workload.clone(),
        namespace: namespace.to_owned(),
        source,
    })
}

/// Writes per workload in a sliding minute: the last line of defence
/// against two writers undoing each other forever.
#[derive(Debug, Default)]
pub struct WriteLog {
    writes: std::collections::HashMap<String, std::collections::VecDeque<std::time::Instant>>,
}

impl WriteLog {
    /// At most this many writes of one workload per minute.
    pub const LIMIT: usize = 5;
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

    /// Whether `key` may be written at `now`; counts the write when it may.
    pub fn allow(&mut self, key: &str, now: std::time::Instant) -> bool {
        let log = self.writes.entry(key.to_owned()).or_default();
        while log
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Self::WINDOW)
        {
            log.pop_front();
        }
        if log.len() >= Self::LIMIT {
            return false;
        }
        log.push_back(now);
        true
    }

    /// Starts `key` afresh: once a stopped fight is over, the next write
    /// must not count the fight's writes.
    pub fn forget(&mut self, key: &str) {
        self.writes.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    use super::*;

    fn owner() -> Owner {
        Owner {
            name: "train".into(),
            namespace: "team".into(),
        }
    }

    fn workload(annotations: Value, managed: Value, image: &str) -> Workload {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": { "name": "api", "annotations": annotations, "managedFields": managed },
            "spec": {
                "selector": {},
                "template": { "spec": { "containers": [{ "name": "app", "image": image }] } },
            },
        }))
        .unwrap();
        Workload::Deployment(Box::new(d))
    }

    fn owns_image(manager: &str, operation: &str) -> Value {
        json!({
            "manager": manager,
            "operation": operation,
            "fieldsType": "FieldsV1",
            "fieldsV1": { "f:spec": { "f:template": { "f:spec": { "f:containers": {
                "k:{\"name\":\"app\"}": { ".": {}, "f:image": {} }
            } } } } },
        })
    }

    #[test]
    fn the_owner_annotation_says_whose_a_workload_is() {
        let free = workload(json!({}), json!([]), "a");
        assert_eq!(claim_of(&free, &owner()), Claim::Free);
        let ours = workload(json!({ OWNER: "team/train" }), json!([]), "a");
        assert_eq!(claim_of(&ours, &owner()), Claim::Ours);
        let theirs = workload(json!({ OWNER: "other/train" }), json!([]), "a");
        assert_eq!(
            claim_of(&theirs, &owner()),
            Claim::Other("other/train".into())
        );
    }

    #[test]
    fn holds_and_stopped_fights_name_their_reason() {
        let free = workload(json!({}), json!([]), "a");
        assert_eq!(hold_of(&free), None);
        let held = workload(json!({ HOLD: "incident 42" }), json!([]), "a");
        assert_eq!(hold_of(&held).as_deref(), Some("held: incident 42"));
        let bare = workload(json!({ HOLD: "" }), json!([]), "a");
        assert_eq!(hold_of(&bare).as_deref(), Some("held"));
        let fight = workload(json!({ FIGHTING: "kubectl-set" }), json!([]), "a");
        assert!(hold_of(&fight).unwrap().contains("kubectl-set"));
        assert_eq!(fighting_with(&fight), Some("kubectl-set"));
    }

    #[test]
    fn an_image_set_by_another_manager_is_drift_naming_it() {
        let wanted = [("app".to_owned(), "reg/app@sha256:1".to_owned())];
        let changed = workload(
            json!({}),
            json!([owns_image("kubectl-set", "Update")]),
            "reg/app:hotfix",
        );
        assert_eq!(
            drift(&changed, &wanted),
            vec![Drift {
                container: "app".into(),
                image: "reg/app:hotfix".into(),
                wanted: "reg/app@sha256:1".into(),
                writer: "kubectl-set".into(),
                unheld: false,
            }]
        );
        // Held before, then lifted by a person: the same change is unheld.
        let lifted = workload(
            json!({ DRIFT_HELD: "app=reg/app:hotfix" }),
            json!([owns_image("kubectl-set", "Update")]),
            "reg/app:hotfix",
        );
        assert!(drift(&lifted, &wanted)[0].unheld);
        let still = workload(
            json!({ DRIFT_HELD: "app=reg/app:hotfix", HOLD: "x" }),
            json!([owns_image("kubectl-set", "Update")]),
            "reg/app:hotfix",
        );
        assert!(!drift(&still, &wanted)[0].unheld);
    }

    #[test]
    fn our_older_image_or_the_wanted_one_is_not_drift() {
        let wanted = [("app".to_owned(), "reg/app@sha256:2".to_owned())];
        let older = workload(
            json!({}),
            json!([owns_image(FIELD_MANAGER, "Apply")]),
            "reg/app@sha256:1",
        );
        assert!(drift(&older, &wanted).is_empty());
        let same = workload(
            json!({}),
            json!([owns_image("kubectl-set", "Update")]),
            "reg/app@sha256:2",
        );
        assert!(drift(&same, &wanted).is_empty());
    }

    #[test]
    fn the_write_log_allows_a_few_writes_a_minute() {
        let mut log = WriteLog::default();
        let t0 = Instant::now();
        for i in 0..WriteLog::LIMIT {
            assert!(log.allow("ns/api", t0 + Duration::from_secs(i as u64)));
        }
        assert!(!log.allow("ns/api", t0 + Duration::from_secs(10)));
        assert!(log.allow("ns/other", t0 + Duration::from_secs(10)));
        assert!(log.allow("ns/api", t0 + Duration::from_secs(61)));
        log.forget("ns/other");
        for _ in 0..WriteLog::LIMIT {
            assert!(log.allow("ns/other", t0 + Duration::from_secs(11)));
        }
    }
}
