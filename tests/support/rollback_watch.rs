//! The failing trains of a wave, watched from outside: their first
//! production Deployment is broken once it has rolled out the new image
//! (so during the soak), and the watch notes when its pods fail, when the
//! operator patches it back and when it is back.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::fleet::{BROKEN_ROLE, MAX_RESTARTS, ROLE};
use super::workloads::{crash_loop_pods, deployment_rolled_out};

/// One failing train's rollback, as watched from outside.
#[derive(Debug, Default, Clone)]
pub struct RollbackTimes {
    pub train: String,
    /// Its broken pod first reported more restarts than allowed.
    pub failing: Option<Instant>,
    /// Its Deployment's pod template named the previous image again.
    pub patched: Option<Instant>,
    /// Its Deployment had rolled out on the previous image.
    pub back: Option<Instant>,
}

impl RollbackTimes {
    pub fn to_patch(&self) -> Option<f64> {
        Some(
            self.patched?
                .checked_duration_since(self.failing?)?
                .as_secs_f64(),
        )
    }

    pub fn to_back(&self) -> Option<f64> {
        Some(
            self.back?
                .checked_duration_since(self.failing?)?
                .as_secs_f64(),
        )
    }
}

/// Breaks the failing trains' first production Deployment once it has
/// rolled out the new image (so during the soak), and notes when its pods
/// fail, when the operator patches it back and when it is back.
pub struct RollbackWatch {
    times: Arc<Mutex<HashMap<String, RollbackTimes>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RollbackWatch {
    /// Watches the Deployments and pods of `namespaces`.
    pub fn start(
        client: &Client,
        namespaces: HashSet<String>,
        trains: &[String],
        new: &str,
        old: &str,
    ) -> Self {
        let times: HashMap<String, RollbackTimes> = trains
            .iter()
            .map(|t| {
                (
                    format!("{t}-{BROKEN_ROLE}"),
                    RollbackTimes {
                        train: t.clone(),
                        ..Default::default()
                    },
                )
            })
            .collect();
        let times = Arc::new(Mutex::new(times));
        let config = watcher::Config::default().labels(&format!("{ROLE}={BROKEN_ROLE}"));
        let (deployments, pods) = (
            Api::<Deployment>::all(client.clone()),
            Api::<Pod>::all(client.clone()),
        );
        let (new, old) = (new.to_owned(), old.to_owned());
        let shared = times.clone();
        let client = client.clone();
        let task = tokio::spawn(async move {
            let mut broken = HashSet::new();
            let workloads = watcher(deployments, config.clone())
                .default_backoff()
                .applied_objects()
                .map(|d| d.map(|d| Either::Workload(Box::new(d))));
            let pod_events = watcher(pods.clone(), config)
                .default_backoff()
                .applied_objects()
                .map(|p| p.map(|p| Either::Pod(Box::new(p))));
            let mut events = Box::pin(futures::stream::select(workloads, pod_events));
            while let Some(event) = events.next().await {
                let Ok(event) = event else { continue };
                let now = Instant::now();
                let namespace = match &event {
                    Either::Workload(d) => d.namespace(),
                    Either::Pod(p) => p.namespace(),
                };
                if !namespace.is_some_and(|ns| namespaces.contains(&ns)) {
                    continue;
                }
                match event {
                    Either::Workload(d) => {
                        let name = d.name_any();
                        let image = template_image(&d);
                        let mut times = shared.lock().unwrap_or_else(|e| e.into_inner());
                        let Some(t) = times.get_mut(&name) else {
                            continue;
                        };
                        if image.as_deref() == Some(new.as_str())
                            && deployment_rolled_out(&d)
                            && !broken.contains(&name)
                        {
                            broken.insert(name.clone());
                            let pods = Api::<Pod>::namespaced(
                                client.clone(),
                                &d.namespace().unwrap_or_default(),
                            );
                            let new = new.clone();
                            tokio::spawn(async move {
                                let _ = crash_loop_pods(&pods, &name, Some(&new)).await;
                            });
                        } else if image.as_deref() == Some(old.as_str()) && broken.contains(&name) {
                            t.patched.get_or_insert(now);
                            if deployment_rolled_out(&d) {
                                t.back.get_or_insert(now);
                            }
                        }
                    }
                    Either::Pod(p) => {
                        let restarts: i32 = p
                            .status
                            .as_ref()
                            .and_then(|s| s.container_statuses.as_ref())
                            .map(|c| c.iter().map(|c| c.restart_count).sum())
                            .unwrap_or(0);
                        let app = p.labels().get("app").cloned().unwrap_or_default();
                        let mut times = shared.lock().unwrap_or_else(|e| e.into_inner());
                        if restarts > MAX_RESTARTS
                            && let Some(t) = times.get_mut(&app)
                        {
                            t.failing.get_or_insert(now);
                        }
                    }
                }
            }
        });
        Self { times, task }
    }

    /// Waits up to `grace` for every failing train to be back, then stops
    /// watching.
    pub async fn finish(self, grace: Duration) -> Vec<RollbackTimes> {
        let start = Instant::now();
        loop {
            let all_back = {
                let times = self.times.lock().unwrap_or_else(|e| e.into_inner());
                times.values().all(|t| t.back.is_some())
            };
            if all_back || start.elapsed() > grace {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.task.abort();
        let times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<RollbackTimes> = times.values().cloned().collect();
        out.sort_by(|a, b| a.train.cmp(&b.train));
        out
    }
}

enum Either {
    Workload(Box<Deployment>),
    Pod(Box<Pod>),
}

pub fn template_image(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
}
