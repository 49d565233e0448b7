//! Data in and out of the planner.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::deployment::Target;
use crate::api::release::Trigger;

/// Release lifecycle phases.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum ReleasePhase {
    /// Created, build not started.
    Pending,
    /// The image(s) are being built.
    Building,
    /// Built, waiting to be deployed to the first environment.
    Built,
    /// Deployed to an environment before production, being verified.
    Staging,
    /// Passed every environment before production.
    Verified,
    /// Waiting for the production window (or the end of a freeze).
    AwaitingWindow,
    /// Deployed to production, being verified and soaked.
    Production,
    /// Healthy in production.
    Released,
    /// The build failed or timed out.
    BuildFailed,
    /// Verification failed before production; that environment was rolled back.
    StagingFailed,
    /// Production was restored to an earlier release.
    RolledBack,
    /// Verification failed in production and nothing was rolled back.
    Failed,
    /// A newer build replaced it while it waited.
    Superseded,
    /// Stopped by a rollback, a pin or a spec change.
    Cancelled,
}

impl ReleasePhase {
    /// Every phase, in lifecycle order.
    pub const ALL: [ReleasePhase; 14] = [
        Self::Pending,
        Self::Building,
        Self::Built,
        Self::Staging,
        Self::Verified,
        Self::AwaitingWindow,
        Self::Production,
        Self::Released,
        Self::BuildFailed,
        Self::StagingFailed,
        Self::RolledBack,
        Self::Failed,
        Self::Superseded,
        Self::Cancelled,
    ];

    /// Whether the release has left the train for good.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Released
                | Self::BuildFailed
                | Self::StagingFailed
                | Self::RolledBack
                | Self::Failed
                | Self::Superseded
                | Self::Cancelled
        )
    }
}

/// What the release in flight is doing.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Its images are being built.
    Building,
    /// Waiting to be deployed to `environment` (window, freeze, pin, suspend).
    Waiting,
    /// Deployed to `environment`, being verified.
    Verifying,
}

/// The planner's persisted state, stored in the PackitDeployment status.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TrainState {
    /// The one release in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,

    /// Per environment: the release running there and its verified history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<EnvironmentState>,

    /// The latest build slot of the schedule already acted on (or the
    /// instant the schedule was first seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_build_slot: Option<DateTime<Utc>>,

    /// The last release that left the train, and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_finished: Option<Finished>,

    /// The newest release started, so the next name never repeats it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_release: Option<String>,

    /// A build that is due but waits for the release in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_build: Option<Trigger>,

    /// Requests already handled, by annotation value.
    #[serde(default)]
    pub handled: HandledRequests,

    /// Rollbacks requested for a later time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduled_rollbacks: Vec<ScheduledRollback>,
}

/// The release in flight.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InFlight {
    /// PackitRelease name.
    pub release: String,
    /// What started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// What it is doing.
    pub stage: Stage,
    /// The environment it waits for or is verified in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// When the stage began (the build started, the deploy was applied).
    pub since: DateTime<Utc>,
    /// When the rollout in `environment` was first seen complete; the soak
    /// runs from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_complete_at: Option<DateTime<Utc>>,
    /// A person asked to promote it to production without the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<Promotion>,
    /// Why it is waiting, for status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How a release left the train.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Finished {
    /// PackitRelease name.
    pub release: String,
    /// Its final phase.
    pub phase: ReleasePhase,
    /// Why.
    pub message: String,
}

/// A person's promotion request.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    /// When it was asked for.
    pub requested_at: DateTime<Utc>,
    /// Deploy to production even before the release passed the earlier
    /// environments.
    #[serde(default)]
    pub force: bool,
}

/// One environment as the planner sees it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentState {
    /// Environment name.
    pub name: String,
    /// The release whose images the targets run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// When it was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_at: Option<DateTime<Utc>>,
    /// Releases verified healthy here, oldest first (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified: Vec<String>,
}

/// Annotation values already acted on.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HandledRequests {
    /// Last release request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Last promotion request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<String>,
    /// Last rollback request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
}

/// A rollback waiting for its time.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledRollback {
    /// Environment to roll back.
    pub environment: String,
    /// Release to restore; the previous good one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// When to do it.
    pub at: DateTime<Utc>,
    /// When it was asked for.
    pub requested_at: DateTime<Utc>,
}

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
}

/// Request annotations, by their raw values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Requests {
    pub release: Option<Request>,
    pub promote: Option<PromoteRequest>,
    pub rollback: Option<RollbackRequest>,
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
    pub const PINNED: &str = "Pinned";
    pub const PIN_UNKNOWN: &str = "PinUnknown";
    pub const SUSPENDED: &str = "Suspended";
}

/// Bound on `EnvironmentState::verified`.
pub const VERIFIED_HISTORY: usize = 50;

/// Handy map type for tests and the controller.
pub type Images = BTreeMap<String, String>;
