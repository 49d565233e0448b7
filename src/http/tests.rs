//! The client against loopback servers and a resolver that lies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Resolves every name to one loopback address, as a rebinding attacker's
/// DNS would.
struct Rebinding(&'static str);

impl Resolve for Rebinding {
    fn resolve(&self, _: Name) -> Resolving {
        let addrs: Vec<SocketAddr> = vec![format!("{}:0", self.0).parse().unwrap()];
        Box::pin(async move { Ok(Box::new(addrs.into_iter()) as Addrs) })
    }
}

/// A loopback server answering every request with `answer`; counts the
/// connections it accepted.
async fn server(answer: String) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    (addr, accepted)
}

fn ok() -> String {
    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()
}

fn policy(allow: &str, api_server: Vec<SocketAddr>) -> Arc<AddressPolicy> {
    Arc::new(AddressPolicy {
        allow: parse_cidrs(allow).unwrap(),
        deny: parse_cidrs(DEFAULT_DENY).unwrap(),
        api_server,
    })
}

async fn get(client: &reqwest::Client, url: &str) -> Result<u16, Refused> {
    match client.get(url).send().await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(refusal(&e)
            .cloned()
            .unwrap_or_else(|| panic!("not a refusal: {e:?}"))),
    }
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_before_connecting() {
    let (addr, accepted) = server(ok()).await;
    let url = format!("http://status.example.com:{}/", addr.port());
    let strict =
        client_with_resolver(policy("", vec![]), Arc::new(Rebinding("127.0.0.1"))).unwrap();
    let refused = get(&strict, &url).await.unwrap_err();
    assert_eq!(refused.why, Why::Loopback);
    assert_eq!(refused.target, "status.example.com (127.0.0.1)");
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing connected");

    let open = client_with_resolver(
        policy("127.0.0.0/8", vec![]),
        Arc::new(Rebinding("127.0.0.1")),
    )
    .unwrap();
    assert_eq!(get(&open, &url).await, Ok(200));
}

#[tokio::test]
async fn a_literal_address_is_checked_on_the_connection() {
    let (addr, _) = server(ok()).await;
    let url = format!("http://{addr}/");
    let strict = client(policy("", vec![])).unwrap();
    let refused = get(&strict, &url).await.unwrap_err();
    assert_eq!(refused.why, Why::Loopback);
    assert_eq!(refused.target, addr.to_string());

    let open = client(policy("127.0.0.0/8", vec![])).unwrap();
    assert_eq!(get(&open, &url).await, Ok(200));
}

#[tokio::test]
async fn the_api_server_is_refused_under_an_opened_range_also_by_name() {
    let (api, _) = server(ok()).await;
    let (other, _) = server(ok()).await;
    let p = policy("127.0.0.0/8", vec![api]);
    let c = client_with_resolver(p.clone(), Arc::new(Rebinding("127.0.0.1"))).unwrap();
    let by_name = format!("http://kubernetes.example.com:{}/", api.port());
    assert_eq!(get(&c, &by_name).await.unwrap_err().why, Why::ApiServer);
    let literal = format!("http://{api}/");
    assert_eq!(get(&c, &literal).await.unwrap_err().why, Why::ApiServer);
    assert_eq!(get(&c, &format!("http://{other}/")).await, Ok(200));
}

#[tokio::test]
async fn redirects_are_checked_at_every_hop() {
    let to = |location: &str| {
        format!(
            "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
    };
    let (metadata, _) = server(to("http://169.254.169.254/latest/meta-data/")).await;
    let (api, api_accepted) = server(ok()).await;
    let (to_api, _) = server(to(&format!("http://{api}/api"))).await;
    let (to_name, _) = server(to("http://metadata.example.com/")).await;
    let (fine, _) = server(ok()).await;
    let (to_fine, _) = server(to(&format!("http://{fine}/"))).await;

    let c = client_with_resolver(
        policy("127.0.0.0/8", vec![api]),
        Arc::new(Rebinding("127.0.0.1")),
    )
    .unwrap();
    let refused = get(&c, &format!("http://{metadata}/")).await.unwrap_err();
    assert_eq!(refused.why, Why::LinkLocal);
    assert_eq!(refused.target, "169.254.169.254:80");
    assert_eq!(
        get(&c, &format!("http://{to_api}/")).await.unwrap_err().why,
        Why::ApiServer
    );
    assert_eq!(
        api_accepted.load(Ordering::SeqCst),
        0,
        "refused before connecting"
    );
    assert_eq!(get(&c, &format!("http://{to_fine}/")).await, Ok(200));

    // A name goes through the resolver: the first hop's 127.0.0.1 is
    // open, the name's 127.0.0.2 is not.
    let first_hop_only = Arc::new(AddressPolicy {
        allow: parse_cidrs("127.0.0.1/32").unwrap(),
        ..AddressPolicy::default()
    });
    let c = client_with_resolver(first_hop_only, Arc::new(Rebinding("127.0.0.2"))).unwrap();
    let refused = get(&c, &format!("http://{to_name}/")).await.unwrap_err();
    assert_eq!(refused.why, Why::Loopback);
    assert_eq!(refused.target, "metadata.example.com (127.0.0.2)");
}
