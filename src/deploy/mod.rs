//! Putting images on workloads: read the current images (recorded so a
//! rollback never depends on ReplicaSet history) and set new ones by
//! server-side apply.
//!
//! Each write is a partial apply that names only the target containers'
//! `name` and `image` plus two labels, under one field manager. Server-side
//! apply merges `containers` by name, so other containers and every other
//! field stay with whoever set them.

mod cache;
mod claim;
mod patch;
mod workload;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::api::deployment::{Target, WorkloadKind};
use crate::api::release::TargetImage;

pub use cache::{Cached, Claimed, WorkloadCache, workload_cache};
pub use claim::{
    Claim, Drift, WriteLog, claim_of, drift, fighting_with, held_value, hold_of, release,
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
    /// Workloads that were nobody's and are `owner`'s now.
    pub claimed: Vec<WorkloadRef>,
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
    #[error("{workload} in namespace {namespace} is driven by PackitDeployment {by}")]
    Claimed {
        workload: WorkloadRef,
        namespace: String,
        by: String,
    },
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
    for target in targets {
        let workload = WorkloadRef {
            kind: target.kind,
            name: target.name.clone(),
        };
        // Several targets may share a workload: read it once.
        if !read.iter().any(|(r, _)| *r == workload) {
            let object = Workload::get(client, namespace, &workload).await?;
            read.push((workload, object));
        }
    }
    images_of(namespace, targets, |w| {
        read.iter().find(|(r, _)| r == w).map(|(_, o)| o)
    })
}

/// The image of each target's container in workloads already read (`find`
/// gives the object of a workload, `None` when it does not exist), in the
/// order of `targets`.
pub fn images_of<'a>(
    namespace: &str,
    targets: &[Target],
    find: impl Fn(&WorkloadRef) -> Option<&'a Workload>,
) -> Result<Vec<TargetImage>, DeployError> {
    targets
        .iter()
        .map(|target| {
            let workload = WorkloadRef {
                kind: target.kind,
                name: target.name.clone(),
            };
            let object = find(&workload).ok_or_else(|| DeployError::NotFound {
                workload: workload.clone(),
                namespace: namespace.to_owned(),
            })?;
            let image = object
                .container_image(&workload, namespace, &target.container)?
                .ok_or_else(|| DeployError::NoImage {
                    workload: workload.clone(),
                    namespace: namespace.to_owned(),
                    container: target.container.clone(),
                })?;
            Ok(TargetImage {
                kind: kind_name(target.kind).to_owned(),
                name: target.name.clone(),
                container: target.container.clone(),
                image: image.to_owned(),
            })
        })
        .collect()
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
    apply_observed(client, None, namespace, owner, images, |_| None).await
}

/// [`apply_images`] over workloads the caller has just read (`observed`;
/// the others are read here), remembering each write in `cache` so that it
/// is not answered from there before it shows the write.
pub async fn apply_observed<'a>(
    client: &Client,
    cache: Option<&WorkloadCache>,
    namespace: &str,
    owner: &Owner,
    images: &[TargetImage],
    observed: impl Fn(&WorkloadRef) -> Option<&'a Workload>,
) -> Result<Applied, DeployError> {
    check_label_value(&owner.name)?;
    check_label_value(&owner.namespace)?;
    let groups = group_images(images)?;
    let labels = [
        (DEPLOYMENT_LABEL, owner.name.as_str()),
        (DEPLOYMENT_NAMESPACE_LABEL, owner.namespace.as_str()),
    ];
    // Check every workload before writing any, so a missing workload or
    // container stops the deploy before it starts.
    let mut plans = Vec::with_capacity(groups.len());
    for group in &groups {
        let plan = match observed(&group.workload) {
            Some(object) => plan_write(object, group, namespace, owner, &labels)?,
            None => {
                let object = Workload::get(client, namespace, &group.workload).await?;
                plan_write(&object, group, namespace, owner, &labels)?
            }
        };
        plans.push(plan);
    }
    let write = Write {
        client,
        namespace,
        owner,
        labels: &labels,
    };
    // Side by side: a rollback waits for the slowest write, not their sum.
    let outcomes = futures::future::try_join_all(
        groups
            .iter()
            .zip(plans)
            .map(|(group, plan)| write.one(group, plan)),
    )
    .await?;
    let mut applied = Applied::default();
    for (group, outcome) in groups.iter().zip(outcomes) {
        let workload = group.workload.clone();
        match outcome {
            Outcome::Unchanged => applied.unchanged.push(workload),
            Outcome::Written {
                claimed,
                generation,
            } => {
                if let (Some(cache), Some(generation)) = (cache, generation) {
                    cache.wrote(namespace, &workload, generation);
                }
                if claimed {
                    applied.claimed.push(workload.clone());
                }
                applied.written.push(workload);
            }
        }
    }
    Ok(applied)
}

