//! Smoke tests of the local cluster: the CRDs install and validate, and the
//! fake nodes drive workloads to each outcome the operator must handle
//! (rollouts, never-ready pods, crash loops, Job success and failure), and
//! the registry serves pushed images by digest.

mod support;

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use support::registry::{REVISION_LABEL, fetch_verified};
use support::workloads::{
    deployment, deployment_condition, deployment_rolled_out, job, job_condition, pod_ready,
    restart_count, statefulset, statefulset_rolled_out,
};
use support::{
    DEFAULT_TIMEOUT, GitRepo, SimMode, TestNs, apply_crds, cluster, eventually, kubectl,
    push_image, resolve_digest, wait_for,
};

const IMAGE: &str = "registry.invalid/packit/app:v1";

/// Pods of `app` in the test namespace.
async fn pods_of(ns: &TestNs, app: &str) -> Result<Vec<Pod>> {
    let list = ns
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    Ok(list.items)
}

fn pod_name(pod: &Pod) -> Result<String> {
    pod.metadata.name.clone().context("pod without a name")
}

#[tokio::test]
async fn two_fake_nodes_are_ready() -> Result<()> {
    let client = cluster().client().await?;
    let nodes = Api::<Node>::all(client)
        .list(&ListParams::default().labels("type=kwok"))
        .await?;
    let ready = nodes
        .items
        .iter()
        .filter(|node| {
            node.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count();
    ensure!(
        ready >= 2,
        "expected at least 2 ready fake nodes, found {ready}"
    );
    Ok(())
}

/// Collapses runs of whitespace, so text compares across line wrapping.
fn squash_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first words of each spec field's description in the installed CRD.
async fn spec_field_docs(client: kube::Client) -> Result<BTreeMap<String, String>> {
    let crd = Api::<CustomResourceDefinition>::all(client)
        .get("packitdeployments.packit.dev")
        .await?;
    let crd = serde_json::to_value(crd)?;
    let properties = crd
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties")
        .and_then(Value::as_object)
        .context("the CRD has no spec properties")?;
    Ok(properties
        .iter()
        .map(|(field, schema)| {
            let description = schema["description"].as_str().unwrap_or_default();
            let start: Vec<_> = description.split_whitespace().take(6).collect();
            (field.clone(), start.join(" "))
        })
        .collect())
}

#[tokio::test]
async fn crds_install_and_explain_shows_the_docs() -> Result<()> {
    apply_crds()?;
    let docs = spec_field_docs(cluster().client().await?).await?;
    for field in ["components", "environments", "schedule"] {
        let doc = docs.get(field).map(String::as_str).unwrap_or_default();
        ensure!(
            !doc.is_empty(),
            "spec.{field} has no description in the CRD"
        );
    }
    // The API server publishes the schema shortly after the CRD is
    // established.
    let explain = eventually(
        "kubectl explain packitdeployment.spec",
        DEFAULT_TIMEOUT,
        || async { Ok(kubectl(&["explain", "packitdeployment.spec"]).ok()) },
    )
    .await?;
    let explain = squash_whitespace(&explain);
    ensure!(
        explain.contains("A release train"),
        "spec's description missing from: {explain}"
    );
    for field in ["components", "environments", "schedule"] {
        // "components <[]Object> -required- The images of this train, ..."
        let doc = &docs[field];
        let at = explain
            .find(&format!(" {field} <"))
            .with_context(|| format!("field {field} missing from: {explain}"))?;
        ensure!(
            explain[at..].contains(doc.as_str()),
            "description of {field} ({doc:?}) missing from: {explain}"
        );
    }
    // The verification checks' fields are documented too.
    for (path, fields) in [
        ("metrics", &["query", "thresholdRange", "onNoData"][..]),
        ("jobs", &["template", "timeout"][..]),
    ] {
        let field = format!("packitdeployment.spec.environments.health.{path}");
        let explain = squash_whitespace(&kubectl(&["explain", &field])?);
        for f in fields {
            ensure!(
                explain.contains(&format!(" {f} <")),
                "{f} missing from kubectl explain {field}: {explain}"
            );
        }
    }
    Ok(())
}

fn packit_deployments(ns: &TestNs) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("packit.dev", "v1alpha1", "PackitDeployment");
    Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk))
}

/// The example PackitDeployment from `examples/`, moved into `ns`.
fn example_deployment(ns: &TestNs) -> Result<DynamicObject> {
    let path = support::cluster::repo_root().join("examples/packit-service.yaml");
    let mut value: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path)?)?;
    value["metadata"] = json!({ "name": "packit-service", "namespace": ns.name });
    Ok(serde_json::from_value(value)?)
}

