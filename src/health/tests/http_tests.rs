//! The prober against a small HTTP/1.1 server on 127.0.0.1 that answers
//! with whatever status the test sets, or never answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::api::deployment::HttpCheck;
use crate::health::HttpProber;
use crate::http::AddressPolicy;
use crate::plan::HttpHealth;

/// Status 0: read the request and never answer.
const HANG: u16 = 0;

struct Server {
    url: String,
    status: Arc<AtomicU16>,
    requests: Arc<AtomicUsize>,
}

impl Server {
    async fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/healthz", listener.local_addr().unwrap());
        let server = Self {
            url,
            status: Arc::new(AtomicU16::new(status)),
            requests: Arc::new(AtomicUsize::new(0)),
        };
        let (status, requests) = (server.status.clone(), server.requests.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, status.clone(), requests.clone()));
            }
        });
        server
    }

    fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn check(&self, interval: &str) -> HttpCheck {
        HttpCheck {
            url: self.url.clone(),
            interval: interval.into(),
            failure_threshold: 3,
        }
    }
}

async fn answer(mut stream: TcpStream, status: Arc<AtomicU16>, requests: Arc<AtomicUsize>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        // A TLS handshake record: answer in plain HTTP, as servers do.
        if request.first() == Some(&0x16) {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            return;
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let status = status.load(Ordering::SeqCst);
    if status == HANG {
        // Hold the connection open until the client gives up.
        let _ = stream.read(&mut buf).await;
        return;
    }
    let response =
        format!("HTTP/1.1 {status} Whatever\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The tests' servers listen on loopback, which the operator refuses
/// unless opened.
fn loopback_open() -> Arc<AddressPolicy> {
    Arc::new(AddressPolicy {
        allow: crate::http::parse_cidrs("127.0.0.0/8").unwrap(),
        ..AddressPolicy::default()
    })
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap() + TimeDelta::seconds(seconds)
}

fn failures(report: &[HttpHealth]) -> Vec<u32> {
    report.iter().map(|h| h.consecutive_failures).collect()
}

#[tokio::test]
async fn success_reports_no_failures() {
    let server = Server::start(200).await;
    let prober = HttpProber::new(loopback_open()).unwrap();
    let report = prober.probe_due("env", &[server.check("30s")], at(0)).await;
    assert_eq!(
        report,
        [HttpHealth {
            url: server.url.clone(),
            consecutive_failures: 0,
            last_error: None,
        }]
    );
    assert_eq!(server.requests(), 1);
    // Any 2xx is a success.
    server.set(204);
    let report = prober
        .probe_due("env", &[server.check("30s")], at(30))
        .await;
    assert_eq!(failures(&report), [0]);
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn errors_count_up_and_a_success_resets() {
    let server = Server::start(500).await;
    let prober = HttpProber::new(loopback_open()).unwrap();
    let check = [server.check("30s")];
    let mut seen = Vec::new();
    for i in 0..3 {
        seen.extend(failures(&prober.probe_due("env", &check, at(30 * i)).await));
    }
    // Not only 5xx: every non-2xx status fails.
    server.set(404);
    seen.extend(failures(&prober.probe_due("env", &check, at(90)).await));
    server.set(200);
    seen.extend(failures(&prober.probe_due("env", &check, at(120)).await));
    server.set(503);
    seen.extend(failures(&prober.probe_due("env", &check, at(150)).await));
    assert_eq!(seen, [1, 2, 3, 4, 0, 1]);
    assert_eq!(server.requests(), 6);
}

#[tokio::test]
async fn interval_is_respected() {
    let server = Server::start(500).await;
    let prober = HttpProber::new(loopback_open()).unwrap();
    let check = [server.check("1m")];
    assert_eq!(failures(&prober.probe_due("env", &check, at(0)).await), [1]);
    // Not due yet: no request, the last count is reported.
    assert_eq!(failures(&prober.probe_due("env", &check, at(1)).await), [1]);
    assert_eq!(
        failures(&prober.probe_due("env", &check, at(59)).await),
        [1]
    );
    assert_eq!(server.requests(), 1);
    // Due exactly one interval after the last probe.
    assert_eq!(
        failures(&prober.probe_due("env", &check, at(60)).await),
        [2]
    );
    assert_eq!(server.requests(), 2);
    // The next one counts from that probe, not from the first.
    assert_eq!(
        failures(&prober.probe_due("env", &check, at(100)).await),
        [2]
    );
    assert_eq!(
        failures(&prober.probe_due("env", &check, at(120)).await),
        [3]
    );
    assert_eq!(server.requests(), 3);
    // A clock that went back does not stall the checks.
    assert_eq!(
        failures(&prober.probe_due("env", &check, at(10)).await),
        [4]
    );
    assert_eq!(server.requests(), 4);
}

#[tokio::test]
async fn checks_have_their_own_intervals() {
    let fast = Server::start(500).await;
    let slow = Server::start(500).await;
    let prober = HttpProber::new(loopback_open()).unwrap();
    let checks = [fast.check("10s"), slow.check("1m")];
    assert_eq!(
        failures(&prober.probe_due("env", &checks, at(0)).await),
        [1, 1]
    );
    assert_eq!(
        failures(&prober.probe_due("env", &checks, at(10)).await),
        [2, 1]
    );
    assert_eq!(
        failures(&prober.probe_due("env", &checks, at(20)).await),
        [3, 1]
    );
    assert_eq!(
        failures(&prober.probe_due("env", &checks, at(60)).await),
        [4, 2]
    );
    assert_eq!((fast.requests(), slow.requests()), (4, 2));
}

#[tokio::test]
async fn a_timeout_is_a_failure() {
    let server = Server::start(HANG).await;
    let prober = HttpProber::new(loopback_open()).unwrap();
    // The timeout is the interval (1s) here, below the 10s cap.
    let report = prober.probe_due("env", &[server.check("1s")], at(0)).await;
    assert_eq!(failures(&report), [1]);
    server.set(200);
    let report = prober.probe_due("env", &[server.check("1s")], at(1)).await;
    assert_eq!(failures(&report), [0]);
}

#[tokio::test]
async fn a_refused_connection_is_a_failure() {
    // A port that was free a moment ago and now has no listener.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/healthz", listener.local_addr().unwrap());
    drop(listener);
    let check = HttpCheck {
        url,
        interval: "30s".into(),
        failure_threshold: 3,
    };
    let prober = HttpProber::new(loopback_open()).unwrap();
    let check = [check];
    assert_eq!(failures(&prober.probe_due("env", &check, at(0)).await), [1]);
    assert_eq!(
        failures(&prober.probe_due("env", &check, at(30)).await),
        [2]
    );
}

#[tokio::test]
async fn a_refused_address_is_a_failure_that_says_so_and_sends_nothing() {
    let server = Server::start(200).await;
    let prober = HttpProber::new(Arc::new(AddressPolicy::default())).unwrap();
    let report = prober.probe_due("env", &[server.check("30s")], at(0)).await;
    assert_eq!(failures(&report), [1]);
    let why = report[0].last_error.as_deref().unwrap_or_default();
    assert!(why.contains("is refused: a loopback address"), "{why}");
    assert!(why.contains("--allow-cidrs"), "{why}");
    assert_eq!(server.requests(), 0);

    let open = HttpProber::new(loopback_open()).unwrap();
    let report = open.probe_due("env", &[server.check("30s")], at(0)).await;
    assert_eq!(
        (failures(&report), report[0].last_error.clone()),
        (vec![0], None)
    );
}

#[tokio::test]
async fn keys_are_independent_and_reset_forgets_one() {
    let server = Server::start(500).await;
    let prober = HttpProber::new(loopback_open()).unwrap();
    let check = [server.check("30s")];
    prober.probe_due("staging", &check, at(0)).await;
    prober.probe_due("staging", &check, at(30)).await;
    assert_eq!(
        failures(&prober.probe_due("production", &check, at(30)).await),
        [1]
    );

    prober.reset("staging");
    // Forgotten: the count starts over and the check is due at once.
    assert_eq!(
        failures(&prober.probe_due("staging", &check, at(31)).await),
        [1]
    );
    assert_eq!(
        failures(&prober.probe_due("production", &check, at(31)).await),
        [1]
    );
    assert_eq!(server.requests(), 4);
}

#[tokio::test]
async fn removed_checks_are_forgotten() {
    let a = Server::start(500).await;
    let b = Server::start(500).await;
    let prober = HttpProber::new(loopback_open()).unwrap();
    prober
        .probe_due("env", &[a.check("30s"), b.check("30s")], at(0))
        .await;
    // Only b is configured now: a's count is dropped.
    assert_eq!(
        failures(&prober.probe_due("env", &[b.check("30s")], at(30)).await),
        [2]
    );
    // a comes back from zero.
    let report = prober
        .probe_due("env", &[a.check("30s"), b.check("30s")], at(31))
        .await;
    assert_eq!(failures(&report), [1, 2]);
}

#[tokio::test]
async fn https_to_a_server_without_tls_is_a_failure() {
    // Exercises the TLS set-up (ring provider, platform verifier): the
    // handshake fails against a plain HTTP server.
    let server = Server::start(200).await;
    let check = HttpCheck {
        url: server.url.replace("http://", "https://"),
        ..server.check("30s")
    };
    let prober = HttpProber::new(loopback_open()).unwrap();
    assert_eq!(
        failures(&prober.probe_due("env", &[check], at(0)).await),
        [1]
    );
}

#[tokio::test]
async fn no_checks_no_report() {
    let prober = HttpProber::new(loopback_open()).unwrap();
    assert!(prober.probe_due("env", &[], at(0)).await.is_empty());
}
