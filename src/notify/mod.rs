//! Release notifications: to each webhook of a deployment, in its format
//! ([`request`]): the JSON notification POSTed and signed with HMAC-SHA256
//! of a shared secret (`Generic`), or a message people read ([`format`]):
//! a Slack incoming-webhook POST, or a Matrix room message PUT under the
//! delivery id as transaction id. Each attempt is one request ([`send`]);
//! [`outbox`] keeps track of the attempts on the release, and decides when
//! to try again: while the receiver is unreachable or answers 5xx, 408 or
//! 429. Other answers are final.

pub mod format;
pub mod outbox;

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde::Serialize;

use kube::ResourceExt;

use crate::api::PackitRelease;
use crate::api::deployment::{Webhook, WebhookFormat};
use crate::api::release::{ChangelogStatus, ImageRef, NotificationDelivery, ReleaseComponent};
use crate::plan::ReleasePhase;
pub use format::Failure;
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
            | ReleasePhase::AwaitingApproval
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

/// One HTTP request of a delivery, built purely; [`send`] makes it.
#[derive(Debug)]
pub struct Request {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// The request that delivers `n` to `hook` under the delivery id `id`.
/// `secret` is the `token` of the webhook's Secret: the signing key of
/// Generic and Slack bodies, Matrix's access token. An error is final:
/// trying again builds the same request.
pub fn request(
    hook: &Webhook,
    n: &Notification,
    failure: &Failure,
    id: &str,
    secret: Option<&[u8]>,
) -> Result<Request, String> {
    use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};

    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let event = HeaderValue::from_str(&format!("{:?}", n.phase))
        .map_err(|e| format!("the event header: {e}"))?;
    headers.insert(EVENT_HEADER, event);
    let delivery = HeaderValue::from_str(id).map_err(|e| format!("the delivery id {id:?}: {e}"))?;
    headers.insert(DELIVERY_HEADER, delivery);
    let (method, url, body) = match hook.format {
        WebhookFormat::Generic => (reqwest::Method::POST, hook.url.clone(), json(n)?),
        WebhookFormat::Slack => {
            let doc = format::Document::of(n, failure);
            (
                reqwest::Method::POST,
                hook.url.clone(),
                json(&format::slack::render(&doc))?,
            )
        }
        WebhookFormat::Matrix => {
            let room = hook
                .room_id
                .as_deref()
                .ok_or("a Matrix webhook needs roomId")?;
            let token = secret.ok_or("a Matrix webhook needs secretRef (the access token)")?;
            // Secrets made from files often end in a newline.
            let token = std::str::from_utf8(token)
                .map(str::trim)
                .ok()
                .filter(|t| !t.is_empty())
                .ok_or("the access token is not text")?;
            let mut bearer = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "the access token is not a valid header value")?;
            bearer.set_sensitive(true);
            headers.insert(AUTHORIZATION, bearer);
            let doc = format::Document::of(n, failure);
            let content = format::matrix::render(&doc, hook.msgtype.unwrap_or_default());
            let url = format::matrix::send_url(&hook.url, room, id);
            return Ok(Request {
                method: reqwest::Method::PUT,
                url,
                headers,
                body: json(&content)?,
            });
        }
    };
    if let Some(secret) = secret {
        let signed = HeaderValue::from_str(&signature(secret, &body))
            .map_err(|e| format!("the signature header: {e}"))?;
        headers.insert(SIGNATURE_HEADER, signed);
    }
    Ok(Request {
        method,
        url,
        headers,
        body,
    })
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(v).map_err(|e| format!("serializing the message: {e}"))
}

