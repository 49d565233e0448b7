//! Markdown and JSON output. Both list the same entries in the same order;
//! nothing depends on time or hashing order.

use std::fmt::Write as _;

use super::{Changelog, Entry, RepoChangelog};

/// `https://github.com/owner/repo` for the GitHub URL forms (HTTPS, SSH,
/// scp-like), with any `.git` suffix and credentials removed.
pub fn github_base(url: &str) -> Option<String> {
    let url = url.trim().trim_end_matches('/');
    let path = if let Some(rest) = url.strip_prefix("git@github.com:") {
        rest
    } else {
        let rest = url.split_once("://")?.1;
        let host_and_path = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        let (host, path) = host_and_path.split_once('/')?;
        if !host.eq_ignore_ascii_case("github.com") {
            return None;
        }
        path
    };
    let path = path.strip_suffix(".git").unwrap_or(path);
    let mut parts = path.split('/');
    let (owner, repo) = (parts.next()?, parts.next()?);
    if owner.is_empty() || repo.is_empty() || parts.next().is_some() {
        return None;
    }
    Some(format!("https://github.com/{owner}/{repo}"))
}

/// The changelog as Markdown: one section per repository, user-visible
/// changes first.
pub fn render_markdown(changelog: &Changelog) -> String {
    let mut out = String::from("# Changelog\n");
    for repo in &changelog.repositories {
        repo_markdown(&mut out, repo);
    }
    out
}

fn short(rev: &str) -> &str {
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        short_id(rev)
    } else {
        rev
    }
}

fn repo_markdown(out: &mut String, repo: &RepoChangelog) {
    if repo.from.is_empty() {
        let _ = write!(out, "\n## {} (up to `{}`", repo.name, short(&repo.to));
    } else {
        let _ = write!(
            out,
            "\n## {} (`{}..{}`",
            repo.name,
            short(&repo.from),
            short(&repo.to)
        );
    }
    if repo.error.is_none() {
        let s = if repo.commits == 1 { "" } else { "s" };
        let _ = write!(out, ", {} commit{s}", repo.commits);
    }
    out.push_str(")\n\n");
    for w in &repo.warnings {
        let _ = writeln!(out, "> **Note:** {w}\n");
    }
    if let Some(e) = &repo.error {
        let _ = writeln!(out, "> **The changelog could not be computed:** {e}");
        return;
    }
    if repo.user.is_empty() && repo.internal.is_empty() && repo.direct.is_empty() {
        out.push_str("No changes.\n");
        return;
    }
    if repo.user.is_empty() {
        out.push_str("No user-visible changes.\n");
    }
    list(out, &repo.user);
    if !repo.internal.is_empty() {
        out.push_str("\n### Changes not visible to end users\n\n");
        list(out, &repo.internal);
    }
    if !repo.direct.is_empty() {
        out.push_str("\n### Commits pushed without a pull request\n\n");
        list(out, &repo.direct);
    }
}

fn list(out: &mut String, entries: &[Entry]) {
    for e in entries {
        let reference = match (e.pr, &e.link) {
            (Some(n), Some(link)) => format!("[#{n}]({link})"),
            (Some(n), None) => format!("#{n}"),
            (None, Some(link)) => format!("[{}]({link})", short_id(&e.commit)),
            (None, None) => short_id(&e.commit).to_owned(),
        };
        let _ = writeln!(out, "- {} ({reference})", one_line(&e.note));
    }
}

/// The first 12 characters of a commit id (entries may come from stored
/// JSON, so no byte slicing that could split a character).
fn short_id(id: &str) -> &str {
    id.char_indices().nth(12).map_or(id, |(i, _)| &id[..i])
}

/// Keeps an entry on one Markdown list line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The changelog as pretty-printed JSON.
pub fn render_json(changelog: &Changelog) -> String {
    // Plain structs of strings and numbers always serialize.
    serde_json::to_string_pretty(changelog).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::Visibility;

    #[test]
    fn github_urls() {
        for url in [
            "https://github.com/packit/packit",
            "https://github.com/packit/packit.git",
            "https://user:token@github.com/packit/packit/",
            "git@github.com:packit/packit.git",
            "ssh://git@github.com/packit/packit",
        ] {
            assert_eq!(
                github_base(url).as_deref(),
                Some("https://github.com/packit/packit"),
                "{url}"
            );
        }
        assert_eq!(github_base("https://gitlab.com/packit/packit"), None);
        assert_eq!(github_base("/srv/git/packit"), None);
    }

    fn entry(pr: Option<u64>, note: &str, link: Option<&str>) -> Entry {
        Entry {
            pr,
            link: link.map(str::to_owned),
            title: note.into(),
            note: note.into(),
            visibility: Visibility::User,
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            author: "A".into(),
            commits: vec![],
        }
    }

    #[test]
    fn markdown_sections_in_order() {
        let c = Changelog {
            repositories: vec![RepoChangelog {
                name: "packit".into(),
                from: "a".into(),
                to: "b".into(),
                commits: 3,
                user: vec![entry(
                    Some(1),
                    "New\nflag",
                    Some("https://github.com/o/r/pull/1"),
                )],
                internal: vec![entry(Some(2), "Tests", None)],
                direct: vec![entry(None, "Typo", None)],
                ..RepoChangelog::default()
            }],
        };
        assert_eq!(
            render_markdown(&c),
            "# Changelog\n\n## packit (`a..b`, 3 commits)\n\n\
             - New flag ([#1](https://github.com/o/r/pull/1))\n\n\
             ### Changes not visible to end users\n\n- Tests (#2)\n\n\
             ### Commits pushed without a pull request\n\n- Typo (0123456789ab)\n"
        );
        let json: serde_json::Value = serde_json::from_str(&render_json(&c)).unwrap();
        assert_eq!(json["repositories"][0]["user"][0]["pr"], 1);
        assert_eq!(json["repositories"][0]["internal"][0]["title"], "Tests");
    }

    #[test]
    fn odd_commit_ids_do_not_panic() {
        assert_eq!(short_id("ééééééééééééé"), "éééééééééééé");
        assert_eq!(short_id("abc"), "abc");
    }

    #[test]
    fn errors_are_shown_in_place() {
        let c = Changelog {
            repositories: vec![RepoChangelog {
                name: "x".into(),
                from: "a".into(),
                to: "b".into(),
                error: Some("unknown revision".into()),
                ..RepoChangelog::default()
            }],
        };
        assert!(render_markdown(&c).contains("could not be computed:** unknown revision"));
    }
}
