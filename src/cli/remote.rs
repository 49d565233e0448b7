//! `kubectl packit cluster add|remove`: a ServiceAccount on another
//! cluster with the least the operator needs there, and a token kubeconfig
//! for it stored as a Secret in the home namespace, which environments
//! name in `cluster.kubeconfigSecretRef`. The objects are built here,
//! purely; the requests that make them follow.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use super::{Failure, Result};

/// Where the ServiceAccounts live on the remote cluster.
pub const REMOTE_NAMESPACE: &str = "packit-system";
/// The key of the kubeconfig in the home Secret (the spec's default).
pub const KUBECONFIG_KEY: &str = "kubeconfig";
const MANAGER: &str = "kubectl-packit";
/// On the objects `cluster add` makes: the cluster's name.
const CLUSTER_LABEL: &str = "packit.dev/cluster";
/// On the remote objects: the home namespace whose trains use them.
const HOME_LABEL: &str = "packit.dev/home-namespace";

/// The remote ServiceAccount's (and role's, and binding's) name: one per
/// home namespace and cluster, so tenants never share credentials.
pub fn identity(home_namespace: &str, name: &str) -> String {
    crate::labels::label_value(&format!("packit-{home_namespace}-{name}"))
}

/// What the operator does on a remote cluster: read and patch the target
/// workloads, read what their health is made of, run smoke-test Jobs and
/// read their pods' logs. Nothing else: no Secrets, no creating or deleting
/// workloads. `charts/remote-cluster-rbac.yaml` holds the same rules.
pub fn rules() -> Vec<PolicyRule> {
    let rule = |group: &str, resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    };
    vec![
        rule(
            "apps",
            &["deployments", "statefulsets"],
            &["get", "list", "watch", "patch"],
        ),
        rule(
            "apps",
            &["replicasets", "controllerrevisions"],
            &["get", "list", "watch"],
        ),
        rule("", &["pods"], &["get", "list", "watch"]),
        rule("", &["pods/log"], &["get"]),
        rule(
            "batch",
            &["jobs"],
            &["get", "list", "watch", "create", "delete"],
        ),
    ]
}

fn labels(home_namespace: &str, name: &str) -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/managed-by", MANAGER),
        (CLUSTER_LABEL, name),
        (HOME_LABEL, home_namespace),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), crate::labels::label_value(v)))
    .collect()
}

/// The remote objects: ServiceAccount, ClusterRole, ClusterRoleBinding and
/// the ServiceAccount's long-lived token Secret.
pub fn remote_objects(
    home_namespace: &str,
    name: &str,
) -> (ServiceAccount, ClusterRole, ClusterRoleBinding, Secret) {
    let id = identity(home_namespace, name);
    let meta = |object: &str, namespaced: bool| kube::api::ObjectMeta {
        name: Some(object.to_owned()),
        namespace: namespaced.then(|| REMOTE_NAMESPACE.to_owned()),
        labels: Some(labels(home_namespace, name)),
        ..Default::default()
    };
    let sa = ServiceAccount {
        metadata: meta(&id, true),
        ..Default::default()
    };
    let role = ClusterRole {
        metadata: meta(&id, false),
        rules: Some(rules()),
        ..Default::default()
    };
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": { "name": id, "labels": labels(home_namespace, name) },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": id },
        "subjects": [{ "kind": "ServiceAccount", "name": id, "namespace": REMOTE_NAMESPACE }],
    }))
    .unwrap_or_default();
    let mut token_meta = meta(&format!("{id}-token"), true);
    token_meta.annotations = Some(
        [("kubernetes.io/service-account.name".to_owned(), id.clone())]
            .into_iter()
            .collect(),
    );
    let token = Secret {
        metadata: token_meta,
        type_: Some("kubernetes.io/service-account-token".to_owned()),
        ..Default::default()
    };
    (sa, role, binding, token)
}

/// A token kubeconfig for `server`, trusting `ca` (PEM) only.
pub fn kubeconfig(name: &str, server: &str, ca: &[u8], token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca);
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "clusters": [{ "name": name, "cluster": { "server": server, "certificate-authority-data": ca } }],
        "users": [{ "name": name, "user": { "token": token } }],
        "contexts": [{ "name": name, "context": { "cluster": name, "user": name } }],
    });
    serde_json::to_string_pretty(&config).unwrap_or_default()
}

