//! Git repositories rebuilt from the commit metadata in
//! `../shared/fixtures/packit-history/`: the same messages, parents, authors
//! and dates, with empty trees. Parents outside a fixture's range become a
//! chain of stub commits whose tip is tagged `from`, so `from..to` is
//! exactly the fixture's commits.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

pub const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/packit-history"
);

#[derive(serde::Deserialize)]
pub struct Record {
    pub sha: String,
    pub parents: Vec<String>,
    pub author_name: String,
    pub author_date: String,
    pub committer_date: String,
    pub message: String,
}

/// A rebuilt repository (removed when dropped); tags `from` and `to` mark
/// the range and branch `main` points at `to`.
pub struct Rebuilt {
    dir: TempDir,
    /// Fixture SHA to rebuilt SHA.
    pub ids: HashMap<String, String>,
    pub records: Vec<Record>,
}

impl Rebuilt {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The rebuilt commit of a fixture commit, by (a prefix of) its SHA.
    pub fn id(&self, fixture_sha: &str) -> Option<&str> {
        self.ids
            .iter()
            .find(|(k, _)| k.starts_with(fixture_sha))
            .map(|(_, v)| v.as_str())
    }
}

/// All fixture files, sorted by name.
pub fn fixture_files() -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(FIXTURES)
        .with_context(|| format!("reading {FIXTURES}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    Ok(files)
}

pub fn read_records(file: &Path) -> Result<Vec<Record>> {
    let text = std::fs::read_to_string(file)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).context("parsing a fixture record"))
        .collect()
}

fn git_time(iso: &str) -> Result<String> {
    let t = chrono::DateTime::parse_from_rfc3339(iso).with_context(|| format!("date {iso}"))?;
    Ok(format!("{} {}", t.timestamp(), t.format("%z")))
}

fn data(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("data {}\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.push(b'\n');
}

/// Rebuilds the fixture `name` (file name without `.jsonl`).
pub fn rebuild(name: &str) -> Result<Rebuilt> {
    let records = read_records(&Path::new(FIXTURES).join(format!("{name}.jsonl")))?;
    ensure!(!records.is_empty(), "{name} is empty");
    let in_range: HashMap<&str, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.sha.as_str(), i))
        .collect();
    let mut boundary: Vec<&str> = Vec::new();
    for r in &records {
        for p in &r.parents {
            if !in_range.contains_key(p.as_str()) && !boundary.contains(&p.as_str()) {
                boundary.push(p);
            }
        }
    }
    let mut stream = Vec::new();
    let mut marks: HashMap<&str, usize> = HashMap::new();
    let mut next = 1;
    for (i, sha) in boundary.iter().enumerate() {
        stream.extend_from_slice(
            format!("commit refs/heads/boundary\nmark :{next}\ncommitter Boundary <boundary@fixtures.invalid> 0 +0000\n").as_bytes(),
        );
        data(&mut stream, format!("Boundary {sha}\n").as_bytes());
        if i > 0 {
            stream.extend_from_slice(format!("from :{}\n", next - 1).as_bytes());
        }
        stream.push(b'\n');
        marks.insert(sha, next);
        next += 1;
    }
    let from_mark = next - 1;
    // Newest first in the file: parents come later, so write in reverse.
    for r in records.iter().rev() {
        let who = format!(
            "{} <{}@fixtures.invalid>",
            r.author_name,
            r.author_name.replace(' ', ".")
        );
        stream.extend_from_slice(
            format!(
                "commit refs/heads/main\nmark :{next}\nauthor {who} {}\ncommitter {who} {}\n",
                git_time(&r.author_date)?,
                git_time(&r.committer_date)?
            )
            .as_bytes(),
        );
        data(&mut stream, r.message.as_bytes());
        for (k, p) in r.parents.iter().enumerate() {
            let Some(m) = marks.get(p.as_str()) else {
                bail!("{name}: parent {p} of {} comes later in the file", r.sha);
            };
            let verb = if k == 0 { "from" } else { "merge" };
            stream.extend_from_slice(format!("{verb} :{m}\n").as_bytes());
        }
        stream.push(b'\n');
        marks.insert(&r.sha, next);
        next += 1;
    }
    let to_mark = marks[records[0].sha.as_str()];
    if from_mark > 0 {
        stream.extend_from_slice(format!("reset refs/tags/from\nfrom :{from_mark}\n\n").as_bytes());
    }
    stream.extend_from_slice(
        format!(
            "reset refs/tags/to\nfrom :{to_mark}\n\nreset refs/heads/main\nfrom :{to_mark}\n\n"
        )
        .as_bytes(),
    );

    let dir = tempfile::Builder::new()
        .prefix("packit-history-")
        .tempdir()?;
    let marks_file = dir.path().join(".git-marks");
    run_git(
        dir.path(),
        &["init", "--quiet", "--initial-branch", "main"],
        None,
    )?;
    let export = format!("--export-marks={}", marks_file.display());
    run_git(
        dir.path(),
        &["fast-import", "--quiet", &export],
        Some(&stream),
    )?;
    let exported = std::fs::read_to_string(&marks_file)?;
    let by_mark: HashMap<usize, &str> = exported
        .lines()
        .filter_map(|l| {
            let (m, sha) = l.strip_prefix(':')?.split_once(' ')?;
            Some((m.parse().ok()?, sha))
        })
        .collect();
    let ids = marks
        .iter()
        .filter(|(sha, _)| in_range.contains_key(*sha))
        .map(|(sha, m)| ((*sha).to_owned(), by_mark[m].to_owned()))
        .collect();
    std::fs::remove_file(&marks_file)?;
    Ok(Rebuilt { dir, ids, records })
}

/// Runs git in `dir` with `stdin`; returns stdout.
pub fn run_git(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<String> {
    let mut child = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running git")?;
    if let Some(input) = stdin {
        child.stdin.take().context("git stdin")?.write_all(input)?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "git {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
