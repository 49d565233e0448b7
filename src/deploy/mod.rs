//! Putting images on workloads: read the current images (recorded so a
//! rollback never depends on ReplicaSet history) and set new ones by
//! server-side apply.
//!
//! Each write is a partial apply that names only the target containers'
//! `name` and `image` plus two labels, under one field manager. Server-side
//! apply merges `containers` by name, so other containers and every other
//! field stay with whoever set them.

mod claim;
mod patch;
mod workload;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use crate::api::deployment::{Target, WorkloadKind};
use crate::api::release::TargetImage;

pub use claim::{
    Claim, Drift, WriteLog, claim, claim_of, drift, fighting_with, held_value, hold_of, release,
    set_annotation,
};
pub use patch::{owned_container_images, workload_patch};
pub use workload::{Workload, WorkloadImages, WorkloadRef, group_images, kind_name, parse_kind};

/// The field manager of every write the operator makes to workloads.
pub const FIELD_MANAGER: &str = "packit-operator";

/// Labels naming the PackitDeployment (and its namespace) that deploys a
/// workload, set on the workload and its pod template.
pub use crate::labels::{
    DEPLOYMENT as DEPLOYMENT_LABEL, DEPLOYMENT_NAMESPACE as DEPLOYMENT_NAMESPACE_LABEL,
};

/// The PackitDeployment on whose behalf images are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
}

/// What `apply_images` did, per workload, in the order the workloads were
/// first named.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// Workloads that were written.
    pub written: Vec<WorkloadRef>,
    /// Workloads that already had the images and labels; not written.
    pub unchanged: Vec<WorkloadRef>,
}

/// Why images could not be read or applied.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("unknown workload kind {0:?}: expected Deployment or StatefulSet")]
    UnknownKind(String),
    #[error("{workload} not found in namespace {namespace}")]
    NotFound {
        workload: WorkloadRef,
        namespace: String,
    },
    #[error("{workload} in namespace {namespace} has no container {container:?}")]
    NoContainer {
        workload: WorkloadRef,
        namespace: String,
        container: String,
    },
    #[error("{workload} in namespace {namespace}: container {container:?} has no image")]
    NoImage {
        workload: WorkloadRef,
        namespace: String,
        container: String,
    },
    #[error("{workload}: container {container:?} is given two images, {first} and {second}")]
    ConflictingImages {
        workload: WorkloadRef,
        container: String,
        first: String,
        second: String,
    },
    #[error(
        "{value:?} cannot be a label value (1 to 63 letters, digits, '-', '_' or '.', alphanumeric at both ends)"
    )]
    LabelValue { value: String },
    #[error("reading {workload} in namespace {namespace}: {source}")]
    Read {
        workload: WorkloadRef,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("applying images to {workload} in namespace {namespace}: {source}")]
    Apply {
        workload: WorkloadRef,
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

/// Reads the current image of each target's container, in the order of
/// `targets`. Errors name the workload when it or the container is missing.
pub async fn current_images(
    client: &Client,
    namespace: &str,
    targets: &[Target],
) -> Result<Vec<TargetImage>, DeployError> {
    let mut read: Vec<(WorkloadRef, Workload)> = Vec::new();
    let mut images = Vec::with_capacity(targets.len());
    for target in targets {
        let workload = WorkloadRef {
            kind: target.kind,
            name: target.name.clone(),
        };
        // Several targets may share a workload: read it once.
        let object = match read.iter().position(|(r, _)| *r == workload) {
            Some(i) => &read[i].1,
            None => {
                let object = Workload::get(client, namespace, &workload).await?;
                read.push((workload.clone(), object));
                &read[read.len() - 1].1
            }
        };
        let image = object
            .container_image(&workload, namespace, &target.container)?
            .ok_or_else(|| DeployError::NoImage {
                workload: workload.clone(),
                namespace: namespace.to_owned(),
                container: target.container.clone(),
            })?;
        images.push(TargetImage {
            kind: kind_name(target.kind).to_owned(),
            name: target.name.clone(),
            container: target.container.clone(),
            image: image.to_owned(),
        });
    }
    Ok(images)
}

/// Sets each target container's image by server-side apply under
/// [`FIELD_MANAGER`] (forced), one apply per workload, and labels the
/// workload and its pod template with the owner. A workload that already
/// has the images and labels is not written at all, so applying the same
/// release twice changes nothing.
pub async fn apply_images(
    client: &Client,
    namespace: &str,
    owner: &Owner,
    images: &[TargetImage],
) -> Result<Applied, DeployError> {
    check_label_value(&owner.name)?;
    check_label_value(&owner.namespace)?;
    let groups = group_images(images)?;
    let labels = [
        (DEPLOYMENT_LABEL, owner.name.as_str()),
        (DEPLOYMENT_NAMESPACE_LABEL, owner.namespace.as_str()),
    ];
    // Read and check every workload before writing any, so a missing
    // workload or container stops the deploy before it starts.
    let mut plans = Vec::with_capacity(groups.len());
    for group in groups {
        let object = Workload::get(client, namespace, &group.workload).await?;
        let containers = containers_to_apply(&object, &group, namespace, &labels)?;
        plans.push((group.workload, containers));
    }

    let mut applied = Applied::default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for (workload, containers) in plans {
        let Some(containers) = containers else {
            applied.unchanged.push(workload);
            continue;
        };
        let patch = workload_patch(&workload, &labels, &containers);
        let name = workload.name.as_str();
        let result = match workload.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), namespace)
                .patch(name, &params, &Patch::Apply(&patch))
                .await
                .map(drop),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .patch(name, &params, &Patch::Apply(&patch))
                .await
                .map(drop),
        };
        result.map_err(|source| DeployError::Apply {
            workload: workload.clone(),
            namespace: namespace.to_owned(),
            source,
        })?;
        applied.written.push(workload);
    }
    Ok(applied)
}