/// The server and CA (PEM) of a kubeconfig context, as the user's kubectl
/// reaches it. The CA file is read here, on the user's machine: the
/// operator reads no files for tenants.
pub fn server_and_ca(config: &Kubeconfig, context: &str) -> Result<(String, Vec<u8>)> {
    let not_found =
        |what: String| Failure::usage(format!("kubeconfig context {context:?}: {what}"));
    let ctx = config
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| not_found("no such context".into()))?;
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| not_found(format!("cluster {:?} is not defined", ctx.cluster)))?;
    let server = cluster
        .server
        .clone()
        .ok_or_else(|| not_found("the cluster has no server".into()))?;
    let ca = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| not_found(format!("certificate-authority-data: {e}")))?,
        (None, Some(file)) => std::fs::read(file)
            .map_err(|e| not_found(format!("reading certificate-authority {file}: {e}")))?,
        (None, None) => {
            return Err(not_found(
                "the cluster has no CA; the operator only connects to clusters whose CA it is given"
                    .into(),
            ));
        }
    };
    Ok((server, ca))
}

/// `cluster add`: the ServiceAccount and its role on the remote cluster
/// (context `remote_context`), then the kubeconfig Secret `name` in the home
/// namespace. Safe to run again: it applies the same objects.
pub async fn add(
    home: &Client,
    home_namespace: &str,
    name: &str,
    remote_context: &str,
    server: Option<&str>,
) -> Result<String> {
    let config =
        Kubeconfig::read().map_err(|e| Failure::usage(format!("reading the kubeconfig: {e}")))?;
    let (context_server, ca) = server_and_ca(&config, remote_context)?;
    let server = server.map_or(context_server, str::to_owned);
    let remote = connect(remote_context).await?;
    let params = PatchParams::apply(MANAGER).force();
    let apply_err = |what: &str| {
        let what = what.to_owned();
        move |e: kube::Error| {
            Failure::cluster(format!("creating {what} on the remote cluster: {e}"))
        }
    };
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": REMOTE_NAMESPACE } }))
        .map_err(|e| Failure::usage(e.to_string()))?;
    Api::<Namespace>::all(remote.clone())
        .patch(REMOTE_NAMESPACE, &params, &Patch::Apply(&ns))
        .await
        .map_err(apply_err("the namespace"))?;
    let (sa, role, binding, token) = remote_objects(home_namespace, name);
    let id = identity(home_namespace, name);
    let namespaced = |c: &Client| Api::<ServiceAccount>::namespaced(c.clone(), REMOTE_NAMESPACE);
    namespaced(&remote)
        .patch(&id, &params, &Patch::Apply(&sa))
        .await
        .map_err(apply_err("the ServiceAccount"))?;
    Api::<ClusterRole>::all(remote.clone())
        .patch(&id, &params, &Patch::Apply(&role))
        .await
        .map_err(apply_err("the ClusterRole"))?;
    Api::<ClusterRoleBinding>::all(remote.clone())
        .patch(&id, &params, &Patch::Apply(&binding))
        .await
        .map_err(apply_err("the ClusterRoleBinding"))?;
    let secrets = Api::<Secret>::namespaced(remote.clone(), REMOTE_NAMESPACE);
    let token_name = format!("{id}-token");
    secrets
        .patch(&token_name, &params, &Patch::Apply(&token))
        .await
        .map_err(apply_err("the token Secret"))?;
    let token = wait_for_token(&secrets, &token_name).await?;
    let home_secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(home_namespace.to_owned()),
            labels: Some(
                [(CLUSTER_LABEL.to_owned(), crate::labels::label_value(name))]
                    .into_iter()
                    .collect(),
            ),
            ..Default::default()
        },
        string_data: Some(
            [(
                KUBECONFIG_KEY.to_owned(),
                kubeconfig(name, &server, &ca, &token),
            )]
            .into_iter()
            .collect(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(home.clone(), home_namespace)
        .patch(name, &params, &Patch::Apply(&home_secret))
        .await
        .map_err(|e| {
            Failure::cluster(format!(
                "storing Secret {name} in namespace {home_namespace}: {e}"
            ))
        })?;
    Ok(format!(
        "cluster {name} added: ServiceAccount {REMOTE_NAMESPACE}/{id} on {server}, kubeconfig in Secret {home_namespace}/{name}\n\
         use it with: environments[].cluster.kubeconfigSecretRef.name: {name}"
    ))
}

/// `cluster remove`: the home Secret, then the remote objects `add` made.
pub async fn remove(
    home: &Client,
    home_namespace: &str,
    name: &str,
    remote_context: &str,
) -> Result<String> {
    let remote = connect(remote_context).await?;
    let id = identity(home_namespace, name);
    let params = DeleteParams::default();
    fn gone<T>(r: std::result::Result<T, kube::Error>, what: String) -> Result<()> {
        match r {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Failure::cluster(format!("deleting {what}: {e}"))),
        }
    }
    gone(
        Api::<Secret>::namespaced(home.clone(), home_namespace)
            .delete(name, &params)
            .await,
        format!("Secret {home_namespace}/{name}"),
    )?;
    gone(
        Api::<ClusterRoleBinding>::all(remote.clone())
            .delete(&id, &params)
            .await,
        format!("ClusterRoleBinding {id}"),
    )?;
    gone(
        Api::<ClusterRole>::all(remote.clone())
            .delete(&id, &params)
            .await,
        format!("ClusterRole {id}"),
    )?;
    let secrets = Api::<Secret>::namespaced(remote.clone(), REMOTE_NAMESPACE);
    gone(
        secrets.delete(&format!("{id}-token"), &params).await,
        format!("Secret {REMOTE_NAMESPACE}/{id}-token"),
    )?;
    gone(
        Api::<ServiceAccount>::namespaced(remote, REMOTE_NAMESPACE)
            .delete(&id, &params)
            .await,
        format!("ServiceAccount {REMOTE_NAMESPACE}/{id}"),
    )?;
    Ok(format!(
        "cluster {name} removed: Secret {home_namespace}/{name} and ServiceAccount {REMOTE_NAMESPACE}/{id} with its role are gone"
    ))
}

