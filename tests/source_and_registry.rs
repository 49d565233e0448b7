//! Resolving git branches into the bare cache (throwaway repositories served
//! as `file://`) and looking images up in the local OCI registry.
//!
//! The registry is the one `PACKIT_REGISTRY` names, else the one recorded in
//! the cluster's `env.sh`, else the one `hack/cluster-up.sh` starts. Fake
//! HTTP servers on 127.0.0.1 stand in for what the local registry and
//! `file://` cannot show: token authentication and HTTPS-style logins.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use packit_operator::build::images::{Registry, RegistryError, parse_digest};
use packit_operator::git::{Credentials, GitError, SourceCache};
use reqwest::{StatusCode, header};
use serde_json::json;
use support::GitRepo;
use support::registry::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, REVISION_LABEL, sha256_digest};
use tokio::sync::OnceCell;

// ---------------------------------------------------------------- git

fn cache() -> Result<(tempfile::TempDir, SourceCache)> {
    let dir = tempfile::Builder::new().prefix("packit-cache-").tempdir()?;
    let cache = SourceCache::new(dir.path().join("sources"));
    Ok((dir, cache))
}

#[tokio::test]
async fn git_resolve_returns_the_branch_head() -> Result<()> {
    let repo = GitRepo::new("main")?;
    repo.commit("On main", &[("a.txt", "a")])?;
    repo.branch("stable")?;
    let main_head = repo.commit("Only on main", &[("b.txt", "b")])?;
    let stable_head = repo.rev_parse("stable")?;
    let (_dir, cache) = cache()?;

    let resolved = cache.resolve("ns", &repo.url(), "stable", None).await?;
    assert_eq!(resolved, stable_head);
    assert_eq!(resolved.len(), 40);
    // The branch the bare cache's HEAD names by default works as well.
    assert_eq!(
        cache.resolve("ns", &repo.url(), "main", None).await?,
        main_head
    );
    Ok(())
}

#[tokio::test]
async fn git_second_resolve_reuses_the_cache_and_fetches_new_commits() -> Result<()> {
    let repo = GitRepo::new("stable")?;
    let first = repo.commit("First", &[("a.txt", "1")])?;
    let (_dir, cache) = cache()?;
    assert_eq!(
        cache.resolve("ns", &repo.url(), "stable", None).await?,
        first
    );

    let path = cache.repo_path("ns", &repo.url());
    ensure!(
        path.join("HEAD").is_file(),
        "no bare repository at {path:?}"
    );
    // A re-clone would start from a fresh directory and lose this file.
    let marker = path.join("packit-test-marker");
    std::fs::write(&marker, "kept")?;

    let second = repo.commit("Second", &[("a.txt", "2")])?;
    assert_eq!(
        cache.resolve("ns", &repo.url(), "stable", None).await?,
        second
    );
    ensure!(
        marker.is_file(),
        "the cache was re-created instead of reused"
    );
    // The old commit stays available for walking history later.
    let cached = gix::open(&path)?;
    ensure!(cached.has_object(gix::ObjectId::from_hex(first.as_bytes())?));
    // Only one cache directory for the URL.
    assert_eq!(std::fs::read_dir(cache.dir().join("ns"))?.count(), 1);
    Ok(())
}

#[tokio::test]
async fn git_cache_recovers_from_an_interrupted_fetch() -> Result<()> {
    let repo = GitRepo::new("stable")?;
    repo.commit("First", &[("a.txt", "1")])?;
    let (_dir, cache) = cache()?;
    cache.resolve("ns", &repo.url(), "stable", None).await?;

    // What a process killed while updating refs leaves behind.
    let path = cache.repo_path("ns", &repo.url());
    std::fs::write(path.join("refs/heads/stable.lock"), "")?;
    std::fs::write(path.join("packed-refs.lock"), "")?;
    let second = repo.commit("Second", &[("a.txt", "2")])?;
    assert_eq!(
        cache.resolve("ns", &repo.url(), "stable", None).await?,
        second
    );

    // A cache directory that is no repository at all is made anew.
    let other = GitRepo::new("stable")?;
    let head = other.head()?;
    let broken = cache.repo_path("ns", &other.url());
    std::fs::create_dir_all(&broken)?;
    std::fs::write(broken.join("garbage"), "not a repository")?;
    assert_eq!(
        cache.resolve("ns", &other.url(), "stable", None).await?,
        head
    );
    Ok(())
}

