//! The local Prometheus (started by `hack/cluster-up.sh`) and the samples
//! it scrapes: each test writes its own file of samples, keyed by its
//! namespace, so tests running side by side never see each other's.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::cluster::repo_root;
use super::wait::eventually;

pub struct Prometheus {
    address: String,
    samples: PathBuf,
}

impl Prometheus {
    /// From `PACKIT_PROMETHEUS` and `PACKIT_METRICS_DIR`, or what
    /// `hack/cluster-up.sh` recorded.
    pub fn from_env() -> Result<Self> {
        super::cluster();
        let recorded = recorded_env();
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .or_else(|| {
                    recorded
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                })
                .with_context(|| {
                    format!("{name} is not set: start the cluster with make cluster-up")
                })
        };
        Ok(Self {
            address: var("PACKIT_PROMETHEUS")?,
            samples: PathBuf::from(var("PACKIT_METRICS_DIR")?),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Replaces the samples of `key` with `text` (Prometheus text format),
    /// atomically.
    pub fn set(&self, key: &str, text: &str) -> Result<()> {
        let tmp = self.samples.join(format!(".{key}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.samples.join(format!("{key}.prom")))?;
        Ok(())
    }

    /// Removes the samples of `key`; their series go stale at the next
    /// scrape.
    pub fn clear(&self, key: &str) -> Result<()> {
        match std::fs::remove_file(self.samples.join(format!("{key}.prom"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Waits until the instant query `query` returns `expected`, so a test
    /// knows Prometheus has scraped what it set.
    pub async fn wait_for_value(&self, query: &str, expected: f64) -> Result<()> {
        eventually(
            &format!("{query} = {expected}"),
            Duration::from_secs(30),
            || async { Ok(self.value(query).await?.filter(|v| *v == expected)) },
        )
        .await
        .map(|_| ())
    }

    /// The single value `query` returns now, if it returns one.
    pub async fn value(&self, query: &str) -> Result<Option<f64>> {
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/query", self.address))?;
        url.query_pairs_mut().append_pair("query", query);
        let body = reqwest::Client::builder()
            .no_proxy()
            .build()?
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let answer: serde_json::Value = serde_json::from_slice(&body)?;
        let result = &answer["data"]["result"];
        Ok(match result.as_array().map(Vec::as_slice) {
            Some([one]) => one["value"][1].as_str().and_then(|v| v.parse().ok()),
            _ => None,
        })
    }

    /// Stops Prometheus (the samples stay). Every test of the binary sees
    /// it gone, so a test that stops it lives in a test binary of its own.
    pub fn stop(&self) -> Result<()> {
        ctl("stop")
    }

    /// Starts Prometheus again on the same address and waits until it is
    /// ready.
    pub fn start(&self) -> Result<()> {
        ctl("start")
    }
}

fn ctl(action: &str) -> Result<()> {
    let script = repo_root().join("hack/prometheus/ctl.sh");
    let out = Command::new(&script).arg(action).output()?;
    if !out.status.success() {
        bail!(
            "{} {action} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `export NAME=VALUE` lines of the running cluster's env.sh.
fn recorded_env() -> Vec<(String, String)> {
    let dir = std::env::var_os("PACKIT_CLUSTER_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("PACKIT_CACHE").map(|c| PathBuf::from(c).join("cluster")))
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/packit-operator/cluster"))
        });
    let text = dir
        .and_then(|d| std::fs::read_to_string(d.join("env.sh")).ok())
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}
