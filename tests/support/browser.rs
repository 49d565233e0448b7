//! A real headless browser for the dashboard tests: Debian's `chromium`
//! driven over WebDriver by `chromedriver` (fantoccini is the client), and
//! `kubectl packit dashboard` run as the user runs it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use super::eventually;

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `kubectl packit dashboard` on a free port; stopped when dropped.
pub struct Dashboard {
    _process: Process,
    pub url: String,
}

impl Dashboard {
    /// Serves `args` (e.g. `-n NS`) with the kubeconfig at `kubeconfig`.
    pub fn start(kubeconfig: &Path, args: &[&str]) -> Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-packit"))
            .args(["dashboard", "--port", "0"])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting kubectl-packit dashboard")?;
        let stdout = child.stdout.take().context("stdout")?;
        let process = Process(child);
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().context("the dashboard printed nothing")??;
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
            .with_context(|| format!("no URL in {first:?}"))?
            .to_owned();
        // What the actions print goes on; keep reading so it never blocks.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self {
            _process: process,
            url,
        })
    }
}

/// Headless Chromium under chromedriver, with a fresh profile.
pub struct Browser {
    pub client: Client,
    _driver: Process,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Result<Self> {
        let port = free_port()?;
        let driver = Process(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting chromedriver (Debian package chromium-driver)")?,
        );
        let profile = tempfile::tempdir()?;
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1400,1100",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let caps = caps.as_object().cloned().unwrap_or_default();
        let url = format!("http://127.0.0.1:{port}");
        let client = eventually(
            "chromedriver to start a session",
            Duration::from_secs(60),
            || {
                let caps = caps.clone();
                let url = url.clone();
                async move {
                    Ok(ClientBuilder::new(HttpConnector::new())
                        .capabilities(caps)
                        .connect(&url)
                        .await
                        .ok())
                }
            },
        )
        .await?;
        Ok(Self {
            client,
            _driver: driver,
            _profile: profile,
        })
    }

    /// The text of the first element matching `css`, once it contains
    /// `expected` (the page updates itself; nothing reloads it).
    pub async fn wait_text(&self, css: &str, expected: &str) -> Result<String> {
        let what = format!("{css} to show {expected:?}");
        eventually(&what, Duration::from_secs(90), || async {
            let Ok(elements) = self.client.find_all(Locator::Css(css)).await else {
                return Ok(None);
            };
            for e in elements {
                if let Ok(text) = e.text().await
                    && text.contains(expected)
                {
                    return Ok(Some(text));
                }
            }
            Ok(None)
        })
        .await
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        let element = eventually(
            &format!("{css} to appear"),
            Duration::from_secs(60),
            || async { Ok(self.client.find(Locator::Css(css)).await.ok()) },
        )
        .await?;
        element.click().await?;
        Ok(())
    }

    /// Saves a PNG of the page as `name` in the screenshots directory.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir)?;
        // From the top of the page, whatever was scrolled to.
        self.client
            .execute("window.scrollTo(0, 0);", vec![])
            .await?;
        let png = self.client.screenshot().await?;
        if !png.starts_with(b"\x89PNG") {
            bail!("the screenshot is not a PNG");
        }
        let path = dir.join(name);
        std::fs::write(&path, png)?;
        Ok(path)
    }
}

/// `PACKIT_SCREENSHOTS`, or `screenshots/` in the cargo target directory.
pub fn screenshots_dir() -> PathBuf {
    std::env::var_os("PACKIT_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots"))
}