#[tokio::test]
async fn git_force_pushed_branch_resolves_to_the_new_head() -> Result<()> {
    let repo = GitRepo::new("stable")?;
    let base = repo.commit("Base", &[("a.txt", "base")])?;
    let old = repo.commit("To be dropped", &[("a.txt", "old")])?;
    let (_dir, cache) = cache()?;
    assert_eq!(cache.resolve("ns", &repo.url(), "stable", None).await?, old);

    // Rewrite history: the old head is no ancestor of the new one.
    repo.reset_branch("stable", &base)?;
    let new = repo.commit("Rewritten", &[("a.txt", "new")])?;
    assert_ne!(new, old);
    assert_eq!(cache.resolve("ns", &repo.url(), "stable", None).await?, new);

    // And back again to an older commit (a branch moved backwards).
    repo.reset_branch("stable", &base)?;
    assert_eq!(
        cache.resolve("ns", &repo.url(), "stable", None).await?,
        base
    );
    Ok(())
}

#[tokio::test]
async fn git_unknown_branch_is_reported_with_url_and_branch() -> Result<()> {
    let repo = GitRepo::new("main")?;
    let (_dir, cache) = cache()?;
    let err = cache
        .resolve("ns", &repo.url(), "stable", None)
        .await
        .err()
        .context("resolving a missing branch succeeded")?;
    assert!(matches!(err, GitError::BranchNotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("branch stable not found in git repository {}", repo.url())
    );

    // Invalid names never reach the remote.
    let err = cache.resolve("ns", &repo.url(), "a..b", None).await.err();
    assert!(
        matches!(err, Some(GitError::InvalidBranch { .. })),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn git_unreachable_url_is_reported_with_the_url() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("file://{}/no-such-repository", dir.path().display());
    let (_cache_dir, cache) = cache()?;
    let err = cache
        .resolve("ns", &url, "stable", None)
        .await
        .err()
        .context("resolving a missing repository succeeded")?;
    assert!(matches!(err, GitError::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("stable"), "{message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_concurrent_resolves_share_one_cache() -> Result<()> {
    let repo = GitRepo::new("stable")?;
    let head = repo.commit("Head", &[("a.txt", "a")])?;
    let (_dir, cache) = cache()?;
    let url = repo.url();

    let resolves = (0..8).map(|_| {
        let cache = cache.clone();
        let url = url.clone();
        tokio::spawn(async move { cache.resolve("ns", &url, "stable", None).await })
    });
    for result in futures::future::join_all(resolves).await {
        assert_eq!(result??, head);
    }
    // Still a healthy cache that follows the branch.
    let next = repo.commit("Next", &[("a.txt", "b")])?;
    assert_eq!(cache.resolve("ns", &url, "stable", None).await?, next);
    assert_eq!(std::fs::read_dir(cache.dir().join("ns"))?.count(), 1);
    Ok(())
}

#[tokio::test]
async fn each_namespace_fetches_into_its_own_cache() -> Result<()> {
    let repo = GitRepo::new("stable")?;
    let head = repo.commit("Head", &[("a.txt", "a")])?;
    let (_dir, cache) = cache()?;
    let url = repo.url();
    assert_eq!(cache.resolve("team-a", &url, "stable", None).await?, head);
    let (a, b) = (
        cache.repo_path("team-a", &url),
        cache.repo_path("team-b", &url),
    );
    assert!(a.is_dir(), "{}", a.display());
    assert!(
        !b.exists(),
        "team-b fetched nothing, so it has no cache to read"
    );
    assert_eq!(cache.resolve("team-b", &url, "stable", None).await?, head);
    assert!(b.is_dir() && a != b);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_http_logins_fail_clearly_and_never_leak_credentials() -> Result<()> {
    // A smart-HTTP git server that asks every client to log in.
    let server = FakeServer::start(|_, _| Reply {
        status: 401,
        headers: vec![("WWW-Authenticate".into(), r#"Basic realm="git""#.into())],
        body: Vec::new(),
    })?;
    let url = format!("http://{}/packit/ogr.git", server.addr);
    let with_user_info = format!("http://bot:s3cret@{}/packit/ogr.git", server.addr);
    let credentials = Credentials {
        username: "bot".into(),
        password: "s3cret".into(),
    };
    let (_dir, cache) = cache()?;

    for (what, target, credentials) in [
        ("anonymous", &url, None),
        ("with credentials", &url, Some(&credentials)),
        ("with credentials in the URL", &with_user_info, None),
    ] {
        let err = cache
            .resolve("ns", target, "stable", credentials)
            .await
            .err()
            .with_context(|| format!("{what}: a refused login succeeded"))?;
        assert!(
            matches!(err, GitError::AuthenticationFailed { .. }),
            "{what}: {err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&url), "{what}: {message}");
        assert!(!message.contains("s3cret"), "{what}: {message}");
        assert!(!format!("{err:?}").contains("s3cret"), "{what}");
    }
    // gix does not send credentials over plain http (only over https).
    let requests = server.requests();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|r| r.header("authorization").is_none()),
        "{requests:?}"
    );
    // Nothing on disk names the secret either.
    assert!(
        !cache
            .repo_path("ns", &with_user_info)
            .to_string_lossy()
            .contains("s3cret")
    );
    for entry in std::fs::read_dir(cache.dir().join("ns"))? {
        let config = std::fs::read_to_string(entry?.path().join("config"))?;
        assert!(!config.contains("s3cret"), "{config}");
    }
    Ok(())
}

// ----------------------------------------------------------- registry

/// `host:port` of the local registry.
async fn registry_address() -> &'static str {
    static ADDRESS: OnceCell<String> = OnceCell::const_new();
    ADDRESS
        .get_or_init(|| async {
            if let Some(address) = recorded_registry()
                && reqwest::get(format!("http://{address}/v2/"))
                    .await
                    .is_ok_and(|r| r.status() == StatusCode::OK)
            {
                return address;
            }
            // Not running: bring up the local cluster and its registry.
            tokio::task::spawn_blocking(|| support::cluster().registry.clone())
                .await
                .unwrap_or_else(|err| panic!("starting the local registry: {err}"))
        })
        .await
}

/// `PACKIT_REGISTRY`, else what `hack/cluster-up.sh` recorded in `env.sh`.
fn recorded_registry() -> Option<String> {
    if let Ok(address) = std::env::var("PACKIT_REGISTRY") {
        return Some(address);
    }
    let cache = std::env::var_os("PACKIT_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/packit-operator"))
        })?;
    let env = std::fs::read_to_string(cache.join("cluster/env.sh")).ok()?;
    env.lines()
        .find_map(|line| line.strip_prefix("export PACKIT_REGISTRY="))
        .map(|value| value.trim().to_owned())
}

/// A repository name no other test (or earlier run) uses.
fn unique_repository(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("packit-test/{prefix}-{}-{nanos:x}-{n}", std::process::id())
}

/// A commit-like hex SHA (40 digits) derived from `seed`.
fn fake_commit(seed: &str) -> String {
    sha256_digest(seed.as_bytes())["sha256:".len()..][..40].to_owned()
}

/// What a pushed manifest consists of.
struct Pushed {
    digest: String,
    size: usize,
}

/// Pushes a one-layer image whose config has `labels`, and no manifest
/// annotations, as `name:tag`. `seed` makes the image unique.
async fn push_image(
    registry: &str,
    name: &str,
    tag: &str,
    labels: &[(&str, &str)],
    seed: &str,
) -> Result<Pushed> {
    let http = reqwest::Client::new();
    let layer = format!("layer of {seed}").into_bytes();
    let layer_digest = upload_blob(&http, registry, name, &layer).await?;
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Labels": labels },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    }))?;
    let config_digest = upload_blob(&http, registry, name, &config).await?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": OCI_LAYER, "digest": layer_digest, "size": layer.len() }],
    });
    put_manifest(&http, registry, name, tag, OCI_MANIFEST, &manifest).await
}

