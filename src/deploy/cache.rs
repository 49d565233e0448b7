//! The workload cache: a cluster's labelled Deployments and StatefulSets,
//! trimmed to what the operator reads of them (metadata, which manager
//! owns which container image, the spec without the pod template's other
//! fields, the status). A reconcile reads its targets from here instead
//! of a GET each, so the controller manager's status writes during a
//! rollout, each of which wakes the train, cost no request.
//!
//! Each workload is kept as a [`Cached`]: who owns which image as a list,
//! not as managed fields (each entry's `FieldsV1` tree is six nested JSON
//! maps, and at a thousand trains those trees were most of the cache), and
//! the spec and status as JSON that a read parses.
//!
//! The cache lags behind the API server by a watch event. That matters
//! after the operator's own write: the old object would read as a change
//! someone else made, or as a finished rollout of the old template. So
//! each write's generation is remembered, and until the cache shows it the
//! workload is not answered from here (the caller reads it). Nor is any
//! while a watch has failed since its last event: when the API server
//! goes away, the cache would go on showing a rollout as it was.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use kube::api::{PartialObjectMeta, PartialObjectMetaExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::patch::CONTAINERS_FIELDS;
use super::workload::{Workload, WorkloadRef};
use crate::api::deployment::WorkloadKind;
use crate::client::{Index, Readiness};
use crate::labels;

/// A cluster's labelled workloads, as the watches keep them.
#[derive(Clone)]
pub struct WorkloadCache {
    pub deployments: Store<Cached<Deployment>>,
    pub statefulsets: Store<Cached<StatefulSet>>,
    ready: [Readiness; 2],
    /// Whether each watch's last word was an event, not an error.
    live: [Arc<AtomicBool>; 2],
    /// The generation of each workload this process last wrote, until the
    /// cache shows it.
    written: Arc<Mutex<BTreeMap<(String, WorkloadRef), i64>>>,
    /// The workloads by the train that claims them.
    claims: (Index<Cached<Deployment>>, Index<Cached<StatefulSet>>),
}

/// A workload as the cache keeps it: its metadata without managed
/// fields, the container images each field manager owns, and the rest of
/// the trimmed object as JSON. Parsed, a Deployment takes 2.4 KB before
/// its first label and each container 2 KB more, most of it empty
/// options; its trimmed JSON is under 1 KB. A reconcile parses the few it
/// reads.
#[derive(Clone, Debug)]
pub struct Cached<K> {
    metadata: ObjectMeta,
    image_owners: Vec<ImageOwner>,
    /// Empty when the object could not be written out (then the cache
    /// does not answer for it).
    body: Box<str>,
    kind: PhantomData<K>,
}

/// A workload the cache saw change, by its metadata: what a wake-up reads.
pub type Touched<K> = Result<PartialObjectMeta<K>, watcher::Error>;

/// A managed-fields entry that owns container images, as a list.
#[derive(Clone, Debug, PartialEq)]
struct ImageOwner {
    manager: Option<String>,
    operation: Option<String>,
    subresource: Option<String>,
    /// The containers' list-map keys (`k:{"name":"web"}`).
    containers: Vec<String>,
}

impl<K: Resource + Serialize + DeserializeOwned> Cached<K> {
    /// `object` trimmed by `trim`, its image owners read from its managed
    /// fields before they are dropped.
    fn of(mut object: K, trim: fn(&mut K)) -> Self {
        let entries = std::mem::take(object.managed_fields_mut());
        let image_owners = entries.into_iter().filter_map(image_owner).collect();
        trim(&mut object);
        let metadata = std::mem::take(object.meta_mut());
        Cached {
            metadata,
            image_owners,
            body: serde_json::to_string(&object).unwrap_or_default().into(),
            kind: PhantomData,
        }
    }

