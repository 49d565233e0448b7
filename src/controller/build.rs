//! Watching the build of the release in flight: builder Jobs or images
//! pushed by CI, each digest confirmed in the registry before the release
//! records it.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::reconcile::Reconciler;
use super::release;
use crate::api::PackitRelease;
use crate::api::deployment::BuildStrategy;
use crate::api::duration;
use crate::api::release::{ImageRef, Trigger};
use crate::build::job::{BuildRequest, JobOutcome, builder_job, job_name, job_outcome};
use crate::plan::{BuildResult, InFlight, TrainState};

/// The build result of `name`, creating its release and builder Jobs when
/// they are missing (after a restart, or when the first try failed).
pub async fn observe(
    r: &Reconciler<'_>,
    state: &TrainState,
    in_flight: &InFlight,
    current: Option<&PackitRelease>,
    releases: &[PackitRelease],
) -> BuildResult {
    let name = in_flight.release.as_str();
    let trigger = in_flight.trigger.unwrap_or(Trigger::Manual);
    let release = match current {
        Some(rel) => rel.clone(),
        None => match release::create(r, name, trigger, state, releases).await {
            Ok(rel) => rel,
            Err(e) => return BuildResult::Failed(format!("cannot resolve the sources: {e}")),
        },
    };
    if release.spec.images.is_some() {
        return BuildResult::Succeeded;
    }
    let mut images = BTreeMap::new();
    for c in &r.pkd.spec.components {
        let Some(built) = release.spec.components.iter().find(|x| x.name == c.name) else {
            return BuildResult::Failed(format!(
                "component {} is missing from the release",
                c.name
            ));
        };
        let commit = &built.source.commit;
        let digest = match c.build.strategy {
            BuildStrategy::Job => match job_digest(r, &release, c, commit).await {
                Ok(Some(d)) => d,
                Ok(None) => return BuildResult::Running,
                Err(why) => return BuildResult::Failed(format!("{}: {why}", c.name)),
            },
            BuildStrategy::External => {
                match r.ctx.registry.find_by_revision(&c.image, commit).await {
                    Ok(Some(d)) => d,
                    Ok(None) => return BuildResult::Running,
                    Err(e) => {
                        // CI may not have pushed yet or the registry blips; the
                        // build timeout decides.
                        tracing::info!(component = %c.name, error = %e, "image not found yet");
                        return BuildResult::Running;
                    }
                }
            }
        };
        if let Err(e) = r.ctx.registry.confirm(&c.image, &digest).await {
            return BuildResult::Failed(format!("{}: {e}", c.name));
        }
        images.insert(c.name.clone(), ImageRef(format!("{}@{digest}", c.image)));
    }
    // Recorded once; the CRD refuses any later change.
    let patch = json!({ "spec": { "images": images } });
    match r
        .releases_api()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => BuildResult::Succeeded,
        Err(e) => {
            tracing::warn!(release = name, error = %e, "recording the images failed");
            BuildResult::Running
        }
    }
}

/// The digest a component's builder Job reported; creates the Job when it
/// does not exist yet.
async fn job_digest(
    r: &Reconciler<'_>,
    release: &PackitRelease,
    component: &crate::api::deployment::Component,
    commit: &str,
) -> Result<Option<String>, String> {
    let jobs: Api<Job> = Api::namespaced(r.ctx.client.clone(), &r.namespace);
    let name = job_name(&release.name_any(), &component.name);
    let job = match jobs.get_opt(&name).await.map_err(|e| e.to_string())? {
        Some(job) => job,
        None => {
            let Some(build) = &component.build.job else {
                return Err("strategy Job without a job template".into());
            };
            let timeout =
                duration::parse(&component.build.timeout).map_or(3600, |d| d.num_seconds());
            let owners = [
                r.pkd.controller_owner_ref(&()),
                release.owner_ref(&()).map(|mut o| {
                    o.controller = Some(false);
                    o
                }),
            ];
            let request = BuildRequest {
                deployment: &r.name(),
                namespace: &r.namespace,
                release: &release.name_any(),
                component: &component.name,
                repo_url: &component.source.url,
                branch: &component.source.branch,
                commit,
                destination: format!("{}:{}", component.image, release.name_any()),
                timeout_seconds: timeout,
                owners: owners.into_iter().flatten().collect(),
            };
            let job = builder_job(&build.template, &request);
            return match jobs.create(&PostParams::default(), &job).await {
                Ok(_) => Ok(None),
                Err(kube::Error::Api(e)) if e.is_already_exists() => Ok(None),
                Err(e) => Err(format!("creating the builder Job {name}: {e}")),
            };
        }
    };
    let pods: Api<Pod> = Api::namespaced(r.ctx.client.clone(), &r.namespace);
    let pods = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")))
        .await
        .map_err(|e| e.to_string())?
        .items;
    match job_outcome(&job, &pods) {
        JobOutcome::Running => Ok(None),
        JobOutcome::Succeeded(digest) => Ok(Some(digest)),
        JobOutcome::Failed(why) => Err(format!("builder Job {name} failed: {why}")),
    }
}
