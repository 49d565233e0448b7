//! Status conditions: named types and reasons, with transition times kept
//! while a condition's status does not change.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const INVALID_SPEC: &str = "InvalidSpec";
/// A target workload is driven by another train, or another train targets
/// one of ours.
pub const TARGET_CONFLICT: &str = "TargetConflict";
/// An environment is held: nothing new rolls out there.
pub const HELD: &str = "Held";
/// The operator stopped writing a workload someone else keeps changing.
pub const FIGHTING: &str = "Fighting";
/// An environment's remote cluster does not answer: the train waits.
pub const CLUSTER_UNREACHABLE: &str = "ClusterUnreachable";

/// Condition reasons.
pub mod reason {
    pub const SPEC_VALID: &str = "SpecValid";
    pub const SPEC_INVALID: &str = "SpecInvalid";
    pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
    pub const SOURCE_NOT_ALLOWED: &str = "SourceNotAllowed";
    pub const ADDRESS_NOT_ALLOWED: &str = "AddressNotAllowed";
    pub const CLUSTER_CONFIG_INVALID: &str = "ClusterConfigInvalid";
    pub const REACHABLE: &str = "Reachable";
    pub const UNREACHABLE: &str = "Unreachable";
    pub const IDLE: &str = "Idle";
    pub const RELEASE_IN_FLIGHT: &str = "ReleaseInFlight";
    pub const HEALTHY: &str = "Healthy";
    pub const LAST_RELEASE_FAILED: &str = "LastReleaseFailed";
    pub const SOURCE_UNAVAILABLE: &str = "SourceUnavailable";
    pub const NO_CONFLICT: &str = "NoConflict";
    pub const CLAIMED_BY_OTHER: &str = "ClaimedByOther";
    pub const CONTENDED: &str = "Contended";
    pub const NOT_HELD: &str = "NotHeld";
    pub const HELD: &str = "Held";
    pub const NO_FIGHT: &str = "NoFight";
    pub const OTHER_WRITER: &str = "OtherWriter";
}

/// A condition as the reconciler wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Want {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// The conditions to write: `wanted`, keeping the previous transition time
/// of each condition whose status is unchanged.
pub fn merge(
    previous: &[Condition],
    wanted: &[Want],
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    wanted
        .iter()
        .map(|w| {
            let status = if w.status { "True" } else { "False" };
            let since = previous
                .iter()
                .find(|c| c.type_ == w.type_ && c.status == status)
                .map_or_else(|| time(now), |c| c.last_transition_time.clone());
            Condition {
                type_: w.type_.to_owned(),
                status: status.to_owned(),
                reason: w.reason.to_owned(),
                message: w.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// A Kubernetes timestamp (whole seconds, as the API stores them).
pub fn time(t: DateTime<Utc>) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 17, 0, 0).unwrap();
        let t1 = t0 + TimeDelta::hours(1);
        let first = merge(
            &[],
            &[Want::new(
                PROGRESSING,
                true,
                reason::RELEASE_IN_FLIGHT,
                "building",
            )],
            Some(1),
            t0,
        );
        let same = merge(
            &first,
            &[Want::new(
                PROGRESSING,
                true,
                reason::RELEASE_IN_FLIGHT,
                "staging",
            )],
            Some(2),
            t1,
        );
        assert_eq!(same[0].last_transition_time, time(t0));
        assert_eq!(same[0].message, "staging");
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(
            &same,
            &[Want::new(PROGRESSING, false, reason::IDLE, "")],
            Some(2),
            t1,
        );
        assert_eq!(flipped[0].last_transition_time, time(t1));
        assert_eq!(flipped[0].status, "False");
    }
}
