//! `PackitDeployment`: what a team writes to describe its release train.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema::{
    DNS_LABEL, DNS_SUBDOMAIN, DURATION, IMAGE_REPOSITORY, preserve_unknown_object,
};

/// A release train: components built from git branches, promoted through
/// ordered environments (staging first, production last) on a schedule.
// Several printer columns share a type, which this lint mistakes for
// repeated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "packit.dev",
    version = "v1alpha1",
    kind = "PackitDeployment",
    namespaced,
    status = "PackitDeploymentStatus",
    shortname = "pkd",
    category = "packit",
    doc = "A release train: weekly builds from a stable branch, staged through environments, deployed to production in a scheduled window, rolled back on failure.",
    derive = "PartialEq",
    cel,
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Releases",
        type_ = "string",
        json_path = ".status.releases",
        description = "The release running in each environment"
    ),
    printcolumn(
        name = "Next Build",
        type_ = "string",
        json_path = ".status.nextBuild",
        description = "When the next scheduled build starts"
    ),
    printcolumn(
        name = "Next Window",
        type_ = "string",
        json_path = ".status.nextWindow",
        description = "When the next production window opens"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("self.environments.all(e, e.targets.all(t, self.components.exists(c, c.name == t.component)))")
        .message("every target must name a component declared in spec.components")
        .field_path(".environments")
)]
#[serde(rename_all = "camelCase")]
pub struct PackitDeploymentSpec {
    /// The images of this train, one per component, each built from a git
    /// branch. Component names are unique; targets refer to them.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(validation = Rule::new("self.all(c, self.filter(d, d.name == c.name).size() == 1)").message("component names must be unique"))]
    pub components: Vec<Component>,

    /// When builds start, when production may be deployed, and freezes.
    pub schedule: Schedule,

    /// Environments in promotion order: the first is deployed right after a
    /// build (staging), the last is production and is only deployed inside
    /// the production window. Names are unique.
    #[schemars(length(min = 1, max = 8))]
    #[x_kube(validation = Rule::new("self.all(e, self.filter(f, f.name == e.name).size() == 1)").message("environment names must be unique"))]
    pub environments: Vec<Environment>,

    /// How the changelog between production releases is classified and where
    /// it is published.
    #[serde(default)]
    pub changelog: ChangelogSpec,

    /// How many PackitReleases to keep. Releases running in an environment
    /// and the last good release of each environment are always kept.
    #[serde(default = "default_history_limit")]
    #[schemars(range(min = 1, max = 1000))]
    pub history_limit: u32,
}

/// One image of the train and the source it is built from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// Name of the component (a DNS label), e.g. `service` or `worker`.
    #[schemars(regex(pattern = DNS_LABEL), length(max = 63))]
    pub name: String,

    /// The git repository and branch the image is built from.
    pub source: GitSource,

    /// Other repositories whose changes ship inside this image (for example
    /// a library installed from its own stable branch); they appear in the
    /// changelog.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub includes: Vec<GitSource>,

    /// The image repository to push to and deploy from, without tag or
    /// digest, e.g. `quay.io/packit/packit-service`. Workloads always get
    /// `image@sha256:...`.
    #[schemars(regex(pattern = IMAGE_REPOSITORY), length(max = 255))]
    pub image: String,

    /// How the image is built.
    pub build: BuildSpec,
}

/// A git branch.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    /// Clone URL (`https://`, `ssh://`, `git://` or `file://`).
    #[schemars(regex(pattern = r"^(https?|ssh|git|file)://\S+$"))]
    pub url: String,

    /// The repository's name as the changelog's heading. Defaults to the
    /// last part of the URL (`packit` for `https://github.com/packit/packit`);
    /// for a `file://` URL, to that of the clone's `origin` remote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,

    /// Branch whose head is built.
    #[serde(default = "default_branch")]
    #[schemars(length(min = 1, max = 255))]
    pub branch: String,

    /// Secret in the deployment's namespace with git credentials
    /// (`username`/`password` for HTTPS, `identity` for SSH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectRef>,
}

