//! Health of the environment the release in flight is verified in:
//! rollout and restarts of its workloads, its HTTP checks, its metric
//! checks and its smoke-test Jobs.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::{CACHE_WAIT, Observation};
use crate::api::PackitRelease;
use crate::api::checks::{MetricCheck, fill_query};
use crate::api::deployment::Environment;
use crate::api::duration;
use crate::controller::targets::{namespace_of, wanted_images};
use crate::controller::{Context, Error};
use crate::deploy::WorkloadRef;
use crate::health::{self, MetricQuery, PrometheusAuth};
use crate::plan::HealthReport;

/// Health of `env_name` for `release`, or none while its workloads do not
/// run the release yet (a stale report must not count).
pub async fn observe(
    ctx: &Context,
    obs: &Observation,
    env_name: &str,
    release: &PackitRelease,
) -> Result<Option<HealthReport>, Error> {
    let spec = &obs.deployment.spec;
    let Some(env) = spec.environments.iter().find(|e| e.name == env_name) else {
        return Ok(None);
    };
    let Some(images) = wanted_images(release, env) else {
        return Ok(None);
    };
    let refused = release
        .status
        .as_ref()
        .and_then(|s| s.environments.iter().find(|e| e.name == env.name))
        .and_then(|e| e.deploy_error.clone());
    if refused.is_some() {
        return Ok(Some(HealthReport {
            release: release.name_any(),
            deploy_error: refused,
            ..HealthReport::default()
        }));
    }
    let namespace = namespace_of(&obs.namespace, env);
    // A cluster that does not answer gives no verdict: the planner waits.
    let Some(targets) = obs.targets.iter().find(|t| t.environment == env.name) else {
        return Ok(None);
    };
    if targets.unreachable.is_some() {
        return Ok(None);
    }
    let place = obs.place(ctx, &env.name);
    // Until the pod cache has listed, restarts would read as none: no
    // verdict this time (the list's events wake the train again).
    let listed = tokio::time::timeout(CACHE_WAIT, place.pods.ready.wait()).await;
    if !matches!(listed, Ok(Ok(()))) {
        tracing::debug!(namespace, cluster = ?place.cluster(), "the pod cache has not listed yet");
        return Ok(None);
    }
    let pods = place.pods.of_train(&obs.namespace, &obs.name());
    // The workloads as this reconcile read them for its targets.
    let find = |workload: &WorkloadRef| {
        targets
            .workloads
            .iter()
            .find(|w| w.workload == *workload)
            .and_then(|w| w.object.as_ref())
    };
    let observation = health::assess(&namespace, find, &pods, &images)?;
    if !observation.images_match {
        return Ok(None);
    }
    let key = format!("{}/{}/{}", obs.namespace, obs.name(), env.name);
    let release_name = release.name_any();
    let http = ctx
        .prober
        .probe_due(
            &format!("{key}/{release_name}"),
            &env.health.http_checks,
            obs.now,
        )
        .await;
    let mut queries = Vec::with_capacity(env.health.metrics.len());
    for check in &env.health.metrics {
        queries.push(metric_query(ctx, obs, env, &release_name, check).await);
    }
    let metrics = ctx
        .metric_prober
        .measure_due(&key, &release_name, &queries, obs.now)
        .await;
    let jobs = super::smoke::observe(ctx, obs, env, release).await?;
    Ok(Some(HealthReport {
        release: release_name,
        workloads: observation.workloads,
        http,
        metrics,
        jobs,
        deploy_error: None,
    }))
}

/// A metric check with its variables filled in and its credentials read.
async fn metric_query(
    ctx: &Context,
    obs: &Observation,
    env: &Environment,
    release: &str,
    check: &MetricCheck,
) -> MetricQuery {
    let mut workloads: Vec<&str> = env.targets.iter().map(|t| t.name.as_str()).collect();
    workloads.dedup();
    let filled = fill_query(&check.query, |name| match name {
        "namespace" => Some(namespace_of(&obs.namespace, env)),
        "environment" => Some(env.name.clone()),
        "release" => Some(release.to_owned()),
        "deployment" => Some(obs.name()),
        "workloads" => Some(workloads.join("|")),
        "interval" => Some(check.interval.clone()),
        _ => None,
    });
    let (query, mut blocked) = match filled {
        Ok(q) => (q, None),
        Err(e) => (String::new(), Some(format!("query: {e}"))),
    };
    let auth = match &check.prometheus.secret_ref {
        Some(s) => match auth(ctx, &obs.namespace, &s.name).await {
            Ok(a) => Some(a),
            Err(why) => {
                blocked.get_or_insert(why);
                None
            }
        },
        None => None,
    };
    MetricQuery {
        name: check.name.clone(),
        address: check.prometheus.address.clone(),
        auth,
        query,
        interval: duration::parse(&check.interval).unwrap_or(chrono::TimeDelta::seconds(30)),
        range: check.threshold_range.clone(),
        on_no_data: check.on_no_data,
        blocked,
    }
}

/// Prometheus credentials from a Secret in the deployment's namespace: a
/// `token` key, or `username` and `password`.
async fn auth(ctx: &Context, namespace: &str, name: &str) -> Result<PrometheusAuth, String> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| format!("reading Secret {name:?}: {e}"))?
        .ok_or_else(|| format!("Secret {name:?} not found in namespace {namespace}"))?;
    let data = secret.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .filter(|v| !v.is_empty())
    };
    if let Some(token) = text("token") {
        return Ok(PrometheusAuth::Bearer(token));
    }
    match (text("username"), text("password")) {
        (Some(username), Some(password)) => Ok(PrometheusAuth::Basic { username, password }),
        _ => Err(format!(
            "Secret {name:?} has neither a \"token\" key nor \"username\" and \"password\""
        )),
    }
}
