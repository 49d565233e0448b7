//! Running the operator binary against the test cluster, one process per
//! test, scoped to the test's namespace so tests never share a controller.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::cluster;

/// A running `packit-operator run --namespace <ns>` (or `--selector`);
/// killed when dropped.
pub struct Operator {
    namespace: String,
    /// Trains picked by labels in every namespace instead of `namespace`.
    selector: Option<String>,
    /// Extra arguments of `run`, kept for restarts.
    args: Vec<String>,
    /// Whether the tests' openings are passed (see [`OPEN`]).
    open: bool,
    /// Whose identity it runs under.
    kubeconfig: PathBuf,
    /// `RUST_LOG`.
    log: String,
    /// Where this operator serves /metrics, /healthz and /readyz.
    pub metrics_addr: std::net::SocketAddr,
    child: Option<Child>,
    dir: PathBuf,
    starts: u32,
}

/// What the tests' fixtures need from a locked-down operator: `file://`
/// repositories, and receivers, Prometheus and HTTP checks on 127.0.0.1
/// (the API server's own port there stays refused).
pub const OPEN: &[&str] = &["--allow-local-sources", "--allow-cidrs", "127.0.0.0/8"];

impl Operator {
    /// Runs as the test cluster's admin.
    pub fn start(namespace: &str) -> Result<Self> {
        Self::start_with(namespace, &cluster().kubeconfig, &[])
    }

    /// Like [`Operator::start`], with more arguments for `run`.
    pub fn start_with_args(namespace: &str, args: &[&str]) -> Result<Self> {
        Self::start_with(namespace, &cluster().kubeconfig, args)
    }

    /// Runs cluster-wide for the trains labelled `selector`, as the chart's
    /// default (all namespaces) would, without touching other tests' trains.
    pub fn start_selecting(name: &str, selector: &str) -> Result<Self> {
        let mut op = Self::prepare(name, &cluster().kubeconfig, &[])?;
        op.selector = Some(selector.to_owned());
        op.spawn()?;
        Ok(op)
    }

    /// Runs under the identity `kubeconfig` names (e.g. a ServiceAccount
    /// token), to prove what that identity's permissions allow.
    pub fn start_with_kubeconfig(namespace: &str, kubeconfig: &Path) -> Result<Self> {
        Self::start_with(namespace, kubeconfig, &[])
    }

    /// Runs as the chart's default does (logging at `info`, or as
    /// `PACKIT_BENCH_LOG` says), for figures that are the operator's own
    /// rather than its debug log's.
    pub fn start_for_benchmark(namespace: &str) -> Result<Self> {
        let mut op = Self::prepare(namespace, &cluster().kubeconfig, &[])?;
        op.log = std::env::var("PACKIT_BENCH_LOG").unwrap_or_else(|_| "info".into());
        op.spawn()?;
        Ok(op)
    }

    /// Runs with `args` only, without [`OPEN`]: as the chart runs it.
    pub fn start_locked_down(namespace: &str, args: &[&str]) -> Result<Self> {
        let mut op = Self::prepare(namespace, &cluster().kubeconfig, args)?;
        op.open = false;
        op.spawn()?;
        Ok(op)
    }

    /// Several operators may run in one namespace; each gets its own
    /// directory.
    fn start_with(namespace: &str, kubeconfig: &Path, args: &[&str]) -> Result<Self> {
        let mut op = Self::prepare(namespace, kubeconfig, args)?;
        op.spawn()?;
        Ok(op)
    }

    fn prepare(namespace: &str, kubeconfig: &Path, args: &[&str]) -> Result<Self> {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("packit-operator-{namespace}-{n}"));
        std::fs::create_dir_all(&dir)?;
        // Tests run several operators at once: each gets a free port.
        let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        Ok(Self {
            namespace: namespace.to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
            open: true,
            kubeconfig: kubeconfig.to_owned(),
            metrics_addr,
            child: None,
            dir,
            starts: 0,
            selector: None,
            log: "info,packit_operator=debug".into(),
        })
    }

    fn spawn(&mut self) -> Result<()> {
        self.starts += 1;
        let log = File::create(self.dir.join(format!("operator-{}.log", self.starts)))?;
        let open: &[&str] = if self.open { OPEN } else { &[] };
        let child = Command::new(env!("CARGO_BIN_EXE_packit-operator"))
            .arg("run")
            .args(match &self.selector {
                Some(selector) => ["--selector", selector],
                None => ["--namespace", &self.namespace],
            })
            .arg("--metrics-addr")
            .arg(self.metrics_addr.to_string())
            .arg("--cache-dir")
            .arg(self.dir.join("git"))
            .args(open)
            .args(&self.args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", &self.log)
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
        http_get(&format!("http://{}{path}", self.metrics_addr)).await
    }

    /// Kills the process at once (SIGKILL: no graceful shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit
    /// code (`None` when a signal ended it).
    pub fn terminate(&mut self) -> Result<Option<i32>> {
        let mut child = self.child.take().context("the operator is not running")?;
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        anyhow::ensure!(sent.success(), "kill -TERM failed: {sent}");
        // A process that ignores SIGTERM must fail the test, not hang it.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                return Ok(status.code());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("still running 60s after SIGTERM:\n{}", self.logs())
    }

    /// The exit code once the process has exited by itself (`None` while
    /// it runs or when a signal ended it).
    pub fn exit_code(&mut self) -> Option<i32> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .and_then(|s| s.code())
    }

    /// Kills and starts again, as a crash and a restart would.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
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

/// The body of a successful GET of `url` (a local process's endpoint).
pub async fn http_get(url: &str) -> Result<String> {
    let response = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?
        .get(url)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    Ok(response.text().await?)
}
