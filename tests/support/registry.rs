//! Pushing small OCI images to the local registry over the distribution
//! API, the way a build would.

use anyhow::{Context, Result, bail, ensure};
use reqwest::{Client, StatusCode, header};
use serde_json::json;
use sha2::{Digest, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// The label (and manifest annotation) naming the commit an image was built
/// from.
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";

/// An image pushed with [`push_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// `host:port/repository`, as a pod's image field would name it.
    pub repository: String,
    pub tag: String,
    /// The manifest digest, `sha256:<hex>`.
    pub digest: String,
}

impl PushedImage {
    /// `host:port/repository@sha256:...`
    pub fn by_digest(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }

    /// `host:port/repository:tag`
    pub fn by_tag(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn http() -> Result<Client> {
    Ok(Client::builder().no_proxy().build()?)
}

/// Pushes a one-layer image to `registry` (`host:port`) as
/// `repository:tag`, labelled with `org.opencontainers.image.revision =
/// revision`, and returns its manifest digest. The layer holds a file with
/// the revision, so each revision yields a different image.
pub async fn push_image(
    registry: &str,
    repository: &str,
    tag: &str,
    revision: &str,
) -> Result<PushedImage> {
    let http = http()?;
    let layer = layer_tar(revision)?;
    let layer_digest = sha256_digest(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": { "Labels": { REVISION_LABEL: revision } },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    }))?;
    let config_digest = sha256_digest(&config);
    upload_blob(&http, registry, repository, &layer).await?;
    upload_blob(&http, registry, repository, &config).await?;

    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": OCI_LAYER, "digest": layer_digest, "size": layer.len() }],
        "annotations": { REVISION_LABEL: revision },
    }))?;
    let digest = sha256_digest(&manifest);
    let response = http
        .put(format!("http://{registry}/v2/{repository}/manifests/{tag}"))
        .header(header::CONTENT_TYPE, OCI_MANIFEST)
        .body(manifest)
        .send()
        .await?;
    if response.status() != StatusCode::CREATED {
        bail!(
            "pushing manifest {repository}:{tag}: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    let stored = header_str(&response, "docker-content-digest");
    ensure!(
        stored.as_deref() == Some(digest.as_str()),
        "registry stored manifest as {stored:?}, expected {digest}"
    );
    Ok(PushedImage {
        repository: format!("{registry}/{repository}"),
        tag: tag.to_owned(),
        digest,
    })
}

/// Resolves `reference` (a tag or digest) in `repository` to the manifest
/// digest with a HEAD request, as a client deciding what to deploy would.
pub async fn resolve_digest(registry: &str, repository: &str, reference: &str) -> Result<String> {
    let response = http()?
        .head(format!(
            "http://{registry}/v2/{repository}/manifests/{reference}"
        ))
        .header(header::ACCEPT, OCI_MANIFEST)
        .send()
        .await?;
    ensure!(
        response.status() == StatusCode::OK,
        "resolving {repository}:{reference}: {}",
        response.status()
    );
    header_str(&response, "docker-content-digest")
        .context("registry sent no Docker-Content-Digest header")
}

/// GETs a manifest or blob and checks its content against `digest`.
pub async fn fetch_verified(
    registry: &str,
    repository: &str,
    kind: &str,
    digest: &str,
) -> Result<Vec<u8>> {
    let response = http()?
        .get(format!("http://{registry}/v2/{repository}/{kind}/{digest}"))
        .header(header::ACCEPT, OCI_MANIFEST)
        .send()
        .await?;
    ensure!(
        response.status() == StatusCode::OK,
        "fetching {repository} {kind} {digest}: {}",
        response.status()
    );
    let body = response.bytes().await?.to_vec();
    ensure!(
        sha256_digest(&body) == digest,
        "{kind} {digest} has content of another digest"
    );
    Ok(body)
}

/// Monolithic blob upload: POST to open an upload, PUT the bytes.
async fn upload_blob(http: &Client, registry: &str, repository: &str, data: &[u8]) -> Result<()> {
    let digest = sha256_digest(data);
    let response = http
        .post(format!("http://{registry}/v2/{repository}/blobs/uploads/"))
        .send()
        .await?;
    ensure!(
        response.status() == StatusCode::ACCEPTED,
        "opening blob upload in {repository}: {}",
        response.status()
    );
    let location = header_str(&response, "location").context("upload has no Location")?;
    // The location may be absolute or relative to the registry.
    let mut url = if location.starts_with('/') {
        format!("http://{registry}{location}")
    } else {
        location
    };
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str("digest=");
    url.push_str(&digest);
    let response = http
        .put(url)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await?;
    ensure!(
        response.status() == StatusCode::CREATED,
        "uploading blob {digest} to {repository}: {}",
        response.status()
    );
    Ok(())
}

fn header_str(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A tar archive with one file, `revision`, holding `revision`.
fn layer_tar(revision: &str) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(revision.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, "revision", revision.as_bytes())?;
    Ok(builder.into_inner()?)
}
