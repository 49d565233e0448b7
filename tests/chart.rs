//! The Helm chart: it lints, renders objects the API server accepts, and
//! its RBAC is both enough for a whole release (the operator runs under the
//! chart's ServiceAccount) and no more than the operator needs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::PostParams;
use serde_json::{Value, json};

use support::cluster::repo_root;
use support::operator::Operator;
use support::train::Train;
use support::workloads::{deployment, statefulset};
use support::{DEFAULT_TIMEOUT, POLL_INTERVAL, SimMode, TestNs, kubectl};

const CHART: &str = "charts/packit-operator";

/// The pinned helm binary: `$PACKIT_BIN_DIR/helm` (exported by the hack/
/// scripts), else the directory hack/lib.sh computes from
/// hack/versions.env.
fn helm_binary() -> Result<PathBuf> {
    let dir = match std::env::var_os("PACKIT_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let versions = std::fs::read_to_string(repo_root().join("hack/versions.env"))
                .context("reading hack/versions.env")?;
            let pin = |key: &str| {
                versions
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{key}=")))
                    .map(str::trim)
                    .with_context(|| format!("{key} in hack/versions.env"))
            };
            let cache = match std::env::var_os("PACKIT_CACHE") {
                Some(cache) => PathBuf::from(cache),
                None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
                    .join(".cache/packit-operator"),
            };
            cache.join("bin").join(format!(
                "k8s-{}-etcd-{}-kwok-{}-helm-{}",
                pin("K8S_VERSION")?,
                pin("ETCD_VERSION")?,
                pin("KWOK_VERSION")?,
                pin("HELM_VERSION")?
            ))
        }
    };
    let helm = dir.join("helm");
    ensure!(
        helm.is_file(),
        "{} not found: build it with `make binaries`",
        helm.display()
    );
    Ok(helm)
}