#[tokio::test]
async fn api_server_rejects_an_invalid_packit_deployment_with_the_schema_message() -> Result<()> {
    apply_crds()?;
    let ns = TestNs::new("invalid-pkd").await?;
    let api = packit_deployments(&ns);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    // The example itself is valid, so the rejection below is the edit's.
    let valid = example_deployment(&ns)?;
    api.create(&dry_run, &valid)
        .await
        .context("the example PackitDeployment should be accepted")?;

    let mut invalid = valid;
    invalid.data["spec"]["components"] = json!([]);
    let err = api
        .create(&PostParams::default(), &invalid)
        .await
        .err()
        .context("a PackitDeployment without components was accepted")?;
    let kube::Error::Api(status) = err else {
        anyhow::bail!("expected a validation error from the API server, got {err}");
    };
    ensure!(status.code == 422, "expected 422 Invalid, got {status:?}");
    ensure!(
        status.message.contains("spec.components")
            && status.message.contains("should have at least 1 items"),
        "message does not name spec.components' minItems: {}",
        status.message
    );
    Ok(())
}

#[tokio::test]
async fn deployment_and_statefulset_roll_out_on_fake_nodes() -> Result<()> {
    let ns = TestNs::new("rollout").await?;
    let pp = PostParams::default();
    let deployments = ns.api::<Deployment>();
    let statefulsets = ns.api::<StatefulSet>();
    deployments
        .create(&pp, &deployment("web", IMAGE, 2, SimMode::Ready)?)
        .await?;
    statefulsets
        .create(&pp, &statefulset("db", IMAGE, 2, SimMode::Ready)?)
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
    for app in ["web", "db"] {
        let pods = pods_of(&ns, app).await?;
        ensure!(
            pods.len() == 2,
            "{app}: expected 2 pods, found {}",
            pods.len()
        );
        for pod in &pods {
            let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
            ensure!(
                node.is_some_and(|n| n.starts_with("kwok-node-")) && pod_ready(pod),
                "{app}: pod {:?} is not ready on a fake node",
                pod.metadata.name
            );
        }
    }

    // A new image rolls out to both: the old pods go away, the new ones
    // become ready.
    let v2 = "registry.invalid/packit/app:v2";
    let patch = json!({ "spec": { "template": { "spec": {
        "containers": [{ "name": "app", "image": v2 }]
    }}}});
    let params = PatchParams::default();
    deployments
        .patch("web", &params, &Patch::Strategic(&patch))
        .await?;
    statefulsets
        .patch("db", &params, &Patch::Strategic(&patch))
        .await?;
    wait_for(
        &deployments,
        "web",
        "web rolled out to v2",
        DEFAULT_TIMEOUT,
        deployment_rolled_out,
    )
    .await?;
    wait_for(
        &statefulsets,
        "db",
        "db rolled out to v2",
        DEFAULT_TIMEOUT,
        statefulset_rolled_out,
    )
    .await?;
    for app in ["web", "db"] {
        let images = eventually("old pods to be gone", DEFAULT_TIMEOUT, || async {
            let pods = pods_of(&ns, app).await?;
            let images: Vec<String> = pods
                .iter()
                .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
                .collect();
            Ok((images.len() == 2).then_some(images))
        })
        .await?;
        ensure!(
            images.iter().all(|i| i == v2),
            "{app}: pods run {images:?} after the rollout"
        );
    }
    Ok(())
}

