//! Release notes a maintainer would publish: pull requests that only touch
//! tests, CI or repository metadata are internal, placeholder notes and the
//! PR template's example are no notes, and reverts of older changes are
//! internal. On git repositories built here with files, and on the fixture
//! history in `../shared/fixtures/packit-history/`.

#[path = "support/history.rs"]
mod history;

use std::fmt::Write as _;
use std::path::Path;

use packit_operator::api::deployment::{ChangelogSpec, ClassificationRule, Visibility};
use packit_operator::changelog::{self, Entry, RepoChangelog, RepoRange};

/// A repository written with `git fast-import`: commits with files, PR
/// merges and squashes.
struct Builder {
    stream: String,
    mark: usize,
    time: i64,
    main: Option<usize>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            stream: String::new(),
            mark: 0,
            time: 1_700_000_000,
            main: None,
        }
    }

    /// A commit on `parents` (the first is the first parent) changing
    /// `files` (`None` content deletes the file).
    fn commit(
        &mut self,
        message: &str,
        parents: &[usize],
        files: &[(&str, Option<&str>)],
    ) -> usize {
        self.mark += 1;
        self.time += 60;
        let (mark, time) = (self.mark, self.time);
        let who = "Dev <dev@example.invalid>";
        let _ = write!(
            self.stream,
            "commit refs/heads/work\nmark :{mark}\nauthor {who} {time} +0000\ncommitter {who} {time} +0000\ndata {}\n{message}\n",
            message.len()
        );
        for (i, p) in parents.iter().enumerate() {
            let verb = if i == 0 { "from" } else { "merge" };
            let _ = writeln!(self.stream, "{verb} :{p}");
        }
        for (path, content) in files {
            match content {
                Some(text) => {
                    let _ = write!(
                        self.stream,
                        "M 644 inline {path}\ndata {}\n{text}\n",
                        text.len()
                    );
                }
                None => {
                    let _ = writeln!(self.stream, "D {path}");
                }
            }
        }
        self.stream.push('\n');
        mark
    }

    /// A commit on the mainline.
    fn push(&mut self, message: &str, files: &[(&str, Option<&str>)]) -> usize {
        let parents: Vec<usize> = self.main.into_iter().collect();
        let m = self.commit(message, &parents, files);
        self.main = Some(m);
        m
    }

    /// A squash or gating merge: `Title (#N)` with `description`.
    fn squash(&mut self, n: u64, title: &str, description: &str, files: &[(&str, Option<&str>)]) {
        self.push(&format!("{title} (#{n})\n\n{description}\n"), files);
    }

    /// A GitHub merge of one branch commit changing `files`.
    fn merge(&mut self, n: u64, title: &str, files: &[(&str, Option<&str>)]) {
        let base = self.main.unwrap_or_default();
        let branch = self.commit(
            &format!("{title}\n\nSigned-off-by: Dev <dev@example.invalid>\n"),
            &[base],
            files,
        );
        let message = format!("Merge pull request #{n} from dev/pr-{n}\n\n{title}\n");
        let m = self.commit(&message, &[base, branch], files);
        self.main = Some(m);
    }

    fn tag(&mut self, name: &str) {
        if let Some(m) = self.main {
            let _ = write!(self.stream, "reset refs/tags/{name}\nfrom :{m}\n\n");
        }
    }

    fn write(mut self, origin: Option<&str>) -> tempfile::TempDir {
        self.tag("to");
        if let Some(m) = self.main {
            let _ = write!(self.stream, "reset refs/heads/main\nfrom :{m}\n\n");
        }
        let dir = tempfile::Builder::new()
            .prefix("packit-notes-")
            .tempdir()
            .unwrap();
        let p = dir.path();
        history::run_git(
            p,
            &["init", "--quiet", "--bare", "--initial-branch", "main"],
            None,
        )
        .unwrap();
        history::run_git(p, &["fast-import", "--quiet"], Some(self.stream.as_bytes())).unwrap();
        if let Some(url) = origin {
            history::run_git(p, &["remote", "add", "origin", url], None).unwrap();
        }
        dir
    }
}

const TEMPLATE: &str = "<!-- Describe the change. -->\n\nTODO:\n\n- [ ] Write new tests or update the old ones to cover new functionality.\n\nFixes\n\nRELEASE NOTES BEGIN\nPackit now supports automatic ordering of ☕ after all checks pass.\nRELEASE NOTES END\n";

fn note(text: &str) -> String {
    format!(
        "Some context.\n\nRELEASE NOTES BEGIN\n{text}\nRELEASE NOTES END\n\nReviewed-by: Reviewer"
    )
}

