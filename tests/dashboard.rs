//! `kubectl packit dashboard` in a real headless Chromium against the local
//! cluster: the train and its phases, the week's calendar with the next
//! window and a freeze, a release's changelog, the approval gate approved
//! with the page's button (and once with the plugin), a rollback clicked on
//! the page that the page then shows by itself, and a user who may only
//! read seeing the API server's refusal. Screenshots of the views are saved
//! (see `support::browser::screenshots_dir`).

mod support;

use std::process::Command;

use anyhow::{Context, Result, ensure};
use chrono::{TimeDelta, Utc};
use packit_operator::plan::ReleasePhase;
use serde_json::{Value, json};

use support::browser::{Browser, Dashboard};
use support::train::{PKD, Train};

const FREEZE: &str = "Conference freeze";

/// The admin kubeconfig of the test cluster.
fn admin() -> std::path::PathBuf {
    support::cluster().kubeconfig.clone()
}

/// A kubeconfig that impersonates `user` (the admin may impersonate).
fn impersonating(user: &str, dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let mut config: Value = serde_json::from_str(&support::kubectl(&[
        "config",
        "view",
        "--raw",
        "--flatten",
        "-o",
        "json",
    ])?)?;
    for u in config["users"].as_array_mut().context("users")? {
        u["user"]["as"] = json!(user);
    }
    let path = dir.join(format!("kubeconfig-{user}"));
    std::fs::write(&path, serde_json::to_vec(&config)?)?;
    Ok(path)
}

