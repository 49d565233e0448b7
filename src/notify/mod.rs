//! Release notifications: a JSON body POSTed to each webhook of a
//! deployment, signed with HMAC-SHA256 of a shared secret. Each attempt is
//! one request; [`outbox`] keeps track of the attempts on the release, and
//! decides when to try again: while the receiver is unreachable or answers
//! 5xx, 408 or 429. Other answers are final.

pub mod outbox;

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde::Serialize;

use kube::ResourceExt;

use crate::api::PackitRelease;
use crate::api::release::{ChangelogStatus, ImageRef, NotificationDelivery, ReleaseComponent};
use crate::plan::ReleasePhase;
pub use outbox::Outcome;

/// `sha256=<hex HMAC-SHA256 of the body>`, with the webhook Secret's `token`
/// as key (GitHub's convention, so existing receivers can check it).
pub const SIGNATURE_HEADER: &str = "X-Packit-Signature-256";
/// The phase the notification reports.
pub const EVENT_HEADER: &str = "X-Packit-Event";
/// The same on every attempt of one notification to one webhook, across
/// restarts too (it is stored in the outbox), so a receiver can drop
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
    /// The notification an outbox entry of `release` stands for: the same
    /// body on every attempt, rebuilt from the release.
    pub fn of(
        release: &PackitRelease,
        namespace: &str,
        entry: &NotificationDelivery,
    ) -> Notification {
        Notification {
            phase: entry.phase,
            namespace: namespace.to_owned(),
            deployment: release.spec.deployment.clone(),
            release: release.name_any(),
            environment: entry.environment.clone(),
            message: entry.message.clone(),
            at: entry.at,
            components: release.spec.components.clone(),
            images: release.spec.images.clone(),
            changelog: release.status.as_ref().and_then(|s| s.changelog.clone()),
        }
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

/// POSTs `body` to `url` once, under the delivery id `id`.
pub async fn attempt(
    client: &reqwest::Client,
    url: &str,
    secret: Option<&[u8]>,
    phase: ReleasePhase,
    id: &str,
    body: &[u8],
    timeout: Duration,
) -> Outcome {
    let shown = outbox::target(url);
    let mut request = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_HEADER, format!("{phase:?}"))
        .header(DELIVERY_HEADER, id)
        .body(body.to_vec());
    if let Some(secret) = secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, body));
    }
    match request.send().await {
        Ok(r) if r.status().is_success() => Outcome::Delivered,
        Ok(r) => {
            let status = r.status();
            let why = format!("{shown}: answered {status}");
            let retried = status.is_server_error()
                || status == reqwest::StatusCode::REQUEST_TIMEOUT
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
            if retried {
                Outcome::Retryable(why)
            } else {
                Outcome::Final(why)
            }
        }
        // The receiver's address may not be connected to: retrying cannot
        // change that.
        Err(e) if crate::http::refusal(&e).is_some() => {
            let refused = crate::http::refusal(&e).map(ToString::to_string);
            Outcome::Final(format!(
                "{shown}: {}; not retried",
                refused.unwrap_or_default()
            ))
        }
        // Without the URL: its path or query may carry the secret.
        Err(e) => Outcome::Retryable(format!("{shown}: {}", error_chain(&e.without_url()))),
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

    async fn once(url: &str, secret: Option<&[u8]>) -> Outcome {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let timeout = Duration::from_secs(5);
        attempt(
            &client,
            url,
            secret,
            ReleasePhase::Staging,
            "d-1",
            b"{}",
            timeout,
        )
        .await
    }

    #[tokio::test]
    async fn signs_and_names_each_attempt_and_sorts_the_answers() {
        let (url, seen) = receiver(vec![503, 429, 403, 204]).await;
        assert!(matches!(
            once(&url, Some(b"s3cret")).await,
            Outcome::Retryable(_)
        ));
        assert!(matches!(
            once(&url, Some(b"s3cret")).await,
            Outcome::Retryable(_)
        ));
        let refused = once(&url, None).await;
        assert!(
            matches!(&refused, Outcome::Final(why) if why.contains("403")),
            "{refused:?}"
        );
        assert_eq!(once(&url, Some(b"s3cret")).await, Outcome::Delivered);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        let expected = signature(b"s3cret", b"{}");
        for (i, head) in seen.iter().enumerate() {
            let lower = head.to_ascii_lowercase();
            assert!(lower.contains("x-packit-event: staging"), "{head}");
            assert!(lower.contains("x-packit-delivery: d-1"), "{head}");
            let signed = lower.contains(&format!("x-packit-signature-256: {expected}"));
            assert_eq!(signed, i != 2, "unsigned without a secret: {head}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_receiver_is_retried_and_its_url_path_not_shown() {
        // Nothing listens on the port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://u:pw@127.0.0.1:{port}/secret-path?token=t0k");
        match once(&url, None).await {
            Outcome::Retryable(why) => {
                assert!(
                    why.starts_with(&format!("http://127.0.0.1:{port}")),
                    "{why}"
                );
                for secret in ["pw", "secret-path", "t0k"] {
                    assert!(!why.contains(secret), "{why}");
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_refused_address_is_final_and_receives_nothing() {
        let (url, seen) = receiver(vec![204]).await;
        let client = crate::http::client(Default::default()).unwrap();
        let outcome = attempt(
            &client,
            &url,
            None,
            ReleasePhase::Staging,
            "d-1",
            b"{}",
            Duration::from_secs(5),
        )
        .await;
        let Outcome::Final(why) = outcome else {
            panic!("{outcome:?}");
        };
        assert!(why.contains("is refused: a loopback address"), "{why}");
        assert!(
            why.contains("--allow-cidrs") && why.contains("not retried"),
            "{why}"
        );
        // Connected to and dropped, without a byte of the request.
        assert!(seen.lock().unwrap().iter().all(String::is_empty));
    }
}
