//! Changelogs between two revisions of one or more repositories.
//!
//! [`walk`] reads the commits of a range with gitoxide; everything after it
//! works on plain data: [`pr`] recognises pull requests, [`group`] turns the
//! range into entries (branch commits under their PR, reverted pairs
//! dropped), [`notes`] extracts release notes, [`classify`] decides what end
//! users see and [`render`] writes Markdown and JSON.

pub mod classify;
pub mod group;
pub mod notes;
pub mod pr;
pub mod render;
pub mod walk;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::api::changelog::{CommitRef, Entry, RepoChangelog};
pub use crate::api::deployment::{ChangelogSpec, Visibility};
pub use classify::Rules;
pub use render::{render_json, render_markdown};

/// One commit of a range, as read from the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawCommit {
    /// Full hex object id.
    pub id: String,
    pub parents: Vec<String>,
    /// Its tree, when it was read (kept as an id, not hex: one per commit).
    pub tree: Option<gix::ObjectId>,
    pub author: String,
    /// Author time, seconds since the epoch.
    pub time: i64,
    pub message: String,
}

/// A repository and the range to describe: commits reachable from `to` and
/// not from `from`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RepoRange {
    /// Name shown as the repository's heading.
    pub name: String,
    /// Public URL, used for PR links when it is a GitHub URL.
    pub url: Option<String>,
    /// Local clone (bare or not) holding both revisions.
    pub path: PathBuf,
    /// The previous release; `None` lists the history of `to` (a first
    /// release), which is why it is usually given a `limit`.
    pub from: Option<String>,
    pub to: String,
    /// At most this many commits, newest first; a warning says when the
    /// range was cut.
    pub limit: Option<usize>,
}

/// A repository's short name from its URL or path: `packit` for
/// `https://github.com/packit/packit.git`, `git@host:o/x` or `../packit/`.
pub fn repo_name(repo: &str) -> String {
    repo.trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplit(['/', ':'])
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or(repo)
        .to_owned()
}

/// Whether `location` names a repository on this machine: a `file://` URL
/// or a path, not a remote URL (`https://`, `ssh://`, `git@host:o/x`).
pub fn is_local(location: &str) -> bool {
    let location = location.trim();
    if let Some((scheme, _)) = location.split_once("://") {
        return scheme.eq_ignore_ascii_case("file");
    }
    // scp-like `user@host:path`; a path may hold `@` but then no `:` before
    // its first `/`.
    !matches!(location.split_once(':'), Some((host, _)) if host.contains('@') && !host.contains('/'))
}

/// The name of a repository as a changelog heading: `name` when the spec
/// sets one, else from the remote URL, `location` (where the repository
/// is) or for a local one `origin` (its `origin` remote). A local path's
/// last part says nothing about the repository (a cache directory, a
/// checkout renamed), so without a remote URL the location is shown as
/// given.
pub fn heading_name(name: Option<&str>, location: &str, origin: Option<&str>) -> String {
    if let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) {
        return name.to_owned();
    }
    if !is_local(location) {
        return repo_name(location);
    }
    match origin {
        Some(url) if !is_local(url) => repo_name(url),
        _ => location.to_owned(),
    }
}

/// The changelog of several repositories, in the order given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changelog {
    pub repositories: Vec<RepoChangelog>,
}

/// The files a commit changed, for the path rules of the classification.
pub trait ChangedFiles {
    /// The paths (relative to the repository root) that differ between the
    /// item's commit and its first parent (everything in the commit without
    /// one); `None` when they cannot be read. The list may stop at the first
    /// path `wanted` refuses (that path included): one such path is enough
    /// to say that no path rule matches.
    fn changed(&self, item: &group::Item, wanted: &Wanted<'_>) -> Option<Vec<String>>;

    /// [`ChangedFiles::changed`] for each of `items`, in order;
    /// implementations may spread them over threads.
    fn changed_all(&self, items: &[&group::Item], wanted: &Wanted<'_>) -> Vec<Option<Vec<String>>> {
        items.iter().map(|i| self.changed(i, wanted)).collect()
    }
}

/// Which changed paths a caller still wants listed (see
/// [`ChangedFiles::changed`]).
pub type Wanted<'a> = dyn Fn(&str) -> bool + Sync + 'a;

/// No files known: path rules match nothing.
impl ChangedFiles for () {
    fn changed(&self, _: &group::Item, _: &Wanted<'_>) -> Option<Vec<String>> {
        None
    }
}

/// Why a changelog could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    #[error("invalid classification rule {pattern:?}: {detail}")]
    InvalidRule { pattern: String, detail: String },
    #[error("release-note markers must not be empty")]
    EmptyMarker,
    #[error("repository {repo}: cannot open it: {detail}")]
    Unreachable { repo: String, detail: String },
    #[error("repository {repo}: unknown revision {rev:?}: {detail}")]
    UnknownRevision {
        repo: String,
        rev: String,
        detail: String,
    },
    #[error("repository {repo}: commit {commit}: message is not valid UTF-8")]
    NotUtf8 { repo: String, commit: String },
    #[error("repository {repo}: reading commit {commit}: {detail}")]
    Read {
        repo: String,
        commit: String,
        detail: String,
    },
}

