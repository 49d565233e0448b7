//! Source URLs: the password they carry and their cache directory names
//! (which hash the URL as `redact_url` shows it).

use sha2::{Digest, Sha256};

use crate::redact::redact_url;

/// The password in the user info of `url`, if any.
pub(super) fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (user_info, _) = authority.rsplit_once('@')?;
    user_info.split_once(':').map(|(_, password)| password)
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
