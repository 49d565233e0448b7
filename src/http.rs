//! The operator's outgoing HTTP client (health checks, webhooks).

use std::sync::Arc;

/// Why the HTTP client could not be built (no usable TLS setup).
pub type ClientError = Box<dyn std::error::Error + Send + Sync>;

/// A client with rustls on aws-lc-rs (the one crypto provider compiled in)
/// verifying against the system's trusted roots.
pub fn client() -> Result<reqwest::Client, ClientError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("packit-operator/", env!("CARGO_PKG_VERSION")))
        .build()?)
}
