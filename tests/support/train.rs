//! A release train fixture for end-to-end tests: a namespace with two git
//! repositories, staging and production workloads (a Deployment and a
//! StatefulSet each), a PackitDeployment, and the operator. The fixture
//! plays the builder and CI.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use chrono::Utc;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use packit_operator::api::{PackitDeployment, PackitRelease};
use packit_operator::plan::ReleasePhase;
use serde_json::{Value, json};

use super::operator::Operator;
use super::workloads::{crash_loop_pods, deployment, statefulset};
use super::{GitRepo, SimMode, TestNs, apply_crds, eventually, push_image};

pub const TIMEOUT: Duration = Duration::from_secs(120);
pub const PKD: &str = "train";

/// A namespace with two repositories, a staging and a production pair of
/// workloads (a Deployment and a StatefulSet each), and the operator.
pub struct Train {
    pub ns: TestNs,
    pub op: Operator,
    pub service: GitRepo,
    pub worker: GitRepo,
    pub registry: String,
}

impl Train {
    pub async fn new(prefix: &str, customize: impl FnOnce(&mut Value)) -> Result<Self> {
        Self::with_operator(prefix, customize, |ns| Operator::start(&ns.name)).await
    }

    /// Like [`Train::new`], with the operator started by `start` once the
    /// namespace and its objects exist (e.g. under another identity).
    pub async fn with_operator(
        prefix: &str,
        customize: impl FnOnce(&mut Value),
        start: impl FnOnce(&TestNs) -> Result<Operator>,
    ) -> Result<Self> {
        apply_crds()?;
        let ns = TestNs::new(prefix).await?;
        let registry = ns.registry().to_owned();
        let service = GitRepo::new("stable")?;
        let worker = GitRepo::new("stable")?;
        let base = push_image(&registry, &format!("{}/base", ns.name), "v0", "base").await?;
        for env in ["stg", "prod"] {
            let mut d = deployment(
                &format!("service-{env}"),
                &base.by_digest(),
                2,
                SimMode::Ready,
            )?;
            if let Some(spec) = d.spec.as_mut() {
                spec.progress_deadline_seconds = Some(30);
            }
            ns.api::<Deployment>()
                .create(&PostParams::default(), &d)
                .await?;
            let s = statefulset(
                &format!("worker-{env}"),
                &base.by_digest(),
                1,
                SimMode::Ready,
            )?;
            ns.api::<StatefulSet>()
                .create(&PostParams::default(), &s)
                .await?;
        }
        let mut spec = json!({
            "components": [
                {
                    "name": "service",
                    "source": { "url": service.url() },
                    "image": format!("{registry}/{}/service", ns.name),
                    "build": {
                        "strategy": "Job",
                        "timeout": "120s",
                        "job": { "template": {
                            "metadata": { "labels": { "sim.packit.dev/mode": "builder" } },
                            "spec": { "containers": [{ "name": "builder", "image": base.by_digest() }] }
                        } }
                    }
                },
                {
                    "name": "worker",
                    "source": { "url": worker.url() },
                    "image": format!("{registry}/{}/worker", ns.name),
                    "build": { "strategy": "External", "timeout": "120s" }
                }
            ],
            "schedule": {
                "timeZone": "UTC",
                "production": { "start": "*/15 * * * * *", "duration": "10s" }
            },
            "environments": [
                {
                    "name": "staging",
                    "targets": [
                        { "kind": "Deployment", "name": "service-stg", "container": "app", "component": "service" },
                        { "kind": "StatefulSet", "name": "worker-stg", "container": "app", "component": "worker" }
                    ],
                    "health": { "rolloutTimeout": "60s", "soak": "3s", "maxRestarts": 1 }
                },
                {
                    "name": "production",
                    "targets": [
                        { "kind": "Deployment", "name": "service-prod", "container": "app", "component": "service" },
                        { "kind": "StatefulSet", "name": "worker-prod", "container": "app", "component": "worker" }
                    ],
                    "health": { "rolloutTimeout": "60s", "soak": "15s", "maxRestarts": 1 }
                }
            ]
        });
        customize(&mut spec);
        let pkd: PackitDeployment = serde_json::from_value(json!({
            "apiVersion": "packit.dev/v1alpha1",
            "kind": "PackitDeployment",
            "metadata": { "name": PKD },
            "spec": spec,
        }))?;
        ns.api::<PackitDeployment>()
            .create(&PostParams::default(), &pkd)
            .await?;
        let op = start(&ns)?;
        Ok(Self {
            ns,
            op,
            service,
            worker,
            registry,
        })
    }

