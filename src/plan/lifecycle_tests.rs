//! The lifecycle, scripted with pinned dates in Europe/Prague. The example
//! train builds on Fridays at 18:00, soaks staging for 1h, and deploys
//! production in the window Sunday 23:00 + 4h (soak 2h).

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Europe::Prague;

use super::sim::{Sim, events, moves, phases};
use super::*;
use crate::api::PackitDeploymentSpec;
use crate::api::deployment::Freeze;

fn prague(mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Prague
        .with_ymd_and_hms(2026, mo, d, h, mi, 0)
        .single()
        .expect("unambiguous")
        .with_timezone(&Utc)
}

/// The example without freezes and HTTP checks, so requeue instants are
/// the lifecycle's own (HTTP checks wake the planner every interval).
fn spec() -> PackitDeploymentSpec {
    let mut spec = crate::api::tests::example().spec;
    spec.schedule.freezes.clear();
    for env in &mut spec.environments {
        env.health.http_checks.clear();
    }
    spec
}

fn release_name(at: DateTime<Utc>) -> String {
    format!("pkd-{}", at.format("%Y%m%d-%H%M%S"))
}

/// Runs one week of the train from its Friday build to the production
/// deploy at Sunday 23:00.
fn to_production(sim: &mut Sim, friday: u32, sunday: u32) -> String {
    let month = 11;
    let d = sim.at(prague(month, friday, 18, 0));
    let release = release_name(prague(month, friday, 18, 0));
    assert_eq!(
        moves(&d.actions),
        [("build", String::new(), release.clone())]
    );
    sim.finish_build(BuildResult::Succeeded);
    let d = sim.at(prague(month, friday, 18, 20));
    assert_eq!(
        moves(&d.actions),
        [("deploy", "staging".into(), release.clone())]
    );
    sim.healthy();
    sim.at(prague(month, friday, 18, 30));
    let d = sim.at(prague(month, friday, 19, 30));
    assert!(phases(&d.actions).contains(&(release.clone(), ReleasePhase::AwaitingWindow)));
    assert_eq!(d.requeue_at, Some(prague(month, sunday, 23, 0)));
    let d = sim.at(prague(month, sunday, 23, 0));
    assert_eq!(
        moves(&d.actions),
        [("deploy", "production".into(), release.clone())]
    );
    release
}

/// Builds at 18:00 on the given day and verifies staging by 19:10 (the
/// soak is 1h); the release then waits for the production window.
fn to_awaiting_window(sim: &mut Sim, month: u32, day: u32) -> String {
    sim.at(prague(month, day, 18, 0));
    let release = sim.release();
    sim.finish_build(BuildResult::Succeeded);
    sim.at(prague(month, day, 18, 5));
    sim.healthy();
    sim.at(prague(month, day, 18, 10));
    sim.at(prague(month, day, 19, 10));
    release
}

/// The deploys among some actions, with their causes.
fn deploys(actions: &[Action]) -> Vec<(String, String, DeployCause)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deploy {
                environment,
                release,
                cause,
                ..
            } => Some((environment.clone(), release.clone(), *cause)),
            _ => None,
        })
        .collect()
}

/// Runs a week up to production rolled out at 23:10, soaking.
fn run_week(sim: &mut Sim, friday: u32, sunday: u32) -> String {
    let release = to_production(sim, friday, sunday);
    sim.healthy();
    sim.at(prague(11, sunday, 23, 10));
    release
}

#[test]
fn a_whole_train_from_friday_build_to_monday_release() {
    let mut sim = Sim::new(spec(), prague(11, 18, 12, 0));
    let d = sim.decide();
    assert_eq!(d.next_build, Some(prague(11, 20, 18, 0)));
    assert_eq!(d.next_window, Some(prague(11, 22, 23, 0)));
    assert_eq!(d.requeue_at, Some(prague(11, 20, 18, 0)));
    assert!(d.actions.is_empty());

    // Nothing happens before the build slot.
    assert!(sim.at(prague(11, 20, 17, 59)).actions.is_empty());

    let release = run_week(&mut sim, 20, 22);
    // Not released until the production soak (2h) has passed.
    let d = sim.at(prague(11, 23, 1, 0));
    assert!(moves(&d.actions).is_empty());
    assert_eq!(d.requeue_at, Some(prague(11, 23, 1, 10)));
    let d = sim.at(prague(11, 23, 1, 10));
    assert!(phases(&d.actions).contains(&(release.clone(), ReleasePhase::Released)));
    assert_eq!(sim.in_flight(), None);
    assert_eq!(
        sim.env("production").release.as_deref(),
        Some(release.as_str())
    );
    assert_eq!(
        sim.env("production").verified,
        std::slice::from_ref(&release)
    );
    assert_eq!(sim.env("staging").verified, [release]);
    assert_eq!(d.phase, "Idle");
    assert_eq!(d.next_build, Some(prague(11, 27, 18, 0)));
}

fn released_twice() -> (Sim, String, String) {
    let mut sim = Sim::new(spec(), prague(11, 18, 12, 0));
    let first = run_week(&mut sim, 20, 22);
    sim.at(prague(11, 23, 1, 10));
    let second = run_week(&mut sim, 27, 29);
    (sim, first, second)
}

