//! Which kubeconfigs a tenant may hand the operator, and the clean one it
//! builds from them. Pure.
//!
//! A kubeconfig can make a client run a command (`exec`, auth-provider
//! plugins), read files (`certificate-authority`, `client-key`,
//! `tokenFile`), go through a proxy or trust any certificate. None of that
//! may happen inside the operator on a tenant's behalf, so the accepted
//! pieces (server, inline CA, a token or an inline client certificate) are
//! copied into a new kubeconfig and everything else is refused by name.

use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

/// A kubeconfig the operator may use, with where it connects.
#[derive(Debug, Clone)]
pub struct Checked {
    pub kubeconfig: Kubeconfig,
    /// Host of the server URL (no brackets around IPv6 addresses).
    pub host: String,
    pub port: u16,
}

/// Checks a kubeconfig's current context (or its only one) and returns a
/// kubeconfig holding just the accepted parts of it.
pub fn check(text: &str) -> Result<Checked, String> {
    let config = Kubeconfig::from_yaml(text).map_err(|e| format!("not a kubeconfig: {e}"))?;
    let context_name = match (&config.current_context, config.contexts.as_slice()) {
        (Some(name), _) if !name.is_empty() => name.clone(),
        (_, [only]) => only.name.clone(),
        (_, contexts) => {
            return Err(format!(
                "names no current-context and has {} contexts",
                contexts.len()
            ));
        }
    };
    let context = config
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.clone())
        .ok_or_else(|| format!("context {context_name:?} is not defined"))?;
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| format!("cluster {:?} is not defined", context.cluster))?;
    let user_name = context.user.clone().unwrap_or_default();
    let user = config
        .auth_infos
        .iter()
        .find(|u| u.name == user_name)
        .and_then(|u| u.auth_info.clone())
        .ok_or_else(|| format!("user {user_name:?} is not defined"))?;
    let (cluster, host, port) = check_cluster(&cluster)?;
    let user = check_user(&user)?;
    let kubeconfig = Kubeconfig {
        clusters: vec![NamedCluster {
            name: "remote".into(),
            cluster: Some(cluster),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: "remote".into(),
            auth_info: Some(user),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: "remote".into(),
            context: Some(Context {
                cluster: "remote".into(),
                user: Some("remote".into()),
                ..Context::default()
            }),
            other: Default::default(),
        }],
        current_context: Some("remote".into()),
        ..Kubeconfig::default()
    };
    Ok(Checked {
        kubeconfig,
        host,
        port,
    })
}

