//! The changelog as stored in a PackitRelease status: per repository the
//! range and its entries. The `changelog` module computes and renders it
//! and re-exports these types.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::deployment::Visibility;

/// The changelog of one repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepoChangelog {
    /// Repository name, the section's heading.
    pub name: String,
    /// Repository URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Full id of the previous revision; empty when there was none to
    /// compare with.
    pub from: String,
    /// Full id of the new revision.
    pub to: String,
    /// Commits in the range, merges included.
    pub commits: usize,
    /// Pull requests end users notice.
    pub user: Vec<Entry>,
    /// Pull requests that change nothing end users notice.
    pub internal: Vec<Entry>,
    /// Commits pushed without a pull request.
    pub direct: Vec<Entry>,
    /// Pull requests and commits dropped because they were reverted in the
    /// same range (both halves of each pair).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reverted: Vec<Entry>,
    /// Things the reader should know, e.g. that `from` is not an ancestor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Set when the range could not be read; the lists are then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A pull request, or a commit pushed without one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Pull request number; absent for a direct push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr: Option<u64>,
    /// Link to the PR (or commit) when the repository is on GitHub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// PR title, or the commit's subject.
    pub title: String,
    /// The release note, or the title when the PR has none.
    pub note: String,
    pub visibility: Visibility,
    /// The merge, squash or direct commit.
    pub commit: String,
    /// Author of that commit.
    pub author: String,
    /// The PR's own branch commits (not listed as entries of their own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commits: Vec<CommitRef>,
}

/// A commit shown under its pull request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommitRef {
    /// Full commit id.
    pub id: String,
    /// First line of its message.
    pub subject: String,
}
