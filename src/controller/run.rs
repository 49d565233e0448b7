//! Wiring: the metrics endpoint, the client, the watches and their caches,
//! leader election, and the controller runtime that calls `reconcile`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use super::context::{release_train, train_targets};
use super::{Context, Error, MANAGER, reconcile};
use crate::api::deployment::WorkloadKind;
use crate::api::{PackitDeployment, PackitRelease};
use crate::build::registry::Registry;
use crate::client::{Index, Readiness, metadata_watch, pod_cache};
use crate::deploy::{WorkloadCache, workload_cache};
use crate::git::SourceCache;
use crate::health::{HttpProber, MetricProber};
use crate::http::AddressPolicy;
use crate::metrics::Metrics;
use crate::remote::Clusters;
use crate::{labels, leader};

/// Settings of `packit-operator run`.
pub struct Settings {
    /// Where bare git caches live.
    pub cache_dir: PathBuf,
    /// This replica's name, for Events.
    pub instance: Option<String>,
    /// Only PackitDeployments of this namespace (all when unset).
    pub namespace: Option<String>,
    /// Only PackitDeployments with these labels (a label selector), so
    /// that several operators can share a cluster's trains.
    pub selector: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_addr: std::net::SocketAddr,
    /// Run the controller only while holding this lease (all replicas act
    /// when unset).
    pub leader_election: Option<crate::leader::Config>,
    /// Whether git sources on the operator's own disk may be used.
    pub allow_local_sources: bool,
    /// Ranges outgoing HTTP may reach although refused otherwise.
    pub allow_cidrs: Vec<ipnet::IpNet>,
    /// Ranges outgoing HTTP may not reach, on top of the built-in ones.
    pub deny_cidrs: Vec<ipnet::IpNet>,
}

