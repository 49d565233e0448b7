//! Turning the commits of a range into changelog items: one per pull
//! request (its branch commits under it) and one per commit pushed without
//! one; pairs of a change and its revert removed.

use std::collections::HashMap;

use super::pr::{self, PullRequest};
use super::{CommitRef, RawCommit};

/// A pull request or direct commit before classification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Item {
    pub pr: Option<u64>,
    pub title: String,
    pub description: String,
    pub branch: Option<String>,
    /// The merge, squash or direct commit.
    pub commit: String,
    /// Its first parent, which the files it changed are read against.
    pub parent: Option<String>,
    /// The trees of the commit and of its first parent, when known (empty,
    /// `None`): spares reading the commits again for the files changed.
    pub tree: Option<gix::ObjectId>,
    pub parent_tree: Option<gix::ObjectId>,
    pub author: String,
    /// The PR's own commits, oldest first.
    pub commits: Vec<CommitRef>,
    /// For a revert whose original is not in the range: the original's
    /// title.
    pub reverts: Option<String>,
}

/// Items in history order (oldest first), and those dropped as revert pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grouped {
    pub items: Vec<Item>,
    pub reverted: Vec<Item>,
}

/// Groups `commits` (the whole range, any order) walking from `to`.
///
/// The first-parent chain from `to` is the mainline. Walking it oldest
/// first, each commit claims the unclaimed range commits behind its other
/// parents, so everything behind the first parent is already claimed and
/// each commit is visited once. A PR merge keeps what it claims as its
/// branch commits; any other merge's side is walked as a mainline of its
/// own.
///
/// The commits are consumed: each message is dropped once the commit's
/// item or subject is taken from it, so the messages of a long range are
/// not held next to the items made of them.
pub fn group(mut commits: Vec<RawCommit>, to: &str) -> Grouped {
    // The ids apart, so that the index can borrow them while the commits
    // give up their messages.
    let ids: Vec<String> = commits
        .iter_mut()
        .map(|c| std::mem::take(&mut c.id))
        .collect();
    let index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut g = Grouper {
        claimed: vec![false; commits.len()],
        commits,
        ids: &ids,
        index,
        items: Vec::new(),
    };
    if let Some(&tip) = g.index.get(to) {
        g.chain(tip);
    }
    let Grouper {
        commits,
        index,
        items,
        ..
    } = g;
    // What is left of the commits goes before the reverts are matched.
    drop((commits, index));
    drop(ids);
    cancel_reverts(items)
}

struct Grouper<'a> {
    /// Without their ids (in `ids`), and without their messages once
    /// visited.
    commits: Vec<RawCommit>,
    ids: &'a [String],
    index: HashMap<&'a str, usize>,
    claimed: Vec<bool>,
    items: Vec<Item>,
}

