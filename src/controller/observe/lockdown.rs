//! What a tenant's spec may point the operator at, decided before anything
//! is fetched or asked: git sources on the operator's own disk only with
//! `--allow-local-sources`, no literal address the HTTP client would refuse
//! (names are checked when resolved), and Secrets by plain names only, so
//! that no name can lead a read out of the deployment's namespace. Pure.

use crate::api::PackitDeploymentSpec;
use crate::git::is_network_url;
use crate::http::AddressPolicy;

/// The first source that reads the operator's disk, unless allowed.
pub fn local_sources(spec: &PackitDeploymentSpec, allowed: bool) -> Result<(), String> {
    if allowed {
        return Ok(());
    }
    for (i, component) in spec.components.iter().enumerate() {
        let sources = std::iter::once((format!("spec.components[{i}].source"), &component.source))
            .chain(
                component
                    .includes
                    .iter()
                    .enumerate()
                    .map(|(j, source)| (format!("spec.components[{i}].includes[{j}]"), source)),
            );
        for (field, source) in sources {
            if !is_network_url(&source.url) {
                return Err(format!(
                    "{field}.url: {:?} is a local git source, which reads the operator's own disk; use https, ssh or git, or start the operator with --allow-local-sources (PACKIT_ALLOW_LOCAL_SOURCES=true)",
                    crate::redact::redact_url(&source.url)
                ));
            }
        }
    }
    Ok(())
}

/// The first HTTP check, Prometheus or webhook URL whose literal address
/// `policy` refuses.
pub fn literal_addresses(
    spec: &PackitDeploymentSpec,
    policy: &AddressPolicy,
) -> Result<(), String> {
    let mut urls: Vec<(String, &str)> = Vec::new();
    for (i, env) in spec.environments.iter().enumerate() {
        let health = format!("spec.environments[{i}].health");
        for (j, check) in env.health.http_checks.iter().enumerate() {
            urls.push((format!("{health}.httpChecks[{j}].url"), &check.url));
        }
        for (j, check) in env.health.metrics.iter().enumerate() {
            let field = format!("{health}.metrics[{j}].prometheus.address");
            urls.push((field, &check.prometheus.address));
        }
    }
    for (i, hook) in spec.changelog.webhooks.iter().enumerate() {
        urls.push((format!("spec.changelog.webhooks[{i}].url"), &hook.url));
    }
    for (field, url) in urls {
        // An unparsable URL fails where it is used, with its own message.
        let Ok(parsed) = reqwest::Url::parse(url) else {
            continue;
        };
        policy
            .check_url(&parsed)
            .map_err(|refused| format!("{field}: {refused}"))?;
    }
    Ok(())
}

/// The first Secret reference that is not a plain object name. The client
/// puts names into the request path unescaped; the API server answers
/// `../../other/secrets/x` with 404 today, but whether a path leaves the
/// namespace must not depend on how a server or a proxy in front of it
/// treats dot segments.
pub fn secret_names(spec: &PackitDeploymentSpec) -> Result<(), String> {
    let mut refs: Vec<(String, &str)> = Vec::new();
    for (i, component) in spec.components.iter().enumerate() {
        let field = format!("spec.components[{i}]");
        if let Some(r) = &component.source.secret_ref {
            refs.push((format!("{field}.source.secretRef.name"), &r.name));
        }
        for (j, source) in component.includes.iter().enumerate() {
            if let Some(r) = &source.secret_ref {
                refs.push((format!("{field}.includes[{j}].secretRef.name"), &r.name));
            }
        }
    }
    for (i, env) in spec.environments.iter().enumerate() {
        for (j, check) in env.health.metrics.iter().enumerate() {
            if let Some(r) = &check.prometheus.secret_ref {
                let field =
                    format!("spec.environments[{i}].health.metrics[{j}].prometheus.secretRef.name");
                refs.push((field, &r.name));
            }
        }
    }
    for (i, hook) in spec.changelog.webhooks.iter().enumerate() {
        if let Some(r) = &hook.secret_ref {
            refs.push((
                format!("spec.changelog.webhooks[{i}].secretRef.name"),
                &r.name,
            ));
        }
    }
    match refs.into_iter().find(|(_, name)| !is_object_name(name)) {
        Some((field, name)) => Err(format!(
            "{field}: {name:?} is not the name of a Secret in this namespace (lowercase letters, digits, '-' and '.')"
        )),
        None => Ok(()),
    }
}

