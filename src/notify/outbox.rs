//! The outbox of a release's notifications, kept in the release's status:
//! an entry per notification and webhook, written before the first attempt
//! and updated after each, so that a restart resumes what is pending. Pure:
//! time is a parameter, the attempts themselves are made elsewhere.

use std::borrow::Cow;

use chrono::{DateTime, TimeDelta, Utc};
use sha2::Digest;

use super::Retry;
use crate::api::deployment::{Webhook, WebhookFormat};
use crate::api::release::{DeliveryState, NotificationDelivery};
use crate::plan::ReleasePhase;

/// Entries kept per release (the schema's bound): a release reaches a few
/// notified phases, times at most eight webhooks.
pub const MAX_ENTRIES: usize = 32;
/// Bounds of what an entry stores, well within an object's size.
const MAX_MESSAGE_BYTES: usize = 2048;
const MAX_ERROR_BYTES: usize = 512;

/// A phase a release reached, to be told to every webhook.
pub struct Reached<'a> {
    pub namespace: &'a str,
    pub release: &'a str,
    pub phase: ReleasePhase,
    pub environment: Option<&'a str>,
    pub message: &'a str,
    pub at: DateTime<Utc>,
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accepted (2xx).
    Delivered,
    /// Worth trying again: unreachable, 5xx, 408 or 429.
    Retryable(String),
    /// Trying again would not help: another answer, or no way to sign.
    Final(String),
}

/// One pending entry per webhook for `reached`.
pub fn entries(webhooks: &[Webhook], reached: &Reached<'_>) -> Vec<NotificationDelivery> {
    webhooks
        .iter()
        .enumerate()
        .map(|(i, hook)| NotificationDelivery {
            id: delivery_id(reached, i, &destination(hook)),
            webhook: u32::try_from(i).unwrap_or(u32::MAX),
            target: target(&hook.url),
            url_digest: url_digest(&destination(hook)),
            phase: reached.phase,
            environment: reached.environment.map(str::to_owned),
            message: truncate(reached.message, MAX_MESSAGE_BYTES),
            at: reached.at,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: Some(reached.at),
            last_error: None,
        })
        .collect()
}

/// Derived from everything that makes the notification and its webhook
/// distinct, so it is unique per pair and never changes once stored.
fn delivery_id(r: &Reached<'_>, webhook: usize, url: &str) -> String {
    let key = format!(
        "{}\0{}\0{:?}\0{}\0{}\0{webhook}\0{url}",
        r.namespace,
        r.release,
        r.phase,
        r.environment.unwrap_or(""),
        r.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    );
    hex(&sha2::Sha256::digest(key.as_bytes())[..16])
}

/// A short digest of a webhook URL, to notice that the webhook at an index
/// changed without storing its URL.
pub fn url_digest(url: &str) -> String {
    hex(&sha2::Sha256::digest(url.as_bytes())[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `scheme://host[:port]` of `url`, without user info: paths and queries
/// of webhook URLs often carry the secret.
pub fn target(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(unparsable URL)".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}")
}

/// The webhook `entry` was meant for, if the spec still has it.
pub fn webhook_of<'a>(
    webhooks: &'a [Webhook],
    entry: &NotificationDelivery,
) -> Option<&'a Webhook> {
    let at_index = usize::try_from(entry.webhook)
        .ok()
        .and_then(|i| webhooks.get(i));
    at_index
        .into_iter()
        .chain(webhooks)
        .find(|h| url_digest(&destination(h)) == entry.url_digest)
}

/// What makes a webhook's receiver: its URL, and for Matrix the room too
/// (one homeserver, many rooms). Generic and Slack webhooks keep the bare
/// URL, so entries stored before formats existed still find theirs.
fn destination(hook: &Webhook) -> Cow<'_, str> {
    match (hook.format, &hook.room_id) {
        // A Matrix URL has no fragment, so `#` cannot be part of it.
        (WebhookFormat::Matrix, Some(room)) => Cow::Owned(format!("{}#{room}", hook.url)),
        _ => Cow::Borrowed(&hook.url),
    }
}

