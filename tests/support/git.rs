//! Throwaway git repositories with scripted history, served as `file://`.
//!
//! Commits get fixed authors and dates one minute apart from 2024-01-01, so
//! a script produces the same history every time (apart from hashes, which
//! also depend on the content).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::{Context, Result, ensure};
use tempfile::TempDir;

const EPOCH: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

/// A git repository in a temporary directory, removed when dropped.
pub struct GitRepo {
    dir: TempDir,
    clock: AtomicI64,
}

impl GitRepo {
    /// A new repository whose first branch is `branch` (e.g. `stable`),
    /// with one initial commit so the branch exists.
    pub fn new(branch: &str) -> Result<Self> {
        let repo = GitRepo {
            dir: tempfile::Builder::new().prefix("packit-git-").tempdir()?,
            clock: AtomicI64::new(EPOCH),
        };
        repo.git(&["init", "--quiet", "--initial-branch", branch])?;
        repo.commit("Initial commit", &[("README.md", "test repository\n")])?;
        Ok(repo)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The URL to clone or fetch from.
    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    /// Runs git in the repository with a fixed identity and the next commit
    /// date; returns stdout, trimmed.
    pub fn git(&self, args: &[&str]) -> Result<String> {
        let date = format!("@{} +0000", self.clock.load(Ordering::Relaxed));
        let output = Command::new("git")
            .current_dir(self.path())
            .args(["-c", "user.name=Packit Tester"])
            .args(["-c", "user.email=tester@packit.invalid"])
            .args(["-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"])
            .args(args)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .output()
            .context("running git")?;
        ensure!(
            output.status.success(),
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(String::from_utf8(output.stdout)?.trim().to_owned())
    }

    /// Writes `files` (path, content) and commits them, or an empty commit
    /// when there are none, on the current branch. Returns the commit hash.
    pub fn commit(&self, message: &str, files: &[(&str, &str)]) -> Result<String> {
        for (path, content) in files {
            let full = self.path().join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&full, content)?;
            self.git(&["add", "--", path])?;
        }
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message])?;
        self.tick();
        self.head()
    }

    /// A pull request merged the way GitHub's merge button does: a commit
    /// `title` on branch `from`, merged into the current branch with
    /// "Merge pull request #<number> from packit/<from>". Returns the merge
    /// commit's hash.
    pub fn merge_pr(&self, number: u64, from: &str, title: &str) -> Result<String> {
        let target = self.current_branch()?;
        self.git(&["checkout", "--quiet", "-b", from])?;
        let file = format!("changes/pr-{number}.txt");
        self.commit(title, &[(&file, title)])?;
        self.git(&["checkout", "--quiet", &target])?;
        let message = format!("Merge pull request #{number} from packit/{from}\n\n{title}");
        self.git(&["merge", "--quiet", "--no-ff", "-m", &message, from])?;
        self.tick();
        self.head()
    }

    /// A pull request squash-merged: one commit "<title> (#<number>)" on the
    /// current branch. Returns its hash.
    pub fn squash_pr(&self, number: u64, title: &str) -> Result<String> {
        let file = format!("changes/pr-{number}.txt");
        self.commit(&format!("{title} (#{number})"), &[(&file, title)])
    }

    /// Creates branch `name` at the current commit without switching to it.
    pub fn branch(&self, name: &str) -> Result<()> {
        self.git(&["branch", name]).map(drop)
    }

    pub fn checkout(&self, branch: &str) -> Result<()> {
        self.git(&["checkout", "--quiet", branch]).map(drop)
    }

    /// Moves `branch` to `rev` (as the weekly "move stable" step does).
    pub fn reset_branch(&self, branch: &str, rev: &str) -> Result<()> {
        if self.current_branch()? == branch {
            self.git(&["reset", "--quiet", "--hard", rev]).map(drop)
        } else {
            self.git(&["branch", "--force", branch, rev]).map(drop)
        }
    }

    /// The commit hash `rev` names.
    pub fn rev_parse(&self, rev: &str) -> Result<String> {
        self.git(&["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
    }

    pub fn head(&self) -> Result<String> {
        self.rev_parse("HEAD")
    }

    pub fn current_branch(&self) -> Result<String> {
        self.git(&["symbolic-ref", "--short", "HEAD"])
    }

    fn tick(&self) {
        self.clock.fetch_add(60, Ordering::Relaxed);
    }
}
