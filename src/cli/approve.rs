//! `approve`: a person's approval of the release in flight for an
//! environment behind an approval gate, written as the `packit.dev/approve`
//! request through the user's own kubeconfig, so RBAC decides who may
//! approve. The identity in the request is the one the API server tells
//! the client in a SelfSubjectReview; the operator records it as reported
//! by the client.

use chrono::Utc;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, PostParams};

use super::cluster::{Ctx, environment};
use super::{Failure, Result, requests};
use crate::api::PackitDeployment;

/// The release in flight and the environment an approval is for: the one
/// named, else the first gated environment from where the release stands
/// that it has no approval for.
pub fn target(pkd: &PackitDeployment, name: &str, env: Option<&str>) -> Result<(String, String)> {
    let f = pkd
        .status
        .as_ref()
        .and_then(|s| s.train.in_flight.as_ref())
        .ok_or_else(|| {
            Failure::not_found(format!(
                "PackitDeployment {name} has no release in flight to approve"
            ))
        })?;
    if let Some(env) = env {
        let e = environment(pkd, name, env)?;
        if !e.requires_approval() {
            return Err(Failure::usage(format!(
                "environment {env} of {name} does not require approval (spec.environments[].approval.required)"
            )));
        }
        return Ok((f.release.clone(), env.to_owned()));
    }
    let from = f
        .environment
        .as_deref()
        .and_then(|e| pkd.spec.environments.iter().position(|s| s.name == e))
        .unwrap_or(0);
    pkd.spec.environments[from..]
        .iter()
        .find(|e| e.requires_approval() && !f.approvals.iter().any(|a| a.environment == e.name))
        .map(|e| (f.release.clone(), e.name.clone()))
        .ok_or_else(|| {
            Failure::usage(format!(
                "{} needs no further approval: no environment ahead of it requires one that it lacks",
                f.release
            ))
        })
}

/// Who the API server says the client is; `None` when it cannot tell
/// (SelfSubjectReview is served from Kubernetes 1.28 and may be forbidden).
pub async fn whoami(client: &kube::Client) -> Option<(String, Vec<String>)> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .ok()?;
    let user = review.status?.user_info?;
    Some((user.username?, user.groups.unwrap_or_default()))
}

impl Ctx {
    /// Writes the approval request; returns what was approved.
    pub(super) async fn request_approval(
        &self,
        name: &str,
        env: Option<&str>,
    ) -> Result<(String, String, Option<String>)> {
        let pkd = self.deployment(name).await?;
        let (release, env) = target(&pkd, name, env)?;
        let who = whoami(&self.client).await;
        let (user, groups) = who.map_or((None, Vec::new()), |(u, g)| (Some(u), g));
        let value = requests::approve(Utc::now(), &release, &env, user.as_deref(), &groups)
            .map_err(|e| Failure::usage(format!("encoding the request: {e}")))?;
        self.annotate(name, requests::APPROVE, &value).await?;
        Ok((release, env, user))
    }

    pub(super) async fn approve(&self, name: &str, env: Option<&str>) -> Result<()> {
        let (release, env, user) = self.request_approval(name, env).await?;
        let by = user.map(|u| format!(" as {u}")).unwrap_or_default();
        println!("Approved {release} for {env}{by} ({}).", requests::APPROVE);
        println!(
            "It deploys there when the environment's window is open; follow it with: kubectl packit status {name} -n {}",
            self.ns
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cli::Exit;

    fn gated(in_flight: serde_json::Value) -> PackitDeployment {
        let mut pkd = crate::api::tests::example();
        pkd.spec.environments[1].approval =
            Some(crate::api::deployment::ApprovalSpec { required: true });
        pkd.status = Some(serde_json::from_value(json!({ "inFlight": in_flight })).unwrap());
        pkd
    }

    #[test]
    fn the_next_gated_environment_without_an_approval_is_the_default() {
        let waiting = json!({ "release": "svc-2", "stage": "Waiting", "environment": "production", "since": "2026-11-30T08:00:00Z" });
        let pkd = gated(waiting);
        let (release, env) = target(&pkd, "svc", None).unwrap();
        assert_eq!((release.as_str(), env.as_str()), ("svc-2", "production"));
        // Ahead of time, from staging, too.
        let staging = json!({ "release": "svc-2", "stage": "Verifying", "environment": "staging", "since": "2026-11-30T08:00:00Z" });
        assert_eq!(
            target(&gated(staging), "svc", None).unwrap().1,
            "production"
        );
    }

    #[test]
    fn what_cannot_be_approved_is_refused_before_anything_is_written() {
        let approved = json!({ "release": "svc-2", "stage": "Waiting", "environment": "production", "since": "2026-11-30T08:00:00Z",
                               "approvals": [{ "environment": "production", "approvedAt": "2026-11-30T08:05:00Z" }] });
        let e = target(&gated(approved), "svc", None).unwrap_err();
        assert!(
            e.message.contains("needs no further approval"),
            "{}",
            e.message
        );
        let waiting = json!({ "release": "svc-2", "stage": "Waiting", "environment": "production", "since": "2026-11-30T08:00:00Z" });
        let e = target(&gated(waiting.clone()), "svc", Some("staging")).unwrap_err();
        assert!(
            matches!(e.exit, Exit::Usage) && e.message.contains("does not require approval"),
            "{}",
            e.message
        );
        let e = target(&gated(waiting), "svc", Some("qa")).unwrap_err();
        assert!(matches!(e.exit, Exit::NotFound), "{}", e.message);
        let mut idle = crate::api::tests::example();
        idle.status = None;
        let e = target(&idle, "svc", None).unwrap_err();
        assert!(
            matches!(e.exit, Exit::NotFound) && e.message.contains("no release in flight"),
            "{}",
            e.message
        );
    }
}
