//! Deciding whether end users notice a change.
//!
//! In order: the rules from the PackitDeployment spec (first match wins;
//! on the title, the files changed or both), then the PR's release note
//! (a real note is user-visible, "N/A" internal; placeholders count as no
//! note), then a revert whose original is not in the range (internal), bot
//! authors and branches, the built-in title rules below, the built-in
//! internal paths ([`INTERNAL_PATHS`]: a PR that only touches tests, CI,
//! linters' configs, lock files or repository metadata is internal) and
//! finally "visible": a PR nobody marked is assumed to matter.

use std::cell::OnceCell;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::Regex;

use super::group::Item;
use super::notes::{self, Note};
use super::{ChangelogError, ChangelogSpec, Visibility};

use Visibility::{Internal, User};

/// Built-in rules on the title: (what it recognises, pattern, visibility).
/// Derived from the Packit history: conventional-commit types, release and
/// version-bump PRs, dependency bots, and the test/CI/tooling work that fills
/// a week without changing behaviour.
pub const BUILT_IN: &[(&str, &str, Visibility)] = &[
    (
        "dependency and pre-commit bots",
        r"(?i)^(\[pre-commit\.ci\]|pre-commit autoupdate|chore\(deps\)|fix\(deps\)|build\(deps\)|update dependency |lock file maintenance|bump \S+ from \S+ to \S+)",
        Internal,
    ),
    (
        "conventional: user-visible types",
        r"^(feat|fix|perf)(\([^)]*\))?!?:",
        User,
    ),
    (
        "conventional: internal types",
        r"^(refactor|test|tests|ci|chore|build|docs|style|revert)(\([^)]*\))?!?:",
        Internal,
    ),
    (
        "releases and version bumps",
        r"(?i)^(release\s+v?\d+(\.\d+)*|v?\d+(\.\d+)+\s+release|bump (the )?(spec|version)|prepare (for )?release)\b",
        Internal,
    ),
    (
        "tests, CI and repository tooling",
        r"(?i)(^(add |fix |update |more |tidy )?(unit |integration )?tests?\b|\btests? for\b|\btest (case|data)\b|^\[(\.packit\.yaml|make\b)|\bpre-commit\b|\bstale[- ]?bot\b|\bzuul\b|\breadme\b|\btypo\b|\brefactor)",
        Internal,
    ),
];

/// Built-in internal paths: (what they are, globs). A pull request whose
/// changed files all match these is internal unless a spec rule or a real
/// release note says otherwise. Globs are relative to the repository root;
/// `*` stays within one directory and `**` crosses them.
pub const INTERNAL_PATHS: &[(&str, &[&str])] = &[
    (
        "tests",
        &[
            "tests/**",
            "test/**",
            "testing/**",
            "**/tests/**",
            "**/__tests__/**",
            "**/test_*.py",
            "**/*_test.py",
            "**/conftest.py",
            "**/*_test.go",
            "**/testdata/**",
            "**/*.test.[jt]s",
            "**/*.test.[jt]sx",
            "**/*.spec.[jt]s",
            "**/*_spec.rb",
            "plans/**",
            "**/*.fmf",
            "**/.fmf/**",
        ],
    ),
    (
        "CI",
        &[
            ".github/**",
            ".gitlab-ci.yml",
            ".gitlab/**",
            ".zuul.yaml",
            "zuul.yaml",
            ".zuul.d/**",
            "zuul.d/**",
            ".packit.yaml",
            ".packit.yml",
            "tox.ini",
            "noxfile.py",
            ".travis.yml",
            ".circleci/**",
            ".cirrus.yml",
            "Jenkinsfile",
            "azure-pipelines.yml",
            ".buildkite/**",
            ".tekton/**",
            "codecov.yml",
            ".codecov.yml",
            ".coveragerc",
        ],
    ),
    (
        "pre-commit and linters' configs",
        &[
            ".pre-commit-config.yaml",
            ".flake8",
            ".pylintrc",
            "pylintrc",
            "ruff.toml",
            ".ruff.toml",
            "mypy.ini",
            ".mypy.ini",
            ".isort.cfg",
            ".yamllint",
            ".yamllint.yaml",
            ".yamllint.yml",
            ".markdownlint*",
            ".eslintrc*",
            ".prettierrc*",
            ".prettierignore",
            ".stylelintrc*",
            ".golangci.yml",
            ".golangci.yaml",
            "rustfmt.toml",
            ".rustfmt.toml",
            "clippy.toml",
            ".clippy.toml",
            ".hadolint.yaml",
            ".shellcheckrc",
            ".codespellrc",
            ".editorconfig",
        ],
    ),
    (
        "dependency lock and pin files",
        &[
            "**/Cargo.lock",
            "**/poetry.lock",
            "**/Pipfile.lock",
            "**/uv.lock",
            "**/pdm.lock",
            "**/package-lock.json",
            "**/npm-shrinkwrap.json",
            "**/yarn.lock",
            "**/pnpm-lock.yaml",
            "**/go.sum",
            "**/Gemfile.lock",
            "**/composer.lock",
            "**/constraints*.txt",
            "**/requirements-dev*.txt",
            "**/requirements-test*.txt",
            "**/requirements_dev*.txt",
            "**/requirements_test*.txt",
            "**/dev-requirements*.txt",
            "**/test-requirements*.txt",
            "renovate.json",
            "renovate.json5",
            ".renovaterc*",
        ],
    ),
    (
        "repository metadata",
        &[
            "**/CODEOWNERS",
            "OWNERS",
            "OWNERS_ALIASES",
            ".gitignore",
            "**/.gitignore",
            ".gitattributes",
            ".git-blame-ignore-revs",
            ".mailmap",
            ".vscode/**",
            ".idea/**",
            ".devcontainer/**",
        ],
    ),
];

