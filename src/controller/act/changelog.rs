//! The changelog of a release: computed once, from the bare git caches the
//! release's commits were resolved into, and stored on the release within
//! bounds. What cannot be computed is written into it; the release goes on.

use std::path::PathBuf;

use kube::ResourceExt;

use super::releases;
use crate::api::PackitRelease;
use crate::api::deployment::ChangelogSpec;
use crate::api::release::{ChangelogStatus, PackitReleaseSpec};
use crate::changelog::{self, Changelog, RepoRange};
use crate::controller::events::Note;
use crate::controller::observe::Observation;
use crate::controller::{Context, Error};

/// A first release lists this many commits of each repository.
pub const FIRST_RELEASE_COMMITS: usize = 50;
/// Longer ranges are cut (a year of weekly releases is far below it).
const MAX_RANGE_COMMITS: usize = 5_000;
/// Bounds of what is stored on the release, well within an object's size.
const MAX_MARKDOWN_BYTES: usize = 32 * 1024;
const MAX_ENTRIES: usize = 100;

/// The release with its changelog: as stored, or computed and stored now.
pub async fn ensure(
    ctx: &Context,
    obs: &Observation,
    release: PackitRelease,
    notes: &mut Vec<Note>,
) -> Result<PackitRelease, Error> {
    if has_changelog(&release) {
        return Ok(release);
    }
    // The copy at hand may be a moment old: computing is costly, a read is
    // not.
    let api = releases::api(ctx, obs);
    let name = release.name_any();
    let release = api.get(&name).await?;
    if has_changelog(&release) {
        return Ok(release);
    }
    let sources = ctx.sources.clone();
    let namespace = obs.namespace.clone();
    let ranges = ranges(&release.spec, ctx.allow_local_sources, |url| {
        sources.repo_path(&namespace, url)
    });
    let spec = obs.deployment.spec.changelog.clone();
    let first = release.spec.previous.is_none();
    // A permit per computation at a time: each holds its repositories'
    // packs and caches, so a wave of trains at once would only add memory.
    let permit = ctx.changelog_slots.acquire().await;
    let computed = tokio::task::spawn_blocking(move || compute(&ranges, &spec, first))
        .await
        .unwrap_or_else(|e| ChangelogStatus {
            errors: vec![format!("computing the changelog failed: {e}")],
            ..Default::default()
        });
    drop(permit);
    let failed = computed.errors.len();
    let release = releases::update_status(&api, &name, |s| {
        s.changelog = Some(computed);
    })
    .await?;
    notes.push(match failed {
        0 => Note::normal("ChangelogWritten", format!("{name}: changelog written")),
        n => Note::warning(
            "ChangelogWritten",
            format!("{name}: changelog written; {n} part(s) could not be computed"),
        ),
    });
    Ok(release)
}

fn has_changelog(release: &PackitRelease) -> bool {
    release
        .status
        .as_ref()
        .is_some_and(|s| s.changelog.is_some())
}

/// One range per repository, in spec order (each component, then what it
/// includes); a repository shipped by several components is listed once.
/// A local repository's `origin` names its heading only when local sources
/// are allowed: otherwise a release naming a path must not read it.
pub fn ranges(
    spec: &PackitReleaseSpec,
    local_allowed: bool,
    path_of: impl Fn(&str) -> PathBuf,
) -> Vec<RepoRange> {
    let mut out: Vec<RepoRange> = Vec::new();
    let revisions = spec
        .components
        .iter()
        .flat_map(|c| std::iter::once(&c.source).chain(&c.includes));
    for rev in revisions {
        if out
            .iter()
            .any(|r| r.url.as_deref() == Some(rev.url.as_str()))
        {
            continue;
        }
        let from = rev.previous_commit.clone();
        let origin = (local_allowed && changelog::is_local(&rev.url))
            .then(|| {
                let path = rev.url.strip_prefix("file://").unwrap_or(&rev.url);
                changelog::walk::origin_url(std::path::Path::new(path))
            })
            .flatten();
        out.push(RepoRange {
            name: changelog::heading_name(rev.name.as_deref(), &rev.url, origin.as_deref()),
            url: Some(rev.url.clone()),
            path: path_of(&rev.url),
            limit: Some(if from.is_some() {
                MAX_RANGE_COMMITS
            } else {
                FIRST_RELEASE_COMMITS
            }),
            from,
            to: rev.commit.clone(),
        });
    }
    out
}

/// The changelog of `ranges`, ready to store.
pub fn compute(ranges: &[RepoRange], spec: &ChangelogSpec, first_release: bool) -> ChangelogStatus {
    let mut log = match changelog::generate(ranges, spec) {
        Ok(log) => log,
        Err(e) => {
            return ChangelogStatus {
                markdown: format!("# Changelog\n\nThe changelog could not be computed: {e}\n"),
                errors: vec![format!("spec.changelog: {e}")],
                ..Default::default()
            };
        }
    };
    for (repo, range) in log.repositories.iter_mut().zip(ranges) {
        if range.from.is_none() {
            let why = if first_release {
                "first release: there is no earlier production release to compare with"
            } else {
                "new in this release: the previous production release did not ship this repository"
            };
            repo.warnings.insert(0, why.to_owned());
        }
    }
    bound(log)
}