/// Pushes an OCI index over `image` (linux/amd64) as `name:tag`.
async fn push_index(registry: &str, name: &str, tag: &str, image: &Pushed) -> Result<Pushed> {
    const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": image.digest,
            "size": image.size,
            "platform": { "os": "linux", "architecture": "amd64" },
        }],
    });
    put_manifest(
        &reqwest::Client::new(),
        registry,
        name,
        tag,
        OCI_INDEX,
        &index,
    )
    .await
}

async fn put_manifest(
    http: &reqwest::Client,
    registry: &str,
    name: &str,
    tag: &str,
    media_type: &str,
    manifest: &serde_json::Value,
) -> Result<Pushed> {
    let body = serde_json::to_vec(manifest)?;
    let digest = sha256_digest(&body);
    let size = body.len();
    let response = http
        .put(format!("http://{registry}/v2/{name}/manifests/{tag}"))
        .header(header::CONTENT_TYPE, media_type)
        .body(body)
        .send()
        .await?;
    ensure!(
        response.status() == StatusCode::CREATED,
        "pushing {name}:{tag}: {}",
        response.status()
    );
    Ok(Pushed { digest, size })
}

/// Monolithic upload: POST opens the upload, PUT with the digest closes it.
async fn upload_blob(
    http: &reqwest::Client,
    registry: &str,
    name: &str,
    data: &[u8],
) -> Result<String> {
    let digest = sha256_digest(data);
    let response = http
        .post(format!("http://{registry}/v2/{name}/blobs/uploads/"))
        .send()
        .await?;
    ensure!(
        response.status() == StatusCode::ACCEPTED,
        "opening an upload in {name}: {}",
        response.status()
    );
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("upload without Location")?;
    let mut url = if location.starts_with('/') {
        format!("http://{registry}{location}")
    } else {
        location.to_owned()
    };
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(&format!("digest={digest}"));
    let response = http
        .put(url)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await?;
    ensure!(
        response.status() == StatusCode::CREATED,
        "uploading {digest} to {name}: {}",
        response.status()
    );
    Ok(digest)
}

