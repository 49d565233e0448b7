//! One reconcile, four stages with typed hand-offs:
//! observe (read) -> decide (pure) -> act (write) -> report (tell).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::decide::{Plan, decide};
use super::events::Publisher;
use super::{Context, Error, act, observe, report};
use crate::api::PackitDeployment;

/// How soon a train whose cache stays behind is planned again.
const STALE_RETRY: Duration = Duration::from_millis(500);

pub async fn reconcile(obj: Arc<PackitDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    match pass(&ctx, obj.clone()).await {
        // The cache was behind this controller's own last write (or another
        // writer came first): plan once more from a fresh read. Watches
        // lag for a while after an API server restart.
        Err(Error::Stale) => {
            let api: Api<PackitDeployment> = Api::namespaced(
                ctx.client.clone(),
                &obj.namespace().ok_or(Error::NoNamespace)?,
            );
            let Some(fresh) = api.get_opt(&obj.name_any()).await? else {
                return Ok(Action::await_change());
            };
            match pass(&ctx, Arc::new(fresh)).await {
                Err(Error::Stale) => Ok(Action::requeue(STALE_RETRY)),
                other => other,
            }
        }
        other => other,
    }
}

async fn pass(ctx: &Context, obj: Arc<PackitDeployment>) -> Result<Action, Error> {
    if obj.meta().deletion_timestamp.is_some() {
        // Its workloads go back to being nobody's, for the next train.
        act::release_all(ctx, &obj).await?;
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let events = Publisher::new(ctx.client.clone(), ctx.reporter.clone(), &obj);
    let obs = match observe::observe(ctx, obj, Utc::now()).await {
        Ok(obs) => obs,
        Err(e) => return report::failed(&ctx.metrics, &events, e).await,
    };
    let plan = decide(&obs);
    let outcomes = match &plan {
        Plan::Invalid { status, .. } => act::record_invalid(ctx, &obs, status).await,
        Plan::Train(p) => act::act(ctx, &obs, p, &events).await,
    };
    report::report(&ctx.metrics, &obs, &plan, outcomes, &events, started).await
}
