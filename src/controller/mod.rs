//! The controller: watches PackitDeployments and everything that can move
//! their trains (releases, build Jobs, target workloads and their pods) and
//! reconciles each in four stages (see ARCHITECTURE.md):
//!
//! - [`observe`]: read what the decision needs, once;
//! - [`decide`]: the pure decision (the planner, plus the status to
//!   persist and the Events to tell);
//! - [`act`]: the only writer;
//! - [`report`]: Events, metrics and when to come back.

mod act;
pub mod conditions;
mod context;
mod decide;
mod events;
mod observe;
mod reconcile;
mod report;
mod run;
mod targets;

pub use context::{Context, Deliveries, Place};
pub use reconcile::reconcile;
pub use run::{Settings, run};

/// The name the operator writes under (server-side apply field manager and
/// Event reporter).
pub const MANAGER: &str = crate::deploy::FIELD_MANAGER;

/// Reconcile failures; each is retried with a delay and logged.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Deploy(#[from] crate::deploy::DeployError),
    #[error("{0}")]
    Health(#[from] crate::health::HealthError),
    #[error("object without a namespace")]
    NoNamespace,
    #[error("serializing: {0}")]
    Json(#[from] serde_json::Error),
    #[error("serving metrics on {0}: {1}")]
    Serve(std::net::SocketAddr, std::io::Error),
    /// The deployment changed since it was observed (the cache was behind,
    /// or another writer came first); planned again shortly.
    #[error("the PackitDeployment changed since it was read")]
    Stale,
    #[error("the PackitRelease watch stopped")]
    ReleasesUnavailable,
    /// A remote cluster's Secret could not be read, or the cluster did not
    /// answer while writing to it; tried again with backoff.
    #[error("{0}")]
    Cluster(String),
}

impl Error {
    /// A short name for the metrics' `kind` label.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Deploy(_) => "deploy",
            Error::Health(_) => "health",
            Error::NoNamespace => "no_namespace",
            Error::Json(_) => "json",
            Error::Serve(..) => "serve",
            Error::Stale => "stale",
            Error::ReleasesUnavailable => "releases_unavailable",
            Error::Cluster(_) => "cluster",
        }
    }
}
