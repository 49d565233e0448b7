//! The commands that talk to the API server.

use chrono::Utc;
use futures::{AsyncBufReadExt, StreamExt, stream};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams};
use kube::config::KubeConfigOptions;
use kube::{Client, Config, ResourceExt};
use serde::Serialize;

use super::history::{self, ReleaseSummary};
use super::logs;
use super::status::{self, DeploymentStatus};
use super::when::{self, Zone};
use super::{Cli, ClusterAction, Command, Failure, Format, Result, remote, requests};
use crate::api::checks::JobVerdict;
use crate::api::{PackitDeployment, PackitRelease};
use crate::labels;
use crate::plan::ReleasePhase;

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let zone = Zone::from_arg(cli.tz.as_deref()).map_err(Failure::usage)?;
    // For `cluster`, --context names the remote; home is the current one.
    if let Command::Cluster { action } = &cli.command {
        let remote = cli.context.as_deref().ok_or_else(|| {
            Failure::usage("cluster add/remove need --context CTX: the kubeconfig context of the remote cluster")
        })?;
        let (home, ns) = connect(cli.namespace, None).await?;
        let done = match action {
            ClusterAction::Add { name, server } => {
                remote::add(&home, &ns, name, remote, server.as_deref()).await?
            }
            ClusterAction::Remove { name } => remote::remove(&home, &ns, name, remote).await?,
        };
        println!("{done}");
        return Ok(());
    }
    let (client, ns) = connect(cli.namespace, cli.context).await?;
    let ctx = Ctx {
        client,
        ns,
        zone,
        format: cli.output,
    };
    match cli.command {
        Command::Status { deployment } => ctx.status(deployment.as_deref()).await,
        Command::History { deployment } => ctx.history(deployment.as_deref()).await,
        Command::Release { deployment } => ctx.release(&deployment).await,
        Command::Promote { deployment, force } => ctx.promote(&deployment, force).await,
        Command::Approve {
            deployment,
            environment,
        } => ctx.approve(&deployment, environment.as_deref()).await,
        Command::Rollback {
            deployment,
            environment,
            to,
            at,
        } => {
            ctx.rollback(&deployment, &environment, to.as_deref(), at.as_deref())
                .await
        }
        Command::Hold {
            deployment,
            environment,
            reason,
        } => ctx.hold(&deployment, environment.as_deref(), &reason).await,
        Command::Unhold {
            deployment,
            environment,
        } => ctx.unhold(&deployment, environment.as_deref()).await,
        Command::Changelog { release } => ctx.changelog(&release).await,
        Command::Dashboard {
            port,
            all_namespaces,
        } => super::dashboard::serve(ctx.client, (!all_namespaces).then_some(ctx.ns), port).await,
        Command::Cluster { .. } => unreachable!("handled above"),
        Command::Logs {
            release,
            no_follow,
            smoke_tests,
            environment,
            test,
            tail,
        } => {
            if smoke_tests || environment.is_some() || test.is_some() {
                ctx.smoke_logs(&release, environment.as_deref(), test.as_deref(), tail)
                    .await
            } else {
                ctx.logs(&release, !no_follow, tail).await
            }
        }
    }
}

async fn connect(namespace: Option<String>, context: Option<String>) -> Result<(Client, String)> {
    let config = match context {
        // A context only exists in a kubeconfig: no in-cluster fallback.
        Some(context) => {
            let options = KubeConfigOptions { context: Some(context.clone()), ..Default::default() };
            Config::from_kubeconfig(&options).await.map_err(|e| {
                Failure::cluster(format!(
                    "cannot use kubeconfig context {context:?} ({e}); list them with kubectl config get-contexts"
                ))
            })?
        }
        None => Config::infer().await.map_err(|e| {
            Failure::cluster(format!(
                "no usable kubeconfig ({e}); set KUBECONFIG or select a context with kubectl config use-context"
            ))
        })?,
    };
    let ns = namespace.unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config)
        .map_err(|e| Failure::cluster(format!("cannot build a client from the kubeconfig: {e}")))?;
    Ok((client, ns))
}

