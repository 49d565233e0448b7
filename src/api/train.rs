//! The planner's persisted state: the train as stored in the
//! PackitDeployment status, and the phases a PackitRelease goes through.
//! The planner reads and writes these; they are defined here so that the
//! resource types can hold them without depending on the planner.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::release::Trigger;

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
    /// Waiting for a person's approval to deploy to an environment.
    AwaitingApproval,
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
    pub const ALL: [ReleasePhase; 15] = [
        Self::Pending,
        Self::Building,
        Self::Built,
        Self::Staging,
        Self::Verified,
        Self::AwaitingApproval,
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
    /// The environments a person approved it for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
}

/// A person's approval of a release for an environment.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The environment approved.
    pub environment: String,
    /// When it was given (the request's time).
    pub approved_at: DateTime<Utc>,
    /// Who gave it, as reported by the client that wrote the request
    /// (`kubectl packit approve` reads it from a SelfSubjectReview); the
    /// operator cannot verify it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_user: Option<String>,
    /// The groups the client reported with the user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reported_groups: Vec<String>,
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
    /// Last approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<String>,
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
