//! What the target workloads mean for the train: environments no release
//! may roll out to (held, owned by another train, in a fight the operator
//! stopped, or on a cluster that does not answer), the conditions that say
//! so, and an Event each time one of them changes. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::controller::conditions::{
    CLUSTER_UNREACHABLE, FIGHTING, HELD, TARGET_CONFLICT, Want, reason,
};
use crate::controller::events::Note;
use crate::controller::observe::EnvTargets;
use crate::controller::targets::location;
use crate::deploy::{self, Claim};

/// The targets' part of the decision.
#[derive(Debug, Default, PartialEq)]
pub struct Assessment {
    /// Environment -> why nothing new is rolled out there.
    pub blocked: BTreeMap<String, String>,
    /// Environment -> why its cluster is not answering.
    pub unreachable: BTreeMap<String, String>,
    /// When to try the soonest of those clusters again.
    pub retry: Option<Duration>,
    pub conditions: Vec<Want>,
    pub notes: Vec<Note>,
}

pub fn assess(targets: &[EnvTargets], previous: &[Condition]) -> Assessment {
    let mut out = Assessment::default();
    let mut conflicts = Vec::new();
    let mut contended = Vec::new();
    let mut held = Vec::new();
    let mut fights = Vec::new();
    let mut unreachable = Vec::new();
    for env in targets {
        if let Some(u) = &env.unreachable {
            let why = format!("cluster {} does not answer: {}", u.cluster, u.error);
            out.blocked.insert(env.environment.clone(), why.clone());
            out.unreachable.insert(env.environment.clone(), why.clone());
            out.retry = Some(out.retry.map_or(u.retry, |r| r.min(u.retry)));
            unreachable.push(format!("{}: {why}", env.environment));
        }
        let in_ns = |w: &deploy::WorkloadRef| {
            format!(
                "{w} in {}",
                location(&env.namespace, env.cluster.as_deref())
            )
        };
        if let Some((w, owner)) = env.conflict() {
            let why = format!("{} is driven by PackitDeployment {owner}", in_ns(w));
            out.blocked.insert(env.environment.clone(), why.clone());
            conflicts.push(format!("{}: {why}", env.environment));
        }
        for w in env.workloads.iter().filter(|w| w.claim == Claim::Ours) {
            if !w.contenders.is_empty() {
                contended.push(format!(
                    "{}: {} is ours, also targeted by {}",
                    env.environment,
                    in_ns(&w.workload),
                    w.contenders.join(", ")
                ));
            }
            if let Some(manager) = w.object.as_ref().and_then(deploy::fighting_with) {
                fights.push(format!(
                    "{}: {} stopped after repeated writes; {manager} keeps changing it (lift with kubectl packit unhold)",
                    env.environment,
                    in_ns(&w.workload),
                ));
            }
        }
        if let Some(why) = &env.held {
            out.blocked
                .entry(env.environment.clone())
                .or_insert_with(|| why.clone());
            held.push(format!("{}: {why}", env.environment));
        }
    }
    let conflict = match (conflicts.is_empty(), contended.is_empty()) {
        (true, true) => Want::new(TARGET_CONFLICT, false, reason::NO_CONFLICT, ""),
        (false, _) => Want::new(
            TARGET_CONFLICT,
            true,
            reason::CLAIMED_BY_OTHER,
            [conflicts, contended].concat().join("; "),
        ),
        (true, false) => Want::new(
            TARGET_CONFLICT,
            true,
            reason::CONTENDED,
            contended.join("; "),
        ),
    };
    let held = match held.is_empty() {
        true => Want::new(HELD, false, reason::NOT_HELD, ""),
        false => Want::new(HELD, true, reason::HELD, held.join("; ")),
    };
    let fighting = match fights.is_empty() {
        true => Want::new(FIGHTING, false, reason::NO_FIGHT, ""),
        false => Want::new(FIGHTING, true, reason::OTHER_WRITER, fights.join("; ")),
    };
    for want in [&conflict, &held, &fighting] {
        if want.status && changed(previous, want) {
            out.notes
                .push(Note::warning(want.type_, want.message.clone()));
        }
    }
    out.conditions = vec![conflict, held, fighting];
    // Only trains with an environment on another cluster say whether it
    // answers.
    if targets.iter().any(|e| e.cluster.is_some()) {
        out.conditions
            .push(reach(previous, unreachable, &mut out.notes));
    }
    out
}

/// The `ClusterUnreachable` condition, with an Event when a cluster stops
/// answering and when every one answers again.
fn reach(previous: &[Condition], unreachable: Vec<String>, notes: &mut Vec<Note>) -> Want {
    if unreachable.is_empty() {
        let was = previous
            .iter()
            .any(|c| c.type_ == CLUSTER_UNREACHABLE && c.status == "True");
        if was {
            notes.push(Note::normal(
                "ClusterReachable",
                "every environment's cluster answers again".to_owned(),
            ));
        }
        return Want::new(CLUSTER_UNREACHABLE, false, reason::REACHABLE, "");
    }
    let want = Want::new(
        CLUSTER_UNREACHABLE,
        true,
        reason::UNREACHABLE,
        format!(
            "{}; the train waits and tries again",
            unreachable.join("; ")
        ),
    );
    if changed(previous, &want) {
        notes.push(Note::warning(CLUSTER_UNREACHABLE, want.message.clone()));
    }
    want
}

