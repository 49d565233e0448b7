//! Notifications people read in a chat room: the notification turned into
//! a [`Document`] (the outcome, what failed, the changelog with user-visible
//! changes first and the others folded), which [`slack`] and [`matrix`]
//! render in their services' markup. Pure: no I/O, no clock.
//!
//! Everything that comes from commits (notes, titles, repository names) or
//! from the cluster (messages, log tails) is plain text here, and each
//! renderer escapes it for its markup.

pub mod matrix;
pub mod slack;

use crate::api::PackitRelease;
use crate::api::changelog::{Entry, RepoChangelog};
use crate::api::checks::{CheckResult, CheckVerdict, JobResult, JobVerdict};
use crate::api::release::NotificationDelivery;
use crate::plan::ReleasePhase;

use super::Notification;

/// A changelog entry's note is cut here: a long release note belongs in the
/// changelog, not in a chat line.
const MAX_NOTE_CHARS: usize = 300;
/// A smoke test's log tail is cut to its last characters.
const MAX_LOG_CHARS: usize = 1000;

/// A run of inline text. Renderers escape every string they get.
#[derive(Clone, Debug, PartialEq)]
pub enum Span {
    Text(String),
    Strong(String),
    Code(String),
    /// Rendered as a link only when `url` is `http(s)://` and harmless in
    /// the markup; as its text otherwise.
    Link {
        text: String,
        url: String,
    },
}

/// One line of spans.
pub type Line = Vec<Span>;

/// What the checks recorded on a release say about a failed verification:
/// the failed metric checks (name, value, bounds), the failed smoke tests
/// and their log tails, and a deploy the API server refused. The reason in
/// words is the notification's message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Failure {
    pub checks: Vec<CheckVerdict>,
    pub jobs: Vec<JobVerdict>,
    pub deploy_error: Option<String>,
}

impl Failure {
    /// The failed checks recorded for the environment `entry` reports, when
    /// it reports a failure (a rollback, or a failed verification).
    pub fn of(release: &PackitRelease, entry: &NotificationDelivery) -> Failure {
        if !is_failure(entry.phase) {
            return Failure::default();
        }
        let progress = release.status.as_ref().and_then(|s| {
            s.environments
                .iter()
                .find(|e| Some(&e.name) == entry.environment.as_ref())
        });
        let Some(progress) = progress else {
            return Failure::default();
        };
        Failure {
            checks: progress
                .checks
                .iter()
                .filter(|c| c.result == CheckResult::Fail)
                .cloned()
                .collect(),
            jobs: progress
                .jobs
                .iter()
                .filter(|j| j.result == JobResult::Fail)
                .cloned()
                .collect(),
            deploy_error: progress.deploy_error.clone(),
        }
    }
}

fn is_failure(phase: ReleasePhase) -> bool {
    matches!(
        phase,
        ReleasePhase::StagingFailed | ReleasePhase::RolledBack | ReleasePhase::Failed
    )
}

/// The message, independent of markup.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// One line, e.g. `⏪ train-1 rolled back in production`.
    pub title: String,
    /// Label and value: phase, environment, release, deployment, commits.
    pub facts: Vec<(&'static str, Line)>,
    /// The phase's message; for a failure, why.
    pub message: String,
    pub failed: bool,
    /// What failed, one line per check.
    pub failures: Vec<Line>,
    /// Smoke tests' log tails: the test's name and the tail.
    pub logs: Vec<(String, String)>,
    pub repositories: Vec<RepoSection>,
    /// About the changelog as a whole: cut, or parts not computed.
    pub changelog_notes: Vec<String>,
    /// Where to read what a message had to leave out.
    pub more: String,
}

/// One repository's part of the changelog.
#[derive(Clone, Debug, PartialEq)]
pub struct RepoSection {
    /// Name, range and commit count.
    pub heading: Line,
    /// Warnings, or why the range could not be read.
    pub notes: Vec<String>,
    /// Changes end users notice, shown.
    pub user: Vec<Line>,
    /// Changes not visible to end users and commits pushed without a pull
    /// request: folded.
    pub folded: Vec<Line>,
}

