//! Where the address policy meets the HTTP client: the resolver drops
//! refused addresses of a name before anything connects, redirects to
//! refused literal addresses are not followed, and every new connection's
//! peer address is checked once connected. The last one is what holds
//! whatever a name resolves to (DNS rebinding included) and covers IP
//! literals, which reqwest never hands to a resolver.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connection, HttpInfo};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::policy::{AddressPolicy, Refused};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The system's resolver (getaddrinfo on a blocking thread).
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Resolves with `inner` and keeps only the addresses `policy` allows; a
/// name with none left fails with the first refusal.
pub struct FilteringResolver {
    pub inner: Arc<dyn Resolve>,
    pub policy: Arc<AddressPolicy>,
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let resolving = self.inner.resolve(name);
        let policy = self.policy.clone();
        Box::pin(async move {
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolving
                .await?
                .filter(|addr| match policy.check_ip(addr.ip()) {
                    None => true,
                    Some(why) => {
                        refused.get_or_insert(Refused {
                            target: format!("{host} ({})", addr.ip()),
                            why,
                        });
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(refused)) => Err(Box::new(refused) as BoxError),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// Follows up to ten redirects, none to a refused literal address (a name
/// goes through the resolver like the first request).
pub fn redirects(policy: Arc<AddressPolicy>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error("too many redirects");
        }
        match policy.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    })
}

/// A connector layer checking the peer address of every new connection.
#[derive(Clone)]
pub struct CheckPeer {
    pub policy: Arc<AddressPolicy>,
}

impl<S> tower::Layer<S> for CheckPeer {
    type Service = PeerChecked<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PeerChecked {
            inner,
            policy: self.policy.clone(),
        }
    }
}

#[derive(Clone)]
pub struct PeerChecked<S> {
    inner: S,
    policy: Arc<AddressPolicy>,
}

impl<S, R> tower::Service<R> for PeerChecked<S>
where
    S: tower::Service<R, Error = BoxError>,
    S::Response: Connection + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let connecting = self.inner.call(request);
        let policy = self.policy.clone();
        Box::pin(async move {
            let conn = connecting.await?;
            let mut extras = http::Extensions::new();
            conn.connected().get_extras(&mut extras);
            // Unknown means unchecked: refuse rather than guess.
            let peer = extras
                .get::<HttpInfo>()
                .map(HttpInfo::remote_addr)
                .ok_or("the connection's peer address is unknown, so it cannot be checked")?;
            policy.check_socket(peer)?;
            Ok(conn)
        })
    }
}
