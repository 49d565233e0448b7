//! Release notifications: a JSON body POSTed to each webhook of a
//! deployment, signed with HMAC-SHA256 of a shared secret, and retried with
//! exponential backoff while the receiver is unreachable or answers 5xx,
//! 408 or 429. Other answers are final.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde::Serialize;

use crate::api::release::{ChangelogStatus, ImageRef, ReleaseComponent};
use crate::plan::ReleasePhase;

/// `sha256=<hex HMAC-SHA256 of the body>`, with the webhook Secret's `token`
/// as key (GitHub's convention, so existing receivers can check it).
pub const SIGNATURE_HEADER: &str = "X-Packit-Signature-256";
/// The phase the notification reports.
pub const EVENT_HEADER: &str = "X-Packit-Event";
/// The same for every attempt of one notification, so a receiver can drop
/// duplicates.
pub const DELIVERY_HEADER: &str = "X-Packit-Delivery";

/// What a webhook receives when a release reaches an environment, is
/// released, or fails.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub phase: ReleasePhase,
    pub namespace: String,
    pub deployment: String,
    pub release: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub message: String,
    pub at: DateTime<Utc>,
    pub components: Vec<ReleaseComponent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<std::collections::BTreeMap<String, ImageRef>>,
    /// The changelog since the previous production release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changelog: Option<ChangelogStatus>,
}

impl Notification {
    /// Identifies this notification across retries.
    pub fn delivery_id(&self) -> String {
        let env = self.environment.as_deref().unwrap_or("-");
        format!("{}/{}/{env}/{:?}", self.namespace, self.release, self.phase)
    }
}

/// The phases people are told about.
pub fn is_notified(phase: ReleasePhase) -> bool {
    matches!(
        phase,
        ReleasePhase::Staging
            | ReleasePhase::Production
            | ReleasePhase::Released
            | ReleasePhase::StagingFailed
            | ReleasePhase::RolledBack
            | ReleasePhase::Failed
    )
}

/// The signature header's value for `body`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// How often and how patiently a notification is retried.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Per attempt.
    pub timeout: Duration,
}

impl Default for Retry {
    /// Six attempts over about a minute.
    fn default() -> Self {
        Retry {
            attempts: 6,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Retry {
    /// The wait after failed attempt `n` (1-based): doubling from
    /// `first_delay`, at most `max_delay`.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Why a notification was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{url}: answered {status} after {attempts} attempt(s)")]
    Status {
        url: String,
        status: reqwest::StatusCode,
        attempts: u32,
    },
    #[error("{url}: {detail} after {attempts} attempt(s)")]
    Unreachable {
        url: String,
        detail: String,
        attempts: u32,
    },
    /// The receiver's address may not be connected to; retrying cannot
    /// change that.
    #[error("{url}: {refused}; not retried")]
    Refused {
        url: String,
        refused: crate::http::Refused,
    },
}

/// POSTs `body` to `url` until it is accepted (2xx) or the answer is final;
/// returns the number of attempts it took.
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    secret: Option<&[u8]>,
    n: &Notification,
    body: &[u8],
    retry: &Retry,
) -> Result<u32, DeliveryError> {
    let shown = crate::redact::redact_url(url);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut request = client
            .post(url)
            .timeout(retry.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, format!("{:?}", n.phase))
            .header(DELIVERY_HEADER, n.delivery_id())
            .body(body.to_vec());
        if let Some(secret) = secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, body));
        }
        let error = match request.send().await {
            Ok(r) if r.status().is_success() => return Ok(attempt),
            Ok(r) => {
                let status = r.status();
                let retried = status.is_server_error()
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                let error = DeliveryError::Status {
                    url: shown.clone(),
                    status,
                    attempts: attempt,
                };
                if !retried {
                    return Err(error);
                }
                error
            }
            Err(e) => {
                if let Some(refused) = crate::http::refusal(&e) {
                    return Err(DeliveryError::Refused {
                        url: shown,
                        refused: refused.clone(),
                    });
                }
                DeliveryError::Unreachable {
                    url: shown.clone(),
                    detail: error_chain(&e),
                    attempts: attempt,
                }
            }
        };
        if attempt >= retry.attempts {
            return Err(error);
        }
        tracing::debug!(%error, "notification not delivered yet; retrying");
        tokio::time::sleep(retry.delay(attempt)).await;
    }
}

