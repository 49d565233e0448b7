//! Reading the commits of a range with gitoxide: the only I/O of the
//! changelog.

use gix::bstr::ByteSlice as _;
use gix::traverse::commit::Info;

use super::{ChangelogError, RawCommit, RepoRange};

/// The commits of a range and what was resolved on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walked {
    /// Full id `from` resolved to; empty without `from`.
    pub from: String,
    /// Full id `to` resolved to.
    pub to: String,
    /// Reachable from `to` and not from `from`, in no particular order.
    pub commits: Vec<RawCommit>,
    pub warnings: Vec<String>,
}

/// Walks `range.from..range.to` in the repository at `range.path`.
pub fn walk(range: &RepoRange) -> Result<Walked, ChangelogError> {
    let repo_name = || range.name.clone();
    let mut repo = gix::open(&range.path).map_err(|e| ChangelogError::Unreachable {
        repo: repo_name(),
        detail: format!("{}: {e}", range.path.display()),
    })?;
    // Each commit is read once (the walk itself uses the commit-graph when
    // there is one): an object cache only costs memory and time.
    repo.object_cache_size_if_unset(0);
    let from = match &range.from {
        Some(rev) => Some(resolve(&repo, &range.name, rev)?),
        None => None,
    };
    let to = resolve(&repo, &range.name, &range.to)?;
    let read_err = |commit: String| {
        move |e: gix::Error| ChangelogError::Read {
            repo: repo_name(),
            commit,
            detail: e.to_string(),
        }
    };

    // First the ids and parents of the range: with a commit-graph the walk
    // reads no commit object. Then each commit is read exactly once.
    let mut infos = Vec::new();
    let mut cut = false;
    let walk = repo
        .rev_walk([to])
        .with_hidden(from)
        .all()
        .map_err(read_err(range.to.clone()))?;
    for info in walk {
        if range.limit.is_some_and(|limit| infos.len() >= limit) {
            cut = true;
            break;
        }
        infos.push(info.map_err(read_err(range.to.clone()))?.detach());
    }
    let commits = read_commits(&repo, &range.name, &infos)?;
    let mut warnings = Vec::new();
    if cut {
        warnings.push(format!(
            "only the newest {} commits of the range are listed",
            commits.len()
        ));
    }
    let Some(from) = from else {
        return Ok(Walked {
            from: String::new(),
            to: to.to_string(),
            commits,
            warnings,
        });
    };
    // `from` is an ancestor of `to` exactly when some commit of the range
    // has it as a parent, which spares a merge-base walk over the history.
    let from_hex = from.to_string();
    if !cut && from != to && !commits.iter().any(|c| c.parents.contains(&from_hex)) {
        let base = repo
            .merge_base(from, to)
            .map_err(read_err(range.to.clone()))?;
        let base = base.map_or_else(
            || "they have no common history".to_owned(),
            |b| format!("their merge base is {b}"),
        );
        let from_rev = range.from.as_deref().unwrap_or_default();
        warnings.push(format!(
            "{from_rev} ({from}) is not an ancestor of {} ({to}); {base}. Listed are the commits reachable from {} and not from {from_rev}.",
            range.to, range.to
        ));
    }
    Ok(Walked {
        from: from_hex,
        to: to.to_string(),
        commits,
        warnings,
    })
}

/// Ranges below this many commits are read on one thread: starting more
/// costs about what they would save.
const PARALLEL_FROM: usize = 2_000;

/// Reads the commits of `infos`, spread over the available cores for large
/// ranges (decompressing and decoding is most of a changelog's time).
fn read_commits(
    repo: &gix::Repository,
    name: &str,
    infos: &[Info],
) -> Result<Vec<RawCommit>, ChangelogError> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if threads < 2 || infos.len() < PARALLEL_FROM {
        return read_part(repo, name, infos);
    }
    let shared = repo.clone().into_sync();
    let mut parts = infos.chunks(infos.len().div_ceil(threads.min(4)));
    let first = parts.next().unwrap_or_default();
    std::thread::scope(|s| {
        let others: Vec<_> = parts
            .map(|part| {
                let shared = &shared;
                s.spawn(move || read_part(&shared.to_thread_local(), name, part))
            })
            .collect();
        let mut commits = read_part(repo, name, first)?;
        commits.reserve(infos.len() - commits.len());
        for other in others {
            let part = other
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            commits.extend(part);
        }
        Ok(commits)
    })
}

fn read_part(
    repo: &gix::Repository,
    name: &str,
    infos: &[Info],
) -> Result<Vec<RawCommit>, ChangelogError> {
    use gix::prelude::FindExt as _;
    let mut buf = Vec::new();
    let mut commits = Vec::with_capacity(infos.len());
    for info in infos {
        let read_err = |detail: String| ChangelogError::Read {
            repo: name.to_owned(),
            commit: info.id.to_string(),
            detail,
        };
        let commit = repo
            .objects
            .find_commit(&info.id, &mut buf)
            .map_err(|e| read_err(e.to_string()))?;
        let author = commit.author().map_err(|e| read_err(e.to_string()))?;
        let message = commit
            .message
            .to_str()
            .map_err(|_| ChangelogError::NotUtf8 {
                repo: name.to_owned(),
                commit: info.id.to_string(),
            })?;
        commits.push(RawCommit {
            id: info.id.to_string(),
            parents: info.parent_ids.iter().map(ToString::to_string).collect(),
            author: author.name.to_str_lossy().into_owned(),
            time: author.seconds(),
            message: message.to_owned(),
        });
    }
    Ok(commits)
}

/// Resolves `rev` (a full or abbreviated id, a tag, a branch, `HEAD~2`...)
/// to a commit.
fn resolve(repo: &gix::Repository, name: &str, rev: &str) -> Result<gix::ObjectId, ChangelogError> {
    let unknown = |detail: String| ChangelogError::UnknownRevision {
        repo: name.to_owned(),
        rev: rev.to_owned(),
        detail,
    };
    let id = repo
        .rev_parse_single(rev)
        .map_err(|e| unknown(e.to_string()))?;
    let commit = id
        .object()
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| unknown(e.to_string()))?;
    Ok(commit.id)
}

/// Clones `url` (all branches and tags) into a new bare repository at
/// `dir`, for ranges of repositories that are not on disk.
pub fn clone_bare(name: &str, url: &str, dir: &std::path::Path) -> Result<(), ChangelogError> {
    let unreachable = |e: gix::Error| ChangelogError::Unreachable {
        repo: name.to_owned(),
        detail: format!("cloning {}: {e}", crate::redact::redact_url(url)),
    };
    let interrupt = std::sync::atomic::AtomicBool::new(false);
    gix::prepare_clone_bare(url, dir)
        .map_err(unreachable)?
        .fetch_only(gix::progress::Discard, &interrupt)
        .map_err(unreachable)?;
    Ok(())
}

/// The fetch URL of the `origin` remote of the repository at `path`, used
/// to link entries of a local clone.
pub fn origin_url(path: &std::path::Path) -> Option<String> {
    let repo = gix::open(path).ok()?;
    let remote = repo.find_remote("origin").ok()?;
    let url = remote.url(gix::remote::Direction::Fetch)?;
    Some(url.to_bstring().to_string())
}
