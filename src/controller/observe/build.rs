//! The build of the release in flight: whether its PackitRelease exists
//! (and what it would hold when not), which builder Jobs are still to be
//! created, and the digests builders or CI reported, each confirmed in the
//! registry. The writes these call for are the actors' (`act::builds`).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Resource, ResourceExt};

use super::Observation;
use super::sources::{SourceError, revision};
use crate::api::PackitRelease;
use crate::api::deployment::{BuildStrategy, Component};
use crate::api::duration;
use crate::api::release::{ImageRef, PackitReleaseSpec, ReleaseComponent, Trigger};
use crate::build::job::{BuildRequest, JobOutcome, builder_job, job_name, job_outcome};
use crate::controller::Context;
use crate::labels;
use crate::plan::{BuildResult, InFlight, TrainState};

/// What the build of the release in flight looks like.
#[derive(Debug, Clone)]
pub enum BuildObservation {
    /// Its PackitRelease does not exist yet: the release to create, or why
    /// its sources could not be resolved.
    Unreleased(Result<Box<NewRelease>, String>),
    /// Its images are recorded.
    Built,
    /// Builders or CI are at work.
    InProgress(BuildProgress),
}

/// A release to create, with what its first status says.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub release: PackitRelease,
    /// Short commit per component.
    pub commit_summary: String,
    /// Every commit equals the previous release's.
    pub rebuild: bool,
}

#[derive(Debug, Clone, Default)]
pub struct BuildProgress {
    pub release: String,
    /// Builder Jobs that do not exist yet.
    pub missing_jobs: Vec<Job>,
    /// Every component's image, found and confirmed: ready to be recorded.
    pub images: Option<BTreeMap<String, ImageRef>>,
    /// Why the build failed.
    pub failed: Option<String>,
}

impl BuildObservation {
    /// The build as the planner sees it. Images count once recorded on the
    /// release, so a release never reaches an environment without them.
    pub fn result(&self) -> BuildResult {
        match self {
            Self::Unreleased(Err(e)) => {
                BuildResult::Failed(format!("cannot resolve the sources: {e}"))
            }
            Self::Built => BuildResult::Succeeded,
            Self::InProgress(BuildProgress {
                failed: Some(why), ..
            }) => BuildResult::Failed(why.clone()),
            Self::Unreleased(Ok(_)) | Self::InProgress(_) => BuildResult::Running,
        }
    }
}

pub async fn observe(
    ctx: &Context,
    obs: &Observation,
    state: &TrainState,
    in_flight: &InFlight,
    current: Option<&PackitRelease>,
) -> BuildObservation {
    let fetched;
    let release = match current {
        Some(rel) => rel,
        None => {
            // The store may not have seen a release created a moment ago;
            // only a fresh read tells "missing" from "not cached yet".
            let api: Api<PackitRelease> = Api::namespaced(ctx.client.clone(), &obs.namespace);
            match api.get_opt(&in_flight.release).await {
                Ok(Some(rel)) => {
                    fetched = rel;
                    &fetched
                }
                Ok(None) => {
                    let new = new_release(ctx, obs, state, in_flight).await;
                    return BuildObservation::Unreleased(
                        new.map(Box::new).map_err(|e| e.to_string()),
                    );
                }
                Err(e) => {
                    return BuildObservation::Unreleased(Err(format!(
                        "reading PackitRelease {}: {e}",
                        in_flight.release
                    )));
                }
            }
        }
    };
    if release.spec.images.is_some() {
        return BuildObservation::Built;
    }
    let mut progress = BuildProgress {
        release: release.name_any(),
        ..Default::default()
    };
    if let Some(why) = release.status.as_ref().and_then(|s| s.build_error.clone()) {
        progress.failed = Some(why);
        return BuildObservation::InProgress(progress);
    }
    let mut images = BTreeMap::new();
    for c in &obs.deployment.spec.components {
        match component_digest(ctx, obs, release, c).await {
            Ok(Digest::Found(digest)) => {
                if let Err(e) = ctx.registry.confirm(&c.image, &digest).await {
                    progress.failed = Some(format!("{}: {e}", c.name));
                    break;
                }
                images.insert(c.name.clone(), ImageRef(format!("{}@{digest}", c.image)));
            }
            Ok(Digest::Pending) => {}
            Ok(Digest::NoJob(job)) => progress.missing_jobs.push(*job),
            Err(why) => {
                progress.failed = Some(why);
                break;
            }
        }
    }
    if images.len() == obs.deployment.spec.components.len() {
        progress.images = Some(images);
    }
    BuildObservation::InProgress(progress)
}

enum Digest {
    Found(String),
    Pending,
    /// The builder Job to create.
    NoJob(Box<Job>),
}

