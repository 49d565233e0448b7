//! The blocking gitoxide work behind [`super::SourceCache::resolve`].

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::bstr::ByteSlice;
use gix::credentials::helper::Action;
use gix::credentials::protocol::Outcome;
use gix::progress::Discard;
use gix::remote::Direction;
use gix::sec::identity::Account;

use super::redact_url;
use super::url::url_password;
use super::{Credentials, GitError};

/// One resolve: which branch of which URL, into which cache repository.
pub(super) struct Request {
    pub path: PathBuf,
    pub url: String,
    pub branch: String,
    pub credentials: Option<Credentials>,
}

impl Request {
    fn shown_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The text of `err` and its causes, with the URL redacted and the
    /// password masked in case some layer echoed either.
    fn detail(&self, err: &gix::Error) -> String {
        let mut text = String::new();
        for cause in err.iter_errors() {
            let message = cause.to_string();
            if !message.is_empty() && !text.contains(&message) {
                if !text.is_empty() {
                    text.push_str(": ");
                }
                text.push_str(&message);
            }
        }
        self.scrub(text)
    }

    fn scrub(&self, text: String) -> String {
        let mut text = text.replace(&self.url, &self.shown_url());
        let secrets = [
            self.credentials.as_ref().map(|c| c.password.as_str()),
            url_password(&self.url),
        ];
        for secret in secrets.into_iter().flatten().filter(|s| !s.is_empty()) {
            text = text.replace(secret, "<redacted>");
        }
        text
    }

    fn cache_error(&self, detail: impl ToString) -> GitError {
        GitError::Cache {
            url: self.shown_url(),
            path: self.path.clone(),
            detail: self.scrub(detail.to_string()),
        }
    }

    fn fetch_error(&self, detail: String) -> GitError {
        GitError::Fetch {
            url: self.shown_url(),
            branch: self.branch.clone(),
            detail,
        }
    }

    /// Errors of connecting and the handshake: a rejected login, or a
    /// repository that cannot be reached at all.
    fn connect_error(&self, err: &gix::Error) -> GitError {
        let over_http = self.url.starts_with("http://") || self.url.starts_with("https://");
        let url = self.shown_url();
        let branch = self.branch.clone();
        let mut detail = self.detail(err);
        // gix also refuses outright to send credentials over plain http.
        let refused = err.iter_errors().any(|cause| {
            matches!(
                cause.downcast_ref::<gix::protocol::transport::client::Error>(),
                Some(gix::protocol::transport::client::Error::AuthenticationRefused(_))
            )
        });
        if refused || err.is_unauthenticated() || (over_http && err.is_permission_denied()) {
            if self.credentials.is_none() && url_password(&self.url).is_none() {
                detail =
                    format!("the server asks for a login and no credentials are set ({detail})");
            }
            GitError::AuthenticationFailed {
                url,
                branch,
                detail,
            }
        } else {
            GitError::Unreachable {
                url,
                branch,
                detail,
            }
        }
    }
}

pub(super) fn resolve_blocking(req: &Request) -> Result<String, GitError> {
    let ref_name = format!("refs/heads/{}", req.branch);
    if req.branch.is_empty() || gix::refs::FullName::try_from(ref_name.as_str()).is_err() {
        return Err(GitError::InvalidBranch {
            url: req.shown_url(),
            branch: req.branch.clone(),
        });
    }
    let repo = open_or_init(&req.path).map_err(|err| req.cache_error(err))?;
    remove_stale_locks(&req.path)
        .map_err(|err| req.cache_error(format!("removing stale lock files: {err}")))?;

    // An anonymous remote: nothing about the URL (or credentials in it) is
    // written to the cache's config. Only the one branch is fetched, forced
    // so that a force-pushed branch replaces the old head.
    let remote = repo
        .remote_at(req.url.as_str())
        .map_err(|err| GitError::InvalidUrl {
            url: req.shown_url(),
            detail: req.detail(&err),
        })?
        .with_fetch_tags(gix::remote::fetch::Tags::None)
        .with_refspecs(
            [format!("+{ref_name}:{ref_name}").as_str()],
            Direction::Fetch,
        )
        .map_err(|_| GitError::InvalidBranch {
            url: req.shown_url(),
            branch: req.branch.clone(),
        })?;
    let mut connection = remote
        .connect(Direction::Fetch)
        .map_err(|err| req.connect_error(&err))?;
    // Always our helper, also without credentials: the default one would run
    // the host's credential helpers or prompt on a terminal.
    connection.set_credentials(credential_helper(req.credentials.clone()));
    let prepare = connection
        .prepare_fetch(Discard, Default::default())
        .map_err(|err| req.connect_error(&err))?;
    let advertised = prepare
        .ref_map()
        .mappings
        .iter()
        .find(|mapping| mapping.remote.as_name() == Some(ref_name.as_bytes().as_bstr()))
        .and_then(|mapping| mapping.remote.as_id())
        .map(ToOwned::to_owned);
    let Some(advertised) = advertised else {
        return Err(GitError::BranchNotFound {
            url: req.shown_url(),
            branch: req.branch.clone(),
        });
    };
    prepare
        .receive(Discard, &AtomicBool::new(false))
        .map_err(|err| req.fetch_error(req.detail(&err)))?;

    let head = repo
        .find_reference(ref_name.as_str())
        .and_then(|mut reference| reference.peel_to_id())
        .map_err(|err| req.cache_error(req.detail(&err)))?
        .detach();
    if head != advertised {
        return Err(req.fetch_error(format!(
            "the remote advertised {advertised} but the cache has {head} after fetching"
        )));
    }
    Ok(head.to_string())
}

