//! Git sources: resolving the head commit of a branch with gitoxide, keeping
//! one bare cache repository per namespace and source URL.
//!
//! [`SourceCache::resolve`] fetches only the asked-for branch into
//! `refs/heads/<branch>` of the cache (forced, so a force-pushed branch
//! simply moves) and returns the commit the remote advertised. Objects
//! fetched earlier stay in the cache, which later lets history be walked
//! without another clone.

mod fetch;
mod url;

pub use url::is_network_url;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

pub use crate::redact::redact_url;

/// HTTPS basic-auth credentials; with token-based hosts the token is the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

// Hand-written so that logging a `Credentials` never prints the secret.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why resolving a branch failed. URLs in messages have any user info
/// (credentials) removed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("invalid git URL {url}: {detail}")]
    InvalidUrl { url: String, detail: String },
    #[error("invalid branch name {branch:?} for git repository {url}")]
    InvalidBranch { url: String, branch: String },
    #[error("git repository {url} is unreachable (fetching branch {branch}): {detail}")]
    Unreachable {
        url: String,
        branch: String,
        detail: String,
    },
    #[error("authentication to git repository {url} failed (fetching branch {branch}): {detail}")]
    AuthenticationFailed {
        url: String,
        branch: String,
        detail: String,
    },
    #[error("branch {branch} not found in git repository {url}")]
    BranchNotFound { url: String, branch: String },
    #[error("fetching branch {branch} of git repository {url} failed: {detail}")]
    Fetch {
        url: String,
        branch: String,
        detail: String,
    },
    #[error("git cache {} for {url}: {detail}", path.display())]
    Cache {
        url: String,
        path: PathBuf,
        detail: String,
    },
}

/// Bare cache repositories, one per namespace and source URL, under one
/// directory: a train reads only caches its own namespace fetched, never
/// another tenant's checkout of the same URL (fetched with that tenant's
/// credentials, say).
///
/// Resolves of the same URL run one at a time (clones of a `SourceCache`
/// share these locks). A cache directory belongs to one process, which is
/// what lets a resolve clear lock files left by a fetch that died half-way.
#[derive(Debug, Clone)]
pub struct SourceCache {
    dir: PathBuf,
    locks: Arc<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>>,
}

impl SourceCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SourceCache {
            dir: dir.into(),
            locks: Arc::default(),
        }
    }

    /// The directory holding the caches.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the bare cache repository of `url` for trains of `namespace`
    /// lives (it exists once a resolve succeeded): `<dir>/<namespace>/<name>`,
    /// the name derived from the URL without its credentials.
    pub fn repo_path(&self, namespace: &str, url: &str) -> PathBuf {
        self.dir
            .join(url::namespace_dir_name(namespace))
            .join(url::cache_dir_name(url))
    }

    /// Fetches `branch` of `url` into `namespace`'s bare cache for `url`
    /// (created on first use, reused after) and returns the full hex SHA of
    /// its head.
    pub async fn resolve(
        &self,
        namespace: &str,
        url: &str,
        branch: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String, GitError> {
        let path = self.repo_path(namespace, url);
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            locks.entry(path.clone()).or_default().clone()
        };
        // The guard moves into the blocking task, so the repository stays
        // locked until gix is done with it even if this future is dropped.
        let guard = lock.lock_owned().await;
        let request = fetch::Request {
            path,
            url: url.to_owned(),
            branch: branch.to_owned(),
            credentials: credentials.cloned(),
        };
        let redacted = redact_url(url);
        let task = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            fetch::resolve_blocking(&request)
        });
        match task.await {
            Ok(result) => result,
            Err(err) => Err(GitError::Fetch {
                url: redacted,
                branch: branch.to_owned(),
                detail: format!("the fetch task failed: {err}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_password() {
        let credentials = Credentials {
            username: "bot".into(),
            password: "s3cret".into(),
        };
        let shown = format!("{credentials:?}");
        assert!(shown.contains("bot"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn repo_path_is_under_the_namespace_dir() {
        let cache = SourceCache::new("/var/cache/packit");
        let url = "https://bot:s3cret@github.com/packit/ogr.git";
        let path = cache.repo_path("packit", url);
        assert_eq!(path.parent(), Some(Path::new("/var/cache/packit/packit")));
        assert!(!path.to_string_lossy().contains("s3cret"));
        // Another tenant, the same URL: another cache.
        let other = cache.repo_path("other-team", url);
        assert_eq!(
            other.parent(),
            Some(Path::new("/var/cache/packit/other-team"))
        );
        assert_eq!(path.file_name(), other.file_name());
    }
}