/// Adds what is not there yet (an entry of the same id is the same
/// notification), then keeps the list within bounds.
pub fn enqueue(list: &mut Vec<NotificationDelivery>, new: Vec<NotificationDelivery>) {
    for entry in new {
        if !list.iter().any(|e| e.id == entry.id) {
            list.push(entry);
        }
    }
    bound(list);
}

/// Drops the oldest finished entries beyond [`MAX_ENTRIES`], and only when
/// there are no finished ones left, the oldest pending ones.
pub fn bound(list: &mut Vec<NotificationDelivery>) {
    while list.len() > MAX_ENTRIES {
        let oldest = |pending: bool| {
            list.iter()
                .enumerate()
                .filter(|(_, e)| (e.state == DeliveryState::Pending) == pending)
                .min_by_key(|(_, e)| e.at)
                .map(|(i, _)| i)
        };
        match oldest(false).or_else(|| oldest(true)) {
            Some(i) => {
                list.remove(i);
            }
            None => break,
        }
    }
}

/// Whether an attempt of `entry` is due at `now`.
pub fn is_due(entry: &NotificationDelivery, now: DateTime<Utc>) -> bool {
    entry.state == DeliveryState::Pending && entry.next_attempt_at.is_none_or(|t| t <= now)
}

/// The earliest instant an attempt is due among `entries`.
pub fn next_due<'a>(
    entries: impl IntoIterator<Item = &'a NotificationDelivery>,
) -> Option<DateTime<Utc>> {
    entries
        .into_iter()
        .filter(|e| e.state == DeliveryState::Pending)
        .map(|e| e.next_attempt_at.unwrap_or(e.at))
        .min()
}

