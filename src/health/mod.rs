//! Whether a deploy is healthy: rollout state and container restarts of the
//! target workloads, HTTP checks, metric checks and smoke-test Jobs.

mod http;
mod prometheus;
mod restarts;
mod rollout;
pub mod smoke;

use std::sync::Arc;

use kube::core::Selector;

use crate::api::release::TargetImage;
use crate::client::CachedPod;
use crate::deploy::{DeployError, Workload, WorkloadRef, group_images};
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

impl From<DeployError> for HealthError {
    fn from(error: DeployError) -> Self {
        Self::Workload(Box::new(error))
    }
}

/// Reports, per workload of `images`, the rollout state and the restarts
/// of the target containers that run the wanted image: `find` gives the
/// workloads as the reconcile read them (none for a missing one, which is
/// an error, as is a missing container), and the restarts are counted over
/// each workload's pods among `pods` (the train's, from the pod cache; the
/// workload's selector picks its own).
pub fn assess<'a>(
    namespace: &str,
    find: impl Fn(&WorkloadRef) -> Option<&'a Workload>,
    pods: &[Arc<CachedPod>],
    images: &[TargetImage],
) -> Result<Observation, HealthError> {
    let mut observation = Observation {
        images_match: true,
        workloads: Vec::new(),
    };
    for group in group_images(images)? {
        let object = find(&group.workload).ok_or_else(|| DeployError::NotFound {
            workload: group.workload.clone(),
            namespace: namespace.to_owned(),
        })?;
        for (container, image) in &group.containers {
            let current = object.container_image(&group.workload, namespace, container)?;
            observation.images_match &= current == Some(image.as_str());
        }
        let rollout = match object {
            Workload::Deployment(d) => deployment_rollout(d),
            Workload::StatefulSet(s) => statefulset_rollout(s),
        };
        let selector = pod_selector(object, &group.workload, namespace)?;
        observation.workloads.push(WorkloadHealth {
            restarts: restarts_since_deploy(
                selected(pods, namespace, &selector),
                &group.containers,
            ),
            name: group.workload.name,
            rollout,
        });
    }
    Ok(observation)
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