/// Whether `want` says something the previous status did not.
fn changed(previous: &[Condition], want: &Want) -> bool {
    let status = if want.status { "True" } else { "False" };
    previous
        .iter()
        .find(|c| c.type_ == want.type_)
        .is_none_or(|c| c.status != status || c.message != want.message)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    use super::*;
    use crate::api::deployment::WorkloadKind;
    use crate::controller::observe::ObservedWorkload;
    use crate::deploy::{Workload, WorkloadRef};

    fn api() -> WorkloadRef {
        WorkloadRef {
            kind: WorkloadKind::Deployment,
            name: "api".into(),
        }
    }

    fn env(claim: Claim, contenders: &[&str], held: Option<&str>) -> EnvTargets {
        EnvTargets {
            environment: "production".into(),
            namespace: "prod".into(),
            cluster: None,
            unreachable: None,
            workloads: vec![ObservedWorkload {
                workload: api(),
                object: None,
                claim,
                drift: vec![],
                contenders: contenders.iter().map(|c| c.to_string()).collect(),
            }],
            held: held.map(str::to_owned),
        }
    }

    fn condition(a: &Assessment, type_: &str) -> Want {
        a.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .cloned()
            .unwrap()
    }

    #[test]
    fn a_workload_of_another_train_blocks_the_environment_and_names_the_owner() {
        let a = assess(&[env(Claim::Other("team-a/train".into()), &[], None)], &[]);
        let why = &a.blocked["production"];
        assert!(why.contains("PackitDeployment team-a/train"), "{why}");
        assert!(why.contains("Deployment api in namespace prod"), "{why}");
        let c = condition(&a, TARGET_CONFLICT);
        assert!(c.status);
        assert_eq!(c.reason, reason::CLAIMED_BY_OTHER);
        assert_eq!(a.notes.len(), 1);
        assert!(a.notes[0].message.contains("team-a/train"));
    }

    #[test]
    fn the_owner_is_told_who_else_reaches_for_its_workload_without_being_blocked() {
        let a = assess(&[env(Claim::Ours, &["team-b/other"], None)], &[]);
        assert!(a.blocked.is_empty());
        let c = condition(&a, TARGET_CONFLICT);
        assert_eq!(c.reason, reason::CONTENDED);
        assert!(c.message.contains("team-b/other"), "{}", c.message);
    }

    #[test]
    fn a_hold_blocks_and_is_told_once() {
        let targets = [env(Claim::Ours, &[], Some("held: incident 7"))];
        let a = assess(&targets, &[]);
        assert_eq!(a.blocked["production"], "held: incident 7");
        let c = condition(&a, HELD);
        assert!(c.status && c.message.contains("incident 7"));
        assert_eq!(a.notes.len(), 1);
        // Recorded in the status: no second Event.
        let previous =
            crate::controller::conditions::merge(&[], &a.conditions, None, chrono::Utc::now());
        assert!(assess(&targets, &previous).notes.is_empty());
    }

    #[test]
    fn a_stopped_fight_is_a_condition_naming_the_other_writer() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": { "name": "api", "annotations": { crate::labels::FIGHTING: "kubectl-set" } }
        }))
        .unwrap();
        let mut e = env(Claim::Ours, &[], Some("stopped"));
        e.workloads[0].object = Some(Workload::Deployment(Box::new(d)));
        let a = assess(&[e], &[]);
        let c = condition(&a, FIGHTING);
        assert!(
            c.status && c.message.contains("kubectl-set"),
            "{}",
            c.message
        );
    }

    #[test]
    fn nothing_to_say_when_every_workload_is_ours_and_free_to_write() {
        let a = assess(&[env(Claim::Ours, &[], None)], &[]);
        assert!(a.blocked.is_empty());
        assert!(a.notes.is_empty());
        assert!(a.conditions.iter().all(|c| !c.status));
    }

    #[test]
    fn a_cluster_that_does_not_answer_blocks_its_environment_and_is_told_when_it_is_back() {
        let merge = |a: &Assessment| {
            crate::controller::conditions::merge(&[], &a.conditions, None, chrono::Utc::now())
        };
        // A train at home only never speaks of clusters.
        assert!(
            assess(&[env(Claim::Ours, &[], None)], &[])
                .conditions
                .iter()
                .all(|c| c.type_ != CLUSTER_UNREACHABLE)
        );
        let mut e = env(Claim::Free, &[], None);
        e.cluster = Some("prod-eu".into());
        e.workloads.clear();
        e.unreachable = Some(crate::controller::observe::Unreachable {
            cluster: "prod-eu".into(),
            error: "connection refused".into(),
            retry: Duration::from_secs(4),
        });
        let down = assess(std::slice::from_ref(&e), &[]);
        let why = &down.unreachable["production"];
        assert!(
            why.contains("prod-eu") && why.contains("connection refused"),
            "{why}"
        );
        assert_eq!(down.blocked["production"], *why);
        assert_eq!(down.retry, Some(Duration::from_secs(4)));
        let c = condition(&down, CLUSTER_UNREACHABLE);
        assert!(c.status && c.reason == reason::UNREACHABLE && c.message.contains(why));
        assert_eq!(down.notes.len(), 1);
        // Still away: told once.
        assert!(
            assess(std::slice::from_ref(&e), &merge(&down))
                .notes
                .is_empty()
        );
        // Back.
        e.unreachable = None;
        let up = assess(&[e], &merge(&down));
        assert!(up.blocked.is_empty() && up.retry.is_none());
        assert!(!condition(&up, CLUSTER_UNREACHABLE).status);
        assert_eq!(up.notes.len(), 1);
        assert_eq!(up.notes[0].reason, "ClusterReachable");
    }
}
