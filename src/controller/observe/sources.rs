//! Resolving the branch heads of a new release, with the credentials its
//! sources name. Reads git and Secrets; writes nothing.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::api::deployment::GitSource;
use crate::api::release::Revision;
use crate::controller::Context;
use crate::git::Credentials;

/// Why a release's sources could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{field}: {message}")]
    Credentials { field: String, message: String },
    #[error("{0}")]
    Git(#[from] crate::git::GitError),
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// The head of `source`'s branch, compared against `before`.
pub async fn revision(
    ctx: &Context,
    namespace: &str,
    field: &str,
    source: &GitSource,
    before: Option<&Revision>,
) -> Result<Revision, SourceError> {
    let credentials = match &source.secret_ref {
        Some(s) => Some(credentials(ctx, namespace, &format!("{field}.secretRef"), &s.name).await?),
        None => None,
    };
    let commit = ctx
        .sources
        .resolve(namespace, &source.url, &source.branch, credentials.as_ref())
        .await?;
    Ok(Revision {
        url: source.url.clone(),
        name: source.name.clone(),
        commit,
        previous_commit: before.map(|b| b.commit.clone()),
    })
}

/// HTTPS credentials from a Secret's `username` and `password` keys, in the
/// deployment's own namespace.
async fn credentials(
    ctx: &Context,
    namespace: &str,
    field: &str,
    name: &str,
) -> Result<Credentials, SourceError> {
    let err = |message: String| SourceError::Credentials {
        field: field.to_owned(),
        message,
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = secrets.get_opt(name).await?.ok_or_else(|| {
        err(format!(
            "Secret {name:?} not found in namespace {namespace}"
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
