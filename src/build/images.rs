//! Finding and confirming images in OCI registries, on top of `oci-client`
//! (which speaks the distribution API: the Bearer token flow, basic auth,
//! digest checks). What is ours: how a repository is named and checked,
//! which registries get plain HTTP, how an image is found from a commit
//! (tags first, then the revision label), and errors that name what was
//! looked for.
//!
//! Registries on loopback hosts (`127.0.0.1`, `localhost`, `[::1]`) are
//! spoken to over plain HTTP, all others over HTTPS.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, ImageIndexEntry,
    OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciManifest,
};
use oci_client::{Client, Reference};
use serde::Deserialize;

pub use oci_client::secrets::RegistryAuth;

/// The image label (and manifest annotation) naming the commit an image was
/// built from.
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";

/// Manifest and index media types we understand, OCI and Docker.
const MANIFEST_TYPES: &[&str] = &[
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
];

/// How many tags [`Registry::find_by_revision`] inspects for the revision
/// label unless told otherwise.
pub const DEFAULT_LABEL_SCAN_LIMIT: usize = 20;
const TAG_PAGE_SIZE: usize = 1000;
/// Bounds the tag listing of huge repositories.
const MAX_TAG_PAGES: usize = 20;
const MAX_CONFIG_BYTES: usize = 8 << 20;
/// Short commit prefixes CI systems commonly tag images with.
const SHORT_SHA_LENGTHS: std::ops::RangeInclusive<usize> = 7..=12;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds one registry operation (challenge, token, request) as a whole.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
const USER_AGENT: &str = concat!("packit-operator/", env!("CARGO_PKG_VERSION"));

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
    /// For every registry but those on this machine.
    https: Client,
    /// For loopback registries only. Two clients because
    /// `ClientProtocol::HttpsExcept` lists exact `host:port` strings, and
    /// a local registry may listen on any port.
    plain: Client,
    auth: RegistryAuth,
    label_scan_limit: usize,
}