/// A reference to an object in the same namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LocalObjectRef {
    /// Name of the object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// How an image is built.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.strategy == 'Job' ? has(self.job) : !has(self.job)")
        .message("build.job is required with strategy Job and not allowed otherwise")
)]
pub struct BuildSpec {
    /// `Job`: the operator runs a Job from the builder template. `External`:
    /// CI builds; the operator waits for the image of the commit to appear.
    pub strategy: BuildStrategy,

    /// Builder settings for strategy `Job`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobBuild>,

    /// How long a build may take before it counts as failed.
    #[serde(default = "default_build_timeout")]
    #[schemars(regex(pattern = DURATION))]
    pub timeout: String,
}

/// Build strategies.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildStrategy {
    /// A Job built from the builder pod template.
    Job,
    /// An image pushed by CI, found by its revision label or tag.
    External,
}

/// The builder Job.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobBuild {
    /// Pod template of the builder (for example buildah). The operator adds
    /// `PACKIT_REPO_URL`, `PACKIT_COMMIT`, `PACKIT_IMAGE` and
    /// `PACKIT_RELEASE` to every container; the builder writes the pushed
    /// digest (`sha256:...`) to its termination message.
    #[schemars(schema_with = "preserve_unknown_object")]
    pub template: PodTemplateSpec,
}

/// When things happen.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// IANA time zone the cron expressions are evaluated in, e.g.
    /// `Europe/Prague`.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,

    /// Cron expression (5 fields, or 6 with seconds first) for the scheduled
    /// build, e.g. `0 18 * * FRI`. Without it, builds only start on request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub build: Option<String>,

    /// The production window. Without it, production is deployed as soon as
    /// the release passed the environments before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production: Option<Window>,

    /// Periods in which nothing is deployed, except rollbacks and explicit
    /// requests by a person.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub freezes: Vec<Freeze>,

    /// Stops scheduled builds and promotions. Health watching and rollbacks
    /// go on.
    #[serde(default)]
    pub suspend: bool,
}

/// A recurring window: opens at each cron match and stays open for `duration`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// Cron expression for the window's start, e.g. `0 1 * * MON`.
    #[schemars(length(min = 1, max = 128))]
    pub start: String,

    /// How long the window stays open, e.g. `3h`.
    #[schemars(regex(pattern = DURATION))]
    pub duration: String,
}

/// A period without deployments.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Freeze {
    /// Start (RFC 3339, e.g. `2026-12-20T00:00:00+01:00`).
    pub start: DateTime<Utc>,
    /// End (RFC 3339), after the start.
    pub end: DateTime<Utc>,
    /// Why, shown in status and Events.
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub reason: String,
}

/// A place the train deploys to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// Name of the environment (a DNS label), e.g. `staging`.
    #[schemars(regex(pattern = DNS_LABEL), length(max = 63))]
    pub name: String,

    /// Namespace of the target workloads; defaults to the deployment's own.
    /// Another namespace must opt in with the annotation
    /// `packit.dev/allow-from: <this deployment's namespace>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DNS_LABEL), length(max = 63))]
    pub namespace: Option<String>,

    /// Workload containers that receive a component's image. All targets of
    /// an environment are deployed and rolled back together.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = Rule::new("self.all(t, self.filter(u, u.kind == t.kind && u.name == t.name && u.container == t.container).size() == 1)").message("each workload container may be targeted once"))]
    pub targets: Vec<Target>,

    /// When a deployment counts as healthy.
    #[serde(default)]
    pub health: HealthSpec,

    /// What happens when verification fails.
    #[serde(default)]
    pub rollback: RollbackSpec,

    /// Holds the environment on this release (a PackitRelease name): it is
    /// deployed now and the train does not replace it until the pin is
    /// removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub pin: Option<String>,

    /// What happens when someone else changes a target container's image
    /// (a `kubectl set image` during an incident): `Revert` puts the
    /// release's image back, `Hold` leaves it and holds the workload
    /// (annotation `packit.dev/hold`) until a person lifts the hold. Either
    /// way an Event names the change and its writer.
    #[serde(default)]
    pub on_drift: DriftPolicy,

    /// The cluster the environment's workloads live in; absent means the
    /// operator's own. The namespace opt-in (`packit.dev/allow-from`) is
    /// for the operator's own cluster: on another cluster the kubeconfig's
    /// permissions decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterRef>,

    /// Whether a person must approve each release before it is deployed
    /// here (`kubectl packit approve`). Rollbacks never wait for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
}

