//! Container restarts of a workload's pods since a deploy: pure.

use std::sync::Arc;

use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use crate::client::{CachedPod, ContainerRestarts};

/// The pods of `namespace` that `selector` picks: a workload's.
pub fn selected<'a>(
    pods: &'a [Arc<CachedPod>],
    namespace: &'a str,
    selector: &'a Selector,
) -> impl Iterator<Item = &'a CachedPod> {
    pods.iter().map(|p| &**p).filter(move |p| {
        p.namespace().as_deref() == Some(namespace) && selector.matches(p.labels())
    })
}

/// Sums `restartCount` of the given `(container, image)` pairs over `pods`,
/// counting only containers that run the wanted image: restarts of pods
/// from before the deploy do not count against it.
pub fn restarts_since_deploy<'a>(
    pods: impl IntoIterator<Item = &'a CachedPod>,
    containers: &[(String, String)],
) -> u32 {
    let statuses = pods.into_iter().flat_map(CachedPod::containers);
    statuses
        .filter(|s| {
            containers
                .iter()
                .any(|(name, image)| s.name == *name && runs_image(s, image))
        })
        .map(|s| u32::try_from(s.restart_count).unwrap_or(0))
        .fold(0, u32::saturating_add)
}

/// Whether a container status shows the wanted image. Runtimes may report a
/// normalised reference (`docker.io/library/...`), so a wanted image by
/// digest also matches the same digest in `image` or `imageID`.
pub fn runs_image(status: &ContainerRestarts, wanted: &str) -> bool {
    if status.image == wanted {
        return true;
    }
    let Some(digest) = digest_of(wanted) else {
        return false;
    };
    digest_of(&status.image) == Some(digest) || digest_of(&status.image_id) == Some(digest)
}

/// The `algorithm:hex` part after `@`, if any.
fn digest_of(reference: &str) -> Option<&str> {
    let (_, digest) = reference.rsplit_once('@')?;
    digest.contains(':').then_some(digest)
}