#[tokio::test]
async fn not_ready_template_never_becomes_available_and_exceeds_its_progress_deadline() -> Result<()>
{
    let ns = TestNs::new("not-ready").await?;
    let deployments = ns.api::<Deployment>();
    let mut stuck = deployment("stuck", IMAGE, 1, SimMode::NotReady)?;
    if let Some(spec) = stuck.spec.as_mut() {
        spec.progress_deadline_seconds = Some(5);
    }
    deployments.create(&PostParams::default(), &stuck).await?;

    let stuck = wait_for(
        &deployments,
        "stuck",
        "Progressing=False/ProgressDeadlineExceeded",
        DEFAULT_TIMEOUT,
        |d| {
            deployment_condition(d, "Progressing").is_some_and(|c| {
                c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
        },
    )
    .await?;
    let status = stuck.status.as_ref().context("no status")?;
    ensure!(
        status.available_replicas.unwrap_or(0) == 0 && status.ready_replicas.unwrap_or(0) == 0,
        "a not-ready pod was counted as available: {status:?}"
    );
    ensure!(
        deployment_condition(&stuck, "Available").is_some_and(|c| c.status == "False"),
        "Deployment reports Available: {status:?}"
    );
    // The pod did start (the Stage ran it); it is only not ready.
    let pods = pods_of(&ns, "stuck").await?;
    ensure!(pods.len() == 1, "expected 1 pod, found {}", pods.len());
    let pod = &pods[0];
    let running = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    ensure!(
        phase == Some("Running") && running && !pod_ready(pod),
        "expected a running, unready pod: {:?}",
        pod.status
    );
    Ok(())
}

#[tokio::test]
async fn crash_looping_pod_restart_count_grows() -> Result<()> {
    let ns = TestNs::new("crash-loop").await?;
    ns.api::<Deployment>()
        .create(
            &PostParams::default(),
            &deployment("crashy", IMAGE, 1, SimMode::CrashLoop)?,
        )
        .await?;
    let pod = eventually("a crashed pod", DEFAULT_TIMEOUT, || async {
        let pods = pods_of(&ns, "crashy").await?;
        Ok(pods.into_iter().find(|p| restart_count(p) >= 1))
    })
    .await?;
    let name = pod_name(&pod)?;
    let first = restart_count(&pod);
    let pod = wait_for(
        &ns.api::<Pod>(),
        &name,
        "two more restarts",
        DEFAULT_TIMEOUT,
        |p| restart_count(p) >= first + 2,
    )
    .await?;
    ensure!(!pod_ready(&pod), "a crash-looping pod is Ready");
    let last_exit = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.last_state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    ensure!(
        last_exit == Some(1),
        "last termination should be exit code 1, was {last_exit:?}"
    );
    Ok(())
}

#[tokio::test]
async fn one_job_succeeds_and_another_fails() -> Result<()> {
    let ns = TestNs::new("jobs").await?;
    let jobs = ns.api::<Job>();
    let pp = PostParams::default();
    jobs.create(&pp, &job("passes", IMAGE, SimMode::Ready)?)
        .await?;
    jobs.create(&pp, &job("fails", IMAGE, SimMode::Fail)?)
        .await?;

    let passed = wait_for(&jobs, "passes", "Complete", DEFAULT_TIMEOUT, |j| {
        job_condition(j, "Complete").is_some() || job_condition(j, "Failed").is_some()
    })
    .await?;
    let failed = wait_for(&jobs, "fails", "Failed", DEFAULT_TIMEOUT, |j| {
        job_condition(j, "Complete").is_some() || job_condition(j, "Failed").is_some()
    })
    .await?;

    let passed_status = passed.status.as_ref().context("no status")?;
    ensure!(
        job_condition(&passed, "Complete").is_some() && passed_status.succeeded == Some(1),
        "the default Job did not succeed: {passed_status:?}"
    );
    let failed_status = failed.status.as_ref().context("no status")?;
    ensure!(
        job_condition(&failed, "Failed")
            .is_some_and(|c| c.reason.as_deref() == Some("BackoffLimitExceeded"))
            && failed_status.failed == Some(1)
            && failed_status.succeeded.unwrap_or(0) == 0,
        "the failing Job did not fail: {failed_status:?}"
    );
    Ok(())
}

#[tokio::test]
async fn pushed_image_resolves_to_its_digest() -> Result<()> {
    let registry = &cluster().registry;
    let repository = format!("smoke/app-{}", std::process::id());
    let first = push_image(registry, &repository, "stable", "1111111").await?;
    ensure!(
        first.digest.starts_with("sha256:"),
        "digest {}",
        first.digest
    );
    ensure!(
        resolve_digest(registry, &repository, "stable").await? == first.digest,
        "the tag does not resolve to the pushed digest"
    );

    // The manifest and its config are served by digest and carry the
    // revision label.
    let manifest: Value = serde_json::from_slice(
        &fetch_verified(registry, &repository, "manifests", &first.digest).await?,
    )?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .context("manifest without config")?;
    let config: Value = serde_json::from_slice(
        &fetch_verified(registry, &repository, "blobs", config_digest).await?,
    )?;
    ensure!(
        config["config"]["Labels"][REVISION_LABEL] == "1111111",
        "revision label missing from {config}"
    );

    // Pushing the next revision moves the tag; the old digest stays.
    let second = push_image(registry, &repository, "stable", "2222222").await?;
    ensure!(second.digest != first.digest, "two revisions, one digest");
    ensure!(resolve_digest(registry, &repository, "stable").await? == second.digest);
    ensure!(resolve_digest(registry, &repository, &first.digest).await? == first.digest);
    Ok(())
}

#[test]
fn git_repo_scripts_history_served_as_file_url() -> Result<()> {
    let repo = GitRepo::new("stable")?;
    let base = repo.head()?;
    repo.merge_pr(12, "fix-crash", "Fix a crash on empty input")?;
    repo.squash_pr(13, "Add a health endpoint")?;
    let log = repo.git(&[
        "log",
        "--first-parent",
        "--format=%s",
        &format!("{base}..stable"),
    ])?;
    ensure!(
        log.lines().collect::<Vec<_>>()
            == [
                "Add a health endpoint (#13)",
                "Merge pull request #12 from packit/fix-crash"
            ],
        "unexpected history:\n{log}"
    );

    let clone = tempfile::tempdir()?;
    let target = clone.path().join("clone");
    let status = std::process::Command::new("git")
        .args(["clone", "--quiet", &repo.url()])
        .arg(&target)
        .status()?;
    ensure!(status.success(), "git clone {} failed", repo.url());
    let cloned = std::process::Command::new("git")
        .current_dir(&target)
        .args(["rev-parse", "HEAD"])
        .output()?;
    ensure!(String::from_utf8(cloned.stdout)?.trim() == repo.head()?);
    Ok(())
}
