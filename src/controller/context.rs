//! What every reconcile shares: the client, the caches the watches fill,
//! and the edges the stages read and write through. Built once by `run`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};

use crate::api::{PackitDeployment, PackitRelease};
use crate::build::registry::Registry;
use crate::client::{Index, PodCache, Readiness};
use crate::deploy::{WorkloadCache, WorkloadRef};
use crate::git::SourceCache;
use crate::health::{HttpProber, MetricProber};
use crate::labels;
use crate::metrics::Metrics;
use crate::remote::{Clusters, Remote};

pub struct Context {
    pub client: Client,
    /// Event reporter (controller name and replica).
    pub reporter: Reporter,
    /// Every PackitRelease the controller watches, kept by a reflector: a
    /// reconcile reads a train's releases from here instead of listing them.
    pub releases: Store<PackitRelease>,
    /// `releases` by their train (`releases_of`).
    pub releases_by_train: Index<PackitRelease>,
    /// Whether `releases` has listed once.
    pub releases_ready: Readiness,
    /// The labelled pods, as much as the health checks read
    /// (`client::pod_cache`).
    pub pods: PodCache,
    /// The trains the controller sees, to find others reaching for the
    /// same workload.
    pub trains: Store<PackitDeployment>,
    /// `trains` by the workloads they target (`trains_targeting`).
    pub trains_by_target: Index<PackitDeployment>,
    /// Workloads labelled by a train, trimmed: a reconcile reads its
    /// targets from here, and finds the ones a train still owns.
    pub workloads: WorkloadCache,
    /// Every namespace's metadata: their `packit.dev/allow-from` opt-in.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Whether `namespaces` has listed once.
    pub namespaces_ready: Readiness,
    /// Recent writes per workload, to stop a fight with another writer.
    pub writes: std::sync::Mutex<crate::deploy::WriteLog>,
    pub sources: SourceCache,
    /// How many changelogs may be computed at once (the cores).
    pub changelog_slots: tokio::sync::Semaphore,
    /// Whether git sources on the operator's own disk may be used
    /// (`--allow-local-sources`).
    pub allow_local_sources: bool,
    pub registry: Registry,
    pub prober: HttpProber,
    pub metric_prober: MetricProber,
    pub metrics: Arc<Metrics>,
    /// The notifications this process is attempting right now, by delivery
    /// id, so that a reconcile during an attempt does not start another.
    pub deliveries: Deliveries,
    /// Clients of the remote clusters environments name.
    pub clusters: Clusters,
}

impl Context {
    /// The releases of the train `namespace/name`, oldest first.
    pub fn releases_of(&self, namespace: &str, name: &str) -> Vec<Arc<PackitRelease>> {
        let mut list = self
            .releases_by_train
            .find(&self.releases, &labels::train_key(namespace, name));
        list.sort_by_key(|r| (r.creation_timestamp(), r.name_any()));
        list
    }

    /// The trains with a target `workload` in `namespace`.
    pub fn trains_targeting(
        &self,
        namespace: &str,
        workload: &WorkloadRef,
    ) -> Vec<Arc<PackitDeployment>> {
        self.trains_by_target
            .find(&self.trains, &target_key(namespace, workload))
    }
}

/// The key of `releases_by_train`: the release's train.
pub fn release_train(release: &PackitRelease) -> Vec<String> {
    match (
        release.namespace(),
        release.labels().get(labels::DEPLOYMENT),
    ) {
        (Some(namespace), Some(name)) => vec![labels::train_key(&namespace, name)],
        _ => Vec::new(),
    }
}

/// The keys of `trains_by_target`: every workload the train's
/// environments target (on any cluster).
pub fn train_targets(train: &PackitDeployment) -> Vec<String> {
    let own = train.namespace().unwrap_or_default();
    let mut keys: Vec<String> = train
        .spec
        .environments
        .iter()
        .flat_map(|env| {
            let namespace = super::targets::namespace_of(&own, env);
            env.targets.iter().map(move |t| {
                let workload = WorkloadRef {
                    kind: t.kind,
                    name: t.name.clone(),
                };
                target_key(&namespace, &workload)
            })
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn target_key(namespace: &str, workload: &WorkloadRef) -> String {
    format!(
        "{namespace}/{}/{}",
        crate::deploy::kind_name(workload.kind),
        workload.name
    )
}

/// Where an environment's workloads live: the operator's own cluster, or
/// a remote one.
#[derive(Clone)]
pub struct Place {
    pub client: Client,
    pub workloads: WorkloadCache,
    pub pods: PodCache,
    pub remote: Option<Arc<Remote>>,
}

impl Place {
    pub fn home(ctx: &Context) -> Place {
        Place {
            client: ctx.client.clone(),
            workloads: ctx.workloads.clone(),
            pods: ctx.pods.clone(),
            remote: None,
        }
    }

    pub fn on(remote: Arc<Remote>) -> Place {
        Place {
            client: remote.client.clone(),
            workloads: remote.workloads.clone(),
            pods: remote.pods.clone(),
            remote: Some(remote),
        }
    }

    /// The cache to read targets from: at home only. A remote cluster's
    /// cache cannot tell a cluster that stopped answering from one where
    /// nothing changed, so there each read asks the cluster.
    pub fn cached(&self) -> Option<&WorkloadCache> {
        self.remote.is_none().then_some(&self.workloads)
    }

    /// The remote cluster's name; none at home.
    pub fn cluster(&self) -> Option<&str> {
        self.remote.as_ref().map(|r| r.name.as_str())
    }

    /// `namespace stg`, or `namespace stg of cluster prod` on a remote.
    pub fn describe(&self, namespace: &str) -> String {
        super::targets::location(namespace, self.cluster())
    }
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.cluster().unwrap_or("home"))
    }
}

/// Delivery ids being attempted.
pub type Deliveries = Arc<Mutex<BTreeSet<String>>>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::{reflector, watcher};

    use super::Readiness;

    #[tokio::test]
    async fn every_waiter_wakes_once_the_store_has_listed() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let readiness = std::sync::Arc::new(Readiness::of(store));
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let readiness = readiness.clone();
                tokio::spawn(async move { readiness.wait().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()), "ready too early");
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        for waiter in waiters {
            let woke = tokio::time::timeout(Duration::from_secs(5), waiter).await;
            assert!(matches!(woke, Ok(Ok(Ok(())))), "a waiter still waits");
        }
    }
}