impl Grouper<'_> {
    fn in_range_unclaimed(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied().filter(|&i| !self.claimed[i])
    }

    /// Processes the first-parent chain ending at `tip`, oldest first.
    fn chain(&mut self, tip: usize) {
        let mut chain = vec![tip];
        self.claimed[tip] = true;
        let mut at = tip;
        while let Some(next) = self.commits[at]
            .parents
            .first()
            .and_then(|p| self.in_range_unclaimed(p))
        {
            self.claimed[next] = true;
            chain.push(next);
            at = next;
        }
        for &i in chain.iter().rev() {
            self.visit(i);
        }
    }

    fn visit(&mut self, i: usize) {
        let parent_tree = self.commits[i]
            .parents
            .first()
            .and_then(|p| self.index.get(p.as_str()))
            .and_then(|&p| self.commits[p].tree);
        let message = std::mem::take(&mut self.commits[i].message);
        match pr::detect(&message) {
            Some(pr) => {
                let branch = self.claim_side(i);
                let item = pr_item(&mut self.commits[i], &self.ids[i], pr, branch, parent_tree);
                self.items.push(item);
            }
            None if self.commits[i].parents.len() > 1 => {
                // A merge without a PR (e.g. a branch merged by hand): its
                // side is history of its own.
                for k in 1..self.commits[i].parents.len() {
                    if let Some(side) = self.in_range_unclaimed(&self.commits[i].parents[k]) {
                        self.chain(side);
                    }
                }
            }
            None => {
                let item = direct_item(&mut self.commits[i], &self.ids[i], &message, parent_tree);
                self.items.push(item);
            }
        }
    }

    /// Claims everything behind the non-first parents of `i` that is in the
    /// range and not claimed yet; returns it oldest first.
    fn claim_side(&mut self, i: usize) -> Vec<CommitRef> {
        let mut stack: Vec<usize> = Vec::new();
        let mut found: Vec<usize> = Vec::new();
        // `skip`, not `[1..]`: a root commit can look like a PR too.
        for p in self.commits[i].parents.iter().skip(1) {
            if let Some(j) = self.in_range_unclaimed(p) {
                self.claimed[j] = true;
                stack.push(j);
            }
        }
        while let Some(j) = stack.pop() {
            found.push(j);
            for p in &self.commits[j].parents {
                if let Some(k) = self.in_range_unclaimed(p) {
                    self.claimed[k] = true;
                    stack.push(k);
                }
            }
        }
        found.sort_by(|&a, &b| {
            let (ta, tb) = (self.commits[a].time, self.commits[b].time);
            (ta, &self.ids[a]).cmp(&(tb, &self.ids[b]))
        });
        found
            .into_iter()
            .map(|j| CommitRef {
                id: self.ids[j].clone(),
                subject: pr::subject(&std::mem::take(&mut self.commits[j].message)),
            })
            .collect()
    }
}

fn pr_item(
    c: &mut RawCommit,
    id: &str,
    pr: PullRequest,
    commits: Vec<CommitRef>,
    parent_tree: Option<gix::ObjectId>,
) -> Item {
    Item {
        pr: Some(pr.number),
        title: pr.title,
        description: pr.description,
        branch: pr.branch,
        commit: id.to_owned(),
        parent: c.parents.first().cloned(),
        tree: c.tree,
        parent_tree,
        author: std::mem::take(&mut c.author),
        commits,
        reverts: None,
    }
}

fn direct_item(
    c: &mut RawCommit,
    id: &str,
    message: &str,
    parent_tree: Option<gix::ObjectId>,
) -> Item {
    let (title, description) = pr::split(message);
    Item {
        pr: None,
        title,
        description,
        branch: None,
        commit: id.to_owned(),
        parent: c.parents.first().cloned(),
        tree: c.tree,
        parent_tree,
        author: std::mem::take(&mut c.author),
        commits: Vec::new(),
        reverts: None,
    }
}

