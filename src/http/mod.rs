//! The operator's outgoing HTTP client (health checks, webhooks, metric
//! checks), which connects only to addresses its [`AddressPolicy`] allows.

mod guard;
mod policy;

use std::sync::Arc;

pub use guard::{FilteringResolver, SystemResolver};
pub use policy::{ALLOW_FLAG, AddressPolicy, DEFAULT_DENY, Refused, Why, parse_cidrs};

/// Why the HTTP client could not be built (no usable TLS setup).
pub type ClientError = Box<dyn std::error::Error + Send + Sync>;

/// A client with rustls on aws-lc-rs (the one crypto provider compiled in)
/// verifying against the system's trusted roots, connecting only where
/// `policy` allows. No proxy: the address checked must be the one reached.
pub fn client(policy: Arc<AddressPolicy>) -> Result<reqwest::Client, ClientError> {
    client_with_resolver(policy, Arc::new(SystemResolver))
}

/// [`client`] with another resolver underneath the policy's filter.
pub fn client_with_resolver(
    policy: Arc<AddressPolicy>,
    resolver: Arc<dyn reqwest::dns::Resolve>,
) -> Result<reqwest::Client, ClientError> {
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
        .no_proxy()
        .dns_resolver(FilteringResolver {
            inner: resolver,
            policy: policy.clone(),
        })
        .redirect(guard::redirects(policy.clone()))
        .connector_layer(guard::CheckPeer { policy })
        .build()?)
}

/// The refusal behind a failed request, if an address was refused.
pub fn refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests;
