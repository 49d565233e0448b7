//! The changelog on the release and the webhook notifications that carry
//! it, end to end: two releases through staging and production, with pull
//! requests merged between them, and a receiver on loopback that fails the
//! first delivery; a notification still pending when the operator is
//! killed, delivered after its restart under the same delivery id; and
//! Slack and Matrix webhooks getting messages of their services' shape,
//! a production rollback's among them.

mod support;

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use packit_operator::api::release::{DeliveryState, NotificationDelivery};
use packit_operator::notify::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature};
use packit_operator::plan::ReleasePhase;
use serde_json::{Value, json};

use support::eventually;
use support::train::{TIMEOUT, Train};
use support::webhook::{Received, Receiver};

const TOKEN: &[u8] = b"webhook-signing-token";

/// The notifications the receiver accepted for `release`, by phase.
fn accepted(receiver: &Receiver, release: &str) -> BTreeMap<String, Received> {
    receiver
        .received()
        .into_iter()
        .filter(|r| r.status == 200)
        .filter(|r| r.json().is_ok_and(|j| j["release"] == release))
        .filter_map(|r| Some((r.header(EVENT_HEADER)?.to_owned(), r)))
        .collect()
}

#[tokio::test]
async fn releases_carry_their_changelog_to_a_signed_webhook() -> Result<()> {
    // The first delivery attempt is answered 503: it must be retried.
    let receiver = Receiver::start(&[503]).await?;
    let url = receiver.url.clone();
    let t = Train::new("notify", |spec| {
        spec["changelog"] = json!({
            "webhooks": [{ "url": url, "secretRef": { "name": "hook" } }],
            "rules": [{ "pattern": "^Polish ", "visibility": "Internal" }]
        });
    })
    .await?;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("hook".into()),
            ..Default::default()
        },
        data: Some([("token".to_owned(), ByteString(TOKEN.to_vec()))].into()),
        ..Default::default()
    };
    t.ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await?;

    let (first, _) = t.full_release("first").await?;
    let log = t
        .release(&first)
        .await?
        .status
        .and_then(|s| s.changelog)
        .context("first changelog")?;
    ensure!(
        log.markdown
            .contains("first release: there is no earlier production release"),
        "{}",
        log.markdown
    );
    ensure!(log.errors.is_empty(), "{:?}", log.errors);

    // Between the releases: a user-visible PR, a CI change, a change the
    // spec's rule makes internal, and a direct push (by `full_release`).
    t.service.merge_pr(101, "feature-x", "Add feature X")?;
    t.service
        .squash_pr(102, "ci: run the tests on every pull request")?;
    t.service.squash_pr(103, "Polish the logs")?;
    let first_service = t.service.head()?;
    let (second, _) = t.full_release("second").await?;

    let stored = t
        .release(&second)
        .await?
        .status
        .and_then(|s| s.changelog)
        .context("second changelog")?;
    ensure!(stored.errors.is_empty(), "{:?}", stored.errors);
    let service = &stored.repositories[0];
    let released = t.release(&first).await?;
    let previous = &released.spec.components[0].source.commit;
    assert_eq!(&service.from, previous, "compared with the first release");
    assert_ne!(
        service.to, first_service,
        "the direct push is in the release"
    );
    let numbers = |list: &[packit_operator::changelog::Entry]| -> Vec<u64> {
        list.iter().filter_map(|e| e.pr).collect()
    };
    assert_eq!(numbers(&service.user), [101]);
    assert_eq!(numbers(&service.internal), [102, 103]);
    assert_eq!(service.direct.len(), 1);
    assert_eq!(service.direct[0].title, "service: second");
    assert!(
        service.user[0].commits.is_empty(),
        "branch commits are not stored"
    );
    let worker = &stored.repositories[1];
    assert_eq!(worker.direct[0].title, "worker: second");
    let (user_part, internal_part) = stored
        .markdown
        .split_once("### Changes not visible to end users")
        .context("internal section")?;
    ensure!(
        user_part.contains("Add feature X (#101)"),
        "{}",
        stored.markdown
    );
    ensure!(internal_part.contains("#102") && internal_part.contains("#103"));

    // Every notification of the second release arrives, signed, with the
    // stored changelog.
    let phases = eventually("the second release's notifications", TIMEOUT, || async {
        let got = accepted(&receiver, &second);
        ensure!(got.len() == 3, "{:?}", got.keys().collect::<Vec<_>>());
        Ok(Some(got))
    })
    .await?;
    let names: Vec<&str> = phases.keys().map(String::as_str).collect();
    assert_eq!(names, ["Production", "Released", "Staging"]);
    for (phase, r) in &phases {
        assert_eq!(
            r.header(SIGNATURE_HEADER),
            Some(signature(TOKEN, &r.body).as_str()),
            "{phase}"
        );
        let body: Value = r.json()?;
        assert_eq!(body["deployment"], "train");
        assert_eq!(body["changelog"]["markdown"], stored.markdown.as_str());
        assert_eq!(body["changelog"]["repositories"][0]["user"][0]["pr"], 101);
    }
    assert_eq!(phases["Staging"].json()?["environment"], "staging");
    assert_eq!(phases["Production"].json()?["environment"], "production");

    // The very first delivery was refused and retried under the same id.
    let all = receiver.received();
    assert_eq!(all[0].status, 503);
    assert_eq!(all[1].status, 200);
    assert_eq!(
        all[0].header(DELIVERY_HEADER),
        all[1].header(DELIVERY_HEADER)
    );
    t.assert_event("NotificationSent", &[&first, "Staging", "2 attempt(s)"])
        .await?;
    t.assert_event("ChangelogWritten", &[&second]).await?;
    eventually("six deliveries counted", TIMEOUT, || async {
        let metrics = t.op.get("/metrics").await?;
        ensure!(
            metrics.contains(r#"packit_notifications_total{result="delivered"} 6"#),
            "{metrics}"
        );
        Ok(Some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_missing_signing_secret_is_an_event_and_the_release_goes_on() -> Result<()> {
    let receiver = Receiver::start(&[]).await?;
    let url = receiver.url.clone();
    let t = Train::new("notify-nosecret", |spec| {
        spec["changelog"] =
            json!({ "webhooks": [{ "url": url, "secretRef": { "name": "absent" } }] });
    })
    .await?;
    let (name, _) = t.full_release("first").await?;
    t.assert_event(
        "NotificationFailed",
        &[&name, "Staging", "Secret \"absent\" not found"],
    )
    .await?;
    // Nothing unsigned went out.
    assert!(receiver.received().is_empty());
    Ok(())
}

/// The outbox entry of `release` for `phase`, once `ready` holds for it.
async fn entry(
    t: &Train,
    release: &str,
    phase: ReleasePhase,
    ready: impl Fn(&NotificationDelivery) -> bool,
) -> Result<NotificationDelivery> {
    let what = format!("{release}'s {phase:?} notification in its outbox");
    eventually(&what, TIMEOUT, || async {
        let rel = t.release(release).await?;
        Ok(rel
            .status
            .into_iter()
            .flat_map(|s| s.notifications)
            .find(|e| e.phase == phase)
            .filter(|e| ready(e)))
    })
    .await
}

#[tokio::test]
async fn a_pending_notification_survives_a_crash_under_the_same_delivery_id() -> Result<()> {
    let receiver = Receiver::start(&[]).await?;
    receiver.answer(503);
    let url = receiver.url.clone();
    let mut t = Train::new("notify-outbox", |spec| {
        spec["changelog"] = json!({ "webhooks": [{ "url": url }] });
    })
    .await?;
    t.release_now("first").await?;
    let name = t.in_flight().await?;
    t.build(&name).await?;
    let pending = entry(&t, &name, ReleasePhase::Staging, |e| {
        e.state == DeliveryState::Pending && e.attempts >= 2
    })
    .await?;
    t.op.kill();
    let staging = |r: &Received| r.header(EVENT_HEADER) == Some("Staging");
    let refused: Vec<Received> = receiver.received().into_iter().filter(staging).collect();
    ensure!(refused.len() >= 2, "{refused:?}");
    for r in &refused {
        assert_eq!(r.status, 503);
        assert_eq!(r.header(DELIVERY_HEADER), Some(pending.id.as_str()));
    }

    // The receiver recovers while no operator runs; the next one resumes.
    receiver.answer(200);
    t.op.restart()?;
    let delivered = eventually(
        "the Staging notification after the restart",
        TIMEOUT,
        || async {
            Ok(receiver
                .received()
                .into_iter()
                .find(|r| staging(r) && r.status == 200))
        },
    )
    .await?;
    assert_eq!(delivered.header(DELIVERY_HEADER), Some(pending.id.as_str()));
    assert_eq!(delivered.body, refused[0].body, "the same notification");
    let done = entry(&t, &name, ReleasePhase::Staging, |e| {
        e.state == DeliveryState::Delivered
    })
    .await?;
    ensure!(done.attempts > pending.attempts, "{done:?}");
    assert_eq!(done.id, pending.id);
    t.assert_event("NotificationSent", &[&name, "Staging"])
        .await?;
    // Once delivered, never again.
    let sent = receiver
        .received()
        .into_iter()
        .filter(|r| staging(r) && r.status == 200)
        .count();
    assert_eq!(sent, 1);
    Ok(())
}

/// Slack's documented incoming-webhook shape: `text` a string, `blocks`
/// at most 50 objects of known types, text objects `mrkdwn` or
/// `plain_text` within their lengths (headers 150, fields 2000, the rest
/// 3000 characters).
fn slack_shape(r: &Received) -> Result<Value> {
    ensure!(r.method == "POST", "method {}", r.method);
    ensure!(r.header("content-type") == Some("application/json"));
    let body: Value = r.json()?;
    let text = body["text"].as_str().context("text")?;
    ensure!(!text.is_empty() && text.chars().count() <= 3000, "text");
    let blocks = body["blocks"].as_array().context("blocks")?;
    ensure!(
        !blocks.is_empty() && blocks.len() <= 50,
        "{} blocks",
        blocks.len()
    );
    let text_object = |t: &Value, max: usize| -> Result<()> {
        let kind = t["type"].as_str().unwrap_or("");
        let s = t["text"].as_str().context("a text object's text")?;
        ensure!(["mrkdwn", "plain_text"].contains(&kind), "text type {kind}");
        ensure!(
            !s.is_empty() && s.chars().count() <= max,
            "{kind} of {}",
            s.len()
        );
        Ok(())
    };
    for b in blocks {
        match b["type"].as_str().unwrap_or("") {
            "header" => text_object(&b["text"], 150)?,
            "section" => match b.get("fields").and_then(Value::as_array) {
                Some(fields) => {
                    ensure!(fields.len() <= 10);
                    for f in fields {
                        text_object(f, 2000)?;
                    }
                }
                None => text_object(&b["text"], 3000)?,
            },
            "context" => {
                for e in b["elements"].as_array().context("elements")? {
                    text_object(e, 3000)?;
                }
            }
            "divider" => {}
            other => anyhow::bail!("block type {other:?}"),
        }
    }
    Ok(body)
}

const ROOM: &str = "!packit:example.org";

/// Matrix's send endpoint: `PUT /_matrix/client/v3/rooms/{roomId}/send/
/// m.room.message/{txnId}` (both percent-encoded), the access token as a
/// Bearer, and an `m.room.message` content with HTML. Returns the txn id
/// and the content.
fn matrix_shape(r: &Received) -> Result<(String, Value)> {
    ensure!(r.method == "PUT", "method {}", r.method);
    let rest = r
        .path
        .strip_prefix("/_matrix/client/v3/rooms/%21packit%3Aexample.org/send/m.room.message/")
        .with_context(|| format!("path {}", r.path))?;
    ensure!(
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
        "txn id {rest}"
    );
    ensure!(r.header("authorization") == Some("Bearer syt_matrix_token"));
    let body: Value = r.json()?;
    ensure!(body["msgtype"] == "m.notice", "{body}");
    ensure!(body["format"] == "org.matrix.custom.html", "{body}");
    ensure!(body["body"].is_string() && body["formatted_body"].is_string());
    Ok((rest.to_owned(), body))
}

#[tokio::test]
async fn slack_and_matrix_get_messages_people_read_and_a_rollback_says_why() -> Result<()> {
    let slack = Receiver::start(&[]).await?;
    // The first Matrix attempt fails: the retry is the same transaction.
    let matrix = Receiver::start(&[502]).await?;
    let slack_url = slack.url.clone();
    let homeserver = matrix.url.trim_end_matches("/hooks/packit").to_owned();
    let t = Train::new("notify-chat", |spec| {
        spec["changelog"] = json!({
            "webhooks": [
                { "url": slack_url, "format": "Slack" },
                { "url": homeserver, "format": "Matrix", "roomId": ROOM,
                  "secretRef": { "name": "matrix-bot" } },
            ],
        });
    })
    .await?;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("matrix-bot".into()),
            ..Default::default()
        },
        data: Some(
            [(
                "token".to_owned(),
                ByteString(b"syt_matrix_token\n".to_vec()),
            )]
            .into(),
        ),
        ..Default::default()
    };
    t.ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await?;

    let (first, _) = t.full_release("first").await?;
    t.service.merge_pr(201, "feature-y", "Add feature Y")?;
    t.service.squash_pr(202, "ci: cache the dependencies")?;
    t.release_now("second").await?;
    let second = t.in_flight().await?;
    let images = t.build(&second).await?;
    t.wait_phase(&second, ReleasePhase::Production).await?;
    // The new production pods crash-loop: production rolls back. Until
    // the Deployment names the new image, its rollout is the old one.
    eventually("production to run the second release", TIMEOUT, || async {
        Ok((t.images("prod").await?.0 == images["service"]).then_some(()))
    })
    .await?;
    let deployments = t.ns.api::<k8s_openapi::api::apps::v1::Deployment>();
    support::wait_for(
        &deployments,
        "service-prod",
        "the production rollout",
        TIMEOUT,
        support::workloads::deployment_rolled_out,
    )
    .await?;
    t.break_pods("service-prod").await?;
    t.wait_phase(&second, ReleasePhase::RolledBack).await?;

    let slack_messages = eventually("the Slack messages", TIMEOUT, || async {
        let got: Vec<Received> = slack.received();
        ensure!(got.len() >= 6, "{} so far", got.len());
        Ok(Some(got))
    })
    .await?;
    let mut by_phase: BTreeMap<(String, String), Value> = BTreeMap::new();
    for r in &slack_messages {
        let body = slack_shape(r)?;
        let text = body["blocks"].to_string();
        let release = if text.contains(&second) {
            &second
        } else {
            &first
        };
        let phase = r.header(EVENT_HEADER).context("event header")?.to_owned();
        by_phase.insert((release.clone(), phase), body);
    }
    let rolled_back = by_phase
        .get(&(second.clone(), "RolledBack".into()))
        .context("the RolledBack message on Slack")?;
    let blocks = rolled_back["blocks"].to_string();
    for expected in [
        "rolled back in production",
        "*Why*",
        "restarts",
        "Add feature Y (#201)",
    ] {
        ensure!(blocks.contains(expected), "{expected:?} in {blocks}");
    }
    // The CI change and the direct push of `release_now`, folded.
    ensure!(
        blocks.contains(
            "2 changes not visible to end users:* ci: cache the dependencies (#202) · service: second ("
        ),
        "{blocks}"
    );
    ensure!(by_phase.contains_key(&(first.clone(), "Released".into())));

    // Matrix: one event per notification, the retried one under the same
    // transaction id, which is the outbox's delivery id.
    let events = eventually("the Matrix events", TIMEOUT, || async {
        let got: Vec<Received> = matrix.received();
        ensure!(
            got.iter().filter(|r| r.status == 200).count() >= 6,
            "{} so far",
            got.len()
        );
        Ok(Some(got))
    })
    .await?;
    ensure!(events[0].status == 502 && events[0].path == events[1].path);
    let released = t.release(&second).await?;
    let rolled_entry = released
        .status
        .iter()
        .flat_map(|s| &s.notifications)
        .find(|e| e.phase == ReleasePhase::RolledBack && e.webhook == 1)
        .context("the RolledBack entry of the Matrix webhook")?;
    let mut found = false;
    for r in events.iter().filter(|r| r.status == 200) {
        let (txn, content) = matrix_shape(r)?;
        ensure!(r.header(DELIVERY_HEADER) == Some(txn.as_str()));
        if txn == rolled_entry.id {
            let html = content["formatted_body"].as_str().unwrap_or_default();
            for expected in [
                "rolled back in production</h4>",
                "<p><strong>Why</strong></p><blockquote>",
                "restarts",
                "Add feature Y (#201)",
                "<details><summary>2 changes not visible to end users</summary><ul><li>ci: cache the dependencies (#202)</li><li>service: second (",
            ] {
                ensure!(html.contains(expected), "{expected:?} in {html}");
            }
            found = true;
        }
    }
    ensure!(found, "no Matrix event under {}", rolled_entry.id);
    Ok(())
}