// Authors whose changes are routine updates.
const BOT_AUTHOR: &str = r"(?i)(pre-commit-ci|dependabot|renovate|github-actions|^release bot$)";

/// A rule of the spec, compiled.
#[derive(Clone, Debug)]
struct SpecRule {
    title: Option<Regex>,
    paths: Option<GlobSet>,
    visibility: Visibility,
}

/// Compiled classification settings.
#[derive(Clone, Debug)]
pub struct Rules {
    spec: Vec<SpecRule>,
    built_in: Vec<(Regex, Visibility)>,
    internal_paths: GlobSet,
    bot: Regex,
    begin: String,
    end: String,
}

fn compile(pattern: &str) -> Result<Regex, ChangelogError> {
    Regex::new(pattern).map_err(|e| ChangelogError::InvalidRule {
        pattern: pattern.to_owned(),
        detail: e.to_string(),
    })
}

/// One set of globs: `*` does not cross `/`.
fn glob_set<'a>(globs: impl IntoIterator<Item = &'a str>) -> Result<GlobSet, ChangelogError> {
    let mut set = GlobSetBuilder::new();
    for g in globs {
        let glob = GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map_err(|e| ChangelogError::InvalidRule {
                pattern: g.to_owned(),
                detail: e.to_string(),
            })?;
        set.add(glob);
    }
    set.build().map_err(|e| ChangelogError::InvalidRule {
        pattern: String::new(),
        detail: e.to_string(),
    })
}

/// Whether there are changed files and every one of them is in `set`.
fn all_in(set: &GlobSet, files: Option<&[String]>) -> bool {
    files.is_some_and(|f| !f.is_empty() && f.iter().all(|p| set.is_match(p)))
}

impl Rules {
    pub fn new(spec: &ChangelogSpec) -> Result<Self, ChangelogError> {
        let (begin, end) = match &spec.markers {
            Some(m) if m.begin.trim().is_empty() || m.end.trim().is_empty() => {
                return Err(ChangelogError::EmptyMarker);
            }
            Some(m) => (m.begin.trim().to_owned(), m.end.trim().to_owned()),
            None => (notes::BEGIN.to_owned(), notes::END.to_owned()),
        };
        let spec_rules = spec
            .rules
            .iter()
            .map(|r| {
                if r.pattern.is_none() && r.paths.is_empty() {
                    return Err(ChangelogError::InvalidRule {
                        pattern: String::new(),
                        detail: "a rule needs a pattern, paths or both".into(),
                    });
                }
                Ok(SpecRule {
                    title: r.pattern.as_deref().map(compile).transpose()?,
                    paths: if r.paths.is_empty() {
                        None
                    } else {
                        Some(glob_set(r.paths.iter().map(String::as_str))?)
                    },
                    visibility: r.visibility,
                })
            })
            .collect::<Result<_, ChangelogError>>()?;
        Ok(Rules {
            spec: spec_rules,
            built_in: BUILT_IN
                .iter()
                .map(|(_, p, v)| Ok((compile(p)?, *v)))
                .collect::<Result<_, ChangelogError>>()?,
            internal_paths: glob_set(INTERNAL_PATHS.iter().flat_map(|(_, g)| g.iter().copied()))?,
            bot: compile(BOT_AUTHOR)?,
            begin,
            end,
        })
    }

