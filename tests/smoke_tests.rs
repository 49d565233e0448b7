//! Smoke-test Jobs on the real control plane (its Job controller; kwok
//! plays the pods, and serves hack/kwok/pod.log as every container's log):
//! a passing test lets the release through and is deleted with it, a
//! failing one blocks staging and names its pod, one that runs too long
//! fails at its timeout, and one the API refuses fails with the API's
//! reason.

mod support;

use anyhow::{Context, Result};
use k8s_openapi::api::batch::v1::Job;
use kube::api::ListParams;
use packit_operator::api::PackitRelease;
use packit_operator::api::checks::{JobResult, JobVerdict};
use packit_operator::plan::ReleasePhase;
use serde_json::{Value, json};

use support::eventually;
use support::train::{TIMEOUT, Train};

/// A train whose staging runs the `checkout` smoke test, its pod in the
/// given kwok mode.
async fn train(prefix: &str, mode: &str, timeout: &str, image: Option<&str>) -> Result<Train> {
    let mut container = json!({ "name": "smoke", "command": ["/smoke"] });
    if let Some(image) = image {
        container["image"] = json!(image);
    }
    Train::new(prefix, |s: &mut Value| {
        s["historyLimit"] = json!(1);
        s["environments"][0]["health"]["jobs"] = json!([{
            "name": "checkout",
            "timeout": timeout,
            "template": {
                "metadata": { "labels": { "sim.packit.dev/mode": mode } },
                "spec": { "containers": [container] }
            }
        }]);
    })
    .await
}

/// Builds a first release and waits for staging to fail it.
async fn fails_in_staging(t: &Train) -> Result<PackitRelease> {
    t.release_now("first").await?;
    let name = t.in_flight().await?;
    t.build(&name).await?;
    t.wait_phase(&name, ReleasePhase::StagingFailed).await
}

fn verdict(release: &PackitRelease) -> Option<JobVerdict> {
    release
        .status
        .as_ref()?
        .environments
        .iter()
        .find(|e| e.name == "staging")?
        .jobs
        .iter()
        .find(|j| j.name == "checkout")
        .cloned()
}

fn message(release: &PackitRelease) -> String {
    release
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

async fn smoke_jobs(t: &Train, release: &str) -> Result<Vec<Job>> {
    let selector = format!("packit.dev/smoke-test,packit.dev/release={release}");
    Ok(t.ns
        .api::<Job>()
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

#[tokio::test]
async fn a_passing_smoke_test_lets_the_release_through_and_goes_with_its_history() -> Result<()> {
    let t = train(
        "smoke-pass",
        "ready",
        "2m",
        Some("registry.example/smoke:1"),
    )
    .await?;
    let (first, _) = t.full_release("first").await?;
    let released = t.release(&first).await?;
    let v = verdict(&released).context("a smoke-test verdict")?;
    assert_eq!(v.result, JobResult::Pass, "{v:?}");
    assert!(
        v.pod.as_deref().is_some_and(|p| p.starts_with(&v.job)),
        "{v:?}"
    );
    assert!(v.log_tail.ends_with("smoke test finished"), "{v:?}");
    let jobs = smoke_jobs(&t, &first).await?;
    assert_eq!(jobs.len(), 1, "one Job per release and environment");
    let env: Vec<_> = jobs[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers[0].env.clone().unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    assert!(
        env.contains(&("PACKIT_RELEASE".into(), first.clone())),
        "{env:?}"
    );
    t.assert_event("SmokeTestStarted", &[&first, "checkout", "staging"])
        .await?;
    // A second release replaces the first in the history of one: the first
    // release's Job goes with it.
    let (second, _) = t.full_release("second").await?;
    eventually("the first release's Job to be deleted", TIMEOUT, || async {
        Ok(smoke_jobs(&t, &first).await?.is_empty().then_some(()))
    })
    .await?;
    assert_eq!(smoke_jobs(&t, &second).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_failing_smoke_test_blocks_staging_and_names_its_pod() -> Result<()> {
    let t = train("smoke-fail", "fail", "2m", Some("registry.example/smoke:1")).await?;
    let before = t.images("prod").await?;
    let failed = fails_in_staging(&t).await?;
    let v = verdict(&failed).context("a smoke-test verdict")?;
    let pod = v.pod.clone().context("the failed pod")?;
    assert_eq!(v.result, JobResult::Fail);
    assert!(
        v.message
            .contains(&format!("pod {pod}: container smoke exited with code 1")),
        "{v:?}"
    );
    assert!(v.log_tail.contains("smoke test finished"), "{v:?}");
    let why = message(&failed);
    assert!(why.contains("smoke test checkout failed"), "{why}");
    assert!(why.contains(&pod), "{why}");
    t.assert_event("VerificationFailed", &["smoke test checkout failed", &pod])
        .await?;
    assert_eq!(t.images("prod").await?, before, "production untouched");
    let metrics = t.op.get("/metrics").await?;
    assert!(
        metrics.contains(r#"packit_check_measurements_total{kind="job",result="Fail"} 1"#),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test]
async fn a_smoke_test_that_runs_too_long_fails_at_its_timeout() -> Result<()> {
    let t = train(
        "smoke-slow",
        "not-ready",
        "4s",
        Some("registry.example/smoke:1"),
    )
    .await?;
    let failed = fails_in_staging(&t).await?;
    let why = message(&failed);
    // Whichever comes first: the operator's clock or the Job's deadline.
    assert!(
        why.contains("smoke test checkout did not finish within 4s")
            || why.contains("smoke test checkout failed: DeadlineExceeded"),
        "{why}"
    );
    Ok(())
}

#[tokio::test]
async fn a_job_the_api_refuses_fails_the_release_with_the_reason() -> Result<()> {
    // No image: the schema lets the template through, the API server's Job
    // validation does not.
    let t = train("smoke-refused", "ready", "2m", None).await?;
    let failed = fails_in_staging(&t).await?;
    let why = message(&failed);
    assert!(
        why.contains("smoke test checkout failed: the Job could not be created"),
        "{why}"
    );
    assert!(why.contains("image"), "{why}");
    Ok(())
}