/// The shapes of the issue, one PR each, after a tagged base.
fn shapes() -> tempfile::TempDir {
    let mut b = Builder::new();
    b.push(
        "Initial import",
        &[
            ("src/app.py", Some("print(1)")),
            ("src/frob.py", Some("frob = 1")),
            ("README.md", Some("# app")),
            ("tests/test_app.py", Some("def test(): pass")),
            (".github/pull_request_template.md", Some(TEMPLATE)),
            (".github/workflows/ci.yml", Some("on: push")),
        ],
    );
    b.squash(
        5,
        "Add the frobnicator",
        "",
        &[("src/frob.py", Some("frob = 2"))],
    );
    b.tag("from");
    // CI only, a GitHub merge.
    b.merge(
        11,
        "Pin GitHub Actions to commit hashes",
        &[
            (".github/workflows/ci.yml", Some("on: [push, pull_request]")),
            (".pre-commit-config.yaml", Some("repos: []")),
        ],
    );
    // Tests only, squashed.
    b.squash(
        12,
        "Add missing testing dependencies",
        "We need pytest-mock.",
        &[
            ("tests/requirements.txt", Some("pytest-mock")),
            ("tests/test_app.py", Some("def test(): assert True")),
        ],
    );
    // Placeholder notes.
    b.squash(
        13,
        "Speed up loading the configuration",
        &note("No user-visible change here."),
        &[("src/app.py", Some("print(2)"))],
    );
    b.squash(
        14,
        "Ruff",
        &note("Empty on purpose"),
        &[("tox.ini", Some("[tox]")), ("CODEOWNERS", Some("* @dev"))],
    );
    // The template's example note left in.
    b.squash(
        15,
        "Allow tea",
        TEMPLATE,
        &[("src/app.py", Some("print(3)"))],
    );
    // A revert of a change from an earlier release.
    b.squash(
        16,
        "Revert \"Add the frobnicator (#5)\"",
        "This reverts the frobnicator.",
        &[("src/frob.py", Some("frob = 1"))],
    );
    // CI only, but with a real note.
    b.squash(
        17,
        "Publish the CI images",
        &note("The CI images are now public on quay.io."),
        &[(".github/workflows/images.yml", Some("on: push"))],
    );
    // Documentation.
    b.squash(
        18,
        "Document the frobnicator",
        "",
        &[("docs/frob.md", Some("# frob"))],
    );
    b.write(Some("git@github.com:example/notes-app.git"))
}

fn changelog_of(repo: &Path, spec: &ChangelogSpec) -> RepoChangelog {
    let range = RepoRange {
        name: changelog::heading_name(
            None,
            &repo.display().to_string(),
            changelog::walk::origin_url(repo).as_deref(),
        ),
        url: changelog::walk::origin_url(repo),
        path: repo.to_owned(),
        from: Some("from".into()),
        to: "to".into(),
        limit: None,
    };
    let mut log = changelog::generate(&[range], spec).unwrap();
    log.repositories.remove(0)
}

fn prs(entries: &[Entry]) -> Vec<u64> {
    entries.iter().filter_map(|e| e.pr).collect()
}

fn find(r: &RepoChangelog, pr: u64) -> &Entry {
    r.user
        .iter()
        .chain(&r.internal)
        .find(|e| e.pr == Some(pr))
        .unwrap_or_else(|| panic!("#{pr} missing"))
}

#[test]
fn each_shape_lands_where_a_maintainer_would_put_it() {
    let repo = shapes();
    let r = changelog_of(repo.path(), &ChangelogSpec::default());
    assert_eq!(r.error, None);
    assert_eq!(prs(&r.user), [13, 15, 17, 18], "user: {:#?}", r.user);
    assert_eq!(
        prs(&r.internal),
        [11, 12, 14, 16],
        "internal: {:#?}",
        r.internal
    );
    assert!(r.direct.is_empty(), "{:?}", r.direct);

    // CI-only and tests-only PRs are internal by their files.
    assert_eq!(find(&r, 11).visibility, Visibility::Internal);
    assert_eq!(find(&r, 12).visibility, Visibility::Internal);
    // Placeholders are no notes: the title is shown, never the placeholder.
    assert_eq!(find(&r, 13).note, "Speed up loading the configuration");
    assert_eq!(find(&r, 14).note, "Ruff");
    // The template's example is no note either.
    assert_eq!(find(&r, 15).note, "Allow tea");
    // The old revert reads as such.
    assert_eq!(find(&r, 16).note, "Reverted: Add the frobnicator");
    // A real note wins over the paths.
    assert_eq!(
        find(&r, 17).note,
        "The CI images are now public on quay.io."
    );

    let md = changelog::render_markdown(&changelog::Changelog {
        repositories: vec![r],
    });
    assert!(md.contains("\n## notes-app (`"), "{md}");
    for placeholder in [
        "Empty on purpose",
        "No user-visible change",
        "ordering of ☕",
        "Revert \"",
    ] {
        assert!(!md.contains(placeholder), "{placeholder:?} in\n{md}");
    }
    assert!(
        md.contains(
            "- Reverted: Add the frobnicator ([#16](https://github.com/example/notes-app/pull/16))"
        ),
        "{md}"
    );
}

