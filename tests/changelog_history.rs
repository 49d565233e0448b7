//! The changelog on real history: repositories rebuilt from the Packit
//! commit metadata in `../shared/fixtures/packit-history/`, and the CLI on
//! them.

#[path = "support/history.rs"]
mod history;

use std::collections::{HashMap, HashSet};
use std::process::Command;

use history::{Rebuilt, rebuild};
use packit_operator::api::deployment::ChangelogSpec;
use packit_operator::changelog::{self, Entry, RepoChangelog, RepoRange};

fn changelog_of(name: &str, repo: &Rebuilt, url: Option<&str>) -> RepoChangelog {
    let range = RepoRange {
        name: name.to_owned(),
        url: url.map(str::to_owned),
        path: repo.path().to_owned(),
        from: Some("from".into()),
        to: "to".into(),
        limit: None,
    };
    let mut log = changelog::generate(&[range], &ChangelogSpec::default()).unwrap();
    log.repositories.remove(0)
}

fn prs(entries: &[Entry]) -> Vec<u64> {
    entries.iter().filter_map(|e| e.pr).collect()
}

fn entry(entries: &[Entry], pr: u64) -> &Entry {
    entries
        .iter()
        .find(|e| e.pr == Some(pr))
        .unwrap_or_else(|| panic!("#{pr} missing from {:?}", prs(entries)))
}

fn all_entries(r: &RepoChangelog) -> impl Iterator<Item = &Entry> {
    r.user
        .iter()
        .chain(&r.internal)
        .chain(&r.direct)
        .chain(&r.reverted)
}

/// For every fixture range: no error, each commit accounted for exactly
/// once, no PR listed twice, no trailer in any entry, Markdown and JSON
/// agree.
#[test]
fn every_fixture_range_gives_a_sensible_changelog() {
    for file in history::fixture_files().unwrap() {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let repo = rebuild(&name).unwrap();
        let r = changelog_of(&name, &repo, Some("https://github.com/packit/packit"));
        assert_eq!(r.error, None, "{name}");
        assert!(r.warnings.is_empty(), "{name}: {:?}", r.warnings);
        assert_eq!(r.commits, repo.records.len(), "{name}");

        let mut seen = HashSet::new();
        for e in all_entries(&r) {
            assert!(seen.insert(e.commit.clone()), "{name}: {} twice", e.commit);
            for c in &e.commits {
                assert!(seen.insert(c.id.clone()), "{name}: {} twice", c.id);
            }
            for text in [&e.title, &e.note] {
                assert!(!text.contains("Signed-off-by"), "{name}: {text}");
                assert!(!text.contains("Reviewed-by"), "{name}: {text}");
                assert!(!text.contains("Co-authored-by"), "{name}: {text}");
            }
            if let Some(n) = e.pr {
                assert_eq!(
                    e.link.as_deref(),
                    Some(&*format!("https://github.com/packit/packit/pull/{n}"))
                );
            }
        }
        // What is not an entry or under one is a merge without a PR.
        let ids: HashSet<&str> = repo.ids.values().map(String::as_str).collect();
        for id in ids.iter().filter(|id| !seen.contains(**id)) {
            let rec = repo
                .records
                .iter()
                .find(|r| repo.ids[&r.sha] == *id)
                .unwrap();
            assert!(
                rec.parents.len() > 1 && !rec.message.starts_with("Merge pull request"),
                "{name}: {id} lost"
            );
        }
        let mut numbers = prs(&r.user);
        numbers.extend(prs(&r.internal));
        let unique: HashSet<_> = numbers.iter().collect();
        assert_eq!(unique.len(), numbers.len(), "{name}: a PR listed twice");

        let log = changelog::Changelog {
            repositories: vec![r.clone()],
        };
        let md = changelog::render_markdown(&log);
        for n in &numbers {
            assert!(
                md.contains(&format!("[#{n}](")),
                "{name}: #{n} not in the Markdown"
            );
        }
        let back: changelog::Changelog =
            serde_json::from_str(&changelog::render_json(&log)).unwrap();
        assert_eq!(back, log, "{name}");
    }
}

