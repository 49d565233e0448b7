//! Two operator replicas with leader election on one Lease: only the holder
//! acts; when it dies mid-release the other takes over after the lease
//! expires and finishes the release, without doing anything twice.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ListParams, PostParams};
use packit_operator::api::PackitRelease;
use packit_operator::plan::ReleasePhase;
use serde_json::json;

use support::operator::Operator;
use support::train::{PKD, TIMEOUT, Train};
use support::{TestNs, apply_crds, eventually};

const LEASE: &str = "packit-operator";

/// `run` arguments for leader election on [`LEASE`] in `ns`, as `instance`.
fn election(ns: &str, instance: &str, duration: Duration) -> Vec<String> {
    [
        "--leader-election",
        "--leader-election-namespace",
        ns,
        "--leader-election-lease",
        LEASE,
        "--lease-duration",
        &format!("{}s", duration.as_secs()),
        "--instance",
        instance,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn start(ns: &str, instance: &str, duration: Duration) -> Result<Operator> {
    let args = election(ns, instance, duration);
    Operator::start_with_args(ns, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The instance part of a holder identity (`<instance>_<suffix>`).
fn instance(holder: &str) -> &str {
    holder.split('_').next().unwrap_or(holder)
}

fn time(t: &Option<MicroTime>) -> Result<DateTime<Utc>> {
    let t = t.as_ref().context("a lease time")?;
    DateTime::from_timestamp_micros(t.0.as_microsecond()).context("a lease time in range")
}

async fn lease(api: &Api<Lease>) -> Result<LeaseSpec> {
    api.get(LEASE).await?.spec.context("a lease spec")
}

/// Waits until `who` (an instance name) holds the lease; returns its spec.
async fn held_by(api: &Api<Lease>, who: &str, timeout: Duration) -> Result<LeaseSpec> {
    eventually(&format!("{who} to hold the lease"), timeout, || async {
        let spec = lease(api).await?;
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        Ok((instance(holder) == who).then_some(spec))
    })
    .await
}

/// Waits until some instance holds the lease; returns its name.
async fn leader(api: &Api<Lease>) -> Result<String> {
    eventually("a leader", TIMEOUT, || async {
        let spec = lease(api).await?;
        Ok(spec
            .holder_identity
            .filter(|h| !h.is_empty())
            .map(|h| instance(&h).to_owned()))
    })
    .await
}

async fn standing_by(op: &Operator) -> Result<()> {
    eventually("the standby to see the lease held", TIMEOUT, || async {
        Ok(op.logs().contains("standing by").then_some(()))
    })
    .await
}

/// The deployment's Events as (reason, message, reporting instance).
async fn events(ns: &TestNs) -> Result<Vec<(String, String, String)>> {
    let events = ns.api::<Event>().list(&ListParams::default()).await?;
    Ok(events
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(PKD))
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
                e.reporting_instance.unwrap_or_default(),
            )
        })
        .collect())
}

fn deployed_to<'a>(
    events: &'a [(String, String, String)],
    env: &str,
) -> Vec<&'a (String, String, String)> {
    let text = format!("deployed to {env}");
    events
        .iter()
        .filter(|(reason, message, _)| reason == "Deployed" && message.ends_with(&text))
        .collect()
}

