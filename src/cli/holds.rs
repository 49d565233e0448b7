//! `hold` and `unhold`: the hold annotation on a PackitDeployment or on the
//! target workloads of one of its environments, written through the user's
//! own kubeconfig so RBAC decides who may hold what.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::Result;
use super::cluster::{Ctx, api_error, environment};
use crate::api::PackitDeployment;
use crate::api::deployment::{Environment, WorkloadKind};
use crate::labels::{FIGHTING, HOLD};

/// The annotations `unhold` removes: a person's hold and the operator's
/// stop after a fight.
pub fn unhold_patch() -> Value {
    json!({ "metadata": { "annotations": { HOLD: Value::Null, FIGHTING: Value::Null } } })
}

impl Ctx {
    pub(super) async fn hold(&self, name: &str, env: Option<&str>, reason: &str) -> Result<()> {
        let pkd = self.deployment(name).await?;
        let shown = if reason.is_empty() {
            "no reason given"
        } else {
            reason
        };
        match env {
            None => {
                self.annotate(name, HOLD, reason).await?;
                println!("Held {}/{name} in every environment ({shown}).", self.ns);
            }
            Some(env) => {
                let e = environment(&pkd, name, env)?;
                let patch = json!({ "metadata": { "annotations": { HOLD: reason } } });
                self.patch_workloads(&pkd, e, &patch).await?;
                println!("Held {env} of {}/{name} ({shown}).", self.ns);
            }
        }
        println!(
            "No new release rolls out there and nothing is reverted until: kubectl packit unhold {name} -n {}",
            self.ns
        );
        Ok(())
    }

    pub(super) async fn unhold(&self, name: &str, env: Option<&str>) -> Result<()> {
        let pkd = self.deployment(name).await?;
        let patch = unhold_patch();
        let envs: Vec<&Environment> = match env {
            Some(env) => vec![environment(&pkd, name, env)?],
            None => pkd.spec.environments.iter().collect(),
        };
        for e in &envs {
            self.patch_workloads(&pkd, e, &patch).await?;
        }
        if env.is_none() {
            self.deployments()
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| {
                    api_error(e, &format!("annotating PackitDeployment {name}"), || {
                        format!("PackitDeployment {name:?} was deleted in the meantime")
                    })
                })?;
            println!("Lifted every hold of {}/{name}.", self.ns);
        } else if pkd
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(HOLD))
        {
            println!(
                "Lifted the holds of {} of {}/{name}; the deployment itself is still held (kubectl packit unhold {name}).",
                envs[0].name, self.ns
            );
        } else {
            println!(
                "Lifted the holds of {} of {}/{name}.",
                envs[0].name, self.ns
            );
        }
        Ok(())
    }

    /// Patches every target workload of `env` (a missing one is skipped:
    /// there is nothing to hold).
    async fn patch_workloads(
        &self,
        pkd: &PackitDeployment,
        env: &Environment,
        patch: &Value,
    ) -> Result<()> {
        let ns = env.namespace.as_deref().unwrap_or(&self.ns);
        let params = PatchParams::default();
        for (kind, name) in env.workloads() {
            let what = format!("{kind:?} {name} in namespace {ns}");
            let result = match kind {
                WorkloadKind::Deployment => Api::<Deployment>::namespaced(self.client.clone(), ns)
                    .patch(name, &params, &Patch::Merge(patch))
                    .await
                    .map(drop),
                WorkloadKind::StatefulSet => {
                    Api::<StatefulSet>::namespaced(self.client.clone(), ns)
                        .patch(name, &params, &Patch::Merge(patch))
                        .await
                        .map(drop)
                }
            };
            match result {
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    eprintln!("note: {what} does not exist; skipped");
                }
                other => other.map_err(|e| {
                    api_error(
                        e,
                        &format!(
                            "annotating {what} of {}",
                            pkd.metadata.name.as_deref().unwrap_or_default()
                        ),
                        || what.clone(),
                    )
                })?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhold_removes_the_hold_and_the_stopped_fight() {
        let patch = unhold_patch();
        assert_eq!(patch["metadata"]["annotations"][HOLD], Value::Null);
        assert_eq!(patch["metadata"]["annotations"][FIGHTING], Value::Null);
    }

    #[test]
    fn an_environment_holds_each_of_its_workloads_once() {
        let env: Environment = serde_json::from_value(json!({
            "name": "production",
            "targets": [
                { "kind": "Deployment", "name": "api", "container": "app", "component": "a" },
                { "kind": "Deployment", "name": "api", "container": "side", "component": "b" },
                { "kind": "StatefulSet", "name": "worker", "container": "w", "component": "b" },
            ],
        }))
        .unwrap();
        assert_eq!(
            env.workloads(),
            [
                (WorkloadKind::Deployment, "api"),
                (WorkloadKind::StatefulSet, "worker")
            ]
        );
    }
}
