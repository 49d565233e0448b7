//! Running the operator binary against the test cluster, one process per
//! test, scoped to the test's namespace so tests never share a controller.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

use super::cluster;

/// A running `packit-operator run --namespace <ns>`; killed when dropped.
pub struct Operator {
    namespace: String,
    /// Where this operator serves /metrics, /healthz and /readyz.
    pub metrics_addr: std::net::SocketAddr,
    child: Option<Child>,
    dir: PathBuf,
    starts: u32,
    /// Whose identity it runs under.
    kubeconfig: PathBuf,
}

impl Operator {
    /// Runs as the test cluster's admin.
    pub fn start(namespace: &str) -> Result<Self> {
        Self::start_with_kubeconfig(namespace, &cluster().kubeconfig)
    }

    /// Runs under the identity `kubeconfig` names (e.g. a ServiceAccount
    /// token), to prove what that identity's permissions allow.
    pub fn start_with_kubeconfig(namespace: &str, kubeconfig: &Path) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("packit-operator-{namespace}"));
        std::fs::create_dir_all(&dir)?;
        // Tests run several operators at once: each gets a free port.
        let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut op = Self {
            namespace: namespace.to_owned(),
            metrics_addr,
            child: None,
            dir,
            starts: 0,
            kubeconfig: kubeconfig.to_owned(),
        };
        op.spawn()?;
        Ok(op)
    }

    fn spawn(&mut self) -> Result<()> {
        self.starts += 1;
        let log = File::create(self.dir.join(format!("operator-{}.log", self.starts)))?;
        let child = Command::new(env!("CARGO_BIN_EXE_packit-operator"))
            .args(["run", "--namespace", &self.namespace])
            .arg("--metrics-addr")
            .arg(self.metrics_addr.to_string())
            .arg("--cache-dir")
            .arg(self.dir.join("git"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info,packit_operator=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting packit-operator")?;
        self.child = Some(child);
        Ok(())
    }

    /// GETs one of the operator's HTTP endpoints; returns the body.
    pub async fn get(&self, path: &str) -> Result<String> {
        let url = format!("http://{}{path}", self.metrics_addr);
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()?
            .get(&url)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        Ok(response.text().await?)
    }

    /// Kills the process at once (SIGKILL: no graceful shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills and starts again, as a crash and a restart would.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Everything the operator logged, all runs, for failure messages.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .filter_map(|i| {
                std::fs::read_to_string(self.dir.join(format!("operator-{i}.log"))).ok()
            })
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("operator logs for {}:\n{}", self.namespace, self.logs());
        }
    }
}