#[test]
fn production_failing_during_soak_rolls_every_target_back() {
    let (mut sim, first, second) = released_twice();
    // Rolled out fine, then a worker crash-loops during the soak.
    sim.report(Rollout::Complete, 5);
    let d = sim.at(prague(11, 30, 0, 30));
    let rollback = d.actions.iter().find_map(|a| match a {
        Action::Rollback {
            environment,
            from,
            to,
            targets,
            cause,
        } => Some((environment, from, to, targets, cause)),
        _ => None,
    });
    let (env, from, to, targets, cause) = rollback.expect("a rollback");
    assert_eq!((env.as_str(), to), ("production", &first));
    assert_eq!(from.as_deref(), Some(second.as_str()));
    assert_eq!(
        targets, &sim.spec.environments[1].targets,
        "every target of the environment"
    );
    assert!(
        matches!(cause, RollbackCause::Automatic(r) if r.contains("5 container restarts (limit 2)"))
    );
    assert!(phases(&d.actions).contains(&(second.clone(), ReleasePhase::RolledBack)));
    assert!(
        events(&d.actions)
            .iter()
            .any(|(r, m)| *r == reasons::ROLLED_BACK && m.contains(&first))
    );
    assert_eq!(
        sim.env("production").release.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(sim.in_flight(), None);
}

#[test]
fn progress_deadline_exceeded_fails_the_rollout() {
    let (mut sim, first, second) = released_twice();
    sim.report(Rollout::Failed("ProgressDeadlineExceeded".into()), 0);
    let d = sim.at(prague(11, 29, 23, 15));
    assert_eq!(
        moves(&d.actions),
        [("rollback", "production".into(), first)]
    );
    assert!(phases(&d.actions).contains(&(second, ReleasePhase::RolledBack)));
}

#[test]
fn a_rollout_that_never_completes_times_out() {
    let mut sim = Sim::new(spec(), prague(11, 18, 12, 0));
    let first = run_week(&mut sim, 20, 22);
    sim.at(prague(11, 23, 1, 10));
    to_production(&mut sim, 27, 29);
    sim.report(Rollout::Progressing, 0);
    let d = sim.at(prague(11, 29, 23, 19));
    assert!(moves(&d.actions).is_empty());
    assert_eq!(d.requeue_at, Some(prague(11, 29, 23, 20)));
    let d = sim.at(prague(11, 29, 23, 20));
    assert_eq!(
        moves(&d.actions),
        [("rollback", "production".into(), first)]
    );
}

#[test]
fn staging_failure_rolls_staging_back_and_fails_the_release() {
    let mut sim = Sim::new(spec(), prague(11, 18, 12, 0));
    let first = run_week(&mut sim, 20, 22);
    sim.at(prague(11, 23, 1, 10));
    sim.at(prague(11, 27, 18, 0));
    let second = sim.release();
    sim.finish_build(BuildResult::Succeeded);
    sim.at(prague(11, 27, 18, 5));
    sim.report(Rollout::Complete, 0);
    sim.at(prague(11, 27, 18, 10));
    // A failure during the staging soak.
    sim.report(Rollout::Failed("pod not ready".into()), 0);
    let d = sim.at(prague(11, 27, 18, 40));
    assert_eq!(
        moves(&d.actions),
        [("rollback", "staging".into(), first.clone())]
    );
    assert!(phases(&d.actions).contains(&(second, ReleasePhase::StagingFailed)));
    // Production is untouched and stays on the first release.
    assert_eq!(
        sim.env("production").release.as_deref(),
        Some(first.as_str())
    );
    assert!(moves(&sim.at(prague(11, 29, 23, 30)).actions).is_empty());
}

#[test]
fn the_first_release_failing_has_nothing_to_roll_back_to() {
    let mut sim = Sim::new(spec(), prague(11, 18, 12, 0));
    sim.at(prague(11, 20, 18, 0));
    let r = sim.release();
    sim.finish_build(BuildResult::Succeeded);
    sim.at(prague(11, 20, 18, 5));
    sim.report(Rollout::Failed("ProgressDeadlineExceeded".into()), 0);
    let d = sim.at(prague(11, 20, 18, 10));
    assert!(moves(&d.actions).is_empty());
    assert!(phases(&d.actions).contains(&(r, ReleasePhase::StagingFailed)));
}

#[test]
fn http_checks_are_polled_and_fail_at_their_threshold() {
    let mut spec = spec();
    spec.environments[1].health.http_checks = crate::api::tests::example().spec.environments[1]
        .health
        .http_checks
        .clone();
    let mut sim = Sim::new(spec, prague(11, 18, 12, 0));
    let first = run_week(&mut sim, 20, 22);
    sim.at(prague(11, 23, 1, 10));
    run_week(&mut sim, 27, 29);
    let d = sim.at(prague(11, 29, 23, 20));
    assert_eq!(
        d.requeue_at,
        Some(prague(11, 29, 23, 20) + TimeDelta::seconds(30))
    );
    let url = "https://prod.packit.dev/api/healthz/".to_owned();
    for (failures, rolls_back) in [(2, false), (3, true)] {
        if let Some(h) = &mut sim.observed.health {
            h.http = vec![HttpHealth {
                url: url.clone(),
                consecutive_failures: failures,
                last_error: Some("answered 503 Service Unavailable".into()),
            }];
        }
        let d = sim.at(sim.now + TimeDelta::seconds(30));
        assert_eq!(
            !moves(&d.actions).is_empty(),
            rolls_back,
            "{failures} failures"
        );
        if rolls_back {
            assert_eq!(
                moves(&d.actions),
                [("rollback", "production".into(), first.clone())]
            );
            // The last probe's failure is part of the verdict.
            let said = format!("{url} failed 3 checks in a row (last: answered 503");
            assert!(
                events(&d.actions).iter().any(|(_, m)| m.contains(&said)),
                "{:?}",
                events(&d.actions)
            );
        }
    }
}

#[test]
fn a_failed_or_timed_out_build_ends_the_release() {
    let mut sim = Sim::new(spec(), prague(11, 18, 12, 0));
    sim.at(prague(11, 20, 18, 0));
    let r = sim.release();
    sim.finish_build(BuildResult::Failed("BackoffLimitExceeded".into()));
    let d = sim.at(prague(11, 20, 18, 10));
    assert_eq!(phases(&d.actions), [(r, ReleasePhase::BuildFailed)]);
    assert!(
        events(&d.actions)
            .iter()
            .any(|(_, m)| m.contains("BackoffLimitExceeded"))
    );

    // The longest component timeout is 2h.
    sim.at(prague(11, 27, 18, 0));
    let r = sim.release();
    assert!(sim.at(prague(11, 27, 19, 59)).actions.is_empty());
    let d = sim.at(prague(11, 27, 20, 0));
    assert_eq!(phases(&d.actions), [(r, ReleasePhase::BuildFailed)]);
    assert!(
        events(&d.actions)
            .iter()
            .any(|(_, m)| m.contains("did not finish within 2h"))
    );
}

#[test]
fn manual_rollback_now_restores_the_previous_good_release() {
    let (mut sim, first, second) = released_twice();
    sim.healthy();
    sim.at(prague(11, 30, 1, 10));
    assert_eq!(
        sim.env("production").release.as_deref(),
        Some(second.as_str())
    );
    sim.observed.requests.rollback = Some(RollbackRequest {
        id: "r1".into(),
        requested_at: prague(11, 30, 9, 0),
        environment: "production".into(),
        to: None,
        at: None,
    });
    let d = sim.at(prague(11, 30, 9, 0));
    assert_eq!(
        moves(&d.actions),
        [("rollback", "production".into(), first.clone())]
    );
    assert!(phases(&d.actions).contains(&(second, ReleasePhase::RolledBack)));
    // Handled once: planning again does nothing.
    assert!(sim.at(prague(11, 30, 9, 1)).actions.is_empty());
}

#[test]
fn a_rollback_for_monday_happens_on_monday_not_before() {
    let (mut sim, first, _) = released_twice();
    sim.healthy();
    sim.at(prague(11, 30, 1, 10));
    let monday = prague(11, 30, 9, 0);
    sim.observed.requests.rollback = Some(RollbackRequest {
        id: "r-monday".into(),
        requested_at: prague(11, 30, 2, 0),
        environment: "production".into(),
        to: Some(first.clone()),
        at: Some(monday),
    });
    let d = sim.at(prague(11, 30, 2, 0));
    assert!(moves(&d.actions).is_empty());
    // The window closing comes first; then Monday's rollback.
    assert_eq!(d.requeue_at, Some(prague(11, 30, 3, 0)));
    let closed = sim.at(prague(11, 30, 3, 0));
    assert!(moves(&closed.actions).is_empty());
    assert_eq!(closed.requeue_at, Some(monday));
    assert!(
        events(&d.actions)
            .iter()
            .any(|(r, _)| *r == reasons::ROLLBACK_SCHEDULED)
    );
    assert!(moves(&sim.at(monday - TimeDelta::seconds(1)).actions).is_empty());
    let d = sim.at(monday);
    assert_eq!(
        moves(&d.actions),
        [("rollback", "production".into(), first)]
    );
    assert!(sim.state.scheduled_rollbacks.is_empty());
    assert!(moves(&sim.at(monday + TimeDelta::minutes(1)).actions).is_empty());
}

#[test]
fn a_rollback_to_a_release_never_healthy_there_is_rejected() {
    let (mut sim, _, second) = released_twice();
    sim.healthy();
    sim.at(prague(11, 30, 1, 10));
    for (to, why) in [
        ("pkd-nope", "never verified healthy"),
        (second.as_str(), "already runs"),
    ] {
        sim.observed.requests.rollback = Some(RollbackRequest {
            id: format!("r-{to}"),
            requested_at: sim.now,
            environment: "production".into(),
            to: Some(to.into()),
            at: None,
        });
        let d = sim.at(sim.now + TimeDelta::minutes(1));
        assert!(moves(&d.actions).is_empty());
        assert!(
            events(&d.actions)
                .iter()
                .any(|(r, m)| *r == reasons::ROLLBACK_REJECTED && m.contains(why)),
            "{:?}",
            events(&d.actions)
        );
    }
}

#[test]
fn promote_now_skips_the_window_but_not_staging() {
    let mut sim = Sim::new(spec(), prague(11, 18, 12, 0));
    sim.at(prague(11, 20, 18, 0));
    let r = sim.release();
    sim.finish_build(BuildResult::Succeeded);
    sim.at(prague(11, 20, 18, 5));
    sim.observed.requests.promote = Some(PromoteRequest {
        id: "p1".into(),
        requested_at: prague(11, 20, 18, 6),
        force: false,
    });
    sim.healthy();
    let d = sim.at(prague(11, 20, 18, 6));
    assert!(moves(&d.actions).is_empty(), "waits for staging");
    // Staging verified at 19:06 -> production right away, on a Friday.
    let d = sim.at(prague(11, 20, 19, 6));
    assert_eq!(
        deploys(&d.actions),
        [("production".into(), r, DeployCause::Promoted)]
    );
}

#[test]
fn forced_promotion_deploys_before_staging_passed_and_says_so() {
    let mut sim = Sim::new(spec(), prague(11, 18, 12, 0));
    sim.at(prague(11, 20, 18, 0));
    sim.finish_build(BuildResult::Succeeded);
    sim.at(prague(11, 20, 18, 5));
    sim.observed.requests.promote = Some(PromoteRequest {
        id: "p1".into(),
        requested_at: prague(11, 20, 18, 6),
        force: true,
    });
    let d = sim.at(prague(11, 20, 18, 6));
    let cause = d.actions.iter().find_map(|a| match a {
        Action::Deploy {
            environment, cause, ..
        } if environment == "production" => Some(*cause),
        _ => None,
    });
    assert_eq!(cause, Some(DeployCause::Forced));
}

#[test]
fn a_freeze_blocks_the_production_deploy_but_not_a_rollback() {
    let mut spec = spec();
    spec.schedule.freezes = vec![Freeze {
        start: prague(11, 29, 12, 0),
        end: prague(12, 2, 0, 0),
        reason: "conference".into(),
    }];
    let mut sim = Sim::new(spec, prague(11, 18, 12, 0));
    let first = run_week(&mut sim, 20, 22);
    sim.at(prague(11, 23, 1, 10));
    // Second week: built and verified on staging, then frozen over Sunday.
    let second = to_awaiting_window(&mut sim, 11, 27);
    let d = sim.at(prague(11, 29, 23, 0));
    assert!(
        moves(&d.actions).is_empty(),
        "frozen window: {:?}",
        d.actions
    );
    assert!(
        sim.in_flight()
            .unwrap()
            .message
            .as_deref()
            .unwrap()
            .contains("conference")
    );
    // Nothing to do until the frozen window closes, then until the next
    // build (the window after the freeze is later).
    assert_eq!(d.requeue_at, Some(prague(11, 30, 3, 0)));
    let d = sim.at(prague(11, 30, 3, 0));
    assert!(moves(&d.actions).is_empty());
    assert_eq!(d.next_window, Some(prague(12, 6, 23, 0)));
    assert_eq!(d.requeue_at, Some(prague(12, 4, 18, 0)));

    // A person's rollback of staging still happens during the freeze.
    sim.observed.requests.rollback = Some(RollbackRequest {
        id: "r1".into(),
        requested_at: prague(11, 30, 9, 0),
        environment: "staging".into(),
        to: None,
        at: None,
    });
    let d = sim.at(prague(11, 30, 9, 0));
    assert_eq!(moves(&d.actions), [("rollback", "staging".into(), first)]);
    // The frozen release keeps waiting for production.
    assert_eq!(sim.in_flight().map(|f| f.release.clone()), Some(second));
}

#[test]
fn a_held_environment_gets_no_new_release_but_a_rollback_and_resumes_when_lifted() {
    let mut sim = Sim::new(spec(), prague(11, 18, 12, 0));
    let first = run_week(&mut sim, 20, 22);
    sim.at(prague(11, 23, 1, 10));
    let second = to_awaiting_window(&mut sim, 11, 27);
    sim.observed.blocked = [("production".to_owned(), "held: incident 7".to_owned())].into();
    // The window opens, a promotion is asked for: still nothing moves.
    sim.observed.requests.promote = Some(PromoteRequest {
        id: "p1".into(),
        requested_at: prague(11, 29, 22, 30),
        force: false,
    });
    let d = sim.at(prague(11, 29, 23, 0));
    assert!(moves(&d.actions).is_empty(), "held: {:?}", d.actions);
    let waiting = sim.in_flight().unwrap();
    assert_eq!(waiting.stage, Stage::Waiting);
    assert!(waiting.message.as_deref().unwrap().contains("incident 7"));

    // A person's rollback of a held environment goes ahead.
    sim.observed
        .blocked
        .insert("staging".to_owned(), "held".to_owned());
    sim.observed.requests.rollback = Some(RollbackRequest {
        id: "r1".into(),
        requested_at: prague(11, 29, 23, 5),
        environment: "staging".into(),
        to: None,
        at: None,
    });
    let d = sim.at(prague(11, 29, 23, 5));
    assert_eq!(moves(&d.actions), [("rollback", "staging".into(), first)]);

    // Lifted inside the window: the waiting release rolls out.
    sim.observed.blocked.clear();
    let d = sim.at(prague(11, 29, 23, 30));
    assert_eq!(moves(&d.actions), [("deploy", "production".into(), second)]);
}

#[test]
fn a_window_missed_while_down_is_not_deployed_late_but_an_open_one_is() {
    // Manual builds only, so no newer build replaces the waiting release.
    let mut spec = spec();
    spec.schedule.build = None;
    let mut sim = Sim::new(spec, prague(11, 18, 12, 0));
    sim.observed.requests.release = Some(Request {
        id: "now".into(),
        requested_at: prague(11, 20, 18, 0),
    });
    let r = to_awaiting_window(&mut sim, 11, 20);
    // The operator was down from Saturday to Monday 04:00, after the window.
    let d = sim.at(prague(11, 23, 4, 0));
    assert!(moves(&d.actions).is_empty());
    assert_eq!(d.requeue_at, Some(prague(11, 29, 23, 0)));
    // Next week it comes back at Monday 02:00, inside the window.
    let d = sim.at(prague(11, 30, 2, 0));
    assert_eq!(moves(&d.actions), [("deploy", "production".into(), r)]);
}

#[test]
fn a_newer_build_supersedes_a_waiting_release() {
    let mut spec = spec();
    // Daily builds, so a build comes while the release waits for Sunday.
    spec.schedule.build = Some("0 18 * * *".into());
    let mut sim = Sim::new(spec, prague(11, 18, 12, 0));
    let old = to_awaiting_window(&mut sim, 11, 20);
    let d = sim.at(prague(11, 21, 18, 0));
    assert!(phases(&d.actions).contains(&(old, ReleasePhase::Superseded)));
    assert_eq!(
        moves(&d.actions),
        [("build", String::new(), release_name(prague(11, 21, 18, 0)))]
    );
}

#[test]
fn one_release_in_flight_a_due_build_waits_for_it() {
    let mut spec = spec();
    spec.schedule.build = Some("0 * * * *".into());
    let mut sim = Sim::new(spec, prague(11, 20, 17, 30));
    sim.at(prague(11, 20, 18, 0));
    let first = sim.release();
    // The 19:00 slot comes while the first is still building.
    let d = sim.at(prague(11, 20, 19, 0));
    assert!(moves(&d.actions).is_empty());
    assert_eq!(
        sim.state.pending_build,
        Some(crate::api::release::Trigger::Schedule)
    );
    sim.finish_build(BuildResult::Succeeded);
    // Built -> staging; still in flight, the pending build still waits.
    let d = sim.at(prague(11, 20, 19, 5));
    assert_eq!(moves(&d.actions), [("deploy", "staging".into(), first)]);
    sim.healthy();
    sim.at(prague(11, 20, 19, 10));
    // Verified and waiting for the window: now the pending build supersedes it.
    let d = sim.at(prague(11, 20, 20, 10));
    assert_eq!(
        moves(&d.actions),
        [("build", String::new(), release_name(prague(11, 20, 20, 10)))]
    );
}

#[test]
fn suspend_stops_builds_but_not_automatic_rollback() {
    let (mut sim, first, _) = released_twice();
    sim.spec.schedule.suspend = true;
    sim.report(Rollout::Failed("ProgressDeadlineExceeded".into()), 0);
    let d = sim.at(prague(11, 29, 23, 15));
    assert_eq!(
        moves(&d.actions),
        [("rollback", "production".into(), first)]
    );
    let d = sim.at(prague(12, 4, 18, 0));
    assert!(d.actions.is_empty());
    assert_eq!(d.next_build, None);
    assert_eq!(d.phase, "Suspended");
}

#[test]
fn a_pin_holds_an_environment_on_a_release() {
    let (mut sim, first, _) = released_twice();
    sim.healthy();
    sim.at(prague(11, 30, 1, 10));
    sim.spec.environments[1].pin = Some(first.clone());
    let d = sim.at(prague(11, 30, 9, 0));
    assert_eq!(
        deploys(&d.actions),
        [("production".into(), first.clone(), DeployCause::Pin)]
    );
    // Next week's release stops before the pinned production.
    to_awaiting_window(&mut sim, 12, 4);
    let d = sim.at(prague(12, 6, 23, 0));
    assert!(moves(&d.actions).is_empty());
    assert!(
        sim.in_flight()
            .unwrap()
            .message
            .as_deref()
            .unwrap()
            .contains("pinned")
    );
}

#[test]
fn planning_is_deterministic_and_replanning_repeats_nothing() {
    let mut sim = Sim::new(spec(), prague(11, 18, 12, 0));
    let times = [
        prague(11, 20, 18, 0),
        prague(11, 20, 18, 5),
        prague(11, 20, 19, 10),
        prague(11, 22, 23, 0),
    ];
    for (i, t) in times.into_iter().enumerate() {
        sim.now = t;
        let a = sim.decide();
        assert_eq!(a, sim.decide(), "same inputs, same decision");
        sim.plan();
        // A restart right after the state was written: nothing again.
        assert!(moves(&sim.decide().actions).is_empty(), "step {i}");
        match i {
            0 => sim.finish_build(BuildResult::Succeeded),
            1 | 3 => sim.healthy(),
            _ => {}
        }
        if i == 1 {
            sim.at(prague(11, 20, 18, 10));
        }
    }
    assert_eq!(
        sim.env("production").release,
        Some(release_name(prague(11, 20, 18, 0)))
    );
}

#[test]
fn an_invalid_spec_plans_nothing() {
    let mut spec = spec();
    spec.schedule.time_zone = "Nowhere/Land".into();
    let err = plan(
        &spec,
        &TrainState::default(),
        &Observed::default(),
        prague(11, 20, 18, 0),
    )
    .unwrap_err();
    assert!(err.to_string().contains("spec.schedule.timeZone"));
}

/// The example with an error-rate check in production, measured every
/// minute, failing after 3 measurements out of bounds.
fn metric_spec(on_no_data: crate::api::checks::OnNoData) -> PackitDeploymentSpec {
    let mut spec = spec();
    spec.environments[1].health.metrics = vec![crate::api::checks::MetricCheck {
        name: "error-rate".into(),
        prometheus: crate::api::checks::PrometheusSource {
            address: "http://prometheus.monitoring:9090".into(),
            secret_ref: None,
        },
        query: r#"sum(rate(http_errors{namespace="{{ namespace }}"}[{{ interval }}]))"#.into(),
        threshold_range: crate::api::checks::ThresholdRange {
            min: None,
            max: Some(0.05),
        },
        interval: "1m".into(),
        failure_threshold: 3,
        on_no_data,
    }];
    spec
}

/// Sets the error-rate check's standing in the health report.
fn measured(sim: &mut Sim, value: Option<f64>, failures: u32, passed: bool) {
    let at = sim.now;
    if let Some(h) = &mut sim.observed.health {
        h.metrics = vec![MetricHealth {
            name: "error-rate".into(),
            consecutive_failures: failures,
            passed,
            last: Some(crate::api::checks::CheckVerdict {
                name: "error-rate".into(),
                result: match value {
                    Some(v) if v <= 0.05 => crate::api::checks::CheckResult::Pass,
                    Some(_) => crate::api::checks::CheckResult::Fail,
                    None => crate::api::checks::CheckResult::Inconclusive,
                },
                value,
                bounds: "max 0.05".into(),
                consecutive_failures: failures,
                measurements: failures.max(1),
                measured_at: at,
                message: "Prometheus http://prometheus.monitoring:9090 unreachable".into(),
            }),
            fresh: true,
        }];
    }
}

#[test]
fn a_metric_out_of_bounds_at_its_threshold_rolls_production_back() {
    let mut sim = Sim::new(metric_spec(Default::default()), prague(11, 18, 12, 0));
    let first = run_week(&mut sim, 20, 22);
    measured(&mut sim, Some(0.01), 0, true);
    sim.at(prague(11, 23, 1, 10));
    assert_eq!(
        sim.env("production").release.as_deref(),
        Some(first.as_str())
    );
    let second = run_week(&mut sim, 27, 29);
    // Woken for the next measurement, not only at the end of the soak.
    let d = sim.at(prague(11, 29, 23, 20));
    assert_eq!(d.requeue_at, Some(prague(11, 29, 23, 21)));
    measured(&mut sim, Some(0.31), 2, true);
    assert!(moves(&sim.at(prague(11, 29, 23, 22)).actions).is_empty());
    measured(&mut sim, Some(0.31), 3, true);
    let d = sim.at(prague(11, 29, 23, 23));
    assert_eq!(
        moves(&d.actions),
        [("rollback", "production".into(), first)]
    );
    assert!(phases(&d.actions).contains(&(second, ReleasePhase::RolledBack)));
    let why = "metric error-rate = 0.31 > max 0.05 (3 of 3 measurements)";
    assert!(
        events(&d.actions)
            .iter()
            .any(|(r, m)| *r == reasons::VERIFICATION_FAILED && m.contains(why)),
        "{:?}",
        events(&d.actions)
    );
}

#[test]
fn a_metric_without_data_holds_the_release_until_the_deadline() {
    let mut sim = Sim::new(metric_spec(Default::default()), prague(11, 18, 12, 0));
    run_week(&mut sim, 20, 22);
    measured(&mut sim, None, 0, false);
    // The soak ended at 01:10, but the check never had a number.
    let d = sim.at(prague(11, 23, 1, 10));
    assert!(moves(&d.actions).is_empty() && sim.in_flight().is_some());
    assert_eq!(d.requeue_at, Some(prague(11, 23, 1, 11)));
    // Deadline: deployed 23:00 + rollout timeout 20m + soak 2h.
    let d = sim.at(prague(11, 23, 1, 20));
    let failed = phases(&d.actions);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].1, ReleasePhase::Failed);
    assert!(
        events(&d.actions)
            .iter()
            .any(|(_, m)| m.contains("error-rate had no passing measurement")),
        "{:?}",
        events(&d.actions)
    );
}

