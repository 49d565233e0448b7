//! Registry credentials from the contents of a `kubernetes.io/dockerconfigjson`
//! pull Secret (its `.dockerconfigjson` key), the way the kubelet reads
//! them: entries keyed by registry host (optionally with a scheme, a path,
//! or `*` for one DNS label), credentials as `auth` (base64 of
//! `user:password`, which wins) or `username` and `password`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::Deserialize;

use super::images::RegistryAuth;

/// Names Docker Hub goes by in pull Secrets; all mean the same registry.
const DOCKER_HUB: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// Why a pull Secret cannot be used. Messages name the entry, never a
/// credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullSecretError {
    #[error("the pull secret is not a valid .dockerconfigjson: {0}")]
    Invalid(String),
    #[error("the pull secret's entry for {key:?}: `auth` is not the base64 of user:password")]
    BadAuth { key: String },
    #[error(
        "the pull secret's entry for {key:?} has no usable credentials \
         (auth, username and password, or registrytoken)"
    )]
    NoCredentials { key: String },
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Deserialize, Default)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// A Bearer token for the registry itself.
    #[serde(default, rename = "registrytoken")]
    registry_token: Option<String>,
}

/// The credentials a `.dockerconfigjson` holds for the registry `host`
/// (`quay.io`, `127.0.0.1:5000`, ...); `None` when no entry matches.
///
/// An entry for the host itself wins over one with a path (`quay.io/packit`,
/// whose path this host-only lookup cannot check), which wins over a
/// wildcard (`*.example.com`, one label per `*`, ports equal).
pub fn registry_auth(
    docker_config_json: &[u8],
    host: &str,
) -> Result<Option<RegistryAuth>, PullSecretError> {
    let config: DockerConfig = serde_json::from_slice(docker_config_json).map_err(|err| {
        // serde_json's messages may quote values; say only where it broke.
        PullSecretError::Invalid(format!(
            "{:?} error at line {} column {}",
            err.classify(),
            err.line(),
            err.column()
        ))
    })?;
    let host = host.trim().to_ascii_lowercase();
    let best = config
        .auths
        .iter()
        .filter_map(|(key, entry)| Some((match_rank(key, &host)?, key, entry)))
        .min_by_key(|(rank, _, _)| *rank);
    let Some((_, key, entry)) = best else {
        return Ok(None);
    };
    entry_auth(key, entry).map(Some)
}

fn entry_auth(key: &str, entry: &Entry) -> Result<RegistryAuth, PullSecretError> {
    let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
    if let Some(auth) = non_empty(&entry.auth) {
        let bad = || PullSecretError::BadAuth {
            key: key.to_owned(),
        };
        let auth = auth.trim();
        let decoded = STANDARD
            .decode(auth)
            .or_else(|_| STANDARD_NO_PAD.decode(auth))
            .map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
        if username.is_empty() {
            return Err(bad());
        }
        return Ok(RegistryAuth::Basic(
            username.to_owned(),
            password.to_owned(),
        ));
    }
    if let (Some(username), Some(password)) = (non_empty(&entry.username), &entry.password) {
        return Ok(RegistryAuth::Basic(username, password.clone()));
    }
    if let Some(token) = non_empty(&entry.registry_token) {
        return Ok(RegistryAuth::Bearer(token));
    }
    Err(PullSecretError::NoCredentials {
        key: key.to_owned(),
    })
}

/// How well the entry `key` fits `host` (lower is better), or `None`.
fn match_rank(key: &str, host: &str) -> Option<u8> {
    let key = key.trim().to_ascii_lowercase();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(&key);
    let (key_host, path) = match key.split_once('/') {
        Some((key_host, path)) => (key_host, path.trim_matches('/')),
        None => (key, ""),
    };
    // `https://index.docker.io/v1/` is how `docker login` names Docker Hub.
    let docker_login_key = DOCKER_HUB.contains(&key_host) && path == "v1";
    let with_path = !path.is_empty() && !docker_login_key;
    if key_host == host || (DOCKER_HUB.contains(&key_host) && DOCKER_HUB.contains(&host)) {
        return Some(if with_path { 1 } else { 0 });
    }
    glob_matches(key_host, host).then_some(2)
}