/// The `(container, image)` pairs to apply to a workload as read, or `None`
/// when it already has the images and labels. Every target container must
/// exist: the apply would add a missing one.
pub fn containers_to_apply(
    object: &Workload,
    group: &WorkloadImages,
    namespace: &str,
    labels: &[(&str, &str)],
) -> Result<Option<Vec<(String, String)>>, DeployError> {
    let mut up_to_date = true;
    for (container, image) in &group.containers {
        let current = object.container_image(&group.workload, namespace, container)?;
        up_to_date &= current == Some(image.as_str());
    }
    let template_labels = object
        .template()
        .and_then(|t| t.metadata.as_ref()?.labels.as_ref());
    up_to_date &= has_labels(object.metadata().labels.as_ref(), labels)
        && has_labels(template_labels, labels);
    if up_to_date {
        return Ok(None);
    }

    // Containers this manager set before but no target names now keep their
    // current image in the apply: leaving them out would remove an image
    // only this manager owns.
    let mut containers = group.containers.clone();
    for name in owned_container_images(object.metadata(), FIELD_MANAGER) {
        if containers.iter().any(|(c, _)| *c == name) {
            continue;
        }
        let current = object.containers().iter().find(|c| c.name == name);
        if let Some(image) = current.and_then(|c| c.image.clone()) {
            containers.push((name, image));
        }
    }
    Ok(Some(containers))
}

fn has_labels(
    present: Option<&std::collections::BTreeMap<String, String>>,
    wanted: &[(&str, &str)],
) -> bool {
    wanted
        .iter()
        .all(|(k, v)| present.and_then(|p| p.get(*k)).map(String::as_str) == Some(*v))
}

/// Label values: 1 to 63 characters, `[A-Za-z0-9._-]`, alphanumeric at both
/// ends. Object names longer than that cannot be labels. (Kubernetes also
/// allows an empty value, but an owner always has a name.)
fn check_label_value(value: &str) -> Result<(), DeployError> {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let ok = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && alnum(value.chars().next())
        && alnum(value.chars().next_back());
    if ok {
        Ok(())
    } else {
        Err(DeployError::LabelValue {
            value: value.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests;