/// Makes `request` once.
pub async fn send(client: &reqwest::Client, request: Request, timeout: Duration) -> Outcome {
    let shown = outbox::target(&request.url);
    let sent = client
        .request(request.method, &request.url)
        .timeout(timeout)
        .headers(request.headers)
        .body(request.body)
        .send()
        .await;
    match sent {
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
        // Approvers learn that a release waits for them.
        assert!(is_notified(ReleasePhase::AwaitingApproval));
        assert!(!is_notified(ReleasePhase::Building));
        assert!(!is_notified(ReleasePhase::AwaitingWindow));
    }

    /// One request as a receiver saw it.
    #[derive(Clone, Debug, Default)]
    struct Seen {
        method: String,
        path: String,
        /// Names lower-cased.
        headers: std::collections::BTreeMap<String, String>,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).map(String::as_str)
        }
        fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap_or_default()
        }
    }

    type Check = fn(&Seen) -> Result<(), String>;

    /// A loopback receiver: answers the requests with `script` in turn,
    /// then 200 to what `check` accepts and 400 (with the reason) to the
    /// rest, as the services answer a malformed message; returns its URL
    /// and what it saw.
    async fn receiver(script: Vec<u16>, check: Check) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let request = read(&mut s).await;
                log.lock().unwrap().push(request.clone());
                let (status, why) = match script.get(i) {
                    Some(status) => (*status, String::new()),
                    None => match check(&request) {
                        Ok(()) => (200, String::new()),
                        Err(why) => (400, why),
                    },
                };
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{why}",
                    why.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        (url, seen)
    }

    /// The request on `s`; empty when the client sent nothing.
    async fn read(s: &mut tokio::net::TcpStream) -> Seen {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return Seen::default(),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.lines();
        let mut first = lines.next().unwrap_or("").split(' ');
        let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
        let headers: std::collections::BTreeMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match s.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        Seen {
            method: method.to_owned(),
            path: path.to_owned(),
            headers,
            body: buf[head_end..].to_vec(),
        }
    }

    fn accept_all(_: &Seen) -> Result<(), String> {
        Ok(())
    }

    fn hook(url: &str, format: WebhookFormat) -> Webhook {
        Webhook {
            url: url.to_owned(),
            format,
            ..Webhook::default()
        }
    }

    /// A rollback notification and its failed checks.
    fn rolled_back() -> (Notification, Failure) {
        let (release, entry) = format::tests::rolled_back();
        (
            Notification::of(&release, "packit", &entry),
            Failure::of(&release, &entry),
        )
    }

    async fn once(hook: &Webhook, secret: Option<&[u8]>) -> Outcome {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let (n, failure) = rolled_back();
        let request = request(hook, &n, &failure, "d-1", secret).unwrap();
        send(&client, request, Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn signs_and_names_each_attempt_and_sorts_the_answers() {
        let (url, seen) = receiver(vec![503, 429, 403, 204], accept_all).await;
        let generic = hook(&url, WebhookFormat::Generic);
        assert!(matches!(
            once(&generic, Some(b"s3cret")).await,
            Outcome::Retryable(_)
        ));
        assert!(matches!(
            once(&generic, Some(b"s3cret")).await,
            Outcome::Retryable(_)
        ));
        let refused = once(&generic, None).await;
        assert!(
            matches!(&refused, Outcome::Final(why) if why.contains("403")),
            "{refused:?}"
        );
        assert_eq!(once(&generic, Some(b"s3cret")).await, Outcome::Delivered);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        // The body of before formats: the notification itself.
        let (n, _) = rolled_back();
        let body = serde_json::to_vec(&n).unwrap();
        let expected = signature(b"s3cret", &body);
        for (i, r) in seen.iter().enumerate() {
            assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
            assert_eq!(r.body, body);
            assert_eq!(r.header("x-packit-event"), Some("RolledBack"));
            assert_eq!(r.header("x-packit-delivery"), Some("d-1"));
            let signed = r.header("x-packit-signature-256") == Some(expected.as_str());
            assert_eq!(signed, i != 2, "unsigned without a secret: {r:?}");
        }
    }

    /// Slack's documented incoming-webhook shape: a JSON POST with a
    /// `text` string and `blocks` within its limits.
    fn slack_shape(r: &Seen) -> Result<(), String> {
        if r.method != "POST" {
            return Err(format!("method {}", r.method));
        }
        if r.header("content-type") != Some("application/json") {
            return Err("not JSON".into());
        }
        format::slack::tests::check_shape(&r.json())
    }

    #[tokio::test]
    async fn a_slack_webhook_gets_a_message_of_slacks_shape() {
        let (url, seen) = receiver(vec![], slack_shape).await;
        let slack = hook(&url, WebhookFormat::Slack);
        assert_eq!(once(&slack, None).await, Outcome::Delivered);
        // Optionally signed, like a Generic body.
        assert_eq!(once(&slack, Some(b"k")).await, Outcome::Delivered);
        let seen = seen.lock().unwrap();
        assert!(seen[0].header("x-packit-signature-256").is_none());
        assert_eq!(
            seen[1].header("x-packit-signature-256"),
            Some(signature(b"k", &seen[1].body).as_str())
        );
        let body = seen[0].json();
        let blocks = body["blocks"].to_string();
        assert!(blocks.contains("rolled back in production"), "{blocks}");
        assert!(
            blocks.contains("value `0.31`, bounds `max 0.05`"),
            "{blocks}"
        );
        // The receiver refuses what breaks Slack's rules.
        let mut broken = seen[0].clone();
        broken.body =
            br#"{"text":"x","blocks":[{"type":"section","text":{"type":"html","text":"x"}}]}"#
                .to_vec();
        assert!(slack_shape(&broken).is_err());
    }

    const ROOM: &str = "!room:example.org";
    const ENCODED_ROOM: &str = "%21room%3Aexample.org";

    /// The Matrix client-server API's send endpoint: a PUT to
    /// `/_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`,
    /// both percent-encoded, a Bearer token and an `m.room.message`
    /// content with HTML.
    fn matrix_shape(r: &Seen) -> Result<(), String> {
        if r.method != "PUT" {
            return Err(format!("method {}", r.method));
        }
        let rest = r
            .path
            .strip_prefix("/_matrix/client/v3/rooms/")
            .ok_or(format!("path {}", r.path))?;
        let (room, txn) = rest
            .split_once("/send/m.room.message/")
            .ok_or(format!("path {}", r.path))?;
        let encoded = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b))
        };
        if room != ENCODED_ROOM || !encoded(txn) {
            return Err(format!("room {room} txn {txn}"));
        }
        if r.header("authorization") != Some("Bearer syt_token") {
            return Err("not the access token".into());
        }
        let body = r.json();
        if !["m.notice", "m.text"].contains(&body["msgtype"].as_str().unwrap_or("")) {
            return Err("msgtype".into());
        }
        if body["format"] != "org.matrix.custom.html"
            || !body["body"].is_string()
            || !body["formatted_body"].is_string()
        {
            return Err(format!("content {body}"));
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_matrix_room_gets_one_event_per_delivery_however_often_retried() {
        let (url, seen) = receiver(vec![502], matrix_shape).await;
        let base = url.trim_end_matches("/hook");
        let matrix = Webhook {
            url: format!("{base}/"),
            format: WebhookFormat::Matrix,
            room_id: Some(ROOM.into()),
            ..Webhook::default()
        };
        // The Secret's value as `kubectl create secret --from-file` stores it.
        let token: &[u8] = b"syt_token\n";
        assert!(matches!(
            once(&matrix, Some(token)).await,
            Outcome::Retryable(_)
        ));
        assert_eq!(once(&matrix, Some(token)).await, Outcome::Delivered);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        // The delivery id is the transaction id: the retry is the same event.
        assert_eq!(seen[0].path, seen[1].path);
        assert!(seen[0].path.ends_with("/send/m.room.message/d-1"));
        assert_eq!(seen[0].body, seen[1].body);
        assert!(seen[0].header("x-packit-signature-256").is_none());
        let content = seen[1].json();
        assert_eq!(content["msgtype"], "m.notice");
        let html = content["formatted_body"].as_str().unwrap_or("");
        assert!(html.contains("<code>error-rate</code>: value <code>0.31</code>"));
        assert!(html.contains("<details><summary>3 changes not visible to end users"));
    }

    #[test]
    fn a_matrix_webhook_without_its_token_or_room_is_not_sent() {
        let (n, failure) = rolled_back();
        let mut matrix = Webhook {
            url: "https://matrix.example.org".into(),
            format: WebhookFormat::Matrix,
            room_id: Some(ROOM.into()),
            ..Webhook::default()
        };
        let why = request(&matrix, &n, &failure, "d", None).unwrap_err();
        assert!(why.contains("secretRef"), "{why}");
        let why = request(&matrix, &n, &failure, "d", Some(b"a\nb")).unwrap_err();
        assert!(why.contains("not a valid header value"), "{why}");
        matrix.room_id = None;
        let why = request(&matrix, &n, &failure, "d", Some(b"t")).unwrap_err();
        assert!(why.contains("roomId"), "{why}");
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
        match once(&hook(&url, WebhookFormat::Slack), None).await {
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
        let (url, seen) = receiver(vec![], accept_all).await;
        let client = crate::http::client(Default::default()).unwrap();
        let (n, failure) = rolled_back();
        for format in [
            WebhookFormat::Generic,
            WebhookFormat::Slack,
            WebhookFormat::Matrix,
        ] {
            let hook = Webhook {
                room_id: Some(ROOM.into()),
                ..hook(url.trim_end_matches("/hook"), format)
            };
            let request = request(&hook, &n, &failure, "d-1", Some(b"t")).unwrap();
            let outcome = send(&client, request, Duration::from_secs(5)).await;
            let Outcome::Final(why) = outcome else {
                panic!("{outcome:?}");
            };
            assert!(why.contains("is refused: a loopback address"), "{why}");
            assert!(
                why.contains("--allow-cidrs") && why.contains("not retried"),
                "{why}"
            );
        }
        // Connected to and dropped, without a byte of the request.
        assert!(seen.lock().unwrap().iter().all(|r| r.method.is_empty()));
    }
}