/// Opens the bare cache repository at `path`, creating it on first use.
/// Configuration outside the repository (system, global, environment) is
/// ignored so that the host's git setup cannot change what is fetched or
/// prompt for credentials.
fn open_or_init(path: &Path) -> Result<gix::Repository, String> {
    let options = || gix::open::Options::isolated();
    if path.exists() {
        match gix::open_opts(path, options()) {
            Ok(repo) => return Ok(repo),
            // Most likely a first fetch that died half-way: start over
            // rather than fail forever.
            Err(_) => std::fs::remove_dir_all(path)
                .map_err(|err| format!("removing the unusable cache: {err}"))?,
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|err| format!("creating {}: {err}", parent.display()))?;
    }
    gix::ThreadSafeRepository::init_opts(
        path,
        gix::create::Kind::Bare,
        gix::create::Options::default(),
        options(),
    )
    .map(gix::Repository::from)
    .map_err(|err| format!("creating the cache repository: {err}"))
}

/// Removes lock files under the cache's git directory: left behind by a
/// process that died mid-fetch, they would fail every later fetch. The cache
/// belongs to this process and the caller holds its lock, so any lock file
/// there is stale.
fn remove_stale_locks(git_dir: &Path) -> std::io::Result<()> {
    fn remove_locks(dir: &Path, recursive: bool) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() && recursive {
                remove_locks(&path, true)?;
            } else if kind.is_file() && path.extension().is_some_and(|ext| ext == "lock") {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }
    // `HEAD.lock`, `config.lock`, `packed-refs.lock` and the like.
    remove_locks(git_dir, false)?;
    let refs = git_dir.join("refs");
    if refs.is_dir() {
        remove_locks(&refs, true)?;
    }
    Ok(())
}

/// Answers gix's credential requests with `credentials` (none: no login);
/// approvals and rejections need no storage.
fn credential_helper(
    credentials: Option<Credentials>,
) -> impl FnMut(Action) -> gix::Result<Option<Outcome>> + 'static {
    move |action| match (action, &credentials) {
        (Action::Get(context), Some(credentials)) => Ok(Some(Outcome {
            identity: Account {
                username: credentials.username.clone(),
                password: credentials.password.clone(),
                oauth_refresh_token: None,
            },
            next: context.into(),
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_helper_answers_get_only() {
        let mut helper = credential_helper(Some(Credentials {
            username: "bot".into(),
            password: "s3cret".into(),
        }));
        let outcome = helper(Action::get_for_url("https://example.com/repo.git"));
        let identity = outcome.ok().flatten().map(|outcome| outcome.identity);
        assert_eq!(
            identity.map(|account| (account.username, account.password)),
            Some(("bot".to_owned(), "s3cret".to_owned()))
        );
        assert!(matches!(helper(Action::Store("x".into())), Ok(None)));
        assert!(matches!(helper(Action::Erase("x".into())), Ok(None)));

        let mut anonymous = credential_helper(None);
        let outcome = anonymous(Action::get_for_url("https://example.com/repo.git"));
        assert!(matches!(outcome, Ok(None)));
    }

    #[test]
    fn scrub_hides_password_and_user_info() {
        let req = Request {
            path: PathBuf::from("/cache/x"),
            url: "https://bot:s3cret@example.com/repo.git".into(),
            branch: "stable".into(),
            credentials: Some(Credentials {
                username: "bot".into(),
                password: "tok3n".into(),
            }),
        };
        let text = req.scrub(
            "GET https://bot:s3cret@example.com/repo.git/info/refs failed with tok3n (s3cret)"
                .into(),
        );
        assert_eq!(
            text,
            "GET https://example.com/repo.git/info/refs failed with <redacted> (<redacted>)"
        );
    }
}
