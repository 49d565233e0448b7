//! Environments on another cluster: staging at home, production on the
//! second local control plane, reached through a kubeconfig Secret. The
//! whole train, an automatic and a requested rollback there, a rotated
//! token, `kubectl packit cluster add/remove` checked by impersonation,
//! refused kubeconfigs, and the remote cluster stopped mid-release.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use chrono::Utc;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use packit_operator::api::PackitDeployment;
use packit_operator::api::checks::JobResult;
use packit_operator::plan::ReleasePhase;
use serde_json::{Value, json};
use tokio::sync::RwLock;

use support::operator::Operator;
use support::remote::remote;
use support::train::{PKD, TIMEOUT, Train};
use support::workloads::{crash_loop_pods, deployment, statefulset};
use support::{SimMode, TestNs, cluster, eventually};

/// Held for writing by the test that stops the remote cluster; the others
/// read, so none of them sees that outage.
static REMOTE_UP: RwLock<()> = RwLock::const_new(());

const CLUSTER: &str = "prod-remote";

/// The remote namespace of one test (named as the home one), deleted at
/// the end.
struct RemoteNs(String);

impl RemoteNs {
    /// The namespace with the production workloads, on the image the home
    /// fixture's workloads start with.
    fn with_workloads(ns: &TestNs) -> Result<Self> {
        let base = ns.kubectl(&[
            "get",
            "deployment",
            "service-prod",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])?;
        let r = remote();
        r.kubectl(&["create", "namespace", &ns.name])?;
        let guard = RemoteNs(ns.name.clone());
        let mut d = deployment("service-prod", &base, 2, SimMode::Ready)?;
        // Generous: right after an outage test restarted the cluster, its
        // controllers take a while to catch up.
        if let Some(spec) = d.spec.as_mut() {
            spec.progress_deadline_seconds = Some(90);
        }
        let s = statefulset("worker-prod", &base, 1, SimMode::Ready)?;
        for (kind, object) in [
            ("Deployment", serde_json::to_value(d)?),
            ("StatefulSet", serde_json::to_value(s)?),
        ] {
            let mut object = object;
            object["apiVersion"] = json!("apps/v1");
            object["kind"] = json!(kind);
            r.kubectl_with(&["apply", "-n", &ns.name, "-f", "-"], &object.to_string())?;
        }
        Ok(guard)
    }
}

impl Drop for RemoteNs {
    fn drop(&mut self) {
        let _ = remote().kubectl(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}

/// Production on `secret`'s cluster.
fn production_on(secret: &'static str) -> impl FnOnce(&mut Value) {
    move |spec| {
        spec["environments"][1]["cluster"] = json!({ "kubeconfigSecretRef": { "name": secret } });
    }
}

/// Stores `kubeconfig` as Secret `name` (key `kubeconfig`) in `ns`.
fn store_kubeconfig(ns: &TestNs, name: &str, kubeconfig: &str) -> Result<()> {
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": name },
        "stringData": { "kubeconfig": kubeconfig },
    });
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), secret.to_string())?;
    let path = file.path().to_str().context("a UTF-8 path")?;
    ns.kubectl(&["apply", "-f", path])?;
    Ok(())
}

/// The plugin with both clusters in its kubeconfig, home current.
fn plugin(ns: &str, args: &[&str]) -> Output {
    let kubeconfig = std::env::join_paths([&cluster().kubeconfig, &remote().kubeconfig])
        .expect("joinable paths");
    Command::new(env!("CARGO_BIN_EXE_kubectl-packit"))
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .args(["-n", ns])
        .output()
        .expect("running kubectl-packit")
}

