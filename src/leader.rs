//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several
//! replicas only one runs the controller.
//!
//! The decision (acquire, renew or wait, given the lease as read) is pure and
//! tested below; [`Elector`] does the API calls around it. Writes replace the
//! lease with the `resourceVersion` that was read, so of two candidates that
//! both saw a free lease only one succeeds: a conflict means the other won.
//!
//! A leader that cannot renew within the renew deadline, or that finds the
//! lease held by someone else, must stop at once: [`Elector::hold`] returns
//! and the caller exits the process (Kubernetes restarts the pod, which then
//! stands by). The deadline is shorter than the lease duration, so the old
//! leader has stopped before a standby may take over.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::time::{Instant, sleep, timeout};

/// Where the service account's namespace is mounted in a pod.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Where the lease lives and how long it lasts.
#[derive(Clone, Debug)]
pub struct Config {
    pub namespace: String,
    pub lease: String,
    pub duration: Duration,
}

impl Config {
    /// How often the leader renews.
    pub fn renew_every(&self) -> Duration {
        self.duration / 3
    }

    /// How long the leader keeps acting without a successful renewal.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// How often a standby looks at the lease, and how soon a failed
    /// renewal is tried again; at most 2s, so that a released lease is
    /// taken over quickly even when leases are long.
    pub fn retry(&self) -> Duration {
        (self.duration / 10).clamp(Duration::from_millis(100), Duration::from_secs(2))
    }
}

/// The namespace this pod runs in, or `default` outside a cluster.
pub fn default_namespace() -> String {
    std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// A holder identity unique to this process: the instance name (pod or host
/// name) with a random suffix, so two processes on one host differ.
pub fn identity(instance: Option<&str>) -> String {
    let base = instance
        .filter(|s| !s.is_empty())
        .unwrap_or("packit-operator");
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{base}_{:08x}", h.finish() as u32)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed by this call,
/// not on the first poll, so a signal that arrives while the process is
/// still starting up counts; clones resolve together, so the standby and
/// the controller share one.
pub fn shutdown_signal() -> Shared<BoxFuture<'static, ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            return async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            .boxed()
            .shared();
        }
    }
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
    .boxed()
    .shared()
}

/// The lease's spec as the decision sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Who holds it; `None` (or empty in the object) when it is free.
    pub holder: Option<String>,
    pub acquired: Option<DateTime<Utc>>,
    pub renewed: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i32>,
    pub transitions: i32,
}

/// What to do with the lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It is free or expired: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it until `until` (unless renewed).
    Wait {
        holder: String,
        until: DateTime<Utc>,
    },
}

/// Decides, from the lease as read (`None` when there is none yet), what
/// `me` does at `now`. A lease without a duration counts with `fallback`.
pub fn decide(
    current: Option<&Record>,
    me: &str,
    now: DateTime<Utc>,
    fallback: Duration,
) -> Decision {
    let Some(rec) = current else {
        return Decision::Acquire;
    };
    let Some(holder) = rec.holder.as_deref().filter(|h| !h.is_empty()) else {
        return Decision::Acquire;
    };
    if holder == me {
        return Decision::Renew;
    }
    let Some(renewed) = rec.renewed else {
        return Decision::Acquire;
    };
    let duration = rec
        .duration_seconds
        .map(|s| TimeDelta::seconds(i64::from(s)))
        .unwrap_or_else(|| TimeDelta::from_std(fallback).unwrap_or(TimeDelta::MAX));
    let until = renewed.checked_add_signed(duration).unwrap_or(renewed);
    if until < now {
        Decision::Acquire
    } else {
        Decision::Wait {
            holder: holder.to_owned(),
            until,
        }
    }
}

/// The record to write when `me` acquires or renews at `now`: a renewal
/// moves only the renew time; a takeover from anyone else also sets the
/// acquire time and counts a transition.
pub fn next_record(
    current: Option<&Record>,
    me: &str,
    now: DateTime<Utc>,
    duration: Duration,
) -> Record {
    let duration_seconds = Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX));
    match current {
        Some(rec) if rec.holder.as_deref() == Some(me) => Record {
            renewed: Some(now),
            duration_seconds,
            ..rec.clone()
        },
        current => Record {
            holder: Some(me.to_owned()),
            acquired: Some(now),
            renewed: Some(now),
            duration_seconds,
            transitions: match current {
                Some(rec) => rec.transitions.saturating_add(1),
                None => 0,
            },
        },
    }
}

