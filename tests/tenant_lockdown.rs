//! A PackitDeployment is tenant input: without the operator's opening flags
//! it may not use git sources on the operator's disk, nor point HTTP checks
//! or webhooks at loopback or the metadata endpoint, nor name a Secret by a
//! path. The other tests run the operator with the openings
//! (`support::operator::OPEN`) and show the same specs working.

mod support;

use anyhow::{Context, Result, ensure};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ListParams, Patch, PatchParams};
use packit_operator::api::{PackitDeployment, PackitRelease};
use packit_operator::plan::ReleasePhase;
use serde_json::json;

use support::eventually;
use support::operator::Operator;
use support::train::{PKD, TIMEOUT, Train};
use support::webhook::Receiver;

/// The InvalidSpec condition once it is true.
async fn invalid_spec(t: &Train, reason: &str) -> Result<Condition> {
    eventually(&format!("InvalidSpec {reason}"), TIMEOUT, || async {
        let pkd = t.pkd().await?;
        let found = pkd
            .status
            .into_iter()
            .flat_map(|s| s.conditions)
            .find(|c| c.type_ == "InvalidSpec" && c.status == "True" && c.reason == reason);
        Ok(found)
    })
    .await
}

async fn patch_spec(t: &Train, spec: serde_json::Value) -> Result<()> {
    t.ns.api::<PackitDeployment>()
        .patch(
            PKD,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn local_sources_need_the_flag() -> Result<()> {
    let t = Train::with_operator(
        "lockdown-src",
        |_| {},
        |ns| Operator::start_locked_down(&ns.name, &[]),
    )
    .await?;
    let c = invalid_spec(&t, "SourceNotAllowed").await?;
    ensure!(
        c.message
            .starts_with("spec.components[0].source.url: \"file://")
            && c.message.contains("--allow-local-sources"),
        "{}",
        c.message
    );
    t.assert_event(
        "InvalidSpec",
        &["spec.components[0].source.url", "--allow-local-sources"],
    )
    .await?;
    // Nothing was fetched or started.
    let releases =
        t.ns.api::<PackitRelease>()
            .list(&ListParams::default())
            .await?;
    ensure!(releases.items.is_empty(), "{:?}", releases.items);
    Ok(())
}

#[tokio::test]
async fn literal_refused_addresses_and_secret_paths_are_invalid_specs() -> Result<()> {
    let receiver = Receiver::start(&[]).await?;
    let url = receiver.url.clone();
    let t = Train::with_operator(
        "lockdown-literal",
        |spec| spec["changelog"] = json!({ "webhooks": [{ "url": url }] }),
        |ns| Operator::start_locked_down(&ns.name, &["--allow-local-sources"]),
    )
    .await?;
    let c = invalid_spec(&t, "AddressNotAllowed").await?;
    ensure!(
        c.message
            .starts_with("spec.changelog.webhooks[0].url: 127.0.0.1:")
            && c.message.contains("is refused: a loopback address")
            && c.message.contains("--allow-cidrs"),
        "{}",
        c.message
    );

    // The node's metadata endpoint, as an HTTP check.
    let pkd = t.pkd().await?;
    let mut environments = serde_json::to_value(&pkd.spec.environments)?;
    environments[0]["health"]["httpChecks"] =
        json!([{ "url": "http://169.254.169.254/latest/meta-data/" }]);
    patch_spec(
        &t,
        json!({ "changelog": { "webhooks": [] }, "environments": environments }),
    )
    .await?;
    eventually("the metadata endpoint refused", TIMEOUT, || async {
        let c = invalid_spec(&t, "AddressNotAllowed").await?;
        Ok(c.message
            .starts_with(
                "spec.environments[0].health.httpChecks[0].url: 169.254.169.254:80 is refused: a link-local address",
            )
            .then_some(()))
    })
    .await?;

    // A Secret "name" that would climb out of the namespace in the path.
    environments[0]["health"]["httpChecks"] = json!([]);
    patch_spec(
        &t,
        json!({
            "environments": environments,
            "changelog": { "webhooks": [{
                "url": "https://hooks.example.com/packit",
                "secretRef": { "name": "../../../namespaces/default/secrets/token" }
            }] }
        }),
    )
    .await?;
    eventually("the Secret path refused", TIMEOUT, || async {
        let c = invalid_spec(&t, "SpecInvalid").await?;
        Ok(c.message
            .starts_with("spec.changelog.webhooks[0].secretRef.name: \"../../../namespaces")
            .then_some(()))
    })
    .await?;
    ensure!(receiver.received().is_empty());
    Ok(())
}

#[tokio::test]
async fn names_resolving_to_loopback_fail_checks_and_webhooks() -> Result<()> {
    // Both answer 200 to anything; neither may be reached.
    let app = Receiver::start(&[]).await?;
    let hook = Receiver::start(&[]).await?;
    let by_name = |r: &Receiver| r.url.replace("127.0.0.1", "localhost");
    let (check, webhook) = (by_name(&app), by_name(&hook));
    let t = Train::with_operator(
        "lockdown-names",
        |spec| {
            spec["environments"][0]["health"]["httpChecks"] =
                json!([{ "url": check, "interval": "1s", "failureThreshold": 1 }]);
            spec["changelog"] = json!({ "webhooks": [{ "url": webhook }] });
        },
        |ns| Operator::start_locked_down(&ns.name, &["--allow-local-sources"]),
    )
    .await?;
    t.release_now("first").await?;
    let name = t.in_flight().await?;
    t.build(&name).await?;
    let failed = t.wait_phase(&name, ReleasePhase::StagingFailed).await?;
    let message = failed
        .status
        .and_then(|s| s.message)
        .context("a failure message")?;
    ensure!(
        message.contains(&check)
            && message.contains("localhost (")
            && message.contains("is refused: a loopback address (opened by --allow-cidrs)"),
        "{message}"
    );
    t.assert_event(
        "NotificationFailed",
        &[&name, "is refused: a loopback address", "not retried"],
    )
    .await?;
    ensure!(app.received().is_empty(), "the check reached the app");
    ensure!(hook.received().is_empty(), "the webhook was delivered");
    Ok(())
}
