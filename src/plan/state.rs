//! Data in and out of the planner. The state it persists (`TrainState`,
//! `ReleasePhase`, ...) is stored in the resources, so it is defined in
//! `crate::api::train` and re-exported here.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::api::deployment::Target;
use crate::api::release::Trigger;
pub use crate::api::train::*;

/// What the controller saw, as plain data.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// Base for new release names (the deployment's name).
    pub name: String,
    /// Releases that exist and have their images recorded.
    pub built: BTreeSet<String>,
    /// The build of the release in flight, when it is building.
    pub build: Option<BuildResult>,
    /// The environment the release in flight is verified in, when it is.
    pub health: Option<HealthReport>,
    /// Request annotations present on the deployment.
    pub requests: Requests,
    /// Environments no release may be rolled out to, with why: held, or a
    /// workload another train owns. Rollbacks still go ahead.
    pub blocked: BTreeMap<String, String>,
    /// Environments whose cluster does not answer, with why: nothing is
    /// judged there (no verdict, no timeout) until it answers again.
    pub unreachable: BTreeMap<String, String>,
}

/// The outcome of a build so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildResult {
    Running,
    Succeeded,
    Failed(String),
}

/// Health of an environment after a deploy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HealthReport {
    /// The release whose images all targets run; health of anything else is
    /// ignored (it would be stale).
    pub release: String,
    /// One per target workload.
    pub workloads: Vec<WorkloadHealth>,
    /// One per configured HTTP check.
    pub http: Vec<HttpHealth>,
    /// One per configured metric check.
    pub metrics: Vec<MetricHealth>,
    /// One per configured smoke-test Job.
    pub jobs: Vec<JobHealth>,
    /// The images could not be applied: why (fails verification at once).
    pub deploy_error: Option<String>,
}

/// Where one smoke-test Job stands for the release.
#[derive(Debug, Clone, PartialEq)]
pub struct JobHealth {
    pub name: String,
    pub state: JobState,
    /// A verdict seen during this reconcile that the release does not
    /// record yet.
    pub fresh: Option<crate::api::checks::JobVerdict>,
}

/// The smoke-test Job of a release in an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Not created yet.
    NotStarted,
    Running {
        since: DateTime<Utc>,
    },
    Passed,
    /// Why, naming the pod when there was one.
    Failed(String),
}

/// Where one metric check stands since the deploy.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricHealth {
    pub name: String,
    /// Failed measurements in a row (no data counted by `onNoData`).
    pub consecutive_failures: u32,
    /// A measurement passed since the deploy.
    pub passed: bool,
    /// The latest verdict, for messages and the release record.
    pub last: Option<crate::api::checks::CheckVerdict>,
    /// Measured during this reconcile.
    pub fresh: bool,
}

/// Rollout state of one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadHealth {
    /// Workload name.
    pub name: String,
    pub rollout: Rollout,
    /// Container restarts since the deploy.
    pub restarts: u32,
}

/// Rollout progress of one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    Progressing,
    Complete,
    /// E.g. `ProgressDeadlineExceeded`.
    Failed(String),
}

/// Result of one HTTP check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHealth {
    pub url: String,
    /// Failures in a row, up to now.
    pub consecutive_failures: u32,
    /// Why the last probe failed (`answered 503 Service Unavailable`, or
    /// that its address is refused), while it does.
    pub last_error: Option<String>,
}

/// Request annotations, by their raw values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Requests {
    pub release: Option<Request>,
    pub promote: Option<PromoteRequest>,
    pub rollback: Option<RollbackRequest>,
    pub approve: Option<ApproveRequest>,
}

/// Approve a release for an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ApproveRequest {
    pub id: String,
    pub requested_at: DateTime<Utc>,
    /// The release approved; a request naming another than the one in
    /// flight (one a newer build superseded) approves nothing.
    pub release: String,
    /// The environment approved; the one the release waits for when absent.
    pub environment: Option<String>,
    /// The identity the client reported.
    pub user: Option<String>,
    pub groups: Vec<String>,
}

/// "Do it now" request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Raw annotation value; a new value is a new request.
    pub id: String,
    pub requested_at: DateTime<Utc>,
}

