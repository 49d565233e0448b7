//! One reconcile, four stages with typed hand-offs:
//! observe (read) -> decide (pure) -> act (write) -> report (tell).

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use kube::Resource;
use kube::runtime::controller::Action;

use super::decide::{Plan, decide};
use super::events::Publisher;
use super::{Context, Error, act, observe, report};
use crate::api::PackitDeployment;

pub async fn reconcile(obj: Arc<PackitDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    if obj.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let events = Publisher::new(ctx.client.clone(), ctx.reporter.clone(), &obj);
    let obs = match observe::observe(&ctx, obj, Utc::now()).await {
        Ok(obs) => obs,
        Err(e) => return report::failed(&ctx.metrics, &events, e).await,
    };
    let plan = decide(&obs);
    let outcomes = match &plan {
        Plan::Invalid { status, .. } => act::record_invalid(&ctx, &obs, status).await,
        Plan::Train(p) => act::act(&ctx, &obs, p, &events).await,
    };
    report::report(&ctx.metrics, &obs, &plan, outcomes, &events, started).await
}