/// The approval gate of an environment.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSpec {
    /// A release waits in `AwaitingApproval` until it is approved for this
    /// environment; an approval does not open a closed window.
    #[serde(default)]
    pub required: bool,
}

/// Another cluster, reached with a kubeconfig kept in a Secret.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    /// Secret in the deployment's namespace holding the kubeconfig. It
    /// must authenticate with a token or a client certificate and carry
    /// the cluster's CA inline; `exec` and auth-provider plugins, files
    /// and `insecure-skip-tls-verify` are refused. `kubectl packit cluster
    /// add` writes such a Secret.
    pub kubeconfig_secret_ref: SecretKeyRef,
}

/// One key of a Secret in the same namespace.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub struct SecretKeyRef {
    /// Name of the Secret; also the cluster's name in status, Events and
    /// the plugin.
    #[schemars(regex(pattern = DNS_SUBDOMAIN), length(max = 253))]
    pub name: String,
    /// Key of the kubeconfig in the Secret.
    #[serde(default = "default_kubeconfig_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_kubeconfig_key() -> String {
    "kubeconfig".to_owned()
}

/// What to do with a target changed behind the train's back.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DriftPolicy {
    /// Apply the release's image again.
    #[default]
    Revert,
    /// Keep the change and stop writing the workload until the hold is
    /// lifted.
    Hold,
}

/// One container of one workload.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Workload kind.
    pub kind: WorkloadKind,
    /// Workload name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Container whose image is set.
    #[schemars(regex(pattern = DNS_LABEL), length(max = 63))]
    pub container: String,
    /// Component whose image the container runs.
    #[schemars(regex(pattern = DNS_LABEL), length(max = 63))]
    pub component: String,
}

/// Workload kinds the operator deploys.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
}

/// Health verification after a deploy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HealthSpec {
    /// How long the rollout may take to complete.
    #[serde(default = "default_rollout_timeout")]
    #[schemars(regex(pattern = DURATION))]
    pub rollout_timeout: String,

    /// How long to keep watching after the rollout completed; any failure in
    /// this time still fails the deploy.
    #[serde(default = "default_soak")]
    #[schemars(regex(pattern = DURATION))]
    pub soak: String,

    /// Container restarts (summed over the pods of a target since the deploy)
    /// above which the deploy fails.
    #[serde(default = "default_max_restarts")]
    #[schemars(range(min = 0, max = 1000))]
    pub max_restarts: u32,

    /// HTTP endpoints that must answer 2xx.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub http_checks: Vec<HttpCheck>,

    /// PromQL queries on the application's own metrics that must stay
    /// within bounds, each measured on its own interval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(m, self.filter(n, n.name == m.name).size() == 1)").message("metric check names must be unique"))]
    pub metrics: Vec<super::checks::MetricCheck>,

    /// Smoke-test Jobs run once the rollout is complete; each must complete
    /// within its timeout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(validation = Rule::new("self.all(j, self.filter(n, n.name == j.name).size() == 1)").message("smoke test names must be unique"))]
    pub jobs: Vec<super::checks::SmokeTest>,
}

/// An HTTP health check.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    /// URL to GET.
    #[schemars(regex(pattern = r"^https?://\S+$"))]
    pub url: String,
    /// Time between checks.
    #[serde(default = "default_check_interval")]
    #[schemars(regex(pattern = DURATION))]
    pub interval: String,
    /// Consecutive failures that fail the deploy.
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_threshold: u32,
}

