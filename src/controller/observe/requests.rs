//! Request annotations on a PackitDeployment, parsed into planner input.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::api::deployment::requests::{APPROVE, PROMOTE, RELEASE, ROLLBACK};
use crate::plan::{ApproveRequest, PromoteRequest, Request, Requests, RollbackRequest};

/// A request annotation that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    pub annotation: &'static str,
    /// The raw value, which also identifies the request.
    pub value: String,
    pub why: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RollbackJson {
    requested_at: Option<DateTime<Utc>>,
    environment: String,
    to: Option<String>,
    at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PromoteJson {
    requested_at: Option<DateTime<Utc>>,
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ApproveJson {
    requested_at: Option<DateTime<Utc>>,
    release: String,
    environment: Option<String>,
    user: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// Parses the request annotations. A value that is not a timestamp still
/// counts as a request made `now` (any new value is a new request).
pub fn parse(
    annotations: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> (Requests, Vec<BadRequest>) {
    let mut bad = Vec::new();
    let stamp =
        |v: &str| DateTime::parse_from_rfc3339(v.trim()).map_or(now, |t| t.with_timezone(&Utc));
    let release = annotations
        .get(RELEASE)
        .filter(|v| !v.is_empty())
        .map(|v| Request {
            id: v.clone(),
            requested_at: stamp(v),
        });
    let promote = annotations
        .get(PROMOTE)
        .filter(|v| !v.is_empty())
        .and_then(|v| {
            if v.trim_start().starts_with('{') {
                match serde_json::from_str::<PromoteJson>(v) {
                    Ok(p) => Some(PromoteRequest {
                        id: v.clone(),
                        requested_at: p.requested_at.unwrap_or(now),
                        force: p.force,
                    }),
                    Err(e) => {
                        bad.push(BadRequest {
                            annotation: PROMOTE,
                            value: v.clone(),
                            why: e.to_string(),
                        });
                        None
                    }
                }
            } else {
                Some(PromoteRequest {
                    id: v.clone(),
                    requested_at: stamp(v),
                    force: false,
                })
            }
        });
    let rollback = annotations.get(ROLLBACK).filter(|v| !v.is_empty()).and_then(|v| {
        match serde_json::from_str::<RollbackJson>(v) {
            Ok(r) => Some(RollbackRequest {
                id: v.clone(),
                requested_at: r.requested_at.unwrap_or(now),
                environment: r.environment,
                to: r.to.filter(|t| !t.is_empty()),
                at: r.at,
            }),
            Err(e) => {
                let why = format!(
                    "{e}; expected {{\"requestedAt\": \"<RFC 3339>\", \"environment\": \"<name>\", \"to\": \"<release, optional>\", \"at\": \"<RFC 3339, optional>\"}}"
                );
                bad.push(BadRequest { annotation: ROLLBACK, value: v.clone(), why });
                None
            }
        }
    });
    let approve = annotations.get(APPROVE).filter(|v| !v.is_empty()).and_then(|v| {
        match serde_json::from_str::<ApproveJson>(v) {
            Ok(a) => Some(ApproveRequest {
                id: v.clone(),
                requested_at: a.requested_at.unwrap_or(now),
                release: a.release,
                environment: a.environment.filter(|e| !e.is_empty()),
                user: a.user.filter(|u| !u.is_empty()),
                groups: a.groups,
            }),
            Err(e) => {
                let why = format!(
                    "{e}; expected {{\"requestedAt\": \"<RFC 3339>\", \"release\": \"<name>\", \"environment\": \"<name, optional>\", \"user\": \"<optional>\"}}"
                );
                bad.push(BadRequest { annotation: APPROVE, value: v.clone(), why });
                None
            }
        }
    });
    (
        Requests {
            release,
            promote,
            rollback,
            approve,
        },
        bad,
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap()
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn timestamps_and_json() {
        let (r, bad) = parse(
            &annotations(&[
                (RELEASE, "2026-11-30T08:00:00Z"),
                (
                    PROMOTE,
                    r#"{"requestedAt": "2026-11-30T08:30:00Z", "force": true}"#,
                ),
                (
                    ROLLBACK,
                    r#"{"environment": "production", "at": "2026-11-30T10:00:00+01:00"}"#,
                ),
            ]),
            now(),
        );
        assert!(bad.is_empty());
        assert_eq!(
            r.release.unwrap().requested_at,
            Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap()
        );
        let p = r.promote.unwrap();
        assert!(p.force);
        let rb = r.rollback.unwrap();
        assert_eq!(rb.environment, "production");
        assert_eq!(rb.to, None);
        assert_eq!(
            rb.at,
            Some(Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap())
        );
        assert_eq!(rb.requested_at, now());
    }

    #[test]
    fn any_value_is_a_request_but_bad_json_is_reported() {
        let (r, bad) = parse(
            &annotations(&[(RELEASE, "please"), (ROLLBACK, "production")]),
            now(),
        );
        assert_eq!(
            r.release.map(|r| (r.id, r.requested_at)),
            Some(("please".into(), now()))
        );
        assert!(r.rollback.is_none());
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].annotation, ROLLBACK);
        assert!(
            bad[0].why.contains("expected {\"requestedAt\""),
            "{}",
            bad[0].why
        );
    }
}
