//! `kubectl-packit` against the local cluster: PackitDeployments and
//! PackitReleases are written directly (status through the status
//! subresource), the built plugin is run, and its output, exit code and the
//! annotations it writes are checked.

mod support;

use std::process::{Command, Output};

use anyhow::{Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use packit_operator::api::deployment::requests::{PROMOTE, RELEASE, ROLLBACK};
use packit_operator::api::{PackitDeployment, PackitRelease};
use serde_json::{Value, json};
use support::{TestNs, apply_crds, cluster};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn plugin(ns: &str, args: &[&str]) -> Output {
    plugin_with(&cluster().kubeconfig, ns, args)
}

fn plugin_with(kubeconfig: &std::path::Path, ns: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-packit"));
    cmd.env("KUBECONFIG", kubeconfig).args(args);
    if !ns.is_empty() {
        cmd.args(["-n", ns]);
    }
    match cmd.output() {
        Ok(out) => out,
        Err(e) => panic!("running kubectl-packit: {e}"),
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code and returns stdout.
fn expect(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

fn target() -> Value {
    json!([{ "kind": "Deployment", "name": "svc", "container": "svc", "component": "service" }])
}

/// A deployment `svc` with staging and production: `svc-1` is released
/// (verified in both), `svc-2` passed staging and waits for the window; and
/// a release of another deployment.
async fn train(ns: &TestNs) -> Result<()> {
    let pkd: PackitDeployment = serde_json::from_value(json!({
        "apiVersion": "packit.dev/v1alpha1",
        "kind": "PackitDeployment",
        "metadata": { "name": "svc" },
        "spec": {
            "components": [{ "name": "service", "source": { "url": "https://example.com/svc.git" },
                             "image": "registry.example.com/team/svc", "build": { "strategy": "External" } }],
            "schedule": { "build": "0 18 * * FRI", "timeZone": "Europe/Prague",
                          "production": { "start": "0 23 * * SUN", "duration": "4h" } },
            "environments": [
                { "name": "staging", "targets": target() },
                { "name": "production", "targets": target() }
            ]
        }
    }))?;
    let deployments: Api<PackitDeployment> = ns.api();
    deployments.create(&PostParams::default(), &pkd).await?;
    let t = "2026-11-30T08:00:00Z";
    deployments
        .patch_status(
            "svc",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": {
                "phase": "Waiting:production",
                "releases": "staging=svc-2,production=svc-1",
                "nextBuild": "2026-12-04T17:00:00Z",
                "nextWindow": "2026-12-06T22:00:00Z",
                "conditions": [
                    { "type": "Ready", "status": "True", "reason": "Ready", "message": "no failed release", "lastTransitionTime": t },
                    { "type": "Progressing", "status": "True", "reason": "Waiting", "message": "svc-2 waits for production", "lastTransitionTime": t },
                    { "type": "Degraded", "status": "False", "reason": "AsExpected", "message": "", "lastTransitionTime": t }
                ],
                "inFlight": { "release": "svc-2", "stage": "Waiting", "environment": "production",
                              "since": t, "message": "outside the production window" },
                "environments": [
                    { "name": "staging", "release": "svc-2", "deployedAt": t, "verified": ["svc-1", "svc-2"] },
                    { "name": "production", "release": "svc-1", "deployedAt": "2026-11-23T23:00:00Z", "verified": ["svc-0", "svc-1"] }
                ]
            } })),
        )
        .await
        .context("writing the deployment status")?;

    let releases: Api<PackitRelease> = ns.api();
    let statuses = [
        (
            "svc",
            "svc-1",
            json!({
                "phase": "Released", "commitSummary": "service=0123456",
                "environments": [
                    { "name": "staging", "deployedAt": "2026-11-23T08:00:00Z", "verifiedAt": "2026-11-23T08:20:00Z" },
                    { "name": "production", "deployedAt": "2026-11-23T23:00:00Z", "verifiedAt": "2026-11-24T00:00:00Z" }
                ],
                "changelog": { "markdown": "## svc-1\n\n- Faster builds (#12)\n" }
            }),
        ),
        (
            "svc",
            "svc-2",
            json!({
                "phase": "AwaitingWindow", "commitSummary": "service=89abcde",
                "environments": [{ "name": "staging", "deployedAt": t, "verifiedAt": t }]
            }),
        ),
        ("other", "other-1", json!({ "phase": "Building" })),
    ];
    for (deployment, name, status) in statuses {
        let r: PackitRelease = serde_json::from_value(json!({
            "apiVersion": "packit.dev/v1alpha1",
            "kind": "PackitRelease",
            "metadata": { "name": name },
            "spec": {
                "deployment": deployment,
                "trigger": "Schedule",
                "components": [{ "name": "service", "source": { "url": "https://example.com/svc.git", "commit": COMMIT } }]
            }
        }))?;
        releases.create(&PostParams::default(), &r).await?;
        releases
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .with_context(|| format!("writing the status of {name}"))?;
    }
    Ok(())
}