/// Maps an API error: 404 is "not found" (`missing` says what and what to
/// do), anything else is the cluster's.
pub(super) fn api_error(e: kube::Error, doing: &str, missing: impl FnOnce() -> String) -> Failure {
    match &e {
        kube::Error::Api(s) if s.code == 404 => Failure::not_found(missing()),
        kube::Error::Api(s) if s.code == 403 => Failure::cluster(format!(
            "not allowed {doing}: {}; ask for access to PackitDeployments and PackitReleases",
            s.message
        )),
        kube::Error::Api(s) => Failure::cluster(format!("{doing}: {}", s.message)),
        _ => Failure::cluster(format!(
            "cannot reach the cluster while {doing}: {e}; check it with kubectl cluster-info"
        )),
    }
}

/// The environment `env` of the deployment `name`; "not found" names the
/// ones it has.
pub(super) fn environment<'a>(
    pkd: &'a PackitDeployment,
    name: &str,
    env: &str,
) -> Result<&'a crate::api::deployment::Environment> {
    pkd.spec
        .environments
        .iter()
        .find(|e| e.name == env)
        .ok_or_else(|| {
            let names: Vec<&str> = pkd
                .spec
                .environments
                .iter()
                .map(|e| e.name.as_str())
                .collect();
            Failure::not_found(format!(
                "PackitDeployment {name} has no environment {env:?}; its environments are: {}",
                names.join(", ")
            ))
        })
}

fn crd_missing(kind: &str) -> String {
    format!(
        "the {kind} resource is not served by this cluster; install the CRDs (kubectl apply -f crds/)"
    )
}

/// Prints `value` as JSON or YAML; returns false for `table`, which the
/// caller renders.
fn print_for_machines<T: Serialize>(format: Format, value: &T) -> Result<bool> {
    let text = match format {
        Format::Table => return Ok(false),
        Format::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| Failure::usage(format!("rendering JSON: {e}")))?,
        Format::Yaml => serde_saphyr::to_string(value)
            .map_err(|e| Failure::usage(format!("rendering YAML: {e}")))?,
    };
    print!("{text}");
    Ok(true)
}

/// What the API server said, without kube's wrapping.
fn reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        e => e.to_string(),
    }
}

/// Where the log of a smoke test's pod comes from.
enum SmokePod {
    /// The pod exists: read its log now.
    Live(Box<Pod>),
    /// Why the pod's log cannot be read now; the recorded tail is shown.
    Gone { pod: Option<String>, why: String },
}

fn is_pending(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_none_or(|p| p == "Pending")
}

/// A log line, prefixed with `[pod/container]` when several are streamed
/// together, as `kubectl logs --prefix` does.
pub fn log_line(label: &str, line: &str, prefixed: bool) -> String {
    if prefixed {
        format!("[{label}] {line}")
    } else {
        line.to_owned()
    }
}

pub(super) struct Ctx {
    pub(super) client: Client,
    pub(super) ns: String,
    zone: Zone,
    format: Format,
}

impl Ctx {
    /// A context for commands on `ns`, showing times in the local zone.
    pub(super) fn new(client: Client, ns: String) -> Self {
        Self {
            client,
            ns,
            zone: Zone::Local,
            format: Format::Table,
        }
    }

    pub(super) fn deployments(&self) -> Api<PackitDeployment> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn releases(&self) -> Api<PackitRelease> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub(super) async fn deployment(&self, name: &str) -> Result<PackitDeployment> {
        self.deployments()
            .get(name)
            .await
            .map_err(|e| api_error(e, &format!("reading PackitDeployment {name}"), || {
                format!(
                    "no PackitDeployment {name:?} in namespace {}; list them with kubectl packit status -n {}",
                    self.ns, self.ns
                )
            }))
    }

