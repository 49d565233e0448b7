//! Reading the target workloads, whatever their kind.

use std::fmt;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::{Api, Client};

use super::DeployError;
use crate::api::deployment::WorkloadKind;
use crate::api::release::TargetImage;

/// A workload by kind and name (in a namespace given separately).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", kind_name(self.kind), self.name)
    }
}

/// The kind as written in manifests and in `TargetImage::kind`.
pub fn kind_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::StatefulSet => "StatefulSet",
    }
}

/// Parses `TargetImage::kind`.
pub fn parse_kind(kind: &str) -> Result<WorkloadKind, DeployError> {
    match kind {
        "Deployment" => Ok(WorkloadKind::Deployment),
        "StatefulSet" => Ok(WorkloadKind::StatefulSet),
        other => Err(DeployError::UnknownKind(other.to_owned())),
    }
}

/// One workload's target containers and the image each should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadImages {
    pub workload: WorkloadRef,
    /// `(container, image)`, in the order first given.
    pub containers: Vec<(String, String)>,
}

/// Groups images by workload, in the order workloads first appear. The same
/// container given twice must get the same image.
pub fn group_images(images: &[TargetImage]) -> Result<Vec<WorkloadImages>, DeployError> {
    let mut groups: Vec<WorkloadImages> = Vec::new();
    for target in images {
        let workload = WorkloadRef {
            kind: parse_kind(&target.kind)?,
            name: target.name.clone(),
        };
        let index = match groups.iter().position(|g| g.workload == workload) {
            Some(i) => i,
            None => {
                groups.push(WorkloadImages {
                    workload,
                    containers: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let group = &mut groups[index];
        match group
            .containers
            .iter()
            .find(|(name, _)| *name == target.container)
        {
            Some((_, image)) if *image == target.image => {}
            Some((_, image)) => {
                return Err(DeployError::ConflictingImages {
                    workload: group.workload.clone(),
                    container: target.container.clone(),
                    first: image.clone(),
                    second: target.image.clone(),
                });
            }
            None => group
                .containers
                .push((target.container.clone(), target.image.clone())),
        }
    }
    Ok(groups)
}

/// A Deployment or a StatefulSet as read from the cluster.
#[derive(Debug, Clone)]
pub enum Workload {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
}

impl Workload {
    /// Reads a workload; a missing one is an error that names it.
    pub async fn get(
        client: &Client,
        namespace: &str,
        workload: &WorkloadRef,
    ) -> Result<Self, DeployError> {
        let read_error = |source| DeployError::Read {
            workload: workload.clone(),
            namespace: namespace.to_owned(),
            source,
        };
        let found = match workload.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), namespace)
                .get_opt(&workload.name)
                .await
                .map_err(read_error)?
                .map(|d| Self::Deployment(Box::new(d))),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .get_opt(&workload.name)
                .await
                .map_err(read_error)?
                .map(|s| Self::StatefulSet(Box::new(s))),
        };
        found.ok_or_else(|| DeployError::NotFound {
            workload: workload.clone(),
            namespace: namespace.to_owned(),
        })
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Deployment(d) => &d.metadata,
            Self::StatefulSet(s) => &s.metadata,
        }
    }

    pub fn template(&self) -> Option<&PodTemplateSpec> {
        match self {
            Self::Deployment(d) => d.spec.as_ref().map(|s| &s.template),
            Self::StatefulSet(s) => s.spec.as_ref().map(|s| &s.template),
        }
    }

    pub fn selector(&self) -> Option<&LabelSelector> {
        match self {
            Self::Deployment(d) => d.spec.as_ref().map(|s| &s.selector),
            Self::StatefulSet(s) => s.spec.as_ref().map(|s| &s.selector),
        }
    }

    /// The pod template's (regular) containers.
    pub fn containers(&self) -> &[Container] {
        self.template()
            .and_then(|t| t.spec.as_ref())
            .map_or(&[], |s| s.containers.as_slice())
    }

    /// The image of a template container: `Ok(None)` when the container has
    /// no image, an error when there is no such container.
    pub fn container_image(
        &self,
        workload: &WorkloadRef,
        namespace: &str,
        container: &str,
    ) -> Result<Option<&str>, DeployError> {
        self.containers()
            .iter()
            .find(|c| c.name == container)
            .map(|c| c.image.as_deref())
            .ok_or_else(|| DeployError::NoContainer {
                workload: workload.clone(),
                namespace: namespace.to_owned(),
                container: container.to_owned(),
            })
    }
}
