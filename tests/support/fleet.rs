//! A fleet of release trains for the controller's scale test and benchmark:
//! `size` trains in one namespace, each with a staging and a production
//! environment of three workloads (two Deployments and a StatefulSet, in
//! namespaces of [`TRAINS_PER_NAMESPACE`] trains' workloads each), one
//! component built by CI (`External`) from one shared repository, and one
//! operator running them all. It drives whole waves (release requested,
//! staging verified, every production window opening in the same minute)
//! with chosen trains failing during the production soak, and reads what
//! the operator costs meanwhile.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use packit_operator::api::{PackitDeployment, PackitRelease};
use packit_operator::plan::ReleasePhase;
use serde_json::{Value, json};

use super::measure::{ProcStat, Scrape, growth, histogram_quantile, is_write, requests, sum};
use super::operator::Operator;
use super::rollback_watch::{RollbackTimes, RollbackWatch, template_image};
use super::workloads::{deployment, statefulset};
use super::{GitRepo, SimMode, TestNs, apply_crds, push_image};

/// Each Deployment's role in its train (`stg-a`, `prod-b`, ...).
pub const ROLE: &str = "bench.packit.dev/role";
/// The role broken on the trains chosen to fail.
pub const BROKEN_ROLE: &str = "prod-a";
/// A production window that does not open during a run (1 January,
/// midnight); each wave moves the windows to its own minute.
const PARKED: &str = "0 0 0 1 1 *";
/// Restarts a production pod may have before verification fails.
pub const MAX_RESTARTS: i32 = 1;
const REQUESTS: &str = "packit_api_requests_total";
/// How many requests to the API server the harness makes at once.
const PARALLEL: usize = 16;
/// The workloads of this many trains share a namespace. The controller
/// manager's Deployment controller lists every ReplicaSet and pod of a
/// Deployment's namespace for each sync: with the workloads of 1,000
/// trains in one namespace it fell behind by thousands of syncs and no
/// rollout completed, which measures the controller manager, not the
/// operator.
pub const TRAINS_PER_NAMESPACE: usize = 50;

pub struct Fleet {
    pub ns: TestNs,
    /// The workloads' namespaces, opted in for the trains of `ns`.
    pub workload_namespaces: Vec<TestNs>,
    pub op: Operator,
    pub size: usize,
    repo: GitRepo,
    registry: String,
    /// The images of the last wave, by digest (the base image before one).
    current: String,
}

/// What a wave did and cost.
#[derive(Debug, Default)]
pub struct Wave {
    /// From the window opening until every release of the wave ended.
    pub duration: Duration,
    pub released: usize,
    pub rolled_back: usize,
    /// Trains whose release ended otherwise, with the phase and message.
    pub other: Vec<String>,
    pub requests: f64,
    pub writes: f64,
    pub reconcile_p50: Option<f64>,
    pub reconcile_p99: Option<f64>,
    /// The operator's own `packit_rollback_seconds`: from the observation
    /// that failed verification to the rollback applied.
    pub verdict_to_patch_p50: Option<f64>,
    pub verdict_to_patch_p99: Option<f64>,
    /// As the harness's watches saw it, per failing train.
    pub rollbacks: Vec<RollbackTimes>,
}

/// What the operator cost while nothing happened.
#[derive(Debug)]
pub struct Rest {
    pub seconds: f64,
    pub rss: u64,
    pub cpu_seconds_per_minute: f64,
    /// Requests by (verb, resource).
    pub requests: BTreeMap<Vec<String>, f64>,
}

impl Rest {
    pub fn writes(&self) -> f64 {
        writes(&self.requests)
    }
}

/// A restart with every train present.
#[derive(Debug)]
pub struct Resync {
    /// Until every train was reconciled and its releases counted again.
    pub duration: Duration,
    /// Requests by (verb, resource).
    pub requests: BTreeMap<Vec<String>, f64>,
}

impl Resync {
    pub fn total(&self) -> f64 {
        sum(self.requests.values())
    }

    pub fn writes(&self) -> f64 {
        writes(&self.requests)
    }
}

