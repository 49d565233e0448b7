//! A release's webhook notifications, through its outbox
//! (`status.notifications`). [`queue`] makes the entries a phase calls for;
//! they are written together with the phase (state before action). Then
//! [`deliver_due`] starts an attempt of every entry that is due, each in its
//! own task so that a slow or failing receiver never holds up the train.
//! A task records how its attempt went on the release, and tells the outcome
//! as an Event once it is final. A restart, or a new leader, finds the
//! pending entries in the status and resumes them: at least once, under the
//! same delivery id.

use std::sync::{Arc, PoisonError};

use chrono::Utc;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use super::{changelog, releases};
use crate::api::PackitRelease;
use crate::api::deployment::Webhook;
use crate::api::release::{DeliveryState, NotificationDelivery};
use crate::controller::events::{Note, Publisher};
use crate::controller::observe::Observation;
use crate::controller::{Context, Deliveries};
use crate::metrics::{Metrics, ResultLabels};
use crate::notify::outbox::{self, Outcome, Reached};
use crate::notify::{self, Failure, Notification, Retry};
use crate::plan::ReleasePhase;

/// The outbox entries of `release` reaching `phase`: one per webhook, none
/// for the phases nobody is told about.
pub fn queue(
    obs: &Observation,
    release: &str,
    phase: ReleasePhase,
    environment: Option<&str>,
    message: &str,
) -> Vec<NotificationDelivery> {
    if !notify::is_notified(phase) {
        return Vec::new();
    }
    let reached = Reached {
        namespace: &obs.namespace,
        release,
        phase,
        environment,
        message,
        at: obs.now,
    };
    outbox::entries(&obs.deployment.spec.changelog.webhooks, &reached)
}

/// Starts an attempt of every entry that is due and not being attempted
/// already. The notification carries the release's changelog, so it is
/// written first. Failures here hold up nothing: the entry stays due.
pub async fn deliver_due(
    ctx: &Context,
    obs: &Observation,
    releases: &mut [PackitRelease],
    events: &Publisher,
    notes: &mut Vec<Note>,
) {
    for release in releases.iter_mut() {
        let due: Vec<String> = pending(release)
            .filter(|e| outbox::is_due(e, obs.now))
            .map(|e| e.id.clone())
            .collect();
        if due.is_empty() {
            continue;
        }
        match changelog::ensure(ctx, obs, release.clone(), notes).await {
            Ok(updated) => *release = updated,
            Err(e) => {
                tracing::warn!(release = %release.name_any(), error = %e, "changelog for notifications");
                continue;
            }
        }
        for id in due {
            if !claim(&ctx.deliveries, &id) {
                continue;
            }
            let attempt = Attempt {
                client: ctx.client.clone(),
                http: ctx.prober.client().clone(),
                metrics: ctx.metrics.clone(),
                events: events.for_action("Notify"),
                namespace: obs.namespace.clone(),
                release: release.name_any(),
                webhooks: obs.deployment.spec.changelog.webhooks.clone(),
                _claim: Claim(ctx.deliveries.clone(), id.clone()),
                id,
            };
            tokio::spawn(attempt.run());
        }
    }
}

fn pending(release: &PackitRelease) -> impl Iterator<Item = &NotificationDelivery> {
    release
        .status
        .iter()
        .flat_map(|s| &s.notifications)
        .filter(|e| e.state == DeliveryState::Pending)
}

/// Marks `id` as being attempted by this process; false if it already is.
fn claim(running: &Deliveries, id: &str) -> bool {
    running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id.to_owned())
}

/// Releases the claim on an entry when its attempt ends, however it ends.
struct Claim(Deliveries, String);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.1);
    }
}

/// One attempt of one entry, in its own task.
struct Attempt {
    client: Client,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    events: Publisher,
    namespace: String,
    release: String,
    webhooks: Vec<Webhook>,
    id: String,
    /// Held for as long as the attempt runs.
    _claim: Claim,
}

impl Attempt {
    async fn run(self) {
        if let Err(e) = self.try_run().await {
            // The entry stays as it was: attempted again when due.
            tracing::warn!(release = %self.release, delivery = %self.id, error = %e, "notification attempt not recorded");
        }
        // The claim is let go with `self`, after the result is recorded.
    }

    async fn try_run(&self) -> Result<(), kube::Error> {
        let api: Api<PackitRelease> = Api::namespaced(self.client.clone(), &self.namespace);
        // A fresh read: the cache may not show the last attempt's result yet.
        let Some(release) = api.get_opt(&self.release).await? else {
            return Ok(());
        };
        let Some(entry) = pending(&release).find(|e| e.id == self.id) else {
            return Ok(());
        };
        if !outbox::is_due(entry, Utc::now()) {
            return Ok(());
        }
        let outcome = self.attempt(&release, entry).await;
        let now = Utc::now();
        let mut finished = None;
        releases::modify_status(&api, &self.release, |s| {
            finished = None;
            let entry = s
                .notifications
                .iter_mut()
                .find(|e| e.id == self.id && e.state == DeliveryState::Pending);
            if let Some(e) = entry
                && outbox::record(e, outcome.clone(), now, &Retry::default())
            {
                finished = Some(e.clone());
            }
        })
        .await?;
        if let Some(entry) = finished {
            self.tell(&entry).await;
        } else if let Outcome::Retryable(why) = &outcome {
            tracing::debug!(release = %self.release, delivery = %self.id, %why, "notification not delivered yet");
        }
        Ok(())
    }

    async fn attempt(&self, release: &PackitRelease, entry: &NotificationDelivery) -> Outcome {
        let Some(hook) = outbox::webhook_of(&self.webhooks, entry) else {
            return Outcome::Final(format!(
                "{}: no longer in spec.changelog.webhooks",
                entry.target
            ));
        };
        let secret = match &hook.secret_ref {
            None => None,
            Some(s) => match token(&self.client, &self.namespace, &s.name).await {
                Ok(token) => Some(token),
                Err(why) => return Outcome::Final(format!("{}: {why}", entry.target)),
            },
        };
        let notification = Notification::of(release, &self.namespace, entry);
        let failure = Failure::of(release, entry);
        let request =
            match notify::request(hook, &notification, &failure, &entry.id, secret.as_deref()) {
                Ok(request) => request,
                Err(why) => return Outcome::Final(format!("{}: {why}", entry.target)),
            };
        notify::send(&self.http, request, Retry::default().timeout).await
    }

    /// The Event and the metric of a finished delivery.
    async fn tell(&self, entry: &NotificationDelivery) {
        let (release, phase, target, n) =
            (&self.release, entry.phase, &entry.target, entry.attempts);
        let (note, result) = match entry.state {
            DeliveryState::Delivered => (
                Note::normal(
                    "NotificationSent",
                    format!("{release} {phase:?}: sent to {target} ({n} attempt(s))"),
                ),
                "delivered",
            ),
            _ => (
                Note::warning(
                    "NotificationFailed",
                    format!(
                        "{release} {phase:?}: not sent to {target} after {n} attempt(s): {}",
                        entry.last_error.as_deref().unwrap_or("unknown")
                    ),
                ),
                "failed",
            ),
        };
        self.metrics
            .notifications
            .get_or_create(&ResultLabels { result })
            .inc();
        self.events.publish(&note).await;
    }
}

/// The `token` key of a Secret in the deployment's namespace: a signing key,
/// or a Matrix access token.
async fn token(client: &Client, namespace: &str, name: &str) -> Result<Vec<u8>, String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
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
