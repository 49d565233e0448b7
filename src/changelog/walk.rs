//! Reading the commits of a range with gitoxide: the only I/O of the
//! changelog.

use gix::bstr::ByteSlice as _;

use super::group::Item;
use super::{ChangelogError, RawCommit, RepoRange, Wanted};

/// The commits of a range and what was resolved on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walked {
    /// Full id `from` resolved to; empty without `from`.
    pub from: String,
    /// Full id `to` resolved to.
    pub to: String,
    /// Reachable from `to` and not from `from`, in no particular order.
    pub commits: Vec<RawCommit>,
    /// The pull-request templates at `to` (see [`pr_templates`]).
    pub templates: Vec<String>,
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
    let templates = pr_templates(&repo, to);
    let read_err = |commit: String| {
        move |e: gix::Error| ChangelogError::Read {
            repo: repo_name(),
            commit,
            detail: e.to_string(),
        }
    };

    // First the ids of the range: with a commit-graph the walk reads no
    // commit object. Then each commit is read exactly once. Only the ids are
    // kept meanwhile (the parents are in the commits): a fifth of the memory
    // of the walk's whole records.
    let mut ids = Vec::new();
    let mut cut = false;
    let walk = repo
        .rev_walk([to])
        .with_hidden(from)
        .all()
        .map_err(read_err(range.to.clone()))?;
    for info in walk {
        if range.limit.is_some_and(|limit| ids.len() >= limit) {
            cut = true;
            break;
        }
        ids.push(info.map_err(read_err(range.to.clone()))?.id);
    }
    let commits = read_commits(&repo, &range.name, &ids)?;
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
            templates,
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
        templates,
        warnings,
    })
}

/// Where GitHub looks for pull-request templates: the root, `.github/` and
/// `docs/`, each with a `pull_request_template` file (`.md`, `.txt` or no
/// extension) or a `PULL_REQUEST_TEMPLATE/` directory of them, names in any
/// case.
const TEMPLATE_DIRS: &[&str] = &["", ".github", "docs"];
const TEMPLATE_NAME: &str = "pull_request_template";

/// The text of every pull-request template at commit `to`, in path order;
/// none when there are none or they cannot be read (templates only refine
/// the classification, so reading them never fails a changelog).
pub fn pr_templates(repo: &gix::Repository, to: gix::ObjectId) -> Vec<String> {
    let Ok(root) = repo.find_commit(to).and_then(|c| c.tree()) else {
        return Vec::new();
    };
    let is_template_file = |name: &str| {
        let lower = name.to_ascii_lowercase();
        let stem = lower
            .strip_suffix(".md")
            .or_else(|| lower.strip_suffix(".txt"))
            .unwrap_or(&lower);
        stem == TEMPLATE_NAME
    };
    let text_of = |oid: &gix::oid| {
        let blob = repo.find_blob(oid).ok()?;
        std::str::from_utf8(&blob.data).ok().map(str::to_owned)
    };
    let mut out = Vec::new();
    let mut read_dir = |tree: &gix::Tree<'_>| {
        let Ok(decoded) = tree.decode() else { return };
        for entry in &decoded.entries {
            let Ok(name) = entry.filename.to_str() else {
                continue;
            };
            if entry.mode.is_blob() && is_template_file(name) {
                out.extend(text_of(entry.oid));
            } else if entry.mode.is_tree()
                && name.eq_ignore_ascii_case(TEMPLATE_NAME)
                && let Ok(sub) = repo.find_tree(entry.oid)
                && let Ok(sub_decoded) = sub.decode()
            {
                // `PULL_REQUEST_TEMPLATE/`: one template per file.
                for e in &sub_decoded.entries {
                    let text_file = e.filename.to_str().is_ok_and(|n| {
                        let n = n.to_ascii_lowercase();
                        n.ends_with(".md") || n.ends_with(".txt")
                    });
                    if e.mode.is_blob() && text_file {
                        out.extend(text_of(e.oid));
                    }
                }
            }
        }
    };
    for dir in TEMPLATE_DIRS {
        if dir.is_empty() {
            read_dir(&root);
        } else if let Ok(Some(entry)) = root.lookup_entry_by_path(dir)
            && entry.mode().is_tree()
            && let Ok(tree) = repo.find_tree(entry.object_id())
        {
            read_dir(&tree);
        }
    }
    out
}

/// The files commits changed, read from the repository's trees.
pub struct Trees {
    path: std::path::PathBuf,
    repo: gix::Repository,
}

/// Diffs read through one opening of the repository (see why at the
/// `changed_all` of [`Trees`]).
const DIFFS_PER_OPENING: usize = 2_000;

impl Trees {
    /// Opens the repository at `path` for reading trees; `None` when it
    /// cannot be opened (the classification then goes without files).
    pub fn open(path: &std::path::Path) -> Option<Self> {
        let mut repo = gix::open(path).ok()?;
        // Each tree is read about once: an object cache only costs copies
        // (measured: a small one for the trees two consecutive merges share
        // saves nothing).
        repo.object_cache_size(0);
        Some(Trees {
            path: path.to_owned(),
            repo,
        })
    }
}

impl super::ChangedFiles for Trees {
    fn changed(&self, item: &Item, wanted: &Wanted<'_>) -> Option<Vec<String>> {
        changed_files(&self.repo, item, wanted)
    }