    async fn release_named(&self, name: &str) -> Result<PackitRelease> {
        self.releases()
            .get(name)
            .await
            .map_err(|e| api_error(e, &format!("reading PackitRelease {name}"), || {
                format!(
                    "no PackitRelease {name:?} in namespace {}; list them with kubectl packit history -n {}",
                    self.ns, self.ns
                )
            }))
    }

    async fn status(&self, name: Option<&str>) -> Result<()> {
        let list = match name {
            Some(name) => vec![self.deployment(name).await?],
            None => {
                self.deployments()
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| {
                        api_error(e, "listing PackitDeployments", || {
                            crd_missing("PackitDeployment")
                        })
                    })?
                    .items
            }
        };
        // The verdicts of checks and smoke tests are on the releases; status
        // still works for someone who may not read those.
        let releases = match self.releases().list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) if !list.is_empty() => {
                eprintln!(
                    "note: cannot list PackitReleases ({}); check verdicts are left out",
                    reason(&e)
                );
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        let now = Utc::now();
        let views: Vec<DeploymentStatus> = list
            .iter()
            .map(|d| DeploymentStatus::of(d, &releases, now))
            .collect();
        if print_for_machines(self.format, &views)? {
            return Ok(());
        }
        if views.is_empty() {
            eprintln!("No PackitDeployments in namespace {}.", self.ns);
            return Ok(());
        }
        print!("{}", status::render(&views, now, &self.zone));
        Ok(())
    }

    async fn history(&self, deployment: Option<&str>) -> Result<()> {
        let list = self
            .releases()
            .list(&ListParams::default())
            .await
            .map_err(|e| api_error(e, "listing PackitReleases", || crd_missing("PackitRelease")))?;
        let mut views: Vec<ReleaseSummary> = list
            .items
            .iter()
            .filter(|r| deployment.is_none_or(|d| r.spec.deployment == d))
            .map(ReleaseSummary::of)
            .collect();
        if let Some(name) = deployment
            && views.is_empty()
        {
            // A typo should not look like an empty history; the releases of
            // a deleted deployment are still shown.
            self.deployment(name).await?;
        }
        history::newest_first(&mut views);
        if print_for_machines(self.format, &views)? {
            return Ok(());
        }
        if views.is_empty() {
            eprintln!("No PackitReleases in namespace {} yet.", self.ns);
            return Ok(());
        }
        print!("{}", history::render(&views, Utc::now()));
        Ok(())
    }

    pub(super) async fn annotate(&self, name: &str, key: &str, value: &str) -> Result<()> {
        self.deployments()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(requests::annotation_patch(key, value)),
            )
            .await
            .map_err(|e| {
                api_error(e, &format!("annotating PackitDeployment {name}"), || {
                    format!("PackitDeployment {name:?} was deleted in the meantime")
                })
            })?;
        Ok(())
    }

    pub(super) async fn release(&self, name: &str) -> Result<()> {
        let pkd = self.deployment(name).await?;
        let value = requests::release(Utc::now());
        self.annotate(name, requests::RELEASE, &value).await?;
        println!(
            "Requested a release of {}/{name} ({}={value}).",
            self.ns,
            requests::RELEASE
        );
        if let Some(f) = pkd.status.as_ref().and_then(|s| s.train.in_flight.as_ref()) {
            // Only one release is in flight at a time.
            println!(
                "Note: {} is in flight ({}); the new build does not run beside it.",
                f.release,
                status::variant_name(&f.stage).to_lowercase()
            );
        }
        println!(
            "Follow it with: kubectl packit status {name} -n {}",
            self.ns
        );
        Ok(())
    }

    pub(super) async fn promote(&self, name: &str, force: bool) -> Result<()> {
        let pkd = self.deployment(name).await?;
        let value = requests::promote(Utc::now(), force)
            .map_err(|e| Failure::usage(format!("encoding the request: {e}")))?;
        let in_flight = pkd
            .status
            .as_ref()
            .and_then(|s| s.train.in_flight.as_ref())
            .map(|f| f.release.clone());
        self.annotate(name, requests::PROMOTE, &value).await?;
        match in_flight {
            Some(r) => println!(
                "Requested promotion of {r} to production{} ({}={value}).",
                if force { ", forced" } else { "" },
                requests::PROMOTE
            ),
            None => println!(
                "Requested promotion ({}={value}); no release is in flight right now, so there may be nothing to promote.",
                requests::PROMOTE
            ),
        }
        println!(
            "Follow it with: kubectl packit status {name} -n {}",
            self.ns
        );
        Ok(())
    }

    pub(super) async fn rollback(
        &self,
        name: &str,
        env: &str,
        to: Option<&str>,
        at: Option<&str>,
    ) -> Result<()> {
        let now = Utc::now();
        let at = at
            .map(|t| when::resolve(t, now, &self.zone))
            .transpose()
            .map_err(Failure::usage)?;
        let pkd = self.deployment(name).await?;
        let spec_env = environment(&pkd, name, env)?;
        if let Some(pin) = &spec_env.pin {
            return Err(Failure::usage(format!(
                "environment {env} is pinned to {pin}, and a pinned environment is not rolled back; \
                 change spec.environments[].pin instead"
            )));
        }
        let state = pkd
            .status
            .as_ref()
            .and_then(|s| s.train.environments.iter().find(|s| s.name == env).cloned())
            .unwrap_or_default();
        let verified = if state.verified.is_empty() {
            "none".to_owned()
        } else {
            state.verified.join(", ")
        };
        match to {
            Some(release) => {
                let r = self.release_named(release).await?;
                if r.spec.deployment != name {
                    return Err(Failure::usage(format!(
                        "release {release} belongs to PackitDeployment {}, not {name}",
                        r.spec.deployment
                    )));
                }
                if !state.verified.iter().any(|v| v == release) {
                    return Err(Failure::usage(format!(
                        "release {release} was never verified healthy in {env}, so it is not rolled back to; \
                         releases verified there: {verified}"
                    )));
                }
            }
            None => {
                let earlier = state
                    .verified
                    .iter()
                    .rev()
                    .any(|v| Some(v.as_str()) != state.release.as_deref());
                if !earlier {
                    return Err(Failure::not_found(format!(
                        "{env} has no earlier release verified healthy to roll back to (verified there: {verified})"
                    )));
                }
            }
        }
        let value = requests::rollback(now, env, to, at)
            .map_err(|e| Failure::usage(format!("encoding the request: {e}")))?;
        self.annotate(name, requests::ROLLBACK, &value).await?;
        let target = to.unwrap_or("the previous good release");
        let when = at.map_or_else(|| "now".to_owned(), |t| format!("at {}", self.zone.show(t)));
        println!(
            "Requested a rollback of {env} to {target} {when} ({}={value}).",
            requests::ROLLBACK
        );
        println!(
            "Follow it with: kubectl packit status {name} -n {}",
            self.ns
        );
        Ok(())
    }

    async fn changelog(&self, name: &str) -> Result<()> {
        let r = self.release_named(name).await?;
        match r
            .status
            .and_then(|s| s.changelog)
            .filter(|c| !c.markdown.trim().is_empty())
        {
            Some(c) => {
                print!("{}", c.markdown);
                if !c.markdown.ends_with('\n') {
                    println!();
                }
                if c.truncated {
                    eprintln!("note: the stored changelog was cut to fit in the object");
                }
                Ok(())
            }
            None => Err(Failure::not_found(format!(
                "release {name} has no changelog yet; it is written once the release is built"
            ))),
        }
    }

    async fn logs(&self, name: &str, follow: bool, tail: Option<i64>) -> Result<()> {
        self.release_named(name).await?;
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        let selector = format!("{}={name}", labels::RELEASE);
        let mut announced = false;
        let mut pods = loop {
            let pods = pods_api
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| api_error(e, "listing build pods", || "pods are not served".into()))?
                .items;
            // Right after a release request the build pods do not exist or
            // have not started yet; following waits for them while the
            // release is still building.
            let starting = pods.is_empty() || pods.iter().any(is_pending);
            if !follow || !starting {
                break pods;
            }
            let phase = self.release_named(name).await?.status.and_then(|s| s.phase);
            if !matches!(
                phase,
                None | Some(ReleasePhase::Pending | ReleasePhase::Building)
            ) {
                break pods;
            }
            if !announced {
                eprintln!("Waiting for the build pods of {name} to start...");
                announced = true;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        };
        if pods.is_empty() {
            return Err(Failure::not_found(format!(
                "release {name} has no build pods (label {selector}); the build has not started, \
                 used an External build, or its Job was cleaned up; \
                 its smoke tests' logs: kubectl packit logs {name} --smoke-tests"
            )));
        }
        pods.sort_by_key(|p| p.name_any());
        let mut sources = Vec::new();
        for pod in &pods {
            let containers = pod
                .spec
                .as_ref()
                .map(|s| {
                    s.containers
                        .iter()
                        .map(|c| c.name.clone())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            for c in containers {
                sources.push((pod.name_any(), c));
            }
        }
        let prefixed = sources.len() > 1;
        let streams = sources.into_iter().map(|(pod, container)| {
            let api = pods_api.clone();
            let params = LogParams {
                container: Some(container.clone()),
                follow,
                tail_lines: tail,
                ..LogParams::default()
            };
            let label = format!("{pod}/{container}");
            stream::once(async move {
                let lines = api.log_stream(&pod, &params).await.map(|r| r.lines());
                (label, lines)
            })
            .flat_map(|(label, lines)| match lines {
                Ok(lines) => {
                    let l = label.clone();
                    lines
                        .map(move |line| (l.clone(), line.map_err(|e| e.to_string())))
                        .boxed()
                }
                Err(e) => stream::once(async move { (label, Err(e.to_string())) }).boxed(),
            })
        });
        let mut merged = stream::select_all(streams.map(StreamExt::boxed));
        let mut failed = false;
        while let Some((label, line)) = merged.next().await {
            match line {
                Ok(line) => println!("{}", log_line(&label, &line, prefixed)),
                Err(e) => {
                    failed = true;
                    eprintln!("error: logs of {label}: {e}");
                }
            }
        }
        if failed {
            return Err(Failure::cluster(format!(
                "could not read every build log of {name}; check the pods with kubectl get pods -l {selector} -n {}",
                self.ns
            )));
        }
        Ok(())
    }

    /// The pod of a smoke test: the one recorded on the release, else the
    /// newest of its Job (a running test has none recorded yet).
    async fn smoke_pod(&self, pods: &Api<Pod>, v: &JobVerdict) -> SmokePod {
        if let Some(name) = &v.pod {
            return match pods.get_opt(name).await {
                Ok(Some(pod)) => SmokePod::Live(Box::new(pod)),
                Ok(None) => SmokePod::Gone {
                    pod: Some(name.clone()),
                    why: format!("pod {name} is gone"),
                },
                Err(e) => SmokePod::Gone {
                    pod: Some(name.clone()),
                    why: format!("pod {name} cannot be read ({})", reason(&e)),
                },
            };
        }
        let selector = format!("batch.kubernetes.io/job-name={}", v.job);
        match pods.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => match list
                .items
                .into_iter()
                .max_by_key(|p| p.metadata.creation_timestamp.clone())
            {
                Some(pod) => SmokePod::Live(Box::new(pod)),
                None => SmokePod::Gone {
                    pod: None,
                    why: format!("Job {} has no pod", v.job),
                },
            },
            Err(e) => SmokePod::Gone {
                pod: None,
                why: format!(
                    "the pods of Job {} cannot be listed ({})",
                    v.job,
                    reason(&e)
                ),
            },
        }
    }

    async fn smoke_logs(
        &self,
        name: &str,
        environment: Option<&str>,
        test: Option<&str>,
        tail: Option<i64>,
    ) -> Result<()> {
        let r = self.release_named(name).await?;
        let envs = r
            .status
            .as_ref()
            .map(|s| s.environments.as_slice())
            .unwrap_or_default();
        let chosen = logs::select(name, envs, environment, test)?;
        let release_ns = r.namespace().unwrap_or_else(|| self.ns.clone());
        // The environments' namespaces are in the deployment's spec; a
        // deleted deployment's ran in its own namespace unless it said
        // otherwise, which can no longer be known.
        let pkd = match self.deployments().get_opt(&r.spec.deployment).await {
            Ok(Some(pkd)) => Some(pkd),
            Ok(None) => {
                eprintln!(
                    "note: PackitDeployment {} is gone; looking for the smoke-test pods in namespace {release_ns}",
                    r.spec.deployment
                );
                None
            }
            Err(e) => {
                eprintln!(
                    "note: cannot read PackitDeployment {} ({}); looking for the smoke-test pods in namespace {release_ns}",
                    r.spec.deployment,
                    reason(&e)
                );
                None
            }
        };
        let now = Utc::now();
        for (i, (env, v)) in chosen.into_iter().enumerate() {
            if i > 0 {
                println!();
            }
            let ns = logs::namespace_of(pkd.as_ref(), &release_ns, env);
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            match self.smoke_pod(&pods, v).await {
                SmokePod::Gone { pod, why } => {
                    print!("{}", logs::header(env, &ns, v, pod.as_deref(), now));
                    print!("{}", logs::recorded(&why, &v.log_tail, tail));
                }
                SmokePod::Live(pod) => {
                    let pod_name = pod.name_any();
                    print!("{}", logs::header(env, &ns, v, Some(&pod_name), now));
                    let containers: Vec<String> = pod
                        .spec
                        .as_ref()
                        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
                        .unwrap_or_default();
                    if containers.is_empty() {
                        let why = format!("pod {pod_name} has no containers");
                        print!("{}", logs::recorded(&why, &v.log_tail, tail));
                    }
                    let several = containers.len() > 1;
                    for c in &containers {
                        let params = LogParams {
                            container: Some(c.clone()),
                            tail_lines: tail,
                            ..LogParams::default()
                        };
                        match pods.logs(&pod_name, &params).await {
                            Ok(text) => {
                                print!("{}", logs::live_note(&pod_name, several.then_some(c)));
                                if text.is_empty() {
                                    println!("(the log is empty)");
                                } else {
                                    print!("{text}");
                                    if !text.ends_with('\n') {
                                        println!();
                                    }
                                }
                            }
                            Err(e) => {
                                let why = format!(
                                    "the log of pod {pod_name} cannot be read ({})",
                                    reason(&e)
                                );
                                print!("{}", logs::recorded(&why, &v.log_tail, tail));
                                break;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Exit;
    use super::*;

    #[test]
    fn log_lines_are_prefixed_only_when_mixed() {
        assert_eq!(log_line("p/c", "hello", false), "hello");
        assert_eq!(log_line("p/c", "hello", true), "[p/c] hello");
    }

    #[test]
    fn api_errors_map_to_exit_codes() {
        let status = |code: u16| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                message: "m".into(),
                ..Default::default()
            }))
        };
        let missing = || "gone".to_owned();
        let f = api_error(status(404), "reading", missing);
        assert_eq!((f.exit, f.message.as_str()), (Exit::NotFound, "gone"));
        let f = api_error(status(403), "reading", missing);
        assert_eq!(f.exit, Exit::Cluster);
        assert!(
            f.message.contains("not allowed reading: m"),
            "{}",
            f.message
        );
        assert_eq!(
            api_error(status(500), "reading", missing).exit,
            Exit::Cluster
        );
    }
}
