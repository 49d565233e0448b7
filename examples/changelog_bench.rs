//! Changelog benchmark: builds a synthetic history with `git fast-import`
//! (PR merges with branch commits, squash merges, direct pushes, reverts,
//! release notes and trailers), then times the changelog for a range of the
//! last `--range` commits and for the whole history, next to `git log` over
//! the same range and `git-cliff` (when installed) producing a changelog for
//! it. Each tool runs `--runs` times (default 3); the median wall time is
//! shown, with the CPU time and peak RSS from `/usr/bin/time` when it is
//! installed. It
//! prints figures and asserts none of them.
//!
//! `cargo run --release --example changelog_bench -- --commits 100000 --range 5000`

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

struct Args {
    commits: usize,
    range: usize,
    dir: PathBuf,
    cliff: Option<PathBuf>,
    runs: usize,
}

fn parse_args() -> Result<Option<Args>> {
    let mut args = std::env::args().skip(1);
    let mut out = Args {
        commits: 100_000,
        range: 5_000,
        dir: std::env::temp_dir().join("packit-changelog-bench"),
        cliff: None,
        runs: 3,
    };
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--commits" => out.commits = value()?.parse()?,
            "--range" => out.range = value()?.parse()?,
            "--dir" => out.dir = value()?.into(),
            "--git-cliff" => out.cliff = Some(value()?.into()),
            "--runs" => out.runs = value()?.parse()?,
            // Internal: one measured changelog run, in a child process.
            "--run" => {
                let (path, from, to) = (value()?, value()?, value()?);
                run_changelog(&path, &from, &to)?;
                return Ok(None);
            }
            _ => bail!(
                "unknown argument {a}; use --commits N --range N [--runs N] [--dir D] [--git-cliff PATH]"
            ),
        }
    }
    ensure!(out.range < out.commits, "--range must be below --commits");
    Ok(Some(out))
}

fn run_changelog(path: &str, from: &str, to: &str) -> Result<()> {
    use packit_operator::changelog::{self, RepoRange};
    let range = RepoRange {
        name: "bench".into(),
        url: Some("https://github.com/example/bench".into()),
        path: path.into(),
        from: Some(from.into()),
        to: to.into(),
        limit: None,
    };
    let t = std::time::Instant::now();
    let walked = changelog::walk::walk(&range)?;
    let walk_time = t.elapsed();
    let mut repo = changelog::RepoChangelog {
        name: range.name.clone(),
        url: range.url.clone(),
        from: walked.from,
        to: walked.to,
        ..Default::default()
    };
    let trees = changelog::walk::Trees::open(&range.path).context("opening the trees")?;
    changelog::build(
        &mut repo,
        walked.commits,
        &changelog::Rules::new(&Default::default())?,
        &walked.templates,
        &trees,
    );
    let build_time = t.elapsed() - walk_time;
    let md = changelog::render_markdown(&changelog::Changelog {
        repositories: vec![repo],
    });
    if std::env::var_os("BENCH_PHASES").is_some() {
        eprintln!(
            "walk {walk_time:?}, build {build_time:?}, render {:?}",
            t.elapsed() - walk_time - build_time
        );
    }
    std::io::stdout().write_all(md.as_bytes())?;
    Ok(())
}

/// A fast-import stream being written.
struct Stream {
    s: Vec<u8>,
    mark: usize,
    time: i64,
}

impl Stream {
    fn commit(&mut self, msg: &str, parents: &[usize], branch: &str) -> usize {
        self.mark += 1;
        self.time += 60;
        let (mark, time) = (self.mark, self.time);
        let who = format!("Dev {} <dev{}@example.invalid>", mark % 17, mark % 17);
        let _ = write!(
            self.s,
            "commit refs/heads/{branch}\nmark :{mark}\nauthor {who} {time} +0000\ncommitter {who} {time} +0000\ndata {}\n{msg}\n",
            msg.len()
        );
        for (i, p) in parents.iter().enumerate() {
            let _ = writeln!(self.s, "{} :{p}", if i == 0 { "from" } else { "merge" });
        }
        // A small file change so trees differ.
        let _ = write!(
            self.s,
            "M 644 inline src/f{}.txt\ndata 8\n{:08}\n\n",
            mark % 500,
            mark
        );
        mark
    }
}

