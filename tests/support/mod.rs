//! Support code for tests that run against the local cluster (see the
//! README's "Local test cluster" section).
//!
//! - [`cluster()`] finds the running cluster or starts one, once per test
//!   binary; [`TestNs::new`] gives each test a fresh namespace that is deleted
//!   when the test ends, whether it passes or panics.
//! - [`wait`] polls for a condition with a timeout instead of sleeping.
//! - [`workloads`] builds Deployments, StatefulSets and Jobs whose pods the
//!   fake nodes drive to a chosen outcome ([`SimMode`]).
//! - [`registry`] pushes small OCI images to the local registry.
//! - [`git`] scripts throwaway git repositories served as `file://`.
//! - [`webhook`] receives the operator's notifications on loopback.
//! - [`prometheus`] sets the samples the local Prometheus scrapes.
//! - [`fleet`] is many trains run by one operator, for the scale test and
//!   the controller benchmark; [`measure`] reads what a process costs.
//! - [`remote`] is the second control plane, a cluster deployed to from
//!   elsewhere.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod argo;
pub mod browser;
pub mod cluster;
pub mod fleet;
pub mod git;
pub mod measure;
pub mod operator;
pub mod prometheus;
pub mod registry;
pub mod remote;
pub mod rollback_watch;
pub mod train;
pub mod wait;
pub mod webhook;
pub mod workloads;

// Re-exports of what most tests use.
pub use cluster::{Cluster, TestNs, apply_crds, cluster, kubectl, kubectl_output};
pub use git::GitRepo;
pub use registry::{PushedImage, push_image, resolve_digest};
pub use wait::{DEFAULT_TIMEOUT, POLL_INTERVAL, eventually, wait_for};
pub use workloads::SimMode;
