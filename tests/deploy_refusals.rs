//! A deploy the API server refuses fails the release with the server's own
//! reason, at once, instead of waiting for a rollout that cannot come. The
//! refusal here comes from a ValidatingAdmissionPolicy, the API server's
//! built-in admission control.

mod support;

use anyhow::{Context, Result};
use packit_operator::plan::ReleasePhase;
use support::train::{PKD, TIMEOUT, Train};
use support::{eventually, kubectl};

/// Refuses changes to `service-prod` in `namespace`, as a change-control
/// policy would.
fn refuse_production_changes(namespace: &str) -> Result<()> {
    let policy = format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{ name: change-control-{namespace} }}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: ["apps"]
        apiVersions: ["v1"]
        operations: ["UPDATE"]
        resources: ["deployments"]
  validations:
    - expression: "object.metadata.name != 'service-prod'"
      message: "production changes need a change ticket"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{ name: change-control-{namespace} }}
spec:
  policyName: change-control-{namespace}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{ kubernetes.io/metadata.name: {namespace} }}
"#
    );
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), policy)?;
    kubectl(&["apply", "-f", &file.path().display().to_string()])?;
    Ok(())
}

fn remove_policy(namespace: &str) {
    for kind in [
        "validatingadmissionpolicybinding",
        "validatingadmissionpolicy",
    ] {
        let _ = kubectl(&[
            "delete",
            kind,
            &format!("change-control-{namespace}"),
            "--ignore-not-found",
        ]);
    }
}

#[tokio::test]
async fn a_deploy_refused_by_admission_fails_the_release_with_the_reason() -> Result<()> {
    let t = Train::new("refused", |_| {}).await?;
    refuse_production_changes(&t.ns.name)?;
    let result = async {
        t.release_now("first").await?;
        let name = t.in_flight().await?;
        t.build(&name).await?;
        let failed = eventually("the release to fail", TIMEOUT, || async {
            let r = t.release(&name).await?;
            let phase = r.status.as_ref().and_then(|s| s.phase);
            Ok(phase.filter(|p| p.is_final()).map(|_| r))
        })
        .await?;
        let status = failed.status.context("a status")?;
        assert_eq!(status.phase, Some(ReleasePhase::Failed), "{status:?}");
        let message = status.message.unwrap_or_default();
        assert!(
            message.contains("production changes need a change ticket"),
            "{message}"
        );
        let production = status
            .environments
            .iter()
            .find(|e| e.name == "production")
            .context("production progress")?;
        let recorded = production.deploy_error.as_deref().unwrap_or_default();
        assert!(recorded.contains("service-prod"), "{recorded}");
        t.assert_event("DeployFailed", &["change ticket"]).await?;
        // Staging was not refused and keeps the release.
        let pkd = t.pkd().await?;
        let staging = pkd.status.context("a status")?.train.environments;
        assert_eq!(staging[0].release.as_deref(), Some(name.as_str()), "{PKD}");
        anyhow::Ok(())
    }
    .await;
    remove_policy(&t.ns.name);
    result
}
