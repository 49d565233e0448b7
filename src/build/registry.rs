//! A small client for the OCI distribution API: confirming that an image
//! digest exists, and finding the image built from a commit.
//!
//! Registries on loopback hosts (`127.0.0.1`, `localhost`, `[::1]`) are
//! spoken to over plain HTTP, all others over HTTPS. Access is anonymous
//! unless basic credentials are given; registries that answer with a Bearer
//! challenge (quay.io, Docker Hub, ghcr.io, ...) get the standard token
//! flow, anonymous or with those credentials.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::{Method, Response, StatusCode, Url, header};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The image label (and manifest annotation) naming the commit an image was
/// built from.
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";

/// Manifest and index media types we understand, OCI and Docker.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// How many tags [`Registry::find_by_revision`] inspects for the revision
/// label unless told otherwise.
pub const DEFAULT_LABEL_SCAN_LIMIT: usize = 20;
const TAG_PAGE_SIZE: usize = 1000;
/// Bounds the tag listing of huge repositories.
const MAX_TAG_PAGES: usize = 20;
/// OCI recommends registries accept manifests up to 4 MiB.
const MAX_MANIFEST_BYTES: usize = 4 << 20;
const MAX_CONFIG_BYTES: usize = 8 << 20;
/// Short commit prefixes CI systems commonly tag images with.
const SHORT_SHA_LENGTHS: std::ops::RangeInclusive<usize> = 7..=12;

/// Why a registry lookup failed. Messages name the repository and the
/// digest or commit looked for; they never contain credentials or tokens.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid image repository {repository:?}: {reason}")]
    InvalidRepository { repository: String, reason: String },
    #[error("invalid image digest {digest:?} for {repository}: expected sha256:<64 hex digits>")]
    InvalidDigest { repository: String, digest: String },
    #[error("invalid commit {commit:?} for {repository}: expected a full hex commit SHA")]
    InvalidCommit { repository: String, commit: String },
    #[error("registry of {repository} is unreachable (looking for {subject}): {detail}")]
    Unreachable {
        repository: String,
        subject: String,
        detail: String,
    },
    #[error("image {repository}@{digest} not found in the registry")]
    NotFound { repository: String, digest: String },
    #[error("registry refused access to {repository} (looking for {subject}): HTTP {status}")]
    Unauthorized {
        repository: String,
        subject: String,
        status: u16,
    },
    #[error(
        "unexpected response from the registry of {repository} (looking for {subject}): {detail}"
    )]
    BadResponse {
        repository: String,
        subject: String,
        detail: String,
    },
}

/// Client for OCI registries. Cheap to clone; clones share tokens.
#[derive(Clone)]
pub struct Registry {
    http: reqwest::Client,
    credentials: Option<BasicCredentials>,
    label_scan_limit: usize,
    /// How to authenticate to a host for a scope, learnt from challenges.
    auth: Arc<Mutex<HashMap<String, CachedAuth>>>,
}

#[derive(Clone)]
struct BasicCredentials {
    username: String,
    password: String,
}

#[derive(Clone)]
enum CachedAuth {
    Bearer(String),
    Basic,
}