#[test]
fn a_pr_and_its_revert_cancel_out_and_the_reland_stays() {
    let repo = rebuild("packit-0.7.1-0.8.0").unwrap();
    let r = changelog_of("packit", &repo, None);
    let reverted = prs(&r.reverted);
    assert!(
        reverted.contains(&620) && reverted.contains(&632),
        "{reverted:?}"
    );
    for list in [&r.user, &r.internal] {
        assert!(!prs(list).contains(&620) && !prs(list).contains(&632));
    }
    assert_eq!(
        entry(&r.user, 657).title,
        "Marshmallow schema implementation"
    );
}

#[test]
fn releases_tooling_and_tests_are_internal_in_2019() {
    let repo = rebuild("packit-0.7.1-0.8.0").unwrap();
    let r = changelog_of("packit", &repo, None);
    for n in [656, 572, 644, 587, 589] {
        entry(&r.internal, n);
    }
    for n in [663, 651, 643, 625] {
        entry(&r.user, n);
    }
    // The branch commit of #572 is under it, not a direct push.
    let e = entry(&r.internal, 572);
    assert_eq!(e.commits.len(), 1);
    assert_eq!(e.commits[0].subject, "Add rebase check to pre-commit");
    assert!(r.direct.iter().all(|d| d.commit != e.commits[0].id));
}

#[test]
fn gating_merges_with_release_notes_in_2024() {
    let repo = rebuild("packit-0.101.1-0.102.0").unwrap();
    let r = changelog_of(
        "packit",
        &repo,
        Some("https://github.com/packit/packit.git"),
    );
    assert_eq!(prs(&r.user), [2418, 2422, 2423, 2425, 2430, 2431, 2428]);
    assert_eq!(prs(&r.internal), [2433, 2435, 2439]);
    assert!(r.direct.is_empty(), "{:?}", r.direct);
    let gitignore = entry(&r.user, 2431);
    assert!(
        gitignore
            .note
            .starts_with("packit init now adds working directories"),
        "{}",
        gitignore.note
    );
    assert!(
        entry(&r.user, 2428)
            .note
            .starts_with("Previously, the --resolve-bugzillas option")
    );
    // No note: the title.
    assert_eq!(entry(&r.user, 2430).note, "Update hardcoded aliases");
    let subjects: Vec<&str> = entry(&r.user, 2428)
        .commits
        .iter()
        .map(|c| c.subject.as_str())
        .collect();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(subjects.contains(&"Unify CLI types for bug IDs"));
}

#[test]
fn conventional_fix_and_release_in_0_102_1() {
    let repo = rebuild("packit-0.102.0-0.102.1").unwrap();
    let r = changelog_of("packit", &repo, None);
    entry(&r.user, 2442);
    entry(&r.internal, 2444);
    let md = changelog::render_markdown(&changelog::Changelog {
        repositories: vec![r],
    });
    assert!(md.contains("(#2442)"), "{md}");
    let user_part = md.split("### Changes not visible").next().unwrap();
    assert!(!user_part.contains("#2444"));
}

// CLI

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_packit-operator"))
        .arg("changelog")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_markdown_and_json_for_two_repositories_in_order() {
    let service = rebuild("packit-service-b58b3b71-adf232eb").unwrap();
    let packit = rebuild("packit-e78e9e3b-7e44ad87").unwrap();
    let (s, p) = (
        service.path().to_str().unwrap(),
        packit.path().to_str().unwrap(),
    );
    let args = [
        "--repo", s, "--from", "from", "--to", "to", "--repo", p, "--from", "from", "--to", "main",
    ];
    // The headings come from the origin URLs, not from the directories.
    for (repo, url) in [
        (&service, "https://github.com/packit/packit-service.git"),
        (&packit, "git@github.com:packit/packit.git"),
    ] {
        history::run_git(repo.path(), &["remote", "add", "origin", url], None).unwrap();
    }
    let (code, md, err) = cli(&args);
    assert_eq!(code, 0, "{err}");
    assert!(!md.contains("packit-history-"), "{md}");
    let service_at = md.find("\n## packit-service (`").unwrap();
    let packit_at = md.find("\n## packit (`").unwrap();
    assert!(service_at < packit_at, "{md}");
    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    let (code, json, _) = cli(&json_args);
    assert_eq!(code, 0);
    let log: changelog::Changelog = serde_json::from_str(&json).unwrap();
    assert_eq!(log.repositories.len(), 2);
    assert_eq!(log.repositories[0].commits, service.records.len());
    // Same output twice.
    assert_eq!(cli(&args).1, md);
}