#[tokio::test]
async fn the_dashboard_shows_the_train_and_acts_through_the_users_kubeconfig() -> Result<()> {
    let freeze_start = Utc::now() + TimeDelta::days(2);
    let t = Train::new("dashboard", |spec| {
        spec["schedule"]["freezes"] = json!([{
            "start": freeze_start.to_rfc3339(),
            "end": (freeze_start + TimeDelta::hours(3)).to_rfc3339(),
            "reason": FREEZE,
        }]);
        spec["environments"][1]["approval"] = json!({ "required": true });
    })
    .await?;
    let ns = t.ns.name.clone();
    t.service.merge_pr(101, "dark-mode", "Add a dark mode")?;
    t.service
        .merge_pr(102, "pin-linter", "ci: pin the linter")?;

    let dashboard = Dashboard::start(&admin(), &["-n", &ns])?;
    let browser = Browser::start().await?;
    let b = &browser.client;

    // The first release waits for approval before production.
    t.release_now("first").await?;
    let first = t.in_flight().await?;
    t.build(&first).await?;
    t.wait_phase(&first, ReleasePhase::AwaitingApproval).await?;

    // Overview: the train, its phase and next window.
    b.goto(&dashboard.url).await?;
    let row = browser.wait_text("tr.train", "Waiting:production").await?;
    ensure!(row.contains(&format!("{ns}/{PKD}")), "{row}");
    let next_window = browser.wait_text("tr.train .next-window", ":").await?;
    ensure!(!next_window.contains('—'), "{next_window}");
    browser.screenshot("dashboard-overview.png").await?;

    // The train: the calendar shows the windows and the freeze.
    b.goto(&format!("{}#/train/{ns}/{PKD}", dashboard.url))
        .await?;
    browser.wait_text(".cal-item.freeze", FREEZE).await?;
    browser
        .wait_text(".cal-item.window", "Production window")
        .await?;
    browser
        .wait_text("#summary", "waiting for approval to deploy to production")
        .await?;

    // Approved with the page's button: deployed to production and released.
    browser
        .click("button[data-action=approve][data-environment=production]")
        .await?;
    browser.wait_text("#result.ok", "Approved").await?;
    let released = t.wait_phase(&first, ReleasePhase::Released).await?;
    let approval = released
        .status
        .as_ref()
        .and_then(|s| s.environments.iter().find(|e| e.name == "production"))
        .and_then(|e| e.approval.clone())
        .context("the approval is recorded on the release")?;
    ensure!(approval.reported_user.is_some(), "{approval:?}");

    // Its changelog, user-visible and internal apart, with PR numbers.
    let summary = format!("details.release[data-name=\"{first}\"] > summary");
    browser.wait_text(&summary, "Released").await?;
    browser.click(&summary).await?;
    let visible = browser
        .wait_text(".changelog .user-visible", "Add a dark mode")
        .await?;
    ensure!(
        visible.contains("#101") && !visible.contains("pin the linter"),
        "{visible}"
    );
    // Folded: read from the document, not from what is shown.
    let internal = b
        .execute(
            "return [...document.querySelectorAll('.changelog ul.internal')].map(u => u.textContent).join(' ');",
            vec![],
        )
        .await?;
    let internal = internal.as_str().unwrap_or_default();
    ensure!(
        internal.contains("#102") && internal.contains("pin the linter"),
        "{internal}"
    );
    browser.screenshot("dashboard-train.png").await?;

    // A second release, approved with the plugin, which reports who ran it.
    t.release_now("second").await?;
    let second = t.in_flight().await?;
    t.build(&second).await?;
    t.wait_phase(&second, ReleasePhase::AwaitingApproval)
        .await?;
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-packit"))
        .args(["approve", PKD, "-n", &ns])
        .env("KUBECONFIG", admin())
        .output()?;
    let said = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        said.contains(&format!("Approved {second} for production as ")),
        "{said}"
    );
    t.wait_phase(&second, ReleasePhase::Released).await?;

    // A user who may only read sees the API server refuse the rollback.
    let dir = tempfile::tempdir()?;
    t.ns.kubectl(&[
        "create",
        "role",
        "train-viewer",
        "--verb=get,list,watch",
        "--resource=packitdeployments.packit.dev,packitreleases.packit.dev",
    ])?;
    t.ns.kubectl(&[
        "create",
        "rolebinding",
        "train-viewer",
        "--role=train-viewer",
        "--user=viewer",
    ])?;
    let viewer = Dashboard::start(&impersonating("viewer", dir.path())?, &["-n", &ns])?;
    b.goto(&format!("{}#/train/{ns}/{PKD}", viewer.url)).await?;
    browser
        .wait_text(
            &format!("details.release[data-name=\"{second}\"]"),
            "Released",
        )
        .await?;
    browser.click("button[data-action=rollback]").await?;
    let refused = browser.wait_text("#result.error", "forbidden").await?;
    ensure!(
        refused.contains("User \"viewer\" cannot patch"),
        "{refused}"
    );
    ensure!(
        t.release(&second).await?.status.and_then(|s| s.phase) == Some(ReleasePhase::Released),
        "a refused rollback changed nothing"
    );

    // Rolled back from the page; the page shows it without being reloaded.
    b.goto(&format!("{}#/train/{ns}/{PKD}", dashboard.url))
        .await?;
    let second_summary = format!("details.release[data-name=\"{second}\"] > summary");
    browser.wait_text(&second_summary, "Released").await?;
    b.execute("window.__notReloaded = true;", vec![]).await?;
    browser.click("button[data-action=rollback]").await?;
    browser
        .wait_text("#result.ok", "rollback of production")
        .await?;
    t.wait_phase(&second, ReleasePhase::RolledBack).await?;
    browser.wait_text(&second_summary, "RolledBack").await?;
    let kept = b
        .execute("return window.__notReloaded === true;", vec![])
        .await?;
    ensure!(
        kept == json!(true),
        "the page was reloaded instead of updating itself"
    );
    browser
        .wait_text(".cal-item.rollback", "rolled back")
        .await?;
    browser.screenshot("dashboard-rollback.png").await?;

    // Writes need the session token of a page served by the dashboard.
    let forged = reqwest::Client::new()
        .post(format!("{}api/trains/{ns}/{PKD}/actions", dashboard.url))
        .header("content-type", "application/json")
        .body(r#"{"action": "release"}"#)
        .send()
        .await?;
    ensure!(
        forged.status() == reqwest::StatusCode::FORBIDDEN,
        "{}",
        forged.status()
    );
    let foreign = reqwest::Client::new()
        .get(format!("{}api/trains", dashboard.url))
        .header("host", "evil.example:80")
        .send()
        .await?;
    ensure!(
        foreign.status() == reqwest::StatusCode::FORBIDDEN,
        "{}",
        foreign.status()
    );
    Ok(())
}
