//! The changelog on real history: repositories rebuilt from the Packit
//! commit metadata in `../shared/fixtures/packit-history/`, and the CLI on
//! them.

#[path = "support/history.rs"]
mod history;

use std::collections::HashSet;
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
    let (code, md, err) = cli(&args);
    assert_eq!(code, 0, "{err}");
    let first = md.find("## packit-history-").unwrap();
    assert!(md[first..].contains("## packit-history-"));
    assert!(
        md.find(
            &service
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string()
        ) < md.find(
            &packit
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string()
        )
    );
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
