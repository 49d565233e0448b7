//! The operator's Kubernetes client: kube's default stack with one more
//! layer, which counts every request by verb and resource in
//! `packit_api_requests_total`, so the cost of a reconcile can be seen;
//! and the watches that keep its caches.

mod index;
mod pods;

pub use index::Index;
pub use pods::{CachedPod, CachedPodStatus, ContainerRestarts, PodCache, pod_cache};

use std::net::SocketAddr;
use std::sync::Arc;

use futures::Stream;
use http::{Method, Request};
use kube::api::PartialObjectMeta;
use kube::client::{Body, ClientBuilder};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config, Resource};
use tower::util::MapRequestLayer;

use crate::metrics::{ApiRequestLabels, Metrics};

/// A client from the environment (in-cluster or `KUBECONFIG`) that counts
/// its requests in `metrics`.
pub async fn counting(metrics: Arc<Metrics>) -> Result<Client, kube::Error> {
    let config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    counting_from(config, metrics)
}

/// A client of `config` (a remote cluster's) counting its requests in
/// `metrics` with the operator's own.
pub fn counting_from(config: Config, metrics: Arc<Metrics>) -> Result<Client, kube::Error> {
    let count = MapRequestLayer::new(move |req: Request<Body>| {
        let (verb, resource) = classify(req.method(), req.uri());
        metrics
            .api_requests
            .get_or_create(&ApiRequestLabels { verb, resource })
            .inc();
        req
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&count).build())
}

/// A metadata-only watch of every `K` (with backoff), without the managed
/// fields: what the stores of labelled workloads and the wake-ups by pods
/// and Jobs need, at a small part of the objects' size.
pub fn metadata_watch<K>(
    client: &Client,
    config: watcher::Config,
) -> impl Stream<Item = Result<watcher::Event<PartialObjectMeta<K>>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    watcher(Api::<PartialObjectMeta<K>>::all(client.clone()), config)
        .default_backoff()
        .modify(|m| m.metadata.managed_fields = None)
}

/// Whether a store has listed once, for any number of waiters. kube's
/// `Store::wait_until_ready` wakes only the last of several concurrent
/// waiters (its one-shot channel keeps a single waker): reconciles started
/// together at start-up would wait forever. So one task waits on the store
/// and reconciles wait here.
#[derive(Clone)]
pub struct Readiness(tokio::sync::watch::Receiver<bool>);

impl Readiness {
    pub fn of<K>(store: Store<K>) -> Self
    where
        K: kube::Resource + Clone + Send + Sync + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
    {
        let (ready, readiness) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if store.wait_until_ready().await.is_ok() {
                let _ = ready.send(true);
            }
        });
        Self(readiness)
    }

    /// Whether the store has listed, without waiting.
    pub fn is_ready(&self) -> bool {
        *self.0.borrow()
    }

    /// Once the store has listed; an error when its watch was dropped
    /// before.
    pub async fn wait(&self) -> Result<(), tokio::sync::watch::error::RecvError> {
        self.0.clone().wait_for(|ready| *ready).await.map(|_| ())
    }
}

/// Where the API server listens as this process reaches it: the host of
/// the client's URL, resolved, and in a pod the service address Kubernetes
/// puts in its environment. Outgoing HTTP of tenants must never reach it.
pub async fn api_server_addresses() -> Vec<SocketAddr> {
    let mut endpoints: Vec<(String, u16)> = Vec::new();
    if let Ok(config) = Config::infer().await {
        let url = &config.cluster_url;
        let default_port = if url.scheme_str() == Some("http") {
            80
        } else {
            443
        };
        if let Some(host) = url.host() {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            endpoints.push((host.to_owned(), url.port_u16().unwrap_or(default_port)));
        }
    }
    if let Ok(host) = std::env::var("KUBERNETES_SERVICE_HOST") {
        let port = std::env::var("KUBERNETES_SERVICE_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(443);
        endpoints.push((host, port));
    }
    let mut addresses = Vec::new();
    for (host, port) in endpoints {
        match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(found) => addresses.extend(found),
            Err(e) => tracing::warn!(%host, error = %e, "cannot resolve the API server's address"),
        }
    }
    addresses.sort();
    addresses.dedup();
    addresses
}

/// The verb and resource of a request, as the API server's audit log names
/// them: `GET .../packitreleases?watch=true` is a `watch`, a GET of a
/// collection a `list`.
pub fn classify(method: &Method, uri: &http::Uri) -> (&'static str, String) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... or /apis/<group>/<version>/...
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or_default();
    // Namespaced: namespaces/<ns>/<resource>...; the namespace object
    // itself is namespaces/<name>.
    let rest = match rest {
        ["namespaces", _, resource, tail @ ..] => {
            let mut r = vec![*resource];
            r.extend(tail);
            r
        }
        other => other.to_vec(),
    };
    let (resource, named, sub) = match rest.as_slice() {
        [] => ("", false, None),
        [resource] => (*resource, false, None),
        [resource, _name] => (*resource, true, None),
        [resource, _name, sub, ..] => (*resource, true, Some(*sub)),
    };
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *method {
        Method::GET if watch => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PATCH => "patch",
        Method::PUT => "update",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    let resource = match sub {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_owned(),
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(method: Method, uri: &str) -> (&'static str, String) {
        classify(&method, &uri.parse().unwrap())
    }

    #[test]
    fn names_verbs_and_resources_as_the_audit_log_does() {
        let rel = "/apis/packit.dev/v1alpha1/namespaces/team/packitreleases";
        assert_eq!(c(Method::GET, rel), ("list", "packitreleases".into()));
        assert_eq!(
            c(
                Method::GET,
                &format!("{rel}?labelSelector=a%3Db&watch=true&timeoutSeconds=290")
            ),
            ("watch", "packitreleases".into())
        );
        assert_eq!(
            c(Method::GET, &format!("{rel}/r1")),
            ("get", "packitreleases".into())
        );
        assert_eq!(
            c(Method::PATCH, &format!("{rel}/r1/status?fieldManager=x")),
            ("patch", "packitreleases/status".into())
        );
        assert_eq!(c(Method::POST, rel), ("create", "packitreleases".into()));
        assert_eq!(
            c(Method::DELETE, &format!("{rel}/r1")),
            ("delete", "packitreleases".into())
        );
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/team"),
            ("get", "namespaces".into())
        );
        assert_eq!(
            c(Method::GET, "/api/v1/pods?watch=1"),
            ("watch", "pods".into())
        );
        assert_eq!(
            c(
                Method::PATCH,
                "/apis/apps/v1/namespaces/stg/deployments/web"
            ),
            ("patch", "deployments".into())
        );
        assert_eq!(
            c(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases/packit-operator"
            ),
            ("update", "leases".into())
        );
        assert_eq!(c(Method::GET, "/version"), ("list", "".into()));
    }
}
