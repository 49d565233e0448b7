//! Source URLs: whether they go over the network, the password they carry
//! and their cache directory names (which hash the URL as `redact_url`
//! shows it).

use sha2::{Digest, Sha256};

use crate::redact::redact_url;

/// The password in the user info of `url`, if any.
pub(super) fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (user_info, _) = authority.rsplit_once('@')?;
    user_info.split_once(':').map(|(_, password)| password)
}

/// Whether `url` names a repository over a network transport (https,
/// http, ssh, git, or scp-like `user@host:path`). Anything else (`file://`,
/// `file:` or a plain path) reads the operator's own disk.
pub fn is_network_url(url: &str) -> bool {
    const NETWORK: &[&str] = &["https", "http", "ssh", "git", "git+ssh", "ssh+git"];
    let url = url.trim();
    if let Some((scheme, _)) = url.split_once("://") {
        return NETWORK.iter().any(|n| scheme.eq_ignore_ascii_case(n));
    }
    // scp-like: a host before the first `:`, with no `/` in it (a path
    // like `./a:b` has one). `file:...` is a URL of the local disk and
    // `<helper>::<address>` runs a remote helper.
    match url.split_once(':') {
        Some((host, rest)) => {
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            !host.is_empty()
                && !host.contains(['/', ' '])
                && !host.eq_ignore_ascii_case("file")
                && !rest.starts_with(':')
        }
        None => false,
    }
}

/// The directory of a namespace's caches: the namespace itself (a DNS
/// label, as the API server enforces), or a hash of anything else so that
/// no name can climb out of the cache directory.
pub(super) fn namespace_dir_name(namespace: &str) -> String {
    let label = !namespace.is_empty()
        && namespace.len() <= 63
        && namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !namespace.starts_with('-');
    if label {
        return namespace.to_owned();
    }
    let hash = Sha256::digest(namespace.as_bytes());
    let hash: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("ns-{hash}")
}

/// A directory name for the cache of `url`: a readable slug of the last
/// path segments plus a hash of the redacted URL, so distinct URLs never
/// share a cache and credentials never show up on disk.
pub(super) fn cache_dir_name(url: &str) -> String {
    const SLUG_MAX: usize = 48;
    let redacted = redact_url(url);
    let hash = Sha256::digest(redacted.as_bytes());
    let hash: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();

    let path = redacted
        .split_once("://")
        .map_or(redacted.as_str(), |(_, rest)| rest);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let mut segments: Vec<&str> = path
        .rsplit(['/', ':'])
        .filter(|s| !s.is_empty())
        .take(2)
        .collect();
    segments.reverse();
    let slug: String = segments
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // No leading dots: never `.`, `..` or a hidden directory.
    let slug = slug.trim_start_matches('.');
    let slug: String = slug.chars().take(SLUG_MAX).collect();
    if slug.is_empty() {
        format!("repo-{hash}")
    } else {
        format!("{slug}-{hash}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_password_is_found() {
        assert_eq!(
            url_password("https://bot:s3cret@example.com/x"),
            Some("s3cret")
        );
        assert_eq!(url_password("https://token@example.com/x"), None);
        assert_eq!(url_password("https://example.com/a:b@c"), None);
        assert_eq!(url_password("git@github.com:packit/ogr.git"), None);
    }

    #[test]
    fn network_urls_and_local_ones() {
        for network in [
            "https://github.com/packit/ogr.git",
            "HTTP://example.com/x",
            "ssh://git@github.com/packit/ogr",
            "git://example.com/x",
            "git@github.com:packit/ogr.git",
            "github.com:packit/ogr.git",
        ] {
            assert!(is_network_url(network), "{network}");
        }
        for local in [
            "file:///srv/repos/ogr",
            "FILE:///srv/repos/ogr",
            "file:/srv/repos/ogr",
            "/srv/repos/ogr",
            "../ogr",
            "./a:b",
            "ogr",
            "ext::sh -c id",
            "fd::17",
            "",
        ] {
            assert!(!is_network_url(local), "{local}");
        }
    }

    #[test]
    fn namespace_dirs_stay_inside_the_cache() {
        assert_eq!(namespace_dir_name("packit-prod"), "packit-prod");
        for odd in ["..", ".", "a/b", "", "-x", "A"] {
            let name = namespace_dir_name(odd);
            assert!(
                name.starts_with("ns-") && !name.contains('/'),
                "{odd} -> {name}"
            );
        }
    }

    #[test]
    fn cache_dir_name_is_readable_unique_and_secret_free() {
        let name = cache_dir_name("https://github.com/packit/packit-service.git");
        assert!(name.starts_with("packit-packit-service-"), "{name}");
        assert_eq!(name.len(), "packit-packit-service-".len() + 16);

        let with_token = cache_dir_name("https://bot:s3cret@github.com/packit/packit-service.git");
        assert_eq!(with_token, name, "credentials do not change the cache");
        assert!(!with_token.contains("s3cret"));

        assert_ne!(
            cache_dir_name("https://github.com/packit/ogr"),
            cache_dir_name("https://gitlab.com/packit/ogr"),
        );
        for url in ["file:///", "https://host", "file:///tmp/../..", "..", ""] {
            let name = cache_dir_name(url);
            assert!(!name.starts_with('.'), "{url} -> {name}");
            assert!(!name.contains('/'), "{url} -> {name}");
        }
        let long = format!("https://example.com/{}", "x".repeat(300));
        assert!(cache_dir_name(&long).len() <= 48 + 17);
    }
}