#[test]
fn without_files_the_titles_alone_decide() {
    // The same history classified without reading trees: the CI and tests
    // PRs have titles no rule knows, so they would be shown.
    let repo = shapes();
    let walked = changelog::walk::walk(&RepoRange {
        name: "notes-app".into(),
        path: repo.path().to_owned(),
        from: Some("from".into()),
        to: "to".into(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(walked.templates.len(), 1);
    let mut out = RepoChangelog {
        to: walked.to.clone(),
        ..Default::default()
    };
    let rules = changelog::Rules::new(&ChangelogSpec::default()).unwrap();
    changelog::build(
        &mut out,
        walked.commits.clone(),
        &rules,
        &walked.templates,
        &(),
    );
    assert!(prs(&out.user).contains(&11) && prs(&out.user).contains(&12));
    // Without the template its example sentence is a note.
    let mut out = RepoChangelog {
        to: walked.to,
        ..Default::default()
    };
    changelog::build(&mut out, walked.commits, &rules, &[], &());
    assert!(
        find(&out, 15)
            .note
            .starts_with("Packit now supports automatic ordering")
    );
}

#[test]
fn spec_rules_match_paths() {
    let repo = shapes();
    let spec = ChangelogSpec {
        rules: vec![
            ClassificationRule {
                pattern: None,
                paths: vec!["docs/**".into()],
                visibility: Visibility::Internal,
            },
            ClassificationRule {
                pattern: Some("^Ruff$".into()),
                paths: vec!["tox.ini".into(), "CODEOWNERS".into()],
                visibility: Visibility::User,
            },
        ],
        ..ChangelogSpec::default()
    };
    let r = changelog_of(repo.path(), &spec);
    assert_eq!(find(&r, 18).visibility, Visibility::Internal);
    assert_eq!(find(&r, 14).visibility, Visibility::User);
    assert_eq!(find(&r, 11).visibility, Visibility::Internal);
}

#[test]
fn templates_in_the_other_places_github_reads() {
    for path in [
        "PULL_REQUEST_TEMPLATE.md",
        "docs/pull_request_template.md",
        ".github/PULL_REQUEST_TEMPLATE/feature.md",
        ".github/pull_request_template",
    ] {
        let mut b = Builder::new();
        b.push(
            "Initial import",
            &[("src/a.py", Some("1")), (path, Some(TEMPLATE))],
        );
        b.tag("from");
        b.squash(3, "Allow tea", TEMPLATE, &[("src/a.py", Some("2"))]);
        let repo = b.write(None);
        let r = changelog_of(repo.path(), &ChangelogSpec::default());
        assert_eq!(find(&r, 3).note, "Allow tea", "{path}");
        assert_eq!(find(&r, 3).visibility, Visibility::User, "{path}");
        // No remote: the heading is the location, not its last part.
        assert_eq!(r.name, repo.path().display().to_string());
    }
}

/// On the fixture history: #632 reverts #620; with #620 before the range
/// the revert is internal and reads "Reverted: ...".
#[test]
fn a_revert_of_an_earlier_release_on_the_fixtures() {
    let repo = history::rebuild("packit-8ed72cd7-b6d9bf76").unwrap();
    let merge_620 = repo
        .records
        .iter()
        .find(|r| r.message.starts_with("Merge pull request #620 "))
        .unwrap();
    let from = repo.id(&merge_620.sha).unwrap().to_owned();
    let range = RepoRange {
        name: "packit".into(),
        url: Some("https://github.com/packit/packit".into()),
        path: repo.path().to_owned(),
        from: Some(from),
        to: "to".into(),
        limit: None,
    };
    let mut log = changelog::generate(&[range], &ChangelogSpec::default()).unwrap();
    let r = log.repositories.remove(0);
    assert!(!prs(&r.user).contains(&632), "{:?}", prs(&r.user));
    let e = r.internal.iter().find(|e| e.pr == Some(632)).unwrap();
    assert_eq!(e.note, "Reverted: Marshmallow schema implementation");
    assert!(r.reverted.iter().all(|e| e.pr != Some(632)));

    // The whole range keeps the pair out, as before.
    let range = RepoRange {
        name: "packit".into(),
        path: repo.path().to_owned(),
        from: Some("from".into()),
        to: "to".into(),
        ..Default::default()
    };
    let mut log = changelog::generate(&[range], &ChangelogSpec::default()).unwrap();
    let r = log.repositories.remove(0);
    assert!(prs(&r.reverted).contains(&632) && prs(&r.reverted).contains(&620));
}

/// The fixtures' notes: "N/A" stays internal, real notes stay notes, and
/// no entry of any range prints a placeholder.
#[test]
fn fixture_notes_are_never_placeholders() {
    for file in history::fixture_files().unwrap() {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let repo = history::rebuild(&name).unwrap();
        let r = changelog_of(repo.path(), &ChangelogSpec::default());
        for e in r.user.iter().chain(&r.internal) {
            let lower = e.note.to_lowercase();
            assert!(
                !lower.contains("empty on purpose")
                    && !lower.starts_with("no user-visible change")
                    && e.note != "N/A",
                "{name}: {}",
                e.note
            );
            assert!(!e.note.starts_with("Revert \""), "{name}: {}", e.note);
        }
    }
}