#[test]
fn a_metric_that_passed_lets_the_release_through_after_the_soak() {
    let mut sim = Sim::new(metric_spec(Default::default()), prague(11, 18, 12, 0));
    let release = run_week(&mut sim, 20, 22);
    measured(&mut sim, Some(0.01), 0, true);
    let d = sim.at(prague(11, 23, 1, 10));
    assert!(phases(&d.actions).contains(&(release, ReleasePhase::Released)));
}

/// The example with a 10-minute `checkout` smoke test in `env`.
fn smoke_spec(env: usize) -> PackitDeploymentSpec {
    let mut spec = spec();
    spec.environments[env].health.jobs = vec![crate::api::checks::SmokeTest {
        name: "checkout".into(),
        template: serde_json::from_value(serde_json::json!({
            "spec": { "containers": [{ "name": "smoke", "image": "curl" }] }
        }))
        .expect("a pod template"),
        timeout: "10m".into(),
    }];
    spec
}

/// Sets the checkout smoke test's state in the health report.
fn smoke(sim: &mut Sim, state: JobState) {
    if let Some(h) = &mut sim.observed.health {
        h.jobs = vec![JobHealth {
            name: "checkout".into(),
            state,
            fresh: None,
        }];
    }
}

#[test]
fn a_smoke_test_starts_once_the_rollout_is_complete_and_gates_promotion() {
    let mut spec = smoke_spec(0);
    spec.environments[0].health.jobs[0].timeout = "2h".into();
    let mut sim = Sim::new(spec, prague(11, 18, 12, 0));
    sim.at(prague(11, 20, 18, 0));
    let release = sim.release();
    sim.finish_build(BuildResult::Succeeded);
    sim.at(prague(11, 20, 18, 5));
    sim.report(Rollout::Progressing, 0);
    assert!(moves(&sim.at(prague(11, 20, 18, 6)).actions).is_empty());
    sim.healthy();
    let d = sim.at(prague(11, 20, 18, 10));
    assert_eq!(
        moves(&d.actions),
        [("smoke", "staging".into(), "checkout".into())]
    );
    smoke(
        &mut sim,
        JobState::Running {
            since: prague(11, 20, 18, 10),
        },
    );
    assert!(moves(&sim.at(prague(11, 20, 18, 11)).actions).is_empty());
    // The soak is over, the test still runs: the release waits for it.
    let d = sim.at(prague(11, 20, 19, 10));
    assert!(phases(&d.actions).is_empty(), "{:?}", d.actions);
    assert!(sim.env("staging").verified.is_empty());
    smoke(&mut sim, JobState::Passed);
    let d = sim.at(prague(11, 20, 19, 11));
    assert!(phases(&d.actions).contains(&(release.clone(), ReleasePhase::AwaitingWindow)));
    assert_eq!(sim.env("staging").verified, [release]);
}