/// Promote the release in flight to production now.
#[derive(Debug, Clone, PartialEq)]
pub struct PromoteRequest {
    pub id: String,
    pub requested_at: DateTime<Utc>,
    /// Skip the earlier environments' verification too.
    pub force: bool,
}

/// Roll an environment back.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackRequest {
    pub id: String,
    pub requested_at: DateTime<Utc>,
    pub environment: String,
    /// A named release; the previous good one when absent.
    pub to: Option<String>,
    /// Later; now when absent or past.
    pub at: Option<DateTime<Utc>>,
}

/// Why images are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployCause {
    /// The train moving forward on its own.
    Train,
    /// A person's promotion request (skips the window and freezes).
    Promoted,
    /// A person's forced promotion: the release did not pass the earlier
    /// environments.
    Forced,
    /// The environment's pin.
    Pin,
}

/// Why an environment is rolled back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackCause {
    /// Verification failed; the reason.
    Automatic(String),
    /// A person asked.
    Requested { requested_at: DateTime<Utc> },
}

/// Something the controller must do. Each is idempotent on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Resolve branch heads, create the PackitRelease and build it.
    StartBuild { release: String, trigger: Trigger },
    /// Apply a release's images to every target of an environment.
    Deploy {
        environment: String,
        release: String,
        targets: Vec<Target>,
        cause: DeployCause,
    },
    /// Restore an earlier release's images on every target of an environment.
    Rollback {
        environment: String,
        from: Option<String>,
        to: String,
        targets: Vec<Target>,
        cause: RollbackCause,
    },
    /// Create a smoke-test Job of a release in an environment.
    RunSmokeTest {
        environment: String,
        release: String,
        test: String,
    },
    /// Record a person's approval on the release.
    RecordApproval { release: String, approval: Approval },
    /// Record a release's phase (and its progress in an environment).
    SetPhase {
        release: String,
        phase: ReleasePhase,
        environment: Option<String>,
        message: String,
    },
    /// Tell people: a Kubernetes Event on the deployment.
    Event {
        reason: &'static str,
        message: String,
        warning: bool,
    },
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What to do now, in order.
    pub actions: Vec<Action>,
    /// The state to persist before acting.
    pub state: TrainState,
    /// When to plan again at the latest (watches may call earlier).
    pub requeue_at: Option<DateTime<Utc>>,
    /// A one-word summary for `status.phase`.
    pub phase: String,
    /// The next scheduled build.
    pub next_build: Option<DateTime<Utc>>,
    /// The start of the open or next production window.
    pub next_window: Option<DateTime<Utc>>,
}

/// Event reasons, shared with the controller and tests.
pub mod reasons {
    pub const BUILD_STARTED: &str = "BuildStarted";
    pub const BUILD_FAILED: &str = "BuildFailed";
    pub const BUILT: &str = "Built";
    pub const DEPLOYED: &str = "Deployed";
    pub const VERIFIED: &str = "Verified";
    pub const WAITING: &str = "Waiting";
    pub const RELEASED: &str = "Released";
    pub const VERIFICATION_FAILED: &str = "VerificationFailed";
    pub const ROLLED_BACK: &str = "RolledBack";
    pub const ROLLBACK_SCHEDULED: &str = "RollbackScheduled";
    pub const ROLLBACK_REJECTED: &str = "RollbackRejected";
    pub const SUPERSEDED: &str = "Superseded";
    pub const CANCELLED: &str = "Cancelled";
    pub const PROMOTED: &str = "Promoted";
    pub const PROMOTE_REJECTED: &str = "PromoteRejected";
    pub const APPROVED: &str = "Approved";
    pub const APPROVAL_REJECTED: &str = "ApprovalRejected";
    pub const PINNED: &str = "Pinned";
    pub const PIN_UNKNOWN: &str = "PinUnknown";
    pub const SUSPENDED: &str = "Suspended";
}

/// Bound on `EnvironmentState::verified`.
pub const VERIFIED_HISTORY: usize = 50;

/// Handy map type for tests and the controller.
pub type Images = BTreeMap<String, String>;
