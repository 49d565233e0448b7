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
