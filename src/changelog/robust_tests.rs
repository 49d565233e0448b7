//! Property tests beyond the examples: arbitrary commit messages (empty,
//! huge, control characters, NULs, very long lines, PR and revert
//! look-alikes, release-note markers) and rules through grouping,
//! classification and rendering; and raw commit objects with arbitrary
//! bytes, non-UTF-8 included, read back from a real repository. Nothing may
//! panic; what cannot be read is a clear error.

use std::path::Path;
use std::process::{Command, Stdio};

use proptest::prelude::*;

use super::*;
use crate::api::deployment::{ClassificationRule, ReleaseNoteMarkers};

/// Messages as people (and tools) write them, and worse.
fn message() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        4 => ".{0,60}",
        1 => "[\\x00-\\x1f\\x7f]{0,20}",
        1 => (1usize..20_000).prop_map(|n| "x".repeat(n)),
        1 => Just("RELEASE NOTES BEGIN".to_owned()),
        1 => Just("RELEASE NOTES END".to_owned()),
        1 => Just("Signed-off-by: A <a@example.com>".to_owned()),
        1 => Just("This reverts commit 0123456789abcdef0123456789abcdef01234567.".to_owned()),
        1 => (0u64..u64::MAX).prop_map(|n| format!("Merge pull request #{n} from a/b")),
        1 => (0u64..100_000).prop_map(|n| format!("Fix things (#{n})")),
        1 => ".{0,20}".prop_map(|t| format!("Revert \"{t}\"")),
        1 => Just("Merge pull request #".to_owned()),
        1 => Just("(#)".to_owned()),
        1 => Just("\u{feff}\u{202e}é\u{0}".to_owned()),
    ];
    prop_oneof![
        8 => proptest::collection::vec(line, 0..8).prop_map(|l| l.join("\n")),
        1 => Just(String::new()),
        1 => any::<String>(),
        1 => (1usize..200_000).prop_map(|n| "\n".repeat(n)),
    ]
}

fn hex40(n: usize) -> String {
    format!("{n:040x}")
}

/// A linear history of `messages` with a side branch merged here and there.
fn history(messages: &[String], authors: &[String]) -> Vec<RawCommit> {
    let mut commits: Vec<RawCommit> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let mut parents: Vec<String> = commits.last().map(|c| c.id.clone()).into_iter().collect();
        // Every third commit merges the one before its parent: a branch.
        if i % 3 == 2 && i >= 2 {
            parents.push(hex40(i - 2 + 1));
        }
        commits.push(RawCommit {
            id: hex40(i + 1),
            parents,
            tree: None,
            author: authors
                .get(i % authors.len().max(1))
                .cloned()
                .unwrap_or_default(),
            time: i64::try_from(i).unwrap_or(0),
            message: m.clone(),
        });
    }
    commits
}

