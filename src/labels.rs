//! Labels and annotations the operator puts on the objects it makes.

/// The PackitDeployment a release, build Job or workload belongs to.
pub const DEPLOYMENT: &str = "packit.dev/deployment";
/// The namespace of that PackitDeployment (workloads may live elsewhere).
pub const DEPLOYMENT_NAMESPACE: &str = "packit.dev/deployment-namespace";
/// The release a build Job belongs to.
pub const RELEASE: &str = "packit.dev/release";
/// The component a build Job builds.
pub const COMPONENT: &str = "packit.dev/component";
/// On a namespace: the namespaces whose PackitDeployments may deploy into it
/// (comma-separated).
pub const ALLOW_FROM: &str = "packit.dev/allow-from";