#[test]
fn a_failed_smoke_test_in_production_rolls_back_and_says_which() {
    let mut sim = Sim::new(smoke_spec(1), prague(11, 18, 12, 0));
    let first = run_week(&mut sim, 20, 22);
    smoke(&mut sim, JobState::Passed);
    sim.at(prague(11, 23, 1, 10));
    let second = run_week(&mut sim, 27, 29);
    smoke(
        &mut sim,
        JobState::Failed(
            "BackoffLimitExceeded; pod p-1: container smoke exited with code 1".into(),
        ),
    );
    let d = sim.at(prague(11, 29, 23, 15));
    assert_eq!(
        moves(&d.actions),
        [("rollback", "production".into(), first)]
    );
    assert!(phases(&d.actions).contains(&(second, ReleasePhase::RolledBack)));
    assert!(
        events(&d.actions)
            .iter()
            .any(|(r, m)| *r == reasons::VERIFICATION_FAILED
                && m.contains("smoke test checkout failed: BackoffLimitExceeded; pod p-1")),
        "{:?}",
        events(&d.actions)
    );
}

#[test]
fn a_smoke_test_past_its_timeout_fails_the_release() {
    let mut sim = Sim::new(smoke_spec(1), prague(11, 18, 12, 0));
    run_week(&mut sim, 20, 22);
    smoke(
        &mut sim,
        JobState::Running {
            since: prague(11, 22, 23, 10),
        },
    );
    let d = sim.at(prague(11, 22, 23, 15));
    assert!(moves(&d.actions).is_empty());
    assert!(
        d.requeue_at <= Some(prague(11, 22, 23, 20)),
        "{:?}",
        d.requeue_at
    );
    let d = sim.at(prague(11, 22, 23, 20));
    assert!(
        events(&d.actions)
            .iter()
            .any(|(_, m)| m.contains("smoke test checkout did not finish within 10m")),
        "{:?}",
        events(&d.actions)
    );
}