#[tokio::test]
async fn registry_confirms_present_digests_and_reports_absent_ones() -> Result<()> {
    let address = registry_address().await;
    let name = unique_repository("confirm");
    let image = push_image(address, &name, "v1", &[], "confirm").await?;
    let repository = format!("{address}/{name}");
    let registry = Registry::new();

    registry.confirm(&repository, &image.digest).await?;
    // As a builder's termination message would report it.
    let message = format!("  {repository}@{}\n", image.digest);
    assert_eq!(
        parse_digest(&message).as_deref(),
        Some(image.digest.as_str())
    );
    registry.confirm(&repository, &message).await?;

    let absent = sha256_digest(b"never pushed");
    let err = registry
        .confirm(&repository, &absent)
        .await
        .err()
        .context("an absent digest was confirmed")?;
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("image {repository}@{absent} not found in the registry")
    );

    // A repository that does not exist at all.
    let missing = format!("{address}/{}", unique_repository("missing"));
    let err = registry.confirm(&missing, &image.digest).await.err();
    assert!(
        matches!(err, Some(RegistryError::NotFound { .. })),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn registry_finds_images_tagged_with_the_full_or_short_commit() -> Result<()> {
    let address = registry_address().await;
    let name = unique_repository("by-tag");
    let repository = format!("{address}/{name}");
    let (full, short7, short12) = (fake_commit("a"), fake_commit("b"), fake_commit("c"));
    let by_full = push_image(address, &name, &full, &[], "full").await?;
    let by_7 = push_image(address, &name, &short7[..7], &[], "seven").await?;
    let by_12 = push_image(address, &name, &short12[..12], &[], "twelve").await?;
    push_image(address, &name, "latest", &[], "latest").await?;
    let registry = Registry::new();

    let found = registry.find_by_revision(&repository, &full).await?;
    assert_eq!(found, Some(by_full.digest));
    let found = registry.find_by_revision(&repository, &short7).await?;
    assert_eq!(found, Some(by_7.digest));
    // Upper case input is the same commit.
    let found = registry
        .find_by_revision(&repository, &short12.to_ascii_uppercase())
        .await?;
    assert_eq!(found, Some(by_12.digest));
    Ok(())
}

#[tokio::test]
async fn registry_finds_images_by_their_revision_label() -> Result<()> {
    let address = registry_address().await;
    let name = unique_repository("by-label");
    let repository = format!("{address}/{name}");
    let (one, two, three) = (fake_commit("one"), fake_commit("two"), fake_commit("three"));
    push_image(address, &name, "build-1", &[(REVISION_LABEL, &one)], "1").await?;
    let second = push_image(
        address,
        &name,
        "build-2",
        &[(REVISION_LABEL, &two), ("other", "x")],
        "2",
    )
    .await?;
    let third = push_image(address, &name, "latest", &[(REVISION_LABEL, &three)], "3").await?;
    let registry = Registry::new();

    assert_eq!(
        registry.find_by_revision(&repository, &two).await?,
        Some(second.digest)
    );
    assert_eq!(
        registry.find_by_revision(&repository, &three).await?,
        Some(third.digest.clone())
    );
    // The scan is bounded: with room for one tag only `latest` is looked at.
    let narrow = Registry::new().with_label_scan_limit(1);
    assert_eq!(
        narrow.find_by_revision(&repository, &three).await?,
        Some(third.digest)
    );
    assert_eq!(narrow.find_by_revision(&repository, &two).await?, None);
    Ok(())
}

#[tokio::test]
async fn registry_finds_a_labelled_image_behind_an_index() -> Result<()> {
    let address = registry_address().await;
    let name = unique_repository("index");
    let repository = format!("{address}/{name}");
    let commit = fake_commit("multi-arch");
    let image = push_image(address, &name, "amd64", &[(REVISION_LABEL, &commit)], "m").await?;
    let index = push_index(address, &name, "stable", &image).await?;
    // With room for one tag the scan sees only `stable` (the index; the
    // image's own tag `amd64` sorts before it), so the label must be found
    // through the index.
    let registry = Registry::new().with_label_scan_limit(1);
    assert_eq!(
        registry.find_by_revision(&repository, &commit).await?,
        Some(index.digest),
        "the index digest, which is what gets deployed"
    );
    Ok(())
}

#[tokio::test]
async fn registry_reports_no_image_for_unknown_commits() -> Result<()> {
    let address = registry_address().await;
    let name = unique_repository("absent");
    let repository = format!("{address}/{name}");
    let commit = fake_commit("present");
    push_image(address, &name, &commit, &[(REVISION_LABEL, &commit)], "p").await?;
    let registry = Registry::new();

    let absent = fake_commit("absent");
    assert_eq!(registry.find_by_revision(&repository, &absent).await?, None);
    // Not pushed yet at all.
    let missing = format!("{address}/{}", unique_repository("never"));
    assert_eq!(registry.find_by_revision(&missing, &commit).await?, None);
    Ok(())
}

#[tokio::test]
async fn registry_unreachable_names_repository_and_digest() -> Result<()> {
    // Nothing listens on port 1.
    let repository = "127.0.0.1:1/packit/service";
    let digest = sha256_digest(b"x");
    let err = Registry::new()
        .confirm(repository, &digest)
        .await
        .err()
        .context("confirmed against a closed port")?;
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(repository), "{message}");
    assert!(message.contains(&digest), "{message}");
    Ok(())
}