/// Cuts the changelog to what a release object can hold.
fn bound(mut log: Changelog) -> ChangelogStatus {
    let errors = log
        .repositories
        .iter()
        .filter_map(|r| r.error.clone())
        .collect();
    let mut markdown = changelog::render_markdown(&log);
    let mut truncated = false;
    if markdown.len() > MAX_MARKDOWN_BYTES {
        let mut end = MAX_MARKDOWN_BYTES;
        while !markdown.is_char_boundary(end) {
            end -= 1;
        }
        // At a line end, so no entry is cut in half.
        let cut = markdown[..end].rfind('\n').unwrap_or(0);
        markdown.truncate(cut);
        markdown.push_str("\n\n> **Note:** the changelog was cut to fit on the release.\n");
        truncated = true;
    }
    for repo in &mut log.repositories {
        for list in [
            &mut repo.user,
            &mut repo.internal,
            &mut repo.direct,
            &mut repo.reverted,
        ] {
            truncated |= list.len() > MAX_ENTRIES;
            list.truncate(MAX_ENTRIES);
            for entry in list.iter_mut() {
                entry.commits.clear();
            }
        }
    }
    ChangelogStatus {
        markdown,
        truncated,
        errors,
        repositories: log.repositories,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::release::{ReleaseComponent, Revision, Trigger};
    use crate::changelog::{Entry, RepoChangelog, Visibility};

    fn rev(url: &str, commit: &str, previous: Option<&str>) -> Revision {
        Revision {
            url: url.into(),
            name: None,
            commit: commit.into(),
            previous_commit: previous.map(str::to_owned),
        }
    }

    #[test]
    fn one_range_per_repository_in_spec_order() {
        let packit = "https://github.com/packit/packit.git";
        let spec = PackitReleaseSpec {
            deployment: "d".into(),
            trigger: Trigger::Schedule,
            components: vec![
                ReleaseComponent {
                    name: "service".into(),
                    source: rev("https://github.com/packit/packit-service", "b", Some("a")),
                    includes: vec![rev(packit, "d", Some("c"))],
                },
                ReleaseComponent {
                    name: "worker".into(),
                    source: rev("https://github.com/packit/packit-service", "b", Some("a")),
                    includes: vec![rev(packit, "d", Some("c")), rev("file:///x/ogr", "f", None)],
                },
            ],
            previous: Some("r1".into()),
            images: None,
        };
        let ranges = ranges(&spec, true, |url| {
            PathBuf::from("/cache").join(changelog::repo_name(url))
        });
        let shown: Vec<_> = ranges
            .iter()
            .map(|r| (r.name.as_str(), r.from.as_deref(), r.to.as_str(), r.limit))
            .collect();
        assert_eq!(
            shown,
            [
                ("packit-service", Some("a"), "b", Some(MAX_RANGE_COMMITS)),
                ("packit", Some("c"), "d", Some(MAX_RANGE_COMMITS)),
                // A local repository without an origin: its URL as given.
                ("file:///x/ogr", None, "f", Some(FIRST_RELEASE_COMMITS)),
            ]
        );
        assert_eq!(ranges[2].path, PathBuf::from("/cache/ogr"));
    }

    #[test]
    fn unreadable_repositories_and_bad_rules_become_errors() {
        let range = RepoRange {
            name: "gone".into(),
            path: "/nonexistent/packit-test".into(),
            from: None,
            to: "abc".into(),
            ..Default::default()
        };
        let stored = compute(
            std::slice::from_ref(&range),
            &ChangelogSpec::default(),
            true,
        );
        assert_eq!(stored.errors.len(), 1);
        assert!(
            stored.errors[0].contains("repository gone"),
            "{:?}",
            stored.errors
        );
        assert!(
            stored.markdown.contains("could not be computed"),
            "{}",
            stored.markdown
        );
        assert!(
            stored.markdown.contains("first release"),
            "{}",
            stored.markdown
        );

        let spec = ChangelogSpec {
            rules: vec![crate::api::deployment::ClassificationRule {
                paths: vec![],
                pattern: Some("(".into()),
                visibility: Visibility::User,
            }],
            ..Default::default()
        };
        let stored = compute(&[range], &spec, true);
        assert!(stored.errors[0].starts_with("spec.changelog: invalid classification rule"));
        assert!(stored.markdown.contains("could not be computed"));
    }

    #[test]
    fn long_changelogs_are_cut_with_a_note() {
        let entry = |i: usize| Entry {
            pr: Some(i as u64),
            link: None,
            title: format!("Change number {i} with a reasonably long title"),
            note: format!("Change number {i} with a reasonably long title"),
            visibility: Visibility::User,
            commit: format!("{i:040}"),
            author: "a".into(),
            commits: vec![crate::changelog::CommitRef {
                id: "x".into(),
                subject: "y".into(),
            }],
        };
        let log = Changelog {
            repositories: vec![RepoChangelog {
                name: "big".into(),
                user: (0..2_000).map(entry).collect(),
                ..Default::default()
            }],
        };
        let stored = bound(log);
        assert!(stored.truncated);
        assert!(stored.markdown.len() <= MAX_MARKDOWN_BYTES + 100);
        assert!(stored.markdown.ends_with("cut to fit on the release.\n"));
        assert_eq!(stored.repositories[0].user.len(), MAX_ENTRIES);
        assert!(stored.repositories[0].user[0].commits.is_empty());

        // Cutting never splits a character, whatever the titles hold.
        let wide = bound(Changelog {
            repositories: vec![RepoChangelog {
                name: "wide".into(),
                user: (0..2_000)
                    .map(|i| Entry {
                        note: "Übersetzung ✓ 変更".repeat(i % 7 + 1),
                        ..entry(i)
                    })
                    .collect(),
                ..Default::default()
            }],
        });
        assert!(wide.truncated);
        assert!(wide.markdown.len() <= MAX_MARKDOWN_BYTES + 100);

        let small = bound(Changelog {
            repositories: vec![RepoChangelog {
                name: "small".into(),
                user: (0..3).map(entry).collect(),
                ..Default::default()
            }],
        });
        assert!(!small.truncated);
        assert_eq!(small.repositories[0].user.len(), 3);
    }
}