#[test]
fn an_idle_train_looks_again_when_its_window_opens_and_closes() {
    // Idle, no build schedule: only the window moves anything.
    let mut s = spec();
    s.schedule.build = None;
    let mut sim = Sim::new(s, prague(11, 22, 12, 0));
    let d = sim.decide();
    assert_eq!(d.next_window, Some(prague(11, 22, 23, 0)));
    assert_eq!(d.requeue_at, Some(prague(11, 22, 23, 0)));
    // Open: the window's end is the next instant.
    let d = sim.at(prague(11, 22, 23, 0));
    assert_eq!(d.next_window, Some(prague(11, 22, 23, 0)));
    assert_eq!(d.requeue_at, Some(prague(11, 23, 3, 0)));
    // Closed again: the next week's window, never the one that passed.
    let d = sim.at(prague(11, 23, 3, 0));
    assert_eq!(d.next_window, Some(prague(11, 29, 23, 0)));
    assert_eq!(d.requeue_at, Some(prague(11, 29, 23, 0)));
}

#[test]
fn a_cluster_that_stops_answering_pauses_verification_instead_of_failing_it() {
    let mut sim = Sim::new(spec(), prague(11, 18, 12, 0));
    let release = to_production(&mut sim, 20, 22);
    sim.report(Rollout::Progressing, 0);
    sim.at(prague(11, 22, 23, 5));
    // Production's cluster goes away for two hours: longer than the rollout
    // timeout (10 min) and the soak (2h). Even a stale failing report is
    // not judged.
    sim.observed.unreachable = [(
        "production".to_owned(),
        "cluster prod does not answer: connection refused".to_owned(),
    )]
    .into();
    sim.report(Rollout::Failed("gone".into()), 9);
    for (h, m) in [(23, 10), (23, 40), (0, 30), (1, 0)] {
        let day = if h == 23 { 22 } else { 23 };
        let d = sim.at(prague(11, day, h, m));
        assert!(moves(&d.actions).is_empty(), "{h}:{m}: {:?}", d.actions);
        assert!(phases(&d.actions).is_empty(), "{h}:{m}: {:?}", d.actions);
        let f = sim.in_flight().unwrap();
        assert_eq!(f.stage, Stage::Verifying);
        assert!(f.message.as_deref().unwrap().contains("connection refused"));
    }
    // Back at 01:05, rolled out: the soak starts now and ends at 03:05.
    sim.observed.unreachable.clear();
    sim.healthy();
    let d = sim.at(prague(11, 23, 1, 5));
    assert!(phases(&d.actions).is_empty());
    assert_eq!(sim.in_flight().unwrap().message, None);
    assert!(sim.at(prague(11, 23, 3, 0)).actions.is_empty());
    let d = sim.at(prague(11, 23, 3, 5));
    assert!(phases(&d.actions).contains(&(release, ReleasePhase::Released)));
}

