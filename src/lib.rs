//! packit-operator: scheduled, staged deployment for Kubernetes.
//!
//! `api` holds the custom resources, `plan` the pure decision core and
//! `controller` the Kubernetes wiring around it; `git`, `build`, `deploy`
//! and `health` are the edges it acts through; `leader` lets one of
//! several replicas run the controller; `server` answers the operator's own
//! HTTP endpoints.

pub mod api;
pub mod build;
pub mod changelog;
pub mod cli;
pub mod client;
pub mod controller;
pub mod deploy;
pub mod git;
pub mod health;
pub mod http;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod redact;
pub mod remote;
pub mod schedule;
pub mod server;

/// Errors of the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid spec: {0}")]
    InvalidSpec(#[from] api::validate::InvalidSpec),
    #[error("serializing YAML: {0}")]
    Yaml(#[from] serde_saphyr::SerializeError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