/// Computes the changelog of each range, in order. A range that cannot be
/// read gets an `error` and empty lists, so one bad repository does not hide
/// the others; only invalid settings fail the whole call.
pub fn generate(ranges: &[RepoRange], spec: &ChangelogSpec) -> Result<Changelog, ChangelogError> {
    let rules = Rules::new(spec)?;
    let repositories = ranges
        .iter()
        .map(|range| {
            let mut out = RepoChangelog {
                name: range.name.clone(),
                url: range.url.clone(),
                from: range.from.clone().unwrap_or_default(),
                to: range.to.clone(),
                ..RepoChangelog::default()
            };
            match walk::walk(range) {
                Ok(walked) => {
                    out.from = walked.from;
                    out.to = walked.to;
                    out.warnings = walked.warnings;
                    let trees = walk::Trees::open(&range.path);
                    let files: &dyn ChangedFiles = match &trees {
                        Some(t) => t,
                        None => &(),
                    };
                    build(&mut out, walked.commits, &rules, &walked.templates, files);
                }
                Err(e) => out.error = Some(e.to_string()),
            }
            out
        })
        .collect();
    Ok(Changelog { repositories })
}

/// Fills `out` from the commits of its range (any order: the grouping
/// follows the parent links from `out.to`, a full id). The commits are
/// consumed, and dropped as soon as they are grouped. `templates` are the
/// repository's PR templates (their example notes are no notes) and
/// `files` tells what a pull request changed (its merge or squash commit
/// against the first parent); they are read only for the pull requests
/// whose classification depends on them.
pub fn build(
    out: &mut RepoChangelog,
    commits: Vec<RawCommit>,
    rules: &Rules,
    templates: &[String],
    files: &dyn ChangedFiles,
) {
    let github = out.url.as_deref().and_then(render::github_base);
    out.commits = commits.len();
    let grouped = group::group(commits, &out.to);
    let placeholders = rules.placeholders(templates);
    let notes: Vec<notes::Note> = grouped
        .items
        .iter()
        .map(|item| rules.note(item, &placeholders))
        .collect();
    // The files of the pull requests whose classification needs them, read
    // together (on several threads for many). Commits pushed without a PR
    // are listed apart whatever they touch; reverted pairs are dropped.
    let needing: Vec<usize> = (0..grouped.items.len())
        .filter(|&k| {
            let item = &grouped.items[k];
            let asked = std::cell::Cell::new(false);
            item.pr.is_some() && {
                rules.classify(item, &notes[k], || {
                    asked.set(true);
                    None
                });
                asked.get()
            }
        })
        .collect();
    let wanted = |path: &str| rules.path_may_match(path);
    let needed: Vec<&group::Item> = needing.iter().map(|&k| &grouped.items[k]).collect();
    let mut touched: Vec<Option<Vec<String>>> = vec![None; grouped.items.len()];
    for (k, found) in needing.iter().zip(files.changed_all(&needed, &wanted)) {
        touched[*k] = found;
    }
    let entry = |(item, note, touched): (group::Item, notes::Note, Option<Vec<String>>)| {
        let visibility = rules.classify(&item, &note, || touched);
        let link = github.as_deref().map(|base| match item.pr {
            Some(n) => format!("{base}/pull/{n}"),
            None => format!("{base}/commit/{}", item.commit),
        });
        Entry {
            pr: item.pr,
            link,
            note: match (note, &item.reverts) {
                (notes::Note::Text(text), _) => text,
                (_, Some(original)) => format!("Reverted: {original}"),
                _ => item.title.clone(),
            },
            title: item.title,
            visibility,
            commit: item.commit,
            author: item.author,
            commits: item.commits,
        }
    };
    let items = grouped.items.into_iter().zip(notes).zip(touched);
    for e in items.map(|((i, n), t)| entry((i, n, t))) {
        match (e.pr, e.visibility) {
            (None, _) => out.direct.push(e),
            (Some(_), Visibility::User) => out.user.push(e),
            (Some(_), Visibility::Internal) => out.internal.push(e),
        }
    }
    out.reverted = grouped
        .reverted
        .into_iter()
        .map(|item| {
            let note = rules.note(&item, &placeholders);
            entry((item, note, None))
        })
        .collect();
}

#[cfg(test)]
mod robust_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_remote_locations() {
        for l in [
            "/srv/git/packit",
            "../packit/",
            ".",
            "file:///srv/git/x",
            "a@b/c:d",
        ] {
            assert!(is_local(l), "{l}");
        }
        for l in [
            "https://github.com/packit/packit",
            "ssh://git@github.com/packit/packit",
            "git@github.com:packit/packit.git",
        ] {
            assert!(!is_local(l), "{l}");
        }
    }

    #[test]
    fn headings_come_from_the_remote_url_or_the_spec() {
        let gh = "https://github.com/packit/packit.git";
        assert_eq!(heading_name(None, gh, None), "packit");
        assert_eq!(heading_name(Some("Packit CLI"), gh, None), "Packit CLI");
        assert_eq!(
            heading_name(
                None,
                "/tmp/.tmpXyZ/cache-0",
                Some("git@github.com:packit/ogr.git")
            ),
            "ogr"
        );
        assert_eq!(
            heading_name(
                None,
                "file:///srv/cache/0",
                Some("https://gitlab.com/o/specfile")
            ),
            "specfile"
        );
        // No remote URL: the location as given, never its last part alone.
        assert_eq!(heading_name(None, "/srv/cache/0", None), "/srv/cache/0");
        assert_eq!(
            heading_name(None, "../x", Some("/srv/git/upstream")),
            "../x"
        );
    }
}
