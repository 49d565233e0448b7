//! What the observed build calls for: creating its release, its builder
//! Jobs, and recording its images once every one is confirmed.

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::releases;
use crate::api::PackitRelease;
use crate::controller::conditions::reason;
use crate::controller::events::Note;
use crate::controller::observe::{BuildObservation, Observation};
use crate::controller::{Context, Error};

/// Carries out the build's follow-ups; returns the release when it was
/// created or changed.
pub async fn follow_up(
    ctx: &Context,
    obs: &Observation,
    release: &str,
    build: &BuildObservation,
    notes: &mut Vec<Note>,
) -> Result<Option<PackitRelease>, Error> {
    match build {
        BuildObservation::Unreleased(Ok(new)) if new.release.name_any() == release => {
            match releases::create(ctx, obs, new).await {
                Ok(rel) => Ok(Some(rel)),
                Err(e) => {
                    // The next reconcile observes the sources again.
                    notes.push(Note::warning(
                        reason::SOURCE_UNAVAILABLE,
                        format!("{release}: {e}"),
                    ));
                    Ok(None)
                }
            }
        }
        BuildObservation::InProgress(p) if p.release == release && p.failed.is_none() => {
            for job in &p.missing_jobs {
                if let Some(refused) = create_job(ctx, obs, job).await? {
                    let api = releases::api(ctx, obs);
                    let rel = releases::update_status(&api, release, |s| {
                        s.build_error = Some(refused);
                    })
                    .await?;
                    return Ok(Some(rel));
                }
            }
            let Some(images) = &p.images else {
                return Ok(None);
            };
            // Recorded once; the CRD refuses any later change.
            let patch = json!({ "spec": { "images": images } });
            match releases::api(ctx, obs)
                .patch(release, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(rel) => Ok(Some(rel)),
                Err(e) => {
                    // Still building as far as the planner knows: tried again.
                    tracing::warn!(release, error = %e, "recording the images failed");
                    Ok(None)
                }
            }
        }
        _ => Ok(None),
    }
}

/// Creates a builder Job; returns why when the API refuses it for good
/// (an invalid template, a forbidden namespace), which fails the build.
async fn create_job(ctx: &Context, obs: &Observation, job: &Job) -> Result<Option<String>, Error> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &obs.namespace);
    match jobs.create(&PostParams::default(), job).await {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(e)) if e.is_already_exists() => Ok(None),
        Err(kube::Error::Api(e)) if (400..500).contains(&e.code) && e.code != 429 => Ok(Some(
            format!("creating the builder Job {}: {}", job.name_any(), e.message),
        )),
        Err(e) => Err(e.into()),
    }
}
