//! The workload cache: a cluster's labelled Deployments and StatefulSets,
//! trimmed to what the operator reads of them (metadata, which manager
//! owns which container image, the spec without the pod template's other
//! fields, the status). A reconcile reads its targets from here instead
//! of a GET each, so the controller manager's status writes during a
//! rollout, each of which wakes the train, cost no request.
//!
//! The cache lags behind the API server by a watch event. That matters
//! after the operator's own write: the old object would read as a change
//! someone else made, or as a finished rollout of the old template. So
//! each write's generation is remembered, and until the cache shows it the
//! workload is not answered from here (the caller reads it). Nor is any
//! while a watch has failed since its last event: when the API server
//! goes away, the cache would go on showing a rollout as it was.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Map, Value, json};

use super::patch::CONTAINERS_FIELDS;
use super::workload::{Workload, WorkloadRef};
use crate::api::deployment::WorkloadKind;
use crate::client::{Index, Readiness};
use crate::labels;

/// A cluster's labelled workloads, as the watches keep them.
#[derive(Clone)]
pub struct WorkloadCache {
    pub deployments: Store<Deployment>,
    pub statefulsets: Store<StatefulSet>,
    ready: [Readiness; 2],
    /// Whether each watch's last word was an event, not an error.
    live: [Arc<AtomicBool>; 2],
    /// The generation of each workload this process last wrote, until the
    /// cache shows it.
    written: Arc<Mutex<BTreeMap<(String, WorkloadRef), i64>>>,
    /// The workloads by the train that claims them.
    claims: (Index<Deployment>, Index<StatefulSet>),
}

/// A workload a train claims, as the cache shows it.
pub struct Claimed {
    pub namespace: String,
    pub workload: WorkloadRef,
    pub resource_version: Option<String>,
}

/// The cache of the workloads `config` selects, and the watches (with
/// backoff) that fill it as they are polled; they yield each changed
/// workload, for its train to be woken.
pub fn workload_cache(
    client: &Client,
    config: watcher::Config,
) -> (
    WorkloadCache,
    impl Stream<Item = Result<Deployment, watcher::Error>> + Send + 'static,
    impl Stream<Item = Result<StatefulSet, watcher::Error>> + Send + 'static,
) {
    let live = [
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    ];
    let claims = (Index::new(claimant), Index::new(claimant));
    let (deployments, deployment_events) = trimmed_watch(
        client,
        config.clone(),
        (live[0].clone(), claims.0.clone()),
        |d: &mut Deployment| {
            trim_metadata(&mut d.metadata);
            if let Some(spec) = &mut d.spec {
                trim_template(&mut spec.template);
            }
        },
    );
    let (statefulsets, statefulset_events) = trimmed_watch(
        client,
        config,
        (live[1].clone(), claims.1.clone()),
        |s: &mut StatefulSet| {
            trim_metadata(&mut s.metadata);
            if let Some(spec) = &mut s.spec {
                trim_template(&mut spec.template);
                spec.volume_claim_templates = None;
            }
        },
    );
    let cache = WorkloadCache::new(deployments, statefulsets, live, claims);
    (cache, deployment_events, statefulset_events)
}

impl WorkloadCache {
    fn new(
        deployments: Store<Deployment>,
        statefulsets: Store<StatefulSet>,
        live: [Arc<AtomicBool>; 2],
        claims: (Index<Deployment>, Index<StatefulSet>),
    ) -> Self {
        WorkloadCache {
            live,
            claims,
            ready: [
                Readiness::of(deployments.clone()),
                Readiness::of(statefulsets.clone()),
            ],
            deployments,
            statefulsets,
            written: Default::default(),
        }
    }

    /// The workload as cached. `None` when the cache cannot answer: it has
    /// not listed yet, a watch failed since its last event, the workload
    /// is not labelled (nobody's yet, or it does not exist), or the cache
    /// is behind this process's last write.
    pub fn get(&self, namespace: &str, workload: &WorkloadRef) -> Option<Workload> {
        let live = self.live.iter().all(|l| l.load(Ordering::Relaxed));
        if !live || !self.ready.iter().all(Readiness::is_ready) {
            return None;
        }
        let (name, ns) = (workload.name.as_str(), namespace);
        let found = match workload.kind {
            WorkloadKind::Deployment => self
                .deployments
                .get(&ObjectRef::new(name).within(ns))
                .map(|d| Workload::Deployment(Box::new(d.as_ref().clone()))),
            WorkloadKind::StatefulSet => self
                .statefulsets
                .get(&ObjectRef::new(name).within(ns))
                .map(|s| Workload::StatefulSet(Box::new(s.as_ref().clone()))),
        }?;
        let generation = found.metadata().generation.unwrap_or_default();
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let id = (namespace.to_owned(), workload.clone());
        match written.get(&id) {
            Some(wrote) if generation < *wrote => None,
            Some(_) => {
                written.remove(&id);
                Some(found)
            }
            None => Some(found),
        }
    }