    /// The object with its image owners as managed fields, as the API
    /// server would show them with nothing else managed.
    fn expanded(&self) -> Option<K> {
        let mut object: K = serde_json::from_str(&self.body).ok()?;
        *object.meta_mut() = ObjectMeta {
            managed_fields: Some(self.image_owners.iter().map(ImageOwner::entry).collect()),
            ..self.metadata.clone()
        };
        Some(object)
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Cached<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl ImageOwner {
    fn entry(&self) -> ManagedFieldsEntry {
        let containers: Map<String, Value> = self
            .containers
            .iter()
            .map(|key| (key.clone(), json!({ "f:image": {} })))
            .collect();
        ManagedFieldsEntry {
            manager: self.manager.clone(),
            operation: self.operation.clone(),
            subresource: self.subresource.clone(),
            fields_type: Some("FieldsV1".to_owned()),
            fields_v1: Some(FieldsV1(
                json!({ "f:spec": { "f:template": { "f:spec": { "f:containers": containers } } } }),
            )),
            ..Default::default()
        }
    }
}

/// The container images a managed-fields entry owns; none when it owns
/// no image.
fn image_owner(entry: ManagedFieldsEntry) -> Option<ImageOwner> {
    let containers = entry.fields_v1.as_ref()?.0.pointer(CONTAINERS_FIELDS)?;
    let containers: Vec<String> = containers
        .as_object()?
        .iter()
        .filter(|(_, fields)| fields.get("f:image").is_some())
        .map(|(key, _)| key.clone())
        .collect();
    (!containers.is_empty()).then_some(ImageOwner {
        manager: entry.manager,
        operation: entry.operation,
        subresource: entry.subresource,
        containers,
    })
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
    impl Stream<Item = Touched<Deployment>> + Send + 'static,
    impl Stream<Item = Touched<StatefulSet>> + Send + 'static,
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
        trim_deployment,
    );
    let (statefulsets, statefulset_events) = trimmed_watch(
        client,
        config,
        (live[1].clone(), claims.1.clone()),
        trim_statefulset,
    );
    let cache = WorkloadCache::new(deployments, statefulsets, live, claims);
    (cache, deployment_events, statefulset_events)
}

impl WorkloadCache {
    fn new(
        deployments: Store<Cached<Deployment>>,
        statefulsets: Store<Cached<StatefulSet>>,
        live: [Arc<AtomicBool>; 2],
        claims: (Index<Cached<Deployment>>, Index<Cached<StatefulSet>>),
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
                .and_then(|d| d.expanded())
                .map(|d| Workload::Deployment(Box::new(d))),
            WorkloadKind::StatefulSet => self
                .statefulsets
                .get(&ObjectRef::new(name).within(ns))
                .and_then(|s| s.expanded())
                .map(|s| Workload::StatefulSet(Box::new(s))),
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
            .filter_map(|d| claimed(WorkloadKind::Deployment, d.meta()))
            .chain(
                statefulsets
                    .iter()
                    .filter_map(|s| claimed(WorkloadKind::StatefulSet, s.meta())),
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
    (live, claims): (Arc<AtomicBool>, Index<Cached<K>>),
    trim: fn(&mut K),
) -> (
    Store<Cached<K>>,
    impl Stream<Item = Touched<K>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let events = watcher(Api::<K>::all(client.clone()), config)
        .default_backoff()
        .inspect(move |event| live.store(event.is_ok(), Ordering::Relaxed))
        .map_ok(move |event| cached(event, trim))
        .reflect(writer)
        .inspect(claims.follower())
        .touched_objects()
        .map_ok(|workload| workload.metadata.into_request_partial());
    (store, events)
}

/// A watch event of `K` as the cache keeps its objects.
fn cached<K: Resource + Serialize + DeserializeOwned>(
    event: watcher::Event<K>,
    trim: fn(&mut K),
) -> watcher::Event<Cached<K>> {
    use watcher::Event::*;
    match event {
        Apply(object) => Apply(Cached::of(object, trim)),
        Delete(object) => Delete(Cached::of(object, trim)),
        InitApply(object) => InitApply(Cached::of(object, trim)),
        Init => Init,
        InitDone => InitDone,
    }
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

fn trim_deployment(d: &mut Deployment) {
    trim_metadata(&mut d.metadata);
    if let Some(spec) = &mut d.spec {
        trim_template(&mut spec.template);
    }
    // The rollout is judged by the Progressing condition alone.
    if let Some(conditions) = d.status.as_mut().and_then(|s| s.conditions.as_mut()) {
        conditions.retain(|c| c.type_ == "Progressing");
    }
}

fn trim_statefulset(s: &mut StatefulSet) {
    trim_metadata(&mut s.metadata);
    if let Some(spec) = &mut s.spec {
        trim_template(&mut spec.template);
        spec.volume_claim_templates = None;
    }
    if let Some(status) = &mut s.status {
        status.conditions = None;
    }
}

/// Keeps what is read: name, namespace, generation, resource version,
/// labels and annotations, without kubectl's copy of the last applied
/// object. Managed fields are gone already.
fn trim_metadata(meta: &mut ObjectMeta) {
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    *meta = ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        generation: meta.generation,
        resource_version: meta.resource_version.take(),
        labels: meta.labels.take(),
        annotations: meta.annotations.take(),
        ..Default::default()
    };
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
            "status": {"observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "conditions": [
                {"type": "Available", "status": "True", "message": "Deployment has minimum availability."},
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "message": "ReplicaSet \"web-1\" has timed out progressing."},
            ]},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_workload_is_not_answered_before_the_cache_shows_this_process_s_write() {
        let (deployments, mut writer) = reflector::store();
        let (statefulsets, mut other) = reflector::store();
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
            Cached::of(d, trim_deployment)
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
        let d = Cached::of(deployment(), trim_deployment)
            .expanded()
            .unwrap();
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
        // The rollout is judged by the Progressing condition, kept whole.
        let conditions = |d: &Deployment| d.status.as_ref()?.conditions.clone();
        let progressing = conditions(&deployment()).unwrap().pop();
        assert_eq!(conditions(&d), Some(progressing.into_iter().collect()));
        assert_eq!(d.spec.unwrap().replicas, Some(2));
    }
}
