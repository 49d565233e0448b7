//! Recognising pull requests in commit messages.

use std::sync::LazyLock;

use regex::Regex;

use super::notes;

/// A pull request as its merge or squash commit describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub title: String,
    /// The PR description (empty for GitHub merge commits, which carry only
    /// the title).
    pub description: String,
    /// The PR's branch, when the merge message names it.
    pub branch: Option<String>,
}

static MERGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^Merge pull request #(\d+) from (\S+)").unwrap_or_else(|e| unreachable!("{e}"))
});
// "Title (#N)": GitHub squash merges and gating-bot merges.
static SQUASH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(.*\S)\s+\(#(\d+)\)$").unwrap_or_else(|e| unreachable!("{e}")));

/// Splits a message into its subject (first line) and body, normalising
/// CRLF line ends.
pub fn split(message: &str) -> (String, String) {
    let normalised;
    let message = if message.contains('\r') {
        normalised = message.replace("\r\n", "\n");
        normalised.as_str()
    } else {
        message
    };
    let mut parts = message.trim_start().splitn(2, '\n');
    let subject = parts.next().unwrap_or_default().trim().to_owned();
    let body = parts.next().unwrap_or_default().trim().to_owned();
    (subject, body)
}

/// The subject (first line) of a message, as [`split`] gives it, without
/// copying the body.
pub fn subject(message: &str) -> String {
    let first = message.trim_start().split('\n').next().unwrap_or_default();
    first.trim().to_owned()
}

/// The pull request a commit merges or squashes, if any.
pub fn detect(message: &str) -> Option<PullRequest> {
    let (subject, body) = split(message);
    if let Some(c) = MERGE.captures(&subject) {
        let number = c[1].parse().ok()?;
        let branch = c[2].to_owned();
        // GitHub puts the PR title on the first body line.
        let mut lines = body.lines();
        let title = lines
            .by_ref()
            .map(str::trim)
            .find(|l| !l.is_empty() && !notes::is_trailer(l))
            .map(str::to_owned)
            .unwrap_or_else(|| branch.clone());
        let description = lines.collect::<Vec<_>>().join("\n").trim().to_owned();
        return Some(PullRequest {
            number,
            title,
            description,
            branch: Some(branch),
        });
    }
    let c = SQUASH.captures(&subject)?;
    Some(PullRequest {
        number: c[2].parse().ok()?,
        title: c[1].to_owned(),
        description: body,
        branch: None,
    })
}

static REVERT_TITLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^Revert "(.+)"$"#).unwrap_or_else(|e| unreachable!("{e}")));
static REVERT_BRANCH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|/)revert-(\d+)-").unwrap_or_else(|e| unreachable!("{e}")));
static REVERT_COMMIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"This reverts commit ([0-9a-f]{7,40})").unwrap_or_else(|e| unreachable!("{e}"))
});

/// What a revert points at; any of the fields may identify the target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevertTarget {
    /// Title of the reverted change, without a trailing "(#N)".
    pub title: String,
    pub pr: Option<u64>,
    /// Abbreviated or full id of the reverted commit.
    pub commit: Option<String>,
}

/// If the title says `Revert "X"`, what X is.
pub fn revert_target(title: &str, branch: Option<&str>, body: &str) -> Option<RevertTarget> {
    let c = REVERT_TITLE.captures(title.trim())?;
    let mut target = RevertTarget {
        title: c[1].to_owned(),
        ..RevertTarget::default()
    };
    if let Some(s) = SQUASH.captures(&c[1]) {
        target.title = s[1].to_owned();
        target.pr = s[2].parse().ok();
    }
    if let Some(b) = branch.and_then(|b| REVERT_BRANCH.captures(b)) {
        target.pr = b[1].parse().ok();
    }
    target.commit = REVERT_COMMIT.captures(body).map(|c| c[1].to_owned());
    Some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_the_first_part_of_split() {
        for m in [
            "Fix x\n\nbody",
            "\n  Fix y \r\n\r\nbody\r\n",
            "One line",
            "",
        ] {
            assert_eq!(subject(m), split(m).0, "{m:?}");
        }
    }

    #[test]
    fn github_merge_takes_the_title_from_the_body() {
        let pr =
            detect("Merge pull request #656 from packit-service/0.8.0-release\n\n0.8.0 release")
                .unwrap();
        assert_eq!(pr.number, 656);
        assert_eq!(pr.title, "0.8.0 release");
        assert_eq!(pr.branch.as_deref(), Some("packit-service/0.8.0-release"));
    }

    #[test]
    fn github_merge_without_body_falls_back_to_the_branch() {
        let pr = detect("Merge pull request #7 from a/b").unwrap();
        assert_eq!(pr.title, "a/b");
    }

    #[test]
    fn squash_and_gating_merges_end_with_the_number() {
        let pr =
            detect("Gitignore issue (#2431)\r\n\r\nGitignore issue\r\n\r\nReviewed-by: X").unwrap();
        assert_eq!(pr.number, 2431);
        assert_eq!(pr.title, "Gitignore issue");
        assert!(pr.description.starts_with("Gitignore issue\n"));
    }

    #[test]
    fn plain_commits_and_branch_merges_are_not_prs() {
        assert_eq!(detect("Fix the thing\n\nSee #12"), None);
        assert_eq!(detect("Merge branch 'master' into is-packager"), None);
        assert_eq!(detect("Mention (#12) in the middle"), None);
    }

    #[test]
    fn revert_targets() {
        let t = revert_target(
            r#"Revert "Marshmallow schema implementation""#,
            Some("packit-service/revert-620-marshmallow_schema_implem"),
            "",
        )
        .unwrap();
        assert_eq!(t.pr, Some(620));
        assert_eq!(t.title, "Marshmallow schema implementation");
        let t = revert_target(
            r#"Revert "Add x (#12)""#,
            None,
            "This reverts commit abcdef1.",
        )
        .unwrap();
        assert_eq!((t.pr, t.title.as_str()), (Some(12), "Add x"));
        assert_eq!(t.commit.as_deref(), Some("abcdef1"));
        assert_eq!(revert_target("Reverting is fun", None, ""), None);
    }
}