    /// Once the cache has listed both kinds (an error when a watch was
    /// dropped before).
    pub async fn listed(&self) -> Result<(), tokio::sync::watch::error::RecvError> {
        for ready in &self.ready {
            ready.wait().await?;
        }
        Ok(())
    }

    /// The workloads whose owner annotation is `claim` (`namespace/name`
    /// of a train).
    pub fn claimed_by(&self, claim: &str) -> Vec<Claimed> {
        let claimed = |kind, meta: &ObjectMeta| {
            Some(Claimed {
                namespace: meta.namespace.clone()?,
                workload: WorkloadRef {
                    kind,
                    name: meta.name.clone()?,
                },
                resource_version: meta.resource_version.clone(),
            })
        };
        let deployments = self.claims.0.find(&self.deployments, claim);
        let statefulsets = self.claims.1.find(&self.statefulsets, claim);
        deployments
            .iter()
            .filter_map(|d| claimed(WorkloadKind::Deployment, &d.metadata))
            .chain(
                statefulsets
                    .iter()
                    .filter_map(|s| claimed(WorkloadKind::StatefulSet, &s.metadata)),
            )
            .collect()
    }

    /// Remembers a write of `workload`, which made it `generation`.
    pub fn wrote(&self, namespace: &str, workload: &WorkloadRef, generation: i64) {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.to_owned(), workload.clone()), generation);
    }
}

/// A store of every `K` `config` selects, each trimmed by `trim`, and the
/// watch (with backoff) that fills it and `claims`, recording in `live`
/// whether its last word was an event or an error.
fn trimmed_watch<K>(
    client: &Client,
    config: watcher::Config,
    (live, claims): (Arc<AtomicBool>, Index<K>),
    trim: impl FnMut(&mut K) + Send + 'static,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let events = watcher(Api::<K>::all(client.clone()), config)
        .default_backoff()
        .inspect(move |event| live.store(event.is_ok(), Ordering::Relaxed))
        .modify(trim)
        .reflect(writer)
        .inspect(claims.follower())
        .touched_objects();
    (store, events)
}

/// The train a workload's owner annotation names.
fn claimant<K: kube::Resource>(workload: &K) -> Vec<String> {
    workload
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(labels::OWNER))
        .into_iter()
        .cloned()
        .collect()
}

/// Drops what nobody reads: kubectl's copy of the last applied object and
/// managed fields other than who set which container image.
fn trim_metadata(meta: &mut ObjectMeta) {
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    meta.managed_fields = meta
        .managed_fields
        .take()
        .map(|entries| entries.into_iter().filter_map(image_fields).collect());
}

/// A managed-fields entry cut down to the container images it owns; none
/// when it owns no image.
fn image_fields(mut entry: ManagedFieldsEntry) -> Option<ManagedFieldsEntry> {
    let containers = entry.fields_v1.as_ref()?.0.pointer(CONTAINERS_FIELDS)?;
    let images: Map<String, Value> = containers
        .as_object()?
        .iter()
        .filter(|(_, fields)| fields.get("f:image").is_some())
        .map(|(key, _)| (key.clone(), json!({ "f:image": {} })))
        .collect();
    if images.is_empty() {
        return None;
    }
    entry.fields_v1 = Some(FieldsV1(
        json!({ "f:spec": { "f:template": { "f:spec": { "f:containers": images } } } }),
    ));
    Some(entry)
}

