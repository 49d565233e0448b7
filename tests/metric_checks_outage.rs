//! Prometheus stopped in the middle of a check: the measurements are
//! inconclusive and say why, nothing fails or crashes because of it, and
//! the release goes on once Prometheus is back. Its own test binary,
//! because stopping Prometheus affects every test running beside it.

mod support;

use anyhow::{Context, Result};
use packit_operator::api::checks::CheckResult;
use packit_operator::plan::ReleasePhase;
use serde_json::json;

use support::eventually;
use support::prometheus::Prometheus;
use support::train::{TIMEOUT, Train};

#[tokio::test]
async fn prometheus_stopped_mid_check_is_inconclusive_and_the_release_goes_on() -> Result<()> {
    let p = Prometheus::from_env()?;
    let address = p.address().to_owned();
    let t = Train::new("metric-outage", |s| {
        s["environments"][0]["health"]["soak"] = json!("20s");
        s["environments"][0]["health"]["metrics"] = json!([{
            "name": "error-rate",
            "prometheus": { "address": address },
            "query": "packit_test_error_rate{namespace=\"{{ namespace }}\",release=\"{{ release }}\"}",
            "thresholdRange": { "max": 0.05 },
            "interval": "1s",
            "failureThreshold": 2,
            "onNoData": "Wait",
        }]);
    })
    .await?;
    t.release_now("first").await?;
    let name = t.in_flight().await?;
    let series = format!(
        "packit_test_error_rate{{namespace=\"{}\",release=\"{name}\"}}",
        t.ns.name
    );
    p.set(&t.ns.name, &format!("{series} 0.01\n"))?;
    p.wait_for_value(&series, 0.01).await?;
    t.build(&name).await?;
    let staging_verdict = |result: CheckResult| {
        let (t, name) = (&t, &name);
        async move {
            eventually(&format!("a {result:?} verdict"), TIMEOUT, || async {
                let r = t.release(name).await?;
                Ok(r.status
                    .and_then(|s| s.environments.into_iter().find(|e| e.name == "staging"))
                    .and_then(|e| e.checks.into_iter().find(|c| c.name == "error-rate"))
                    .filter(|c| c.result == result))
            })
            .await
        }
    };
    staging_verdict(CheckResult::Pass).await?;
    p.stop()?;
    let outcome = async {
        let down = staging_verdict(CheckResult::Inconclusive).await?;
        anyhow::ensure!(
            down.message.contains(p.address()) && down.message.contains("unreachable"),
            "{down:?}"
        );
        // Still verifying, not failed, while Prometheus is away.
        let phase = t.release(&name).await?.status.and_then(|s| s.phase);
        anyhow::ensure!(phase == Some(ReleasePhase::Staging), "{phase:?}");
        Ok(())
    }
    .await;
    p.start()?;
    outcome?;
    t.wait_phase(&name, ReleasePhase::Released)
        .await
        .context("the release after Prometheus came back")?;
    let mut t = t;
    assert!(t.op.is_running(), "the operator exited:\n{}", t.op.logs());
    Ok(())
}