    pub async fn annotate(&self, key: &str, value: &str) -> Result<()> {
        let patch = json!({ "metadata": { "annotations": { key: value } } });
        self.ns
            .api::<PackitDeployment>()
            .patch(PKD, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Asks for a release now, with new commits in both repositories.
    pub async fn release_now(&self, change: &str) -> Result<()> {
        self.service
            .commit(&format!("service: {change}"), &[("service.txt", change)])?;
        self.worker
            .commit(&format!("worker: {change}"), &[("worker.txt", change)])?;
        self.annotate("packit.dev/release-requested-at", &Utc::now().to_rfc3339())
            .await
    }

    pub async fn pkd(&self) -> Result<PackitDeployment> {
        Ok(self.ns.api::<PackitDeployment>().get(PKD).await?)
    }

    /// The release in flight, once there is one and its PackitRelease
    /// exists (the train's state names it a moment before).
    pub async fn in_flight(&self) -> Result<String> {
        eventually("a release in flight", TIMEOUT, || async {
            let Some(name) = self
                .pkd()
                .await?
                .status
                .and_then(|s| s.train.in_flight)
                .map(|f| f.release)
            else {
                return Ok(None);
            };
            let api = self.ns.api::<PackitRelease>();
            Ok(api.get_opt(&name).await?.map(|_| name))
        })
        .await
    }

    pub async fn release(&self, name: &str) -> Result<PackitRelease> {
        Ok(self.ns.api::<PackitRelease>().get(name).await?)
    }

    pub async fn wait_phase(&self, name: &str, phase: ReleasePhase) -> Result<PackitRelease> {
        eventually(&format!("{name} to be {phase:?}"), TIMEOUT, || async {
            let r = self.release(name).await?;
            let now = r.status.as_ref().and_then(|s| s.phase);
            if now == Some(phase) {
                return Ok(Some(r));
            }
            if now.is_some_and(|p| p.is_final()) {
                bail!(
                    "{name} ended {now:?}: {:?}",
                    r.status.and_then(|s| s.message)
                );
            }
            Ok(None)
        })
        .await
    }

    /// Plays the builder of the service image and the CI of the worker
    /// image for `release`; returns the images by digest.
    pub async fn build(&self, release: &str) -> Result<BTreeMap<String, String>> {
        let rel = eventually("the release object", TIMEOUT, || async {
            Ok(self.ns.api::<PackitRelease>().get_opt(release).await?)
        })
        .await?;
        let commit = |c: &str| {
            rel.spec
                .components
                .iter()
                .find(|x| x.name == c)
                .map(|x| x.source.commit.clone())
                .context("component in release")
        };
        let (service_commit, worker_commit) = (commit("service")?, commit("worker")?);
        println!("SIMULATED CI: pushing the worker image for {worker_commit}");
        let worker = push_image(
            &self.registry,
            &format!("{}/worker", self.ns.name),
            &worker_commit,
            &worker_commit,
        )
        .await?;
        let pod = eventually("the builder pod", TIMEOUT, || async {
            let pods = self
                .ns
                .api::<Pod>()
                .list(&ListParams::default().labels(&format!("packit.dev/release={release}")))
                .await?;
            Ok(pods.items.into_iter().next())
        })
        .await?;
        let env: BTreeMap<String, String> = pod.spec.as_ref().context("pod spec")?.containers[0]
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        ensure!(
            env.get("PACKIT_COMMIT") == Some(&service_commit),
            "builder env: {env:?}"
        );
        ensure!(
            env.get("PACKIT_RELEASE").map(String::as_str) == Some(release),
            "builder env: {env:?}"
        );
        println!(
            "SIMULATED BUILDER: pushing {} for {service_commit}",
            env["PACKIT_IMAGE"]
        );
        let tag = env["PACKIT_IMAGE"]
            .rsplit(':')
            .next()
            .context("a tag")?
            .to_owned();
        let service = push_image(
            &self.registry,
            &format!("{}/service", self.ns.name),
            &tag,
            &service_commit,
        )
        .await?;
        let patch = json!({ "metadata": { "annotations": { "sim.packit.dev/termination-message": service.digest } } });
        self.ns
            .api::<Pod>()
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok([
            ("service".to_owned(), service.by_digest()),
            ("worker".to_owned(), worker.by_digest()),
        ]
        .into())
    }

    pub async fn image(&self, kind: &str, name: &str) -> Result<String> {
        let template = match kind {
            "Deployment" => {
                self.ns
                    .api::<Deployment>()
                    .get(name)
                    .await?
                    .spec
                    .context("spec")?
                    .template
            }
            _ => {
                self.ns
                    .api::<StatefulSet>()
                    .get(name)
                    .await?
                    .spec
                    .context("spec")?
                    .template
            }
        };
        template.spec.context("pod spec")?.containers[0]
            .image
            .clone()
            .context("an image")
    }

    pub async fn images(&self, env: &str) -> Result<(String, String)> {
        Ok((
            self.image("Deployment", &format!("service-{env}")).await?,
            self.image("StatefulSet", &format!("worker-{env}")).await?,
        ))
    }

    pub async fn generation(&self, kind: &str, name: &str) -> Result<i64> {
        let meta = match kind {
            "Deployment" => self.ns.api::<Deployment>().get(name).await?.meta().clone(),
            _ => self.ns.api::<StatefulSet>().get(name).await?.meta().clone(),
        };
        meta.generation.context("a generation")
    }

    /// Generations of the four workloads; each spec change bumps one.
    pub async fn generations(&self) -> Result<Vec<i64>> {
        let mut g = Vec::new();
        for (kind, name) in [
            ("Deployment", "service-stg"),
            ("StatefulSet", "worker-stg"),
            ("Deployment", "service-prod"),
            ("StatefulSet", "worker-prod"),
        ] {
            g.push(self.generation(kind, name).await?);
        }
        Ok(g)
    }

    /// Runs one release through to Released; returns its name and images.
    pub async fn full_release(&self, change: &str) -> Result<(String, BTreeMap<String, String>)> {
        self.release_now(change).await?;
        let name = self.in_flight().await?;
        let images = self.build(&name).await?;
        self.wait_phase(&name, ReleasePhase::Released).await?;
        Ok((name, images))
    }

    pub async fn events(&self) -> Result<Vec<(String, String)>> {
        let events = self.ns.api::<Event>().list(&ListParams::default()).await?;
        Ok(events
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(PKD))
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect())
    }

    /// Fails unless the deployment gets an Event with `reason` whose message
    /// contains every one of `parts`. Waits a little: the operator writes
    /// Events after it acted, so the change a test saw may come first.
    pub async fn assert_event(&self, reason: &str, parts: &[&str]) -> Result<()> {
        let what = format!("a {reason} Event with {parts:?}");
        eventually(&what, Duration::from_secs(20), || async {
            let events = self.events().await?;
            let found = events
                .iter()
                .any(|(r, m)| r == reason && parts.iter().all(|p| m.contains(p)));
            ensure!(found, "Events so far: {events:?}");
            Ok(Some(()))
        })
        .await
    }

    /// Makes the running pods of a workload crash-loop, as a bad release
    /// would after it rolled out.
    pub async fn break_pods(&self, app: &str) -> Result<()> {
        Ok(crash_loop_pods(&self.ns.api::<Pod>(), app, None).await?)
    }
}
