//! The operator's own HTTP endpoints, on axum: `/metrics` (Prometheus
//! text), `/healthz` and `/readyz`. Other pages (the dashboard) add their
//! routes to [`router`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{StatusCode, header};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// The content type of Prometheus' text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
struct Probes {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// `/metrics`, `/healthz`, and `/readyz` (200 once `ready` is set, 503
/// before); 404 for anything else. Any method is answered, as probes and
/// scrapers send GET or HEAD.
pub fn router(metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/metrics", any(metrics_page))
        .route("/healthz", any(|| async { text(StatusCode::OK, "ok\n") }))
        .route("/readyz", any(readyz))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "not found\n") })
        .with_state(Probes { metrics, ready })
}

/// Serves `router` on `listener` until the task is dropped.
pub async fn serve_router(listener: TcpListener, router: Router) {
    // axum retries failed accepts itself; serving only ends with an error
    // that leaves nothing to serve on.
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "HTTP endpoints stopped");
    }
}

async fn metrics_page(State(probes): State<Probes>) -> Response {
    respond(
        StatusCode::OK,
        METRICS_CONTENT_TYPE,
        probes.metrics.render(),
    )
}

async fn readyz(State(probes): State<Probes>) -> Response {
    if probes.ready.load(Ordering::Relaxed) {
        text(StatusCode::OK, "ok\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    respond(status, "text/plain", body.to_owned())
}

/// Every answer closes its connection, as the endpoints always did.
fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONNECTION, "close"),
        ],
        body,
    )
        .into_response()
}

/// Serves the endpoints until the task is dropped. `/readyz` answers 200
/// once `ready` is set (the controller is running), 503 before. The routes
/// are [`router`]'s.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, ready: Arc<AtomicBool>) {
    serve_router(listener, router(metrics, ready)).await;
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// Status line, lowercased headers and body of one request; reading to
    /// the end also checks that the server closes the connection.
    async fn request(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
    ) -> (String, Vec<(String, String)>, String) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        let status = lines.next().unwrap().to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        (status, headers, body.to_owned())
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn answers_like_the_endpoints_always_did() {
        let metrics = Arc::new(Metrics::new());
        metrics.leader.set(1);
        let ready = Arc::new(AtomicBool::new(false));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_router(listener, router(metrics, ready.clone())));

        let (status, headers, body) = request(addr, "GET", "/metrics").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&headers, "content-type"), Some(METRICS_CONTENT_TYPE));
        assert_eq!(header(&headers, "connection"), Some("close"));
        assert_eq!(
            header(&headers, "content-length"),
            Some(body.len().to_string().as_str())
        );
        assert!(body.contains("\npackit_leader 1\n"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");

        for (method, path, status, body_text) in [
            ("GET", "/healthz", "HTTP/1.1 200 OK", "ok\n"),
            ("POST", "/healthz", "HTTP/1.1 200 OK", "ok\n"),
            (
                "GET",
                "/readyz",
                "HTTP/1.1 503 Service Unavailable",
                "starting\n",
            ),
            ("GET", "/nope", "HTTP/1.1 404 Not Found", "not found\n"),
            ("GET", "/metrics/", "HTTP/1.1 404 Not Found", "not found\n"),
        ] {
            let (got, headers, body) = request(addr, method, path).await;
            assert_eq!((got.as_str(), body.as_str()), (status, body_text), "{path}");
            assert_eq!(
                header(&headers, "content-type"),
                Some("text/plain"),
                "{path}"
            );
        }
        ready.store(true, Ordering::Relaxed);
        let (status, _, body) = request(addr, "GET", "/readyz").await;
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 200 OK", "ok\n")
        );
        // HEAD gets the headers only.
        let (status, _, body) = request(addr, "HEAD", "/healthz").await;
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", ""));
        server.abort();
    }
}

#[cfg(test)]
mod endpoint_tests {
    use std::sync::atomic::Ordering;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::metrics::{DeploymentLabels, ResultLabels};

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn endpoints_answer() {
        let metrics = Arc::new(Metrics::new());
        metrics
            .reconciles
            .get_or_create(&ResultLabels { result: "ok" })
            .inc();
        metrics.rollback_seconds.observe(0.25);
        let labels = DeploymentLabels {
            namespace: "packit-system".into(),
            deployment: "packit-service".into(),
        };
        metrics.next_build.get_or_create(&labels).set(1_795_000_000);
        metrics.leader.set(1);
        let ready = Arc::new(AtomicBool::new(false));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, metrics.clone(), ready.clone()));

        let body = get(addr, "/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(
            body.contains(r#"packit_reconciles_total{result="ok"} 1"#),
            "{body}"
        );
        assert!(body.contains("packit_rollback_seconds_count 1"), "{body}");
        assert!(
            body.contains(r#"packit_next_build_timestamp_seconds{namespace="packit-system",deployment="packit-service"} 1795000000"#),
            "{body}"
        );
        assert!(body.contains("\npackit_leader 1\n"), "{body}");
        assert!(
            body.contains("# HELP packit_reconcile_duration_seconds How long a reconcile took")
        );
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200 OK"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        ready.store(true, Ordering::Relaxed);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200 OK"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }
}