/// A registry that wants a Bearer token from its own `/token` realm, which
/// hands out `good-token` for `robot:s3cret` (or `token` when given).
fn token_registry(digest: String, token: Option<&'static str>) -> Result<FakeServer> {
    FakeServer::start(move |request, addr| {
        if request.path().starts_with("/token") {
            return match (token, request.header("authorization")) {
                (Some(token), _) => Reply::json(200, &json!({ "access_token": token })),
                (None, Some("Basic cm9ib3Q6czNjcmV0")) => {
                    Reply::json(200, &json!({ "token": "good-token" }))
                }
                _ => Reply::json(401, &json!({})),
            };
        }
        if request.header("authorization") != Some("Bearer good-token") {
            let challenge = format!(
                r#"Bearer realm="http://{addr}/token",service="fake-registry",scope="repository:packit/service:pull""#
            );
            return Reply {
                status: 401,
                headers: vec![("WWW-Authenticate".into(), challenge)],
                body: Vec::new(),
            };
        }
        if request.path() == format!("/v2/packit/service/manifests/{digest}") {
            Reply {
                status: 200,
                headers: vec![("Docker-Content-Digest".into(), digest.clone())],
                body: Vec::new(),
            }
        } else {
            Reply::json(404, &json!({ "errors": [{ "code": "MANIFEST_UNKNOWN" }] }))
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_follows_the_bearer_token_challenge() -> Result<()> {
    let digest = sha256_digest(b"image");
    let server = token_registry(digest.clone(), None)?;
    let repository = format!("{}/packit/service", server.addr);
    let registry = Registry::new().with_basic_auth("robot", "s3cret");

    registry.confirm(&repository, &digest).await?;
    registry.confirm(&repository, &digest).await?;
    let absent = sha256_digest(b"other");
    let err = registry.confirm(&repository, &absent).await.err();
    assert!(
        matches!(err, Some(RegistryError::NotFound { .. })),
        "{err:?}"
    );

    let requests = server.requests();
    let token_requests: Vec<&SeenRequest> = requests
        .iter()
        .filter(|r| r.path().starts_with("/token"))
        .collect();
    assert_eq!(token_requests.len(), 1, "the token is reused: {requests:?}");
    // The same parameters in any order (oci-client sends scope first).
    let (path, query) = token_requests[0]
        .target
        .split_once('?')
        .context("a token request without a query")?;
    let mut params: Vec<&str> = query.split('&').collect();
    params.sort_unstable();
    assert_eq!(
        (path, params),
        (
            "/token",
            vec![
                "scope=repository%3Apackit%2Fservice%3Apull",
                "service=fake-registry"
            ]
        ),
        "{}",
        token_requests[0].target
    );
    assert_eq!(
        token_requests[0].header("authorization"),
        Some("Basic cm9ib3Q6czNjcmV0")
    );
    // Credentials go to the token realm only, never to the registry API.
    assert!(
        requests
            .iter()
            .filter(|r| r.path().starts_with("/v2/"))
            .all(|r| r
                .header("authorization")
                .is_none_or(|h| h.starts_with("Bearer "))),
        "{requests:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_rejected_token_is_unauthorized() -> Result<()> {
    let digest = sha256_digest(b"image");
    let server = token_registry(digest.clone(), None)?;
    let repository = format!("{}/packit/service", server.addr);

    // Anonymous: the realm refuses a token.
    let err = Registry::new()
        .confirm(&repository, &digest)
        .await
        .err()
        .context("confirmed without credentials")?;
    assert!(
        matches!(err, RegistryError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&repository) && message.contains(&digest),
        "{message}"
    );

    // A token the registry does not accept.
    let server = token_registry(digest.clone(), Some("stale-token"))?;
    let repository = format!("{}/packit/service", server.addr);
    let err = Registry::new()
        .with_basic_auth("robot", "s3cret")
        .find_by_revision(&repository, &fake_commit("x"))
        .await
        .err()
        .context("listed tags with a bad token")?;
    assert!(
        matches!(err, RegistryError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("s3cret"));
    Ok(())
}

// ------------------------------------------------- fake HTTP servers

#[derive(Debug, Clone)]
struct SeenRequest {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl SeenRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, value: &serde_json::Value) -> Self {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
        }
    }
}

type Handler = dyn Fn(&SeenRequest, SocketAddr) -> Reply + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1 that answers each request with a
/// handler and records what it saw. It accepts a bounded number of
/// connections, each closed after 5 idle seconds, and stops when dropped.
struct FakeServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    const MAX_CONNECTIONS: usize = 200;

    fn start(
        handler: impl Fn(&SeenRequest, SocketAddr) -> Reply + Send + Sync + 'static,
    ) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming().take(Self::MAX_CONNECTIONS) {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let (handler, seen) = (handler.clone(), seen.clone());
                        // Clients keep connections open, so each gets a
                        // thread; a broken one only fails the test using it.
                        std::thread::spawn(move || serve(stream, addr, &*handler, &seen));
                    }
                }
            })
        };
        Ok(FakeServer {
            addr,
            seen,
            stop,
            thread: Some(thread),
        })
    }

    fn requests(&self) -> Vec<SeenRequest> {
        self.seen
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves the requests of one keep-alive connection.
fn serve(
    stream: TcpStream,
    addr: SocketAddr,
    handler: &Handler,
    seen: &Mutex<Vec<SeenRequest>>,
) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return Ok(());
        };
        let mut request = SeenRequest {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
        };
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                request
                    .headers
                    .push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        let length: usize = request
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if let Ok(mut seen) = seen.lock() {
            seen.push(request.clone());
        }

        let reply = handler(&request, addr);
        let mut head = format!(
            "HTTP/1.1 {} Fake\r\nContent-Length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (name, value) in &reply.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        writer.write_all(head.as_bytes())?;
        if request.method != "HEAD" {
            writer.write_all(&reply.body)?;
        }
        writer.flush()?;
    }
}