/// Rollback policy of an environment.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RollbackSpec {
    /// Restore the last good release on every target when verification
    /// fails.
    #[serde(default = "default_true")]
    pub automatic: bool,
}

/// Changelog settings.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ChangelogSpec {
    /// Extra classification rules, tried before the built-in ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub rules: Vec<ClassificationRule>,

    /// Markers around the release note in a PR description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markers: Option<ReleaseNoteMarkers>,

    /// Where the changelog is sent with the staging and production
    /// notifications.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub webhooks: Vec<Webhook>,
}

/// A classification rule: entries whose title matches `pattern` (a regular
/// expression) and whose changed files all match `paths` (globs) get
/// `visibility`. A rule needs a pattern, paths or both; with both, both must
/// match.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClassificationRule {
    /// Regular expression matched against the PR or commit title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub pattern: Option<String>,
    /// Globs on the paths a pull request changed, relative to the
    /// repository root (`docs/**`, `*.md`, `**/test_*.py`; `*` stays within
    /// one directory, `**` crosses them). The rule matches when every
    /// changed file matches one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub paths: Vec<String>,
    /// Section the matching entries go to.
    pub visibility: Visibility,
}

/// Changelog sections.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Shown to end users.
    User,
    /// Listed under "Changes not visible to end users".
    Internal,
}

/// Release-note markers.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseNoteMarkers {
    /// Line that starts the note.
    #[schemars(length(min = 1))]
    pub begin: String,
    /// Line that ends the note.
    #[schemars(length(min = 1))]
    pub end: String,
}

/// Where a release's notifications go, and in which shape.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.format) && self.format == 'Matrix') || (has(self.roomId) && has(self.secretRef))")
        .message("a Matrix webhook needs roomId and secretRef (a Secret whose key token is the access token)"),
    validation = Rule::new("(has(self.format) && self.format == 'Matrix') || (!has(self.roomId) && !has(self.msgtype))")
        .message("roomId and msgtype are for Matrix webhooks only"),
    validation = Rule::new("!(has(self.format) && self.format == 'Matrix') || !self.url.matches('[?#]')")
        .message("a Matrix webhook's url is the homeserver's base URL, without query or fragment")
)]
pub struct Webhook {
    /// `Generic` and `Slack`: the URL the notification is POSTed to (for
    /// Slack, the incoming webhook's URL, which is its secret: status and
    /// Events show only its scheme and host). `Matrix`: the homeserver's
    /// base URL, e.g. `https://matrix.example.org`.
    #[schemars(regex(pattern = r"^https?://\S+$"), length(max = 2048))]
    pub url: String,
    /// The shape of the message: `Generic` (the JSON notification, signed),
    /// `Slack` (an incoming-webhook message with blocks) or `Matrix` (an
    /// `m.room.message` event sent to `roomId`).
    #[serde(default)]
    pub format: WebhookFormat,
    /// `Generic` and `Slack`: a Secret whose `token` key signs the body
    /// (HMAC-SHA256, header `X-Packit-Signature-256`); optional. `Matrix`:
    /// a Secret whose `token` key is the access token of the account that
    /// posts; required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectRef>,
    /// `Matrix` only: the room to post to, by its id (`!abc123:example.org`,
    /// not an alias); the account must have joined it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^!\S+$"), length(max = 255))]
    pub room_id: Option<String>,
    /// `Matrix` only: `m.notice` (the default; clients treat it as a bot's
    /// message and bots do not answer it) or `m.text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // The plain enum: an optional enum's schema would list `null` as a value.
    #[schemars(with = "MatrixMsgtype")]
    pub msgtype: Option<MatrixMsgtype>,
}

/// Message formats of a webhook.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WebhookFormat {
    /// The JSON notification, with the changelog, unchanged for receivers
    /// written against it.
    #[default]
    Generic,
    /// A Slack incoming-webhook message (`text` and `blocks`).
    Slack,
    /// A Matrix `m.room.message` event (client-server API).
    Matrix,
}