fn check_cluster(c: &Cluster) -> Result<(Cluster, String, u16), String> {
    if c.insecure_skip_tls_verify == Some(true) {
        return Err("insecure-skip-tls-verify is refused: the cluster's CA must be given".into());
    }
    if c.certificate_authority.is_some() {
        return Err(
            "certificate-authority names a file, which the operator does not read; inline it as certificate-authority-data"
                .into(),
        );
    }
    if c.proxy_url.is_some() {
        return Err("proxy-url is not supported".into());
    }
    let ca = c
        .certificate_authority_data
        .clone()
        .filter(|d| !d.trim().is_empty())
        .ok_or("the cluster has no certificate-authority-data")?;
    let server = c.server.clone().ok_or("the cluster has no server")?;
    let uri: http::Uri = server
        .parse()
        .map_err(|e| format!("server {server:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("server {server:?} must be an https:// URL"));
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("server {server:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let clean = Cluster {
        server: Some(server),
        certificate_authority_data: Some(ca),
        tls_server_name: c.tls_server_name.clone(),
        ..Cluster::default()
    };
    Ok((clean, host, port))
}

fn check_user(u: &AuthInfo) -> Result<AuthInfo, String> {
    let refused = [
        (
            u.exec.is_some(),
            "an exec plugin is refused: it would run a command inside the operator",
        ),
        (
            u.auth_provider.is_some(),
            "an auth-provider plugin is refused: it would run inside the operator",
        ),
        (
            u.token_file.is_some() || u.client_certificate.is_some() || u.client_key.is_some(),
            "tokenFile, client-certificate and client-key name files, which the operator does not read; inline them (token, client-certificate-data, client-key-data)",
        ),
        (
            u.username.is_some() || u.password.is_some(),
            "username and password are not supported; use a token or a client certificate",
        ),
        (
            u.impersonate.is_some() || u.impersonate_groups.is_some(),
            "impersonation is not supported",
        ),
    ];
    if let Some((_, why)) = refused.iter().find(|(bad, _)| *bad) {
        return Err((*why).to_owned());
    }
    let clean = match (&u.token, &u.client_certificate_data, &u.client_key_data) {
        (Some(token), _, _) => AuthInfo {
            token: Some(token.clone()),
            ..AuthInfo::default()
        },
        (None, Some(cert), Some(key)) => AuthInfo {
            client_certificate_data: Some(cert.clone()),
            client_key_data: Some(key.clone()),
            ..AuthInfo::default()
        },
        _ => {
            return Err(
                "the user has neither a token nor client-certificate-data with client-key-data"
                    .into(),
            );
        }
    };
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cluster: &str, user: &str) -> String {
        format!(
            "apiVersion: v1
kind: Config
current-context: prod
contexts:
- name: prod
  context: {{cluster: prod, user: deployer}}
clusters:
- name: prod
  cluster:
{cluster}
users:
- name: deployer
  user:
{user}
"
        )
    }

    const CLUSTER: &str =
        "    server: https://prod.example.com:6443\n    certificate-authority-data: Q0E=";
    const TOKEN: &str = "    token: abc";

    #[test]
    fn accepts_a_token_or_an_inline_client_certificate_with_an_inline_ca() {
        let ok = check(&config(CLUSTER, TOKEN)).unwrap();
        assert_eq!((ok.host.as_str(), ok.port), ("prod.example.com", 6443));
        let user = ok.kubeconfig.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(user.token.is_some() && user.exec.is_none());
        let cert = "    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ";
        assert!(check(&config(CLUSTER, cert)).is_ok());
    }

    #[test]
    fn refuses_what_would_run_commands_read_files_or_trust_anything() {
        let exec = "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [-c, id]";
        let cases = [
            (config(CLUSTER, exec), "exec plugin"),
            (
                config(
                    CLUSTER,
                    "    auth-provider:\n      name: gcp\n      config: {}",
                ),
                "auth-provider",
            ),
            (
                config(CLUSTER, "    tokenFile: /var/run/secrets/token"),
                "name files",
            ),
            (
                config(
                    CLUSTER,
                    "    client-certificate: /etc/cert\n    client-key: /etc/key",
                ),
                "name files",
            ),
            (
                config(
                    "    server: https://prod:6443\n    insecure-skip-tls-verify: true",
                    TOKEN,
                ),
                "insecure-skip-tls-verify",
            ),
            (
                config(
                    "    server: https://prod:6443\n    certificate-authority: /etc/ca.crt",
                    TOKEN,
                ),
                "names a file",
            ),
            (
                config("    server: https://prod:6443", TOKEN),
                "no certificate-authority-data",
            ),
            (
                config(
                    "    server: http://prod:6443\n    certificate-authority-data: Q0E=",
                    TOKEN,
                ),
                "https://",
            ),
            (
                config(CLUSTER, "    username: a\n    password: b"),
                "username",
            ),
            (
                config(CLUSTER, "    as: admin\n    token: abc"),
                "impersonation",
            ),
            (config(CLUSTER, "    {}"), "neither a token"),
            ("kind: [".to_owned(), "not a kubeconfig"),
        ];
        for (text, expected) in cases {
            let err = check(&text).unwrap_err();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
    }

    #[test]
    fn needs_a_context_to_choose() {
        let two = config(CLUSTER, TOKEN).replace("current-context: prod\n", "") + "";
        // One context: it is the one.
        assert!(check(&two).is_ok());
        let missing =
            config(CLUSTER, TOKEN).replace("current-context: prod", "current-context: dev");
        assert!(
            check(&missing)
                .unwrap_err()
                .contains("\"dev\" is not defined")
        );
    }
}