#[test]
fn cli_bad_input_names_repository_and_revision() {
    let repo = rebuild("packit-0.102.0-0.102.1").unwrap();
    let p = repo.path().to_str().unwrap();

    let (code, out, err) = cli(&["--repo", p, "--from", "no-such-tag", "--to", "to"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no-such-tag") && err.contains("unknown revision"),
        "{err}"
    );
    assert!(out.contains("could not be computed"), "{out}");

    let (code, _, err) = cli(&["--repo", "/nonexistent/repo", "--from", "a", "--to", "b"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/repo"), "{err}");

    let (code, _, err) = cli(&["--repo", p, "--from", "a"]);
    assert_ne!(code, 0);
    assert!(!err.contains("panicked"), "{err}");

    // Reversed range: said so, and the (empty) result shown.
    let (code, out, err) = cli(&["--repo", p, "--from", "to", "--to", "from"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("is not an ancestor of"), "{err}");
    assert!(
        out.contains("is not an ancestor of") && out.contains("No changes."),
        "{out}"
    );
}

#[test]
fn non_utf8_messages_are_an_error_naming_the_commit() {
    let repo = rebuild("packit-0.102.0-0.102.1").unwrap();
    let tree = history::run_git(repo.path(), &["rev-parse", "to^{tree}"], None).unwrap();
    let mut raw = format!(
        "tree {tree}\nparent {}\nauthor A <a@b> 0 +0000\ncommitter A <a@b> 0 +0000\n\n",
        repo.id("eea05dd6").unwrap()
    )
    .into_bytes();
    raw.extend_from_slice(b"Caf\xe9 latin-1\n");
    let bad = history::run_git(
        repo.path(),
        &[
            "hash-object",
            "-t",
            "commit",
            "-w",
            "--stdin",
            "--literally",
        ],
        Some(&raw),
    )
    .unwrap();
    let p = repo.path().to_str().unwrap();
    let (code, _, err) = cli(&["--repo", p, "--from", "from", "--to", &bad]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&bad) && err.contains("not valid UTF-8"),
        "{err}"
    );
}

#[test]
fn cli_clones_a_repository_given_by_url() {
    let repo = rebuild("packit-0.102.0-0.102.1").unwrap();
    let url = format!("file://{}", repo.path().display());
    let (code, md, err) = cli(&["--repo", &url, "--from", "from", "--to", "to"]);
    assert_eq!(code, 0, "{err}");
    assert!(md.contains("(#2442)"), "{md}");

    let (code, out, err) = cli(&[
        "--repo",
        "file:///nonexistent/packit",
        "--from",
        "a",
        "--to",
        "b",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("repository packit") && err.contains("file:///nonexistent/packit"),
        "{err}"
    );
    assert!(out.contains("could not be computed"), "{out}");
}

#[test]
fn without_a_previous_release_the_newest_commits_are_listed_up_to_the_limit() {
    let repo = rebuild("packit-0.101.1-0.102.0").unwrap();
    let range = |limit| RepoRange {
        name: "packit".into(),
        path: repo.path().to_owned(),
        from: None,
        to: "to".into(),
        limit,
        ..Default::default()
    };
    let mut log = changelog::generate(&[range(Some(5))], &ChangelogSpec::default()).unwrap();
    let r = log.repositories.remove(0);
    assert_eq!(r.error, None);
    assert_eq!(r.from, "");
    assert_eq!(r.commits, 5);
    assert_eq!(
        r.warnings,
        ["only the newest 5 commits of the range are listed"]
    );
    let md = changelog::render_markdown(&changelog::Changelog {
        repositories: vec![r],
    });
    assert!(md.contains("## packit (up to `"), "{md}");

    // A limit the history does not reach cuts nothing: the range's
    // commits and the stubs below `from` are all there.
    let mut log = changelog::generate(&[range(Some(100_000))], &ChangelogSpec::default()).unwrap();
    let r = log.repositories.remove(0);
    assert!(r.commits > repo.records.len(), "{}", r.commits);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

/// A history of `n` commits (every tenth a merge of a one-commit side
/// branch, non-ASCII authors and messages), packed with a
/// commit-graph like a fetched cache; tags `half` and `tip`.
fn synthetic_history(n: usize) -> tempfile::TempDir {
    use std::fmt::Write as _;
    let dir = tempfile::Builder::new()
        .prefix("packit-walk-")
        .tempdir()
        .unwrap();
    let mut s = String::new();
    let mut main = 0;
    for mark in 1..=n {
        let who = format!("Dév {} <d{}@example.invalid>", mark % 7, mark % 7);
        let msg = format!("Chänge {mark}\n\nBody of {mark}.\n\nSigned-off-by: {who}\n");
        let branch = if mark % 10 == 9 { "side" } else { "main" };
        let _ = write!(
            s,
            "commit refs/heads/{branch}\nmark :{mark}\nauthor {who} {} +0100\ncommitter {who} {} +0100\ndata {}\n{msg}\n",
            1_600_000_000 + mark * 60,
            1_600_000_000 + mark * 60,
            msg.len()
        );
        if main > 0 {
            let _ = writeln!(s, "from :{main}");
        }
        // Every tenth commit merges the side commit just before it.
        if mark % 10 == 0 {
            let _ = writeln!(s, "merge :{}", mark - 1);
        }
        let _ = write!(s, "M 644 inline f{}\ndata 6\n{mark:06}\n\n", mark % 50);
        if branch == "main" {
            main = mark;
        }
        if mark == n / 2 {
            let _ = write!(s, "reset refs/tags/half\nfrom :{main}\n\n");
        }
    }
    let _ = write!(s, "reset refs/tags/tip\nfrom :{main}\n\n");
    let p = dir.path();
    history::run_git(
        p,
        &["init", "--quiet", "--bare", "--initial-branch", "main"],
        None,
    )
    .unwrap();
    history::run_git(p, &["fast-import", "--quiet"], Some(s.as_bytes())).unwrap();
    history::run_git(p, &["gc", "--quiet"], None).unwrap();
    history::run_git(p, &["commit-graph", "write", "--reachable"], None).unwrap();
    dir
}

/// `git log`'s view of `spec`: id -> (parents, author, time, message).
fn git_log(
    repo: &std::path::Path,
    spec: &str,
) -> HashMap<String, (Vec<String>, String, i64, String)> {
    let out = history::run_git(
        repo,
        &["log", "--format=%H%x00%P%x00%an%x00%at%x00%B%x00", spec],
        None,
    )
    .unwrap();
    out.split("\0\n")
        .map(|rec| {
            let f: Vec<&str> = rec.trim_start_matches('\n').split('\0').collect();
            let parents = f[1].split_whitespace().map(str::to_owned).collect();
            let msg = f[4].trim().to_owned();
            (
                f[0].to_owned(),
                (parents, f[2].to_owned(), f[3].parse().unwrap(), msg),
            )
        })
        .collect()
}

/// Large ranges are read on several threads: every commit once, with the
/// ids, parents, author, time and message `git log` shows.
#[test]
fn a_large_range_reads_every_commit_like_git_log() {
    let repo = synthetic_history(6_000);
    for from in [None, Some("half")] {
        let range = RepoRange {
            name: "synthetic".into(),
            path: repo.path().to_owned(),
            from: from.map(str::to_owned),
            to: "tip".into(),
            ..Default::default()
        };
        let walked = changelog::walk::walk(&range).unwrap();
        let spec = from.map_or_else(|| "tip".to_owned(), |f| format!("{f}..tip"));
        let expected = git_log(repo.path(), &spec);
        assert!(expected.len() > 2_000, "{}", expected.len());
        assert_eq!(walked.commits.len(), expected.len(), "{spec}");
        let mut seen = HashSet::new();
        for c in &walked.commits {
            assert!(seen.insert(&c.id), "{spec}: {} twice", c.id);
            let (parents, author, time, msg) = &expected[&c.id];
            assert_eq!(&c.parents, parents, "{}", c.id);
            assert_eq!((&c.author, c.time), (author, *time), "{}", c.id);
            assert_eq!(c.message.trim(), msg, "{}", c.id);
        }
        assert!(walked.warnings.is_empty(), "{:?}", walked.warnings);
    }

    // The limit keeps the newest commits: all of them in `half..tip`.
    let limited = changelog::walk::walk(&RepoRange {
        name: "synthetic".into(),
        path: repo.path().to_owned(),
        to: "tip".into(),
        limit: Some(2_500),
        ..Default::default()
    })
    .unwrap();
    let newest = git_log(repo.path(), "half..tip");
    assert_eq!(limited.commits.len(), 2_500);
    assert!(newest.len() > 2_500);
    assert!(limited.commits.iter().all(|c| newest.contains_key(&c.id)));
}
