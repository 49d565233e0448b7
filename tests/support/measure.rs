//! What a benchmark reads off a running controller: its memory and CPU
//! from `/proc`, and counters and histograms from its Prometheus text
//! exposition.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

/// A process's resident memory and CPU time at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStat {
    /// Resident memory now (`VmRSS`), in bytes.
    pub rss: u64,
    /// The highest resident memory so far (`VmHWM`), in bytes.
    pub peak: u64,
    /// User and system CPU time so far, in seconds.
    pub cpu_seconds: f64,
}

impl ProcStat {
    pub fn read(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let kib = |key: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(key))
                .with_context(|| format!("{key} in /proc/{pid}/status"))?;
            let n = line[key.len()..].trim().trim_end_matches("kB").trim();
            Ok(n.parse::<u64>()? * 1024)
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name, which may hold spaces: utime and
        // stime are the 14th and 15th fields of the whole line.
        let rest = stat.rsplit_once(')').context("/proc/pid/stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| -> Result<f64> {
            Ok(fields
                .get(i)
                .context("a field of /proc/pid/stat")?
                .parse()?)
        };
        Ok(Self {
            rss: kib("VmRSS:")?,
            peak: kib("VmHWM:")?,
            cpu_seconds: (ticks(11)? + ticks(12)?) / clock_ticks(),
        })
    }
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// One scrape of a Prometheus text exposition: every sample by metric name
/// and labels.
#[derive(Debug, Clone, Default)]
pub struct Scrape(pub Vec<Sample>);

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)),
                    None => (series, BTreeMap::new()),
                };
                Some(Sample {
                    name: name.to_owned(),
                    labels,
                    value: value.parse().ok()?,
                })
            })
            .collect();
        Self(samples)
    }

    pub fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| s.name == name)
    }

    /// The sum of `name`'s samples per value of the labels `keys`.
    pub fn by(&self, name: &str, keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
        let mut out = BTreeMap::new();
        for s in self.samples(name) {
            let key = keys
                .iter()
                .map(|k| s.labels.get(*k).cloned().unwrap_or_default())
                .collect();
            *out.entry(key).or_insert(0.0) += s.value;
        }
        out
    }

    /// The sum of `name`'s samples.
    pub fn total(&self, name: &str) -> f64 {
        self.samples(name).map(|s| s.value).sum()
    }

    /// A histogram's cumulative buckets (upper bound, count), sorted.
    pub fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64)> = self
            .samples(&format!("{name}_bucket"))
            .filter_map(|s| {
                let le = s.labels.get("le")?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((bound, s.value))
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let Some(end) = after.find('"') else { break };
        labels.insert(
            key.trim_start_matches(',').trim().to_owned(),
            after[..end].to_owned(),
        );
        rest = &after[end + 1..];
    }
    labels
}

/// Counters that grew between two scrapes, per labels `keys`.
pub fn growth(
    before: &Scrape,
    after: &Scrape,
    name: &str,
    keys: &[&str],
) -> BTreeMap<Vec<String>, f64> {
    let was = before.by(name, keys);
    after
        .by(name, keys)
        .into_iter()
        .map(|(k, v)| {
            let d = v - was.get(&k).copied().unwrap_or(0.0);
            (k, d)
        })
        .filter(|(_, d)| *d > 0.0)
        .collect()
}

/// The `q` quantile of the observations a histogram gained between two
/// scrapes, interpolated linearly within its bucket as PromQL's
/// `histogram_quantile` does. `None` without observations.
pub fn histogram_quantile(before: &Scrape, after: &Scrape, name: &str, q: f64) -> Option<f64> {
    let was: BTreeMap<u64, f64> = before
        .buckets(name)
        .into_iter()
        .map(|(b, c)| (b.to_bits(), c))
        .collect();
    let buckets: Vec<(f64, f64)> = after
        .buckets(name)
        .into_iter()
        .map(|(b, c)| (b, c - was.get(&b.to_bits()).copied().unwrap_or(0.0)))
        .collect();
    quantile_of_buckets(&buckets, q)
}

/// The `q` quantile of cumulative `buckets` (upper bound, count).
pub fn quantile_of_buckets(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let within = count - lower.1;
            let share = if within > 0.0 {
                (rank - lower.1) / within
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * share);
        }
        lower = (bound, count);
    }
    None
}

/// The `q` quantile of `values` (nearest rank); `None` when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

/// Whether a request verb changes something (in any case: Argo Rollouts
/// counts `Update`, the operator `update`).
pub fn is_write(verb: &str) -> bool {
    matches!(
        verb.to_lowercase().as_str(),
        "create" | "update" | "patch" | "delete" | "deletecollection" | "apply"
    )
}

/// A sum that is 0, not -0, when empty.
pub fn sum<'a>(values: impl IntoIterator<Item = &'a f64>) -> f64 {
    values.into_iter().fold(0.0, |a, b| a + b)
}

/// All requests of the counter `name` (labelled by `verb`), and the writes
/// among them, that grew between two scrapes.
pub fn requests(before: &Scrape, after: &Scrape, name: &str) -> (f64, f64) {
    let grown = growth(before, after, name, &["verb"]);
    let writes = grown
        .iter()
        .filter(|(k, _)| is_write(&k[0]))
        .map(|(_, v)| v);
    (sum(grown.values()), sum(writes))
}
