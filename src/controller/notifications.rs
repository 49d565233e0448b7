//! Sending a release's notifications to the deployment's webhooks. Each
//! delivery runs in its own task, so a slow or failing receiver never holds
//! up the train; its outcome is an Event on the deployment.

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource};

use super::Error;
use super::reconcile::Reconciler;
use crate::metrics::ResultLabels;
use crate::notify::{self, Notification, Retry};
use crate::plan::ReleasePhase;

/// Tells every webhook that `release` reached `phase`.
pub async fn send(
    r: &Reconciler<'_>,
    release: &str,
    phase: ReleasePhase,
    environment: Option<&str>,
    message: &str,
) -> Result<(), Error> {
    let webhooks = &r.pkd.spec.changelog.webhooks;
    if webhooks.is_empty() || !notify::is_notified(phase) {
        return Ok(());
    }
    let Some(rel) = r.releases_api().get_opt(release).await? else {
        return Ok(());
    };
    let changelog = super::changelog::ensure(r, &rel).await?;
    let n = Notification {
        phase,
        namespace: r.namespace.clone(),
        deployment: r.name(),
        release: release.to_owned(),
        environment: environment.map(str::to_owned),
        message: message.to_owned(),
        at: r.now,
        components: rel.spec.components.clone(),
        images: rel.spec.images.clone(),
        changelog: Some(changelog),
    };
    let body = serde_json::to_vec(&n)?;
    for (i, hook) in webhooks.iter().enumerate() {
        let secret = match &hook.secret_ref {
            None => None,
            Some(s) => match token(r, &s.name).await {
                Ok(token) => Some(token),
                Err(why) => {
                    let note = format!(
                        "{release} {phase:?}: not sent to spec.changelog.webhooks[{i}]: {why}"
                    );
                    r.event("NotificationFailed", note, true).await;
                    continue;
                }
            },
        };
        let (client, url, n, body) = (
            r.ctx.prober.client().clone(),
            hook.url.clone(),
            n.clone(),
            body.clone(),
        );
        let (recorder, reference) = (r.recorder.clone(), r.pkd.object_ref(&()));
        let metrics = r.ctx.metrics.clone();
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
            let (reason, note, outcome) = match result {
                Ok(attempts) => (
                    "NotificationSent",
                    format!(
                        "{} {:?}: sent to {shown} ({attempts} attempt(s))",
                        n.release, n.phase
                    ),
                    "delivered",
                ),
                Err(e) => (
                    "NotificationFailed",
                    format!("{} {:?}: {e}", n.release, n.phase),
                    "failed",
                ),
            };
            metrics
                .notifications
                .get_or_create(&ResultLabels { result: outcome })
                .inc();
            let event = Event {
                type_: if outcome == "failed" {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: reason.into(),
                note: Some(note),
                action: "Notify".into(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::warn!(error = %e, "publishing an Event failed");
            }
        });
    }
    Ok(())
}

/// The signing key: the `token` key of a Secret in the deployment's
/// namespace.
async fn token(r: &Reconciler<'_>, name: &str) -> Result<Vec<u8>, String> {
    let secrets: Api<Secret> = Api::namespaced(r.ctx.client.clone(), &r.namespace);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| format!("reading Secret {name:?}: {e}"))?
        .ok_or_else(|| format!("Secret {name:?} not found in namespace {}", r.namespace))?;
    secret
        .data
        .and_then(|mut d| d.remove("token"))
        .map(|v| v.0)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("Secret {name:?} has no key \"token\""))
}