/// The example with production behind an approval gate.
fn gated() -> PackitDeploymentSpec {
    let mut spec = spec();
    if let Some(production) = spec.environments.last_mut() {
        production.approval = Some(crate::api::deployment::ApprovalSpec { required: true });
    }
    spec
}

fn approve(sim: &mut Sim, id: &str, release: &str, at: DateTime<Utc>) {
    sim.observed.requests.approve = Some(ApproveRequest {
        id: id.into(),
        requested_at: at,
        release: release.into(),
        environment: Some("production".into()),
        user: Some("alice".into()),
        groups: vec!["team".into()],
    });
}

#[test]
fn a_gated_environment_waits_for_approval_then_for_the_window() {
    let mut sim = Sim::new(gated(), prague(11, 18, 12, 0));
    let release = to_awaiting_window(&mut sim, 11, 20);
    assert_eq!(
        sim.in_flight().and_then(|f| f.message.clone()).as_deref(),
        Some("waiting for approval to deploy to production")
    );
    assert!(
        sim.log
            .iter()
            .any(|a| matches!(a, Action::SetPhase { phase: ReleasePhase::AwaitingApproval, release: r, .. } if *r == release))
    );
    // The window opens: without an approval nothing is deployed.
    let d = sim.at(prague(11, 22, 23, 0));
    assert!(moves(&d.actions).is_empty(), "{:?}", d.actions);

    // Approved inside the open window: deployed at once, the approval recorded.
    approve(&mut sim, "a1", &release, prague(11, 22, 23, 30));
    let d = sim.at(prague(11, 22, 23, 30));
    assert_eq!(
        deploys(&d.actions),
        [("production".into(), release.clone(), DeployCause::Train)]
    );
    let recorded = d.actions.iter().find_map(|a| match a {
        Action::RecordApproval {
            release: r,
            approval,
        } if *r == release => Some(approval.clone()),
        _ => None,
    });
    let recorded = recorded.expect("the approval is recorded on the release");
    assert_eq!(recorded.environment, "production");
    assert_eq!(recorded.reported_user.as_deref(), Some("alice"));
    assert_eq!(recorded.approved_at, prague(11, 22, 23, 30));
    assert!(events(&d.actions).iter().any(
        |(r, m)| *r == reasons::APPROVED && m.contains("by alice (as reported by the client)")
    ));
    // Handled once.
    assert!(moves(&sim.at(prague(11, 22, 23, 31)).actions).is_empty());
}

