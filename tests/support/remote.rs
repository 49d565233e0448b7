//! The second local control plane `hack/cluster-up.sh` starts beside the
//! first: a cluster the operator deploys to from elsewhere. Tests stop and
//! start it to play an outage.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::cluster::{cluster, repo_root};

pub struct Remote {
    pub kubeconfig: PathBuf,
}

/// The remote cluster, found once per test binary (after the home one,
/// which starts both when neither runs).
pub fn remote() -> &'static Remote {
    static REMOTE: OnceLock<Remote> = OnceLock::new();
    REMOTE.get_or_init(|| {
        let home = &cluster().kubeconfig;
        let kubeconfig = std::env::var_os("PACKIT_REMOTE_KUBECONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.with_file_name("remote-kubeconfig"));
        assert!(
            kubeconfig.exists(),
            "no remote cluster at {} (hack/cluster-up.sh starts it unless PACKIT_REMOTE_CLUSTER=0)",
            kubeconfig.display()
        );
        Remote { kubeconfig }
    })
}

impl Remote {
    pub async fn client(&self) -> Result<Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let config =
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// The kubeconfig context naming this cluster.
    pub fn context(&self) -> Result<String> {
        Ok(self
            .kubectl(&["config", "current-context"])?
            .trim()
            .to_owned())
    }

    /// Runs kubectl against the remote cluster, `input` on stdin.
    pub fn kubectl_with(&self, args: &[&str], input: &str) -> Result<String> {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running kubectl")?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(input.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "kubectl {} (remote) failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_with(args, "")
    }

    /// The admin's kubeconfig with the CA and client certificate inline,
    /// as a Secret must hold it.
    pub fn inline_kubeconfig(&self) -> Result<String> {
        self.kubectl(&["config", "view", "--raw", "--flatten", "--minify"])
    }

    /// Stops every process of the remote cluster (`kwokctl stop cluster`).
    pub fn stop(&self) -> Result<()> {
        self.kwokctl("stop")
    }

    /// Starts it again with its data and ports; returns once it serves
    /// and its nodes are Ready.
    pub fn start(&self) -> Result<()> {
        self.kwokctl("start")?;
        for _ in 0..120 {
            if self.kubectl(&["get", "--raw", "/readyz"]).is_ok() {
                self.kubectl(&[
                    "wait",
                    "--for=condition=Ready",
                    "node",
                    "--all",
                    "--timeout=60s",
                ])?;
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        bail!("the remote cluster did not serve again within a minute")
    }

    fn kwokctl(&self, verb: &str) -> Result<()> {
        let script = format!(
            r#". "{}/hack/lib.sh" && KWOK_WORKDIR="$PACKIT_CLUSTER_DIR/kwok" "$PACKIT_BIN_DIR/kwokctl" {verb} cluster --name "$PACKIT_CLUSTER_NAME-remote""#,
            repo_root().display()
        );
        let out = Command::new("bash").args(["-c", &script]).output()?;
        if !out.status.success() {
            bail!(
                "kwokctl {verb} cluster failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}
