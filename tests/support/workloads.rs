//! Workloads for the fake nodes. kwok drives each pod according to its
//! `sim.packit.dev/mode` label (see `hack/kwok/stages.yaml`), so a test
//! chooses the outcome through the pod template.

use anyhow::Result;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, StatefulSet};
use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

/// The pod label the kwok Stages read.
pub const SIM_MODE_LABEL: &str = "sim.packit.dev/mode";

/// What the fake kubelet does with a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimMode {
    /// Runs and becomes Ready; a Job's pod then succeeds. The default.
    Ready,
    /// Runs but never becomes Ready.
    NotReady,
    /// Never Ready; the container crashes every couple of seconds and its
    /// restart count grows.
    CrashLoop,
    /// Fails with exit code 1 (for Jobs and bare pods).
    Fail,
}

impl SimMode {
    /// The label value the Stages match on.
    pub fn label(self) -> &'static str {
        match self {
            SimMode::Ready => "ready",
            SimMode::NotReady => "not-ready",
            SimMode::CrashLoop => "crash-loop",
            SimMode::Fail => "fail",
        }
    }
}

/// A pod template with one container `app` running `image`, labelled
/// `app: <app>` and with the given simulation mode.
///
/// Without a grace period a deleted pod is gone at once. With one, kwok
/// removes it, by name and without a UID precondition: a removal queued for
/// a StatefulSet's old pod then deletes the new pod of the same name, again
/// and again, and the StatefulSet never rolls out.
pub fn pod_template(app: &str, image: &str, mode: SimMode) -> Result<PodTemplateSpec> {
    Ok(serde_json::from_value(json!({
        "metadata": { "labels": { "app": app, SIM_MODE_LABEL: mode.label() } },
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{ "name": "app", "image": image }]
        }
    }))?)
}

/// Makes the pods of `app` crash-loop (with `image`, only those running
/// it), as a bad release would after it rolled out. A pod gone meanwhile
/// (an old one of a rollout) is skipped.
pub async fn crash_loop_pods(pods: &Api<Pod>, app: &str, image: Option<&str>) -> kube::Result<()> {
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    let patch = json!({ "metadata": { "labels": { SIM_MODE_LABEL: SimMode::CrashLoop.label() } } });
    for pod in list.items {
        let runs = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.as_deref());
        if image.is_some_and(|wanted| runs != Some(wanted)) {
            continue;
        }
        match pods
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// A Deployment of `replicas` pods of `image`, selecting `app: <name>`.
pub fn deployment(name: &str, image: &str, replicas: i32, mode: SimMode) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": pod_template(name, image, mode)?,
        }
    }))?)
}

/// A StatefulSet of `replicas` pods of `image`, selecting `app: <name>`.
pub fn statefulset(name: &str, image: &str, replicas: i32, mode: SimMode) -> Result<StatefulSet> {
    Ok(serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": { "matchLabels": { "app": name } },
            "template": pod_template(name, image, mode)?,
        }
    }))?)
}

/// A Job that runs one pod once and is not retried, so `SimMode::Fail` fails
/// the Job and `SimMode::Ready` completes it.
pub fn job(name: &str, image: &str, mode: SimMode) -> Result<Job> {
    let mut template = pod_template(name, image, mode)?;
    if let Some(spec) = template.spec.as_mut() {
        spec.restart_policy = Some("Never".into());
    }
    Ok(serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "backoffLimit": 0, "template": template }
    }))?)
}

/// The Deployment's condition of `type_`, if it has one.
pub fn deployment_condition<'a>(
    deployment: &'a Deployment,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    deployment
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The controller has seen the latest spec and every replica is updated and
/// available.
pub fn deployment_rolled_out(deployment: &Deployment) -> bool {
    let (Some(spec), Some(status)) = (&deployment.spec, &deployment.status) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    status.observed_generation >= deployment.metadata.generation
        && status.updated_replicas == Some(want)
        && status.replicas == Some(want)
        && status.available_replicas == Some(want)
        && deployment_condition(deployment, "Available").is_some_and(|c| c.status == "True")
}

/// The controller has seen the latest spec, every replica runs the update
/// revision and is ready and available.
pub fn statefulset_rolled_out(sts: &StatefulSet) -> bool {
    let (Some(spec), Some(status)) = (&sts.spec, &sts.status) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    status.observed_generation >= sts.metadata.generation
        && status.current_revision.is_some()
        && status.current_revision == status.update_revision
        && status.updated_replicas == Some(want)
        && status.ready_replicas == Some(want)
        && status.available_replicas == Some(want)
}

/// The Job has condition `type_` with status "True" (`Complete`, `Failed`).
pub fn job_condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// The pod's Ready condition is "True".
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Restarts of the pod's first container.
pub fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .map_or(0, |c| c.restart_count)
}