// `RegistryAuth`'s Debug shows the user name, never a password or token.
impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("auth", &self.auth)
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
    /// Anonymous access.
    pub fn new() -> Self {
        Registry {
            https: client(ClientProtocol::Https),
            plain: client(ClientProtocol::Http),
            auth: RegistryAuth::Anonymous,
            label_scan_limit: DEFAULT_LABEL_SCAN_LIMIT,
        }
    }

    /// Uses `auth` for every registry: basic credentials are sent to
    /// registries asking for basic auth and to Bearer token realms, never
    /// along with a token (see [`super::pull_secret`] for credentials from
    /// a pull Secret).
    ///
    /// oci-client sends basic credentials to whatever token realm the
    /// registry's challenge names, also over plain HTTP; the hand-written
    /// client this replaced held them back from plain-HTTP realms off this
    /// machine.
    pub fn with_auth(mut self, auth: RegistryAuth) -> Self {
        // oci-client remembers the first credentials seen per registry;
        // fresh clients keep this value's from mixing with a clone's.
        let fresh = Registry::new();
        self.https = fresh.https;
        self.plain = fresh.plain;
        self.auth = auth;
        self
    }

    /// [`Self::with_auth`] with basic credentials.
    pub fn with_basic_auth(self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.with_auth(RegistryAuth::Basic(username.into(), password.into()))
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
        let reference = ctx.reference_by_digest(&digest);
        // A HEAD, and a GET when the registry sends no digest header (or
        // does not implement HEAD); oci-client compares the digests.
        let found = self
            .call(
                &ctx,
                self.client(&ctx)
                    .fetch_manifest_digest(&reference, &self.auth),
            )
            .await;
        match found {
            Ok(_) => Ok(()),
            Err(Failure::NotFound) => Err(RegistryError::NotFound {
                repository: ctx.repository,
                digest,
            }),
            Err(failure) => Err(ctx.error(failure)),
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
                && let Some(manifest) = self.fetch_manifest(&ctx, ctx.reference_by_tag(tag)).await?
            {
                return Ok(Some(manifest.digest));
            }
        }

        for tag in label_scan_order(&tags, self.label_scan_limit) {
            let Some(manifest) = self.fetch_manifest(&ctx, ctx.reference_by_tag(tag)).await? else {
                continue;
            };
            if self.built_from(&ctx, &manifest, &commit).await? {
                return Ok(Some(manifest.digest));
            }
        }
        Ok(None)
    }

    fn client(&self, ctx: &Ctx) -> &Client {
        if ctx.repo.is_loopback() {
            &self.plain
        } else {
            &self.https
        }
    }

    /// Runs one oci-client operation within [`OPERATION_TIMEOUT`].
    async fn call<T>(
        &self,
        ctx: &Ctx,
        operation: impl Future<Output = Result<T, OciDistributionError>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(OPERATION_TIMEOUT, operation).await {
            Ok(result) => result.map_err(|err| classify(&err)),
            Err(_) => Err(Failure::Unreachable(format!(
                "no answer within {} s from {}",
                OPERATION_TIMEOUT.as_secs(),
                ctx.repo.host
            ))),
        }
    }

    /// All tags of the repository, or `None` when the repository is unknown.
    ///
    /// oci-client pages with `last` (the distribution spec's way) and does
    /// not show the `Link` header, so paging stops at an empty page or at
    /// one that does not move on (a registry ignoring `last`).
    async fn list_tags(&self, ctx: &Ctx) -> Result<Option<Vec<String>>, RegistryError> {
        let reference = ctx.reference_by_tag("latest");
        let mut tags: Vec<String> = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let last = tags.last().cloned();
            let page = self
                .call(
                    ctx,
                    self.client(ctx).list_tags(
                        &reference,
                        &self.auth,
                        Some(TAG_PAGE_SIZE),
                        last.as_deref(),
                    ),
                )
                .await;
            let page = match page {
                Ok(page) => page.tags,
                Err(Failure::NotFound) if last.is_none() => return Ok(None),
                Err(failure) => return Err(ctx.error(failure)),
            };
            let moves_on = match (page.last(), &last) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(new), Some(old)) => new > old,
            };
            if !moves_on {
                break;
            }
            let short = page.len() < TAG_PAGE_SIZE;
            tags.extend(page);
            if short {
                break;
            }
        }
        Ok(Some(tags))
    }

    /// GETs the manifest `reference` (tag or digest); `None` if absent.
    async fn fetch_manifest(
        &self,
        ctx: &Ctx,
        reference: Reference,
    ) -> Result<Option<Fetched>, RegistryError> {
        let fetched = self
            .call(
                ctx,
                self.client(ctx)
                    .pull_manifest_raw(&reference, &self.auth, MANIFEST_TYPES),
            )
            .await;
        match fetched {
            Ok((body, digest)) => Ok(Some(Fetched {
                digest,
                body: body.to_vec(),
            })),
            Err(Failure::NotFound) => Ok(None),
            Err(failure) => Err(ctx.error(failure)),
        }
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
        let Ok(parsed) = serde_json::from_slice::<OciManifest>(&manifest.body) else {
            return Ok(false);
        };
        let image = match parsed {
            OciManifest::Image(image) => image,
            OciManifest::ImageIndex(index) => {
                if names_commit(index.annotations.as_ref(), commit) {
                    return Ok(true);
                }
                let Some(child) = index_child(&index.manifests).and_then(parse_digest) else {
                    return Ok(false);
                };
                let Some(fetched) = self
                    .fetch_manifest(ctx, ctx.reference_by_digest(&child))
                    .await?
                else {
                    return Ok(false);
                };
                match serde_json::from_slice::<OciManifest>(&fetched.body) {
                    Ok(OciManifest::Image(image)) => image,
                    _ => return Ok(false),
                }
            }
        };
        if names_commit(image.annotations.as_ref(), commit) {
            return Ok(true);
        }
        if parse_digest(&image.config.digest).is_none() {
            return Ok(false);
        }
        let Some(config) = self.fetch_config(ctx, &image.config).await? else {
            return Ok(false);
        };
        // Only the labels: oci-client's `ConfigFile` insists on fields
        // (architecture, os, rootfs) that do not matter here.
        let Ok(config) = serde_json::from_slice::<ImageConfig>(&config) else {
            return Ok(false);
        };
        Ok(names_commit(
            config.config.and_then(|c| c.labels).as_ref(),
            commit,
        ))
    }

    /// The image config blob, at most [`MAX_CONFIG_BYTES`]; `None` if absent.
    async fn fetch_config(
        &self,
        ctx: &Ctx,
        config: &OciDescriptor,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let reference = ctx.reference_by_digest(&config.digest);
        let too_large = || ctx.bad_response(format!("config larger than {MAX_CONFIG_BYTES} bytes"));
        let read = async {
            let mut stream = self
                .client(ctx)
                .pull_blob_stream(&reference, config)
                .await?;
            if stream
                .content_length
                .is_some_and(|len| len > MAX_CONFIG_BYTES as u64)
            {
                return Ok(None);
            }
            let mut body = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if body.len() + chunk.len() > MAX_CONFIG_BYTES {
                    return Ok(None);
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, OciDistributionError>(Some(body))
        };
        match self.call(ctx, read).await {
            Ok(Some(body)) => Ok(Some(body)),
            Ok(None) => Err(too_large()),
            Err(Failure::NotFound) => Ok(None),
            Err(failure) => Err(ctx.error(failure)),
        }
    }
}

