//! The peer of the controller benchmark: Argo Rollouts' controller, built
//! from its Go module by `hack/build-argo-rollouts.sh`, run as a local
//! process on the test cluster with as many Rollouts as the fleet has
//! workloads, and measured the same way (memory and CPU from `/proc`, API
//! requests from its own `controller_clientset_k8s_request_total`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::fleet::train_name;
use super::measure::{ProcStat, Scrape, requests};
use super::operator::http_get;
use super::{TestNs, cluster, eventually, kubectl, push_image};

const REQUESTS: &str = "controller_clientset_k8s_request_total";
/// Rollouts per train: the fleet's six workloads.
const PER_TRAIN: usize = 6;

/// Where `hack/bench-controller.sh` found the built controller, or why not.
pub fn built() -> Result<PathBuf, String> {
    match std::env::var("PACKIT_ARGO_ROLLOUTS") {
        Ok(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => Err(std::env::var("PACKIT_ARGO_ROLLOUTS_MISSING")
            .unwrap_or_else(|_| "PACKIT_ARGO_ROLLOUTS is not set".into())),
    }
}

pub struct ArgoFleet {
    pub ns: TestNs,
    pub size: usize,
    dir: PathBuf,
    child: Child,
    metrics_port: u16,
    rollouts: Api<DynamicObject>,
}

/// Argo Rollouts' figures, as far as they compare.
#[derive(Debug, Default)]
pub struct ArgoFigures {
    pub rss_at_rest: u64,
    pub peak: u64,
    pub cpu_seconds_per_minute: f64,
    pub requests_at_rest: f64,
    pub writes_at_rest: f64,
    /// From the image change until every Rollout is Healthy again.
    pub wave: Duration,
    pub wave_requests: f64,
    pub resync: Duration,
    pub resync_requests: f64,
}

impl ArgoFleet {
    /// Applies the CRDs, creates `size` trains' worth of Rollouts and
    /// starts the controller on their namespace.
    pub async fn new(dir: PathBuf, size: usize) -> Result<Self> {
        let crds = dir.join("crds");
        kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            crds.to_str().context("a UTF-8 path")?,
        ])?;
        // Right after the apply the CRD may have no conditions yet, which
        // `kubectl wait` takes for an error.
        eventually(
            "the Rollout CRD established",
            Duration::from_secs(60),
            || async {
                Ok(kubectl(&[
                    "wait",
                    "--for=condition=Established",
                    "crd/rollouts.argoproj.io",
                    "--timeout=10s",
                ])
                .ok())
            },
        )
        .await?;
        let ns = TestNs::new("argo").await?;
        let image = push_image(ns.registry(), &format!("{}/app", ns.name), "v1", "v1").await?;
        let resource =
            ApiResource::from_gvk(&GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"));
        let rollouts: Api<DynamicObject> =
            Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
        let names: Vec<String> = (0..size)
            .flat_map(|i| {
                let t = train_name(i);
                ["stg", "prod"].into_iter().flat_map(move |env| {
                    let t = t.clone();
                    ["a", "b", "c"].map(move |p| format!("{t}-{env}-{p}"))
                })
            })
            .collect();
        stream::iter(names)
            .map(|name| {
                let (rollouts, image) = (rollouts.clone(), image.by_digest());
                async move {
                    let rollout: DynamicObject = serde_json::from_value(json!({
                        "apiVersion": "argoproj.io/v1alpha1",
                        "kind": "Rollout",
                        "metadata": { "name": name },
                        "spec": {
                            "replicas": 1,
                            "selector": { "matchLabels": { "app": name } },
                            "template": {
                                "metadata": { "labels": { "app": name } },
                                "spec": { "containers": [{ "name": "app", "image": image }] }
                            },
                            "strategy": { "canary": { "steps": [
                                { "setWeight": 50 }, { "pause": { "duration": "5s" } }
                            ] } }
                        }
                    }))?;
                    rollouts.create(&Default::default(), &rollout).await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(16)
            .try_collect::<()>()
            .await
            .context("creating the Rollouts")?;
        let metrics_port = free_port()?;
        let child = spawn(&dir, &ns.name, metrics_port)?;
        let fleet = Self {
            ns,
            size,
            dir,
            child,
            metrics_port,
            rollouts,
        };
        fleet.wait_healthy(None).await?;
        Ok(fleet)
    }

    /// The whole comparison: rest, a wave of new images, a restart.
    pub async fn measure(&mut self) -> Result<ArgoFigures> {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let pid = self.child.id();
        let (before, was) = (self.scrape().await?, ProcStat::read(pid)?);
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(60)).await;
        let (after, now) = (self.scrape().await?, ProcStat::read(pid)?);
        let elapsed = start.elapsed().as_secs_f64();
        let (requests_at_rest, writes_at_rest) = requests(&before, &after, REQUESTS);
        let mut figures = ArgoFigures {
            rss_at_rest: now.rss,
            cpu_seconds_per_minute: (now.cpu_seconds - was.cpu_seconds) * 60.0 / elapsed,
            requests_at_rest,
            writes_at_rest,
            ..Default::default()
        };

        let image = push_image(
            self.ns.registry(),
            &format!("{}/app", self.ns.name),
            "v2",
            "v2",
        )
        .await?;
        let before = self.scrape().await?;
        let start = Instant::now();
        let names: Vec<String> = self
            .rollouts
            .list_metadata(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|r| r.name_any())
            .collect();
        let patch = json!({ "spec": { "template": { "spec": {
            "containers": [{ "name": "app", "image": image.by_digest() }]
        } } } });
        stream::iter(names)
            .map(|name| {
                let (rollouts, patch) = (self.rollouts.clone(), patch.clone());
                async move {
                    rollouts
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await?;
        self.wait_healthy(Some(&image.by_digest())).await?;
        figures.wave = start.elapsed();
        figures.wave_requests = requests(&before, &self.scrape().await?, REQUESTS).0;
        figures.peak = ProcStat::read(pid)?.peak;

        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.dir, &self.ns.name, self.metrics_port)?;
        let start = Instant::now();
        let want = self.size * PER_TRAIN;
        loop {
            if let Ok(scrape) = self.scrape().await {
                let seen = scrape.samples("rollout_reconcile_count").count();
                if seen >= want {
                    figures.resync = start.elapsed();
                    figures.resync_requests = scrape.total(REQUESTS);
                    break;
                }
            }
            ensure!(
                start.elapsed() < Duration::from_secs(600),
                "Argo Rollouts did not reconcile every Rollout after its restart"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(figures)
    }

    async fn scrape(&self) -> Result<Scrape> {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        let body = http_get(&url).await?;
        Ok(Scrape::parse(&body))
    }

    /// Waits until every Rollout is Healthy (on `image`, when given).
    async fn wait_healthy(&self, image: Option<&str>) -> Result<()> {
        let want = self.size * PER_TRAIN;
        let timeout = Duration::from_secs(300 + self.size as u64);
        let start = Instant::now();
        loop {
            let list = self.rollouts.list(&ListParams::default()).await?;
            let healthy = list
                .items
                .iter()
                .filter(|r| {
                    let status = &r.data["status"];
                    let on_image = image.is_none_or(|i| {
                        r.data["spec"]["template"]["spec"]["containers"][0]["image"] == i
                    });
                    status["phase"] == "Healthy"
                        && on_image
                        && status["observedGeneration"].as_str().map(str::to_owned)
                            == r.metadata.generation.map(|g| g.to_string())
                        && status["stableRS"] == status["currentPodHash"]
                })
                .count();
            if healthy >= want {
                return Ok(());
            }
            ensure!(
                start.elapsed() < timeout,
                "{healthy} of {want} Rollouts Healthy after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Stops the controller; the namespace goes with the fixture.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ArgoFleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn spawn(dir: &std::path::Path, namespace: &str, metrics_port: u16) -> Result<Child> {
    let log = std::fs::File::create(std::env::temp_dir().join(format!("argo-{namespace}.log")))?;
    Command::new(dir.join("rollouts-controller"))
        .args(["--kubeconfig"])
        .arg(&cluster().kubeconfig)
        .args([
            "--leader-elect=false",
            "--namespaced",
            "--namespace",
            namespace,
        ])
        .args(["--metricsPort", &metrics_port.to_string()])
        .args(["--healthzPort", &free_port()?.to_string()])
        .args(["--loglevel", "warn"])
        .env("POD_NAMESPACE", namespace)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting rollouts-controller")
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
