//! Environments on other clusters. One client per kubeconfig Secret
//! (a namespace's Secret is that namespace's alone), built on first use
//! and rebuilt when the Secret changes; with it, watches of the workloads,
//! pods and Jobs the operator labelled there, whose events wake the trains
//! as the local watches do, and caches of the workloads for the claims.

pub mod kubeconfig;
mod reach;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::Secret;
use kube::config::KubeConfigOptions;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Config};

use crate::api::PackitDeployment;
use crate::api::deployment::ClusterRef;
use crate::client::PodCache;
use crate::deploy::WorkloadCache;
use crate::http::AddressPolicy;
use crate::metrics::Metrics;
pub use reach::{Reach, is_unreachable};

/// Why a cluster's client cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The Secret is missing, lacks the key, or holds a kubeconfig the
    /// operator refuses: the spec cannot be acted on.
    #[error("{0}")]
    Invalid(String),
    /// The server's address is one tenants may not reach.
    #[error("{0}")]
    Refused(String),
    /// Reading the Secret in the operator's own cluster failed.
    #[error("{0}")]
    Home(String),
}

/// A remote cluster as one namespace's Secret describes it.
pub struct Remote {
    /// The Secret's name, which names the cluster to people.
    pub name: String,
    pub client: Client,
    /// Labelled workloads there, kept by the watches.
    pub workloads: WorkloadCache,
    /// Labelled pods there, as the health checks read them.
    pub pods: PodCache,
    /// Whether the last requests got through.
    pub reach: Reach,
    /// The Secret's content this client was built from.
    version: String,
    watches: Vec<tokio::task::AbortHandle>,
}

impl Drop for Remote {
    fn drop(&mut self) {
        for w in &self.watches {
            w.abort();
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    secret: String,
    key: String,
}

/// Every remote cluster the trains use, by Secret.
pub struct Clusters {
    home: Client,
    policy: Arc<AddressPolicy>,
    metrics: Arc<Metrics>,
    /// Where the watches send the trains to reconcile.
    wake: UnboundedSender<ObjectRef<PackitDeployment>>,
    known: Mutex<HashMap<Key, Arc<Remote>>>,
}

impl Clusters {
    pub fn new(
        home: Client,
        policy: Arc<AddressPolicy>,
        metrics: Arc<Metrics>,
        wake: UnboundedSender<ObjectRef<PackitDeployment>>,
    ) -> Clusters {
        Clusters {
            home,
            policy,
            metrics,
            wake,
            known: Mutex::default(),
        }
    }

    /// The cluster `cluster` names for trains of `namespace`: the one
    /// built before while its Secret is unchanged, else a new one.
    pub async fn get(
        &self,
        namespace: &str,
        cluster: &ClusterRef,
    ) -> Result<Arc<Remote>, ClusterError> {
        let r = &cluster.kubeconfig_secret_ref;
        let key = Key {
            namespace: namespace.to_owned(),
            secret: r.name.clone(),
            key: r.key.clone(),
        };
        let text = match self.kubeconfig(&key).await {
            Ok(text) => text,
            Err(e) => {
                if matches!(e, ClusterError::Invalid(_)) {
                    self.lock().remove(&key);
                }
                return Err(e);
            }
        };
        let version = fingerprint(&text);
        if let Some(known) = self.lock().get(&key).filter(|k| k.version == version) {
            return Ok(known.clone());
        }
        let remote = Arc::new(self.connect(&key, &text, version).await?);
        tracing::info!(namespace, cluster = %key.secret, "connected to a remote cluster");
        self.lock().insert(key, remote.clone());
        Ok(remote)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Remote>>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn kubeconfig(&self, key: &Key) -> Result<String, ClusterError> {
        let at = format!(
            "Secret {:?} (key {:?}) in namespace {}",
            key.secret, key.key, key.namespace
        );
        let secrets: Api<Secret> = Api::namespaced(self.home.clone(), &key.namespace);
        let secret = secrets
            .get_opt(&key.secret)
            .await
            .map_err(|e| ClusterError::Home(format!("reading {at}: {e}")))?
            .ok_or_else(|| ClusterError::Invalid(format!("{at} does not exist")))?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&key.key))
            .ok_or_else(|| ClusterError::Invalid(format!("{at}: the key is missing")))?;
        String::from_utf8(bytes.0.clone())
            .map_err(|_| ClusterError::Invalid(format!("{at}: the kubeconfig is not UTF-8")))
    }

    async fn connect(
        &self,
        key: &Key,
        text: &str,
        version: String,
    ) -> Result<Remote, ClusterError> {
        let at = format!(
            "Secret {:?} (key {:?}) in namespace {}",
            key.secret, key.key, key.namespace
        );
        let checked =
            kubeconfig::check(text).map_err(|why| ClusterError::Invalid(format!("{at}: {why}")))?;
        self.check_address(&checked.host, checked.port).await?;
        let config =
            Config::from_custom_kubeconfig(checked.kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| ClusterError::Invalid(format!("{at}: {e}")))?;
        let client = crate::client::counting_from(config, self.metrics.clone())
            .map_err(|e| ClusterError::Invalid(format!("{at}: {e}")))?;
        let watches = watch::start(&client, &key.namespace, &key.secret, &self.wake);
        Ok(Remote {
            name: key.secret.clone(),
            client,
            workloads: watches.workloads,
            pods: watches.pods,
            reach: Reach::default(),
            version,
            watches: watches.tasks,
        })
    }

    /// The server's addresses must be ones tenants may reach (not the
    /// operator's own API server, loopback or link-local unless opened).
    /// A name that does not resolve now is let through: the client will
    /// say the cluster is unreachable.
    async fn check_address(&self, host: &str, port: u16) -> Result<(), ClusterError> {
        let Ok(found) = tokio::net::lookup_host((host, port)).await else {
            return Ok(());
        };
        for addr in found {
            self.policy
                .check_socket(addr)
                .map_err(|refused| ClusterError::Refused(format!("cluster server {refused}")))?;
        }
        Ok(())
    }
}

/// A cheap fingerprint of the Secret's kubeconfig: the client is rebuilt
/// when it changes (a rotated token), not on every read.
fn fingerprint(text: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The name of the remote cluster an environment is on (its Secret's); none
/// for the operator's own.
pub fn cluster_name(env: &crate::api::deployment::Environment) -> Option<&str> {
    env.cluster
        .as_ref()
        .map(|c| c.kubeconfig_secret_ref.name.as_str())
}

/// Whether `obj` belongs to a train; used by the watches.
fn train_of<K: kube::Resource>(obj: &K) -> Option<ObjectRef<PackitDeployment>> {
    let labels = obj.meta().labels.as_ref()?;
    let name = labels.get(crate::labels::DEPLOYMENT)?;
    let namespace = labels.get(crate::labels::DEPLOYMENT_NAMESPACE)?;
    Some(ObjectRef::new(name).within(namespace))
}
