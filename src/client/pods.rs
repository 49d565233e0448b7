//! The pod cache: the labelled pods as the health checks read them (their
//! labels, and each container's image and restart count), deserialized
//! straight from the API server's JSON, so that nothing else of a pod is
//! ever decoded into memory or kept. A reconcile counts restarts from it
//! instead of listing pods: the API server would filter every pod of the
//! namespace for each list.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Deserialize;

use super::{Index, Readiness};
use crate::labels;

/// A pod, as much of it as the health checks read.
#[derive(Resource, Clone, Debug, Default, PartialEq, Deserialize)]
#[resource(inherit = Pod)]
pub struct CachedPod {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub status: Option<CachedPodStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedPodStatus {
    #[serde(default)]
    pub container_statuses: Option<Vec<ContainerRestarts>>,
}

/// A container's status: its name, the image it runs and its restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRestarts {
    pub name: String,
    #[serde(default)]
    pub image: String,
    #[serde(default, rename = "imageID")]
    pub image_id: String,
    #[serde(default)]
    pub restart_count: i32,
}

impl CachedPod {
    /// The container statuses, none before the kubelet reports.
    pub fn containers(&self) -> &[ContainerRestarts] {
        self.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default()
    }
}

/// What of a pod may change a health verdict: its containers' images and
/// restart counts. Readiness is left out: it reaches the verdict through
/// the workload's status, whose changes wake the train themselves. As a
/// wake-up filter (`predicate_filter`) this keeps a rollout's many pod
/// updates (scheduled, started, ready...) from each costing a reconcile.
pub fn restart_state(pod: &CachedPod) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    pod.containers().hash(&mut hasher);
    Some(hasher.finish())
}

/// A cluster's pod cache, and whether it has listed once.
#[derive(Clone)]
pub struct PodCache {
    pub store: Store<CachedPod>,
    pub ready: Readiness,
    by_train: Index<CachedPod>,
}

impl PodCache {
    /// The pods labelled for the train `namespace/name`.
    pub fn of_train(&self, namespace: &str, name: &str) -> Vec<Arc<CachedPod>> {
        self.by_train
            .find(&self.store, &labels::train_key(namespace, name))
    }
}

/// A pod's train, by both its labels.
fn train_of(pod: &CachedPod) -> Vec<String> {
    let labels = pod.labels();
    match (
        labels.get(labels::DEPLOYMENT_NAMESPACE),
        labels.get(labels::DEPLOYMENT),
    ) {
        (Some(namespace), Some(name)) => vec![labels::train_key(namespace, name)],
        _ => Vec::new(),
    }
}

/// The cache of every pod `config` selects, and the watch (with backoff)
/// that fills it as it is polled. The watch yields the pods whose
/// [`restart_state`] changed, for their trains to be woken.
pub fn pod_cache(
    client: &Client,
    config: watcher::Config,
) -> (
    PodCache,
    impl Stream<Item = Result<CachedPod, watcher::Error>> + Send + 'static,
) {
    let (store, writer) = reflector::store();
    let by_train = Index::new(train_of);
    let changes = watcher(Api::<CachedPod>::all(client.clone()), config)
        .default_backoff()
        .modify(|pod| {
            // Nobody reads these.
            let meta = &mut pod.metadata;
            meta.managed_fields = None;
            meta.annotations = None;
            meta.owner_references = None;
        })
        .reflect(writer)
        .inspect(by_train.follower())
        .touched_objects()
        .predicate_filter(restart_state, Default::default());
    let ready = Readiness::of(store.clone());
    (
        PodCache {
            store,
            ready,
            by_train,
        },
        changes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_images_and_restarts_change_the_restart_state() {
        let pod = |ready: bool, restarts: i32| -> CachedPod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web-1"},
                "status": {"containerStatuses": [
                    {"name": "web", "image": "web:2", "imageID": "", "ready": ready, "restartCount": restarts},
                ]},
            }))
            .unwrap()
        };
        assert_eq!(restart_state(&pod(false, 0)), restart_state(&pod(true, 0)));
        assert_ne!(restart_state(&pod(true, 0)), restart_state(&pod(true, 1)));
        assert_ne!(
            restart_state(&CachedPod::default()),
            restart_state(&pod(false, 0))
        );
    }

    #[test]
    fn a_pod_is_read_as_its_labels_images_and_restart_counts() {
        let pod: CachedPod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "prod", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web:2"}]},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{
                    "name": "web", "image": "web:2", "imageID": "web@sha256:2",
                    "restartCount": 4, "ready": true,
                    "state": {"running": {"startedAt": "2026-12-07T10:00:00Z"}},
                }],
            },
        }))
        .unwrap();
        assert_eq!(
            pod.metadata.labels,
            Some([("app".into(), "web".into())].into())
        );
        assert_eq!(
            pod.containers(),
            [ContainerRestarts {
                name: "web".into(),
                image: "web:2".into(),
                image_id: "web@sha256:2".into(),
                restart_count: 4,
            }]
        );
        // A pod the scheduler has not placed yet has no status.
        let pending: CachedPod =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "web-2"}})).unwrap();
        assert_eq!(pending.containers(), []);
    }
}
