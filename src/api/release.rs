//! `PackitRelease`: one build of the train and what happened to it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema::{DNS_SUBDOMAIN, IMAGE_BY_DIGEST};
use super::train::ReleasePhase;

/// One release of a PackitDeployment. Written by the operator; the spec does
/// not change once set (the images are recorded once, when the build is done).
// Several printer columns share a type, which this lint mistakes for
// repeated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "packit.dev",
    version = "v1alpha1",
    kind = "PackitRelease",
    namespaced,
    status = "PackitReleaseStatus",
    shortname = "pkr",
    category = "packit",
    doc = "One release of a PackitDeployment: the commits and image digests it ships and its way through the environments.",
    derive = "PartialEq",
    cel,
    printcolumn(name = "Deployment", type_ = "string", json_path = ".spec.deployment"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Trigger", type_ = "string", json_path = ".spec.trigger"),
    printcolumn(
        name = "Commits",
        type_ = "string",
        json_path = ".status.commitSummary"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("!has(oldSelf.images) || has(self.images)")
        .message("spec.images cannot be removed once recorded"),
    validation = Rule::new("has(self.previous) == has(oldSelf.previous)")
        .message("spec.previous is immutable")
)]
#[serde(rename_all = "camelCase")]
pub struct PackitReleaseSpec {
    /// The PackitDeployment this release belongs to.
    #[schemars(regex(pattern = DNS_SUBDOMAIN), length(max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.deployment is immutable"))]
    pub deployment: String,

    /// What started the release.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.trigger is immutable"))]
    pub trigger: Trigger,

    /// The commit of every component and included repository.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.components is immutable"))]
    pub components: Vec<ReleaseComponent>,

    /// The production release this one is compared against for the
    /// changelog; absent for the first release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.previous is immutable"))]
    pub previous: Option<String>,

    /// Component name to image by digest (`repo@sha256:...`), recorded once
    /// when the build is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.images is immutable once recorded"))]
    pub images: Option<BTreeMap<String, ImageRef>>,
}

/// An image reference by digest.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(transparent)]
pub struct ImageRef(#[schemars(regex(pattern = IMAGE_BY_DIGEST))] pub String);

/// What started a release.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The build schedule.
    Schedule,
    /// A person's release request.
    Manual,
}

/// The source revisions of one component.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseComponent {
    /// Component name.
    pub name: String,
    /// The component's repository and the commit built.
    pub source: Revision,
    /// Included repositories and their commits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub includes: Vec<Revision>,
}

/// A commit of a repository, and the one the changelog starts from.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// Repository URL.
    pub url: String,
    /// The repository's name in the changelog, when the source sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Commit SHA.
    #[schemars(regex(pattern = "^[0-9a-f]{40}([0-9a-f]{24})?$"))]
    pub commit: String,
    /// Commit of the previous production release, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_commit: Option<String>,
}

/// What happened to a release.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PackitReleaseStatus {
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ReleasePhase>,

    /// Human-readable detail of the phase (for failures: why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Why the build cannot go on, recorded when the API refused what the
    /// build needs (a builder Job); the next reconcile fails the build with
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_error: Option<String>,

    /// Short commit per component, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_summary: Option<String>,

    /// Set when every commit equals the previous release's: the weekly build
    /// was rebuilt for base-image updates.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebuild: bool,

    /// Progress in each environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<EnvironmentProgress>,

    /// Set when a person deployed this release to production without it
    /// passing the environments before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced: Option<ManualAction>,

    /// The changelog since the previous production release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changelog: Option<ChangelogStatus>,

    /// The webhook notifications of this release and how each went: an
    /// outbox, written with the phase before the first attempt, so that a
    /// restart or a new leader resumes what is still pending. Bounded: the
    /// oldest finished entries make room.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub notifications: Vec<NotificationDelivery>,
}

/// One notification to one webhook.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationDelivery {
    /// Sent as `X-Packit-Delivery` on every attempt: unique per
    /// notification and webhook, so a receiver can drop duplicates.
    #[schemars(length(max = 64))]
    pub id: String,
    /// Index into `spec.changelog.webhooks` of the PackitDeployment.
    pub webhook: u32,
    /// The webhook's scheme and host, for people (the rest of a URL may
    /// carry a secret).
    pub target: String,
    /// A digest of the webhook's URL: a webhook that changed since is not
    /// sent what was meant for the old one.
    pub url_digest: String,
    /// The phase the notification reports.
    pub phase: ReleasePhase,
    /// The environment the phase was reached in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The phase's message, as sent.
    #[serde(default)]
    pub message: String,
    /// When the phase was reached (the body's `at`).
    pub at: DateTime<Utc>,
    /// Where the delivery stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    #[serde(default)]
    pub attempts: u32,
    /// When the next attempt is due, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Where a notification's delivery stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not delivered yet; retried when due.
    Pending,
    /// The receiver accepted it (2xx).
    Delivered,
    /// Given up: a final answer, or out of attempts.
    Failed,
}

/// Progress of a release in one environment.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentProgress {
    /// Environment name.
    pub name: String,
    /// The cluster the environment is on (the name of its kubeconfig
    /// Secret); absent for the operator's own cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// When the images were applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_at: Option<DateTime<Utc>>,
    /// When verification passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<DateTime<Utc>>,
    /// When verification failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<DateTime<Utc>>,
    /// Detail, e.g. why verification failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The image each target had before this release was applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_images: Vec<TargetImage>,
    /// The latest verdict of each metric check here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<super::checks::CheckVerdict>,
    /// Each smoke-test Job here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<super::checks::JobVerdict>,
    /// Why the images could not be applied here, in the API server's words
    /// (RBAC refused the patch, the workload is missing, an admission
    /// webhook rejected it); the release fails verification with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_error: Option<String>,
    /// The person's approval to deploy here, when the environment needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<super::train::Approval>,
}

/// The image of one workload container.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetImage {
    /// `Deployment` or `StatefulSet`.
    pub kind: String,
    /// Workload name.
    pub name: String,
    /// Container name.
    pub container: String,
    /// Image reference.
    pub image: String,
}

/// Who did something by hand, and why.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManualAction {
    /// The request's timestamp.
    pub requested_at: DateTime<Utc>,
    /// Who asked, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// What was done.
    pub action: String,
}

/// The changelog stored on a release.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ChangelogStatus {
    /// Markdown rendering.
    #[serde(default)]
    pub markdown: String,
    /// Set when the stored changelog was cut to stay within object size.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// What could not be computed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// The same, structured: per repository the range and its entries
    /// (without the commits of each PR's branch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<super::changelog::RepoChangelog>,
}
