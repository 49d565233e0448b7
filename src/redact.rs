//! Taking credentials out of URLs before they are shown in messages, logs or
//! status. Plain string handling, kept at the bottom so that any module may
//! use it.

/// `url` without user info (`https://user:token@host/x` becomes
/// `https://host/x`), for messages and logs. Scp-like `user@host:path` URLs
/// carry no secret and are returned as they are.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_len].rfind('@') {
        Some(at) => format!("{}{}", &url[..authority_start], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_user_info() {
        assert_eq!(
            redact_url("https://bot:s3cret@github.com/packit/packit.git"),
            "https://github.com/packit/packit.git"
        );
        assert_eq!(
            redact_url("https://token@example.com"),
            "https://example.com"
        );
        // An `@` in the path is not user info.
        assert_eq!(
            redact_url("https://example.com/a@b/repo"),
            "https://example.com/a@b/repo"
        );
        assert_eq!(redact_url("file:///tmp/repo"), "file:///tmp/repo");
        assert_eq!(
            redact_url("git@github.com:packit/ogr.git"),
            "git@github.com:packit/ogr.git"
        );
    }
}