impl Fleet {
    /// Creates the namespace, the workloads, the trains and their operator.
    pub async fn new(size: usize) -> Result<Self> {
        apply_crds()?;
        let ns = TestNs::new("fleet").await?;
        let registry = ns.registry().to_owned();
        let repo = GitRepo::new("stable")?;
        repo.commit("the first commit", &[("app.txt", "0")])?;
        let base = push_image(&registry, &format!("{}/base", ns.name), "v0", "base").await?;
        let current = base.by_digest();
        let fleet_ns = ns.name.clone();
        let mut workload_namespaces = Vec::new();
        for _ in 0..size.div_ceil(TRAINS_PER_NAMESPACE) {
            let workload_ns = TestNs::new("fleet-w").await?;
            workload_ns.kubectl(&[
                "annotate",
                "namespace",
                &workload_ns.name,
                &format!("packit.dev/allow-from={fleet_ns}"),
            ])?;
            workload_namespaces.push(workload_ns);
        }
        stream::iter((0..size).flat_map(|i| ["stg", "prod"].map(|env| (i, env))))
            .map(|(i, env)| {
                let train = train_name(i);
                let workload_ns = &workload_namespaces[i / TRAINS_PER_NAMESPACE];
                let (deployments, statefulsets, image) = (
                    workload_ns.api::<Deployment>(),
                    workload_ns.api::<StatefulSet>(),
                    current.clone(),
                );
                async move {
                    for part in ["a", "b"] {
                        let name = format!("{train}-{env}-{part}");
                        let mut d = deployment(&name, &image, 1, SimMode::Ready)?;
                        let role = format!("{env}-{part}");
                        d.labels_mut().insert(ROLE.into(), role.clone());
                        if let Some(t) = d.spec.as_mut().map(|s| &mut s.template) {
                            t.metadata
                                .get_or_insert_default()
                                .labels
                                .get_or_insert_default()
                                .insert(ROLE.into(), role);
                        }
                        deployments.create(&PostParams::default(), &d).await?;
                    }
                    let s = statefulset(&format!("{train}-{env}-c"), &image, 1, SimMode::Ready)?;
                    statefulsets.create(&PostParams::default(), &s).await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(PARALLEL)
            .try_collect::<()>()
            .await
            .context("creating the workloads")?;
        let fleet = Self {
            op: Operator::start_for_benchmark(&fleet_ns)?,
            ns,
            workload_namespaces,
            size,
            repo,
            registry,
            current,
        };
        let trains = fleet.ns.api::<PackitDeployment>();
        stream::iter(0..size)
            .map(|i| {
                let trains = trains.clone();
                let spec = fleet.spec(i);
                async move {
                    let pkd: PackitDeployment = serde_json::from_value(json!({
                        "apiVersion": "packit.dev/v1alpha1",
                        "kind": "PackitDeployment",
                        "metadata": { "name": train_name(i) },
                        "spec": spec,
                    }))?;
                    trains.create(&PostParams::default(), &pkd).await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(PARALLEL)
            .try_collect::<()>()
            .await
            .context("creating the trains")?;
        Ok(fleet)
    }

    /// The namespace of train `i`'s workloads.
    fn workload_ns(&self, i: usize) -> &TestNs {
        &self.workload_namespaces[i / TRAINS_PER_NAMESPACE]
    }

    fn spec(&self, i: usize) -> Value {
        let train = train_name(i);
        let namespace = &self.workload_ns(i).name;
        let targets = |env: &str| {
            json!([
                { "kind": "Deployment", "name": format!("{train}-{env}-a"), "container": "app", "component": "app" },
                { "kind": "Deployment", "name": format!("{train}-{env}-b"), "container": "app", "component": "app" },
                { "kind": "StatefulSet", "name": format!("{train}-{env}-c"), "container": "app", "component": "app" }
            ])
        };
        json!({
            "components": [{
                "name": "app",
                "source": { "url": self.repo.url() },
                "image": format!("{}/{}/app", self.registry, self.ns.name),
                "build": { "strategy": "External", "timeout": "30m" }
            }],
            "schedule": {
                "timeZone": "UTC",
                "production": { "start": PARKED, "duration": "30m" }
            },
            "environments": [
                {
                    "name": "staging",
                    "namespace": namespace,
                    "targets": targets("stg"),
                    "health": { "rolloutTimeout": "20m", "soak": "5s", "maxRestarts": MAX_RESTARTS }
                },
                {
                    "name": "production",
                    "namespace": namespace,
                    "targets": targets("prod"),
                    "health": { "rolloutTimeout": "20m", "soak": "30s", "maxRestarts": MAX_RESTARTS }
                }
            ]
        })
    }

    /// A wave: CI pushes a new commit's image, every train is asked for a
    /// release, and once all are verified in staging every production
    /// window opens in the same minute. The trains `failing` crash-loop in
    /// production during the soak and must roll back.
    pub async fn wave(&mut self, failing: &[usize]) -> Result<Wave> {
        let commit = self
            .repo
            .commit("a change", &[("app.txt", &Utc::now().to_rfc3339())])?;
        let image = push_image(
            &self.registry,
            &format!("{}/app", self.ns.name),
            &commit,
            &commit,
        )
        .await?;
        let asked = Utc::now();
        self.patch_all(|_| {
            json!({ "metadata": { "annotations": {
                "packit.dev/release-requested-at": asked.to_rfc3339()
            } } })
        })
        .await
        .context("asking for releases")?;
        let staged = self.size_timeout(Duration::from_secs(120));
        let waiting = self
            .wait_releases(asked, staged, |p| p == ReleasePhase::AwaitingWindow)
            .await
            .context("every release verified in staging")?;
        let early: Vec<_> = waiting
            .iter()
            .filter(|(_, (p, _))| *p != ReleasePhase::AwaitingWindow)
            .collect();
        ensure!(
            early.is_empty(),
            "releases not waiting for the window: {early:?}"
        );

        // Every production window opens at the start of one minute, late
        // enough for the patches to be in.
        let patch_time = Duration::from_millis(20 * self.size as u64);
        let opens =
            next_minute(Utc::now() + TimeDelta::from_std(patch_time)? + TimeDelta::seconds(10));
        let start = format!(
            "0 {} {} {} {} *",
            opens.minute(),
            opens.hour(),
            opens.day(),
            opens.month()
        );
        self.patch_all(|_| json!({ "spec": { "schedule": { "production": { "start": start } } } }))
            .await
            .context("opening the windows")?;
        ensure!(
            Utc::now() < opens,
            "moving {} windows took past {opens}",
            self.size
        );
        let chosen: Vec<String> = failing.iter().map(|&i| train_name(i)).collect();
        let watch = RollbackWatch::start(
            &self.ns.client,
            self.workload_namespaces
                .iter()
                .map(|ns| ns.name.clone())
                .collect(),
            &chosen,
            &image.by_digest(),
            &self.current,
        );
        let until_open = (opens - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(until_open).await;
        let before = self.scrape().await?;
        let opened = Instant::now();
        let ended = self
            .wait_releases(asked, self.size_timeout(Duration::from_secs(300)), |p| {
                p.is_final()
            })
            .await
            .context("every release of the wave ended")?;
        let duration = opened.elapsed();
        let after = self.scrape().await?;
        // Closed again, so that the next wave waits for its own minute.
        self.patch_all(
            |_| json!({ "spec": { "schedule": { "production": { "start": PARKED } } } }),
        )
        .await
        .context("parking the windows")?;
        // The harness's watches may see the last rollouts a moment later.
        let rollbacks = watch.finish(Duration::from_secs(60)).await;
        self.current = image.by_digest();

        let (requests, writes) = requests(&before, &after, REQUESTS);
        let mut wave = Wave {
            duration,
            requests,
            writes,
            reconcile_p50: histogram_quantile(
                &before,
                &after,
                "packit_reconcile_duration_seconds",
                0.5,
            ),
            reconcile_p99: histogram_quantile(
                &before,
                &after,
                "packit_reconcile_duration_seconds",
                0.99,
            ),
            verdict_to_patch_p50: histogram_quantile(
                &before,
                &after,
                "packit_rollback_seconds",
                0.5,
            ),
            verdict_to_patch_p99: histogram_quantile(
                &before,
                &after,
                "packit_rollback_seconds",
                0.99,
            ),
            rollbacks,
            ..Wave::default()
        };
        for (train, (phase, message)) in ended {
            match phase {
                ReleasePhase::Released if !chosen.contains(&train) => wave.released += 1,
                ReleasePhase::RolledBack if chosen.contains(&train) => wave.rolled_back += 1,
                other => wave.other.push(format!(
                    "{train}: {other:?}: {}",
                    message.unwrap_or_default()
                )),
            }
        }
        Ok(wave)
    }

    /// Waits until the last wave's echoes (the windows parked again) have
    /// settled: no reconcile for 5 s.
    pub async fn settle(&self) -> Result<()> {
        let reconciles = |s: &Scrape| s.total("packit_reconciles_total");
        let mut last = reconciles(&self.scrape().await?);
        let mut quiet_since = Instant::now();
        let settling = Instant::now();
        while quiet_since.elapsed() < Duration::from_secs(5) {
            ensure!(
                settling.elapsed() < self.size_timeout(Duration::from_secs(60)),
                "the operator kept reconciling"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = reconciles(&self.scrape().await?);
            if now != last {
                (last, quiet_since) = (now, Instant::now());
            }
        }
        Ok(())
    }

    /// Watches the operator do nothing for `seconds`, once settled.
    pub async fn at_rest(&self, seconds: u64) -> Result<Rest> {
        self.settle().await?;
        let pid = self.op.pid().context("the operator is not running")?;
        let (before, was) = (self.scrape().await?, ProcStat::read(pid)?);
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (after, now) = (self.scrape().await?, ProcStat::read(pid)?);
        let elapsed = start.elapsed().as_secs_f64();
        Ok(Rest {
            seconds: elapsed,
            rss: now.rss,
            cpu_seconds_per_minute: (now.cpu_seconds - was.cpu_seconds) * 60.0 / elapsed,
            requests: growth(&before, &after, REQUESTS, &["verb", "resource"]),
        })
    }

    /// Restarts the operator and waits until it has reconciled every train
    /// (each train's release counts are published by its first reconcile).
    pub async fn resync(&mut self) -> Result<Resync> {
        self.settle().await?;
        self.op.restart()?;
        let start = Instant::now();
        let timeout = self.size_timeout(Duration::from_secs(60));
        loop {
            if let Ok(scrape) = self.scrape().await {
                let seen = scrape
                    .samples("packit_releases")
                    .filter(|s| s.labels.get("phase").map(String::as_str) == Some("Released"))
                    .count();
                if seen >= self.size {
                    // The new process counts from zero.
                    let requests =
                        growth(&Scrape::default(), &scrape, REQUESTS, &["verb", "resource"]);
                    return Ok(Resync {
                        duration: start.elapsed(),
                        requests,
                    });
                }
            }
            ensure!(
                start.elapsed() < timeout,
                "the restarted operator did not see every train within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn scrape(&self) -> Result<Scrape> {
        Ok(Scrape::parse(&self.op.get("/metrics").await?))
    }

    pub fn proc(&self) -> Result<ProcStat> {
        ProcStat::read(self.op.pid().context("the operator is not running")?)
    }

    /// Deletes the trains while their operator runs, so their finalizers
    /// go and the namespace can follow.
    pub async fn teardown(self) -> Result<()> {
        let trains = self.ns.api::<PackitDeployment>();
        // At 1,000 trains the answer (every train deleted) can outlast the
        // connection; the wait below tells whether the deletion went through.
        if let Err(e) = trains
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
        {
            println!("deleting the trains got no answer ({e}); waiting for them to go");
        }
        let timeout = self.size_timeout(Duration::from_secs(60));
        let start = Instant::now();
        while !trains
            .list_metadata(&ListParams::default().limit(1))
            .await?
            .items
            .is_empty()
        {
            ensure!(
                start.elapsed() < timeout,
                "trains still there after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(())
    }

    /// A timeout that grows with the fleet: `base` plus a second per train.
    fn size_timeout(&self, base: Duration) -> Duration {
        base + Duration::from_secs(self.size as u64)
    }

    async fn patch_all(&self, patch: impl Fn(usize) -> Value) -> Result<()> {
        let trains = self.ns.api::<PackitDeployment>();
        stream::iter(0..self.size)
            .map(|i| {
                let (trains, patch) = (trains.clone(), patch(i));
                async move {
                    trains
                        .patch(
                            &train_name(i),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await
                }
            })
            .buffer_unordered(PARALLEL)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// Waits until every train's release created after `since` is in a
    /// phase `done` accepts; returns each train's phase and message. A
    /// release that ends otherwise is returned too, once all are done or
    /// ended.
    async fn wait_releases(
        &self,
        since: DateTime<Utc>,
        timeout: Duration,
        done: impl Fn(ReleasePhase) -> bool,
    ) -> Result<BTreeMap<String, (ReleasePhase, Option<String>)>> {
        let releases = self.ns.api::<PackitRelease>();
        let start = Instant::now();
        loop {
            let mut latest: BTreeMap<String, (ReleasePhase, Option<String>)> = BTreeMap::new();
            for r in releases.list(&ListParams::default()).await?.items {
                let created = r
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_second());
                if created.is_none_or(|c| c < since.timestamp() - 1) {
                    continue;
                }
                let status = r.status.unwrap_or_default();
                if let Some(phase) = status.phase {
                    latest.insert(r.spec.deployment, (phase, status.message));
                }
            }
            let settled = latest
                .values()
                .filter(|(p, _)| done(*p) || p.is_final())
                .count();
            if settled == self.size {
                return Ok(latest);
            }
            if start.elapsed() > timeout {
                let mut phases: BTreeMap<String, usize> = BTreeMap::new();
                for (p, _) in latest.values() {
                    *phases.entry(format!("{p:?}")).or_default() += 1;
                }
                let stuck: Vec<String> = latest
                    .iter()
                    .filter(|(_, (p, _))| !done(*p) && !p.is_final())
                    .map(|(train, _)| train.clone())
                    .take(3)
                    .collect();
                let mut seen = String::new();
                for train in &stuck {
                    seen.push_str(&self.describe(train).await);
                }
                bail!(
                    "after {timeout:?}: {} of {} releases exist, by phase {phases:?}; some of those not done:\n{seen}",
                    latest.len(),
                    self.size
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

impl Fleet {
    /// A train's status message and its workloads' and pods' state, for a
    /// timeout's message.
    async fn describe(&self, train: &str) -> String {
        let mut out = String::new();
        if let Ok(pkd) = self.ns.api::<PackitDeployment>().get(train).await {
            let status = serde_json::to_string(&pkd.status).unwrap_or_default();
            out.push_str(&format!("{train}: {status}\n"));
        }
        let selector = ListParams::default();
        let index = train.trim_start_matches('t').parse::<usize>().unwrap_or(0);
        let workload_ns = self.workload_ns(index);
        if let Ok(list) = workload_ns.api::<Deployment>().list(&selector).await {
            for d in list
                .items
                .iter()
                .filter(|d| d.name_any().starts_with(train))
            {
                let status = serde_json::to_string(&d.status).unwrap_or_default();
                out.push_str(&format!(
                    "  Deployment {}: {:?} {status}\n",
                    d.name_any(),
                    template_image(d)
                ));
            }
        }
        if let Ok(list) = workload_ns.api::<StatefulSet>().list(&selector).await {
            for s in list
                .items
                .iter()
                .filter(|s| s.name_any().starts_with(train))
            {
                let status = serde_json::to_string(&s.status).unwrap_or_default();
                out.push_str(&format!("  StatefulSet {}: {status}\n", s.name_any()));
            }
        }
        if let Ok(list) = workload_ns.api::<Pod>().list(&selector).await {
            for p in list
                .items
                .iter()
                .filter(|p| p.name_any().starts_with(train))
            {
                let phase = p.status.as_ref().and_then(|s| s.phase.clone());
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .map(|c| {
                        c.iter()
                            .map(|c| format!("{}={}", c.type_, c.status))
                            .collect::<Vec<_>>()
                    });
                out.push_str(&format!(
                    "  Pod {}: {phase:?} {ready:?} labels {:?}\n",
                    p.name_any(),
                    p.labels()
                ));
            }
        }
        out
    }
}

/// The writes among requests by (verb, resource).
fn writes(requests: &BTreeMap<Vec<String>, f64>) -> f64 {
    sum(requests
        .iter()
        .filter(|(k, _)| is_write(&k[0]))
        .map(|(_, v)| v))
}

/// `t0000`, `t0001`, ...
pub fn train_name(i: usize) -> String {
    format!("t{i:04}")
}

/// The start of the first minute at or after `t`.
fn next_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = t
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t);
    if floor == t {
        t
    } else {
        floor + TimeDelta::minutes(1)
    }
}
