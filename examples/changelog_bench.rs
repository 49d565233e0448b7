//! Changelog benchmark: builds a synthetic history with `git fast-import`
//! (PR merges with branch commits, squash merges, direct pushes, reverts,
//! release notes and trailers), then times the changelog for a range of the
//! last `--range` commits and for the whole history, next to `git log` over
//! the same range and `git-cliff` (when installed) producing a changelog for
//! it. Time and peak memory come from `/usr/bin/time`.
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
}

fn parse_args() -> Result<Option<Args>> {
    let mut args = std::env::args().skip(1);
    let mut out = Args {
        commits: 100_000,
        range: 5_000,
        dir: std::env::temp_dir().join("packit-changelog-bench"),
        cliff: None,
    };
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--commits" => out.commits = value()?.parse()?,
            "--range" => out.range = value()?.parse()?,
            "--dir" => out.dir = value()?.into(),
            "--git-cliff" => out.cliff = Some(value()?.into()),
            // Internal: one measured changelog run, in a child process.
            "--run" => {
                let (path, from, to) = (value()?, value()?, value()?);
                run_changelog(&path, &from, &to)?;
                return Ok(None);
            }
            _ => bail!(
                "unknown argument {a}; use --commits N --range N [--dir D] [--git-cliff PATH]"
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
    changelog::build(
        &mut repo,
        &walked.commits,
        &changelog::Rules::new(&Default::default())?,
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

struct Measure {
    seconds: f64,
    max_rss_kb: u64,
    output_bytes: usize,
}

fn measure(program: &Path, args: &[&str], cwd: &Path) -> Result<Measure> {
    let report = cwd.join(".bench-time");
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(&report)
        .arg(program)
        .args(args)
        .current_dir(cwd)
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    ensure!(
        out.status.success(),
        "{} {} failed: {}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&report)?;
    let last = text.lines().last().context("no /usr/bin/time report")?;
    let (secs, rss) = last.split_once(' ').context("bad /usr/bin/time report")?;
    Ok(Measure {
        seconds: secs.parse()?,
        max_rss_kb: rss.trim().parse()?,
        output_bytes: out.stdout.len(),
    })
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
    for (label, from) in [("range", "range-start"), ("whole history", "first")] {
        let spec = format!("{from}..main");
        let n = git(dir, &["rev-list", "--count", &spec])?;
        println!("\n{label}: {n} commits ({spec})");
        println!(
            "{:<22} {:>9} {:>12} {:>10}",
            "tool", "seconds", "peak RSS MiB", "output KiB"
        );
        let ours = measure(&me, &["--run", d, from, "main"], dir)?;
        let log = measure(
            &git_bin,
            &["log", "--format=%H%x00%P%x00%an%x00%at%x00%B%x00", &spec],
            dir,
        )?;
        let mut rows = vec![("packit-operator", &ours), ("git log --format", &log)];
        let cliff_m = match &cliff {
            Some(c) => Some(measure(c, &[&spec], dir)?),
            None => None,
        };
        if let Some(m) = &cliff_m {
            rows.push(("git-cliff", m));
        }
        for (name, m) in &rows {
            println!(
                "{name:<22} {:>9.2} {:>12.1} {:>10.1}",
                m.seconds,
                m.max_rss_kb as f64 / 1024.0,
                m.output_bytes as f64 / 1024.0
            );
        }
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        println!(
            "ratio time packit-operator/git log: {:.2}, memory: {:.2}",
            ratio(ours.seconds, log.seconds),
            ratio(ours.max_rss_kb as f64, log.max_rss_kb as f64)
        );
        match &cliff_m {
            Some(m) => println!(
                "ratio time git-cliff/packit-operator: {:.2}, memory: {:.2}",
                ratio(m.seconds, ours.seconds),
                ratio(m.max_rss_kb as f64, ours.max_rss_kb as f64)
            ),
            None => println!(
                "git-cliff not found (cargo install git-cliff --locked --root ~/.cache/packit-operator/git-cliff)"
            ),
        }
    }
    Ok(())
}
