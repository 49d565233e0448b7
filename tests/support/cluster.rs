//! Finding or starting the local cluster, clients, kubectl and per-test
//! namespaces.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource};
use serde_json::json;

use super::wait::{DEFAULT_TIMEOUT, wait_for};

/// Label put on every test namespace, so leftovers are easy to find.
pub const TEST_NAMESPACE_LABEL: &str = "packit.dev/test";

/// The cluster the tests of this binary run against.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Kubeconfig with admin access to the cluster.
    pub kubeconfig: PathBuf,
    /// `host:port` of the OCI registry (plain HTTP on 127.0.0.1).
    pub registry: String,
}

impl Cluster {
    /// A new client for this cluster. Each test makes its own, because a
    /// client is bound to the Tokio runtime it was made on and every
    /// `#[tokio::test]` has a runtime of its own.
    pub async fn client(&self) -> Result<Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
        let config =
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }
}

/// The cluster for this test binary: the one `KUBECONFIG` points at when it
/// is a running kwok cluster, else the local one, started on first use by
/// `hack/cluster-up.sh` (which reuses it when it is already running).
///
/// Panics when no cluster can be had: every cluster test needs one.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| match find_or_start_cluster() {
        Ok(cluster) => cluster,
        Err(err) => panic!("no test cluster: {err:#}"),
    })
}

fn find_or_start_cluster() -> Result<Cluster> {
    if let Some(kubeconfig) = std::env::var_os("KUBECONFIG").map(PathBuf::from)
        && is_kwok_cluster(&kubeconfig)
    {
        let registry = match std::env::var("PACKIT_REGISTRY") {
            Ok(registry) => registry,
            Err(_) => cluster_env()?
                .1
                .context("PACKIT_REGISTRY is not set and no local registry is running")?,
        };
        return Ok(Cluster {
            kubeconfig,
            registry,
        });
    }
    // Never run against some other cluster KUBECONFIG may name: start ours.
    let script = repo_root().join("hack/cluster-up.sh");
    let output = Command::new(&script)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let (kubeconfig, registry) = parse_env(&String::from_utf8_lossy(&output.stdout));
    Ok(Cluster {
        kubeconfig: kubeconfig.context("cluster-up printed no KUBECONFIG")?,
        registry: registry.context("cluster-up printed no PACKIT_REGISTRY")?,
    })
}

/// A reachable API server with kwok's fake nodes, whose Stages the tests
/// rely on.
fn is_kwok_cluster(kubeconfig: &Path) -> bool {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["get", "nodes", "-l", "type=kwok", "-o", "name"])
        .args(["--request-timeout", "5s"])
        .output()
        .is_ok_and(|out| out.status.success() && !out.stdout.is_empty())
}

/// What `hack/cluster-up.sh` recorded for the running local cluster.
fn cluster_env() -> Result<(Option<PathBuf>, Option<String>)> {
    let dir = match (
        std::env::var_os("PACKIT_CLUSTER_DIR"),
        std::env::var_os("PACKIT_CACHE"),
    ) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(cache)) => PathBuf::from(cache).join("cluster"),
        (None, None) => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
            .join(".cache/packit-operator/cluster"),
    };
    let file = dir.join("env.sh");
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    Ok(parse_env(&text))
}

/// Reads `export KUBECONFIG=...` and `export PACKIT_REGISTRY=...` lines.
fn parse_env(text: &str) -> (Option<PathBuf>, Option<String>) {
    let mut kubeconfig = None;
    let mut registry = None;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("export KUBECONFIG=") {
            kubeconfig = Some(PathBuf::from(value.trim()));
        } else if let Some(value) = line.strip_prefix("export PACKIT_REGISTRY=") {
            registry = Some(value.trim().to_owned());
        }
    }
    (kubeconfig, registry)
}

