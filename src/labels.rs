//! Labels and annotations the operator puts on the objects it makes.

/// The PackitDeployment a release, build Job or workload belongs to.
pub const DEPLOYMENT: &str = "packit.dev/deployment";
/// The namespace of that PackitDeployment (workloads may live elsewhere).
pub const DEPLOYMENT_NAMESPACE: &str = "packit.dev/deployment-namespace";
/// The release a build Job belongs to.
pub const RELEASE: &str = "packit.dev/release";
/// The environment a smoke-test Job verifies.
pub const ENVIRONMENT: &str = "packit.dev/environment";
/// The smoke test a Job runs.
pub const SMOKE_TEST: &str = "packit.dev/smoke-test";
/// The component a build Job builds.
pub const COMPONENT: &str = "packit.dev/component";
/// On a namespace: the namespaces whose PackitDeployments may deploy into it
/// (comma-separated).
pub const ALLOW_FROM: &str = "packit.dev/allow-from";

/// On a workload: the one PackitDeployment (`<namespace>/<name>`) that
/// drives it. Written once, with the resource version read as a
/// precondition, so of two trains racing for a workload one wins.
pub const OWNER: &str = "packit.dev/owner";

/// A train as `namespace/name`: the value of its claims' `OWNER`
/// annotation, and the key its releases and pods are looked up by.
pub fn train_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}
/// On a workload or a PackitDeployment: no writes except rollbacks until it
/// is removed; the value says why.
pub const HOLD: &str = "packit.dev/hold";
/// On a workload: the operator stopped writing it because someone else
/// keeps changing it (the value names that field manager).
pub const FIGHTING: &str = "packit.dev/fighting";
/// On a workload: the change (`<container>=<image>`, comma-separated) a
/// `Hold` drift policy held, so that once a person lifts that hold the
/// same change is reverted instead of held again.
pub const DRIFT_HELD: &str = "packit.dev/drift-held";
/// The finalizer that gives a deleted PackitDeployment's workloads back.
pub const CLAIMS_FINALIZER: &str = "packit.dev/claims";

/// `name` cut to the 63 characters of a label value (Job names become pod
/// labels), with a hash of the whole so that cut names stay distinct.
pub fn label_value(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_owned();
    }
    let hash = fnv1a(name.as_bytes());
    let keep = name
        .char_indices()
        .take_while(|(i, _)| *i < 54)
        .map(|(_, c)| c)
        .collect::<String>();
    format!("{}-{hash:08x}", keep.trim_end_matches('-'))
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}