impl RepoSection {
    /// The summary line of the folded part.
    pub fn folded_summary(&self) -> String {
        let n = self.folded.len();
        let s = if n == 1 { "" } else { "s" };
        format!("{n} change{s} not visible to end users")
    }
}

impl Document {
    pub fn of(n: &Notification, failure: &Failure) -> Document {
        let env = n.environment.as_deref().unwrap_or("");
        let (glyph, what) = match n.phase {
            ReleasePhase::Staging | ReleasePhase::Production => {
                ("🚀", format!("deployed to {env}"))
            }
            ReleasePhase::AwaitingApproval => ("✋", format!("awaits approval for {env}")),
            ReleasePhase::Released => ("✅", format!("released to {env}")),
            ReleasePhase::RolledBack => ("⏪", format!("rolled back in {env}")),
            ReleasePhase::StagingFailed | ReleasePhase::Failed => {
                ("❌", format!("failed verification in {env}"))
            }
            other => ("ℹ️", format!("{other:?}")),
        };
        let title = format!("{glyph} {} {}", n.release, what.trim_end());
        let mut facts = vec![
            ("Phase", vec![Span::Code(format!("{:?}", n.phase))]),
            ("Release", vec![Span::Code(n.release.clone())]),
            (
                "Deployment",
                vec![Span::Code(format!("{}/{}", n.namespace, n.deployment))],
            ),
        ];
        if let Some(env) = &n.environment {
            facts.insert(1, ("Environment", vec![Span::Code(env.clone())]));
        }
        let commits = commits(n);
        if !commits.is_empty() {
            facts.push(("Commits", commits));
        }
        let failed = is_failure(n.phase);
        let (failures, logs) = if failed {
            failure_lines(failure)
        } else {
            Default::default()
        };
        let (repositories, changelog_notes) = match &n.changelog {
            Some(log) => {
                let mut notes: Vec<String> = log
                    .errors
                    .iter()
                    .map(|e| format!("Not computed: {e}"))
                    .collect();
                if log.truncated {
                    notes.push(
                        "The stored changelog was cut to stay within the object's size.".into(),
                    );
                }
                (log.repositories.iter().map(repo_section).collect(), notes)
            }
            None => (Vec::new(), Vec::new()),
        };
        Document {
            title,
            facts,
            message: n.message.clone(),
            failed,
            failures,
            logs,
            repositories,
            changelog_notes,
            more: format!("kubectl packit changelog {} -n {}", n.release, n.namespace),
        }
    }

    /// Changelog entries (shown and folded) in the document.
    pub fn entries(&self) -> usize {
        self.repositories
            .iter()
            .map(|r| r.user.len() + r.folded.len())
            .sum()
    }
}

/// `service abc123def456`, and the included repositories of each.
fn commits(n: &Notification) -> Line {
    let mut line = Vec::new();
    for (i, c) in n.components.iter().enumerate() {
        if i > 0 {
            line.push(Span::Text(", ".into()));
        }
        line.push(Span::Text(format!("{} ", c.name)));
        line.push(Span::Code(short(&c.source.commit).to_owned()));
        for inc in &c.includes {
            let name = inc.name.clone().unwrap_or_else(|| last_part(&inc.url));
            line.push(Span::Text(format!(" + {name} ")));
            line.push(Span::Code(short(&inc.commit).to_owned()));
        }
    }
    line
}

fn last_part(url: &str) -> String {
    let name = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(url);
    name.strip_suffix(".git").unwrap_or(name).to_owned()
}

