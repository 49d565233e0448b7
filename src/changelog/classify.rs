//! Deciding whether end users notice a change.
//!
//! In order: the rules from the PackitDeployment spec (first match wins),
//! then the PR's release-note markers, then the built-in rules below, and
//! finally "visible": a PR nobody marked is assumed to matter.

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

// Authors whose changes are routine updates.
const BOT_AUTHOR: &str = r"(?i)(pre-commit-ci|dependabot|renovate|github-actions|^release bot$)";

/// Compiled classification settings.
#[derive(Clone, Debug)]
pub struct Rules {
    spec: Vec<(Regex, Visibility)>,
    built_in: Vec<(Regex, Visibility)>,
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

impl Rules {
    pub fn new(spec: &ChangelogSpec) -> Result<Self, ChangelogError> {
        let (begin, end) = match &spec.markers {
            Some(m) if m.begin.trim().is_empty() || m.end.trim().is_empty() => {
                return Err(ChangelogError::EmptyMarker);
            }
            Some(m) => (m.begin.trim().to_owned(), m.end.trim().to_owned()),
            None => (notes::BEGIN.to_owned(), notes::END.to_owned()),
        };
        Ok(Rules {
            spec: spec
                .rules
                .iter()
                .map(|r| Ok((compile(&r.pattern)?, r.visibility)))
                .collect::<Result<_, ChangelogError>>()?,
            built_in: BUILT_IN
                .iter()
                .map(|(_, p, v)| Ok((compile(p)?, *v)))
                .collect::<Result<_, ChangelogError>>()?,
            bot: compile(BOT_AUTHOR)?,
            begin,
            end,
        })
    }

    /// The release note of `item` as its description states it.
    pub fn note(&self, item: &Item) -> Note {
        notes::extract(&item.description, &self.begin, &self.end)
    }

    /// Where `item` goes, given its note.
    pub fn classify(&self, item: &Item, note: &Note) -> Visibility {
        let title = item.title.as_str();
        if let Some((_, v)) = self.spec.iter().find(|(re, _)| re.is_match(title)) {
            return *v;
        }
        match note {
            Note::Text(_) => return User,
            Note::NotVisible => return Internal,
            Note::Missing => {}
        }
        // A bot's PR: merged by it, or from its branch ("dependabot/pip/x").
        if self.bot.is_match(&item.author)
            || item.branch.as_deref().is_some_and(|b| self.bot.is_match(b))
        {
            return Internal;
        }
        self.built_in
            .iter()
            .find(|(re, _)| re.is_match(title))
            .map_or(User, |(_, v)| *v)
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
            author: author.into(),
            commits: vec![],
        }
    }

    fn visibility(rules: &Rules, title: &str, description: &str, author: &str) -> Visibility {
        let it = item(title, description, author);
        rules.classify(&it, &rules.note(&it))
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
        assert_eq!(r.classify(&it, &r.note(&it)), Internal);
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
                pattern: "^\\[internal\\]".into(),
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
                pattern: "(".into(),
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