fn plugin_ok(ns: &str, args: &[&str]) -> Result<String> {
    let out = plugin(ns, args);
    ensure!(
        out.status.success(),
        "kubectl packit {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The images of the remote production workloads.
async fn remote_images(ns: &str) -> Result<(String, String)> {
    let client = remote().client().await?;
    let image = |t: Option<k8s_openapi::api::core::v1::PodTemplateSpec>| {
        t.and_then(|t| t.spec)
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.image)
            .context("an image")
    };
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("service-prod")
        .await?;
    let s = Api::<StatefulSet>::namespaced(client, ns)
        .get("worker-prod")
        .await?;
    Ok((
        image(d.spec.map(|s| s.template))?,
        image(s.spec.map(|s| s.template))?,
    ))
}

async fn wait_remote_images(ns: &str, want: (&str, &str), what: &str) -> Result<()> {
    eventually(what, TIMEOUT, || async {
        let now = remote_images(ns).await?;
        Ok((now.0 == want.0 && now.1 == want.1).then_some(()))
    })
    .await
}

/// Builds a second release and waits until the remote production runs it.
async fn second_in_remote_production(t: &Train) -> Result<String> {
    t.release_now("second").await?;
    let second = t.in_flight().await?;
    let images = t.build(&second).await?;
    t.wait_phase(&second, ReleasePhase::Production).await?;
    wait_remote_images(
        &t.ns.name,
        (&images["service"], &images["worker"]),
        "the remote production on the second release",
    )
    .await?;
    Ok(second)
}

/// Makes the remote production pods crash-loop.
async fn break_remote_pods(ns: &str) -> Result<()> {
    let pods = Api::<Pod>::namespaced(remote().client().await?, ns);
    for app in ["service-prod", "worker-prod"] {
        crash_loop_pods(&pods, app, None).await?;
    }
    Ok(())
}

/// The train's condition `type_` as `(status, reason, message)`.
async fn condition(t: &Train, type_: &str) -> Result<Option<(String, String, String)>> {
    Ok(t.pkd()
        .await?
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == type_))
        .map(|c| (c.status, c.reason, c.message)))
}

async fn wait_condition(
    t: &Train,
    type_: &str,
    status: &str,
    parts: &[&str],
    timeout: Duration,
) -> Result<String> {
    eventually(
        &format!("{type_}={status} with {parts:?}"),
        timeout,
        || async {
            Ok(condition(t, type_).await?.and_then(|(s, reason, m)| {
                (s == status && parts.iter().all(|p| m.contains(p) || reason == *p)).then_some(m)
            }))
        },
    )
    .await
}

/// `kubectl auth can-i` on the remote cluster as `user`.
fn can(user: &str, verb: &str, resource: &str) -> Result<bool> {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&remote().kubeconfig)
        .args([
            "auth",
            "can-i",
            verb,
            resource,
            "--all-namespaces",
            "--as",
            user,
        ])
        .output()?;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    ensure!(
        said == "yes" || said == "no",
        "can-i {verb} {resource}: {said:?} {out:?}"
    );
    Ok(said == "yes")
}