fn failure_lines(f: &Failure) -> (Vec<Line>, Vec<(String, String)>) {
    let mut lines = Vec::new();
    if let Some(e) = &f.deploy_error {
        lines.push(vec![Span::Text(format!("deploy refused: {}", one_line(e)))]);
    }
    for c in &f.checks {
        let mut line = vec![Span::Text("metric ".into()), Span::Code(c.name.clone())];
        match c.value {
            Some(v) => line.extend([
                Span::Text(": value ".into()),
                Span::Code(v.to_string()),
                Span::Text(", bounds ".into()),
                Span::Code(c.bounds.clone()),
            ]),
            None => line.extend([
                Span::Text(format!(": no value ({})", one_line(&c.message))),
                Span::Text(", bounds ".into()),
                Span::Code(c.bounds.clone()),
            ]),
        }
        line.push(Span::Text(format!(
            " ({} failed in a row, {} measurement{})",
            c.consecutive_failures,
            c.measurements,
            if c.measurements == 1 { "" } else { "s" }
        )));
        lines.push(line);
    }
    let mut logs = Vec::new();
    for j in &f.jobs {
        let mut line = vec![
            Span::Text("smoke test ".into()),
            Span::Code(j.name.clone()),
            Span::Text(" (Job ".into()),
            Span::Code(j.job.clone()),
            Span::Text(")".into()),
        ];
        if !j.message.is_empty() {
            line.push(Span::Text(format!(": {}", one_line(&j.message))));
        }
        lines.push(line);
        if !j.log_tail.trim().is_empty() {
            logs.push((j.name.clone(), tail(j.log_tail.trim_end(), MAX_LOG_CHARS)));
        }
    }
    (lines, logs)
}

fn repo_section(repo: &RepoChangelog) -> RepoSection {
    let range = if repo.from.is_empty() {
        format!("up to {}", short(&repo.to))
    } else {
        format!("{}..{}", short(&repo.from), short(&repo.to))
    };
    let mut heading = vec![
        Span::Strong(one_line(&repo.name)),
        Span::Text(" ".into()),
        Span::Code(range),
    ];
    if repo.error.is_none() {
        let s = if repo.commits == 1 { "" } else { "s" };
        heading.push(Span::Text(format!(", {} commit{s}", repo.commits)));
    }
    let mut notes: Vec<String> = repo.warnings.iter().map(|w| one_line(w)).collect();
    if let Some(e) = &repo.error {
        notes.push(format!(
            "The changelog could not be computed: {}",
            one_line(e)
        ));
    }
    RepoSection {
        heading,
        notes,
        user: repo.user.iter().map(entry_line).collect(),
        folded: repo
            .internal
            .iter()
            .chain(&repo.direct)
            .map(entry_line)
            .collect(),
    }
}

/// `note (#N)`, as in the Markdown changelog.
fn entry_line(e: &Entry) -> Line {
    let reference = match e.pr {
        Some(n) => format!("#{n}"),
        None => short(&e.commit).to_owned(),
    };
    let reference = match &e.link {
        Some(url) => Span::Link {
            text: reference,
            url: url.clone(),
        },
        None => Span::Text(reference),
    };
    vec![
        Span::Text(format!("{} (", cut(&one_line(&e.note), MAX_NOTE_CHARS))),
        reference,
        Span::Text(")".into()),
    ]
}

/// The first 12 characters of a commit id.
fn short(id: &str) -> &str {
    id.char_indices().nth(12).map_or(id, |(i, _)| &id[..i])
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters of `s`, with `…` when cut.
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if s.chars().count() > max => format!("{}…", &s[..i]),
        _ => s.to_owned(),
    }
}

/// At most the last `max` characters of `s`, with `…` when cut.
fn tail(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    let skip = n - max + 1;
    let start = s.char_indices().nth(skip).map_or(s.len(), |(i, _)| i);
    format!("…{}", &s[start..])
}

