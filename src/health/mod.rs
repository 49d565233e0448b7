//! Whether a deploy is healthy: rollout state and container restarts of the
//! target workloads, HTTP checks, metric checks and smoke-test Jobs.

mod http;
mod prometheus;
mod restarts;
mod rollout;
pub mod smoke;

use std::sync::Arc;

use kube::Client;
use kube::core::Selector;

use crate::api::release::TargetImage;
use crate::client::CachedPod;
use crate::deploy::{DeployError, Workload, WorkloadImages, WorkloadRef, group_images};
use crate::plan::WorkloadHealth;

pub use http::HttpProber;
pub use prometheus::{MetricProber, MetricQuery, PrometheusAuth};
pub use restarts::{restarts_since_deploy, runs_image, selected};
pub use rollout::{PROGRESS_DEADLINE_EXCEEDED, deployment_rollout, statefulset_rollout};

/// What `observe` saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Every target container's template already has the wanted image. When
    /// not, the workloads still describe an earlier deploy and the report is
    /// stale.
    pub images_match: bool,
    /// One per workload, in the order workloads first appear in the images.
    pub workloads: Vec<WorkloadHealth>,
}

/// Why health could not be observed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// Reading a workload failed (boxed: it is large, and rare).
    #[error(transparent)]
    Workload(Box<DeployError>),
    #[error("{workload} in namespace {namespace} has no usable pod selector: {reason}")]
    Selector {
        workload: WorkloadRef,
        namespace: String,
        reason: String,
    },
    #[error("building the HTTP client: {0}")]
    HttpClient(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl HealthError {
    /// The cluster did not answer (see `remote::is_unreachable`).
    pub fn is_unreachable(&self) -> bool {
        match self {
            HealthError::Workload(e) => {
                matches!(&**e, DeployError::Read { source, .. } if crate::remote::is_unreachable(source))
            }
            _ => false,
        }
    }
}

impl From<DeployError> for HealthError {
    fn from(error: DeployError) -> Self {
        Self::Workload(Box::new(error))
    }
}

/// Reads the workloads of `images` and reports, per workload, the rollout
/// state and the restarts of the target containers that run the wanted
/// image, counted over the workload's pods among `pods` (the train's, from
/// the pod cache; each workload's selector picks its own). A missing
/// workload or container is an error.
pub async fn observe(
    client: &Client,
    namespace: &str,
    pods: &[Arc<CachedPod>],
    images: &[TargetImage],
) -> Result<Observation, HealthError> {
    // The workloads are read together: a failing one is found sooner.
    let reads = group_images(images)?
        .into_iter()
        .map(|group| observe_workload(client, namespace, pods, group));
    let mut observation = Observation {
        images_match: true,
        workloads: Vec::new(),
    };
    for (images_match, workload) in futures::future::try_join_all(reads).await? {
        observation.images_match &= images_match;
        observation.workloads.push(workload);
    }
    Ok(observation)
}

/// One workload's health, and whether its target containers run the
/// wanted images.
async fn observe_workload(
    client: &Client,
    namespace: &str,
    pods: &[Arc<CachedPod>],
    group: WorkloadImages,
) -> Result<(bool, WorkloadHealth), HealthError> {
    let object = Workload::get(client, namespace, &group.workload).await?;
    let mut images_match = true;
    for (container, image) in &group.containers {
        let current = object.container_image(&group.workload, namespace, container)?;
        images_match &= current == Some(image.as_str());
    }
    let rollout = match &object {
        Workload::Deployment(d) => deployment_rollout(d),
        Workload::StatefulSet(s) => statefulset_rollout(s),
    };
    let selector = pod_selector(&object, &group.workload, namespace)?;
    let health = WorkloadHealth {
        name: group.workload.name,
        rollout,
        restarts: restarts_since_deploy(selected(pods, namespace, &selector), &group.containers),
    };
    Ok((images_match, health))
}

fn pod_selector(
    object: &Workload,
    workload: &WorkloadRef,
    namespace: &str,
) -> Result<Selector, HealthError> {
    let error = |reason: String| HealthError::Selector {
        workload: workload.clone(),
        namespace: namespace.to_owned(),
        reason,
    };
    let selector: Selector = object
        .selector()
        .cloned()
        .ok_or_else(|| error("none".to_owned()))?
        .try_into()
        .map_err(|e: kube::core::ParseExpressionError| error(e.to_string()))?;
    // An empty selector would select every pod of the namespace.
    if selector.selects_all() {
        return Err(error("it selects every pod".to_owned()));
    }
    Ok(selector)
}

#[cfg(test)]
mod tests;