async fn annotation(ns: &TestNs, key: &str) -> Result<Option<String>> {
    let pkd = ns.api::<PackitDeployment>().get("svc").await?;
    Ok(pkd.metadata.annotations.and_then(|a| a.get(key).cloned()))
}

fn close_to(t: DateTime<Utc>, expected: DateTime<Utc>) -> bool {
    (t - expected).abs() < TimeDelta::seconds(60)
}

#[tokio::test]
async fn status_and_history() -> Result<()> {
    apply_crds()?;
    let ns = TestNs::new("plugin-status").await?;
    train(&ns).await?;
    let n = ns.name.as_str();

    let svc = ns.api::<PackitDeployment>().get("svc").await?;
    let text = expect(&plugin(n, &["status", "--tz", "UTC"]), 0);
    assert!(text.contains(&format!("svc (namespace {n})")), "{text}");
    assert!(text.contains("Phase:       Waiting:production"), "{text}");
    // Both are computed from the schedule with the plugin's clock; the
    // stored ones are shown only while they are still ahead.
    let calendar = packit_operator::schedule::Calendar::new(&svc.spec.schedule)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let build = calendar
        .next_build_after(Utc::now())
        .context("a next build")?;
    let shown = format!("Next build:  {}", build.format("%Y-%m-%d %H:%M +00:00"));
    assert!(text.contains(&shown), "{shown}\n{text}");
    let next = calendar.window(Utc::now()).context("a production window")?;
    let shown = if next.start <= Utc::now() {
        "Next window: open now".to_owned()
    } else {
        format!(
            "Next window: {}",
            next.start.format("%Y-%m-%d %H:%M +00:00")
        )
    };
    assert!(text.contains(&shown), "{shown}\n{text}");
    assert!(
        text.contains("In flight:   svc-2 waiting for production since"),
        "{text}"
    );
    assert!(
        text.contains("Conditions:  Ready, Progressing (Waiting)"),
        "{text}"
    );
    assert!(text.contains("ENVIRONMENT"), "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|w: &Vec<&str>| {
            w.first()
                .is_some_and(|f| *f == "staging" || *f == "production")
        })
        .collect();
    assert_eq!(rows[0][..3], ["staging", n, "svc-2"], "{text}");
    assert_eq!(rows[1][..3], ["production", n, "svc-1"], "{text}");

    let json: Value =
        serde_json::from_str(&expect(&plugin(n, &["status", "svc", "-o", "json"]), 0))?;
    assert_eq!(json[0]["name"], "svc");
    assert_eq!(json[0]["phase"], "Waiting:production");
    assert_eq!(json[0]["inFlight"]["release"], "svc-2");
    assert_eq!(json[0]["environments"][1]["release"], "svc-1");
    assert_eq!(json[0]["conditions"][0]["type"], "Ready");
    let yaml = expect(&plugin(n, &["status", "svc", "-o", "yaml"]), 0);
    assert!(yaml.contains("phase: Waiting:production"), "{yaml}");

    let missing = plugin(n, &["status", "nope"]);
    expect(&missing, 2);
    assert!(
        stderr(&missing).contains("no PackitDeployment \"nope\""),
        "{}",
        stderr(&missing)
    );

    let text = expect(&plugin(n, &["history", "svc"]), 0);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["NAME", "svc-2", "svc-1"], "{text}");
    assert!(
        text.contains("staging=verified production=verified"),
        "{text}"
    );
    assert!(text.contains("AwaitingWindow"), "{text}");
    let json: Value = serde_json::from_str(&expect(&plugin(n, &["history", "-o", "json"]), 0))?;
    let all: Vec<&str> = json
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(all.len(), 3, "{json}");
    assert_eq!(json[0]["trigger"], "Schedule");
    expect(&plugin(n, &["history", "nope"]), 2);
    // The releases of a deployment that is gone are still shown.
    let text = expect(&plugin(n, &["history", "other"]), 0);
    assert!(
        text.contains("other-1") && text.contains("Building"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn requests_write_annotations() -> Result<()> {
    apply_crds()?;
    let ns = TestNs::new("plugin-requests").await?;
    train(&ns).await?;
    let n = ns.name.as_str();

    let out = expect(&plugin(n, &["release", "svc"]), 0);
    assert!(out.contains("Requested a release"), "{out}");
    let value = annotation(&ns, RELEASE)
        .await?
        .context("release annotation")?;
    let t = DateTime::parse_from_rfc3339(&value)?.with_timezone(&Utc);
    assert!(close_to(t, Utc::now()), "{value}");
    expect(&plugin(n, &["release", "nope"]), 2);

    expect(&plugin(n, &["promote", "svc"]), 0);
    let value = annotation(&ns, PROMOTE)
        .await?
        .context("promote annotation")?;
    assert!(DateTime::parse_from_rfc3339(&value).is_ok(), "{value}");
    let out = expect(&plugin(n, &["promote", "svc", "--force"]), 0);
    assert!(
        out.contains("promotion of svc-2 to production, forced"),
        "{out}"
    );
    let value: Value = serde_json::from_str(&annotation(&ns, PROMOTE).await?.context("promote")?)?;
    assert_eq!(value["force"], true);
    assert!(value["requestedAt"].is_string(), "{value}");

    expect(
        &plugin(n, &["rollback", "svc", "--environment", "production"]),
        0,
    );
    let value: Value =
        serde_json::from_str(&annotation(&ns, ROLLBACK).await?.context("rollback")?)?;
    assert_eq!(value["environment"], "production");
    assert!(
        value.get("to").is_none() && value.get("at").is_none(),
        "{value}"
    );

    let out = expect(
        &plugin(
            n,
            &[
                "rollback",
                "svc",
                "-e",
                "production",
                "--to",
                "svc-1",
                "--at",
                "+2h",
                "--tz",
                "UTC",
            ],
        ),
        0,
    );
    assert!(out.contains("to svc-1 at "), "{out}");
    let value: Value =
        serde_json::from_str(&annotation(&ns, ROLLBACK).await?.context("rollback")?)?;
    assert_eq!(value["to"], "svc-1");
    let at = DateTime::parse_from_rfc3339(value["at"].as_str().context("at")?)?.with_timezone(&Utc);
    assert!(close_to(at, Utc::now() + TimeDelta::hours(2)), "{value}");
    let before = annotation(&ns, ROLLBACK).await?;

    // Refusals name what exists and change nothing.
    let out = plugin(n, &["rollback", "svc", "-e", "prod"]);
    expect(&out, 2);
    assert!(
        stderr(&out).contains("its environments are: staging, production"),
        "{}",
        stderr(&out)
    );
    let out = plugin(n, &["rollback", "svc", "-e", "production", "--to", "svc-2"]);
    expect(&out, 1);
    assert!(
        stderr(&out).contains("never verified healthy in production")
            && stderr(&out).contains("svc-0, svc-1"),
        "{}",
        stderr(&out)
    );
    let out = plugin(n, &["rollback", "svc", "-e", "production", "--to", "svc-9"]);
    expect(&out, 2);
    assert!(
        stderr(&out).contains("no PackitRelease \"svc-9\""),
        "{}",
        stderr(&out)
    );
    let out = plugin(
        n,
        &["rollback", "svc", "-e", "production", "--at", "someday"],
    );
    expect(&out, 1);
    assert!(stderr(&out).contains("tomorrow 08:00"), "{}", stderr(&out));
    assert_eq!(annotation(&ns, ROLLBACK).await?, before);
    Ok(())
}

#[tokio::test]
async fn changelog_and_logs() -> Result<()> {
    apply_crds()?;
    let ns = TestNs::new("plugin-changelog").await?;
    train(&ns).await?;
    let n = ns.name.as_str();

    let out = expect(&plugin(n, &["changelog", "svc-1"]), 0);
    assert_eq!(out, "## svc-1\n\n- Faster builds (#12)\n");
    let out = plugin(n, &["changelog", "svc-2"]);
    expect(&out, 2);
    assert!(
        stderr(&out).contains("svc-2 has no changelog"),
        "{}",
        stderr(&out)
    );
    expect(&plugin(n, &["changelog", "nope"]), 2);

    let out = plugin(n, &["logs", "svc-2"]);
    expect(&out, 2);
    assert!(
        stderr(&out).contains("no build pods (label packit.dev/release=svc-2)"),
        "{}",
        stderr(&out)
    );

    // Every simulated container's log is hack/kwok/pod.log.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "svc-1-service", "labels": { "packit.dev/release": "svc-1" } },
        "spec": { "containers": [{ "name": "builder", "image": "builder" }] }
    }))?;
    let pods: Api<Pod> = ns.api();
    pods.create(&PostParams::default(), &pod).await?;
    support::wait_for(
        &pods,
        "svc-1-service",
        "the build pod to run",
        support::DEFAULT_TIMEOUT,
        |p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
    )
    .await?;
    let out = expect(&plugin(n, &["logs", "svc-1", "--no-follow"]), 0);
    assert!(
        out.starts_with("starting smoke test\n") && out.ends_with("smoke test finished\n"),
        "{out}"
    );
    let out = expect(
        &plugin(n, &["logs", "svc-1", "--no-follow", "--tail", "1"]),
        0,
    );
    assert_eq!(out, "smoke test finished\n");

    // With several pods, each line names its pod and container.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "svc-1-worker", "labels": { "packit.dev/release": "svc-1" } },
        "spec": { "containers": [{ "name": "builder", "image": "builder" }] }
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    support::wait_for(
        &pods,
        "svc-1-worker",
        "the second build pod to run",
        support::DEFAULT_TIMEOUT,
        |p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
    )
    .await?;
    let out = plugin(n, &["logs", "svc-1", "--no-follow"]);
    expect(&out, 0);
    assert!(
        stdout(&out).contains("[svc-1-worker/builder] smoke test finished"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("[svc-1-service/builder] smoke test finished"),
        "{}",
        stdout(&out)
    );
    Ok(())
}