/// The digest of one component's image so far.
async fn component_digest(
    ctx: &Context,
    obs: &Observation,
    release: &PackitRelease,
    c: &Component,
) -> Result<Digest, String> {
    let Some(built) = release.spec.components.iter().find(|x| x.name == c.name) else {
        return Err(format!("component {} is missing from the release", c.name));
    };
    let commit = &built.source.commit;
    match c.build.strategy {
        BuildStrategy::Job => job_digest(ctx, obs, release, c, commit)
            .await
            .map_err(|why| format!("{}: {why}", c.name)),
        BuildStrategy::External => match ctx.registry.find_by_revision(&c.image, commit).await {
            Ok(Some(d)) => Ok(Digest::Found(d)),
            Ok(None) => Ok(Digest::Pending),
            Err(e) => {
                // CI may not have pushed yet or the registry blips; the
                // build timeout decides.
                tracing::info!(component = %c.name, error = %e, "image not found yet");
                Ok(Digest::Pending)
            }
        },
    }
}

/// The digest a component's builder Job reported, or the Job to create when
/// it does not exist yet.
async fn job_digest(
    ctx: &Context,
    obs: &Observation,
    release: &PackitRelease,
    component: &Component,
    commit: &str,
) -> Result<Digest, String> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &obs.namespace);
    let name = job_name(&release.name_any(), &component.name);
    let Some(job) = jobs.get_opt(&name).await.map_err(|e| e.to_string())? else {
        let Some(build) = &component.build.job else {
            return Err("strategy Job without a job template".into());
        };
        let timeout = duration::parse(&component.build.timeout).map_or(3600, |d| d.num_seconds());
        let owners = [
            obs.deployment.controller_owner_ref(&()),
            release.owner_ref(&()).map(|mut o| {
                o.controller = Some(false);
                o
            }),
        ];
        let request = BuildRequest {
            deployment: &obs.name(),
            namespace: &obs.namespace,
            release: &release.name_any(),
            component: &component.name,
            repo_url: &component.source.url,
            branch: &component.source.branch,
            commit,
            destination: format!("{}:{}", component.image, release.name_any()),
            timeout_seconds: timeout,
            owners: owners.into_iter().flatten().collect(),
        };
        return Ok(Digest::NoJob(Box::new(builder_job(
            &build.template,
            &request,
        ))));
    };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &obs.namespace);
    let pods = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")))
        .await
        .map_err(|e| e.to_string())?
        .items;
    match job_outcome(&job, &pods) {
        JobOutcome::Running => Ok(Digest::Pending),
        JobOutcome::Succeeded(digest) => Ok(Digest::Found(digest)),
        JobOutcome::Failed(why) => Err(format!("builder Job {name} failed: {why}")),
    }
}

/// Resolves every branch head into the release to create. The changelog
/// compares against what production runs now.
async fn new_release(
    ctx: &Context,
    obs: &Observation,
    state: &TrainState,
    in_flight: &InFlight,
) -> Result<NewRelease, SourceError> {
    let previous = state
        .environments
        .last()
        .and_then(|e| e.release.as_deref())
        .and_then(|p| obs.release(p));
    let mut components = Vec::new();
    for (i, c) in obs.deployment.spec.components.iter().enumerate() {
        let before = previous.and_then(|p| p.spec.components.iter().find(|x| x.name == c.name));
        let field = format!("spec.components[{i}]");
        let source = revision(
            ctx,
            &obs.namespace,
            &format!("{field}.source"),
            &c.source,
            before.map(|b| &b.source),
        )
        .await?;
        let mut includes = Vec::new();
        for (j, inc) in c.includes.iter().enumerate() {
            let old = before.and_then(|b| b.includes.iter().find(|x| x.url == inc.url));
            let field = format!("{field}.includes[{j}]");
            includes.push(revision(ctx, &obs.namespace, &field, inc, old).await?);
        }
        components.push(ReleaseComponent {
            name: c.name.clone(),
            source,
            includes,
        });
    }
    let rebuild = previous.is_some()
        && components.iter().all(|c| {
            std::iter::once(&c.source)
                .chain(&c.includes)
                .all(|rev| rev.previous_commit.as_deref() == Some(rev.commit.as_str()))
        });
    let commit_summary = components
        .iter()
        .map(|c| {
            let commit = &c.source.commit;
            format!("{}@{}", c.name, commit.get(..7).unwrap_or(commit))
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut release = PackitRelease::new(
        &in_flight.release,
        PackitReleaseSpec {
            deployment: obs.name(),
            trigger: in_flight.trigger.unwrap_or(Trigger::Manual),
            components,
            previous: previous.map(ResourceExt::name_any),
            images: None,
        },
    );
    release.metadata.namespace = Some(obs.namespace.clone());
    release.metadata.labels = Some([(labels::DEPLOYMENT.to_owned(), obs.name())].into());
    release.metadata.owner_references = obs.deployment.controller_owner_ref(&()).map(|o| vec![o]);
    Ok(NewRelease {
        release,
        commit_summary,
        rebuild,
    })
}