/// Records an attempt made at `now`; returns whether the entry is finished
/// now (delivered or given up).
pub fn record(
    entry: &mut NotificationDelivery,
    outcome: Outcome,
    now: DateTime<Utc>,
    retry: &Retry,
) -> bool {
    entry.attempts = entry.attempts.saturating_add(1);
    match outcome {
        Outcome::Delivered => {
            entry.state = DeliveryState::Delivered;
            entry.next_attempt_at = None;
            entry.last_error = None;
        }
        Outcome::Retryable(why) if entry.attempts < retry.attempts => {
            let wait = TimeDelta::from_std(retry.delay(entry.attempts)).unwrap_or(TimeDelta::MAX);
            entry.next_attempt_at = Some(now.checked_add_signed(wait).unwrap_or(now));
            entry.last_error = Some(truncate(&why, MAX_ERROR_BYTES));
        }
        Outcome::Retryable(why) | Outcome::Final(why) => {
            entry.state = DeliveryState::Failed;
            entry.next_attempt_at = None;
            entry.last_error = Some(truncate(&why, MAX_ERROR_BYTES));
        }
    }
    entry.state != DeliveryState::Pending
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap() + TimeDelta::seconds(s)
    }

    fn hooks() -> Vec<Webhook> {
        [
            "https://bot:s3cret@hooks.example.com/T0/B0/XYZ?token=abc",
            "http://10.0.0.1:8080/h",
        ]
        .iter()
        .map(|u| Webhook {
            url: (*u).to_owned(),
            secret_ref: None,
            ..Webhook::default()
        })
        .collect()
    }

    fn reached(phase: ReleasePhase, t: i64) -> Reached<'static> {
        Reached {
            namespace: "ns",
            release: "train-1",
            phase,
            environment: Some("staging"),
            message: "deployed",
            at: at(t),
        }
    }

    fn retry() -> Retry {
        Retry {
            attempts: 3,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn one_entry_per_webhook_with_ids_stable_and_distinct_and_no_secret() {
        let a = entries(&hooks(), &reached(ReleasePhase::Staging, 0));
        let again = entries(&hooks(), &reached(ReleasePhase::Staging, 0));
        assert_eq!(a, again, "the same notification gets the same ids");
        assert_eq!(a.len(), 2);
        assert_ne!(a[0].id, a[1].id);
        let later = entries(&hooks(), &reached(ReleasePhase::Staging, 1));
        assert_ne!(a[0].id, later[0].id, "reaching the phase again is new");
        let stored = serde_json::to_string(&a).unwrap();
        for secret in ["s3cret", "XYZ", "abc", "bot"] {
            assert!(!stored.contains(secret), "{stored}");
        }
        assert_eq!(a[0].target, "https://hooks.example.com");
        assert_eq!(a[1].target, "http://10.0.0.1:8080");
        assert!(is_due(&a[0], at(0)));
    }

    #[test]
    fn backs_off_then_gives_up_and_a_final_answer_ends_at_once() {
        let mut e = entries(&hooks(), &reached(ReleasePhase::Staging, 0)).remove(0);
        assert!(!record(
            &mut e,
            Outcome::Retryable("503".into()),
            at(0),
            &retry()
        ));
        assert_eq!(e.next_attempt_at, Some(at(2)));
        assert!(!is_due(&e, at(1)));
        assert!(is_due(&e, at(2)));
        assert!(!record(
            &mut e,
            Outcome::Retryable("503".into()),
            at(2),
            &retry()
        ));
        assert_eq!(e.next_attempt_at, Some(at(6)));
        assert!(record(
            &mut e,
            Outcome::Retryable("503".into()),
            at(6),
            &retry()
        ));
        assert_eq!((e.state, e.attempts), (DeliveryState::Failed, 3));
        assert!(!is_due(&e, at(100)));

        let mut e = entries(&hooks(), &reached(ReleasePhase::Staging, 0)).remove(0);
        assert!(record(
            &mut e,
            Outcome::Final("403".into()),
            at(0),
            &retry()
        ));
        assert_eq!(e.state, DeliveryState::Failed);
        let mut e = entries(&hooks(), &reached(ReleasePhase::Staging, 0)).remove(0);
        record(&mut e, Outcome::Retryable("down".into()), at(0), &retry());
        assert!(record(&mut e, Outcome::Delivered, at(2), &retry()));
        assert_eq!(
            (e.state, e.attempts, e.last_error),
            (DeliveryState::Delivered, 2, None)
        );
    }

    #[test]
    fn the_earliest_pending_attempt_is_next() {
        let mut list = entries(&hooks(), &reached(ReleasePhase::Staging, 0));
        record(
            &mut list[0],
            Outcome::Retryable("x".into()),
            at(0),
            &retry(),
        );
        record(
            &mut list[1],
            Outcome::Retryable("x".into()),
            at(0),
            &retry(),
        );
        record(
            &mut list[1],
            Outcome::Retryable("x".into()),
            at(2),
            &retry(),
        );
        assert_eq!(next_due(&list), Some(at(2)));
        record(&mut list[0], Outcome::Delivered, at(2), &retry());
        assert_eq!(next_due(&list), Some(at(6)));
        record(&mut list[1], Outcome::Delivered, at(6), &retry());
        assert_eq!(next_due(&list), None);
    }

    #[test]
    fn enqueueing_twice_adds_nothing_and_the_oldest_finished_make_room() {
        let mut list = Vec::new();
        enqueue(
            &mut list,
            entries(&hooks(), &reached(ReleasePhase::Staging, 0)),
        );
        enqueue(
            &mut list,
            entries(&hooks(), &reached(ReleasePhase::Staging, 0)),
        );
        assert_eq!(list.len(), 2);
        let first = list[0].id.clone();
        record(&mut list[1], Outcome::Delivered, at(0), &retry());
        let finished = list[1].id.clone();
        for t in 1..=15 {
            enqueue(
                &mut list,
                entries(&hooks(), &reached(ReleasePhase::Production, t)),
            );
        }
        assert_eq!(list.len(), MAX_ENTRIES);
        let one = &hooks()[..1];
        enqueue(
            &mut list,
            entries(one, &reached(ReleasePhase::Released, 16)),
        );
        assert_eq!(list.len(), MAX_ENTRIES);
        assert!(list.iter().any(|e| e.id == first), "pending stays");
        assert!(
            !list.iter().any(|e| e.id == finished),
            "finished goes first"
        );
    }

    #[test]
    fn a_changed_webhook_is_not_sent_the_old_ones_notification() {
        let e = entries(&hooks(), &reached(ReleasePhase::Staging, 0)).remove(1);
        assert_eq!(
            webhook_of(&hooks(), &e).map(|h| h.url.as_str()),
            Some("http://10.0.0.1:8080/h")
        );
        let mut moved = hooks();
        moved.reverse();
        assert_eq!(
            webhook_of(&moved, &e).map(|h| h.url.as_str()),
            Some("http://10.0.0.1:8080/h")
        );
        moved.retain(|h| !h.url.contains("10.0.0.1"));
        assert!(webhook_of(&moved, &e).is_none());
    }

    #[test]
    fn a_matrix_webhook_is_its_homeserver_and_room() {
        let room = |id: &str| Webhook {
            url: "https://matrix.example.org".into(),
            format: WebhookFormat::Matrix,
            room_id: Some(id.into()),
            ..Webhook::default()
        };
        let hooks = [room("!a:example.org")];
        let e = entries(&hooks, &reached(ReleasePhase::Staging, 0)).remove(0);
        let other = entries(
            &[room("!b:example.org")],
            &reached(ReleasePhase::Staging, 0),
        );
        assert_ne!(e.id, other[0].id);
        assert_eq!(e.target, "https://matrix.example.org");
        assert!(webhook_of(&hooks, &e).is_some());
        assert!(webhook_of(&[room("!b:example.org")], &e).is_none());
        // A Generic webhook's digest is that of its URL, as before formats.
        let generic = entries(&self::hooks(), &reached(ReleasePhase::Staging, 0));
        assert_eq!(generic[1].url_digest, url_digest("http://10.0.0.1:8080/h"));
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let long = "é".repeat(5000);
        let mut r = reached(ReleasePhase::Failed, 0);
        r.message = &long;
        let e = entries(&hooks(), &r).remove(0);
        assert!(e.message.len() <= MAX_MESSAGE_BYTES + "…".len());
        assert!(e.message.ends_with('…'));
    }

    proptest! {
        #[test]
        fn the_outbox_stays_bounded_and_keeps_pending_entries_first(
            steps in proptest::collection::vec((0u8..4, 0usize..40, 0i64..100_000), 0..120)
        ) {
            let mut list: Vec<NotificationDelivery> = Vec::new();
            for (step, pick, t) in steps {
                match step {
                    0 | 1 => {
                        let pending: Vec<String> = list
                            .iter()
                            .filter(|e| e.state == DeliveryState::Pending)
                            .map(|e| e.id.clone())
                            .collect();
                        let phase = ReleasePhase::ALL[pick % ReleasePhase::ALL.len()];
                        enqueue(&mut list, entries(&hooks(), &reached(phase, t)));
                        // A pending entry goes only when nothing finished is left.
                        if pending.iter().any(|id| !list.iter().any(|e| &e.id == id)) {
                            prop_assert!(list.iter().all(|e| e.state == DeliveryState::Pending));
                        }
                    }
                    2 => if let Some(e) = list.get_mut(pick) {
                        record(e, Outcome::Delivered, at(t), &retry());
                    },
                    _ => if let Some(e) = list.get_mut(pick) {
                        record(e, Outcome::Retryable("x".into()), at(t), &retry());
                    },
                }
                prop_assert!(list.len() <= MAX_ENTRIES);
                if let Some(next) = next_due(&list) {
                    prop_assert!(list.iter().any(|e| is_due(e, next)));
                }
            }
        }
    }
}