#[tokio::test]
async fn cluster_add_gives_the_operator_exactly_what_a_whole_train_needs_there() -> Result<()> {
    let _up = REMOTE_UP.read().await;
    let context = remote().context()?;
    let mut remote_ns = None;
    // Production's smoke test runs as a Job there, too.
    let customize = |spec: &mut Value| {
        production_on(CLUSTER)(spec);
        spec["environments"][1]["health"]["jobs"] = json!([{
            "name": "checkout",
            "template": {
                "metadata": { "labels": { "sim.packit.dev/mode": "ready" } },
                "spec": { "containers": [{ "name": "smoke", "image": "example.com/smoke:1", "command": ["/smoke"] }] }
            }
        }]);
    };
    let t = Train::with_operator("remote-train", customize, |ns| {
        remote_ns = Some(RemoteNs::with_workloads(ns)?);
        plugin_ok(
            &ns.name,
            &["cluster", "add", CLUSTER, "--context", &context],
        )?;
        Operator::start(&ns.name)
    })
    .await?;
    let ns = t.ns.name.clone();

    // A token kubeconfig, no admin certificate.
    let secret = t.ns.api::<Secret>().get(CLUSTER).await?;
    let kubeconfig = secret
        .data
        .as_ref()
        .and_then(|d| d.get("kubeconfig"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .context("a kubeconfig")?;
    assert!(kubeconfig.contains("\"token\"") && !kubeconfig.contains("client-key"));

    // The role holds what the operator needs there, and no more.
    let sa = format!("system:serviceaccount:packit-system:packit-{ns}-{CLUSTER}");
    for (verb, resource) in [
        ("get", "deployments.apps"),
        ("watch", "statefulsets.apps"),
        ("patch", "deployments.apps"),
        ("patch", "statefulsets.apps"),
        ("list", "replicasets.apps"),
        ("list", "controllerrevisions.apps"),
        ("watch", "pods"),
        ("get", "pods/log"),
        ("create", "jobs.batch"),
        ("delete", "jobs.batch"),
    ] {
        assert!(can(&sa, verb, resource)?, "{sa} cannot {verb} {resource}");
    }
    for (verb, resource) in [
        ("create", "deployments.apps"),
        ("delete", "deployments.apps"),
        ("update", "statefulsets.apps"),
        ("get", "secrets"),
        ("create", "pods"),
        ("delete", "pods"),
        ("patch", "jobs.batch"),
        ("get", "namespaces"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ] {
        assert!(!can(&sa, verb, resource)?, "{sa} may {verb} {resource}");
    }

    // A whole release with that identity: production is the remote's.
    let base = t.images("prod").await?;
    let (first, images) = t.full_release("first").await?;
    let want = (images["service"].as_str(), images["worker"].as_str());
    assert_eq!(remote_images(&ns).await?, (want.0.into(), want.1.into()));
    assert_eq!(t.images("stg").await?, (want.0.into(), want.1.into()));
    // The home cluster's workloads of the same names are not touched.
    assert_eq!(t.images("prod").await?, base);
    let release = t.release(&first).await?;
    let prod = release
        .status
        .as_ref()
        .and_then(|s| s.environments.iter().find(|e| e.name == "production"))
        .context("production progress")?;
    assert_eq!(prod.cluster.as_deref(), Some(CLUSTER));
    assert_eq!(prod.previous_images.len(), 2);
    let smoke = prod.jobs.first().context("production's smoke test")?;
    assert_eq!(smoke.result, JobResult::Pass, "{smoke:?}");
    let remote_jobs = Api::<Job>::namespaced(remote().client().await?, &ns)
        .list(&ListParams::default().labels("packit.dev/smoke-test"))
        .await?;
    let names: Vec<String> = remote_jobs.items.iter().map(|j| j.name_any()).collect();
    assert_eq!(names, std::slice::from_ref(&smoke.job));
    let home_jobs =
        t.ns.api::<Job>()
            .list(&ListParams::default().labels("packit.dev/smoke-test"))
            .await?;
    assert!(home_jobs.items.is_empty(), "{:?}", home_jobs.items);
    t.assert_event("Claimed", &["production", &format!("of cluster {CLUSTER}")])
        .await?;
    let history = plugin_ok(&ns, &["history", PKD])?;
    assert!(
        history.contains(&format!("staging=verified production@{CLUSTER}=verified")),
        "{history}"
    );
    let status = plugin_ok(&ns, &["status", PKD])?;
    assert!(
        status.contains("CLUSTER") && status.contains(CLUSTER),
        "{status}"
    );

    // The token is rotated: the old one is revoked with its Secret, a new
    // one stored. The next release goes through the new one.
    plugin_ok(&ns, &["cluster", "remove", CLUSTER, "--context", &context])?;
    plugin_ok(&ns, &["cluster", "add", CLUSTER, "--context", &context])?;
    let second = second_in_remote_production(&t).await?;
    // It crash-loops there during the soak: both remote workloads go back.
    break_remote_pods(&ns).await?;
    let rolled = t.wait_phase(&second, ReleasePhase::RolledBack).await?;
    assert!(
        rolled
            .status
            .and_then(|s| s.message)
            .is_some_and(|m| m.contains("restarts"))
    );
    wait_remote_images(&ns, want, "the remote production back on the first release").await?;
    t.assert_event("RolledBack", &[&first, "verification failed"])
        .await?;

    // Removed: the Secret and the remote identity are gone, and the train
    // says which Secret it misses.
    plugin_ok(&ns, &["cluster", "remove", CLUSTER, "--context", &context])?;
    let gone = remote().kubectl(&[
        "get",
        "serviceaccount",
        "-n",
        "packit-system",
        &format!("packit-{ns}-{CLUSTER}"),
    ]);
    assert!(gone.is_err(), "{gone:?}");
    let message = wait_condition(
        &t,
        "InvalidSpec",
        "True",
        &["ClusterConfigInvalid", CLUSTER, "does not exist"],
        TIMEOUT,
    )
    .await?;
    assert!(
        message.contains("spec.environments[1].cluster"),
        "{message}"
    );
    drop(remote_ns);
    Ok(())
}

#[tokio::test]
async fn unusable_kubeconfigs_are_refused_by_name_until_the_secret_is_mended() -> Result<()> {
    let _up = REMOTE_UP.read().await;
    let mut remote_ns = None;
    let t = Train::with_operator("remote-refused", production_on(CLUSTER), |ns| {
        remote_ns = Some(RemoteNs::with_workloads(ns)?);
        Operator::start(&ns.name)
    })
    .await?;
    let poll = Duration::from_secs(60);
    wait_condition(
        &t,
        "InvalidSpec",
        "True",
        &["ClusterConfigInvalid", "does not exist"],
        poll,
    )
    .await?;
    // A kubeconfig that would run a command inside the operator.
    let exec = remote()
        .inline_kubeconfig()?
        .replace(
            "client-certificate-data:",
            "exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [\"-c\", \"touch /tmp/pwned\"]\n    client-certificate-data:",
        );
    assert!(exec.contains("exec:"), "{exec}");
    store_kubeconfig(&t.ns, CLUSTER, &exec)?;
    let message = wait_condition(
        &t,
        "InvalidSpec",
        "True",
        &["exec plugin", CLUSTER, "key \"kubeconfig\""],
        poll,
    )
    .await?;
    assert!(message.contains(&t.ns.name), "{message}");
    // One that trusts any certificate.
    let insecure = remote().inline_kubeconfig()?.replace(
        "certificate-authority-data:",
        "insecure-skip-tls-verify: true\n    x-ca:",
    );
    store_kubeconfig(&t.ns, CLUSTER, &insecure)?;
    wait_condition(
        &t,
        "InvalidSpec",
        "True",
        &["insecure-skip-tls-verify"],
        poll,
    )
    .await?;
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    // Nothing was written to the remote workloads meanwhile.
    let untouched = remote_images(&t.ns.name).await?;
    // Mended: the train goes on by itself.
    store_kubeconfig(&t.ns, CLUSTER, &remote().inline_kubeconfig()?)?;
    wait_condition(&t, "InvalidSpec", "False", &[], poll).await?;
    assert_eq!(remote_images(&t.ns.name).await?, untouched);
    drop(remote_ns);
    Ok(())
}

#[tokio::test]
async fn the_remote_cluster_stopped_mid_release_fails_nothing_and_a_rollback_waits_for_it()
-> Result<()> {
    // Last: the other tests of this file take their read lock at once, and
    // the lock is fair, so they run before the remote cluster is stopped
    // and started again (a train rolled out on it just after that restart
    // has been seen not to complete).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _down = REMOTE_UP.write().await;
    let r = remote();
    let mut remote_ns = None;
    let t = Train::with_operator("remote-outage", production_on(CLUSTER), |ns| {
        remote_ns = Some(RemoteNs::with_workloads(ns)?);
        store_kubeconfig(ns, CLUSTER, &remote().inline_kubeconfig()?)?;
        Operator::start(&ns.name)
    })
    .await?;
    let ns = t.ns.name.clone();
    let (first, first_images) = t.full_release("first").await?;
    let second = second_in_remote_production(&t).await?;

    // Gone during the soak, for longer than the rollout timeout (60 s).
    r.stop()?;
    let outage = async {
        wait_condition(
            &t,
            "ClusterUnreachable",
            "True",
            &["Unreachable", CLUSTER, "production"],
            TIMEOUT,
        )
        .await?;
        let until = std::time::Instant::now() + Duration::from_secs(70);
        while std::time::Instant::now() < until {
            let phase = t.release(&second).await?.status.and_then(|s| s.phase);
            ensure!(
                phase == Some(ReleasePhase::Production),
                "{second} is {phase:?} while its cluster is away"
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        anyhow::Ok(())
    }
    .await;
    r.start()?;
    outage?;
    t.assert_event("ClusterUnreachable", &[CLUSTER, "does not answer"])
        .await?;
    // Back: verified from scratch, released, and the condition clears.
    t.wait_phase(&second, ReleasePhase::Released).await?;
    wait_condition(&t, "ClusterUnreachable", "False", &["Reachable"], TIMEOUT).await?;
    t.assert_event("ClusterReachable", &[]).await?;

    // A rollback asked for while the cluster is away is recorded, said to
    // wait, and applied once it answers.
    r.stop()?;
    let asked = async {
        wait_condition(&t, "ClusterUnreachable", "True", &[CLUSTER], TIMEOUT).await?;
        plugin_ok(&ns, &["rollback", PKD, "--environment", "production"])?;
        t.assert_event(
            "RollbackPending",
            &["production", &first, "as soon as its cluster answers"],
        )
        .await
    }
    .await;
    r.start()?;
    asked?;
    wait_remote_images(
        &ns,
        (&first_images["service"], &first_images["worker"]),
        "the remote production rolled back to the first release",
    )
    .await?;
    let pkd: PackitDeployment = t.pkd().await?;
    let prod = pkd
        .status
        .map(|s| s.train.environments)
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == "production")
        .context("production state")?;
    assert_eq!(prod.release.as_deref(), Some(first.as_str()));
    println!("outage handled at {}", Utc::now());
    drop(remote_ns);
    Ok(())
}
