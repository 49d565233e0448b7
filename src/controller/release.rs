//! Creating PackitReleases from the branch heads, and recording their
//! phases and progress.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::reconcile::Reconciler;
use super::{Error, MANAGER};
use crate::api::deployment::GitSource;
use crate::api::release::{PackitReleaseSpec, ReleaseComponent, Revision, Trigger};
use crate::api::{PackitRelease, PackitReleaseStatus};
use crate::git::Credentials;
use crate::labels;
use crate::plan::{ReleasePhase, TrainState};

/// Why a release could not be created.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{field}: {message}")]
    Credentials { field: String, message: String },
    #[error("{0}")]
    Git(#[from] crate::git::GitError),
    #[error("creating the PackitRelease: {0}")]
    Kube(#[from] kube::Error),
}

/// Resolves every branch head and creates the release (or returns the one
/// that exists: creating it again after a restart is harmless).
pub async fn create(
    r: &Reconciler<'_>,
    name: &str,
    trigger: Trigger,
    state: &TrainState,
    releases: &[PackitRelease],
) -> Result<PackitRelease, SourceError> {
    let api = r.releases_api();
    if let Some(existing) = api.get_opt(name).await? {
        return Ok(existing);
    }
    // The changelog compares against what production runs now.
    let previous = state
        .environments
        .last()
        .and_then(|e| e.release.as_deref())
        .and_then(|p| releases.iter().find(|x| x.name_any() == p));
    let mut components = Vec::new();
    for (i, c) in r.pkd.spec.components.iter().enumerate() {
        let before = previous.and_then(|p| p.spec.components.iter().find(|x| x.name == c.name));
        let source = revision(
            r,
            &format!("spec.components[{i}].source"),
            &c.source,
            before.map(|b| &b.source),
        )
        .await?;
        let mut includes = Vec::new();
        for (j, inc) in c.includes.iter().enumerate() {
            let old = before.and_then(|b| b.includes.iter().find(|x| x.url == inc.url));
            includes
                .push(revision(r, &format!("spec.components[{i}].includes[{j}]"), inc, old).await?);
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
    let mut release = PackitRelease::new(
        name,
        PackitReleaseSpec {
            deployment: r.name(),
            trigger,
            components,
            previous: previous.map(ResourceExt::name_any),
            images: None,
        },
    );
    release.metadata.namespace = Some(r.namespace.clone());
    release.metadata.labels = Some([(labels::DEPLOYMENT.to_owned(), r.name())].into());
    release.metadata.owner_references = r.pkd.controller_owner_ref(&()).map(|o| vec![o]);
    let created = match api.create(&PostParams::default(), &release).await {
        Ok(c) => c,
        Err(kube::Error::Api(e)) if e.is_already_exists() => api.get(name).await?,
        Err(e) => return Err(e.into()),
    };
    let summary: Vec<String> = created
        .spec
        .components
        .iter()
        .map(|c| {
            format!(
                "{}@{}",
                c.name,
                c.source.commit.get(..7).unwrap_or(&c.source.commit)
            )
        })
        .collect();
    update_status(&api, name, |s| {
        s.phase.get_or_insert(ReleasePhase::Building);
        s.commit_summary = Some(summary.join(" "));
        s.rebuild = rebuild;
        if rebuild {
            s.message = Some("no new commits: rebuilt for base-image updates".into());
        }
    })
    .await?;
    Ok(created)
}

async fn revision(
    r: &Reconciler<'_>,
    field: &str,
    source: &GitSource,
    before: Option<&Revision>,
) -> Result<Revision, SourceError> {
    let credentials = match &source.secret_ref {
        Some(s) => Some(credentials(r, &format!("{field}.secretRef"), &s.name).await?),
        None => None,
    };
    let commit = r
        .ctx
        .sources
        .resolve(&source.url, &source.branch, credentials.as_ref())
        .await?;
    Ok(Revision {
        url: source.url.clone(),
        commit,
        previous_commit: before.map(|b| b.commit.clone()),
    })
}

/// HTTPS credentials from a Secret's `username` and `password` keys.
async fn credentials(
    r: &Reconciler<'_>,
    field: &str,
    name: &str,
) -> Result<Credentials, SourceError> {
    let err = |message: String| SourceError::Credentials {
        field: field.to_owned(),
        message,
    };
    let secrets: Api<Secret> = Api::namespaced(r.ctx.client.clone(), &r.namespace);
    let secret = secrets.get_opt(name).await?.ok_or_else(|| {
        err(format!(
            "Secret {name:?} not found in namespace {}",
            r.namespace
        ))
    })?;
    let data = secret.data.unwrap_or_default();
    let key = |k: &str| {
        data.get(k)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .ok_or_else(|| err(format!("Secret {name:?} has no UTF-8 key {k:?}")))
    };
    Ok(Credentials {
        username: key("username")?,
        password: key("password")?,
    })
}

/// Records a phase, and the environment's progress it implies.
pub async fn set_phase(
    r: &Reconciler<'_>,
    release: &str,
    phase: ReleasePhase,
    environment: Option<&str>,
    message: &str,
) -> Result<(), Error> {
    let api = r.releases_api();
    if api.get_opt(release).await?.is_none() {
        tracing::info!(
            release,
            ?phase,
            "release object is gone; phase not recorded"
        );
        return Ok(());
    }
    let now = r.now;
    update_status(&api, release, |s| {
        s.phase = Some(phase);
        s.message = Some(message.to_owned());
        let Some(env) = environment else { return };
        let progress = match s.environments.iter_mut().position(|e| e.name == env) {
            Some(i) => &mut s.environments[i],
            None => {
                s.environments
                    .push(crate::api::release::EnvironmentProgress {
                        name: env.to_owned(),
                        ..Default::default()
                    });
                s.environments.last_mut().expect("just pushed")
            }
        };
        match phase {
            ReleasePhase::Staging | ReleasePhase::Production => {
                progress.deployed_at = Some(now);
                progress.verified_at = None;
                progress.failed_at = None;
            }
            ReleasePhase::Verified | ReleasePhase::Released => progress.verified_at = Some(now),
            ReleasePhase::StagingFailed
            | ReleasePhase::RolledBack
            | ReleasePhase::Failed
            | ReleasePhase::Cancelled => progress.failed_at = Some(now),
            _ => {}
        }
        progress.message = Some(message.to_owned());
    })
    .await?;
    Ok(())
}

/// Read-modify-write of a release's status under the operator's field
/// manager (the status has one writer).
pub async fn update_status(
    api: &Api<PackitRelease>,
    name: &str,
    change: impl FnOnce(&mut PackitReleaseStatus),
) -> Result<(), kube::Error> {
    let current = api.get(name).await?;
    let mut status = current.status.clone().unwrap_or_default();
    let before = status.clone();
    change(&mut status);
    if status == before {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": "packit.dev/v1alpha1",
        "kind": "PackitRelease",
        "metadata": { "name": name, "resourceVersion": current.resource_version() },
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// The image each component of a built release deploys, by digest.
pub fn image_of<'a>(release: &'a PackitRelease, component: &str) -> Option<&'a str> {
    release
        .spec
        .images
        .as_ref()?
        .get(component)
        .map(|i| i.0.as_str())
}