#[test]
fn an_approval_before_the_window_deploys_when_it_opens() {
    let mut sim = Sim::new(gated(), prague(11, 18, 12, 0));
    // Approved on Friday while staging still verifies.
    sim.at(prague(11, 20, 18, 0));
    let release = sim.release();
    sim.finish_build(BuildResult::Succeeded);
    sim.at(prague(11, 20, 18, 5));
    approve(&mut sim, "a1", &release, prague(11, 20, 18, 6));
    sim.healthy();
    let d = sim.at(prague(11, 20, 18, 6));
    assert!(moves(&d.actions).is_empty());
    let d = sim.at(prague(11, 20, 19, 6));
    assert!(phases(&d.actions).contains(&(release.clone(), ReleasePhase::AwaitingWindow)));
    assert_eq!(d.requeue_at, Some(prague(11, 22, 23, 0)));
    let d = sim.at(prague(11, 22, 23, 0));
    assert_eq!(
        deploys(&d.actions),
        [("production".into(), release, DeployCause::Train)]
    );
}

#[test]
fn an_approval_after_the_window_waits_for_the_next_unless_promoted() {
    let mut sim = Sim::new(gated(), prague(11, 18, 12, 0));
    let release = to_awaiting_window(&mut sim, 11, 20);
    // Approved on Monday morning, after the window closed at 03:00.
    approve(&mut sim, "a1", &release, prague(11, 23, 9, 0));
    let d = sim.at(prague(11, 23, 9, 0));
    assert!(moves(&d.actions).is_empty());
    assert!(phases(&d.actions).contains(&(release.clone(), ReleasePhase::AwaitingWindow)));
    assert_eq!(d.next_window, Some(prague(11, 29, 23, 0)));
    // Promoting it now deploys it, approved.
    sim.observed.requests.promote = Some(PromoteRequest {
        id: "p1".into(),
        requested_at: prague(11, 23, 9, 5),
        force: false,
    });
    let d = sim.at(prague(11, 23, 9, 5));
    assert_eq!(
        deploys(&d.actions),
        [("production".into(), release, DeployCause::Promoted)]
    );
}