fn client(protocol: ClientProtocol) -> Client {
    Client::new(ClientConfig {
        protocol,
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(OPERATION_TIMEOUT),
        user_agent: USER_AGENT,
        ..ClientConfig::default()
    })
}

/// What went wrong, before it gets the repository and subject.
#[derive(Debug)]
enum Failure {
    NotFound,
    Unauthorized(u16),
    Unreachable(String),
    Bad(String),
}

fn classify(err: &OciDistributionError) -> Failure {
    match err {
        OciDistributionError::UnauthorizedError { .. } => Failure::Unauthorized(401),
        OciDistributionError::ServerError { code, .. } => match code {
            401 | 403 => Failure::Unauthorized(*code),
            404 => Failure::NotFound,
            code => Failure::Bad(match http::StatusCode::from_u16(*code) {
                Ok(status) => format!("HTTP {status}"),
                Err(_) => format!("HTTP {code}"),
            }),
        },
        // oci-client keeps the error codes of a 4xx body, not its status.
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|code| {
                matches!(
                    code,
                    OciErrorCode::NameUnknown
                        | OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                Failure::NotFound
            } else if codes.contains(&&OciErrorCode::Unauthorized) {
                Failure::Unauthorized(401)
            } else if codes.contains(&&OciErrorCode::Denied) {
                Failure::Unauthorized(403)
            } else {
                Failure::Bad(envelope.to_string())
            }
        }
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            expected,
            actual,
        }) => Failure::Bad(format!(
            "asked for {expected}, the registry answered for {actual}"
        )),
        OciDistributionError::RequestError(err) => Failure::Unreachable(error_chain(err)),
        OciDistributionError::IoError(err) => Failure::Unreachable(error_chain(err)),
        err => Failure::Bad(err.to_string()),
    }
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

    fn reference_by_tag(&self, tag: &str) -> Reference {
        Reference::with_tag(self.repo.host.clone(), self.repo.name.clone(), tag.into())
    }

    fn reference_by_digest(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.repo.host.clone(),
            self.repo.name.clone(),
            digest.into(),
        )
    }

    fn bad_response(&self, detail: String) -> RegistryError {
        RegistryError::BadResponse {
            repository: self.repository.clone(),
            subject: self.subject.clone(),
            detail,
        }
    }

    fn error(&self, failure: Failure) -> RegistryError {
        let (repository, subject) = (self.repository.clone(), self.subject.clone());
        match failure {
            Failure::Unauthorized(status) => RegistryError::Unauthorized {
                repository,
                subject,
                status,
            },
            Failure::Unreachable(detail) => RegistryError::Unreachable {
                repository,
                subject,
                detail,
            },
            Failure::NotFound => self.bad_response("HTTP 404 Not Found".into()),
            Failure::Bad(detail) => self.bad_response(detail),
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
    fn is_loopback(&self) -> bool {
        is_loopback(host_without_port(&self.host))
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

/// The registry host (with port) an image repository lives on, as
/// [`super::pull_secret::registry_auth`] takes it: `quay.io` for
/// `quay.io/packit/service`, `registry-1.docker.io` for `fedora`. `None`
/// for what [`Registry`] would refuse as a repository.
pub fn registry_host(repository: &str) -> Option<String> {
    RepoRef::parse(repository).ok().map(|repo| repo.host)
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

/// A fetched manifest and its digest.
struct Fetched {
    digest: String,
    body: Vec<u8>,
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
fn index_child(manifests: &[ImageIndexEntry]) -> Option<&str> {
    use oci_client::config::{Architecture as Arch, Os};
    let is_attestation = |entry: &ImageIndexEntry| {
        entry
            .platform
            .as_ref()
            .is_some_and(|p| p.os == Os::Other("unknown".into()))
    };
    manifests
        .iter()
        .find(|entry| {
            entry
                .platform
                .as_ref()
                .is_some_and(|p| p.os == Os::Linux && p.architecture == Arch::Amd64)
        })
        .or_else(|| manifests.iter().find(|entry| !is_attestation(entry)))
        .map(|entry| entry.digest.as_str())
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
    fn registry_host_of_a_repository() {
        assert_eq!(
            registry_host("quay.io/packit/service").as_deref(),
            Some("quay.io")
        );
        assert_eq!(
            registry_host("127.0.0.1:5000/a").as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(
            registry_host("fedora").as_deref(),
            Some("registry-1.docker.io")
        );
        assert_eq!(registry_host("quay.io/packit/service:latest"), None);
    }

    #[test]
    fn plain_http_only_for_loopback_hosts() {
        assert!(repo("127.0.0.1:5000", "a").is_loopback());
        assert!(repo("127.0.0.1", "a").is_loopback());
        assert!(repo("localhost:5000", "a").is_loopback());
        assert!(repo("[::1]:5000", "a").is_loopback());
        assert!(!repo("quay.io", "a").is_loopback());
        assert!(!repo("127.0.0.1.nip.io", "a").is_loopback());
        assert!(!repo("localhost.example.com:5000", "a").is_loopback());
    }

    #[test]
    fn registry_errors_are_classified() {
        let envelope = |code: &str| OciDistributionError::RegistryError {
            envelope: serde_json::from_str(&format!(r#"{{"errors":[{{"code":"{code}"}}]}}"#))
                .unwrap_or_else(|err| panic!("{err}")),
            url: "http://x/v2/".into(),
        };
        let server = |code: u16| OciDistributionError::ServerError {
            code,
            url: "http://x/v2/".into(),
            message: "body".into(),
        };
        for (err, expected) in [
            (envelope("MANIFEST_UNKNOWN"), "NotFound"),
            (envelope("NAME_UNKNOWN"), "NotFound"),
            (envelope("BLOB_UNKNOWN"), "NotFound"),
            (envelope("DENIED"), "Unauthorized(403)"),
            (envelope("UNAUTHORIZED"), "Unauthorized(401)"),
            (envelope("TOOMANYREQUESTS"), "Bad"),
            (server(404), "NotFound"),
            (server(403), "Unauthorized(403)"),
            (server(500), "Bad(\"HTTP 500 Internal Server Error\")"),
            (
                OciDistributionError::UnauthorizedError { url: "u".into() },
                "Unauthorized(401)",
            ),
        ] {
            let shown = format!("{:?}", classify(&err));
            assert!(shown.starts_with(expected), "{err}: {shown}");
        }
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

    fn entries(json: &str) -> Vec<ImageIndexEntry> {
        serde_json::from_str(json).unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn index_child_prefers_linux_amd64_and_skips_attestations() {
        const M: &str = r#""mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1"#;
        let all = entries(&format!(
            r#"[
                {{"digest": "sha256:att", {M}, "platform": {{"os": "unknown", "architecture": "unknown"}}}},
                {{"digest": "sha256:arm", {M}, "platform": {{"os": "linux", "architecture": "arm64"}}}},
                {{"digest": "sha256:amd", {M}, "platform": {{"os": "linux", "architecture": "amd64"}}}}
            ]"#
        ));
        assert_eq!(index_child(&all), Some("sha256:amd"));
        assert_eq!(index_child(&all[..2]), Some("sha256:arm"));
        assert_eq!(index_child(&all[..1]), None);
    }

    #[test]
    fn debug_hides_credentials() {
        let registry = Registry::new().with_basic_auth("robot", "s3cret");
        let shown = format!("{registry:?}");
        assert!(shown.contains("robot"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let registry = Registry::new().with_auth(RegistryAuth::Bearer("t0ken".into()));
        let shown = format!("{registry:?}");
        assert!(!shown.contains("t0ken"), "{shown}");
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