/// The `msgtype` of a Matrix message.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MatrixMsgtype {
    #[default]
    #[serde(rename = "m.notice")]
    Notice,
    #[serde(rename = "m.text")]
    Text,
}

impl MatrixMsgtype {
    pub fn as_str(self) -> &'static str {
        match self {
            MatrixMsgtype::Notice => "m.notice",
            MatrixMsgtype::Text => "m.text",
        }
    }
}

/// Observed state, written by the operator.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PackitDeploymentStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Progressing, Degraded, InvalidSpec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// Where the train is: Idle, or the phase of the release in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,

    /// `env=release` for each environment, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub releases: Option<String>,

    /// The next scheduled build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_build: Option<DateTime<Utc>>,

    /// The start of the next (or the currently open) production window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_window: Option<DateTime<Utc>>,

    /// The planner's persisted state: the release in flight, the release in
    /// each environment, handled schedule slots and requests.
    #[serde(flatten)]
    pub train: super::train::TrainState,
}

/// Annotations through which people ask for things. Each value is a
/// timestamp (or a small JSON object for rollback); a request is acted on
/// once and acknowledged in status.
pub mod requests {
    /// Build a release now.
    pub const RELEASE: &str = "packit.dev/release-requested-at";
    /// Deploy the waiting release to production now, skipping the window.
    pub const PROMOTE: &str = "packit.dev/promote-requested-at";
    /// Roll an environment back: `{"requestedAt": "...", "environment":
    /// "production", "to": "<release>", "at": "<RFC 3339>"}`.
    pub const ROLLBACK: &str = "packit.dev/rollback";
    /// Approve the release in flight for an environment:
    /// `{"requestedAt": "...", "release": "<name>", "environment":
    /// "production", "user": "...", "groups": [...]}`; the identity is the
    /// one the client reports.
    pub const APPROVE: &str = "packit.dev/approve";
}

fn default_history_limit() -> u32 {
    20
}
fn default_branch() -> String {
    "stable".into()
}
fn default_build_timeout() -> String {
    "1h".into()
}
fn default_time_zone() -> String {
    "UTC".into()
}
fn default_rollout_timeout() -> String {
    "10m".into()
}
fn default_soak() -> String {
    "15m".into()
}
fn default_max_restarts() -> u32 {
    3
}
fn default_check_interval() -> String {
    "30s".into()
}
fn default_failure_threshold() -> u32 {
    3
}
fn default_true() -> bool {
    true
}

impl Default for HealthSpec {
    fn default() -> Self {
        Self {
            rollout_timeout: default_rollout_timeout(),
            soak: default_soak(),
            max_restarts: default_max_restarts(),
            http_checks: Vec::new(),
            metrics: Vec::new(),
            jobs: Vec::new(),
        }
    }
}

impl Default for RollbackSpec {
    fn default() -> Self {
        Self { automatic: true }
    }
}

impl Environment {
    /// Whether releases wait for a person's approval before deploying here.
    pub fn requires_approval(&self) -> bool {
        self.approval.as_ref().is_some_and(|a| a.required)
    }

    /// The target workloads (kind, name), each once, in the order first
    /// named: several targets may be containers of one workload.
    pub fn workloads(&self) -> Vec<(WorkloadKind, &str)> {
        let mut out: Vec<(WorkloadKind, &str)> = Vec::new();
        for t in &self.targets {
            if !out.contains(&(t.kind, t.name.as_str())) {
                out.push((t.kind, t.name.as_str()));
            }
        }
        out
    }
}

impl PackitDeploymentSpec {
    /// The component with this name.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    /// Map of component name to image repository.
    pub fn image_repositories(&self) -> BTreeMap<&str, &str> {
        self.components
            .iter()
            .map(|c| (c.name.as_str(), c.image.as_str()))
            .collect()
    }
}