/// `*.example.com:5000` against `a.example.com:5000`: same number of labels,
/// each equal or `*`, same port.
fn glob_matches(pattern: &str, host: &str) -> bool {
    if !pattern.contains('*') {
        return false;
    }
    let split = |text: &str| -> (String, Option<String>) {
        match text.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
                (name.to_owned(), Some(port.to_owned()))
            }
            _ => (text.to_owned(), None),
        }
    };
    let ((pattern, pattern_port), (host, host_port)) = (split(pattern), split(host));
    if pattern_port != host_port {
        return false;
    }
    let (pattern, host): (Vec<&str>, Vec<&str>) =
        (pattern.split('.').collect(), host.split('.').collect());
    pattern.len() == host.len() && pattern.iter().zip(&host).all(|(p, h)| *p == "*" || p == h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Option<RegistryAuth> {
        Some(RegistryAuth::Basic(user.into(), password.into()))
    }

    fn lookup(json: &str, host: &str) -> Result<Option<RegistryAuth>, PullSecretError> {
        registry_auth(json.as_bytes(), host)
    }

    #[test]
    fn auth_field_is_base64_of_user_and_password() {
        // base64("robot:s3cret:with:colons")
        let auth = STANDARD.encode("robot:s3cret:with:colons");
        let json = format!(r#"{{"auths": {{"quay.io": {{"auth": "{auth}"}}}}}}"#);
        assert_eq!(
            lookup(&json, "quay.io"),
            Ok(basic("robot", "s3cret:with:colons"))
        );
        // Unpadded base64 as some tools write it.
        let auth = STANDARD_NO_PAD.encode("ab:c");
        let json = format!(r#"{{"auths": {{"quay.io": {{"auth": "{auth}"}}}}}}"#);
        assert_eq!(lookup(&json, "quay.io"), Ok(basic("ab", "c")));
    }

    #[test]
    fn auth_wins_over_username_and_password() {
        let auth = STANDARD.encode("from-auth:p1");
        let json = format!(
            r#"{{"auths": {{"quay.io": {{"auth": "{auth}", "username": "u", "password": "p2"}}}}}}"#
        );
        assert_eq!(lookup(&json, "quay.io"), Ok(basic("from-auth", "p1")));
    }

    #[test]
    fn username_and_password_fields() {
        let json = r#"{"auths": {"ghcr.io": {"username": "bot", "password": "tok", "auth": ""}}}"#;
        assert_eq!(lookup(json, "ghcr.io"), Ok(basic("bot", "tok")));
        let json = r#"{"auths": {"ghcr.io": {"registrytoken": "bearer-tok"}}}"#;
        assert_eq!(
            lookup(json, "ghcr.io"),
            Ok(Some(RegistryAuth::Bearer("bearer-tok".into())))
        );
    }

    #[test]
    fn keys_match_with_schemes_paths_ports_and_docker_hub_names() {
        let json = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{hub}"}},
                "https://quay.io/packit": {{"auth": "{path}"}},
                "quay.io": {{"auth": "{quay}"}},
                "127.0.0.1:5000": {{"auth": "{local}"}},
                "*.example.com": {{"auth": "{wild}"}}
            }}}}"#,
            hub = STANDARD.encode("hub:1"),
            path = STANDARD.encode("path:2"),
            quay = STANDARD.encode("quay:3"),
            local = STANDARD.encode("local:4"),
            wild = STANDARD.encode("wild:5"),
        );
        assert_eq!(lookup(&json, "registry-1.docker.io"), Ok(basic("hub", "1")));
        assert_eq!(lookup(&json, "docker.io"), Ok(basic("hub", "1")));
        assert_eq!(lookup(&json, "Quay.IO"), Ok(basic("quay", "3")));
        assert_eq!(lookup(&json, "127.0.0.1:5000"), Ok(basic("local", "4")));
        assert_eq!(lookup(&json, "127.0.0.1:5001"), Ok(None));
        assert_eq!(
            lookup(&json, "registry.example.com"),
            Ok(basic("wild", "5"))
        );
        assert_eq!(lookup(&json, "example.com"), Ok(None));
        assert_eq!(lookup(&json, "a.b.example.com"), Ok(None));
        assert_eq!(lookup(&json, "registry.example.com:5000"), Ok(None));
        assert_eq!(lookup(&json, "ghcr.io"), Ok(None));
    }

    #[test]
    fn a_key_with_a_path_is_used_when_nothing_closer_matches() {
        let json = format!(
            r#"{{"auths": {{"quay.io/packit": {{"auth": "{}"}}}}}}"#,
            STANDARD.encode("team:x")
        );
        assert_eq!(lookup(&json, "quay.io"), Ok(basic("team", "x")));
    }

    #[test]
    fn broken_entries_are_errors_without_secrets() {
        let json = r#"{"auths": {"quay.io": {"auth": "!!not base64!!"}}}"#;
        assert_eq!(
            lookup(json, "quay.io"),
            Err(PullSecretError::BadAuth {
                key: "quay.io".into()
            })
        );
        let json = format!(
            r#"{{"auths": {{"quay.io": {{"auth": "{}"}}}}}}"#,
            STANDARD.encode("no-colon")
        );
        assert!(matches!(
            lookup(&json, "quay.io"),
            Err(PullSecretError::BadAuth { .. })
        ));
        let json = r#"{"auths": {"quay.io": {"identitytoken": "refresh"}}}"#;
        assert_eq!(
            lookup(json, "quay.io"),
            Err(PullSecretError::NoCredentials {
                key: "quay.io".into()
            })
        );
        // A broken entry for another registry does not matter.
        assert_eq!(lookup(json, "ghcr.io"), Ok(None));

        let err = lookup(r#"{"auths": "hunter2"}"#, "quay.io")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("the pull secret is not a valid"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(lookup("not json", "quay.io").is_err());
        assert_eq!(lookup("{}", "quay.io"), Ok(None));
    }
}