// Hand-written so that credentials and tokens never end up in logs.
impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field(
                "username",
                &self.credentials.as_ref().map(|c| c.username.as_str()),
            )
            .field("label_scan_limit", &self.label_scan_limit)
            .finish_non_exhaustive()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("packit-operator/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            // The builder only fails when TLS cannot be set up at all, and
            // then the default client fails the same way; no better fallback.
            .unwrap_or_default();
        Registry {
            http,
            credentials: None,
            label_scan_limit: DEFAULT_LABEL_SCAN_LIMIT,
            auth: Arc::default(),
        }
    }

    /// Uses basic credentials: for registries asking for basic auth, and
    /// when fetching Bearer tokens.
    pub fn with_basic_auth(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some(BasicCredentials {
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// How many tags [`Self::find_by_revision`] inspects for the revision
    /// label (default [`DEFAULT_LABEL_SCAN_LIMIT`]).
    pub fn with_label_scan_limit(mut self, limit: usize) -> Self {
        self.label_scan_limit = limit;
        self
    }

    /// Confirms that `repository@digest` exists.
    pub async fn confirm(&self, repository: &str, digest: &str) -> Result<(), RegistryError> {
        let Some(digest) = parse_digest(digest) else {
            return Err(RegistryError::InvalidDigest {
                repository: repository.to_owned(),
                digest: digest.to_owned(),
            });
        };
        let ctx = Ctx::new(repository, format!("digest {digest}"))?;
        let url = ctx.repo.url(&format!("manifests/{digest}"));
        let mut response = self.send(&ctx, Method::HEAD, &url, MANIFEST_ACCEPT).await?;
        // Some registries do not implement HEAD on manifests.
        if response.status() == StatusCode::METHOD_NOT_ALLOWED {
            response = self.send(&ctx, Method::GET, &url, MANIFEST_ACCEPT).await?;
        }
        match response.status() {
            StatusCode::OK => {
                let stored = header_digest(&response);
                if stored.as_ref().is_some_and(|stored| *stored != digest) {
                    return Err(ctx.bad_response(format!(
                        "asked for {digest}, the registry answered for {}",
                        stored.unwrap_or_default()
                    )));
                }
                Ok(())
            }
            StatusCode::NOT_FOUND => Err(RegistryError::NotFound {
                repository: ctx.repository,
                digest,
            }),
            status => Err(ctx.status_error(status)),
        }
    }

    /// Finds the image built from `commit` (a full hex SHA): a tag equal to
    /// the commit or to its first 7 to 12 characters, or else, among at most
    /// the label scan limit of tags, an image whose manifest annotation or
    /// config label `org.opencontainers.image.revision` is the commit.
    /// Returns the manifest (or index) digest, or `None` when there is no
    /// such image (yet), including when the repository does not exist.
    ///
    /// The distribution API lists tags in lexical order, not by age, so the
    /// label scan looks at `latest` first and then at tags from the end of
    /// the list, where date- and version-stamped tags put the newest.
    pub async fn find_by_revision(
        &self,
        repository: &str,
        commit: &str,
    ) -> Result<Option<String>, RegistryError> {
        let commit = commit.trim().to_ascii_lowercase();
        let valid =
            matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Err(RegistryError::InvalidCommit {
                repository: repository.to_owned(),
                commit,
            });
        }
        let ctx = Ctx::new(repository, format!("the image of commit {commit}"))?;
        let Some(tags) = self.list_tags(&ctx).await? else {
            return Ok(None);
        };

        let listed: HashSet<&str> = tags.iter().map(String::as_str).collect();
        let candidates = std::iter::once(commit.as_str())
            .chain(SHORT_SHA_LENGTHS.rev().map(|len| &commit[..len]));
        for tag in candidates {
            if listed.contains(tag)
                && let Some(manifest) = self.fetch_manifest(&ctx, tag).await?
            {
                return Ok(Some(manifest.digest));
            }
        }

        for tag in label_scan_order(&tags, self.label_scan_limit) {
            let Some(manifest) = self.fetch_manifest(&ctx, tag).await? else {
                continue;
            };
            if self.built_from(&ctx, &manifest, &commit).await? {
                return Ok(Some(manifest.digest));
            }
        }
        Ok(None)
    }

    /// All tags of the repository, or `None` when the repository is unknown.
    async fn list_tags(&self, ctx: &Ctx) -> Result<Option<Vec<String>>, RegistryError> {
        #[derive(Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }

        let mut tags = Vec::new();
        let mut url = ctx.repo.url(&format!("tags/list?n={TAG_PAGE_SIZE}"));
        for _ in 0..MAX_TAG_PAGES {
            let response = self
                .send(ctx, Method::GET, &url, "application/json")
                .await?;
            match response.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => return Ok(None),
                status => return Err(ctx.status_error(status)),
            }
            let next = next_page(&response);
            let body = read_limited(ctx, response, MAX_MANIFEST_BYTES).await?;
            let page: TagList = serde_json::from_slice(&body)
                .map_err(|err| ctx.bad_response(format!("tag list: {err}")))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(next) => url = next,
                None => break,
            }
        }
        Ok(Some(tags))
    }

    /// GETs the manifest `reference` (tag or digest); `None` if absent.
    async fn fetch_manifest(
        &self,
        ctx: &Ctx,
        reference: &str,
    ) -> Result<Option<Fetched>, RegistryError> {
        let url = ctx.repo.url(&format!("manifests/{reference}"));
        let response = self.send(ctx, Method::GET, &url, MANIFEST_ACCEPT).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            status => return Err(ctx.status_error(status)),
        }
        let stored = header_digest(&response);
        let body = read_limited(ctx, response, MAX_MANIFEST_BYTES).await?;
        let digest = stored.unwrap_or_else(|| sha256_digest(&body));
        Ok(Some(Fetched { digest, body }))
    }

    /// Whether `manifest` (an image manifest or an index) names `commit` in
    /// its revision annotation or its image config's revision label.
    async fn built_from(
        &self,
        ctx: &Ctx,
        manifest: &Fetched,
        commit: &str,
    ) -> Result<bool, RegistryError> {
        // A tag may hold anything (an old schema, an artifact): such images
        // are simply not the one we look for.
        let Ok(parsed) = serde_json::from_slice::<Manifest>(&manifest.body) else {
            return Ok(false);
        };
        if names_commit(parsed.annotations.as_ref(), commit) {
            return Ok(true);
        }
        let image = match (&parsed.config, index_child(&parsed)) {
            (Some(_), _) => parsed,
            (None, Some(child)) => {
                let Some(fetched) = self.fetch_manifest(ctx, &child).await? else {
                    return Ok(false);
                };
                let Ok(child) = serde_json::from_slice::<Manifest>(&fetched.body) else {
                    return Ok(false);
                };
                if names_commit(child.annotations.as_ref(), commit) {
                    return Ok(true);
                }
                child
            }
            (None, None) => return Ok(false),
        };
        let Some(config) = image.config else {
            return Ok(false);
        };
        if parse_digest(&config.digest).is_none() {
            return Ok(false);
        }
        let url = ctx.repo.url(&format!("blobs/{}", config.digest));
        let response = self.send(ctx, Method::GET, &url, "*/*").await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(false),
            status => return Err(ctx.status_error(status)),
        }
        let body = read_limited(ctx, response, MAX_CONFIG_BYTES).await?;
        let Ok(config) = serde_json::from_slice::<ImageConfig>(&body) else {
            return Ok(false);
        };
        Ok(names_commit(
            config.config.and_then(|c| c.labels).as_ref(),
            commit,
        ))
    }

    /// Sends a request, answering an authentication challenge once: a
    /// Bearer challenge with a token from its realm, a Basic one with the
    /// credentials (if any). What worked is remembered per host and scope.
    async fn send(
        &self,
        ctx: &Ctx,
        method: Method,
        url: &str,
        accept: &str,
    ) -> Result<Response, RegistryError> {
        let key = format!("{} repository:{}:pull", ctx.repo.host, ctx.repo.name);
        let cached = self
            .auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        let response = self
            .request(ctx, method.clone(), url, accept, cached.as_ref())
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenges: Vec<Challenge> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        let auth = if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            CachedAuth::Bearer(self.fetch_token(ctx, bearer).await?)
        } else if self.credentials.is_some()
            && challenges.iter().any(|c| c.scheme == "basic")
            && !matches!(cached, Some(CachedAuth::Basic))
        {
            CachedAuth::Basic
        } else {
            return Err(ctx.status_error(StatusCode::UNAUTHORIZED));
        };
        let response = self.request(ctx, method, url, accept, Some(&auth)).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            self.auth
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key, auth);
        }
        Ok(response)
    }

    async fn request(
        &self,
        ctx: &Ctx,
        method: Method,
        url: &str,
        accept: &str,
        auth: Option<&CachedAuth>,
    ) -> Result<Response, RegistryError> {
        let mut request = self
            .http
            .request(method, url)
            .header(header::ACCEPT, accept);
        match (auth, &self.credentials) {
            (Some(CachedAuth::Bearer(token)), _) => request = request.bearer_auth(token),
            (Some(CachedAuth::Basic), Some(credentials)) => {
                request = request.basic_auth(&credentials.username, Some(&credentials.password));
            }
            _ => {}
        }
        request.send().await.map_err(|err| ctx.unreachable(&err))
    }

    /// Gets a token for a Bearer challenge from its realm, with the
    /// credentials if there are any (only over HTTPS or to a loopback host).
    async fn fetch_token(&self, ctx: &Ctx, challenge: &Challenge) -> Result<String, RegistryError> {
        #[derive(Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }

        let Some(realm) = challenge.params.get("realm") else {
            return Err(ctx.bad_response("Bearer challenge without a realm".into()));
        };
        let mut url = Url::parse(realm)
            .map_err(|err| ctx.bad_response(format!("Bearer realm {realm:?}: {err}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(ctx.bad_response(format!("Bearer realm {realm:?} is not an HTTP URL")));
        }
        let default_scope = format!("repository:{}:pull", ctx.repo.name);
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = challenge.params.get("service") {
                query.append_pair("service", service);
            }
            let scope = challenge.params.get("scope").unwrap_or(&default_scope);
            query.append_pair("scope", scope);
        }
        let secure = url.scheme() == "https" || url.host_str().is_some_and(is_loopback);
        let mut request = self.http.get(url);
        if let Some(credentials) = &self.credentials
            && secure
        {
            request = request.basic_auth(&credentials.username, Some(&credentials.password));
        }
        let response = request.send().await.map_err(|err| ctx.unreachable(&err))?;
        match response.status() {
            StatusCode::OK => {}
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                return Err(ctx.status_error(status));
            }
            status => {
                return Err(ctx.bad_response(format!("token endpoint answered HTTP {status}")));
            }
        }
        let body = read_limited(ctx, response, MAX_MANIFEST_BYTES).await?;
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|err| ctx.bad_response(format!("token response: {err}")))?;
        token
            .token
            .or(token.access_token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ctx.bad_response("token response without a token".into()))
    }
}

