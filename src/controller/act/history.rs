//! Pruning old PackitReleases past `historyLimit`.

use kube::api::DeleteParams;

use super::releases;
use crate::controller::observe::Observation;
use crate::controller::{Context, Error};

pub async fn prune(ctx: &Context, obs: &Observation, names: &[String]) -> Result<(), Error> {
    let api = releases::api(ctx, obs);
    for name in names {
        tracing::info!(release = %name, "pruning");
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