fn rules() -> impl Strategy<Value = ChangelogSpec> {
    let rule = (
        proptest::option::of(prop_oneof![
            ".{0,12}",
            Just("^(ci|docs):".to_owned()),
            Just("(".to_owned())
        ]),
        proptest::collection::vec(
            prop_oneof![".{0,10}", Just("**/*.md".to_owned()), Just("[".to_owned())],
            0..2,
        ),
        any::<bool>(),
    )
        .prop_map(|(pattern, paths, user)| ClassificationRule {
            pattern,
            paths,
            visibility: if user {
                Visibility::User
            } else {
                Visibility::Internal
            },
        });
    (
        proptest::collection::vec(rule, 0..3),
        proptest::option::of((".{0,10}", ".{0,10}")),
    )
        .prop_map(|(rules, markers)| ChangelogSpec {
            rules,
            markers: markers.map(|(begin, end)| ReleaseNoteMarkers { begin, end }),
            webhooks: Vec::new(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_messages_group_classify_and_render(
        messages in proptest::collection::vec(message(), 0..10),
        authors in proptest::collection::vec(".{0,20}", 0..3),
        spec in rules(),
        templates in proptest::collection::vec(message(), 0..2),
        github in any::<bool>(),
    ) {
        let commits = history(&messages, &authors);
        let rules = match Rules::new(&spec) {
            Ok(r) => r,
            // Invalid settings are refused, with the reason.
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                return Ok(());
            }
        };
        let mut out = RepoChangelog {
            name: "repo".into(),
            url: github.then(|| "https://github.com/o/r".to_owned()),
            to: commits.last().map(|c| c.id.clone()).unwrap_or_default(),
            ..RepoChangelog::default()
        };
        build(&mut out, commits.clone(), &rules, &templates, &());
        let listed = out.user.len() + out.internal.len() + out.direct.len() + out.reverted.len();
        prop_assert!(listed <= commits.len());
        let log = Changelog { repositories: vec![out] };
        let markdown = render_markdown(&log);
        prop_assert!(markdown.contains("repo"));
        let json: serde_json::Value = serde_json::from_str(&render_json(&log))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(json.is_object());
        for m in &messages {
            let _ = (pr::split(m), pr::subject(m), pr::detect(m));
            let (title, body) = pr::split(m);
            let _ = pr::revert_target(&title, None, &body);
            let _ = notes::extract(m, notes::BEGIN, notes::END, &[]);
            let _ = notes::strip_trailers(m);
        }
    }
}

/// Runs git in `dir` with `input` on stdin; returns its output, trimmed.
fn git(dir: &Path, args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("git reads its input");
    let out = child.wait_with_output().expect("git finishes");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Raw commit objects with `messages` (any bytes) in a fresh repository;
/// returns the tip.
fn repository(dir: &Path, messages: &[Vec<u8>]) -> String {
    git(dir, &["init", "-q", "--bare", "."], b"");
    let tree = git(dir, &["hash-object", "-t", "tree", "-w", "--stdin"], b"");
    let mut parent: Option<String> = None;
    for (i, m) in messages.iter().enumerate() {
        let mut object = format!("tree {tree}\n").into_bytes();
        if let Some(p) = &parent {
            object.extend_from_slice(format!("parent {p}\n").as_bytes());
        }
        let who = format!("A U Thor <a@example.com> {} +0000", 1_700_000_000 + i);
        object.extend_from_slice(format!("author {who}\ncommitter {who}\n\n").as_bytes());
        object.extend_from_slice(m);
        let id = git(
            dir,
            &[
                "hash-object",
                "-t",
                "commit",
                "--literally",
                "-w",
                "--stdin",
            ],
            &object,
        );
        parent = Some(id);
    }
    parent.unwrap_or_default()
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => message().prop_map(String::into_bytes),
        2 => proptest::collection::vec(any::<u8>(), 0..200),
        1 => Just(b"caf\xe9 au lait (#7)\n\n\xff\xfe".to_vec()),
        1 => (1usize..100_000).prop_map(|n| vec![b'y'; n]),
    ]
}

proptest! {
    // Each case makes a repository with git: few cases, few commits.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_in_real_commits_give_a_changelog_or_a_clear_error(
        messages in proptest::collection::vec(bytes(), 1..4),
    ) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let tip = repository(dir.path(), &messages);
        let range = RepoRange {
            name: "repo".into(),
            url: None,
            path: dir.path().to_owned(),
            from: None,
            to: tip,
            limit: Some(50),
        };
        let log = generate(&[range], &ChangelogSpec::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let repo = &log.repositories[0];
        if messages.iter().all(|m| std::str::from_utf8(m).is_ok()) {
            prop_assert!(repo.error.is_none(), "{:?}", repo.error);
            prop_assert_eq!(repo.commits, messages.len());
        } else {
            let error = repo.error.as_deref().unwrap_or_default();
            prop_assert!(error.contains("not valid UTF-8"), "{error}");
        }
        let _ = render_markdown(&log);
    }
}

#[test]
fn a_root_commit_that_looks_like_a_merged_pull_request_is_one() {
    // Found by the property above: grouping indexed past the parents of a
    // commit without any.
    let commits = history(&["Merge pull request #7 from a/b".to_owned()], &[]);
    let mut out = RepoChangelog {
        to: commits[0].id.clone(),
        ..RepoChangelog::default()
    };
    let rules = Rules::new(&ChangelogSpec::default()).expect("default rules");
    build(&mut out, commits, &rules, &[], &());
    assert_eq!(out.user.iter().map(|e| e.pr).collect::<Vec<_>>(), [Some(7)]);
}
