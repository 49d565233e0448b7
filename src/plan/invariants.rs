//! Property tests: random trains driven by random events and times, checked
//! against the invariants of the lifecycle.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;

use super::sim::{Sim, moves};
use super::*;
use crate::api::PackitDeploymentSpec;
use crate::api::deployment::{Freeze, Window};
use crate::schedule::Calendar;

#[derive(Debug, Clone)]
enum Event {
    Advance(i64),
    BuildSucceeds,
    BuildFails,
    Report {
        rollout: u8,
        restarts: u32,
    },
    RequestRelease,
    RequestPromote {
        force: bool,
    },
    RequestRollback {
        env: usize,
        to: Option<usize>,
        in_minutes: Option<i64>,
    },
    Approve {
        env: usize,
        /// Approve a release other than the one in flight (superseded).
        stale: bool,
    },
    ToggleSuspend,
    Pin {
        env: usize,
        release: Option<usize>,
    },
    Restart,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (1i64..3000).prop_map(Event::Advance),
        3 => Just(Event::BuildSucceeds),
        1 => Just(Event::BuildFails),
        5 => (0u8..4, 0u32..4).prop_map(|(rollout, restarts)| Event::Report { rollout, restarts }),
        1 => Just(Event::RequestRelease),
        1 => any::<bool>().prop_map(|force| Event::RequestPromote { force }),
        1 => (0usize..3, proptest::option::of(0usize..6), proptest::option::of(1i64..600))
            .prop_map(|(env, to, in_minutes)| Event::RequestRollback { env, to, in_minutes }),
        2 => (0usize..3, proptest::bool::weighted(0.1)).prop_map(|(env, stale)| Event::Approve { env, stale }),
        1 => Just(Event::ToggleSuspend),
        1 => (0usize..3, proptest::option::weighted(0.3, 0usize..6)).prop_map(|(env, release)| Event::Pin { env, release }),
        2 => Just(Event::Restart),
    ]
}

/// Random trains: one to three environments, a window or none, daily or
/// hourly builds, a freeze or two, rollback on or off, production behind an
/// approval gate or not.
fn spec() -> impl Strategy<Value = PackitDeploymentSpec> {
    (
        1usize..=3,
        prop_oneof![
            Just(None),
            Just(Some(("0 23 * * SUN", "4h"))),
            Just(Some(("30 2 * * *", "2h")))
        ],
        prop_oneof![
            Just(Some("0 18 * * *")),
            Just(Some("0 */6 * * *")),
            Just(None)
        ],
        proptest::collection::vec((0i64..60 * 24 * 40, 60i64..60 * 24 * 5), 0..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(envs, window, build, freezes, automatic, gated)| {
            let mut spec = crate::api::tests::example().spec;
            let production = spec.environments.pop().expect("two environments");
            let staging = spec.environments.pop().expect("two environments");
            let mut qa = staging.clone();
            qa.name = "qa".into();
            spec.environments = match envs {
                1 => vec![production],
                2 => vec![staging, production],
                _ => vec![staging, qa, production],
            };
            for e in &mut spec.environments {
                e.health.http_checks.clear();
                e.health.soak = "1h".into();
                e.rollback.automatic = automatic;
            }
            if gated && let Some(production) = spec.environments.last_mut() {
                production.approval = Some(crate::api::deployment::ApprovalSpec { required: true });
            }
            spec.schedule.build = build.map(Into::into);
            spec.schedule.production = window.map(|(start, duration)| Window {
                start: start.into(),
                duration: duration.into(),
            });
            spec.schedule.freezes = freezes
                .into_iter()
                .map(|(start, length)| Freeze {
                    start: origin() + TimeDelta::minutes(start),
                    end: origin() + TimeDelta::minutes(start + length),
                    reason: "test".into(),
                })
                .collect();
            spec
        })
}

/// The simulations start on Friday 20 March 2026, a week before Prague's
/// spring DST night, and run for weeks.
fn origin() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 20, 12, 0, 0).unwrap()
}

/// What the world knows, independent of the planner's bookkeeping.
#[derive(Default)]
struct World {
    /// Releases honestly verified in each environment.
    verified: BTreeMap<String, BTreeSet<String>>,
    /// Releases that got a forced promotion request while in flight.
    forced: BTreeSet<String>,
    /// Train deploys so far, which must never repeat.
    train_deploys: BTreeSet<(String, String)>,
    /// Every release that started building, in order.
    releases: Vec<String>,
    /// (environment, release) pairs a person approved while in flight.
    approved: BTreeSet<(String, String)>,
    requests: u32,
}

