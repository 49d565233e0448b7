//! The request annotations the plugin writes on a PackitDeployment, in the
//! forms the controller reads (`packit_operator::api::deployment::requests`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

pub use crate::api::deployment::requests::{APPROVE, PROMOTE, RELEASE, ROLLBACK};

/// A request timestamp. Milliseconds keep two requests made within one
/// second distinct: the controller acts once per annotation value.
pub fn stamp(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `packit.dev/release-requested-at`.
pub fn release(now: DateTime<Utc>) -> String {
    stamp(now)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Promote {
    requested_at: String,
    force: bool,
}

/// `packit.dev/promote-requested-at`: a plain timestamp, or JSON when the
/// promotion is forced past the earlier environments.
pub fn promote(now: DateTime<Utc>, force: bool) -> Result<String, serde_json::Error> {
    if force {
        serde_json::to_string(&Promote {
            requested_at: stamp(now),
            force,
        })
    } else {
        Ok(stamp(now))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rollback<'a> {
    requested_at: String,
    environment: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<String>,
}

/// `packit.dev/rollback`.
pub fn rollback(
    now: DateTime<Utc>,
    environment: &str,
    to: Option<&str>,
    at: Option<DateTime<Utc>>,
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Rollback {
        requested_at: stamp(now),
        environment,
        to,
        at: at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Approve<'a> {
    requested_at: String,
    release: &'a str,
    environment: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
}

/// `packit.dev/approve`, with the identity the client read for itself.
pub fn approve(
    now: DateTime<Utc>,
    release: &str,
    environment: &str,
    user: Option<&str>,
    groups: &[String],
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Approve {
        requested_at: stamp(now),
        release,
        environment,
        user,
        groups,
    })
}

/// The JSON merge patch that sets one annotation.
pub fn annotation_patch(key: &str, value: &str) -> serde_json::Value {
    serde_json::json!({ "metadata": { "annotations": { key: value } } })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::{Value, json};

    use super::*;

    fn now() -> DateTime<Utc> {
        crate::cli::test_now() + chrono::TimeDelta::milliseconds(250)
    }

    fn parsed(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn release_and_plain_promote_are_timestamps() {
        assert_eq!(release(now()), "2026-11-30T08:30:00.250Z");
        assert_eq!(promote(now(), false).unwrap(), "2026-11-30T08:30:00.250Z");
        assert!(DateTime::parse_from_rfc3339(&release(now())).is_ok());
    }

    #[test]
    fn forced_promote_is_json() {
        assert_eq!(
            parsed(&promote(now(), true).unwrap()),
            json!({ "requestedAt": "2026-11-30T08:30:00.250Z", "force": true })
        );
    }

    #[test]
    fn rollback_payloads_leave_out_what_was_not_asked() {
        assert_eq!(
            parsed(&rollback(now(), "production", None, None).unwrap()),
            json!({ "requestedAt": "2026-11-30T08:30:00.250Z", "environment": "production" })
        );
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 7, 0, 0).single().unwrap();
        assert_eq!(
            parsed(&rollback(now(), "staging", Some("svc-3"), Some(at)).unwrap()),
            json!({
                "requestedAt": "2026-11-30T08:30:00.250Z",
                "environment": "staging",
                "to": "svc-3",
                "at": "2026-12-01T07:00:00Z"
            })
        );
    }

    #[test]
    fn approvals_carry_the_release_environment_and_reported_identity() {
        assert_eq!(
            parsed(
                &approve(
                    now(),
                    "svc-1",
                    "production",
                    Some("alice"),
                    &["team".into()]
                )
                .unwrap()
            ),
            json!({
                "requestedAt": "2026-11-30T08:30:00.250Z",
                "release": "svc-1",
                "environment": "production",
                "user": "alice",
                "groups": ["team"]
            })
        );
        assert_eq!(
            parsed(&approve(now(), "svc-1", "staging", None, &[]).unwrap()),
            json!({ "requestedAt": "2026-11-30T08:30:00.250Z", "release": "svc-1", "environment": "staging" })
        );
    }

    #[test]
    fn patch_sets_one_annotation() {
        assert_eq!(
            annotation_patch(RELEASE, "x"),
            json!({ "metadata": { "annotations": { "packit.dev/release-requested-at": "x" } } })
        );
    }
}