#[tokio::test]
async fn the_standby_takes_over_a_release_when_the_leader_dies() -> Result<()> {
    const DURATION: Duration = Duration::from_secs(8);
    let mut t = Train::with_operator(
        "leader-failover",
        // A long staging soak: the leader dies while verifying staging.
        |s| s["environments"][0]["health"]["soak"] = json!("10s"),
        |ns| start(&ns.name, "op-a", DURATION),
    )
    .await?;
    let mut b = start(&t.ns.name, "op-b", DURATION)?;
    let leases = t.ns.api::<Lease>();
    let first = leader(&leases).await?;
    let second = if first == "op-a" { "op-b" } else { "op-a" };
    let (lead, stand) = if first == "op-a" {
        (&t.op, &b)
    } else {
        (&b, &t.op)
    };
    standing_by(stand).await?;
    // Both are live and ready; the gauge tells which one leads.
    for (op, leads) in [(lead, 1), (stand, 0)] {
        assert_eq!(op.get("/readyz").await?, "ok\n");
        let metrics = op.get("/metrics").await?;
        assert!(
            metrics.contains(&format!("\npackit_leader {leads}\n")),
            "{metrics}"
        );
    }
    let start_generations = t.generations().await?;

    t.release_now("first").await?;
    let name = t.in_flight().await?;
    let images = t.build(&name).await?;
    t.wait_phase(&name, ReleasePhase::Staging).await?;
    eventually("staging deployed and its Event", TIMEOUT, || async {
        let on_staging =
            t.images("stg").await? == (images["service"].clone(), images["worker"].clone());
        let evs = events(&t.ns).await?;
        Ok((on_staging && !deployed_to(&evs, "staging").is_empty()).then_some(()))
    })
    .await?;
    // So far only the leader acted: every Event is its own, and the
    // standby never ran a reconcile.
    let evs = events(&t.ns).await?;
    ensure!(
        evs.iter().all(|(_, _, who)| *who == first),
        "Events not from the leader {first}: {evs:?}"
    );
    let (lead, stand) = if first == "op-a" {
        (&t.op, &b)
    } else {
        (&b, &t.op)
    };
    assert!(lead.logs().contains("reconciled"), "{}", lead.logs());
    assert!(!stand.logs().contains("reconcile"), "{}", stand.logs());

    // SIGKILL: no chance to hand the lease over.
    let before = lease(&leases).await?;
    let killed = Instant::now();
    if first == "op-a" {
        t.op.kill();
    } else {
        b.kill();
    }
    // The dead leader's last renewal, now that nothing renews any more.
    let last = lease(&leases).await?;
    ensure!(
        last.holder_identity.as_deref().map(instance) == Some(first.as_str()),
        "the lease changed hands at once: {last:?}"
    );
    let renewed = time(&last.renew_time)?;
    // Within the lease duration, plus the standby's poll interval and a
    // margin for a busy machine.
    let taken = held_by(&leases, second, DURATION + Duration::from_secs(6)).await?;
    let took = killed.elapsed();
    println!("{second} took over {took:?} after the kill");
    // The standby waited for the lease to expire: there were never two
    // leaders.
    let acquired = time(&taken.acquire_time)?;
    let expiry = renewed + TimeDelta::from_std(DURATION)?;
    ensure!(
        acquired > expiry,
        "acquired at {acquired}, before the lease expired at {expiry}"
    );
    assert_eq!(
        taken.lease_transitions,
        Some(before.lease_transitions.unwrap_or(0) + 1)
    );

    t.wait_phase(&name, ReleasePhase::Released).await?;
    assert_eq!(
        t.images("prod").await?,
        (images["service"].clone(), images["worker"].clone())
    );
    // Exactly once: one release, one build Job, one Deployed Event per
    // environment (staging by the first leader, production by the second),
    // each workload changed once.
    let releases =
        t.ns.api::<PackitRelease>()
            .list(&ListParams::default())
            .await?;
    assert_eq!(releases.items.len(), 1);
    let jobs = t.ns.api::<Job>().list(&ListParams::default()).await?;
    assert_eq!(jobs.items.len(), 1, "build Jobs");
    let evs = events(&t.ns).await?;
    let staging = deployed_to(&evs, "staging");
    let production = deployed_to(&evs, "production");
    assert_eq!(staging.len(), 1, "{evs:?}");
    assert_eq!(production.len(), 1, "{evs:?}");
    assert_eq!(staging[0].2, first);
    assert_eq!(production[0].2, second);
    let end = t.generations().await?;
    let bumps: Vec<i64> = end
        .iter()
        .zip(&start_generations)
        .map(|(e, s)| e - s)
        .collect();
    assert_eq!(
        bumps,
        [1, 1, 1, 1],
        "generations {start_generations:?} -> {end:?}"
    );

    let survivor = if first == "op-a" { &mut b } else { &mut t.op };
    assert!(survivor.is_running(), "{}", survivor.logs());
    let metrics = survivor.get("/metrics").await?;
    assert!(metrics.contains("\npackit_leader 1\n"), "{metrics}");
    Ok(())
}

#[tokio::test]
async fn sigterm_hands_the_lease_over_at_once() -> Result<()> {
    // Long enough that waiting for expiry would fail the timing below.
    const DURATION: Duration = Duration::from_secs(40);
    apply_crds()?;
    let ns = TestNs::new("leader-handover").await?;
    let leases = ns.api::<Lease>();
    let mut a = start(&ns.name, "op-a", DURATION)?;
    held_by(&leases, "op-a", TIMEOUT).await?;
    let b = start(&ns.name, "op-b", DURATION)?;
    standing_by(&b).await?;

    let stopped = Instant::now();
    assert_eq!(a.terminate()?, Some(0), "{}", a.logs());
    assert!(a.logs().contains("released the lease"), "{}", a.logs());
    held_by(&leases, "op-b", DURATION / 2).await?;
    println!("op-b took over {:?} after SIGTERM", stopped.elapsed());
    let metrics = b.get("/metrics").await?;
    assert!(metrics.contains("\npackit_leader 1\n"), "{metrics}");
    Ok(())
}

#[tokio::test]
async fn a_leader_that_loses_its_lease_exits_at_once() -> Result<()> {
    const DURATION: Duration = Duration::from_secs(30);
    apply_crds()?;
    let ns = TestNs::new("leader-lost").await?;
    let leases = ns.api::<Lease>();
    let mut a = start(&ns.name, "op-a", DURATION)?;
    held_by(&leases, "op-a", TIMEOUT).await?;
    // Someone else writes the lease, as a second leader would after a
    // partition: the next renewal (a third of the duration) finds it.
    let mut taken = leases.get(LEASE).await?;
    let spec = taken.spec.as_mut().context("a lease spec")?;
    spec.holder_identity = Some("intruder_0".into());
    leases
        .replace(LEASE, &PostParams::default(), &taken)
        .await?;
    let code = eventually("the operator to exit", DURATION / 2, || {
        let code = a.exit_code();
        async move { Ok(code) }
    })
    .await;
    let logs = a.logs();
    assert_eq!(code?, 1, "{logs}");
    assert!(logs.contains("lost the lease"), "{logs}");
    Ok(())
}