/// How long reconciles in progress may take to finish after a signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the controller until SIGINT or SIGTERM; reconciles in progress are
/// let finish.
///
/// With leader election the controller starts once the lease is acquired;
/// losing the lease exits the process (status 1) and stopping releases it.
pub async fn run(settings: Settings) -> Result<(), Error> {
    // First of all, so that no step of start-up can miss a SIGTERM.
    let stop = leader::shutdown_signal();
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(settings.metrics_addr)
        .await
        .map_err(|e| Error::Serve(settings.metrics_addr, e))?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    }
    tokio::spawn(crate::server::serve(
        listener,
        metrics.clone(),
        ready.clone(),
    ));
    let client = crate::client::counting(metrics.clone()).await?;
    // Fail early, with a hint, when the CRDs are missing.
    Api::<PackitDeployment>::all(client.clone())
        .list(&kube::api::ListParams::default().limit(1))
        .await
        .inspect_err(|_| {
            tracing::error!(
                "cannot list PackitDeployments: are the CRDs installed? (kubectl apply -f crds/)"
            )
        })?;
    // Workloads may live in other (opted-in) namespaces, so they are watched
    // everywhere, by the labels the operator puts on them.
    let labelled = || match &settings.namespace {
        Some(ns) => watcher::Config::default().labels(&format!(
            "{},{}={ns}",
            labels::DEPLOYMENT,
            labels::DEPLOYMENT_NAMESPACE
        )),
        None => watcher::Config::default().labels(labels::DEPLOYMENT),
    };
    let scoped = |client: &Client| match &settings.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let (deployments, releases): (Api<PackitDeployment>, Api<PackitRelease>) = scoped(&client);
    // A standby is ready too: it is up and waits its turn. Were it not, a
    // rolling update of two replicas would wait for the new pod forever
    // while the old one holds the lease.
    ready.store(true, std::sync::atomic::Ordering::Relaxed);
    let elector = settings.leader_election.clone().map(|config| {
        let identity = leader::identity(settings.instance.as_deref());
        Arc::new(leader::Elector::new(client.clone(), config, identity))
    });
    let holding = match &elector {
        Some(elector) => {
            let acquired = tokio::select! {
                at = elector.acquire() => at,
                () = stop.clone() => {
                    tracing::info!("stopped while standing by");
                    return Ok(());
                }
            };
            // Its own task, so that a busy reconcile cannot delay noticing
            // the loss; nothing may act after it, hence the exit.
            let (elector, metrics) = (elector.clone(), metrics.clone());
            Some(tokio::spawn(async move {
                let lost = elector.hold(acquired).await;
                metrics.leader.set(0);
                tracing::error!(error = %lost, "lost the lease: exiting");
                std::process::exit(1);
            }))
        }
        None => None,
    };
    metrics.leader.set(1);
    // One watch of the releases feeds both the cache reconciles read and
    // the triggers of their owners.
    let (release_store, release_writer) = reflector::store();
    let releases_by_train = Index::new(release_train);
    // Nothing reads the managed fields of a release from the store.
    let release_events = watcher(releases, watcher::Config::default())
        .default_backoff()
        .modify(|r| r.managed_fields_mut().clear())
        .reflect(release_writer)
        .inspect(releases_by_train.follower())
        .touched_objects();
    // The labelled workloads, trimmed: the targets reconciles read, and
    // who claims what.
    let (workloads, deployment_events, statefulset_events) = workload_cache(&client, labelled());
    // Pods fill the cache the health checks count restarts from, and wake
    // their train when a restart count changes; Jobs only wake their
    // train: their labels are enough.
    let (pods, pod_events) = pod_cache(&client, labelled());
    let job_events = metadata_watch::<Job>(&client, labelled()).touched_objects();
    // Namespaces' opt-ins; a change wakes the trains deploying there.
    let (namespace_store, namespace_writer) = reflector::store();
    let namespace_events = metadata_watch::<Namespace>(&client, watcher::Config::default())
        .reflect(namespace_writer)
        .touched_objects()
        .predicate_filter(opt_in, Default::default());
    let contenders = deployments.clone();
    // The trains' own watch, with a store that keeps no managed fields
    // (nothing reads them; a train's are about a quarter of it).
    let (controller_trains, train_writer) = reflector::store();
    let trains_by_target = Index::new(train_targets);
    let trains = watcher(deployments, trains_config(settings.selector.as_deref()))
        .default_backoff()
        .modify(|d| d.managed_fields_mut().clear())
        .reflect(train_writer)
        .inspect(trains_by_target.follower())
        .applied_objects();
    let controller = Controller::for_stream(trains, controller_trains.clone());
    let policy = AddressPolicy {
        allow: settings.allow_cidrs.clone(),
        deny: settings.deny_cidrs.clone(),
        api_server: crate::client::api_server_addresses().await,
    };
    tracing::info!(api_server = ?policy.api_server, "outgoing HTTP never connects to the API server");
    let policy = Arc::new(policy);
    let prober = HttpProber::new(policy.clone())?;
    // Remote clusters' watches wake their trains through this channel.
    let (wake, remote_events) = futures::channel::mpsc::unbounded();
    let ctx = Arc::new(Context {
        client: client.clone(),
        reporter: Reporter {
            controller: MANAGER.into(),
            instance: settings.instance.clone(),
        },
        releases_ready: Readiness::of(release_store.clone()),
        pods,
        releases: release_store,
        releases_by_train,
        trains: controller_trains.clone(),
        trains_by_target,
        workloads: workloads.clone(),
        namespaces_ready: Readiness::of(namespace_store.clone()),
        namespaces: namespace_store,
        writes: Default::default(),
        sources: SourceCache::new(settings.cache_dir.clone()),
        changelog_slots: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        ),
        allow_local_sources: settings.allow_local_sources,
        registry: Registry::new(),
        metric_prober: MetricProber::new(prober.client().clone(), prober.policy().clone()),
        prober,
        metrics: metrics.clone(),
        deliveries: Default::default(),
        clusters: Clusters::new(client.clone(), policy, metrics.clone(), wake),
    });
    let running = controller
        .owns_stream(release_events)
        // Builder and smoke-test Jobs; the latter live in the environments'
        // namespaces, where no owner reference can point to the train.
        .watches_stream(job_events, owner_of)
        // A train reaching for a workload another owns wakes the owner,
        // which is told in its TargetConflict condition.
        .watches(contenders, trains_config(settings.selector.as_deref()), {
            move |train: PackitDeployment| owners_reached(&train, &workloads)
        })
        .watches_stream(deployment_events, owner_of)
        .watches_stream(statefulset_events, owner_of)
        .watches_stream(pod_events, owner_of)
        .watches_stream(namespace_events, {
            let trains = controller_trains.clone();
            move |ns| deploying_into(&trains, &ns.name_any())
        })
        .reconcile_on(remote_events)
        .graceful_shutdown_on(stop.clone())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(%obj, "reconciled"),
                // A workload of a train this replica does not select.
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(%obj, "not ours")
                }
                Err(e) => tracing::warn!(error = %e, "reconcile failed"),
            }
        });
    // Reconciles in progress may finish, but not forever: a stuck one (a
    // git fetch that hangs) must not keep the lease from being handed over.
    let deadline = async {
        stop.await;
        tracing::info!("stopping: reconciles in progress may finish");
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = running => {}
        () = deadline => tracing::warn!("reconciles still running {SHUTDOWN_GRACE:?} after the signal; stopping anyway"),
    }
    if let (Some(holding), Some(elector)) = (holding, &elector) {
        holding.abort();
        let _ = holding.await;
        metrics.leader.set(0);
        // Hand over at once instead of letting the lease expire.
        if let Err(e) = elector.release().await {
            tracing::warn!(error = %e, "releasing the lease failed; it expires by itself");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The watch of the trains themselves: all of them, or those the selector
/// picks.
fn trains_config(selector: Option<&str>) -> watcher::Config {
    match selector {
        Some(s) => watcher::Config::default().labels(s),
        None => watcher::Config::default(),
    }
}

/// The other trains owning workloads `train` targets (by the watch caches).
fn owners_reached(
    train: &PackitDeployment,
    workloads: &WorkloadCache,
) -> Vec<ObjectRef<PackitDeployment>> {
    let Some(own) = train.namespace() else {
        return Vec::new();
    };
    let me = format!("{own}/{}", train.name_any());
    let mut owners = Vec::new();
    for env in &train.spec.environments {
        let ns = crate::controller::targets::namespace_of(&own, env);
        for t in &env.targets {
            let owner = match t.kind {
                WorkloadKind::Deployment => workloads
                    .deployments
                    .get(&ObjectRef::new(&t.name).within(&ns))
                    .map(|d| d.annotations().get(labels::OWNER).cloned()),
                WorkloadKind::StatefulSet => workloads
                    .statefulsets
                    .get(&ObjectRef::new(&t.name).within(&ns))
                    .map(|s| s.annotations().get(labels::OWNER).cloned()),
            };
            let owner = owner.flatten().filter(|o| *o != me);
            if let Some((namespace, name)) = owner.as_deref().and_then(|o| o.split_once('/')) {
                let r = ObjectRef::new(name).within(namespace);
                if !owners.contains(&r) {
                    owners.push(r);
                }
            }
        }
    }
    owners
}

/// What of a namespace may change whether trains may deploy there.
fn opt_in(ns: &PartialObjectMeta<Namespace>) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    ns.annotations().get(labels::ALLOW_FROM).hash(&mut hasher);
    Some(hasher.finish())
}

/// The trains with an environment in namespace `ns` (not their own).
fn deploying_into(trains: &Store<PackitDeployment>, ns: &str) -> Vec<ObjectRef<PackitDeployment>> {
    trains
        .state()
        .iter()
        .filter(|t| {
            let own = t.namespace().unwrap_or_default();
            own != ns
                && t.spec.environments.iter().any(|e| {
                    e.cluster.is_none() && crate::controller::targets::namespace_of(&own, e) == ns
                })
        })
        .map(|t| ObjectRef::from_obj(t.as_ref()))
        .collect()
}

/// Maps a labelled workload, pod or Job to its PackitDeployment.
fn owner_of<K: Resource>(obj: K) -> Option<ObjectRef<PackitDeployment>> {
    let labels = obj.meta().labels.as_ref()?;
    let name = labels.get(labels::DEPLOYMENT)?;
    let namespace = labels
        .get(labels::DEPLOYMENT_NAMESPACE)
        .cloned()
        .or_else(|| obj.meta().namespace.clone())?;
    Some(ObjectRef::new(name).within(&namespace))
}

fn error_policy(obj: Arc<PackitDeployment>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(deployment = %ObjectRef::from_obj(obj.as_ref()), %error, "will retry");
    Action::requeue(Duration::from_secs(5))
}