/// A lookup in progress: the repository as given (for messages), where it
/// is, and what is looked for.
struct Ctx {
    repository: String,
    repo: RepoRef,
    subject: String,
}

impl Ctx {
    fn new(repository: &str, subject: String) -> Result<Self, RegistryError> {
        let repo =
            RepoRef::parse(repository).map_err(|reason| RegistryError::InvalidRepository {
                repository: repository.to_owned(),
                reason: reason.to_owned(),
            })?;
        Ok(Ctx {
            repository: repository.trim().to_owned(),
            repo,
            subject,
        })
    }

    fn unreachable(&self, err: &reqwest::Error) -> RegistryError {
        RegistryError::Unreachable {
            repository: self.repository.clone(),
            subject: self.subject.clone(),
            detail: error_chain(err),
        }
    }

    fn bad_response(&self, detail: String) -> RegistryError {
        RegistryError::BadResponse {
            repository: self.repository.clone(),
            subject: self.subject.clone(),
            detail,
        }
    }

    fn status_error(&self, status: StatusCode) -> RegistryError {
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Unauthorized {
                repository: self.repository.clone(),
                subject: self.subject.clone(),
                status: status.as_u16(),
            },
            status => self.bad_response(format!("HTTP {status}")),
        }
    }
}

/// Where a repository lives: the registry host (with port) and the name in
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RepoRef {
    /// `host[:port]` to connect to.
    host: String,
    /// The repository name within the registry, like `packit/service`.
    name: String,
}