async fn connect(context: &str) -> Result<Client> {
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..Default::default()
    };
    let config = Config::from_kubeconfig(&options).await.map_err(|e| {
        Failure::cluster(format!(
            "cannot use kubeconfig context {context:?} ({e}); list them with kubectl config get-contexts"
        ))
    })?;
    Client::try_from(config).map_err(|e| Failure::cluster(format!("cannot build a client: {e}")))
}

/// The token the remote's controller manager puts in the Secret.
async fn wait_for_token(secrets: &Api<Secret>, name: &str) -> Result<String> {
    for _ in 0..120 {
        let secret = secrets
            .get(name)
            .await
            .map_err(|e| Failure::cluster(format!("reading the token Secret: {e}")))?;
        let token = secret
            .data
            .as_ref()
            .and_then(|d| d.get("token"))
            .map(|ByteString(b)| String::from_utf8_lossy(b).into_owned())
            .filter(|t| !t.is_empty());
        if let Some(token) = token {
            return Ok(token);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(Failure::cluster(format!(
        "the remote cluster put no token into Secret {REMOTE_NAMESPACE}/{name} within 30 s (is its controller manager running?)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_for_other_provisioning_grants_exactly_the_plugins_rules() {
        let text = include_str!("../../charts/remote-cluster-rbac.yaml");
        let role = text
            .split("\n---\n")
            .filter_map(|doc| serde_saphyr::from_str::<ClusterRole>(doc).ok())
            .find(|r| r.rules.is_some())
            .expect("a ClusterRole in the manifest");
        assert_eq!(role.rules, Some(rules()));
    }

    #[test]
    fn a_token_kubeconfig_the_operator_accepts() {
        let text = kubeconfig("prod", "https://10.0.0.1:6443", b"PEM", "t0ken");
        let checked = crate::remote::kubeconfig::check(&text).unwrap();
        assert_eq!((checked.host.as_str(), checked.port), ("10.0.0.1", 6443));
    }

    #[test]
    fn identities_are_per_home_namespace_and_fit_a_label() {
        assert_eq!(identity("team", "prod"), "packit-team-prod");
        assert_ne!(identity("a", "prod"), identity("b", "prod"));
        assert!(identity(&"n".repeat(63), "prod").len() <= 63);
        let (sa, _, binding, token) = remote_objects("team", "prod");
        assert_eq!(sa.metadata.namespace.as_deref(), Some(REMOTE_NAMESPACE));
        assert_eq!(binding.role_ref.name, "packit-team-prod");
        assert_eq!(binding.subjects.unwrap()[0].name, sa.metadata.name.unwrap());
        assert_eq!(
            token.type_.as_deref(),
            Some("kubernetes.io/service-account-token")
        );
    }
}