/// Writes the fast-import stream of at least `commits` commits, tagging
/// `range-start` so that `range-start..main` holds about `range` commits
/// and `first` at the root; returns it and the commit count.
fn history(commits: usize, range: usize) -> (Vec<u8>, usize) {
    let mut st = Stream {
        s: Vec::with_capacity(commits * 300),
        mark: 0,
        time: 1_600_000_000,
    };
    let mut main: Option<usize> = None;
    // (commits before the PR, mainline mark before it)
    let mut boundaries: Vec<(usize, usize)> = Vec::new();
    let mut pr = 0usize;
    while st.mark < commits {
        pr += 1;
        boundaries.push((st.mark, main.unwrap_or(0)));
        let base: Vec<usize> = main.into_iter().collect();
        main = Some(match pr % 10 {
            // Direct push.
            0 => st.commit(
                &format!("Fix typo in docs {pr}\n\nSigned-off-by: Dev <dev@example.invalid>"),
                &base,
                "main",
            ),
            // Squash merges with release notes.
            1..=3 => {
                let kind = ["feat", "fix", "chore"][pr % 3];
                st.commit(
                    &format!(
                        "{kind}: change number {pr} (#{pr})\n\nDescription.\n\nRELEASE NOTES BEGIN\nChange {pr} for users.\nRELEASE NOTES END\n\nReviewed-by: Reviewer"
                    ),
                    &base,
                    "main",
                )
            }
            // A revert of the previous squash.
            4 => st.commit(
                &format!(
                    "Revert \"{} change number {} (#{})\" (#{pr})\n\nThis reverts it.",
                    ["feat:", "fix:", "chore:"][(pr - 1) % 3],
                    pr - 1,
                    pr - 1
                ),
                &base,
                "main",
            ),
            // GitHub merges with 1-4 branch commits.
            _ => {
                let mut tip = base.clone();
                for k in 0..(1 + pr % 4) {
                    let c = st.commit(
                        &format!(
                            "Work {k} on topic {pr}\n\nSigned-off-by: Dev <dev@example.invalid>"
                        ),
                        &tip,
                        "topic",
                    );
                    tip = vec![c];
                }
                let mut parents = base.clone();
                parents.extend(tip);
                st.commit(
                    &format!("Merge pull request #{pr} from dev/topic-{pr}\n\nAdd feature {pr}"),
                    &parents,
                    "main",
                )
            }
        });
    }
    let total = st.mark;
    let from = boundaries
        .iter()
        .rev()
        .find(|(count, _)| total - count >= range)
        .map_or(1, |(_, m)| (*m).max(1));
    let _ = write!(st.s, "reset refs/tags/range-start\nfrom :{from}\n\n");
    let _ = write!(st.s, "reset refs/tags/first\nfrom :1\n\n");
    (st.s, total)
}

/// One tool on one range: the median wall time of `runs` runs, the median
/// CPU time (user + system: the changelog reads on several cores) and the
/// largest peak RSS among them.
struct Measure {
    seconds: f64,
    /// `None` without `/usr/bin/time`, as is `max_rss_kb`.
    cpu_seconds: Option<f64>,
    max_rss_kb: Option<u64>,
    output_bytes: usize,
}

const TIME: &str = "/usr/bin/time";

fn measure(program: &Path, args: &[&str], cwd: &Path, runs: usize) -> Result<Measure> {
    let report = cwd.join(".bench-time");
    let with_time = Path::new(TIME).is_file();
    let mut seconds = Vec::new();
    let mut cpu = Vec::new();
    let mut max_rss_kb = None;
    let mut output_bytes = 0;
    for _ in 0..runs.max(1) {
        let mut cmd = if with_time {
            let mut c = Command::new(TIME);
            c.arg("-f")
                .arg("%M %U %S")
                .arg("-o")
                .arg(&report)
                .arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args).current_dir(cwd).stderr(Stdio::piped());
        let t = std::time::Instant::now();
        let out = cmd
            .output()
            .with_context(|| format!("running {}", program.display()))?;
        seconds.push(t.elapsed().as_secs_f64());
        ensure!(
            out.status.success(),
            "{} {} failed: {}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        output_bytes = out.stdout.len();
        if with_time {
            let text = std::fs::read_to_string(&report)?;
            let last = text.lines().last().context("no /usr/bin/time report")?;
            let mut fields = last.split_whitespace();
            let mut next = || fields.next().context("bad /usr/bin/time report");
            let rss: u64 = next()?.parse()?;
            let (user, sys): (f64, f64) = (next()?.parse()?, next()?.parse()?);
            max_rss_kb = Some(max_rss_kb.unwrap_or(0).max(rss));
            cpu.push(user + sys);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    Ok(Measure {
        seconds: median(seconds).unwrap_or_default(),
        cpu_seconds: median(cpu),
        max_rss_kb,
        output_bytes,
    })
}

fn mib(m: &Measure) -> String {
    m.max_rss_kb
        .map_or_else(|| "-".to_owned(), |kb| format!("{:.1}", kb as f64 / 1024.0))
}

/// `a / b` for the ratio lines, or "-" when a figure is missing.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".to_owned(),
    }
}

fn rss(m: &Measure) -> Option<f64> {
    m.max_rss_kb.map(|kb| kb as f64)
}

/// git-cliff on PATH, else where `make bench` installs it.
fn find_git_cliff() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("git-cliff"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let cache = std::env::var_os("PACKIT_CACHE")
            .map(PathBuf::from)
            .or_else(|| {
                Some(PathBuf::from(std::env::var_os("HOME")?).join(".cache/packit-operator"))
            })?;
        let p = cache.join("git-cliff/node_modules/git-cliff-linux-x64/bin/git-cliff");
        p.is_file().then_some(p)
    })
}