/// One workload's apply.
enum Outcome {
    Unchanged,
    /// The generation the write made (when the API server said).
    Written {
        claimed: bool,
        generation: Option<i64>,
    },
}

struct Write<'a> {
    client: &'a Client,
    namespace: &'a str,
    owner: &'a Owner,
    labels: &'a [(&'a str, &'a str)],
}

impl Write<'_> {
    async fn one(
        &self,
        group: &WorkloadImages,
        mut plan: WritePlan,
    ) -> Result<Outcome, DeployError> {
        let (client, namespace) = (self.client, self.namespace);
        let owner_value = self.owner.claim_value();
        let mut attempts = 0;
        loop {
            let Some(containers) = &plan.containers else {
                return Ok(Outcome::Unchanged);
            };
            let mut patch = workload_patch(&group.workload, self.labels, &owner_value, containers);
            if let Some(rv) = &plan.claim_on {
                patch["metadata"]["resourceVersion"] = json!(rv);
            }
            match server_side_apply(client, namespace, &group.workload, &patch).await {
                Ok(generation) => {
                    return Ok(Outcome::Written {
                        claimed: plan.claim_on.is_some(),
                        generation,
                    });
                }
                // A claim on a version that is gone (controllers write
                // status all the time): read again; another train may have
                // won it meanwhile.
                Err(DeployError::Apply {
                    source: kube::Error::Api(s),
                    ..
                }) if s.code == 409 && plan.claim_on.is_some() && attempts < CLAIM_ATTEMPTS => {
                    attempts += 1;
                    let object = Workload::get(client, namespace, &group.workload).await?;
                    plan = plan_write(&object, group, namespace, self.owner, self.labels)?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// How often a claim is tried again on a fresh read.
const CLAIM_ATTEMPTS: u32 = 5;

/// What one workload's write is, as read.
struct WritePlan {
    /// `None`: up to date and ours already.
    containers: Option<Vec<(String, String)>>,
    /// A free workload is claimed by the write itself, on the version read:
    /// of two trains racing for it, one write fails.
    claim_on: Option<String>,
}

fn plan_write(
    object: &Workload,
    group: &WorkloadImages,
    namespace: &str,
    owner: &Owner,
    labels: &[(&str, &str)],
) -> Result<WritePlan, DeployError> {
    let claim = claim_of(object, owner);
    if let Claim::Other(by) = claim {
        return Err(DeployError::Claimed {
            workload: group.workload.clone(),
            namespace: namespace.to_owned(),
            by,
        });
    }
    Ok(WritePlan {
        containers: containers_to_apply(object, group, namespace, labels, claim == Claim::Ours)?,
        claim_on: match claim {
            Claim::Free => object.metadata().resource_version.clone(),
            _ => None,
        },
    })
}

/// Applies `patch`; the generation the write made.
async fn server_side_apply(
    client: &Client,
    namespace: &str,
    workload: &WorkloadRef,
    patch: &serde_json::Value,
) -> Result<Option<i64>, DeployError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = workload.name.as_str();
    let result = match workload.kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), namespace)
            .patch(name, &params, &Patch::Apply(patch))
            .await
            .map(|d| d.metadata.generation),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .patch(name, &params, &Patch::Apply(patch))
            .await
            .map(|s| s.metadata.generation),
    };
    result.map_err(|source| DeployError::Apply {
        workload: workload.clone(),
        namespace: namespace.to_owned(),
        source,
    })
}

/// The `(container, image)` pairs to apply to a workload as read, or `None`
/// when it already has the images and labels and is `claimed`. Every
/// target container must exist: the apply would add a missing one.
pub fn containers_to_apply(
    object: &Workload,
    group: &WorkloadImages,
    namespace: &str,
    labels: &[(&str, &str)],
    claimed: bool,
) -> Result<Option<Vec<(String, String)>>, DeployError> {
    let mut up_to_date = claimed;
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
