//! Deploying images and reading health against the local cluster: the
//! server-side apply sets only what it should and is not repeated, and the
//! rollout, restart and progress-deadline readings match what the fake
//! nodes do with the pods.

mod support;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use packit_operator::api::deployment::{Target, WorkloadKind};
use packit_operator::api::release::TargetImage;
use packit_operator::client::CachedPod;
use packit_operator::deploy::{
    self, Applied, DEPLOYMENT_LABEL, DEPLOYMENT_NAMESPACE_LABEL, DeployError, FIELD_MANAGER, Owner,
    WorkloadRef, apply_images, current_images,
};
use packit_operator::health::{self, HealthError, Observation};
use packit_operator::plan::Rollout;

use support::workloads::{
    deployment, deployment_rolled_out, restart_count, statefulset, statefulset_rolled_out,
};
use support::{DEFAULT_TIMEOUT, SimMode, TestNs, eventually, wait_for};

/// An image by digest; `n` tells them apart.
fn image(repo: &str, n: u64) -> String {
    format!("registry.invalid/packit/{repo}@sha256:{n:064x}")
}

fn target(kind: WorkloadKind, name: &str, container: &str) -> Target {
    Target {
        kind,
        name: name.into(),
        container: container.into(),
        component: container.into(),
    }
}

fn target_image(kind: &str, name: &str, container: &str, image: &str) -> TargetImage {
    TargetImage {
        kind: kind.into(),
        name: name.into(),
        container: container.into(),
        image: image.into(),
    }
}

fn owner(ns: &TestNs) -> Owner {
    Owner {
        name: "packit".into(),
        namespace: ns.name.clone(),
    }
}

