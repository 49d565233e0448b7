//! The operator end to end on the local cluster: a real API server, fake
//! nodes, a real registry and real git repositories. The tests play the
//! builder and CI; everything else is the operator's doing.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams};
use packit_operator::api::{PackitDeployment, PackitRelease};
use packit_operator::plan::ReleasePhase;
use serde_json::json;

use support::train::{PKD, TIMEOUT, Train};
use support::workloads::{deployment_rolled_out, statefulset_rolled_out};
use support::{TestNs, eventually, wait_for};

#[tokio::test]
async fn a_full_train_builds_verifies_staging_and_releases_in_the_window() -> Result<()> {
    let t = Train::new("train-full", |_| {}).await?;
    let (name, images) = t.full_release("first").await?;
    let release = t.release(&name).await?;
    // The digests recorded on the release are the ones pushed, and every
    // target of both environments runs them.
    let recorded: BTreeMap<String, String> = release
        .spec
        .images
        .clone()
        .context("images")?
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    assert_eq!(recorded, images);
    for env in ["stg", "prod"] {
        assert_eq!(
            t.images(env).await?,
            (images["service"].clone(), images["worker"].clone()),
            "{env}"
        );
    }
    // Production was deployed inside a window (second 0-9 of each 15).
    let status = release.status.clone().context("status")?;
    let prod = status
        .environments
        .iter()
        .find(|e| e.name == "production")
        .context("production progress")?;
    let deployed = prod.deployed_at.context("deployed at")?;
    assert!(
        deployed.timestamp() % 15 < 10,
        "deployed at {deployed}, outside the window"
    );
    // The images the targets had before are on record.
    assert_eq!(prod.previous_images.len(), 2);
    let pkd = t.pkd().await?;
    let s = pkd.status.context("pkd status")?;
    assert_eq!(
        s.releases.as_deref(),
        Some(format!("staging={name} production={name}").as_str())
    );
    let ready = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .context("Ready")?;
    assert_eq!(ready.status, "True");

    // The operator's endpoints tell the same story.
    assert_eq!(t.op.get("/readyz").await?, "ok\n");
    let metrics = t.op.get("/metrics").await?;
    let released = format!(
        r#"packit_releases{{namespace="{}",deployment="train",phase="Released"}} 1"#,
        t.ns.name
    );
    assert!(metrics.contains(&released), "{metrics}");
    assert!(
        metrics.contains(r#"packit_reconciles_total{result="ok"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("packit_next_window_timestamp_seconds{"),
        "{metrics}"
    );
    // Reconciles read the train and its releases from the watch caches:
    // the releases are listed at most when their watch starts (a relist
    // after a lost watch may add one), never per reconcile, and the
    // deployment is fetched only when the cache was behind a write.
    let requests = |verb: &str, resource: &str| {
        sample(
            &metrics,
            &format!(r#"packit_api_requests_total{{verb="{verb}",resource="{resource}"}}"#),
        )
    };
    let reconciles = sample(&metrics, r#"packit_reconciles_total{result="ok"}"#);
    assert!(reconciles >= 10.0, "{reconciles} reconciles\n{metrics}");
    let lists = requests("list", "packitreleases");
    assert!(
        lists <= 2.0,
        "{lists} lists of releases in {reconciles} reconciles\n{metrics}"
    );
    assert!(requests("watch", "packitreleases") >= 1.0, "{metrics}");
    let gets = requests("get", "packitdeployments");
    assert!(
        gets * 4.0 <= reconciles,
        "{gets} gets in {reconciles} reconciles\n{metrics}"
    );
    println!("{reconciles} reconciles: {lists} lists of releases, {gets} gets of the deployment");
    assert!(
        requests("patch", "packitdeployments/status") >= 1.0,
        "{metrics}"
    );

    // Another build without new commits is a rebuild (base-image updates),
    // and the release says so.
    t.annotate("packit.dev/release-requested-at", "rebuild")
        .await?;
    let again = eventually("a second release", TIMEOUT, || async {
        let r = t
            .pkd()
            .await?
            .status
            .and_then(|s| s.train.in_flight)
            .map(|f| f.release);
        Ok(r.filter(|r| *r != name))
    })
    .await?;
    let rebuilt = eventually("the rebuild flag", TIMEOUT, || async {
        Ok(t.release(&again).await?.status.filter(|s| s.rebuild))
    })
    .await?;
    assert!(rebuilt.message.unwrap_or_default().contains("base-image"));
    assert_eq!(
        t.release(&again).await?.spec.previous.as_deref(),
        Some(name.as_str())
    );
    Ok(())
}

#[tokio::test]
async fn production_failing_during_soak_rolls_back_every_workload() -> Result<()> {
    let t = Train::new("train-rollback", |_| {}).await?;
    let (first, first_images) = t.full_release("first").await?;
    t.release_now("second").await?;
    let second = t.in_flight().await?;
    let images = t.build(&second).await?;
    t.wait_phase(&second, ReleasePhase::Production).await?;
    eventually("production to run the second release", TIMEOUT, || async {
        Ok(
            (t.images("prod").await? == (images["service"].clone(), images["worker"].clone()))
                .then_some(()),
        )
    })
    .await?;
    // Let the rollout finish, then make the new pods crash during the soak.
    let deployments = t.ns.api::<Deployment>();
    wait_for(
        &deployments,
        "service-prod",
        "the production rollout",
        TIMEOUT,
        deployment_rolled_out,
    )
    .await?;
    let statefulsets = t.ns.api::<StatefulSet>();
    wait_for(
        &statefulsets,
        "worker-prod",
        "the production rollout",
        TIMEOUT,
        statefulset_rolled_out,
    )
    .await?;
    t.break_pods("service-prod").await?;
    t.break_pods("worker-prod").await?;
    let rolled = t.wait_phase(&second, ReleasePhase::RolledBack).await?;
    assert!(
        rolled
            .status
            .and_then(|s| s.message)
            .is_some_and(|m| m.contains("restarts"))
    );
    eventually(
        "both production workloads back on the first release",
        TIMEOUT,
        || async {
            Ok((t.images("prod").await?
                == (
                    first_images["service"].clone(),
                    first_images["worker"].clone(),
                ))
                .then_some(()))
        },
    )
    .await?;
    t.assert_event("RolledBack", &[&first, "verification failed"])
        .await?;
    // Staging keeps the second release, which passed there.
    assert_eq!(
        t.images("stg").await?,
        (images["service"].clone(), images["worker"].clone())
    );
    // The StatefulSet really rolled back: its pod runs the first image again.
    eventually(
        "the worker pod on the first image and ready",
        TIMEOUT,
        || async {
            let pods =
                t.ns.api::<Pod>()
                    .list(&ListParams::default().labels("app=worker-prod"))
                    .await?;
            Ok(pods
                .items
                .iter()
                .all(|p| {
                    p.spec.as_ref().is_some_and(|s| {
                        s.containers[0].image.as_deref() == Some(&first_images["worker"])
                    })
                })
                .then_some(()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_rollback_for_later_happens_then_and_not_before() -> Result<()> {
    let t = Train::new("train-later", |_| {}).await?;
    let (first, first_images) = t.full_release("first").await?;
    let (_, second_images) = t.full_release("second").await?;
    let at = Utc::now() + chrono::TimeDelta::seconds(12);
    let request =
        json!({ "requestedAt": Utc::now(), "environment": "production", "at": at }).to_string();
    t.annotate("packit.dev/rollback", &request).await?;
    eventually("the rollback to be scheduled", TIMEOUT, || async {
        Ok(t.pkd()
            .await?
            .status
            .is_some_and(|s| !s.train.scheduled_rollbacks.is_empty())
            .then_some(()))
    })
    .await?;
    // Still the second release until `at`.
    while Utc::now() < at - chrono::TimeDelta::seconds(2) {
        assert_eq!(
            t.images("prod").await?.0,
            second_images["service"],
            "rolled back before {at}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eventually("production back on the first release", TIMEOUT, || async {
        Ok((t.images("prod").await?.0 == first_images["service"]).then_some(()))
    })
    .await?;
    assert!(Utc::now() >= at, "rolled back before {at}");
    t.assert_event("RolledBack", &[&first]).await?;
    Ok(())
}

#[tokio::test]
async fn a_freeze_blocks_the_production_deploy_but_not_a_rollback() -> Result<()> {
    let t = Train::new("train-freeze", |_| {}).await?;
    let (first, first_images) = t.full_release("first").await?;
    let (_, second_images) = t.full_release("second").await?;
    let freeze = json!({ "spec": { "schedule": { "freezes": [{
        "start": Utc::now() - chrono::TimeDelta::minutes(1),
        "end": Utc::now() + chrono::TimeDelta::hours(1),
        "reason": "conference"
    }] } } });
    t.ns.api::<PackitDeployment>()
        .patch(PKD, &PatchParams::default(), &Patch::Merge(&freeze))
        .await?;
    t.release_now("third").await?;
    let third = t.in_flight().await?;
    t.build(&third).await?;
    // Built, but frozen: nothing is deployed and the release says why.
    let waiting = eventually("the release to wait for the freeze", TIMEOUT, || async {
        let r = t.release(&third).await?;
        Ok(r.status
            .and_then(|s| s.message)
            .filter(|m| m.contains("conference")))
    })
    .await?;
    assert!(waiting.contains("frozen until"), "{waiting}");
    assert_eq!(t.images("stg").await?.0, second_images["service"]);
    assert_eq!(t.images("prod").await?.0, second_images["service"]);
    // A person's rollback still happens during the freeze.
    let request = json!({ "requestedAt": Utc::now(), "environment": "production" }).to_string();
    t.annotate("packit.dev/rollback", &request).await?;
    eventually("production back on the first release", TIMEOUT, || async {
        Ok((t.images("prod").await?
            == (
                first_images["service"].clone(),
                first_images["worker"].clone(),
            ))
            .then_some(()))
    })
    .await?;
    t.assert_event("RolledBack", &[&first]).await?;
    Ok(())
}

#[tokio::test]
async fn bad_input_is_reported_and_touches_nothing() -> Result<()> {
    // An unknown time zone: InvalidSpec, an Event, nothing built or deployed.
    let t = Train::new("train-bad", |s| {
        s["schedule"]["timeZone"] = json!("Europe/Pargue")
    })
    .await?;
    let before = t.images("prod").await?;
    let cond = eventually("InvalidSpec", TIMEOUT, || async {
        Ok(t.pkd().await?.status.and_then(|s| {
            s.conditions
                .into_iter()
                .find(|c| c.type_ == "InvalidSpec" && c.status == "True")
        }))
    })
    .await?;
    assert!(
        cond.message
            .contains(r#"spec.schedule.timeZone: "Europe/Pargue""#),
        "{}",
        cond.message
    );
    t.assert_event("InvalidSpec", &["Europe/Pargue"]).await?;

    // A target in a namespace that did not opt in.
    let other = TestNs::new("train-other").await?;
    let patch = json!({ "spec": {
        "schedule": { "timeZone": "UTC" },
        "environments": [{ "name": "production", "namespace": other.name,
            "targets": [{ "kind": "Deployment", "name": "service-prod", "container": "app", "component": "service" }] }]
    } });
    t.ns.api::<PackitDeployment>()
        .patch(PKD, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let cond = eventually("NamespaceNotAllowed", TIMEOUT, || async {
        Ok(t.pkd().await?.status.and_then(|s| {
            s.conditions
                .into_iter()
                .find(|c| c.type_ == "InvalidSpec" && c.reason == "NamespaceNotAllowed")
        }))
    })
    .await?;
    assert!(
        cond.message.contains("packit.dev/allow-from"),
        "{}",
        cond.message
    );
    // Opting in afterwards is noticed by itself: the namespace's change
    // wakes the train, which an invalid spec otherwise waits for.
    other.kubectl(&[
        "annotate",
        "namespace",
        &other.name,
        &format!("packit.dev/allow-from={}", t.ns.name),
    ])?;
    eventually("the opt-in to clear InvalidSpec", TIMEOUT, || async {
        let status = t.pkd().await?.status.unwrap_or_default();
        Ok(status
            .conditions
            .iter()
            .any(|c| c.type_ == "InvalidSpec" && c.status == "False")
            .then_some(()))
    })
    .await?;

    // A target naming an undeclared component never gets in.
    let bad = json!({ "spec": { "environments": [{ "name": "production",
        "targets": [{ "kind": "Deployment", "name": "service-prod", "container": "app", "component": "frontend" }] }] } });
    let err =
        t.ns.api::<PackitDeployment>()
            .patch(PKD, &PatchParams::default(), &Patch::Merge(&bad))
            .await
            .unwrap_err();
    assert!(
        err.to_string()
            .contains("every target must name a component"),
        "{err}"
    );
    assert_eq!(t.images("prod").await?, before, "nothing touched");
    Ok(())
}

#[tokio::test]
async fn unreachable_sources_and_missing_digests_fail_the_build() -> Result<()> {
    let t = Train::new("train-source", |s| {
        s["components"][0]["source"]["secretRef"] = json!({ "name": "git-credentials" });
        s["components"][1]["source"]["url"] = json!("file:///nonexistent/packit.git");
    })
    .await?;
    // A missing credentials Secret, then an unreachable repository: each
    // fails the build with an Event that names it.
    t.annotate("packit.dev/release-requested-at", "first")
        .await?;
    let failed = |needle: &'static str| {
        let t = &t;
        async move {
            eventually(needle, TIMEOUT, || async {
                let events = t.events().await?;
                Ok(events
                    .iter()
                    .any(|(r, m)| r == "BuildFailed" && m.contains(needle))
                    .then_some(()))
            })
            .await
        }
    };
    failed(r#"spec.components[0].source.secretRef: Secret "git-credentials" not found"#).await?;
    let patch = json!({ "spec": { "components": [
        { "name": "service", "source": { "url": t.service.url() }, "image": t.pkd().await?.spec.components[0].image,
          "build": serde_json::to_value(&t.pkd().await?.spec.components[0].build)? },
        t.pkd().await?.spec.components[1],
    ] } });
    t.ns.api::<PackitDeployment>()
        .patch(PKD, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    t.annotate("packit.dev/release-requested-at", "second")
        .await?;
    failed("/nonexistent/packit.git").await?;
    let degraded = t
        .pkd()
        .await?
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Degraded"));
    assert_eq!(degraded.map(|c| c.status), Some("True".to_owned()));
    // The controller keeps serving: fix the URL and a release goes through
    // until the registry lacks the digest the builder claims.
    let patch = json!({ "spec": { "components": [
        t.pkd().await?.spec.components[0],
        { "name": "worker", "source": { "url": t.worker.url() }, "image": format!("{}/{}/worker", t.registry, t.ns.name),
          "build": { "strategy": "External", "timeout": "120s" } }
    ] } });
    t.ns.api::<PackitDeployment>()
        .patch(PKD, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    t.release_now("fixed").await?;
    let name = eventually("a new release in flight", TIMEOUT, || async {
        let Some(name) = t
            .pkd()
            .await?
            .status
            .and_then(|s| s.train.in_flight)
            .map(|f| f.release)
        else {
            return Ok(None);
        };
        Ok(t.ns
            .api::<PackitRelease>()
            .get_opt(&name)
            .await?
            .map(|_| name))
    })
    .await?;
    let pod = eventually("the builder pod", TIMEOUT, || async {
        let pods =
            t.ns.api::<Pod>()
                .list(&ListParams::default().labels(&format!("packit.dev/release={name}")))
                .await?;
        Ok(pods.items.into_iter().next())
    })
    .await?;
    let bogus = format!("sha256:{}", "0".repeat(64));
    let patch =
        json!({ "metadata": { "annotations": { "sim.packit.dev/termination-message": bogus } } });
    t.ns.api::<Pod>()
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    let failed = eventually("BuildFailed", TIMEOUT, || async {
        let r = t.release(&name).await?;
        Ok(r.status
            .filter(|s| s.phase == Some(ReleasePhase::BuildFailed)))
    })
    .await?;
    assert!(failed.message.unwrap_or_default().contains(&bogus));
    assert_eq!(
        t.images("prod").await?.0,
        t.images("stg").await?.0,
        "nothing deployed"
    );
    Ok(())
}

#[tokio::test]
async fn operator_restarts_never_repeat_a_deploy() -> Result<()> {
    let mut t = Train::new("train-restart", |s| {
        s["environments"][0]["health"]["soak"] = json!("6s");
    })
    .await?;
    let start = t.generations().await?;
    t.release_now("first").await?;
    let name = t.in_flight().await?;
    // During the build.
    eventually("the builder Job", TIMEOUT, || async {
        let pods =
            t.ns.api::<Pod>()
                .list(&ListParams::default().labels(&format!("packit.dev/release={name}")))
                .await?;
        Ok((!pods.items.is_empty()).then_some(()))
    })
    .await?;
    t.op.restart()?;
    let images = t.build(&name).await?;
    // During staging verification.
    t.wait_phase(&name, ReleasePhase::Staging).await?;
    t.op.restart()?;
    // During the production deploy.
    t.wait_phase(&name, ReleasePhase::Production).await?;
    t.op.restart()?;
    t.wait_phase(&name, ReleasePhase::Released).await?;
    assert_eq!(
        t.images("prod").await?,
        (images["service"].clone(), images["worker"].clone())
    );
    // One release, and each workload was changed exactly once.
    let releases =
        t.ns.api::<PackitRelease>()
            .list(&ListParams::default())
            .await?;
    assert_eq!(releases.items.len(), 1);
    let end = t.generations().await?;
    let bumps: Vec<i64> = end.iter().zip(&start).map(|(e, s)| e - s).collect();
    assert_eq!(bumps, [1, 1, 1, 1], "generations {start:?} -> {end:?}");
    Ok(())
}

/// The value of one sample in a Prometheus text exposition (0 when absent).
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