#[test]
fn a_promotion_does_not_skip_the_approval() {
    let mut sim = Sim::new(gated(), prague(11, 18, 12, 0));
    let release = to_awaiting_window(&mut sim, 11, 20);
    sim.observed.requests.promote = Some(PromoteRequest {
        id: "p1".into(),
        requested_at: prague(11, 20, 20, 0),
        force: true,
    });
    let d = sim.at(prague(11, 20, 20, 0));
    assert!(moves(&d.actions).is_empty(), "{:?}", d.actions);
    assert!(sim.in_flight().is_some_and(|f| f.release == release));
}

#[test]
fn a_newer_build_supersedes_a_pending_approval() {
    let mut spec = gated();
    spec.schedule.build = Some("0 18 * * *".into());
    let mut sim = Sim::new(spec, prague(11, 18, 12, 0));
    let old = to_awaiting_window(&mut sim, 11, 20);
    let d = sim.at(prague(11, 21, 18, 0));
    assert!(phases(&d.actions).contains(&(old.clone(), ReleasePhase::Superseded)));
    // Approving the superseded release approves nothing.
    approve(&mut sim, "a1", &old, prague(11, 21, 18, 1));
    let d = sim.at(prague(11, 21, 18, 1));
    assert!(
        !d.actions
            .iter()
            .any(|a| matches!(a, Action::RecordApproval { .. }))
    );
    let (reason, message) = events(&d.actions).pop().expect("an event");
    assert_eq!(reason, reasons::APPROVAL_REJECTED);
    assert!(message.contains("the release in flight is"), "{message}");
    assert!(sim.in_flight().is_some_and(|f| f.approvals.is_empty()));
}

#[test]
fn rollbacks_never_wait_for_approval() {
    let mut spec = gated();
    spec.environments[0].approval = Some(crate::api::deployment::ApprovalSpec { required: true });
    let mut sim = Sim::new(spec, prague(11, 18, 12, 0));
    // Week one, approved for both environments.
    sim.at(prague(11, 20, 18, 0));
    let first = sim.release();
    sim.finish_build(BuildResult::Succeeded);
    for (id, env) in [("a1", "staging"), ("a2", "production")] {
        sim.observed.requests.approve = Some(ApproveRequest {
            id: id.into(),
            requested_at: prague(11, 20, 18, 1),
            release: first.clone(),
            environment: Some(env.into()),
            user: None,
            groups: vec![],
        });
        sim.at(prague(11, 20, 18, 1));
    }
    sim.at(prague(11, 20, 18, 5));
    sim.healthy();
    sim.at(prague(11, 20, 18, 10));
    sim.at(prague(11, 20, 19, 10));
    let d = sim.at(prague(11, 22, 23, 0));
    assert_eq!(
        moves(&d.actions),
        [("deploy", "production".into(), first.clone())]
    );
    sim.healthy();
    sim.at(prague(11, 22, 23, 10));
    sim.at(prague(11, 23, 1, 10));
    // Week two reaches staging with an approval, production without one.
    sim.at(prague(11, 27, 18, 0));
    let second = sim.release();
    sim.finish_build(BuildResult::Succeeded);
    sim.observed.requests.approve = Some(ApproveRequest {
        id: "a3".into(),
        requested_at: prague(11, 27, 18, 1),
        release: second.clone(),
        environment: Some("staging".into()),
        user: None,
        groups: vec![],
    });
    let d = sim.at(prague(11, 27, 18, 1));
    assert_eq!(
        moves(&d.actions),
        [("deploy", "staging".into(), second.clone())]
    );
    // Staging crash-loops: rolled back at once to the first release.
    sim.report(Rollout::Complete, 9);
    let d = sim.at(prague(11, 27, 18, 5));
    assert_eq!(moves(&d.actions), [("rollback", "staging".into(), first)]);
}