/// `health::assess` over the workloads as read now and the namespace's
/// pods, read as the operator's pod cache reads them.
async fn observe(
    client: &kube::Client,
    namespace: &str,
    images: &[TargetImage],
) -> std::result::Result<Observation, HealthError> {
    let mut workloads = Vec::new();
    for group in deploy::group_images(images)? {
        match deploy::Workload::get(client, namespace, &group.workload).await {
            Ok(object) => workloads.push((group.workload, object)),
            Err(DeployError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let pods = kube::Api::<CachedPod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("listing pods");
    let pods: Vec<_> = pods.items.into_iter().map(std::sync::Arc::new).collect();
    let find = |w: &WorkloadRef| workloads.iter().find(|(r, _)| r == w).map(|(_, o)| o);
    health::assess(namespace, find, &pods, images)
}

/// Workloads are created by another field manager, as a person or their
/// tooling would.
fn create_params() -> PostParams {
    PostParams {
        field_manager: Some("test-setup".into()),
        ..Default::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// A container with an env var, a field the apply must leave alone.
fn container(name: &str, image: &str) -> Container {
    Container {
        name: name.into(),
        image: Some(image.into()),
        env: Some(vec![env("ROLE", name)]),
        ..Default::default()
    }
}

/// Deployment `web`: containers `service` and `worker` (the targets) and
/// `proxy` (not a target).
fn web(mode: SimMode, replicas: i32) -> Result<Deployment> {
    let mut d = deployment("web", &image("service", 1), replicas, mode)?;
    let spec = d
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .context("no pod spec")?;
    spec.containers = vec![
        container("service", &image("service", 1)),
        container("worker", &image("worker", 1)),
        container("proxy", "registry.invalid/envoy:1.31"),
    ];
    Ok(d)
}

fn template_containers(d: &Deployment) -> Vec<(String, Option<String>, Option<Vec<EnvVar>>)> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone(), c.env.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `observe` sees the images and every workload complete.
async fn observed_complete(ns: &TestNs, images: &[TargetImage]) -> Result<Observation> {
    eventually("observe() to report Complete", DEFAULT_TIMEOUT, || async {
        let seen = observe(&ns.client, &ns.name, images).await?;
        let complete = seen
            .workloads
            .iter()
            .all(|w| w.rollout == Rollout::Complete);
        Ok((seen.images_match && complete).then_some(seen))
    })
    .await
}

/// The fields this operator's apply owns on a workload.
fn owned_fields(metadata: &kube::api::ObjectMeta) -> Option<Value> {
    metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|e| e.manager.as_deref() == Some(FIELD_MANAGER))
        .and_then(|e| e.fields_v1.as_ref())
        .map(|f| f.0.clone())
}

#[tokio::test]
async fn apply_rolls_out_a_deployment_and_a_statefulset_and_is_not_repeated() -> Result<()> {
    let ns = TestNs::new("deploy-apply").await?;
    let deployments = ns.api::<Deployment>();
    let statefulsets = ns.api::<StatefulSet>();
    deployments
        .create(&create_params(), &web(SimMode::Ready, 2)?)
        .await?;
    statefulsets
        .create(
            &create_params(),
            &statefulset("db", &image("db", 1), 2, SimMode::Ready)?,
        )
        .await?;
    wait_for(
        &deployments,
        "web",
        "web rolled out",
        DEFAULT_TIMEOUT,
        deployment_rolled_out,
    )
    .await?;
    wait_for(
        &statefulsets,
        "db",
        "db rolled out",
        DEFAULT_TIMEOUT,
        statefulset_rolled_out,
    )
    .await?;

    // Two targets share the Deployment; the order of targets is kept.
    let targets = [
        target(WorkloadKind::Deployment, "web", "service"),
        target(WorkloadKind::StatefulSet, "db", "app"),
        target(WorkloadKind::Deployment, "web", "worker"),
    ];
    let before = current_images(&ns.client, &ns.name, &targets).await?;
    assert_eq!(
        before,
        [
            target_image("Deployment", "web", "service", &image("service", 1)),
            target_image("StatefulSet", "db", "app", &image("db", 1)),
            target_image("Deployment", "web", "worker", &image("worker", 1)),
        ]
    );
    // Health of the images the workloads run now: complete, nothing stale.
    let seen = observed_complete(&ns, &before).await?;
    assert_eq!(seen.workloads.len(), 2);

    let release = [
        target_image("Deployment", "web", "service", &image("service", 2)),
        target_image("StatefulSet", "db", "app", &image("db", 2)),
        target_image("Deployment", "web", "worker", &image("worker", 2)),
    ];
    let web_ref = WorkloadRef {
        kind: WorkloadKind::Deployment,
        name: "web".into(),
    };
    let db_ref = WorkloadRef {
        kind: WorkloadKind::StatefulSet,
        name: "db".into(),
    };
    let applied = apply_images(&ns.client, &ns.name, &owner(&ns), &release).await?;
    assert_eq!(
        applied,
        Applied {
            written: vec![web_ref.clone(), db_ref.clone()],
            unchanged: vec![],
            // Nobody's before: this write claimed them.
            claimed: vec![web_ref.clone(), db_ref.clone()],
        }
    );
    // Right after the apply the report may still describe the old pods, but
    // it already knows the templates carry the new images.
    let early = observe(&ns.client, &ns.name, &release).await?;
    assert!(early.images_match, "{early:?}");

    let seen = observed_complete(&ns, &release).await?;
    assert_eq!(
        seen.workloads
            .iter()
            .map(|w| (w.name.as_str(), w.restarts))
            .collect::<Vec<_>>(),
        [("web", 0), ("db", 0)]
    );
    // The support code's own reading of the rollouts agrees.
    let web = deployments.get("web").await?;
    let db = statefulsets.get("db").await?;
    ensure!(
        deployment_rolled_out(&web),
        "web not rolled out: {:?}",
        web.status
    );
    ensure!(
        statefulset_rolled_out(&db),
        "db not rolled out: {:?}",
        db.status
    );
    assert_eq!(
        current_images(&ns.client, &ns.name, &targets).await?,
        release
    );

    // Only the target images changed: the other container and every env var
    // are still there, and the labels are on the workloads and templates.
    assert_eq!(
        template_containers(&web),
        [
            (
                "service".to_owned(),
                Some(image("service", 2)),
                Some(vec![env("ROLE", "service")])
            ),
            (
                "worker".to_owned(),
                Some(image("worker", 2)),
                Some(vec![env("ROLE", "worker")])
            ),
            (
                "proxy".to_owned(),
                Some("registry.invalid/envoy:1.31".to_owned()),
                Some(vec![env("ROLE", "proxy")])
            ),
        ]
    );
    let owner_labels = [
        (DEPLOYMENT_LABEL, "packit"),
        (DEPLOYMENT_NAMESPACE_LABEL, ns.name.as_str()),
    ];
    for (what, labels) in [
        ("web", web.metadata.labels.as_ref()),
        (
            "web's template",
            web.spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref()),
        ),
        ("db", db.metadata.labels.as_ref()),
        (
            "db's template",
            db.spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref()),
        ),
    ] {
        for (key, value) in owner_labels {
            let found = labels.and_then(|l| l.get(key)).map(String::as_str);
            ensure!(found == Some(value), "{what}: label {key} is {found:?}");
        }
    }
    // The selector and the simulation label of the template are untouched.
    let template_labels = web
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert_eq!(template_labels.get("app").map(String::as_str), Some("web"));
    // Pods map back to their PackitDeployment by label.
    let selector = format!(
        "{DEPLOYMENT_LABEL}=packit,{DEPLOYMENT_NAMESPACE_LABEL}={}",
        ns.name
    );
    eventually("4 labelled pods", DEFAULT_TIMEOUT, || async {
        let pods = ns
            .api::<Pod>()
            .list(&ListParams::default().labels(&selector))
            .await?;
        let live = pods
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count();
        Ok((live == 4).then_some(()))
    })
    .await?;

    // The operator owns exactly the images and the labels.
    let labels_owned = json!({
        "f:packit.dev/deployment": {},
        "f:packit.dev/deployment-namespace": {},
    });
    let entry = json!({ ".": {}, "f:image": {}, "f:name": {} });
    assert_eq!(
        owned_fields(&web.metadata),
        Some(json!({
            "f:metadata": {
                "f:annotations": { "f:packit.dev/owner": {} },
                "f:labels": labels_owned,
            },
            "f:spec": { "f:template": {
                "f:metadata": { "f:labels": labels_owned },
                "f:spec": { "f:containers": {
                    "k:{\"name\":\"service\"}": entry.clone(),
                    "k:{\"name\":\"worker\"}": entry,
                } },
            } },
        }))
    );

    // The same release again: nothing is written. (Controllers may still
    // write status, so the generation tells whether the spec changed.)
    let generations = (web.metadata.generation, db.metadata.generation);
    let again = apply_images(&ns.client, &ns.name, &owner(&ns), &release).await?;
    assert_eq!(
        again,
        Applied {
            written: vec![],
            unchanged: vec![web_ref.clone(), db_ref],
            claimed: vec![],
        }
    );
    let web = deployments.get("web").await?;
    let db = statefulsets.get("db").await?;
    assert_eq!(
        (web.metadata.generation, db.metadata.generation),
        generations
    );

    // Even the apply itself, sent again, is a no-op for the API server.
    let patch = deploy::workload_patch(
        &web_ref,
        &owner_labels,
        &owner(&ns).claim_value(),
        &[
            ("service".to_owned(), image("service", 2)),
            ("worker".to_owned(), image("worker", 2)),
        ],
    );
    let web = deployments
        .patch(
            "web",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    assert_eq!(web.metadata.generation, generations.0);
    Ok(())
}

#[tokio::test]
async fn a_container_no_longer_targeted_keeps_the_image_it_was_given() -> Result<()> {
    let ns = TestNs::new("deploy-untarget").await?;
    let deployments = ns.api::<Deployment>();
    deployments
        .create(&create_params(), &web(SimMode::Ready, 1)?)
        .await?;
    let both = [
        target_image("Deployment", "web", "service", &image("service", 2)),
        target_image("Deployment", "web", "worker", &image("worker", 2)),
    ];
    apply_images(&ns.client, &ns.name, &owner(&ns), &both).await?;
    // The worker is no longer a target. Leaving it out of the apply would
    // remove its image, which only this manager owns now; it keeps it.
    let service_only = [target_image(
        "Deployment",
        "web",
        "service",
        &image("service", 3),
    )];
    let applied = apply_images(&ns.client, &ns.name, &owner(&ns), &service_only).await?;
    assert_eq!(applied.written.len(), 1);
    let web = deployments.get("web").await?;
    let images: Vec<_> = template_containers(&web)
        .into_iter()
        .map(|(name, image, _)| (name, image))
        .collect();
    assert_eq!(
        images,
        [
            ("service".to_owned(), Some(image("service", 3))),
            ("worker".to_owned(), Some(image("worker", 2))),
            (
                "proxy".to_owned(),
                Some("registry.invalid/envoy:1.31".to_owned())
            ),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_rollout_past_its_progress_deadline_fails() -> Result<()> {
    let ns = TestNs::new("deploy-deadline").await?;
    let mut stuck = deployment("stuck", &image("service", 1), 1, SimMode::NotReady)?;
    if let Some(spec) = stuck.spec.as_mut() {
        spec.progress_deadline_seconds = Some(3);
    }
    ns.api::<Deployment>()
        .create(&create_params(), &stuck)
        .await?;
    let release = [target_image(
        "Deployment",
        "stuck",
        "app",
        &image("service", 2),
    )];
    apply_images(&ns.client, &ns.name, &owner(&ns), &release).await?;

    let failed = eventually("observe() to report Failed", DEFAULT_TIMEOUT, || async {
        let seen = observe(&ns.client, &ns.name, &release).await?;
        ensure!(seen.images_match, "images do not match: {seen:?}");
        let [health] = seen.workloads.as_slice() else {
            bail!("expected one workload: {seen:?}");
        };
        // Before the deadline it can only be progressing.
        match &health.rollout {
            Rollout::Complete => bail!("a never-ready rollout is complete"),
            Rollout::Progressing => Ok(None),
            Rollout::Failed(reason) => Ok(Some(reason.clone())),
        }
    })
    .await?;
    ensure!(
        failed.starts_with("ProgressDeadlineExceeded: "),
        "unexpected failure: {failed}"
    );
    ensure!(
        failed.contains("stuck"),
        "the message names the ReplicaSet: {failed}"
    );
    Ok(())
}

#[tokio::test]
async fn restarts_of_the_deployed_image_are_counted_and_grow() -> Result<()> {
    let ns = TestNs::new("deploy-restarts").await?;
    ns.api::<Deployment>()
        .create(
            &create_params(),
            &deployment("crashy", &image("service", 1), 1, SimMode::CrashLoop)?,
        )
        .await?;
    let pods_api = ns.api::<Pod>();
    let pods = || async {
        let list = pods_api
            .list(&ListParams::default().labels("app=crashy"))
            .await?;
        anyhow::Ok(list.items)
    };
    let runs = |pod: &Pod, wanted: &str| {
        pod.spec.as_ref().is_some_and(|s| {
            s.containers
                .iter()
                .any(|c| c.image.as_deref() == Some(wanted))
        })
    };
    // Restarts under the old image, from before the deploy.
    eventually("the old pod to restart twice", DEFAULT_TIMEOUT, || async {
        Ok(pods()
            .await?
            .iter()
            .any(|p| restart_count(p) >= 2)
            .then_some(()))
    })
    .await?;

    let new = image("service", 2);
    let release = [target_image("Deployment", "crashy", "app", &new)];
    apply_images(&ns.client, &ns.name, &owner(&ns), &release).await?;
    // The new pod never becomes ready, so the old one stays beside it.
    let sum_new = |pods: &[Pod]| -> i32 {
        pods.iter()
            .filter(|p| runs(p, &new))
            .map(restart_count)
            .sum()
    };
    let mut last = 0;
    for wanted in [1, 3] {
        last = eventually("restarts of the new image", DEFAULT_TIMEOUT, || async {
            let before = sum_new(&pods().await?);
            let seen = observe(&ns.client, &ns.name, &release).await?;
            let after = pods().await?;
            let [health] = seen.workloads.as_slice() else {
                bail!("expected one workload: {seen:?}");
            };
            ensure!(
                health.rollout == Rollout::Progressing,
                "a crash-looping rollout is {:?}",
                health.rollout
            );
            // Counts only grow, so the observed count of the new image's
            // pods lies between two readings; the old pod's would not.
            let restarts = i64::from(health.restarts);
            let old: i32 = after
                .iter()
                .filter(|p| !runs(p, &new))
                .map(restart_count)
                .sum();
            ensure!(
                i64::from(before) <= restarts && restarts <= i64::from(sum_new(&after)),
                "observed {restarts} restarts; the new pods had {before} then {}, the old {old}",
                sum_new(&after)
            );
            Ok((health.restarts >= wanted).then_some(health.restarts))
        })
        .await?;
    }
    ensure!(last >= 3, "restarts did not grow: {last}");
    Ok(())
}

#[tokio::test]
async fn missing_workloads_and_containers_are_named() -> Result<()> {
    let ns = TestNs::new("deploy-missing").await?;
    let deployments = ns.api::<Deployment>();
    deployments
        .create(&create_params(), &web(SimMode::Ready, 1)?)
        .await?;
    let namespace = ns.name.as_str();

    let ghost = [target(WorkloadKind::Deployment, "ghost", "service")];
    let err = current_images(&ns.client, namespace, &ghost)
        .await
        .unwrap_err();
    assert!(matches!(err, DeployError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("Deployment ghost not found in namespace {namespace}")
    );
    // Same name, other kind.
    let sts = [target(WorkloadKind::StatefulSet, "web", "service")];
    let err = current_images(&ns.client, namespace, &sts)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("StatefulSet web not found in namespace {namespace}")
    );
    let no_container = [
        target(WorkloadKind::Deployment, "web", "service"),
        target(WorkloadKind::Deployment, "web", "cron"),
    ];
    let err = current_images(&ns.client, namespace, &no_container)
        .await
        .unwrap_err();
    assert!(matches!(err, DeployError::NoContainer { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("Deployment web in namespace {namespace} has no container \"cron\"")
    );

    // Applying refuses both too, and writes nothing: no workload is created,
    // no container added, and a valid target is not written while another
    // one is missing.
    let before = deployments.get("web").await?;
    let err = apply_images(
        &ns.client,
        namespace,
        &owner(&ns),
        &[
            target_image("Deployment", "web", "service", &image("service", 2)),
            target_image("Deployment", "ghost", "service", &image("service", 2)),
        ],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DeployError::NotFound { .. }), "{err:?}");
    ensure!(
        deployments.get_opt("ghost").await?.is_none(),
        "ghost was created"
    );
    let err = apply_images(
        &ns.client,
        namespace,
        &owner(&ns),
        &[
            target_image("Deployment", "web", "service", &image("service", 2)),
            target_image("Deployment", "web", "cron", &image("cron", 2)),
        ],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DeployError::NoContainer { .. }), "{err:?}");
    // The controller still writes status, so compare the spec.
    let after = deployments.get("web").await?;
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(template_containers(&after), template_containers(&before));
    assert_eq!(after.metadata.labels, before.metadata.labels);

    // And observing them.
    let err = observe(
        &ns.client,
        namespace,
        &[target_image("StatefulSet", "ghost", "app", &image("db", 1))],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, HealthError::Workload(e) if matches!(**e, DeployError::NotFound { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("StatefulSet ghost not found in namespace {namespace}")
    );
    Ok(())
}
