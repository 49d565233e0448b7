//! One train per workload, against the local cluster: a second train that
//! reaches for a workload another owns writes nothing and both are told;
//! the workload passes to it when the owner is deleted; two claims racing
//! on one workload have one winner; a change made behind the train's back
//! is reverted or held by policy; a hold blocks new releases; a fight is
//! stopped.
//!
//! The operator runs cluster-wide, as the chart's default does, picking the
//! test's trains by a label so other tests' trains stay out of it.

mod support;

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams, PostParams};
use packit_operator::api::PackitDeployment;
use packit_operator::api::release::TargetImage;
use packit_operator::deploy::{self, Owner};
use packit_operator::labels;
use packit_operator::plan::ReleasePhase;
use serde_json::json;
use support::operator::Operator;
use support::train::{PKD, TIMEOUT, Train};
use support::workloads::deployment;
use support::{SimMode, TestNs, eventually};

const SELECT: &str = "test.packit.dev/operator";

/// Labels the namespace's train for an operator selecting `value`.
fn select(ns: &TestNs, value: &str) -> Result<()> {
    ns.kubectl(&[
        "label",
        "packitdeployment",
        PKD,
        &format!("{SELECT}={value}"),
    ])?;
    Ok(())
}

/// A train the cluster-wide operator of `value` drives.
fn selected(ns: &TestNs, value: &str) -> Result<Operator> {
    select(ns, value)?;
    Operator::start_selecting(&ns.name, &format!("{SELECT}={value}"))
}

async fn prod_service(ns: &str) -> Result<Deployment> {
    let api = kube::Api::<Deployment>::namespaced(support::cluster().client().await?, ns);
    Ok(api.get("service-prod").await?)
}

fn annotation(d: &Deployment, key: &str) -> Option<String> {
    d.metadata.annotations.as_ref()?.get(key).cloned()
}

fn image(d: &Deployment) -> Option<String> {
    d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
        .image
        .clone()
}

async fn condition(t: &Train, type_: &str) -> Result<Option<(String, String, String)>> {
    let pkd = t.pkd().await?;
    Ok(pkd
        .status
        .into_iter()
        .flat_map(|s| s.conditions)
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.reason, c.message)))
}

async fn wait_condition(t: &Train, type_: &str, parts: &[&str]) -> Result<String> {
    eventually(&format!("{type_} naming {parts:?}"), TIMEOUT, || async {
        Ok(condition(t, type_)
            .await?
            .filter(|(s, _, m)| s == "True" && parts.iter().all(|p| m.contains(p)))
            .map(|(_, reason, _)| reason))
    })
    .await
}

