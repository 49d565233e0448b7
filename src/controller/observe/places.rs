//! Where each environment's workloads live: the operator's own cluster, or
//! the remote cluster its kubeconfig Secret names. A Secret that is
//! missing or holds a kubeconfig the operator refuses makes the spec
//! unusable, with the Secret and key named.

use crate::api::PackitDeployment;
use crate::controller::conditions::reason;
use crate::controller::{Context, Error, Place};
use crate::remote::ClusterError;

use super::SpecProblem;

/// One place per environment of the spec, in order.
pub async fn resolve(
    ctx: &Context,
    deployment: &PackitDeployment,
    namespace: &str,
) -> Result<Result<Vec<Place>, SpecProblem>, Error> {
    let mut places = Vec::with_capacity(deployment.spec.environments.len());
    for (i, env) in deployment.spec.environments.iter().enumerate() {
        let Some(cluster) = &env.cluster else {
            places.push(Place::home(ctx));
            continue;
        };
        let field = format!("spec.environments[{i}].cluster");
        match ctx.clusters.get(namespace, cluster).await {
            Ok(remote) => places.push(Place::on(remote)),
            Err(ClusterError::Invalid(why)) => {
                return Ok(Err(SpecProblem {
                    reason: reason::CLUSTER_CONFIG_INVALID,
                    message: format!("{field}: {why}"),
                }));
            }
            Err(ClusterError::Refused(why)) => {
                return Ok(Err(SpecProblem {
                    reason: reason::ADDRESS_NOT_ALLOWED,
                    message: format!("{field}: {why}"),
                }));
            }
            Err(ClusterError::Home(why)) => return Err(Error::Cluster(why)),
        }
    }
    Ok(Ok(places))
}