#[test]
fn usage_help_and_unreachable_cluster() -> Result<()> {
    let help = expect(
        &plugin_with(std::path::Path::new("/nonexistent"), "", &["--help"]),
        0,
    );
    assert!(
        help.contains("Exit codes:") && help.contains("kubectl packit rollback"),
        "{help}"
    );
    let out = plugin_with(
        std::path::Path::new("/nonexistent"),
        "",
        &["rollback", "svc"],
    );
    expect(&out, 1);
    assert!(stderr(&out).contains("--environment"), "{}", stderr(&out));

    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: { server: \"http://127.0.0.1:1\" }\n\
         contexts:\n- name: c\n  context: { cluster: c, user: u, namespace: team }\nusers:\n- name: u\n  user: {}\n\
         current-context: c\n",
    )?;
    let out = plugin_with(&kubeconfig, "", &["status"]);
    expect(&out, 3);
    assert!(
        stderr(&out).contains("cannot reach the cluster"),
        "{}",
        stderr(&out)
    );
    let out = plugin_with(&dir.path().join("missing"), "", &["status"]);
    expect(&out, 3);
    assert!(
        stderr(&out).contains("no usable kubeconfig"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

/// With the operator running: the requests the plugin writes are the ones
/// the controller acts on, and status and history show what it did.
#[tokio::test]
async fn the_operator_acts_on_the_plugins_requests() -> Result<()> {
    use packit_operator::plan::ReleasePhase;
    use support::train::{PKD, Train};

    let t = Train::new("plugin-train", |_| {}).await?;
    let (first, first_images) = t.full_release("first").await?;
    let n = t.ns.name.clone();

    // A release asked for with the plugin is built.
    t.service
        .commit("service: second", &[("service.txt", "second")])?;
    t.worker
        .commit("worker: second", &[("worker.txt", "second")])?;
    expect(&plugin(&n, &["release", PKD]), 0);
    let second = t.in_flight().await?;
    assert_ne!(second, first);
    assert_eq!(
        t.release(&second).await?.spec.trigger,
        packit_operator::api::release::Trigger::Manual
    );
    t.build(&second).await?;
    t.wait_phase(&second, ReleasePhase::Released).await?;

    let json: Value =
        serde_json::from_str(&expect(&plugin(&n, &["history", PKD, "-o", "json"]), 0))?;
    let names: Vec<&str> = json
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, [second.as_str(), first.as_str()]);
    assert_eq!(json[0]["trigger"], "Manual");
    let text = expect(&plugin(&n, &["status", PKD]), 0);
    assert!(text.contains(&second), "{text}");

    // A rollback for later is scheduled by the operator, not run.
    expect(
        &plugin(&n, &["rollback", PKD, "-e", "production", "--at", "+1h"]),
        0,
    );
    let scheduled = support::eventually(
        "the rollback to be scheduled",
        support::DEFAULT_TIMEOUT,
        || async {
            Ok(t.pkd()
                .await?
                .status
                .and_then(|s| s.train.scheduled_rollbacks.first().cloned()))
        },
    )
    .await?;
    assert_eq!(scheduled.environment, "production");
    assert!(
        close_to(scheduled.at, Utc::now() + TimeDelta::hours(1)),
        "{scheduled:?}"
    );

    // One for now, to the first release by name, is done.
    expect(
        &plugin(&n, &["rollback", PKD, "-e", "production", "--to", &first]),
        0,
    );
    support::eventually(
        "production back on the first release",
        support::DEFAULT_TIMEOUT,
        || async { Ok((t.images("prod").await?.0 == first_images["service"]).then_some(())) },
    )
    .await?;
    Ok(())
}

/// Following the logs of a release that is still building waits for its
/// build pod instead of giving up, then streams its log (the simulated
/// pods' logs never end, so the test stops the plugin once it is read).
#[tokio::test]
async fn logs_wait_for_the_build_pod() -> Result<()> {
    apply_crds()?;
    let ns = TestNs::new("plugin-logs").await?;
    train(&ns).await?;
    let n = ns.name.as_str();
    let releases: Api<PackitRelease> = ns.api();
    let r: PackitRelease = serde_json::from_value(json!({
        "apiVersion": "packit.dev/v1alpha1",
        "kind": "PackitRelease",
        "metadata": { "name": "svc-3" },
        "spec": {
            "deployment": "svc",
            "trigger": "Manual",
            "components": [{ "name": "service", "source": { "url": "https://example.com/svc.git", "commit": COMMIT } }]
        }
    }))?;
    releases.create(&PostParams::default(), &r).await?;
    releases
        .patch_status(
            "svc-3",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Building" } })),
        )
        .await?;

    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-packit"))
        .env("KUBECONFIG", &cluster().kubeconfig)
        .args(["logs", "svc-3", "-n", n])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // Still waiting a while later: nothing to stream yet.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(
        child.try_wait()?.is_none(),
        "logs gave up before the pod existed"
    );

    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "svc-3-service", "labels": { "packit.dev/release": "svc-3" } },
        "spec": { "containers": [{ "name": "builder", "image": "builder" }] }
    }))?;
    ns.api::<Pod>().create(&PostParams::default(), &pod).await?;
    let stdout = child.stdout.take().context("the plugin's stdout")?;
    let (lines, read) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let finished = support::eventually("the build log", support::DEFAULT_TIMEOUT, || {
        seen.extend(read.try_iter());
        let done = seen.iter().any(|l| l == "smoke test finished");
        let exited = child.try_wait().map(|s| s.is_some());
        async move {
            anyhow::ensure!(!exited?, "logs exited before streaming the log");
            Ok(done.then_some(()))
        }
    })
    .await;
    let _ = child.kill();
    let out = child.wait_with_output()?;
    finished.with_context(|| format!("stdout so far: {seen:?}; stderr: {}", stderr(&out)))?;
    let err = stderr(&out);
    assert!(err.contains("Waiting for the build pods of svc-3"), "{err}");
    assert_eq!(
        seen.first().map(String::as_str),
        Some("starting smoke test"),
        "{seen:?}"
    );
    Ok(())
}