/// reqwest's top-level message ("error sending request") hides the cause.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn signs_like_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let r = Retry {
            attempts: 10,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(1),
        };
        let delays: Vec<u64> = (1..=6).map(|n| r.delay(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 30, 30]);
        assert_eq!(r.delay(100), Duration::from_secs(30));
    }

    #[test]
    fn notified_phases() {
        assert!(is_notified(ReleasePhase::Staging));
        assert!(is_notified(ReleasePhase::RolledBack));
        assert!(!is_notified(ReleasePhase::Building));
        assert!(!is_notified(ReleasePhase::AwaitingWindow));
    }

    fn notification() -> Notification {
        Notification {
            phase: ReleasePhase::Staging,
            namespace: "ns".into(),
            deployment: "d".into(),
            release: "r".into(),
            environment: Some("staging".into()),
            message: "deployed".into(),
            at: DateTime::UNIX_EPOCH,
            components: vec![],
            images: None,
            changelog: None,
        }
    }

    /// A loopback receiver answering with `statuses` in turn (the last one
    /// repeats); returns its URL and the request heads it saw.
    async fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0; 65536];
                let n = s.read(&mut buf).await.unwrap_or(0);
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let status = statuses[i.min(statuses.len() - 1)];
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        (url, seen)
    }

    fn quick() -> Retry {
        Retry {
            attempts: 3,
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn retries_server_errors_and_signs_every_attempt() {
        let (url, seen) = receiver(vec![503, 500, 204]).await;
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let n = notification();
        let attempts = deliver(&client, &url, Some(b"s3cret"), &n, b"{}", &quick())
            .await
            .unwrap();
        assert_eq!(attempts, 3);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        let expected = signature(b"s3cret", b"{}");
        for head in seen.iter() {
            let lower = head.to_ascii_lowercase();
            assert!(
                lower.contains(&format!("x-packit-signature-256: {expected}")),
                "{head}"
            );
            assert!(lower.contains("x-packit-event: staging"), "{head}");
            assert!(
                lower.contains("x-packit-delivery: ns/r/staging/staging"),
                "{head}"
            );
        }
    }

    #[tokio::test]
    async fn gives_up_after_the_last_attempt_and_at_once_on_a_client_error() {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let n = notification();
        let (url, seen) = receiver(vec![500]).await;
        let e = deliver(&client, &url, None, &n, b"{}", &quick())
            .await
            .unwrap_err();
        assert!(
            matches!(e, DeliveryError::Status { attempts: 3, .. }),
            "{e}"
        );
        assert_eq!(seen.lock().unwrap().len(), 3);
        // Unsigned when there is no secret.
        assert!(
            !seen.lock().unwrap()[0]
                .to_ascii_lowercase()
                .contains("signature")
        );

        let (url, seen) = receiver(vec![403]).await;
        let e = deliver(&client, &url, None, &n, b"{}", &quick())
            .await
            .unwrap_err();
        assert!(
            matches!(e, DeliveryError::Status { attempts: 1, .. }),
            "{e}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1);

        // Nothing listens on the port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = deliver(
            &client,
            &format!("http://127.0.0.1:{port}/"),
            None,
            &n,
            b"{}",
            &quick(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, DeliveryError::Unreachable { attempts: 3, .. }),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_refused_address_is_given_up_at_once_and_receives_nothing() {
        let (url, seen) = receiver(vec![204]).await;
        let client = crate::http::client(Default::default()).unwrap();
        let e = deliver(&client, &url, None, &notification(), b"{}", &quick())
            .await
            .unwrap_err();
        assert!(matches!(e, DeliveryError::Refused { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("is refused: a loopback address"), "{text}");
        assert!(text.contains("--allow-cidrs"), "{text}");
        // Connected to and dropped, without a byte of the request.
        assert!(seen.lock().unwrap().iter().all(String::is_empty));
    }
}