/// Keeps the pod template's labels and its containers' names and images.
fn trim_template(template: &mut PodTemplateSpec) {
    if let Some(meta) = &mut template.metadata {
        *meta = ObjectMeta {
            labels: meta.labels.take(),
            ..Default::default()
        };
    }
    if let Some(spec) = &mut template.spec {
        let containers = std::mem::take(&mut spec.containers)
            .into_iter()
            .map(|c| Container {
                name: c.name,
                image: c.image,
                ..Default::default()
            })
            .collect();
        *spec = PodSpec {
            containers,
            ..Default::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::{FIELD_MANAGER, owned_container_images};

    fn deployment() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {
                "name": "web", "namespace": "prod", "generation": 3,
                "labels": {"packit.dev/deployment": "shop"},
                "annotations": {
                    "packit.dev/owner": "team/shop",
                    "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                },
                "managedFields": [
                    {"manager": FIELD_MANAGER, "operation": "Apply", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:metadata": {"f:labels": {}}, "f:spec": {"f:template": {"f:spec": {
                        "f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}},
                    {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:replicas": {}}}},
                    {"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"web\"}": {"f:env": {}},
                        "k:{\"name\":\"sidecar\"}": {"f:image": {}}}}}}}},
                ],
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                    "spec": {
                        "containers": [
                            {"name": "web", "image": "web:2", "env": [{"name": "A", "value": "1"}]},
                            {"name": "sidecar", "image": "proxy:1"},
                        ],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                    },
                },
            },
            "status": {"observedGeneration": 3, "replicas": 2, "readyReplicas": 2},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_workload_is_not_answered_before_the_cache_shows_this_process_s_write() {
        let (deployments, mut writer) = reflector::store::<Deployment>();
        let (statefulsets, mut other) = reflector::store::<StatefulSet>();
        let live = [
            Arc::new(AtomicBool::new(true)),
            Arc::new(AtomicBool::new(true)),
        ];
        let cache = WorkloadCache::new(
            deployments,
            statefulsets,
            live.clone(),
            (Index::new(claimant), Index::new(claimant)),
        );
        let web = WorkloadRef {
            kind: WorkloadKind::Deployment,
            name: "web".into(),
        };
        let at = |generation: i64| {
            let mut d = deployment();
            d.metadata.generation = Some(generation);
            d
        };
        assert!(cache.get("prod", &web).is_none(), "not listed yet");

        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(at(3)));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        other.apply_watcher_event(&watcher::Event::Init);
        other.apply_watcher_event(&watcher::Event::InitDone);
        tokio::time::timeout(std::time::Duration::from_secs(5), cache.listed())
            .await
            .unwrap()
            .unwrap();
        let generation = |w: Option<Workload>| w.and_then(|w| w.metadata().generation);
        assert_eq!(generation(cache.get("prod", &web)), Some(3));
        assert!(cache.get("stg", &web).is_none(), "another namespace's");

        // The operator wrote generation 4: the cache's 3 is behind.
        cache.wrote("prod", &web, 4);
        assert!(cache.get("prod", &web).is_none());
        writer.apply_watcher_event(&watcher::Event::Apply(at(4)));
        assert_eq!(generation(cache.get("prod", &web)), Some(4));
        // Caught up once, it answers from then on, whoever writes next.
        writer.apply_watcher_event(&watcher::Event::Apply(at(5)));
        assert_eq!(generation(cache.get("prod", &web)), Some(5));
        // Not while a watch is failing.
        live[1].store(false, Ordering::Relaxed);
        assert!(cache.get("prod", &web).is_none());
    }

    #[test]
    fn a_trimmed_workload_reads_as_the_whole_one_does() {
        let whole = Workload::Deployment(Box::new(deployment()));
        let mut d = deployment();
        trim_metadata(&mut d.metadata);
        trim_template(&mut d.spec.as_mut().unwrap().template);
        let trimmed = Workload::Deployment(Box::new(d.clone()));

        for w in [&whole, &trimmed] {
            assert_eq!(
                owned_container_images(w.metadata(), FIELD_MANAGER),
                ["web".to_owned()].into()
            );
            let ours = WorkloadRef {
                kind: WorkloadKind::Deployment,
                name: "web".into(),
            };
            assert_eq!(
                w.container_image(&ours, "prod", "sidecar").unwrap(),
                Some("proxy:1")
            );
            assert_eq!(w.selector(), whole.selector());
        }
        // kubectl's image of the sidecar is still known; the status entry
        // and what is not an image are gone.
        let managers: Vec<_> = d
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|e| e.manager.clone().unwrap_or_default())
            .collect();
        assert_eq!(managers, [FIELD_MANAGER, "kubectl"]);
        let kubectl = &d.metadata.managed_fields.as_ref().unwrap()[1];
        assert_eq!(
            kubectl
                .fields_v1
                .as_ref()
                .unwrap()
                .0
                .pointer(CONTAINERS_FIELDS),
            Some(&json!({"k:{\"name\":\"sidecar\"}": {"f:image": {}}}))
        );
        let annotations = d.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations.len(), 1);
        let template = &d.spec.as_ref().unwrap().template;
        assert_eq!(template.metadata.as_ref().unwrap().annotations, None);
        let spec = template.spec.as_ref().unwrap();
        assert!(spec.volumes.is_none() && spec.containers[0].env.is_none());
        // What the rollout is judged by stays.
        assert_eq!(d.status, deployment().status);
        assert_eq!(d.spec.unwrap().replicas, Some(2));
    }
}