fn plugin(ns: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-packit"))
        .args(args)
        .args(["-n", ns])
        .env("KUBECONFIG", &support::cluster().kubeconfig)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "kubectl packit {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

#[tokio::test]
async fn a_second_train_writes_nothing_to_a_claimed_workload_until_the_owner_is_gone() -> Result<()>
{
    let a = Train::with_operator("own-a", |_| {}, |ns| selected(ns, &ns.name)).await?;
    let shared = a.ns.name.clone();
    let (_, a_images) = a.full_release("first").await?;
    let owned = prod_service(&shared).await?;
    assert_eq!(
        annotation(&owned, labels::OWNER).as_deref(),
        Some(format!("{shared}/{PKD}").as_str())
    );

    // The second train's production is the first one's.
    let b = Train::with_operator(
        "own-b",
        |spec| spec["environments"][1]["namespace"] = json!(shared),
        |ns| {
            kube_annotate_namespace(&shared, &ns.name)?;
            select(ns, &shared)?;
            // Its own operator selects nothing: the shared one drives both.
            Operator::start_selecting(&ns.name, &format!("{SELECT}=none-{}", ns.name))
        },
    )
    .await?;
    let other = format!("{}/{PKD}", b.ns.name);
    let reason = wait_condition(&b, "TargetConflict", &[&format!("{shared}/{PKD}")]).await?;
    assert_eq!(reason, "ClaimedByOther");
    b.assert_event(
        "TargetConflict",
        &[&format!("{shared}/{PKD}"), "service-prod"],
    )
    .await?;
    // The owner is told who else reaches for its workload.
    let reason = wait_condition(&a, "TargetConflict", &[&other]).await?;
    assert_eq!(reason, "Contended");
    a.assert_event("TargetConflict", &[&other]).await?;

    // The second train's release passes its own staging and then waits.
    b.release_now("b1").await?;
    let name = b.in_flight().await?;
    let b_images = b.build(&name).await?;
    eventually(
        "the second release to wait for production",
        TIMEOUT,
        || async {
            let f = b.pkd().await?.status.and_then(|s| s.train.in_flight);
            Ok(f.filter(|f| {
                f.environment.as_deref() == Some("production")
                    && f.message
                        .as_deref()
                        .is_some_and(|m| m.contains("driven by"))
            }))
        },
    )
    .await?;
    let untouched = prod_service(&shared).await?;
    assert_eq!(untouched.metadata.generation, owned.metadata.generation);
    assert_eq!(image(&untouched), a_images.get("service").cloned());

    // The owner goes: its workloads are given back and the second takes
    // them over.
    a.ns.kubectl(&["delete", "packitdeployment", PKD, "--wait=false"])?;
    b.wait_phase(&name, ReleasePhase::Released).await?;
    let taken = prod_service(&shared).await?;
    assert_eq!(annotation(&taken, labels::OWNER), Some(other.clone()));
    assert_eq!(image(&taken), b_images.get("service").cloned());
    eventually("the deleted train to be gone", TIMEOUT, || async {
        let api = a.ns.api::<PackitDeployment>();
        Ok(api.get_opt(PKD).await?.is_none().then_some(()))
    })
    .await?;
    Ok(())
}

fn kube_annotate_namespace(ns: &str, from: &str) -> Result<()> {
    support::kubectl(&[
        "annotate",
        "namespace",
        ns,
        &format!("{}={from}", labels::ALLOW_FROM),
    ])?;
    Ok(())
}

#[tokio::test]
async fn of_two_claims_racing_for_one_workload_one_wins() -> Result<()> {
    support::apply_crds()?;
    let ns = TestNs::new("own-race").await?;
    let api = ns.api::<Deployment>();
    let d = deployment("contested", "registry.invalid/app:v1", 1, SimMode::Ready)?;
    api.create(&PostParams::default(), &d).await?;
    // Once rolled out nobody else writes it, so only the two claims race.
    let read = eventually("the workload to roll out", TIMEOUT, || async {
        let d = api.get("contested").await?;
        Ok(support::workloads::deployment_rolled_out(&d).then_some(d))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let read = api.get("contested").await.unwrap_or(read);
    assert!(annotation(&read, labels::OWNER).is_none());
    let client = support::cluster().client().await?;
    let owners = ["team-a", "team-b"].map(|n| Owner {
        name: "train".into(),
        namespace: n.into(),
    });
    let images = |tag: &str| {
        [TargetImage {
            kind: "Deployment".into(),
            name: "contested".into(),
            container: "app".into(),
            image: format!("registry.invalid/app:{tag}"),
        }]
    };
    let (a, b) = (images("a"), images("b"));
    // Both read it free and write at once: each claims on the version it
    // read, so one write fails.
    let (first, second) = tokio::join!(
        deploy::apply_images(&client, &ns.name, &owners[0], &a),
        deploy::apply_images(&client, &ns.name, &owners[1], &b),
    );
    let won: Vec<usize> = [first.is_ok(), second.is_ok()]
        .iter()
        .enumerate()
        .filter(|(_, ok)| **ok)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(won.len(), 1, "{first:?} {second:?}");
    let loser = if won[0] == 0 { second } else { first };
    let message = loser.err().context("a refused write")?.to_string();
    assert!(
        message.contains("modified") || message.contains("driven by"),
        "{message}"
    );
    let now = api.get("contested").await?;
    assert_eq!(
        annotation(&now, labels::OWNER),
        Some(owners[won[0]].claim_value())
    );
    assert_eq!(
        image(&now),
        Some(format!("registry.invalid/app:{}", ["a", "b"][won[0]]))
    );
    // The loser, trying again, is refused by name and writes nothing.
    let retry =
        deploy::apply_images(&client, &ns.name, &owners[1 - won[0]], &[a, b][1 - won[0]]).await;
    let message = retry.err().context("a refused retry")?.to_string();
    assert!(message.contains("driven by PackitDeployment"), "{message}");
    assert_eq!(
        api.get("contested").await?.metadata.generation,
        now.metadata.generation
    );
    Ok(())
}

/// `kubectl set image` as a person in an incident would (field manager
/// `kubectl-set`).
fn set_image(ns: &TestNs, image: &str) -> Result<()> {
    ns.kubectl(&[
        "set",
        "image",
        "deployment/service-prod",
        &format!("app={image}"),
    ])?;
    Ok(())
}

async fn wait_image(ns: &str, want: &str) -> Result<()> {
    eventually(&format!("service-prod to run {want}"), TIMEOUT, || async {
        Ok((image(&prod_service(ns).await?).as_deref() == Some(want)).then_some(()))
    })
    .await
}

/// Sets production's drift policy.
async fn on_drift(t: &Train, policy: &str) -> Result<()> {
    let patch = json!([{ "op": "add", "path": "/spec/environments/1/onDrift", "value": policy }]);
    t.ns.api::<PackitDeployment>()
        .patch(
            PKD,
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(patch)?),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn changes_behind_the_trains_back_are_reverted_or_held_and_fights_stopped() -> Result<()> {
    let t = Train::with_operator("own-drift", |_| {}, |ns| selected(ns, &ns.name)).await?;
    let ns = t.ns.name.clone();
    let (_, images) = t.full_release("first").await?;
    let released = images.get("service").context("a service image")?.clone();

    // Revert (the default): put back, and the writer is named.
    set_image(&t.ns, "registry.invalid/hotfix:1")?;
    wait_image(&ns, &released).await?;
    t.assert_event(
        "DriftReverted",
        &["kubectl-set", "registry.invalid/hotfix:1"],
    )
    .await?;

    // Hold: the change stays, the workload is held, the train says so.
    on_drift(&t, "Hold").await?;
    set_image(&t.ns, "registry.invalid/hotfix:2")?;
    let held = eventually("the drifted workload to be held", TIMEOUT, || async {
        Ok(annotation(&prod_service(&ns).await?, labels::HOLD))
    })
    .await?;
    assert!(held.contains("kubectl-set"), "{held}");
    t.assert_event("DriftHeld", &["registry.invalid/hotfix:2"])
        .await?;
    wait_condition(&t, "Held", &["production", "hotfix:2"]).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = prod_service(&ns).await?;
    assert_eq!(image(&still).as_deref(), Some("registry.invalid/hotfix:2"));

    // A new release passes staging but waits while production is held.
    t.release_now("second").await?;
    let second = t.in_flight().await?;
    let second_images = t.build(&second).await?;
    eventually("the release to wait on the hold", TIMEOUT, || async {
        let f = t.pkd().await?.status.and_then(|s| s.train.in_flight);
        Ok(f.filter(|f| {
            f.environment.as_deref() == Some("production")
                && f.message.as_deref().is_some_and(|m| m.contains("held"))
        }))
    })
    .await?;
    assert_eq!(
        image(&prod_service(&ns).await?).as_deref(),
        Some("registry.invalid/hotfix:2")
    );

    // Lifted with the plugin: the train takes over and the release rolls out.
    let said = plugin(&ns, &["unhold", PKD, "-e", "production"])?;
    assert!(said.contains("Lifted"), "{said}");
    t.wait_phase(&second, ReleasePhase::Released).await?;
    let service = second_images.get("service").context("a service image")?;
    wait_image(&ns, service).await?;

    // Someone keeps changing it: after a few reverts in a minute the
    // operator stops and waits for a person.
    on_drift(&t, "Revert").await?;
    let mut stopped = None;
    for i in 0..30 {
        set_image(&t.ns, &format!("registry.invalid/fight:{i}"))?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stopped = annotation(&prod_service(&ns).await?, labels::FIGHTING);
        if stopped.is_some() {
            break;
        }
    }
    assert_eq!(stopped.as_deref(), Some("kubectl-set"));
    wait_condition(&t, "Fighting", &["kubectl-set"]).await?;
    t.assert_event("Fighting", &["kubectl-set"]).await?;
    plugin(&ns, &["unhold", PKD])?;
    wait_image(&ns, service).await?;
    eventually("the fight to be over", TIMEOUT, || async {
        Ok(condition(&t, "Fighting")
            .await?
            .filter(|(s, _, _)| s == "False")
            .map(drop))
    })
    .await?;
    Ok(())
}