/// A DNS subdomain, as Kubernetes names Secrets: dot-separated labels of
/// lowercase letters, digits and inner dashes.
fn is_object_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::deployment::{GitSource, HttpCheck, LocalObjectRef, Webhook};

    fn spec() -> PackitDeploymentSpec {
        let yaml = include_str!("../../../examples/packit-service.yaml");
        let pkd: crate::api::PackitDeployment = serde_saphyr::from_str(yaml).unwrap();
        pkd.spec
    }

    fn source(url: &str) -> GitSource {
        GitSource {
            url: url.into(),
            name: None,
            branch: "stable".into(),
            secret_ref: None,
        }
    }

    #[test]
    fn local_sources_are_refused_naming_the_field_and_the_flag() {
        let mut s = spec();
        assert_eq!(local_sources(&s, false), Ok(()));
        s.components[1].includes.push(source("file:///srv/git/ogr"));
        let j = s.components[1].includes.len() - 1;
        let why = local_sources(&s, false).unwrap_err();
        assert!(
            why.starts_with(&format!(
                "spec.components[1].includes[{j}].url: \"file:///srv/git/ogr\""
            )),
            "{why}"
        );
        assert!(why.contains("--allow-local-sources"), "{why}");
        assert_eq!(local_sources(&s, true), Ok(()));

        s.components[0].source = source("/var/lib/other-tenant/repo");
        let why = local_sources(&s, false).unwrap_err();
        assert!(why.starts_with("spec.components[0].source.url:"), "{why}");
    }

    #[test]
    fn refused_literal_addresses_are_found_where_the_spec_names_them() {
        let policy = AddressPolicy::default();
        let mut s = spec();
        assert_eq!(literal_addresses(&s, &policy), Ok(()));
        s.environments[0].health.http_checks.push(HttpCheck {
            url: "http://169.254.169.254/latest/meta-data/".into(),
            interval: "30s".into(),
            failure_threshold: 3,
        });
        let j = s.environments[0].health.http_checks.len() - 1;
        let why = literal_addresses(&s, &policy).unwrap_err();
        assert!(
            why.starts_with(&format!(
                "spec.environments[0].health.httpChecks[{j}].url: 169.254.169.254:80 is refused"
            )),
            "{why}"
        );
        s.environments[0].health.http_checks.pop();

        s.changelog.webhooks.push(Webhook {
            url: "http://[::1]:8080/hook".into(),
            secret_ref: None,
            ..Webhook::default()
        });
        let why = literal_addresses(&s, &policy).unwrap_err();
        assert!(
            why.contains("webhooks[") && why.contains("loopback"),
            "{why}"
        );
        let open = AddressPolicy {
            allow: crate::http::parse_cidrs("::1/128").unwrap(),
            ..AddressPolicy::default()
        };
        assert_eq!(literal_addresses(&s, &open), Ok(()));
    }

    #[test]
    fn secret_references_are_plain_names() {
        let mut s = spec();
        assert_eq!(secret_names(&s), Ok(()));
        for good in ["hook", "packit-hook.v2", "a"] {
            assert!(is_object_name(good), "{good}");
        }
        for bad in ["", "..", "../x", "a/b", "Hook", "-a", "a..b", "a-"] {
            assert!(!is_object_name(bad), "{bad}");
        }
        s.changelog.webhooks.push(Webhook {
            url: "https://hooks.example.com/packit".into(),
            secret_ref: Some(LocalObjectRef {
                name: "../../other-team/secrets/hook".into(),
            }),
            ..Webhook::default()
        });
        let why = secret_names(&s).unwrap_err();
        assert!(
            why.starts_with(
                "spec.changelog.webhooks[0].secretRef.name: \"../../other-team/secrets/hook\""
            ),
            "{why}"
        );
    }
}
