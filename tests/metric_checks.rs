//! Metric checks against a real Prometheus scraping samples the tests set
//! (kwok pods run no application): a bad error rate blocks staging or rolls
//! production back, a good one lets the release through, no data counts by
//! `onNoData`, and a query must return one number.

mod support;

use anyhow::{Context, Result};
use kube::api::{Patch, PatchParams};
use packit_operator::api::checks::{CheckResult, CheckVerdict};
use packit_operator::api::{PackitDeployment, PackitRelease};
use packit_operator::plan::ReleasePhase;
use serde_json::{Value, json};

use support::eventually;
use support::prometheus::Prometheus;
use support::train::{PKD, TIMEOUT, Train};
use support::webhook::Receiver;

/// The series the checks read, per environment and release.
const SERIES: &str = "packit_test_error_rate";

/// A train whose environments check the error rate of their release.
async fn train(prefix: &str, on_no_data: &str, query: Option<&str>) -> Result<(Train, Prometheus)> {
    let prometheus = Prometheus::from_env()?;
    let address = prometheus.address().to_owned();
    let query = query.map_or_else(
        || {
            format!(
                r#"{SERIES}{{namespace="{{{{ namespace }}}}",environment="{{{{ environment }}}}",release="{{{{ release }}}}"}}"#
            )
        },
        str::to_owned,
    );
    let t = Train::new(prefix, |s: &mut Value| {
        for env in s["environments"].as_array_mut().into_iter().flatten() {
            env["health"]["metrics"] = json!([{
                "name": "error-rate",
                "prometheus": { "address": address },
                "query": query,
                "thresholdRange": { "max": 0.05 },
                "interval": "1s",
                "failureThreshold": 2,
                "onNoData": on_no_data,
            }]);
        }
        s["environments"][0]["health"]["rolloutTimeout"] = json!("20s");
    })
    .await?;
    Ok((t, prometheus))
}

/// Sets the error rate every environment reports for each release.
async fn error_rates(p: &Prometheus, t: &Train, rates: &[(&str, &str, f64)]) -> Result<()> {
    let text: String = rates
        .iter()
        .map(|(env, release, rate)| {
            format!(
                "{SERIES}{{namespace=\"{}\",environment=\"{env}\",release=\"{release}\"}} {rate}\n",
                t.ns.name
            )
        })
        .collect();
    p.set(&t.ns.name, &text)?;
    for (env, release, rate) in rates {
        let query = format!(
            r#"{SERIES}{{namespace="{}",environment="{env}",release="{release}"}}"#,
            t.ns.name
        );
        p.wait_for_value(&query, *rate).await?;
    }
    Ok(())
}

/// The error-rate verdict recorded on a release for an environment.
fn verdict(release: &PackitRelease, env: &str) -> Option<CheckVerdict> {
    release
        .status
        .as_ref()?
        .environments
        .iter()
        .find(|e| e.name == env)?
        .checks
        .iter()
        .find(|c| c.name == "error-rate")
        .cloned()
}

/// Waits until `release` ends in `phase`, whatever comes between.
async fn ends(t: &Train, release: &str, phase: ReleasePhase) -> Result<PackitRelease> {
    eventually(&format!("{release} to end {phase:?}"), TIMEOUT, || async {
        let r = t.release(release).await?;
        let now = r.status.as_ref().and_then(|s| s.phase);
        anyhow::ensure!(
            !now.is_some_and(|p| p.is_final() && p != phase),
            "{release} ended {now:?}: {:?}",
            r.status.and_then(|s| s.message)
        );
        Ok((now == Some(phase)).then_some(r))
    })
    .await
}