impl RepoRef {
    /// Splits `host[:port]/name`; a first component without `.` or `:`
    /// (and not `localhost`) is a Docker Hub name, as in `docker pull`.
    fn parse(repository: &str) -> Result<Self, &'static str> {
        let repository = repository.trim();
        if repository.is_empty() {
            return Err("empty");
        }
        if repository.contains('@') {
            return Err("expected a repository without a digest");
        }
        let (host, name) = match repository.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') =>
            {
                (first.to_owned(), rest.to_owned())
            }
            Some(_) => ("docker.io".to_owned(), repository.to_owned()),
            None => ("docker.io".to_owned(), format!("library/{repository}")),
        };
        let host = match host.as_str() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io".to_owned(),
            _ => host,
        };
        if name.contains(':') {
            return Err("expected a repository without a tag");
        }
        let valid_component = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        };
        if !name.split('/').all(valid_component) {
            return Err("a repository name is lowercase letters, digits and . _ - separated by /");
        }
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err("invalid registry host");
        }
        Ok(RepoRef { host, name })
    }

    /// Plain HTTP only for registries on this machine.
    fn scheme(&self) -> &'static str {
        if is_loopback(host_without_port(&self.host)) {
            "http"
        } else {
            "https"
        }
    }

    /// The API URL of `path` (like `manifests/<digest>`) in this repository.
    fn url(&self, path: &str) -> String {
        format!("{}://{}/v2/{}/{path}", self.scheme(), self.host, self.name)
    }
}

fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.split(':').next().unwrap_or(host)
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1")
}