/// Runs helm on the chart; returns stdout, or an error with stderr.
fn helm(args: &[&str]) -> Result<String> {
    let output = Command::new(helm_binary()?)
        .args(args)
        .current_dir(repo_root())
        .output()
        .context("running helm")?;
    if !output.status.success() {
        bail!(
            "helm {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// `helm template` of the chart into `namespace` with `values` (each a
/// `--set-json` assignment), optionally only some templates.
fn render(
    release: &str,
    namespace: &str,
    values: &[(&str, Value)],
    only: &[&str],
) -> Result<String> {
    let mut args: Vec<String> = ["template", release, CHART, "--namespace", namespace]
        .map(String::from)
        .into();
    for (key, value) in values {
        args.extend(["--set-json".into(), format!("{key}={value}")]);
    }
    for template in only {
        args.extend(["--show-only".into(), format!("templates/{template}")]);
    }
    helm(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The rendered documents, parsed.
fn documents(yaml: &str) -> Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).context("parsing helm's output")?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("packit-chart-{}-{name}", std::process::id()))
}

/// Writes `text` to a file of its own under the temp directory.
fn write_temp(name: &str, text: &str) -> Result<PathBuf> {
    let path = temp_path(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The chart's ServiceAccount and RBAC, applied to the cluster for one
/// test. The namespaced objects go with the test namespaces; the
/// ClusterRole and ClusterRoleBinding (named after the unique full name)
/// are deleted when this is dropped.
struct ChartRbac {
    fullname: String,
    namespace: String,
}

impl ChartRbac {
    fn install(namespace: &str, values: &[(&str, Value)]) -> Result<Self> {
        // Unique per test: the namespace is.
        let fullname = format!("packit-{namespace}");
        let mut all = vec![("fullnameOverride", json!(fullname))];
        all.extend(values.iter().cloned());
        let yaml = render(
            "packit",
            namespace,
            &all,
            &["serviceaccount.yaml", "rbac.yaml"],
        )?;
        let rbac = Self {
            fullname,
            namespace: namespace.to_owned(),
        };
        let file = write_temp(&format!("{namespace}-rbac.yaml"), &yaml)?;
        let applied = kubectl(&["apply", "-f", &file.to_string_lossy()]);
        let _ = std::fs::remove_file(&file);
        applied?;
        Ok(rbac)
    }

    /// A kubeconfig for the test cluster that authenticates with a token of
    /// the chart's ServiceAccount, as the operator's pod would.
    fn kubeconfig(&self) -> Result<PathBuf> {
        let token = kubectl(&[
            "create",
            "token",
            &self.fullname,
            "--namespace",
            &self.namespace,
            "--duration",
            "1h",
        ])?;
        let mut config: Value = serde_json::from_str(&kubectl(&[
            "config", "view", "--raw", "--minify", "-o", "json",
        ])?)?;
        let user = config["users"][0]
            .get_mut("user")
            .context("a user in the test kubeconfig")?;
        *user = json!({ "token": token.trim() });
        write_temp(
            &format!("{}-kubeconfig", self.namespace),
            &serde_json::to_string(&config)?,
        )
    }

    /// Waits until the API server's authorizer has seen the new bindings:
    /// every `(verb, resource, namespace)` is allowed to `kubeconfig`.
    fn wait_effective(kubeconfig: &Path, checks: &[(&str, &str, Option<&str>)]) -> Result<()> {
        let deadline = std::time::Instant::now() + DEFAULT_TIMEOUT;
        for (verb, resource, ns) in checks {
            while !can_i(kubeconfig, verb, resource, *ns)? {
                ensure!(
                    std::time::Instant::now() < deadline,
                    "the chart's RBAC did not take effect: still cannot {verb} {resource} in {ns:?}"
                );
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        Ok(())
    }
}

impl Drop for ChartRbac {
    fn drop(&mut self) {
        // The token in it outlives the test otherwise.
        let _ = std::fs::remove_file(temp_path(&format!("{}-kubeconfig", self.namespace)));
        let deleted = kubectl(&[
            "delete",
            "clusterrole,clusterrolebinding",
            &self.fullname,
            "--ignore-not-found",
            "--wait=false",
        ]);
        if let Err(err) = deleted {
            eprintln!(
                "could not delete the ClusterRole {}: {err:#}",
                self.fullname
            );
        }
    }
}

/// `kubectl auth can-i` as the identity of `kubeconfig`; `resource` is
/// `type[/name][:subresource]`.
fn can_i(kubeconfig: &Path, verb: &str, resource: &str, namespace: Option<&str>) -> Result<bool> {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig").arg(kubeconfig);
    let (object, subresource) = resource.split_once(':').unwrap_or((resource, ""));
    cmd.args(["auth", "can-i", verb, object]);
    if !subresource.is_empty() {
        cmd.arg(format!("--subresource={subresource}"));
    }
    match namespace {
        Some(ns) => cmd.args(["--namespace", ns]),
        None => cmd.arg("--all-namespaces"),
    };
    let output = cmd.output().context("running kubectl auth can-i")?;
    match String::from_utf8_lossy(&output.stdout).trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => bail!(
            "kubectl auth can-i {verb} {resource}: {other:?} {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
}

#[test]
fn chart_lints_clean() -> Result<()> {
    let out = helm(&["lint", CHART, "--strict"])?;
    ensure!(
        !out.contains("[WARNING]") && !out.contains("[ERROR]"),
        "helm lint: {out}"
    );
    // The schema is enforced: a bad namespace name and an unknown value
    // are refused.
    for bad in ["namespaces={Bad_Name}", "replicas=3"] {
        let refused = helm(&["lint", CHART, "--set", bad]);
        ensure!(refused.is_err(), "helm lint accepted {bad}: {refused:?}");
    }
    Ok(())
}

#[test]
fn chart_crds_are_the_generated_ones() -> Result<()> {
    let generated = repo_root().join("crds");
    let chart = repo_root().join(CHART).join("crds");
    let names = |dir: &Path| -> Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    };
    let files = names(&generated)?;
    assert_eq!(
        names(&chart)?,
        files,
        "{} and crds/ differ",
        chart.display()
    );
    for file in &files {
        let ours = std::fs::read(generated.join(file))?;
        let theirs = std::fs::read(chart.join(file))?;
        assert!(
            ours == theirs,
            "{}/{file} differs from crds/{file}: keep {} a link to ../../crds",
            chart.display(),
            chart.display()
        );
    }
    // And helm packages them.
    let shown = helm(&["show", "crds", CHART])?;
    for crd in ["packitdeployments.packit.dev", "packitreleases.packit.dev"] {
        ensure!(
            shown.contains(&format!("name: {crd}")),
            "helm show crds lacks {crd}"
        );
    }
    Ok(())
}

#[test]
fn chart_renders_a_locked_down_operator_pod() -> Result<()> {
    let docs = documents(&render("r", "packit-system", &[], &[])?)?;
    let [deployment] = of_kind(&docs, "Deployment")[..] else {
        bail!("not one Deployment: {docs:?}");
    };
    let d: Deployment = serde_json::from_value(deployment.clone())?;
    let pod = d.spec.context("spec")?.template.spec.context("pod spec")?;
    let pod_security = pod.security_context.context("pod securityContext")?;
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(
        pod_security.seccomp_profile.map(|s| s.type_).as_deref(),
        Some("RuntimeDefault")
    );
    let [c] = &pod.containers[..] else {
        bail!("not one container");
    };
    let security = c
        .security_context
        .clone()
        .context("container securityContext")?;
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        security.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_owned()])
    );
    let args = c.args.clone().unwrap_or_default();
    assert_eq!(args.first().map(String::as_str), Some("run"));
    assert!(
        !args.iter().any(|a| a.starts_with("--leader-election")),
        "leader election is off by default: {args:?}"
    );
    // Tenants get no local sources and no address openings by default; the
    // operator's own deny default applies.
    assert!(
        !args.iter().any(
            |a| ["--allow-local-sources", "--allow-cidrs", "--deny-cidrs"].contains(&a.as_str())
        ),
        "{args:?}"
    );
    // The cache directory and /tmp are writable emptyDirs.
    let cache = args
        .iter()
        .skip_while(|a| *a != "--cache-dir")
        .nth(1)
        .context("--cache-dir")?;
    let mounts: Vec<&str> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert!(
        mounts.contains(&cache.as_str()) && mounts.contains(&"/tmp"),
        "{mounts:?}"
    );
    assert!(
        pod.volumes.iter().flatten().all(|v| v.empty_dir.is_some()),
        "{:?}",
        pod.volumes
    );
    let resources = c.resources.clone().context("resources")?;
    assert!(resources.requests.is_some() && resources.limits.is_some());
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(probe_path(&c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(probe_path(&c.readiness_probe).as_deref(), Some("/readyz"));
    let pod_name = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "POD_NAME")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.clone());
    assert_eq!(pod_name.as_deref(), Some("metadata.name"));
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());

    // The switches: leader election, the ServiceMonitor, one namespace,
    // the lockdown's openings.
    let docs = documents(&render(
        "r",
        "packit-system",
        &[
            ("leaderElection.enabled", json!(true)),
            ("serviceMonitor.enabled", json!(true)),
            ("watchNamespace", json!("packit-system")),
            (
                "lockdown",
                json!({
                    "allowLocalSources": true,
                    "allowCidrs": ["10.20.0.0/16", "10.96.0.1/32"],
                    "denyCidrs": ["10.0.0.0/8"]
                }),
            ),
        ],
        &[],
    )?)?;
    let d: Deployment = serde_json::from_value(of_kind(&docs, "Deployment")[0].clone())?;
    let args = d
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.args)
        .unwrap_or_default();
    let joined = args.join(" ");
    assert!(
        joined.contains("--leader-election --leader-election-namespace packit-system")
            && joined.contains("--leader-election-lease packit-operator")
            && joined.contains("--namespace packit-system")
            && joined.contains("--allow-local-sources")
            && joined.contains("--allow-cidrs 10.20.0.0/16,10.96.0.1/32")
            && joined.contains("--deny-cidrs 10.0.0.0/8"),
        "{joined}"
    );
    assert_eq!(of_kind(&docs, "ServiceMonitor").len(), 1);
    let lease_role = of_kind(&docs, "Role")
        .into_iter()
        .find(|r| r["rules"].to_string().contains("leases"))
        .context("a Role for the Lease")?;
    assert_eq!(lease_role["metadata"]["namespace"], "packit-system");
    // Two replicas would both deploy without a leader.
    let refused = render("r", "packit-system", &[("replicaCount", json!(2))], &[]);
    ensure!(
        refused.is_err(),
        "two replicas without leader election rendered"
    );
    Ok(())
}

#[test]
fn chart_rbac_has_no_wildcards() -> Result<()> {
    let yaml = render(
        "r",
        "packit-system",
        &[
            ("namespaces", json!(["packit-system"])),
            ("targetNamespaces", json!(["packit-stg", "packit-prod"])),
            ("leaderElection.enabled", json!(true)),
        ],
        &[],
    )?;
    let docs = documents(&yaml)?;
    let roles: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
        .collect();
    // One ClusterRole; a Role in each namespace, plus the Lease's.
    assert_eq!(roles.len(), 5, "{roles:?}");
    for role in &roles {
        for rule in role["rules"].as_array().context("rules")? {
            for field in ["verbs", "resources", "apiGroups"] {
                let items = rule[field].as_array().context("a list")?;
                ensure!(
                    !items.iter().any(|v| v == "*"),
                    "wildcard {field} in {}",
                    role["metadata"]["name"]
                );
            }
            let secrets = rule["resources"]
                .as_array()
                .is_some_and(|r| r.iter().any(|v| v == "secrets"));
            if secrets {
                assert_eq!(rule["verbs"], json!(["get"]));
                assert_eq!(role["kind"], "Role", "Secrets only per namespace");
                assert_eq!(role["metadata"]["namespace"], "packit-system");
            }
        }
    }
    let target_roles: Vec<&&Value> = roles
        .iter()
        .filter(|r| r["metadata"]["namespace"] == "packit-prod")
        .collect();
    assert_eq!(
        target_roles[0]["rules"],
        json!([
            { "apiGroups": ["apps"], "resources": ["deployments", "statefulsets"], "verbs": ["patch"] },
            { "apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "delete"] },
            { "apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"] },
        ])
    );
    Ok(())
}

#[tokio::test]
async fn chart_objects_pass_server_side_dry_run() -> Result<()> {
    let home = TestNs::new("chart-dry-run").await?;
    let target = TestNs::new("chart-dry-run-target").await?;
    for values in [
        vec![],
        vec![
            ("namespaces", json!([home.name])),
            ("targetNamespaces", json!([target.name])),
            ("leaderElection.enabled", json!(true)),
            ("watchNamespace", json!(home.name)),
            ("image.digest", json!(format!("sha256:{}", "0".repeat(64)))),
        ],
    ] {
        let mut values = values;
        values.push(("fullnameOverride", json!(format!("packit-{}", home.name))));
        let yaml = render("packit", &home.name, &values, &[])?;
        let file = write_temp(&format!("{}-all.yaml", home.name), &yaml)?;
        let applied = kubectl(&["apply", "--dry-run=server", "-f", &file.to_string_lossy()]);
        let _ = std::fs::remove_file(&file);
        let out = applied?;
        for kind in [
            "deployment.apps",
            "clusterrole.rbac",
            "role.rbac",
            "service/",
        ] {
            ensure!(out.contains(kind), "no {kind} in: {out}");
        }
    }
    // A dry run changed nothing.
    let left = kubectl(&[
        "get",
        "clusterrole",
        &format!("packit-{}", home.name),
        "--ignore-not-found",
    ])?;
    assert_eq!(left, "");
    Ok(())
}

/// The image of a workload's first container.
async fn image_in(ns: &TestNs, kind: &str, name: &str) -> Result<String> {
    let template = match kind {
        "Deployment" => ns
            .api::<Deployment>()
            .get(name)
            .await?
            .spec
            .map(|s| s.template),
        _ => ns
            .api::<StatefulSet>()
            .get(name)
            .await?
            .spec
            .map(|s| s.template),
    };
    template
        .and_then(|t| t.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.image)
        .context("an image")
}

/// A whole release (staging, then production in another, opted-in
/// namespace) with the operator authenticated as the chart's
/// ServiceAccount.
#[tokio::test]
async fn operator_releases_with_only_the_chart_rbac() -> Result<()> {
    let prod = TestNs::new("chart-prod").await?;
    for (kind, name) in [
        ("Deployment", "service-prod"),
        ("StatefulSet", "worker-prod"),
    ] {
        let image = format!("{}/base:v0", prod.registry());
        match kind {
            "Deployment" => {
                prod.api::<Deployment>()
                    .create(
                        &PostParams::default(),
                        &deployment(name, &image, 2, SimMode::Ready)?,
                    )
                    .await?;
            }
            _ => {
                prod.api::<StatefulSet>()
                    .create(
                        &PostParams::default(),
                        &statefulset(name, &image, 1, SimMode::Ready)?,
                    )
                    .await?;
            }
        }
    }
    let prod_ns = prod.name.clone();
    let mut rbac = None;
    let t = Train::with_operator(
        "chart-rbac",
        |spec| spec["environments"][1]["namespace"] = json!(prod_ns.as_str()),
        |ns| {
            kubectl(&[
                "annotate",
                "namespace",
                &prod_ns,
                &format!("packit.dev/allow-from={}", ns.name),
            ])?;
            let installed = ChartRbac::install(
                &ns.name,
                &[
                    ("namespaces", json!([ns.name])),
                    ("targetNamespaces", json!([prod_ns])),
                ],
            )?;
            let kubeconfig = installed.kubeconfig()?;
            ChartRbac::wait_effective(
                &kubeconfig,
                &[
                    ("list", "packitdeployments.packit.dev", None),
                    ("create", "packitreleases.packit.dev", Some(&ns.name)),
                    ("patch", "deployments.apps", Some(&prod_ns)),
                ],
            )?;
            rbac = Some(installed);
            Operator::start_with_kubeconfig(&ns.name, &kubeconfig)
        },
    )
    .await?;
    let (name, images) = t.full_release("first").await?;
    assert_eq!(
        t.images("stg").await?,
        (images["service"].clone(), images["worker"].clone())
    );
    assert_eq!(
        image_in(&prod, "Deployment", "service-prod").await?,
        images["service"]
    );
    assert_eq!(
        image_in(&prod, "StatefulSet", "worker-prod").await?,
        images["worker"]
    );
    let release = t.release(&name).await?;
    let verified = release
        .status
        .iter()
        .flat_map(|s| &s.environments)
        .filter(|e| e.verified_at.is_some())
        .count();
    assert_eq!(verified, 2, "{:?}", release.status);
    // The Events were published under that identity too.
    t.assert_event("Released", &[&name]).await?;
    // And nothing was refused on the way.
    let logs = t.op.logs();
    assert!(!logs.to_lowercase().contains("forbidden"), "{logs}");
    drop(t);
    drop(rbac);
    Ok(())
}

/// What the chart's ServiceAccount may and may not do: it reads what it
/// watches everywhere, writes only in the listed namespaces, and reads
/// Secrets only by name where PackitDeployments live.
#[tokio::test]
async fn chart_rbac_allows_what_the_operator_needs_and_nothing_more() -> Result<()> {
    let home = TestNs::new("chart-can-i").await?;
    let target = TestNs::new("chart-can-i-target").await?;
    let other = TestNs::new("chart-can-i-other").await?;
    let rbac = ChartRbac::install(
        &home.name,
        &[
            ("namespaces", json!([home.name])),
            ("targetNamespaces", json!([target.name])),
            ("leaderElection.enabled", json!(true)),
        ],
    )?;
    let config = rbac.kubeconfig()?;
    // Only the grants that come last; the assertions below need them all.
    ChartRbac::wait_effective(
        &config,
        &[
            ("list", "packitdeployments.packit.dev", None),
            ("get", "secrets", Some(&home.name)),
            ("patch", "deployments.apps", Some(&target.name)),
            ("create", "leases.coordination.k8s.io", Some(&home.name)),
        ],
    )?;
    let (h, t, o) = (
        Some(home.name.as_str()),
        Some(target.name.as_str()),
        Some(other.name.as_str()),
    );
    let allowed = [
        ("get", "secrets", h),
        ("create", "jobs.batch", h),
        ("delete", "jobs.batch", h),
        ("get", "pods:log", h),
        // Smoke-test Jobs in the environments.
        ("create", "jobs.batch", t),
        ("delete", "jobs.batch", t),
        ("get", "pods:log", t),
        ("patch", "deployments.apps", h),
        ("patch", "statefulsets.apps", h),
        ("patch", "deployments.apps", t),
        ("patch", "statefulsets.apps", t),
        ("create", "packitreleases.packit.dev", h),
        ("delete", "packitreleases.packit.dev", h),
        ("patch", "packitreleases.packit.dev:status", h),
        ("patch", "packitdeployments.packit.dev:status", h),
        // The claims finalizer.
        ("patch", "packitdeployments.packit.dev", h),
        ("create", "events.events.k8s.io", h),
        ("patch", "events.events.k8s.io", h),
        ("create", "leases.coordination.k8s.io", h),
        ("update", "leases.coordination.k8s.io/packit-operator", h),
        // Watched everywhere (workloads may live in opted-in namespaces).
        ("watch", "pods", None),
        ("list", "deployments.apps", None),
        ("watch", "statefulsets.apps", None),
        ("watch", "jobs.batch", None),
        ("list", "packitdeployments.packit.dev", None),
        ("get", "deployments.apps", o),
        ("get", "namespaces", None),
        ("watch", "namespaces", None),
    ];
    let denied = [
        ("get", "secrets", o),
        ("list", "secrets", o),
        ("list", "secrets", h),
        ("watch", "secrets", h),
        ("get", "secrets", t),
        ("list", "secrets", None),
        ("patch", "deployments.apps", o),
        ("patch", "statefulsets.apps", o),
        ("update", "deployments.apps", h),
        ("delete", "deployments.apps", h),
        ("create", "deployments.apps", t),
        ("create", "jobs.batch", o),
        ("delete", "jobs.batch", o),
        ("get", "pods:log", o),
        ("update", "jobs.batch", t),
        ("create", "pods", t),
        ("create", "pods", h),
        ("create", "pods/exec", h),
        ("delete", "packitdeployments.packit.dev", h),
        ("create", "packitreleases.packit.dev", o),
        ("create", "events.events.k8s.io", o),
        ("delete", "namespaces", None),
        ("patch", "namespaces", None),
        ("update", "leases.coordination.k8s.io/someone-else", h),
        ("create", "leases.coordination.k8s.io", o),
        ("create", "roles.rbac.authorization.k8s.io", h),
        (
            "create",
            "clusterrolebindings.rbac.authorization.k8s.io",
            None,
        ),
        ("*", "*", h),
    ];
    let mut wrong = Vec::new();
    for (verb, resource, ns) in allowed {
        if !can_i(&config, verb, resource, ns)? {
            wrong.push(format!("cannot {verb} {resource} in {ns:?}"));
        }
    }
    for (verb, resource, ns) in denied {
        if can_i(&config, verb, resource, ns)? {
            wrong.push(format!("can {verb} {resource} in {ns:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "the chart's ServiceAccount {}",
        wrong.join("; ")
    );
    let _ = std::fs::remove_file(&config);
    Ok(())
}