fn check_step(
    sim: &Sim,
    before: &TrainState,
    d: &Decision,
    world: &mut World,
) -> Result<(), TestCaseError> {
    let calendar = Calendar::new(&sim.spec.schedule).expect("valid schedule");
    let now = sim.now;
    let production = sim
        .spec
        .environments
        .last()
        .expect("an environment")
        .name
        .clone();
    let env_spec = |name: &str| {
        sim.spec
            .environments
            .iter()
            .find(|e| e.name == name)
            .expect("env")
    };

    // Verification is honest: newly verified means a complete, healthy
    // report for that release, soaked long enough.
    for (old, new) in before.environments.iter().zip(&d.state.environments) {
        for r in new.verified.iter().filter(|r| !old.verified.contains(r)) {
            let f = before.in_flight.as_ref().expect("verified while in flight");
            let h = sim.observed.health.as_ref().expect("a health report");
            prop_assert_eq!(&h.release, r);
            prop_assert!(
                h.workloads
                    .iter()
                    .all(|w| w.rollout == Rollout::Complete && w.restarts <= 2)
            );
            let complete = f.rollout_complete_at.unwrap_or(now);
            prop_assert!(
                now >= complete + TimeDelta::hours(1),
                "verified before the soak ended"
            );
            world
                .verified
                .entry(new.name.clone())
                .or_default()
                .insert(r.clone());
        }
    }

    for a in &d.actions {
        match a {
            Action::Deploy {
                environment,
                release,
                targets,
                cause,
            } => {
                let env = env_spec(environment);
                prop_assert_eq!(targets, &env.targets, "a deploy covers every target");
                if env.requires_approval() && *cause != DeployCause::Pin {
                    prop_assert!(
                        world
                            .approved
                            .contains(&(environment.clone(), release.clone())),
                        "{release} deployed to {environment} without its approval"
                    );
                }
                let before_prod: Vec<_> = sim
                    .spec
                    .environments
                    .iter()
                    .take_while(|e| e.name != *environment)
                    .collect();
                let passed = before_prod.iter().all(|e| {
                    world
                        .verified
                        .get(&e.name)
                        .is_some_and(|v| v.contains(release))
                });
                match cause {
                    DeployCause::Train => {
                        prop_assert!(
                            passed,
                            "{release} deployed to {environment} without passing earlier environments"
                        );
                        prop_assert!(
                            calendar.freeze_at(now).is_none(),
                            "train deploy during a freeze"
                        );
                        prop_assert!(!sim.spec.schedule.suspend, "train deploy while suspended");
                        if *environment == production {
                            let open = calendar.window(now).is_some_and(|w| w.contains(now));
                            prop_assert!(
                                open,
                                "train deploy to production outside the window at {now}"
                            );
                        }
                        prop_assert!(
                            world
                                .train_deploys
                                .insert((environment.clone(), release.clone())),
                            "{release} deployed to {environment} twice"
                        );
                    }
                    DeployCause::Promoted => {
                        prop_assert_eq!(environment, &production);
                        prop_assert!(passed, "promoted without passing earlier environments");
                    }
                    DeployCause::Forced => {
                        prop_assert_eq!(environment, &production);
                        prop_assert!(
                            world.forced.contains(release),
                            "forced without a forced request"
                        );
                    }
                    DeployCause::Pin => {
                        prop_assert_eq!(env.pin.as_ref(), Some(release));
                    }
                }
            }
            Action::Rollback {
                environment,
                to,
                targets,
                ..
            } => {
                prop_assert_eq!(
                    targets,
                    &env_spec(environment).targets,
                    "a rollback covers every target"
                );
                prop_assert!(
                    world
                        .verified
                        .get(environment)
                        .is_some_and(|v| v.contains(to)),
                    "rollback of {environment} to {to}, never healthy there"
                );
            }
            Action::StartBuild { release, .. } => {
                // One release in flight: any earlier one ended in this decision.
                if let Some(f) = &before.in_flight {
                    let ended = d.actions.iter().any(|a| {
                        matches!(a, Action::SetPhase { release, phase, .. } if *release == f.release && phase.is_final())
                    });
                    prop_assert!(ended, "a build started while {} was in flight", f.release);
                }
                world.releases.push(release.clone());
            }
            _ => {}
        }
    }
    Ok(())
}