    /// On one thread, through a fresh opening of the repository per
    /// [`DIFFS_PER_OPENING`] items. The pack and its index are mapped into
    /// memory and every page a read touches stays resident until the
    /// repository is dropped: on a long history the trees' pages grew the
    /// peak memory by about 40 MiB, and the reopening bounds it to what a
    /// batch touches. More threads would each map and touch the index
    /// again and keep their own delta caches: more CPU and memory for
    /// some wall time.
    fn changed_all(&self, items: &[&Item], wanted: &Wanted<'_>) -> Vec<Option<Vec<String>>> {
        let mut out = Vec::with_capacity(items.len());
        for batch in items.chunks(DIFFS_PER_OPENING) {
            match Trees::open(&self.path) {
                Some(trees) => out.extend(batch.iter().map(|i| trees.changed(i, wanted))),
                None => out.extend(batch.iter().map(|_| None)),
            }
        }
        out
    }
}

/// The tree `tree` names, else that of `commit`.
fn tree_of<'r>(
    repo: &'r gix::Repository,
    tree: Option<gix::ObjectId>,
    commit: &str,
) -> Option<gix::Tree<'r>> {
    if let Some(id) = tree {
        return repo.find_tree(id).ok();
    }
    let id = gix::ObjectId::from_hex(commit.as_bytes()).ok()?;
    repo.find_commit(id).ok()?.tree().ok()
}

/// The paths that differ between the trees of the item's commit and of its
/// first parent (the empty tree without one): added, deleted and modified
/// files, no rename detection; up to the first one `wanted` refuses.
fn changed_files(repo: &gix::Repository, item: &Item, wanted: &Wanted<'_>) -> Option<Vec<String>> {
    use gix::diff::tree::{State, Visit, visit};
    let new = tree_of(repo, item.tree, &item.commit)?;
    let old = match &item.parent {
        Some(p) => Some(tree_of(repo, item.parent_tree, p)?),
        None => None,
    };
    let kind = new.id.kind();
    let old_data: &[u8] = old.as_ref().map_or(&[], |t| &t.data);

    /// Records the paths of changed files (not trees), and stops at the
    /// first one `wanted` refuses.
    struct Files<'a> {
        paths: gix::diff::tree::Recorder,
        files: Vec<String>,
        wanted: &'a Wanted<'a>,
    }
    impl Visit for Files<'_> {
        fn pop_front_tracked_path_and_set_current(&mut self) {
            self.paths.pop_front_tracked_path_and_set_current();
        }
        fn push_back_tracked_path_component(&mut self, c: &gix::bstr::BStr) {
            self.paths.push_back_tracked_path_component(c);
        }
        fn push_path_component(&mut self, c: &gix::bstr::BStr) {
            self.paths.push_path_component(c);
        }
        fn pop_path_component(&mut self) {
            self.paths.pop_path_component();
        }
        fn visit(&mut self, change: visit::Change) -> visit::Action {
            let mode = match &change {
                visit::Change::Addition { entry_mode, .. }
                | visit::Change::Deletion { entry_mode, .. }
                | visit::Change::Modification { entry_mode, .. } => *entry_mode,
            };
            if mode.is_tree() {
                return std::ops::ControlFlow::Continue(());
            }
            let path = self.paths.path().to_str_lossy().into_owned();
            let wanted = (self.wanted)(&path);
            self.files.push(path);
            if wanted {
                std::ops::ControlFlow::Continue(())
            } else {
                std::ops::ControlFlow::Break(())
            }
        }
    }
    let mut visitor = Files {
        paths: gix::diff::tree::Recorder::default(),
        files: Vec::new(),
        wanted,
    };
    // A break is how the visitor stops early: not an error.
    let diffed = gix::diff::tree(
        gix::objs::TreeRefIter::from_bytes(old_data, kind),
        gix::objs::TreeRefIter::from_bytes(&new.data, kind),
        State::default(),
        &repo.objects,
        &mut visitor,
    );
    match diffed {
        Ok(()) | Err(gix::diff::tree::Error::Cancelled) => Some(visitor.files),
        Err(_) => None,
    }
}

/// Reads the commits of `ids`, on one thread. Decompressing and decoding
/// is most of a changelog's time, but spreading it over threads cost more
/// CPU in all (each thread keeps its own caches) and more memory (each
/// thread's allocations stay in its own arena): measured on 100,000
/// commits, about 0.2 CPU seconds and 6 MiB for some wall time, which a
/// changelog computed once per release does not need.
fn read_commits(
    repo: &gix::Repository,
    name: &str,
    ids: &[gix::ObjectId],
) -> Result<Vec<RawCommit>, ChangelogError> {
    use gix::prelude::FindExt as _;
    let mut buf = Vec::new();
    let mut commits = Vec::with_capacity(ids.len());
    for id in ids {
        let read_err = |detail: String| ChangelogError::Read {
            repo: name.to_owned(),
            commit: id.to_string(),
            detail,
        };
        let commit = repo
            .objects
            .find_commit(id, &mut buf)
            .map_err(|e| read_err(e.to_string()))?;
        let author = commit.author().map_err(|e| read_err(e.to_string()))?;
        let message = commit
            .message
            .to_str()
            .map_err(|_| ChangelogError::NotUtf8 {
                repo: name.to_owned(),
                commit: id.to_string(),
            })?;
        commits.push(RawCommit {
            id: id.to_string(),
            parents: commit.parents().map(|p| p.to_string()).collect(),
            tree: Some(commit.tree()),
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