    /// Whether some path rule (the spec's or the built-in internal paths)
    /// matches `path`; a changed file none matches makes every path rule
    /// fail, so the files need not be listed further.
    pub fn path_may_match(&self, path: &str) -> bool {
        self.internal_paths.is_match(path)
            || self
                .spec
                .iter()
                .any(|r| r.paths.as_ref().is_some_and(|set| set.is_match(path)))
    }

    /// The example notes of a repository's PR templates, which [`note`]
    /// treats as no note.
    ///
    /// [`note`]: Rules::note
    pub fn placeholders(&self, templates: &[String]) -> Vec<String> {
        notes::template_placeholders(templates, &self.begin, &self.end)
    }

    /// The release note of `item` as its description states it;
    /// `placeholders` from [`Rules::placeholders`].
    pub fn note(&self, item: &Item, placeholders: &[String]) -> Note {
        notes::extract(&item.description, &self.begin, &self.end, placeholders)
    }

    /// Where `item` goes, given its note. `files` gives the paths the item
    /// changed (`None` when unknown); it is called at most once, and only
    /// when a rule needs them.
    pub fn classify(
        &self,
        item: &Item,
        note: &Note,
        files: impl FnOnce() -> Option<Vec<String>>,
    ) -> Visibility {
        let title = item.title.as_str();
        let touched = OnceCell::new();
        let mut files = Some(files);
        let mut touched_files = || {
            touched
                .get_or_init(|| files.take().and_then(|f| f()))
                .as_deref()
        };
        for rule in &self.spec {
            let title_ok = rule.title.as_ref().is_none_or(|re| re.is_match(title));
            if title_ok
                && rule
                    .paths
                    .as_ref()
                    .is_none_or(|set| all_in(set, touched_files()))
            {
                return rule.visibility;
            }
        }
        match note {
            Note::Text(_) => return User,
            Note::NotVisible => return Internal,
            Note::Missing => {}
        }
        if item.reverts.is_some() {
            return Internal;
        }
        // A bot's PR: merged by it, or from its branch ("dependabot/pip/x").
        if self.bot.is_match(&item.author)
            || item.branch.as_deref().is_some_and(|b| self.bot.is_match(b))
        {
            return Internal;
        }
        let by_title = self
            .built_in
            .iter()
            .find(|(re, _)| re.is_match(title))
            .map(|(_, v)| *v);
        if by_title == Some(Internal) || all_in(&self.internal_paths, touched_files()) {
            return Internal;
        }
        User
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::deployment::{ClassificationRule, ReleaseNoteMarkers};

    fn item(title: &str, description: &str, author: &str) -> Item {
        Item {
            pr: Some(1),
            title: title.into(),
            description: description.into(),
            branch: None,
            commit: "c".into(),
            parent: None,
            tree: None,
            parent_tree: None,
            author: author.into(),
            commits: vec![],
            reverts: None,
        }
    }

    fn visibility(rules: &Rules, title: &str, description: &str, author: &str) -> Visibility {
        let it = item(title, description, author);
        rules.classify(&it, &rules.note(&it, &[]), || None)
    }

    fn with_files(rules: &Rules, title: &str, description: &str, files: &[&str]) -> Visibility {
        let it = item(title, description, "a");
        let files: Vec<String> = files.iter().map(|f| f.to_string()).collect();
        rules.classify(&it, &rules.note(&it, &[]), || Some(files))
    }

    fn default_rules() -> Rules {
        Rules::new(&ChangelogSpec::default()).unwrap()
    }

    #[test]
    fn conventional_commit_types() {
        let r = default_rules();
        for t in [
            "feat: x",
            "fix(cli): correctly type the resolved bugs",
            "perf!: y",
        ] {
            assert_eq!(visibility(&r, t, "", "a"), User, "{t}");
        }
        for t in [
            "refactor: x",
            "test: x",
            "ci: x",
            "chore: x",
            "build: x",
            "docs: x",
            "style(fmt): x",
        ] {
            assert_eq!(visibility(&r, t, "", "a"), Internal, "{t}");
        }
    }

    #[test]
    fn releases_and_bumps_are_internal() {
        let r = default_rules();
        for t in [
            "Release 0.102.0",
            "0.8.0 release",
            "Bump spec",
            "Bump version to 1.2",
        ] {
            assert_eq!(visibility(&r, t, "", "a"), Internal, "{t}");
        }
    }

    #[test]
    fn bots_are_internal() {
        let r = default_rules();
        assert_eq!(
            visibility(&r, "[pre-commit.ci] pre-commit autoupdate", "", "a"),
            Internal
        );
        assert_eq!(
            visibility(&r, "Bump foo from 1.0 to 1.1", "", "a"),
            Internal
        );
        assert_eq!(visibility(&r, "chore(deps): update x", "", "a"), Internal);
        assert_eq!(visibility(&r, "Anything", "", "renovate[bot]"), Internal);
        assert_eq!(visibility(&r, "Anything", "", "dependabot[bot]"), Internal);
    }

    #[test]
    fn bot_branches_are_internal() {
        let r = default_rules();
        let mut it = item("Update requests", "", "Jiri Popelka");
        it.branch = Some("dependabot/pip/requests-2.0".into());
        assert_eq!(r.classify(&it, &r.note(&it, &[]), || None), Internal);
    }

    #[test]
    fn tooling_titles_are_internal() {
        let r = default_rules();
        for t in [
            "tidy tests",
            "Add config for stale bot",
            "Add rebase check to pre-commit",
            "Copr refactor",
            "Tests for #577",
            "document Zuul & playbooks",
            "[.packit.yaml] Add F31",
            "[make check_in_container] x",
            "Create a test case for srpm",
        ] {
            assert_eq!(visibility(&r, t, "", "a"), Internal, "{t}");
        }
        assert_eq!(visibility(&r, "Setup testing farm", "", "a"), User);
    }

    #[test]
    fn release_note_markers_decide_before_built_ins() {
        let r = default_rules();
        let na = "RELEASE NOTES BEGIN\nN/A\nRELEASE NOTES END";
        assert_eq!(visibility(&r, "Implement NVR", na, "a"), Internal);
        let note = "RELEASE NOTES BEGIN\nTests run faster.\nRELEASE NOTES END";
        assert_eq!(visibility(&r, "Speed up tests", note, "a"), User);
    }

    #[test]
    fn spec_rules_come_first_and_markers_are_configurable() {
        let spec = ChangelogSpec {
            rules: vec![ClassificationRule {
                paths: vec![],
                pattern: Some("^\\[internal\\]".into()),
                visibility: Internal,
            }],
            markers: Some(ReleaseNoteMarkers {
                begin: "<notes>".into(),
                end: "</notes>".into(),
            }),
            webhooks: vec![],
        };
        let r = Rules::new(&spec).unwrap();
        assert_eq!(visibility(&r, "[internal] feat: x", "", "a"), Internal);
        assert_eq!(
            visibility(&r, "x", "<notes>\nnone\n</notes>", "a"),
            Internal
        );
        assert_eq!(
            visibility(&r, "x", "RELEASE NOTES BEGIN\nN/A\nRELEASE NOTES END", "a"),
            User
        );
    }

    #[test]
    fn prs_touching_only_internal_paths_are_internal() {
        let r = default_rules();
        for files in [
            &[".github/workflows/ci.yml"][..],
            &["tests/unit/test_config.py", "tests/conftest.py"],
            &["packit/utils/test_helpers.py"],
            &["pkg/x/y_test.go"],
            &[".pre-commit-config.yaml", "tox.ini"],
            &["CODEOWNERS"],
            &[".github/CODEOWNERS"],
            &["poetry.lock"],
            &[".zuul.yaml", ".packit.yaml", "noxfile.py"],
            &["plans/full.fmf"],
        ] {
            assert_eq!(
                with_files(&r, "Pin GitHub Actions to commit hashes", "", files),
                Internal,
                "{files:?}"
            );
        }
        // One file users notice is enough; `*` does not cross directories.
        for files in [
            &["tests/test_x.py", "packit/cli/init.py"][..],
            &["packit/tests.py"],
            &["docs/config.md"],
            &[],
        ] {
            assert_eq!(with_files(&r, "Ruff", "", files), User, "{files:?}");
        }
        // A conventional fix that only touches tests is internal too.
        assert_eq!(
            with_files(&r, "fix: flaky test", "", &["tests/test_a.py"]),
            Internal
        );
        // A real note wins.
        let note = "RELEASE NOTES BEGIN\nCI images are now public.\nRELEASE NOTES END";
        assert_eq!(with_files(&r, "CI", note, &[".github/x.yml"]), User);
        // A placeholder is no note.
        let empty = "RELEASE NOTES BEGIN\nEmpty on purpose\nRELEASE NOTES END";
        assert_eq!(with_files(&r, "CI", empty, &[".github/x.yml"]), Internal);
        assert_eq!(with_files(&r, "New flag", empty, &["packit/cli.py"]), User);
    }

    #[test]
    fn spec_rules_match_paths_titles_or_both() {
        let spec = ChangelogSpec {
            rules: vec![
                ClassificationRule {
                    pattern: None,
                    paths: vec!["docs/**".into(), "*.md".into()],
                    visibility: Internal,
                },
                ClassificationRule {
                    pattern: Some("(?i)^ci\\b".into()),
                    paths: vec![".github/**".into()],
                    visibility: User,
                },
            ],
            ..ChangelogSpec::default()
        };
        let r = Rules::new(&spec).unwrap();
        assert_eq!(
            with_files(&r, "feat: x", "", &["docs/a/b.md", "README.md"]),
            Internal
        );
        assert_eq!(
            with_files(&r, "feat: x", "", &["docs/a.md", "src/a.rs"]),
            User
        );
        assert_eq!(with_files(&r, "feat: x", "", &["sub/README.md"]), User);
        assert_eq!(with_files(&r, "CI images", "", &[".github/a.yml"]), User);
        assert_eq!(with_files(&r, "Other", "", &[".github/a.yml"]), Internal);
        // Unknown files match no path rule.
        assert_eq!(visibility(&r, "feat: y", "", "a"), User);
        let bad = ChangelogSpec {
            rules: vec![ClassificationRule {
                pattern: None,
                paths: vec!["a/**[".into()],
                visibility: User,
            }],
            ..ChangelogSpec::default()
        };
        assert!(matches!(
            Rules::new(&bad),
            Err(ChangelogError::InvalidRule { .. })
        ));
        let empty = ChangelogSpec {
            rules: vec![ClassificationRule {
                pattern: None,
                paths: vec![],
                visibility: User,
            }],
            ..ChangelogSpec::default()
        };
        assert!(matches!(
            Rules::new(&empty),
            Err(ChangelogError::InvalidRule { .. })
        ));
    }

    #[test]
    fn files_are_read_only_when_needed() {
        let r = default_rules();
        let it = item(
            "feat: x",
            "RELEASE NOTES BEGIN\nNew.\nRELEASE NOTES END",
            "a",
        );
        let note = r.note(&it, &[]);
        assert_eq!(r.classify(&it, &note, || unreachable!("files read")), User);
        let it = item("Release 1.2.0", "", "a");
        assert_eq!(
            r.classify(&it, &Note::Missing, || unreachable!("files read")),
            Internal
        );
    }

    #[test]
    fn reverts_of_older_changes_are_internal_unless_noted() {
        let r = default_rules();
        let mut it = item("Revert \"Add x\"", "", "a");
        it.reverts = Some("Add x".into());
        assert_eq!(r.classify(&it, &Note::Missing, || None), Internal);
        assert_eq!(
            r.classify(&it, &Note::Text("x is gone".into()), || None),
            User
        );
    }

    #[test]
    fn unmarked_prs_are_visible() {
        assert_eq!(
            visibility(
                &default_rules(),
                "Allow VM image-build without Copr",
                "",
                "a"
            ),
            User
        );
    }

    #[test]
    fn bad_patterns_are_reported() {
        let spec = ChangelogSpec {
            rules: vec![ClassificationRule {
                paths: vec![],
                pattern: Some("(".into()),
                visibility: User,
            }],
            ..ChangelogSpec::default()
        };
        assert!(matches!(
            Rules::new(&spec),
            Err(ChangelogError::InvalidRule { .. })
        ));
    }
}