/// Drops each revert together with the change it reverts when both are in
/// the range. Oldest first, so reverting a revert brings the change back.
/// A revert whose original is not in the range stays, with the original's
/// title in `reverts`.
fn cancel_reverts(mut items: Vec<Item>) -> Grouped {
    let mut gone = vec![false; items.len()];
    for r in 0..items.len() {
        let it = &items[r];
        let Some(t) = pr::revert_target(&it.title, it.branch.as_deref(), &it.description) else {
            continue;
        };
        let target = (0..r).rev().filter(|&i| !gone[i]).find(|&i| {
            let cand = &items[i];
            match (t.pr, &t.commit) {
                (Some(n), _) => cand.pr == Some(n),
                (None, Some(sha)) => cand.commit.starts_with(sha.as_str()),
                (None, None) => cand.title == t.title,
            }
        });
        if let Some(i) = target {
            gone[i] = true;
            gone[r] = true;
        } else {
            items[r].reverts = Some(t.title);
        }
    }
    // In place: a second array of all the items would double the peak
    // memory of a long history for a moment.
    let mut reverted = Vec::new();
    let mut k = 0;
    items.retain_mut(|item| {
        let keep = !gone[k];
        k += 1;
        if !keep {
            reverted.push(std::mem::take(item));
        }
        keep
    });
    Grouped { items, reverted }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, parents: &[&str], message: &str) -> RawCommit {
        RawCommit {
            id: id.into(),
            tree: None,
            parents: parents.iter().map(|p| p.to_string()).collect(),
            author: "A".into(),
            time: id.bytes().map(i64::from).sum(),
            message: message.into(),
        }
    }

    fn titles(items: &[Item]) -> Vec<(Option<u64>, &str)> {
        items.iter().map(|i| (i.pr, i.title.as_str())).collect()
    }

    #[test]
    fn branch_commits_go_under_their_merge() {
        // base - m1 ------- m2 (to)
        //          \- b1 -/
        let commits = [
            c(
                "m2",
                &["m1", "b1"],
                "Merge pull request #2 from a/x\n\nAdd x",
            ),
            c("b1", &["m1"], "Add x for real\n\nSigned-off-by: A <a@b>"),
            c("m1", &["base"], "Direct push"),
        ];
        let g = group(commits.to_vec(), "m2");
        assert_eq!(
            titles(&g.items),
            [(None, "Direct push"), (Some(2), "Add x")]
        );
        assert_eq!(g.items[1].commits[0].id, "b1");
    }

    #[test]
    fn squashes_are_prs_without_branch_commits() {
        let commits = [c("s", &["base"], "Fix y (#5)\n\nbody")];
        let g = group(commits.to_vec(), "s");
        assert_eq!(titles(&g.items), [(Some(5), "Fix y")]);
        assert!(g.items[0].commits.is_empty());
    }

    #[test]
    fn hand_merges_unfold_their_side() {
        let commits = [
            c("m", &["a", "s2"], "Merge branch 'stable'"),
            c("s2", &["s1"], "Fix z (#9)"),
            c("s1", &["base"], "Tweak"),
            c("a", &["base"], "Other (#8)"),
        ];
        let g = group(commits.to_vec(), "m");
        assert_eq!(
            titles(&g.items),
            [(Some(8), "Other"), (None, "Tweak"), (Some(9), "Fix z")]
        );
    }

    #[test]
    fn a_pr_and_its_revert_cancel_out() {
        let commits = [
            c(
                "r",
                &["p2", "rb"],
                "Merge pull request #632 from o/revert-620-x\n\nRevert \"X\"",
            ),
            c("rb", &["p2"], "Revert \"X\"\n\nThis reverts commit p1."),
            c("p2", &["p1"], "Keep me (#621)"),
            c("p1", &["base"], "X (#620)"),
        ];
        let g = group(commits.to_vec(), "r");
        assert_eq!(titles(&g.items), [(Some(621), "Keep me")]);
        assert_eq!(
            titles(&g.reverted),
            [(Some(620), "X"), (Some(632), "Revert \"X\"")]
        );
    }

    #[test]
    fn reverting_a_commit_outside_the_range_stays() {
        let commits = [c(
            "r",
            &["base"],
            "Revert \"Old\"\n\nThis reverts commit 0123456.",
        )];
        let g = group(commits.to_vec(), "r");
        assert_eq!(g.items.len(), 1);
        assert_eq!(g.items[0].reverts.as_deref(), Some("Old"));
        assert!(g.reverted.is_empty());
    }

    #[test]
    fn direct_commit_reverts_match_by_id() {
        let commits = [
            c(
                "bbbbbbb2",
                &["aaaaaaa1"],
                "Revert \"Oops\"\n\nThis reverts commit aaaaaaa.",
            ),
            c("aaaaaaa1", &["base"], "Oops"),
        ];
        let g = group(commits.to_vec(), "bbbbbbb2");
        assert!(g.items.is_empty());
        assert_eq!(g.reverted.len(), 2);
    }
}
