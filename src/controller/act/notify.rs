//! Sending a release's notifications to the deployment's webhooks. Each
//! delivery runs in its own task, so a slow or failing receiver never holds
//! up the train; the task tells its outcome as an Event on the deployment
//! when it ends.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::changelog;
use crate::api::PackitRelease;
use crate::controller::events::{Note, Publisher};
use crate::controller::observe::Observation;
use crate::controller::{Context, Error};
use crate::metrics::ResultLabels;
use crate::notify::{self, Notification, Retry};
use crate::plan::ReleasePhase;

/// The phase a release reached.
pub struct Phase<'a> {
    pub phase: ReleasePhase,
    pub environment: Option<&'a str>,
    pub message: &'a str,
}

/// Tells every webhook that `release` reached a phase; returns the release
/// (with its changelog, which the notification carries).
pub async fn send(
    ctx: &Context,
    obs: &Observation,
    release: PackitRelease,
    reached: &Phase<'_>,
    events: &Publisher,
    notes: &mut Vec<Note>,
) -> Result<PackitRelease, Error> {
    let webhooks = &obs.deployment.spec.changelog.webhooks;
    if webhooks.is_empty() || !notify::is_notified(reached.phase) {
        return Ok(release);
    }
    let release = changelog::ensure(ctx, obs, release, notes).await?;
    let name = release.name_any();
    let phase = reached.phase;
    let n = Notification {
        phase,
        namespace: obs.namespace.clone(),
        deployment: obs.name(),
        release: name.clone(),
        environment: reached.environment.map(str::to_owned),
        message: reached.message.to_owned(),
        at: obs.now,
        components: release.spec.components.clone(),
        images: release.spec.images.clone(),
        changelog: release.status.as_ref().and_then(|s| s.changelog.clone()),
    };
    let body = serde_json::to_vec(&n)?;
    for (i, hook) in webhooks.iter().enumerate() {
        let secret = match &hook.secret_ref {
            None => None,
            Some(s) => match token(ctx, &obs.namespace, &s.name).await {
                Ok(token) => Some(token),
                Err(why) => {
                    let note = format!(
                        "{name} {phase:?}: not sent to spec.changelog.webhooks[{i}]: {why}"
                    );
                    notes.push(Note::warning("NotificationFailed", note));
                    continue;
                }
            },
        };
        let (client, url, n, body) = (
            ctx.prober.client().clone(),
            hook.url.clone(),
            n.clone(),
            body.clone(),
        );
        let events = events.for_action("Notify");
        let metrics = ctx.metrics.clone();
        tokio::spawn(async move {
            let result = notify::deliver(
                &client,
                &url,
                secret.as_deref(),
                &n,
                &body,
                &Retry::default(),
            )
            .await;
            let shown = crate::git::redact_url(&url);
            let (note, outcome) = match result {
                Ok(attempts) => (
                    Note::normal(
                        "NotificationSent",
                        format!(
                            "{} {:?}: sent to {shown} ({attempts} attempt(s))",
                            n.release, n.phase
                        ),
                    ),
                    "delivered",
                ),
                Err(e) => (
                    Note::warning(
                        "NotificationFailed",
                        format!("{} {:?}: {e}", n.release, n.phase),
                    ),
                    "failed",
                ),
            };
            metrics
                .notifications
                .get_or_create(&ResultLabels { result: outcome })
                .inc();
            events.publish(&note).await;
        });
    }
    Ok(release)
}

/// The signing key: the `token` key of a Secret in the deployment's
/// namespace.
async fn token(ctx: &Context, namespace: &str, name: &str) -> Result<Vec<u8>, String> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| format!("reading Secret {name:?}: {e}"))?
        .ok_or_else(|| format!("Secret {name:?} not found in namespace {namespace}"))?;
    secret
        .data
        .and_then(|mut d| d.remove("token"))
        .map(|v| v.0)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("Secret {name:?} has no key \"token\""))
}