/// The record that hands the lease over at once: no holder.
pub fn released(current: &Record, now: DateTime<Utc>) -> Record {
    Record {
        holder: None,
        renewed: Some(now),
        ..current.clone()
    }
}

impl From<&LeaseSpec> for Record {
    fn from(s: &LeaseSpec) -> Self {
        Self {
            holder: s.holder_identity.clone().filter(|h| !h.is_empty()),
            acquired: s.acquire_time.as_ref().and_then(from_micro),
            renewed: s.renew_time.as_ref().and_then(from_micro),
            duration_seconds: s.lease_duration_seconds,
            transitions: s.lease_transitions.unwrap_or(0),
        }
    }
}

impl Record {
    /// Writes the record into a spec, keeping the fields it does not know.
    fn apply(&self, spec: &mut LeaseSpec) {
        spec.holder_identity = self.holder.clone();
        spec.acquire_time = self.acquired.and_then(to_micro);
        spec.renew_time = self.renewed.and_then(to_micro);
        spec.lease_duration_seconds = self.duration_seconds;
        spec.lease_transitions = Some(self.transitions);
    }
}

fn from_micro(t: &MicroTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(t.0.as_microsecond())
}

fn to_micro(t: DateTime<Utc>) -> Option<MicroTime> {
    k8s_openapi::jiff::Timestamp::from_microsecond(t.timestamp_micros())
        .ok()
        .map(MicroTime)
}

/// The outcome of one look at the lease.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold it (acquired or renewed just now).
    Leading,
    /// Someone else holds it.
    HeldBy(String),
    /// Someone else wrote the lease between our read and our write.
    Conflict,
}

/// Why a leader stopped leading.
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    #[error("the lease is now held by {0}")]
    Taken(String),
    #[error("could not renew the lease for {0:?}: {1}")]
    Deadline(Duration, String),
}

/// Campaigns for and holds one lease as one identity.
pub struct Elector {
    api: Api<Lease>,
    config: Config,
    identity: String,
}

impl Elector {
    pub fn new(client: Client, config: Config, identity: String) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            identity,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this process holds the lease; returns when the winning
    /// attempt started (the lease counts from before that). API errors are
    /// logged and tried again: a standby has nothing better to do.
    pub async fn acquire(&self) -> Instant {
        let mut last_holder = None;
        loop {
            let started = Instant::now();
            match self.attempt(false).await {
                Ok(Attempt::Leading) => {
                    tracing::info!(
                        lease = %self.config.lease,
                        namespace = %self.config.namespace,
                        identity = %self.identity,
                        "acquired the lease: leading"
                    );
                    return started;
                }
                Ok(Attempt::HeldBy(holder)) => {
                    if last_holder.as_ref() != Some(&holder) {
                        tracing::info!(
                            lease = %self.config.lease,
                            %holder,
                            identity = %self.identity,
                            "standing by: the lease is held by another process"
                        );
                        last_holder = Some(holder);
                    }
                }
                Ok(Attempt::Conflict) => {
                    tracing::debug!(lease = %self.config.lease, "another process took the lease first")
                }
                Err(e) => {
                    tracing::warn!(lease = %self.config.lease, error = %e, "reading the lease")
                }
            }
            sleep(self.config.retry()).await;
        }
    }

