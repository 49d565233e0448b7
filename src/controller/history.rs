//! Pruning old PackitReleases past `historyLimit`.

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::api::DeleteParams;

use super::Error;
use super::reconcile::{Reconciler, protected};
use crate::api::PackitRelease;
use crate::plan::TrainState;

/// Names to delete: everything past the newest `limit`, except `keep`.
/// `releases` is sorted oldest first.
pub fn to_prune(releases: &[String], keep: &BTreeSet<String>, limit: usize) -> Vec<String> {
    let excess = releases.len().saturating_sub(limit);
    releases[..excess]
        .iter()
        .filter(|r| !keep.contains(*r))
        .cloned()
        .collect()
}

pub async fn prune(
    r: &Reconciler<'_>,
    state: &TrainState,
    releases: &[PackitRelease],
) -> Result<(), Error> {
    let names: Vec<String> = releases.iter().map(ResourceExt::name_any).collect();
    let keep = protected(&r.pkd, state);
    for name in to_prune(&names, &keep, r.pkd.spec.history_limit as usize) {
        tracing::info!(release = %name, "pruning");
        match r
            .releases_api()
            .delete(&name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_the_protected() {
        let names: Vec<String> = (1..=6).map(|i| format!("r{i}")).collect();
        let keep: BTreeSet<String> = ["r1".to_owned(), "r5".to_owned()].into();
        assert_eq!(to_prune(&names, &keep, 3), ["r2", "r3"]);
        assert!(to_prune(&names, &keep, 10).is_empty());
    }
}