/// The checkout the tests were built from.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs kubectl against the test cluster; returns stdout, or an error with
/// stderr when kubectl fails.
pub fn kubectl(args: &[&str]) -> Result<String> {
    let output = kubectl_output(args)?;
    if !output.status.success() {
        bail!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// Runs kubectl against the test cluster and returns whatever happened, for
/// tests that expect it to fail.
pub fn kubectl_output(args: &[&str]) -> Result<Output> {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&cluster().kubeconfig)
        .args(args)
        .output()
        .context("running kubectl")
}

/// Installs the project's CRDs from `crds/` (server-side apply) and waits
/// until the API server serves them. Done once per test binary.
pub fn apply_crds() -> Result<()> {
    static APPLIED: OnceLock<Result<(), String>> = OnceLock::new();
    APPLIED
        .get_or_init(|| {
            let dir = repo_root().join("crds");
            let dir = dir.to_str().ok_or("non UTF-8 path")?;
            kubectl(&["apply", "--server-side", "--force-conflicts", "-f", dir])
                .and_then(|_| {
                    kubectl(&[
                        "wait",
                        "--for=condition=Established",
                        "--timeout=60s",
                        "-f",
                        dir,
                    ])
                })
                .map(drop)
                .map_err(|err| format!("{err:#}"))
        })
        .clone()
        .map_err(|err| anyhow!(err))
}

/// A namespace of its own for one test, deleted when dropped (also when the
/// test panics).
pub struct TestNs {
    pub client: Client,
    pub name: String,
}

impl TestNs {
    /// Creates a namespace named after `prefix` plus a unique suffix and
    /// waits until pods can be created in it.
    pub async fn new(prefix: &str) -> Result<Self> {
        let cluster = cluster();
        let client = cluster.client().await?;
        let name = unique_name(prefix);
        let namespace: Namespace = serde_json::from_value(json!({
            "metadata": { "name": name, "labels": { TEST_NAMESPACE_LABEL: "true" } }
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        let ns = TestNs { client, name };
        // Pods are refused until the controller manager made this.
        wait_for(
            &ns.api::<ServiceAccount>(),
            "default",
            "the default ServiceAccount",
            DEFAULT_TIMEOUT,
            |_| true,
        )
        .await?;
        Ok(ns)
    }

    /// An API for namespaced resources of kind `K` in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// The cluster's OCI registry, `host:port`.
    pub fn registry(&self) -> &str {
        &cluster().registry
    }

    /// Runs kubectl in this namespace.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["--namespace", self.name.as_str()];
        all.extend_from_slice(args);
        kubectl(&all)
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be gone already.
        let deleted = kubectl(&[
            "delete",
            "namespace",
            &self.name,
            "--wait=false",
            "--ignore-not-found",
        ]);
        if let Err(err) = deleted {
            eprintln!("could not delete namespace {}: {err:#}", self.name);
        }
    }
}

/// A DNS label made of `prefix` and a suffix unique within this machine.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let clean: String = prefix
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .take(40)
        .collect();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .subsec_nanos();
    format!(
        "{}-{:x}{:x}{}",
        clean.trim_matches('-'),
        std::process::id() % 0xfff,
        nanos % 0xffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Restarts the cluster's kube-apiserver process with the command line it
/// had, as an upgrade or a crash would; returns once it serves again. Only
/// for test binaries that run nothing else at the same time.
pub fn restart_apiserver() -> Result<()> {
    let cluster_dir = cluster()
        .kubeconfig
        .parent()
        .context("the kubeconfig has a directory")?
        .to_owned();
    // This cluster's, not the remote one's beside it.
    let name = std::env::var("PACKIT_CLUSTER_NAME").unwrap_or_else(|_| "packit".into());
    let pid_file = cluster_dir.join(format!("kwok/clusters/{name}/pids/kube-apiserver.pid"));
    ensure!(
        pid_file.exists(),
        "no kube-apiserver pid file at {}",
        pid_file.display()
    );
    let pid = std::fs::read_to_string(&pid_file)?.trim().to_owned();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let args: Vec<String> = std::fs::read(proc_dir.join("cmdline"))?
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let cwd = std::fs::read_link(proc_dir.join("cwd"))?;
    let (program, rest) = args.split_first().context("an empty command line")?;
    // SIGKILL, as a crash: a graceful stop waits for open watches to end.
    let status = Command::new("kill").args(["-KILL", &pid]).status()?;
    ensure!(status.success(), "could not stop kube-apiserver {pid}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Alive while any of its threads is: a reaped-but-exiting leader shows
    // as a zombie while other threads still hold its sockets.
    let alive = || {
        let zombie = std::fs::read_to_string(proc_dir.join("stat")).map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        });
        let threads = std::fs::read_dir(proc_dir.join("task")).map_or(0, |d| d.count());
        matches!(zombie, Ok(false)) || threads > 1
    };
    while alive() {
        ensure!(
            std::time::Instant::now() < deadline,
            "kube-apiserver {pid} did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log_path = pid_file
        .parent()
        .and_then(Path::parent)
        .context("cluster dir")?
        .join("logs/kube-apiserver.log");
    // The old server's threads may still hold its port for a moment after
    // it is reaped: a new one that exits at once is started again.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut child = Command::new("setsid")
            .arg(program)
            .args(rest)
            .current_dir(&cwd)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        // setsid execs the server in place, so the child's pid is the server's.
        std::fs::write(&pid_file, child.id().to_string())?;
        loop {
            if kubectl(&["get", "--raw", "/readyz"]).is_ok() {
                return Ok(());
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "kube-apiserver did not come back; see {}",
                log_path.display()
            );
            if child.try_wait()?.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