    /// Renews the lease, last renewed by an attempt that started at
    /// `renewed`, until that fails; returns why leadership ended. The caller
    /// must stop acting as soon as this returns.
    pub async fn hold(&self, mut renewed: Instant) -> Lost {
        let mut wait = self.config.renew_every();
        loop {
            sleep(wait).await;
            let deadline = renewed + self.config.renew_deadline();
            let started = Instant::now();
            let left = deadline.saturating_duration_since(started);
            let why = match timeout(left, self.attempt(true)).await {
                Ok(Ok(Attempt::Leading)) => {
                    // The written renewTime is from before the request,
                    // so the deadline counts from there too.
                    renewed = started;
                    wait = self.config.renew_every();
                    continue;
                }
                Ok(Ok(Attempt::HeldBy(holder))) => return Lost::Taken(holder),
                Ok(Ok(Attempt::Conflict)) => "the lease changed while renewing".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "the renewal timed out".to_owned(),
            };
            if Instant::now() >= deadline {
                return Lost::Deadline(self.config.renew_deadline(), why);
            }
            tracing::warn!(lease = %self.config.lease, error = %why, "renewing the lease failed; trying again");
            wait = self.config.retry();
        }
    }

    /// Gives the lease up, so that a standby takes over without waiting for
    /// it to expire. Only when we still hold it.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.lease).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let rec = Record::from(&*spec);
        if rec.holder.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        released(&rec, Utc::now()).apply(spec);
        self.api
            .replace(&self.config.lease, &PostParams::default(), &lease)
            .await?;
        tracing::info!(lease = %self.config.lease, "released the lease");
        Ok(())
    }

    /// Reads the lease and acquires or renews it when the decision says so.
    /// A leader (`leading`) only renews: finding the lease gone, released or
    /// with another holder, even an expired one, means someone else may
    /// have acted in between.
    async fn attempt(&self, leading: bool) -> Result<Attempt, kube::Error> {
        let now = Utc::now();
        let current = self.api.get_opt(&self.config.lease).await?;
        let rec = current
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .map(Record::from);
        let decision = match (&current, &rec) {
            // A lease object without a spec is free.
            (Some(_), None) => Decision::Acquire,
            _ => decide(rec.as_ref(), &self.identity, now, self.config.duration),
        };
        match decision {
            Decision::Wait { holder, .. } => return Ok(Attempt::HeldBy(holder)),
            Decision::Acquire if leading => {
                let holder = rec.and_then(|r| r.holder);
                return Ok(Attempt::HeldBy(
                    holder.unwrap_or_else(|| "nobody (released or deleted)".to_owned()),
                ));
            }
            Decision::Acquire | Decision::Renew => {}
        }
        let next = next_record(rec.as_ref(), &self.identity, now, self.config.duration);
        let written = match current {
            None => {
                let mut spec = LeaseSpec::default();
                next.apply(&mut spec);
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.lease.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                // The read resourceVersion stays in the metadata: the API
                // server refuses the write if the lease changed since.
                next.apply(lease.spec.get_or_insert_with(LeaseSpec::default));
                self.api
                    .replace(&self.config.lease, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "op-a_1";
    const OTHER: &str = "op-b_2";
    const D: Duration = Duration::from_secs(15);

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn held(by: &str, renewed: i64) -> Record {
        Record {
            holder: Some(by.to_owned()),
            acquired: Some(at(0)),
            renewed: Some(at(renewed)),
            duration_seconds: Some(15),
            transitions: 3,
        }
    }

    #[test]
    fn no_lease_or_no_holder_is_free() {
        assert_eq!(decide(None, ME, at(0), D), Decision::Acquire);
        let free = Record {
            holder: None,
            ..held(OTHER, 10)
        };
        assert_eq!(decide(Some(&free), ME, at(10), D), Decision::Acquire);
        let empty = Record {
            holder: Some(String::new()),
            ..held(OTHER, 10)
        };
        assert_eq!(decide(Some(&empty), ME, at(10), D), Decision::Acquire);
    }

    #[test]
    fn a_valid_lease_of_another_is_waited_for_until_it_expires() {
        let rec = held(OTHER, 10);
        let wait = Decision::Wait {
            holder: OTHER.to_owned(),
            until: at(25),
        };
        assert_eq!(decide(Some(&rec), ME, at(10), D), wait);
        // renewTime + leaseDurationSeconds is still valid at that instant.
        assert_eq!(decide(Some(&rec), ME, at(25), D), wait);
        assert_eq!(
            decide(Some(&rec), ME, at(25) + TimeDelta::milliseconds(1), D),
            Decision::Acquire
        );
    }

    #[test]
    fn the_lease_own_duration_counts_not_ours() {
        let rec = Record {
            duration_seconds: Some(60),
            ..held(OTHER, 0)
        };
        assert!(matches!(
            decide(Some(&rec), ME, at(30), D),
            Decision::Wait { .. }
        ));
        let rec = Record {
            duration_seconds: None,
            ..held(OTHER, 0)
        };
        assert_eq!(decide(Some(&rec), ME, at(16), D), Decision::Acquire);
    }

    #[test]
    fn a_holder_without_renew_time_has_no_claim() {
        let rec = Record {
            renewed: None,
            ..held(OTHER, 0)
        };
        assert_eq!(decide(Some(&rec), ME, at(1), D), Decision::Acquire);
    }

    #[test]
    fn our_own_lease_is_renewed_even_late() {
        assert_eq!(decide(Some(&held(ME, 10)), ME, at(11), D), Decision::Renew);
        // Whether a late renewal is still safe is the renew deadline's
        // business, measured locally; the lease says we still hold it.
        assert_eq!(decide(Some(&held(ME, 10)), ME, at(40), D), Decision::Renew);
    }

    #[test]
    fn renewing_moves_only_the_renew_time() {
        let next = next_record(Some(&held(ME, 10)), ME, at(15), D);
        assert_eq!(
            next,
            Record {
                renewed: Some(at(15)),
                ..held(ME, 10)
            }
        );
    }

    #[test]
    fn a_takeover_counts_a_transition_and_resets_the_acquire_time() {
        let next = next_record(Some(&held(OTHER, 0)), ME, at(20), D);
        assert_eq!(
            next,
            Record {
                holder: Some(ME.to_owned()),
                acquired: Some(at(20)),
                renewed: Some(at(20)),
                duration_seconds: Some(15),
                transitions: 4,
            }
        );
        // Taking a released lease is a transition too; a new lease is not.
        let free = released(&held(OTHER, 0), at(5));
        assert_eq!(next_record(Some(&free), ME, at(6), D).transitions, 4);
        assert_eq!(next_record(None, ME, at(6), D).transitions, 0);
    }

    #[test]
    fn a_released_lease_is_free_at_once() {
        let rec = released(&held(ME, 10), at(12));
        assert_eq!(rec.holder, None);
        assert_eq!(rec.transitions, 3);
        assert_eq!(decide(Some(&rec), OTHER, at(12), D), Decision::Acquire);
    }

    #[test]
    fn records_round_trip_through_the_lease_spec() {
        let rec = Record {
            renewed: Some(at(10) + TimeDelta::microseconds(123_456)),
            ..held(ME, 0)
        };
        let mut spec = LeaseSpec {
            strategy: Some("kept".into()),
            ..LeaseSpec::default()
        };
        rec.apply(&mut spec);
        assert_eq!(spec.strategy.as_deref(), Some("kept"));
        assert_eq!(Record::from(&spec), rec);
        // An empty holder in the object reads as free.
        spec.holder_identity = Some(String::new());
        assert_eq!(Record::from(&spec).holder, None);
    }

    #[test]
    fn identities_of_two_processes_differ_and_name_the_instance() {
        let (a, b) = (identity(Some("pod-1")), identity(Some("pod-1")));
        assert_ne!(a, b);
        assert!(a.starts_with("pod-1_"), "{a}");
        assert!(identity(None).starts_with("packit-operator_"));
    }

    #[test]
    fn timings_derive_from_the_duration() {
        let c = Config {
            namespace: "ns".into(),
            lease: "l".into(),
            duration: D,
        };
        assert_eq!(c.renew_every(), Duration::from_secs(5));
        assert_eq!(c.renew_deadline(), Duration::from_secs(10));
        assert_eq!(c.retry(), Duration::from_millis(1500));
        assert!(c.renew_deadline() < c.duration);
        let long = Config {
            duration: Duration::from_secs(60),
            ..c
        };
        assert_eq!(long.retry(), Duration::from_secs(2));
    }
}
