//! Spec problems the schema cannot catch, sources and addresses a tenant
//! may not use, and environments in namespaces that did not opt in.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::runtime::reflector::ObjectRef;

use crate::api::PackitDeployment;
use crate::api::validate::validate;
use crate::controller::Context;
use crate::controller::conditions::reason;
use crate::controller::targets::namespace_of;
use crate::labels;

/// Why a spec cannot be acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// The condition reason.
    pub reason: &'static str,
    pub message: String,
}

pub async fn check(
    ctx: &Context,
    deployment: &PackitDeployment,
    namespace: &str,
) -> Option<SpecProblem> {
    if let Err(e) = validate(&deployment.spec) {
        return Some(SpecProblem {
            reason: reason::SPEC_INVALID,
            message: e.to_string(),
        });
    }
    let lockdown = [
        (
            reason::SPEC_INVALID,
            super::lockdown::secret_names(&deployment.spec),
        ),
        (
            reason::SOURCE_NOT_ALLOWED,
            super::lockdown::local_sources(&deployment.spec, ctx.allow_local_sources),
        ),
        (
            reason::ADDRESS_NOT_ALLOWED,
            super::lockdown::literal_addresses(&deployment.spec, ctx.prober.policy()),
        ),
    ];
    for (reason, result) in lockdown {
        if let Err(message) = result {
            return Some(SpecProblem { reason, message });
        }
    }
    check_namespaces(ctx, deployment, namespace)
        .await
        .err()
        .map(|message| SpecProblem {
            reason: reason::NAMESPACE_NOT_ALLOWED,
            message,
        })
}

/// Tenant isolation: another namespace must name this deployment's
/// namespace in its `packit.dev/allow-from` annotation. Read from the
/// namespaces' cache; one that has not opted in there is read again, as
/// the cache may not show a fresh opt-in yet.
async fn check_namespaces(
    ctx: &Context,
    deployment: &PackitDeployment,
    own: &str,
) -> Result<(), String> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    for (i, env) in deployment.spec.environments.iter().enumerate() {
        let ns = namespace_of(own, env);
        // On another cluster the kubeconfig's permissions decide.
        if ns == own || env.cluster.is_some() {
            continue;
        }
        let opted_in = |meta: &ObjectMeta| {
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(labels::ALLOW_FROM))
                .is_some_and(|v| v.split(',').any(|n| n.trim() == own))
        };
        // At start-up, every train would otherwise read its namespaces
        // before the cache's first list.
        let _ = tokio::time::timeout(super::CACHE_WAIT, ctx.namespaces_ready.wait()).await;
        if ctx
            .namespaces
            .get(&ObjectRef::new(&ns))
            .is_some_and(|n| opted_in(&n.metadata))
        {
            continue;
        }
        let field = format!("spec.environments[{i}].namespace");
        let found = namespaces
            .get_opt(&ns)
            .await
            .map_err(|e| format!("{field}: cannot read namespace {ns:?}: {e}"))?
            .ok_or_else(|| format!("{field}: namespace {ns:?} does not exist"))?;
        if !opted_in(&found.metadata) {
            return Err(format!(
                "{field}: namespace {ns:?} has not opted in; annotate it with {}={own} to let this deployment manage its workloads",
                labels::ALLOW_FROM,
            ));
        }
    }
    Ok(())
}
