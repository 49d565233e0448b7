//! Where an environment's workloads live and which images a release puts
//! on them: plain functions of the spec and the release, shared by the
//! stages.

use crate::api::PackitRelease;
use crate::api::deployment::Environment;
use crate::api::release::TargetImage;

/// The namespace of an environment's workloads: its own, or the
/// deployment's.
pub fn namespace_of(deployment_namespace: &str, env: &Environment) -> String {
    env.namespace
        .clone()
        .unwrap_or_else(|| deployment_namespace.to_owned())
}

/// `namespace stg`, or `namespace stg of cluster prod` on a remote cluster.
pub fn location(namespace: &str, cluster: Option<&str>) -> String {
    match cluster {
        Some(c) => format!("namespace {namespace} of cluster {c}"),
        None => format!("namespace {namespace}"),
    }
}

/// The images a release puts on an environment's targets; none until the
/// release has every image its targets need.
pub fn wanted_images(release: &PackitRelease, env: &Environment) -> Option<Vec<TargetImage>> {
    env.targets
        .iter()
        .map(|t| {
            Some(TargetImage {
                kind: format!("{:?}", t.kind),
                name: t.name.clone(),
                container: t.container.clone(),
                image: image_of(release, &t.component)?.to_owned(),
            })
        })
        .collect()
}

/// The image each component of a built release deploys, by digest.
pub fn image_of<'a>(release: &'a PackitRelease, component: &str) -> Option<&'a str> {
    release
        .spec
        .images
        .as_ref()?
        .get(component)
        .map(|i| i.0.as_str())
}
