//! kwok, the fake kubelet, now and then leaves a pod `Pending` for good
//! when many pods are recreated at once (seen with StatefulSet pods
//! recreated under the same name, at a hundred trains): a real kubelet
//! would start it. A watchdog thread per test binary looks for pods bound
//! to a node but `Pending` for [`STUCK`], touches them (any update makes
//! kwok look again) and force-deletes those still `Pending` after twice
//! that, for their controller to create them again. Each nudge is printed
//! and counted in [`NUDGED`].

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub static NUDGED: AtomicUsize = AtomicUsize::new(0);
const STUCK: i64 = 20;

/// Starts the watchdog over the clusters of `kubeconfigs`.
pub fn start_watchdog(kubeconfigs: Vec<PathBuf>) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(5));
            for kubeconfig in &kubeconfigs {
                nudge_stuck_pods(kubeconfig);
            }
        }
    });
}

fn nudge_stuck_pods(kubeconfig: &PathBuf) {
    let kubectl = |args: &[&str]| {
        Command::new("kubectl")
            .args(["--request-timeout=5s"])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    // A cluster that is stopped on purpose answers nothing: next round.
    let Some(out) = kubectl(&[
        "get",
        "pods",
        "-A",
        "--field-selector=status.phase=Pending",
        "-o",
        "json",
    ]) else {
        return;
    };
    let Ok(list) = serde_json::from_slice::<Value>(&out.stdout) else {
        return;
    };
    let now = Utc::now();
    for pod in list["items"].as_array().into_iter().flatten() {
        let meta = &pod["metadata"];
        let (Some(ns), Some(name)) = (meta["namespace"].as_str(), meta["name"].as_str()) else {
            continue;
        };
        let bound = pod["spec"]["nodeName"].as_str().is_some();
        let age = meta["creationTimestamp"]
            .as_str()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            .map_or(0, |t| (now - t).num_seconds());
        if !bound || meta["deletionTimestamp"].is_string() && age <= 2 * STUCK || age <= STUCK {
            continue;
        }
        let done = if age > 2 * STUCK {
            kubectl(&[
                "delete",
                "pod",
                "-n",
                ns,
                name,
                "--grace-period=0",
                "--force",
                "--wait=false",
            ])
        } else {
            let stamp = format!("packit.dev/kwok-nudged={}", now.timestamp());
            kubectl(&["annotate", "pod", "-n", ns, name, "--overwrite", &stamp])
        };
        if done.is_some() {
            NUDGED.fetch_add(1, Ordering::Relaxed);
            eprintln!("kwok left pod {ns}/{name} Pending for {age} s: nudged");
        }
    }
}
