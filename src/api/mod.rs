//! The custom resources: `PackitDeployment` (what a team writes) and
//! `PackitRelease` (one per build, written by the operator).

pub mod changelog;
pub mod checks;
pub mod cron;
pub mod deployment;
pub mod duration;
pub mod release;
mod schema;
pub mod train;
pub mod validate;

use kube::CustomResourceExt;

pub use deployment::{PackitDeployment, PackitDeploymentSpec, PackitDeploymentStatus};
pub use release::{PackitRelease, PackitReleaseSpec, PackitReleaseStatus};

/// The CRDs as `(file name, YAML)` pairs, in the order they are applied.
pub fn crd_documents() -> Result<Vec<(String, String)>, serde_saphyr::SerializeError> {
    let crds = [PackitDeployment::crd(), PackitRelease::crd()];
    crds.iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            Ok((format!("{name}.yaml"), serde_saphyr::to_string(crd)?))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