fn run(spec: PackitDeploymentSpec, events: Vec<Event>) -> Result<Vec<Action>, TestCaseError> {
    let mut sim = Sim::new(spec, origin());
    let mut world = World::default();
    for ev in events {
        match ev {
            Event::Advance(minutes) => sim.now += TimeDelta::minutes(minutes),
            Event::BuildSucceeds | Event::BuildFails => {
                if sim.in_flight().is_some_and(|f| f.stage == Stage::Building) {
                    let result = match ev {
                        Event::BuildSucceeds => BuildResult::Succeeded,
                        _ => BuildResult::Failed("exit 1".into()),
                    };
                    sim.finish_build(result);
                }
            }
            Event::Report { rollout, restarts } => {
                if sim.in_flight().is_some_and(|f| f.stage == Stage::Verifying) {
                    let rollout = match rollout {
                        0 => Rollout::Progressing,
                        1 | 2 => Rollout::Complete,
                        _ => Rollout::Failed("ProgressDeadlineExceeded".into()),
                    };
                    sim.report(rollout, restarts);
                }
            }
            Event::RequestRelease => {
                world.requests += 1;
                sim.observed.requests.release = Some(Request {
                    id: format!("req-{}", world.requests),
                    requested_at: sim.now,
                });
            }
            Event::RequestPromote { force } => {
                world.requests += 1;
                sim.observed.requests.promote = Some(PromoteRequest {
                    id: format!("req-{}", world.requests),
                    requested_at: sim.now,
                    force,
                });
                if force && let Some(f) = sim.in_flight() {
                    world.forced.insert(f.release.clone());
                }
            }
            Event::RequestRollback {
                env,
                to,
                in_minutes,
            } => {
                world.requests += 1;
                let environment = sim.spec.environments[env % sim.spec.environments.len()]
                    .name
                    .clone();
                sim.observed.requests.rollback = Some(RollbackRequest {
                    id: format!("req-{}", world.requests),
                    requested_at: sim.now,
                    environment,
                    to: to.and_then(|i| world.releases.get(i).cloned()),
                    at: in_minutes.map(|m| sim.now + TimeDelta::minutes(m)),
                });
            }
            Event::Approve { env, stale } => {
                world.requests += 1;
                let environment = sim.spec.environments[env % sim.spec.environments.len()]
                    .name
                    .clone();
                let release = match (stale, sim.in_flight()) {
                    (false, Some(f)) => f.release.clone(),
                    _ => world.releases.first().cloned().unwrap_or_default(),
                };
                if sim.in_flight().is_some_and(|f| f.release == release) {
                    world
                        .approved
                        .insert((environment.clone(), release.clone()));
                }
                sim.observed.requests.approve = Some(ApproveRequest {
                    id: format!("req-{}", world.requests),
                    requested_at: sim.now,
                    release,
                    environment: Some(environment),
                    user: Some("alice".into()),
                    groups: vec![],
                });
            }
            Event::ToggleSuspend => sim.spec.schedule.suspend = !sim.spec.schedule.suspend,
            Event::Pin { env, release } => {
                let n = sim.spec.environments.len();
                sim.spec.environments[env % n].pin =
                    release.and_then(|i| world.releases.get(i).cloned());
            }
            Event::Restart => {
                // A restarted operator plans from the persisted state: the
                // same inputs give the same decision, and nothing repeats.
                let d = sim.decide();
                prop_assert_eq!(&d, &sim.decide());
                prop_assert!(
                    moves(&d.actions).is_empty(),
                    "restart repeated {:?}",
                    moves(&d.actions)
                );
                continue;
            }
        }
        let before = sim.state.clone();
        let d = sim.decide();
        prop_assert_eq!(&d, &sim.decide(), "same inputs, same decision");
        check_step(&sim, &before, &d, &mut world)?;
        sim.plan();
        let again = sim.decide();
        prop_assert!(
            moves(&again.actions).is_empty(),
            "replanning repeated {:?}",
            moves(&again.actions)
        );
    }
    Ok(sim.log)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(3000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn lifecycle_invariants_hold(spec in spec(), events in proptest::collection::vec(event(), 1..80)) {
        run(spec, events)?;
    }
}

/// The generators reach the interesting paths, so the invariants above are
/// checked on them and not only on idle trains.
#[test]
fn random_trains_reach_every_kind_of_move() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRng, TestRunner};

    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(Config::default().rng_algorithm),
    );
    let strategy = (spec(), proptest::collection::vec(event(), 1..80));
    let mut seen = BTreeSet::new();
    for _ in 0..500 {
        let (spec, events) = strategy.new_tree(&mut runner).expect("a case").current();
        let production = spec
            .environments
            .last()
            .expect("an environment")
            .name
            .clone();
        for a in run(spec, events).expect("invariants hold") {
            let kind = match a {
                Action::Deploy {
                    environment, cause, ..
                } if environment == production => format!("production {cause:?}"),
                Action::Deploy { cause, .. } => format!("staging {cause:?}"),
                Action::Rollback {
                    cause: RollbackCause::Automatic(_),
                    ..
                } => "automatic rollback".into(),
                Action::Rollback { .. } => "requested rollback".into(),
                Action::SetPhase { phase, .. } => format!("{phase:?}"),
                _ => continue,
            };
            seen.insert(kind);
        }
    }
    for expected in [
        "production Train",
        "production Promoted",
        "production Forced",
        "production Pin",
        "staging Train",
        "automatic rollback",
        "requested rollback",
        "Released",
        "RolledBack",
        "StagingFailed",
        "BuildFailed",
        "Superseded",
        "AwaitingWindow",
        "AwaitingApproval",
    ] {
        assert!(
            seen.contains(expected),
            "never reached {expected}; saw {seen:?}"
        );
    }
}
