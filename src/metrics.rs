//! Prometheus metrics and the `/metrics`, `/healthz` and `/readyz` endpoints.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    pub namespace: String,
    pub deployment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiRequestLabels {
    /// `get`, `list`, `watch`, `create`, `patch`, `update` or `delete`.
    pub verb: &'static str,
    /// The resource, with its subresource: `packitreleases`,
    /// `packitdeployments/status`.
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// The kind of check: `metric` or `job`.
    pub kind: &'static str,
    /// `Pass`, `Fail` or `Inconclusive` (metrics only).
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub namespace: String,
    pub deployment: String,
    pub phase: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ResultLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub reconcile_seconds: Histogram,
    pub releases: Family<PhaseLabels, Gauge>,
    pub rollback_seconds: Histogram,
    pub next_build: Family<DeploymentLabels, Gauge>,
    pub next_window: Family<DeploymentLabels, Gauge>,
    pub notifications: Family<ResultLabels, Counter>,
    /// Measurements of verification checks.
    pub checks: Family<CheckLabels, Counter>,
    /// Requests to the Kubernetes API.
    pub api_requests: Family<ApiRequestLabels, Counter>,
    /// 1 while this process runs the controller (holds the lease, when
    /// leader election is on), 0 while it stands by.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("packit");
        let m = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            reconcile_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            releases: Family::default(),
            rollback_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            next_build: Family::default(),
            next_window: Family::default(),
            notifications: Family::default(),
            api_requests: Family::default(),
            checks: Family::default(),
            leader: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("reconciles", "Reconciles by result", m.reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by kind of error",
            m.errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconcile took",
            m.reconcile_seconds.clone(),
        );
        registry.register(
            "releases",
            "PackitReleases by deployment and phase",
            m.releases.clone(),
        );
        registry.register(
            "rollback_seconds",
            "Time from detecting a failed verification to the rollback applied",
            m.rollback_seconds.clone(),
        );
        registry.register(
            "next_build_timestamp_seconds",
            "When the next scheduled build starts (Unix time)",
            m.next_build.clone(),
        );
        registry.register(
            "next_window_timestamp_seconds",
            "When the next production window opens (Unix time)",
            m.next_window.clone(),
        );
        registry.register(
            "notifications",
            "Webhook notifications by result (delivered, or failed after retries)",
            m.notifications.clone(),
        );
        registry.register(
            "check_measurements",
            "Measurements of verification checks by kind and result",
            m.checks.clone(),
        );
        registry.register(
            "api_requests",
            "Requests to the Kubernetes API by verb and resource",
            m.api_requests.clone(),
        );
        registry.register(
            "leader",
            "1 while this process runs the controller (leads), 0 while it stands by",
            m.leader.clone(),
        );
        Self { registry, ..m }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