/// Whether `url` may become a link: `http(s)://` and none of the characters
/// that end a link in either markup.
fn linkable(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>|\"'`".contains(c))
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::api::changelog::Entry;
    use crate::api::deployment::Visibility;
    use crate::api::release::{
        ChangelogStatus, DeliveryState, EnvironmentProgress, PackitReleaseSpec,
        PackitReleaseStatus, ReleaseComponent, Revision, Trigger,
    };

    fn entry(pr: u64, note: &str, visibility: Visibility) -> Entry {
        Entry {
            pr: Some(pr),
            link: Some(format!("https://github.com/packit/packit/pull/{pr}")),
            title: note.into(),
            note: note.into(),
            visibility,
            commit: format!("{pr:040x}"),
            author: "a".into(),
            commits: Vec::new(),
        }
    }

    /// `repos` copies of a repository with `entries` user-visible and
    /// internal changes each, every user-visible note padded with
    /// `padding`: more than any message may carry.
    pub(crate) fn huge_changelog(entries: usize, repos: usize, padding: &str) -> ChangelogStatus {
        let mut log = changelog(entries, entries);
        for e in log.repositories[0].user.iter_mut() {
            e.note = format!("{} {padding}", e.note);
        }
        let repo = log.repositories[0].clone();
        log.repositories = (0..repos)
            .map(|i| RepoChangelog {
                name: format!("repo-{i}"),
                ..repo.clone()
            })
            .collect();
        log
    }

    /// The first repository of the release's changelog, to change.
    pub(crate) fn first_repository(release: &mut PackitRelease) -> &mut RepoChangelog {
        let status = release.status.as_mut().expect("a status");
        &mut status.changelog.as_mut().expect("a changelog").repositories[0]
    }

    pub(crate) fn changelog(user: usize, internal: usize) -> ChangelogStatus {
        let mut repo = RepoChangelog {
            name: "packit-service".into(),
            url: Some("https://github.com/packit/packit-service".into()),
            from: "a".repeat(40),
            to: "b".repeat(40),
            commits: 7,
            ..Default::default()
        };
        repo.user = (0..user)
            .map(|i| {
                entry(
                    100 + i as u64,
                    &format!("User-visible change {i}"),
                    Visibility::User,
                )
            })
            .collect();
        repo.internal = (0..internal)
            .map(|i| {
                entry(
                    500 + i as u64,
                    &format!("Internal change {i}"),
                    Visibility::Internal,
                )
            })
            .collect();
        ChangelogStatus {
            markdown: "# Changelog".into(),
            repositories: vec![repo],
            ..Default::default()
        }
    }

    fn verdict(name: &str, result: CheckResult, value: Option<f64>) -> CheckVerdict {
        CheckVerdict {
            name: name.into(),
            result,
            value,
            bounds: "max 0.05".into(),
            consecutive_failures: 3,
            measurements: 12,
            measured_at: Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap(),
            message: String::new(),
        }
    }

    use chrono::Utc;

    /// A release rolled back in production by a failed metric check and a
    /// failed smoke test, and its `RolledBack` outbox entry.
    pub(crate) fn rolled_back() -> (PackitRelease, NotificationDelivery) {
        let mut release = PackitRelease::new(
            "train-1",
            PackitReleaseSpec {
                deployment: "train".into(),
                trigger: Trigger::Schedule,
                components: vec![ReleaseComponent {
                    name: "service".into(),
                    source: Revision {
                        url: "https://github.com/packit/packit-service".into(),
                        name: None,
                        commit: "c".repeat(40),
                        previous_commit: None,
                    },
                    includes: vec![Revision {
                        url: "https://github.com/packit/ogr.git".into(),
                        name: None,
                        commit: "d".repeat(40),
                        previous_commit: None,
                    }],
                }],
                previous: None,
                images: None,
            },
        );
        release.status = Some(PackitReleaseStatus {
            changelog: Some(changelog(2, 3)),
            environments: vec![
                EnvironmentProgress {
                    name: "staging".into(),
                    checks: vec![verdict("staging-only", CheckResult::Fail, Some(9.0))],
                    ..Default::default()
                },
                EnvironmentProgress {
                    name: "production".into(),
                    checks: vec![
                        verdict("error-rate", CheckResult::Fail, Some(0.31)),
                        verdict("latency", CheckResult::Pass, Some(0.01)),
                    ],
                    jobs: vec![JobVerdict {
                        name: "checkout".into(),
                        job: "train-1-production-checkout".into(),
                        result: JobResult::Fail,
                        started_at: Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap(),
                        finished_at: None,
                        pod: None,
                        message: "BackoffLimitExceeded".into(),
                        log_tail: "step 1 ok\nstep 2: <script>alert(1)</script> failed".into(),
                    }],
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        let entry = NotificationDelivery {
            id: "0123456789abcdef0123456789abcdef".into(),
            webhook: 0,
            target: "https://hooks.example.com".into(),
            url_digest: "x".into(),
            phase: ReleasePhase::RolledBack,
            environment: Some("production".into()),
            message: "metric error-rate = 0.31 > max 0.05 (3 of 3 measurements); production rolled back to train-0".into(),
            at: Utc.with_ymd_and_hms(2026, 3, 2, 10, 5, 0).unwrap(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
        };
        (release, entry)
    }

    pub(crate) fn document(release: &PackitRelease, entry: &NotificationDelivery) -> Document {
        let n = Notification::of(release, "packit", entry);
        Document::of(&n, &Failure::of(release, entry))
    }

    #[test]
    fn a_rollback_names_the_failed_checks_of_its_environment() {
        let (release, entry) = rolled_back();
        let failure = Failure::of(&release, &entry);
        let names: Vec<&str> = failure.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["error-rate"], "failed ones, of production only");
        assert_eq!(failure.jobs.len(), 1);
        let doc = document(&release, &entry);
        assert_eq!(doc.title, "⏪ train-1 rolled back in production");
        assert!(doc.failed);
        assert_eq!(
            doc.failures[0],
            vec![
                Span::Text("metric ".into()),
                Span::Code("error-rate".into()),
                Span::Text(": value ".into()),
                Span::Code("0.31".into()),
                Span::Text(", bounds ".into()),
                Span::Code("max 0.05".into()),
                Span::Text(" (3 failed in a row, 12 measurements)".into()),
            ]
        );
        assert_eq!(doc.logs[0].0, "checkout");
        let facts: Vec<&str> = doc.facts.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            facts,
            ["Phase", "Environment", "Release", "Deployment", "Commits"]
        );
        assert!(doc.facts[4].1.contains(&Span::Text(" + ogr ".into())));
    }

    #[test]
    fn a_deployment_carries_no_failure_and_folds_internal_changes() {
        let (release, mut entry) = rolled_back();
        entry.phase = ReleasePhase::Staging;
        entry.environment = Some("staging".into());
        assert_eq!(Failure::of(&release, &entry), Failure::default());
        let doc = document(&release, &entry);
        assert_eq!(doc.title, "🚀 train-1 deployed to staging");
        assert!(!doc.failed && doc.failures.is_empty());
        let repo = &doc.repositories[0];
        assert_eq!((repo.user.len(), repo.folded.len()), (2, 3));
        assert_eq!(repo.folded_summary(), "3 changes not visible to end users");
    }

    #[test]
    fn a_release_awaiting_approval_says_where() {
        let (release, mut entry) = rolled_back();
        entry.phase = ReleasePhase::AwaitingApproval;
        entry.environment = Some("production".into());
        entry.message = "waiting for approval to deploy to production".into();
        let doc = document(&release, &entry);
        assert_eq!(doc.title, "✋ train-1 awaits approval for production");
        assert!(!doc.failed && doc.failures.is_empty());
    }

    #[test]
    fn cuts_count_characters() {
        assert_eq!(cut("ééééé", 3), "éé…");
        assert_eq!(cut("ééé", 3), "ééé");
        assert_eq!(tail("abcdef", 4), "…def");
        assert!(!linkable("https://x/a|b"));
        assert!(!linkable("javascript:alert(1)"));
        assert!(linkable("https://github.com/packit/packit/pull/1"));
    }
}