/// Parses a digest as builders report it: `sha256:<64 hex>` or
/// `<repository>@sha256:<64 hex>`, with surrounding whitespace. Returns
/// `sha256:<hex>` in lowercase.
pub fn parse_digest(text: &str) -> Option<String> {
    let text = text.trim();
    let digest = text.rsplit_once('@').map_or(text, |(_, digest)| digest);
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

fn sha256_digest(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn header_digest(response: &Response) -> Option<String> {
    response
        .headers()
        .get("docker-content-digest")
        .and_then(|value| value.to_str().ok())
        .and_then(parse_digest)
}

/// The `rel="next"` target of a `Link` header, made absolute.
fn next_page(response: &Response) -> Option<String> {
    let link = response.headers().get(header::LINK)?.to_str().ok()?;
    let target = link
        .split(',')
        .find(|part| part.contains("rel=\"next\"") || part.contains("rel=next"))?;
    let start = target.find('<')? + 1;
    let end = target[start..].find('>')? + start;
    response
        .url()
        .join(&target[start..end])
        .ok()
        .map(String::from)
}

/// Reads a response body, refusing bodies over `limit` bytes.
async fn read_limited(
    ctx: &Ctx,
    mut response: Response,
    limit: usize,
) -> Result<Vec<u8>, RegistryError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| ctx.unreachable(&err))?
    {
        if body.len() + chunk.len() > limit {
            return Err(ctx.bad_response(format!("response larger than {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error and its causes on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

/// A fetched manifest and its digest.
struct Fetched {
    digest: String,
    body: Vec<u8>,
}

/// The parts of an image manifest or index that we read.
#[derive(Deserialize)]
struct Manifest {
    config: Option<Descriptor>,
    manifests: Option<Vec<Descriptor>>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

#[derive(Deserialize)]
struct ImageConfig {
    config: Option<ImageConfigConfig>,
}

#[derive(Deserialize)]
struct ImageConfigConfig {
    #[serde(rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

fn names_commit(labels: Option<&BTreeMap<String, String>>, commit: &str) -> bool {
    labels
        .and_then(|labels| labels.get(REVISION_LABEL))
        .is_some_and(|revision| revision.trim().eq_ignore_ascii_case(commit))
}

/// The image of an index to read labels from: linux/amd64 if there is one,
/// else the first that is not an attestation (platform `unknown`).
fn index_child(index: &Manifest) -> Option<String> {
    fn platform(descriptor: &Descriptor) -> Option<(&str, &str)> {
        let platform = descriptor.platform.as_ref()?;
        Some((platform.os.as_str(), platform.architecture.as_str()))
    }
    let manifests = index.manifests.as_ref()?;
    manifests
        .iter()
        .find(|d| platform(d) == Some(("linux", "amd64")))
        .or_else(|| {
            manifests
                .iter()
                .find(|d| platform(d).is_none_or(|(os, _)| os != "unknown"))
        })
        .map(|d| d.digest.clone())
}

/// The tags to inspect for the revision label, at most `limit`: `latest`
/// first, then from the end of the (lexically sorted) list.
fn label_scan_order(tags: &[String], limit: usize) -> Vec<&str> {
    let latest = tags.iter().find(|t| *t == "latest").map(String::as_str);
    latest
        .into_iter()
        .chain(
            tags.iter()
                .rev()
                .map(String::as_str)
                .filter(|t| *t != "latest"),
        )
        .take(limit)
        .collect()
}

/// One challenge of a `WWW-Authenticate` header: the scheme (lowercased)
/// and its parameters (names lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    scheme: String,
    params: BTreeMap<String, String>,
}

/// Parses a `WWW-Authenticate` header value, which may hold several
/// challenges: `Bearer realm="https://x/token",service="x",scope="repository:a/b:pull,push"`.
fn parse_challenges(header: &str) -> Vec<Challenge> {
    const SPACE: [char; 2] = [' ', '\t'];
    let mut challenges = Vec::new();
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        let (scheme, after) = split_token(rest);
        if scheme.is_empty() {
            break;
        }
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        rest = after;
        loop {
            let item = rest.trim_start_matches([' ', '\t', ',']);
            let (name, after_name) = split_token(item);
            let Some(value) = after_name.trim_start_matches(SPACE).strip_prefix('=') else {
                // Not a parameter: the next challenge (or the end).
                rest = item;
                break;
            };
            if name.is_empty() {
                rest = item;
                break;
            }
            let value = value.trim_start_matches(SPACE);
            let (value, after_value) = match value.strip_prefix('"') {
                Some(quoted) => split_quoted(quoted),
                None => {
                    let end = value.find([',', ' ', '\t']).unwrap_or(value.len());
                    (value[..end].to_owned(), &value[end..])
                }
            };
            challenge.params.insert(name.to_ascii_lowercase(), value);
            rest = after_value;
        }
        challenges.push(challenge);
    }
    challenges
}

/// A token (scheme or parameter name) at the start of `text`, and the rest.
fn split_token(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | '=' | '"'))
        .unwrap_or(text.len());
    text.split_at(end)
}

/// The content of a quoted string whose opening quote is already consumed,
/// and the text after the closing quote.
fn split_quoted(text: &str) -> (String, &str) {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (value, &text[i + 1..]),
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            c => value.push(c),
        }
    }
    (value, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "4c1f4bbd0a9d5c5e2d0c3e9ff0b1a2c3d4e5f60718293a4b5c6d7e8f90a1b2c3";

    #[test]
    fn parse_digest_accepts_builder_output() {
        let digest = format!("sha256:{HEX}");
        assert_eq!(parse_digest(&digest), Some(digest.clone()));
        assert_eq!(parse_digest(&format!("  {digest}\n")), Some(digest.clone()));
        assert_eq!(
            parse_digest(&format!("quay.io/packit/packit-service@{digest}\n")),
            Some(digest.clone())
        );
        assert_eq!(
            parse_digest(&format!("127.0.0.1:5000/packit/service@{digest}")),
            Some(digest.clone())
        );
        assert_eq!(
            parse_digest(&format!("sha256:{}", HEX.to_ascii_uppercase())),
            Some(digest.clone()),
            "normalised to lowercase"
        );
    }

    #[test]
    fn parse_digest_rejects_everything_else() {
        for text in [
            "",
            "sha256:",
            "sha256:abc",
            &format!("sha256:{HEX}0"),
            &format!("sha512:{HEX}"),
            &format!("sha256:{}g", &HEX[1..]),
            &format!("quay.io/packit/packit-service:{HEX}"),
            &format!("sha256:{HEX} trailing"),
            HEX,
        ] {
            assert_eq!(parse_digest(text), None, "{text:?}");
        }
    }

    fn repo(host: &str, name: &str) -> RepoRef {
        RepoRef {
            host: host.into(),
            name: name.into(),
        }
    }

    #[test]
    fn repository_splits_into_host_and_name() {
        let cases = [
            (
                "127.0.0.1:5000/packit/service",
                repo("127.0.0.1:5000", "packit/service"),
            ),
            (
                "quay.io/packit/packit-service",
                repo("quay.io", "packit/packit-service"),
            ),
            ("localhost/x", repo("localhost", "x")),
            ("localhost:5000/a/b/c", repo("localhost:5000", "a/b/c")),
            ("[::1]:5000/packit/ogr", repo("[::1]:5000", "packit/ogr")),
            (
                "ghcr.io/packit/ogr_1.2-x",
                repo("ghcr.io", "packit/ogr_1.2-x"),
            ),
            (" quay.io/packit/worker\n", repo("quay.io", "packit/worker")),
            (
                "packit/worker",
                repo("registry-1.docker.io", "packit/worker"),
            ),
            ("fedora", repo("registry-1.docker.io", "library/fedora")),
            (
                "docker.io/library/fedora",
                repo("registry-1.docker.io", "library/fedora"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(RepoRef::parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn repository_rejects_tags_digests_and_bad_names() {
        for text in [
            "",
            "quay.io/packit/service:latest",
            &format!("quay.io/packit/service@sha256:{HEX}"),
            "quay.io/Packit/service",
            "quay.io/",
            "quay.io//service",
            "quay.io/packit/-service",
            "quay.io/packit service",
        ] {
            assert!(RepoRef::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn plain_http_only_for_loopback_hosts() {
        assert_eq!(repo("127.0.0.1:5000", "a").scheme(), "http");
        assert_eq!(repo("127.0.0.1", "a").scheme(), "http");
        assert_eq!(repo("localhost:5000", "a").scheme(), "http");
        assert_eq!(repo("[::1]:5000", "a").scheme(), "http");
        assert_eq!(repo("quay.io", "a").scheme(), "https");
        assert_eq!(repo("127.0.0.1.nip.io", "a").scheme(), "https");
        assert_eq!(repo("localhost.example.com:5000", "a").scheme(), "https");
        assert_eq!(
            repo("127.0.0.1:5000", "packit/service").url("manifests/x"),
            "http://127.0.0.1:5000/v2/packit/service/manifests/x"
        );
        assert_eq!(
            repo("quay.io", "packit/service").url("tags/list"),
            "https://quay.io/v2/packit/service/tags/list"
        );
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn www_authenticate_bearer() {
        let parsed = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        );
        assert_eq!(
            parsed,
            vec![Challenge {
                scheme: "bearer".into(),
                params: params(&[
                    ("realm", "https://auth.docker.io/token"),
                    ("service", "registry.docker.io"),
                    ("scope", "repository:samalba/my-app:pull,push"),
                ]),
            }]
        );
    }

    #[test]
    fn www_authenticate_variants() {
        // Spaces, unquoted values, escapes, case, several challenges.
        let parsed = parse_challenges(
            r#"Basic realm="Registry \"x\"", BEARER Realm=https://quay.io/v2/auth , service = quay.io"#,
        );
        assert_eq!(
            parsed,
            vec![
                Challenge {
                    scheme: "basic".into(),
                    params: params(&[("realm", r#"Registry "x""#)]),
                },
                Challenge {
                    scheme: "bearer".into(),
                    params: params(
                        &[("realm", "https://quay.io/v2/auth"), ("service", "quay.io"),]
                    ),
                },
            ]
        );
        assert_eq!(
            parse_challenges("Negotiate"),
            vec![Challenge {
                scheme: "negotiate".into(),
                params: BTreeMap::new(),
            }]
        );
        assert_eq!(parse_challenges(""), vec![]);
        assert_eq!(parse_challenges("  ,  "), vec![]);
        // Garbage ends parsing without panicking.
        let _ = parse_challenges(r#"Bearer realm="unterminated"#);
        let _ = parse_challenges(r#"=== "" ,, = x"#);
    }

    #[test]
    fn label_scan_prefers_latest_then_the_end_of_the_list() {
        let tags: Vec<String> = ["2024-01-01", "2024-02-01", "latest", "stable"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            label_scan_order(&tags, 3),
            vec!["latest", "stable", "2024-02-01"]
        );
        assert_eq!(label_scan_order(&tags, 0), Vec::<&str>::new());
        assert_eq!(
            label_scan_order(&tags[..2], 10),
            vec!["2024-02-01", "2024-01-01"]
        );
    }

    #[test]
    fn index_child_prefers_linux_amd64_and_skips_attestations() {
        let index: Manifest = serde_json::from_str(
            r#"{"manifests": [
                {"digest": "sha256:att", "platform": {"os": "unknown", "architecture": "unknown"}},
                {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}},
                {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}}
            ]}"#,
        )
        .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(index_child(&index).as_deref(), Some("sha256:amd"));
        let index: Manifest = serde_json::from_str(
            r#"{"manifests": [
                {"digest": "sha256:att", "platform": {"os": "unknown", "architecture": "unknown"}},
                {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}}
            ]}"#,
        )
        .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(index_child(&index).as_deref(), Some("sha256:arm"));
    }

    #[test]
    fn debug_hides_credentials() {
        let registry = Registry::new().with_basic_auth("robot", "s3cret");
        let shown = format!("{registry:?}");
        assert!(shown.contains("robot"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn invalid_input_is_rejected_before_any_request() {
        let registry = Registry::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|err| panic!("{err}"));
        let err = runtime
            .block_on(registry.confirm("quay.io/packit/service", "latest"))
            .err()
            .map(|err| err.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "invalid image digest \"latest\" for quay.io/packit/service: \
                 expected sha256:<64 hex digits>"
            )
        );
        let err = runtime
            .block_on(registry.find_by_revision("quay.io/packit/service", "abc123"))
            .err();
        assert!(
            matches!(err, Some(RegistryError::InvalidCommit { .. })),
            "{err:?}"
        );
        let err = runtime
            .block_on(registry.confirm("quay.io/packit/service:latest", &format!("sha256:{HEX}")))
            .err();
        assert!(
            matches!(err, Some(RegistryError::InvalidRepository { .. })),
            "{err:?}"
        );
    }
}