#[tokio::test]
async fn a_bad_error_rate_blocks_staging() -> Result<()> {
    let (t, p) = train("metric-staging", "Wait", None).await?;
    t.release_now("first").await?;
    let name = t.in_flight().await?;
    error_rates(&p, &t, &[("staging", &name, 0.31)]).await?;
    let before = t.images("prod").await?;
    t.build(&name).await?;
    let failed = ends(&t, &name, ReleasePhase::StagingFailed).await?;
    let message = failed
        .status
        .clone()
        .and_then(|s| s.message)
        .unwrap_or_default();
    assert!(
        message.contains("metric error-rate = 0.31 > max 0.05 (2 of 2 measurements)"),
        "{message}"
    );
    let v = verdict(&failed, "staging").context("a verdict on the release")?;
    assert_eq!(
        (v.result, v.value, v.bounds.as_str()),
        (CheckResult::Fail, Some(0.31), "max 0.05")
    );
    assert!(v.consecutive_failures >= 2, "{v:?}");
    t.assert_event(
        "VerificationFailed",
        &["metric error-rate = 0.31 > max 0.05"],
    )
    .await?;
    // Nothing reached production.
    assert_eq!(t.images("prod").await?, before);
    let metrics = t.op.get("/metrics").await?;
    assert!(
        metrics.contains(r#"packit_check_measurements_total{kind="metric",result="Fail"}"#),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test]
async fn a_good_error_rate_releases_and_a_bad_one_rolls_production_back() -> Result<()> {
    let (t, p) = train("metric-production", "Wait", None).await?;
    // A Slack webhook: the rollback's message names the check, its value
    // and its bounds.
    let slack = Receiver::start(&[]).await?;
    let hooks = json!({ "spec": { "changelog": { "webhooks": [
        { "url": slack.url, "format": "Slack" }
    ] } } });
    t.ns.api::<PackitDeployment>()
        .patch(PKD, &PatchParams::default(), &Patch::Merge(&hooks))
        .await?;
    t.release_now("first").await?;
    let first = t.in_flight().await?;
    error_rates(
        &p,
        &t,
        &[("staging", &first, 0.01), ("production", &first, 0.0)],
    )
    .await?;
    let first_images = t.build(&first).await?;
    let released = ends(&t, &first, ReleasePhase::Released).await?;
    let v = verdict(&released, "production").context("production verdict")?;
    assert_eq!((v.result, v.value), (CheckResult::Pass, Some(0.0)));

    t.release_now("second").await?;
    let second = eventually("a second release", TIMEOUT, || async {
        let name = t.in_flight().await?;
        Ok((name != first).then_some(name))
    })
    .await?;
    // Staging is fine; production goes bad during the soak.
    error_rates(
        &p,
        &t,
        &[
            ("staging", &first, 0.01),
            ("production", &first, 0.0),
            ("staging", &second, 0.02),
            ("production", &second, 0.4),
        ],
    )
    .await?;
    t.build(&second).await?;
    let rolled = ends(&t, &second, ReleasePhase::RolledBack).await?;
    let message = rolled
        .status
        .clone()
        .and_then(|s| s.message)
        .unwrap_or_default();
    assert!(
        message.contains("metric error-rate = 0.4 > max 0.05"),
        "{message}"
    );
    assert_eq!(
        verdict(&rolled, "staging").map(|v| v.result),
        Some(CheckResult::Pass)
    );
    // The phase is written before the workloads are patched back.
    let first_pair = (
        first_images["service"].clone(),
        first_images["worker"].clone(),
    );
    eventually(
        "production runs the first release again",
        TIMEOUT,
        || async { Ok((t.images("prod").await? == first_pair).then_some(())) },
    )
    .await?;
    let message = eventually("the rollback on Slack", TIMEOUT, || async {
        Ok(slack
            .received()
            .into_iter()
            .find(|r| r.header("X-Packit-Event") == Some("RolledBack")))
    })
    .await?;
    let blocks = message.json()?["blocks"].to_string();
    assert!(
        blocks.contains("• metric `error-rate`: value `0.4`, bounds `max 0.05` (2 failed in a row"),
        "{blocks}"
    );
    assert!(blocks.contains("rolled back in production"), "{blocks}");
    Ok(())
}

#[tokio::test]
async fn no_data_fails_with_fail_and_passes_with_pass() -> Result<()> {
    let (failing, _) = train("metric-nodata-fail", "Fail", None).await?;
    let (passing, _) = train("metric-nodata-pass", "Pass", None).await?;
    failing.release_now("first").await?;
    passing.release_now("first").await?;
    let (f, p) = (failing.in_flight().await?, passing.in_flight().await?);
    failing.build(&f).await?;
    passing.build(&p).await?;
    let failed = ends(&failing, &f, ReleasePhase::StagingFailed).await?;
    let v = verdict(&failed, "staging").context("verdict")?;
    assert_eq!(v.result, CheckResult::Inconclusive);
    assert!(v.message.contains("no data"), "{v:?}");
    ends(&passing, &p, ReleasePhase::Released).await?;
    Ok(())
}

#[tokio::test]
async fn no_data_with_wait_fails_once_the_time_is_up() -> Result<()> {
    let (t, _) = train("metric-nodata-wait", "Wait", None).await?;
    t.release_now("first").await?;
    let name = t.in_flight().await?;
    t.build(&name).await?;
    let failed = ends(&t, &name, ReleasePhase::StagingFailed).await?;
    let message = failed.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains("error-rate had no passing measurement"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_query_returning_several_series_is_a_failed_measurement() -> Result<()> {
    let query = format!(r#"{SERIES}{{namespace="{{{{ namespace }}}}"}}"#);
    let (t, p) = train("metric-series", "Pass", Some(&query)).await?;
    t.release_now("first").await?;
    let name = t.in_flight().await?;
    error_rates(
        &p,
        &t,
        &[("staging", &name, 0.0), ("production", &name, 0.0)],
    )
    .await?;
    t.build(&name).await?;
    let failed = ends(&t, &name, ReleasePhase::StagingFailed).await?;
    let v = verdict(&failed, "staging").context("verdict")?;
    assert_eq!(v.result, CheckResult::Fail);
    assert!(
        v.message
            .contains("the query returned 2 series; it must return one number"),
        "{v:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_query_variable_is_refused_as_invalid_spec() -> Result<()> {
    let (t, _) = train("metric-invalid", "Wait", Some(r#"up{job="{{ nope }}"}"#)).await?;
    let cond = eventually("InvalidSpec", TIMEOUT, || async {
        Ok(t.pkd()
            .await?
            .status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "InvalidSpec"))
            .filter(|c| c.status == "True"))
    })
    .await?;
    assert!(
        cond.message.contains("unknown variable {{ nope }}"),
        "{}",
        cond.message
    );
    // What the schema can tell is refused at apply time.
    let mut spec = serde_json::to_value(t.pkd().await?.spec)?;
    for (change, refusal) in [
        (json!({}), "thresholdRange needs min, max or both"),
        (
            json!({ "min": 1, "max": 0 }),
            "thresholdRange.min must not be above max",
        ),
    ] {
        spec["environments"][0]["health"]["metrics"][0]["thresholdRange"] = change;
        let patch = json!({ "spec": spec });
        let err =
            t.ns.api::<packit_operator::api::PackitDeployment>()
                .patch(
                    support::train::PKD,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
                .err()
                .with_context(|| format!("{refusal}: accepted"))?;
        assert!(err.to_string().contains(refusal), "{err}");
    }
    for (field, value) in [("query", json!("")), ("interval", json!("soon"))] {
        spec["environments"][0]["health"]["metrics"][0]["thresholdRange"] = json!({ "max": 1 });
        spec["environments"][0]["health"]["metrics"][0][field] = value;
        let patch = json!({ "spec": spec });
        let refused =
            t.ns.api::<packit_operator::api::PackitDeployment>()
                .patch(
                    support::train::PKD,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await;
        assert!(refused.is_err(), "{field}: accepted");
        spec["environments"][0]["health"]["metrics"][0]["query"] = json!("vector(0)");
        spec["environments"][0]["health"]["metrics"][0]["interval"] = json!("1s");
    }
    Ok(())
}