/// How many commits git-cliff processes for `spec`: those in its JSON
/// context (one object per release, with its commits) plus those its
/// default configuration skips as not conventional, which it counts in a
/// warning.
fn cliff_commits(cliff: &Path, dir: &Path, spec: &str) -> Result<usize> {
    let out = Command::new(cliff)
        .args(["--context", spec])
        .current_dir(dir)
        .output()?;
    ensure!(out.status.success(), "git-cliff --context {spec} failed");
    let releases: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    let listed: usize = releases
        .iter()
        .filter_map(|r| r["commits"].as_array())
        .map(Vec::len)
        .sum();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let skipped = stderr
        .split_once(" commit(s) were skipped")
        .and_then(|(before, _)| before.rsplit(|c: char| !c.is_ascii_digit()).next())
        .map_or(Ok(0), str::parse::<usize>)?;
    Ok(listed + skipped)
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git").current_dir(dir).args(args).output()?;
    ensure!(out.status.success(), "git {} failed", args.join(" "));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() -> Result<()> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    let dir = &args.dir;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    git(
        dir,
        &["init", "--quiet", "--bare", "--initial-branch", "main"],
    )?;
    let started = std::time::Instant::now();
    let (stream, total) = history(args.commits, args.range);
    let mut child = Command::new("git")
        .current_dir(dir)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(&stream)?;
    ensure!(child.wait()?.success(), "git fast-import failed");
    // As a fetched cache would be: packed, with a commit-graph.
    git(dir, &["gc", "--quiet"])?;
    git(dir, &["commit-graph", "write", "--reachable"])?;
    println!(
        "history: {total} commits in {} ({:.1}s to build)",
        dir.display(),
        started.elapsed().as_secs_f64()
    );

    let me = std::env::current_exe()?;
    let git_bin = PathBuf::from("git");
    let cliff = args.cliff.clone().or_else(find_git_cliff);
    let d = dir.to_str().context("non-UTF-8 bench dir")?;
    println!(
        "median of {} runs per tool; peak RSS {}",
        args.runs,
        if Path::new(TIME).is_file() {
            "from /usr/bin/time"
        } else {
            "not measured (no /usr/bin/time)"
        }
    );
    let mut summary = Vec::new();
    for (label, from) in [("range", "range-start"), ("whole history", "first")] {
        let spec = format!("{from}..main");
        let n: usize = git(dir, &["rev-list", "--count", &spec])?.parse()?;
        println!("\n{label}: {n} commits ({spec})");
        println!(
            "{:<18} {:>9} {:>9} {:>13} {:>11}",
            "tool", "seconds", "CPU s", "peak RSS MiB", "output KiB"
        );
        let ours = measure(&me, &["--run", d, from, "main"], dir, args.runs)?;
        let log = measure(
            &git_bin,
            &["log", "--format=%H%x00%P%x00%an%x00%at%x00%B%x00", &spec],
            dir,
            args.runs,
        )?;
        // git-cliff takes the range as its positional argument and walks
        // only it (checked below from its JSON context).
        let cliff_m = match &cliff {
            Some(c) => {
                let listed = cliff_commits(c, dir, &spec)?;
                ensure!(
                    listed == n,
                    "git-cliff saw {listed} commits of {spec}, not {n}"
                );
                Some(measure(c, &[&spec], dir, args.runs)?)
            }
            None => None,
        };
        let mut rows = vec![("packit-operator", &ours), ("git log --format", &log)];
        if let Some(m) = &cliff_m {
            rows.push(("git-cliff", m));
        }
        for (name, m) in &rows {
            println!(
                "{name:<18} {:>9.3} {:>9} {:>13} {:>11.1}",
                m.seconds,
                m.cpu_seconds
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}")),
                mib(m),
                m.output_bytes as f64 / 1024.0
            );
        }
        let line = format!(
            "{label} ({n} commits): packit-operator/git log time {}, CPU {}, memory {}; git-cliff/packit-operator time {}, memory {}",
            ratio(Some(ours.seconds), Some(log.seconds)),
            ratio(ours.cpu_seconds, log.cpu_seconds),
            ratio(rss(&ours), rss(&log)),
            ratio(cliff_m.as_ref().map(|m| m.seconds), Some(ours.seconds)),
            ratio(cliff_m.as_ref().and_then(rss), rss(&ours)),
        );
        println!("{line}");
        summary.push(line);
    }
    println!("\nratios (below 1 for packit-operator/git log is faster than git log):");
    for line in summary {
        println!("  {line}");
    }
    if cliff.is_none() {
        println!(
            "git-cliff not found: `make bench` installs it from npm, or pass --git-cliff PATH"
        );
    }
    Ok(())
}
