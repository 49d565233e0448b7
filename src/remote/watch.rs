//! The watches of one remote cluster: labelled workloads (kept in stores
//! for the claims), their pods (kept in a cache for the health checks) and
//! the smoke-test Jobs, each event sent as the train to reconcile. Only
//! objects labelled for trains of the Secret's namespace are watched: no
//! other tenant's train is woken.

use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::batch::v1::Job;
use kube::Client;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::task::AbortHandle;

use super::train_of;
use crate::api::PackitDeployment;
use crate::client::{PodCache, metadata_watch, pod_cache};
use crate::deploy::{WorkloadCache, workload_cache};
use crate::labels;

type Wake = UnboundedSender<ObjectRef<PackitDeployment>>;

/// The stores the watches keep, and the watches.
pub struct Watches {
    pub workloads: WorkloadCache,
    pub pods: PodCache,
    pub tasks: Vec<AbortHandle>,
}

pub fn start(client: &Client, namespace: &str, cluster: &str, wake: &Wake) -> Watches {
    let config = || {
        watcher::Config::default().labels(&format!(
            "{},{}={namespace}",
            labels::DEPLOYMENT,
            labels::DEPLOYMENT_NAMESPACE
        ))
    };
    let (workloads, deployment_events, statefulset_events) = workload_cache(client, config());
    let (pods, pod_events) = pod_cache(client, config());
    let tasks = vec![
        forward(cluster, wake, deployment_events),
        forward(cluster, wake, statefulset_events),
        forward(cluster, wake, pod_events),
        // Jobs only wake the train.
        forward(
            cluster,
            wake,
            metadata_watch::<Job>(client, config()).touched_objects(),
        ),
    ];
    Watches {
        workloads,
        pods,
        tasks,
    }
}

/// Sends each touched object's train to `wake` until aborted.
fn forward<K: kube::Resource + Send + 'static>(
    cluster: &str,
    wake: &Wake,
    events: impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) -> AbortHandle {
    let (cluster, wake) = (cluster.to_owned(), wake.clone());
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(obj) => {
                    if let Some(train) = train_of(&obj) {
                        // Closed only when the controller has stopped.
                        let _ = wake.unbounded_send(train);
                    }
                }
                // The backoff retries; the trains say the cluster is
                // unreachable when they next try it.
                Err(e) => tracing::debug!(%cluster, error = %e, "remote watch failed"),
            }
        }
    })
    .abort_handle()
}