/// `logs --smoke-tests` reads the log of a smoke test's pod that still
/// exists (every simulated container's log is hack/kwok/pod.log) and prints
/// the recorded tail, saying so, for one whose pod is gone; `status` and
/// `history` show the verdicts.
#[tokio::test]
async fn smoke_test_logs_and_verdicts() -> Result<()> {
    apply_crds()?;
    let ns = TestNs::new("plugin-smoke").await?;
    train(&ns).await?;
    let n = ns.name.as_str();

    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "svc-2-staging-checkout-abcde",
                      "labels": { "batch.kubernetes.io/job-name": "svc-2-staging-checkout" } },
        "spec": { "containers": [{ "name": "smoke", "image": "smoke" }], "restartPolicy": "Never" }
    }))?;
    let pods: Api<Pod> = ns.api();
    pods.create(&PostParams::default(), &pod).await?;
    support::wait_for(
        &pods,
        "svc-2-staging-checkout-abcde",
        "the smoke-test pod to run",
        support::DEFAULT_TIMEOUT,
        |p| {
            p.status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|ph| ph != "Pending")
        },
    )
    .await?;
    let t = "2026-11-30T08:00:00Z";
    ns.api::<PackitRelease>()
        .patch_status(
            "svc-2",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": {
                "phase": "StagingFailed",
                "environments": [{ "name": "staging", "deployedAt": t, "failedAt": t,
                    "checks": [{ "name": "error-rate", "result": "Fail", "value": 0.31, "bounds": "max 0.05",
                                 "consecutiveFailures": 3, "measurements": 4, "measuredAt": t }],
                    "jobs": [
                        { "name": "checkout", "job": "svc-2-staging-checkout", "result": "Fail",
                          "startedAt": t, "finishedAt": t, "pod": "svc-2-staging-checkout-abcde",
                          "message": "BackoffLimitExceeded", "logTail": "recorded checkout line\n" },
                        { "name": "login", "job": "svc-2-staging-login", "result": "Pass",
                          "startedAt": t, "finishedAt": t, "pod": "svc-2-staging-login-gone",
                          "logTail": "login ok\n" }
                    ] }]
            } })),
        )
        .await
        .context("writing the verdicts of svc-2")?;

    let out = expect(&plugin(n, &["logs", "svc-2", "--smoke-tests"]), 0);
    assert!(
        out.contains("== smoke test checkout in staging: Fail")
            && out.contains(&format!("Job:     svc-2-staging-checkout (namespace {n})"))
            && out.contains("-- log of pod svc-2-staging-checkout-abcde:\n"),
        "{out}"
    );
    assert!(out.contains("smoke test finished"), "{out}");
    assert!(!out.contains("recorded checkout line"), "{out}");
    assert!(
        out.contains("== smoke test login in staging: Pass")
            && out.contains(
                "-- pod svc-2-staging-login-gone is gone; the log tail recorded on the release:\nlogin ok\n"
            ),
        "{out}"
    );
    // Filters, and the recorded tail of a pod that is gone.
    let out = expect(&plugin(n, &["logs", "svc-2", "--test", "login"]), 0);
    assert!(
        out.contains("login ok") && !out.contains("checkout"),
        "{out}"
    );
    let out = plugin(n, &["logs", "svc-2", "-e", "production"]);
    expect(&out, 2);
    assert!(
        stderr(&out).contains("ran no smoke test in \"production\"; it ran: checkout in staging"),
        "{}",
        stderr(&out)
    );
    let out = plugin(n, &["logs", "svc-1", "--smoke-tests"]);
    expect(&out, 2);
    assert!(
        stderr(&out).contains("release svc-1 has no smoke tests"),
        "{}",
        stderr(&out)
    );
    expect(&plugin(n, &["logs", "nope", "--smoke-tests"]), 2);

    let text = expect(&plugin(n, &["status", "svc"]), 0);
    assert!(text.contains("Checks of svc-2 (in flight):"), "{text}");
    assert!(
        text.contains("error-rate   metric       Fail     0.31 (max 0.05), failed 3 in a row of 4"),
        "{text}"
    );
    assert!(
        text.contains("checkout     smoke test   Fail     pod svc-2-staging-checkout-abcde: BackoffLimitExceeded"),
        "{text}"
    );
    let json: Value =
        serde_json::from_str(&expect(&plugin(n, &["status", "svc", "-o", "json"]), 0))?;
    assert_eq!(
        json[0]["verification"]["environments"][0]["smokeTests"][1]["pod"],
        "svc-2-staging-login-gone"
    );
    let text = expect(&plugin(n, &["history", "svc"]), 0);
    assert!(
        text.contains("staging=failed(error-rate,checkout)"),
        "{text}"
    );
    Ok(())
}
