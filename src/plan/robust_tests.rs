//! Property tests beyond the examples: specs with arbitrary schedules,
//! durations, names and checks, arbitrary persisted state and observations,
//! at any instant chrono can represent. Validation and planning must answer
//! (a decision or a clear error), never panic.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Value, json};

use super::*;
use crate::api::PackitDeploymentSpec;
use crate::api::train::{EnvironmentState, InFlight, ScheduledRollback, Stage};
use crate::api::validate;

/// Strings a person could type into a field, valid or not: cron-like,
/// duration-like, huge numbers, control characters, anything.
fn text() -> impl Strategy<Value = String> {
    let cron_part = prop_oneof![
        Just("*".to_owned()),
        Just("*/15".to_owned()),
        Just("0".to_owned()),
        Just("59".to_owned()),
        Just("60".to_owned()),
        Just("1-5".to_owned()),
        Just("5-1".to_owned()),
        Just("MON".to_owned()),
        Just("L".to_owned()),
        Just("?".to_owned()),
        Just("*/0".to_owned()),
        Just("99999999999".to_owned()),
        "[0-9,/*-]{1,6}",
    ];
    prop_oneof![
        3 => proptest::collection::vec(cron_part, 1..8).prop_map(|p| p.join(" ")),
        3 => "[0-9]{1,22}(ms|s|m|h|d|w|)",
        1 => "[0-9]{1,4}h[0-9]{1,4}m",
        1 => Just(String::new()),
        1 => Just("Europe/Prague".to_owned()),
        1 => Just("Mars/Olympus".to_owned()),
        2 => ".{0,40}",
        1 => "[\\x00-\\x1f]{0,8}",
    ]
}

/// Any instant chrono represents, with weight on ordinary years and the
/// edges of the range.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let ordinary = (946_684_800i64..4_102_444_800).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap());
    let anywhen = (DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp())
        .prop_map(|s| Utc.timestamp_opt(s, 0).unwrap());
    let margin = prop_oneof![0i64..7_200, 0i64..400 * 86_400];
    let edge = (margin, any::<bool>()).prop_map(|(s, high)| {
        if high {
            DateTime::<Utc>::MAX_UTC - TimeDelta::seconds(s)
        } else {
            DateTime::<Utc>::MIN_UTC + TimeDelta::seconds(s)
        }
    });
    prop_oneof![6 => ordinary, 1 => anywhen, 2 => edge]
}

/// Sets `key` of `object` to `value` when there is one (indexing a
/// `Value` mutably would add the key as null otherwise).
fn set(object: &mut Value, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        object[key] = json!(v);
    }
}

/// The example spec with arbitrary values in some of the fields validation
/// reads (each field keeps the example's value most of the time, so valid
/// specs come up too).
fn spec() -> impl Strategy<Value = Option<PackitDeploymentSpec>> {
    (
        proptest::collection::vec(proptest::option::weighted(0.15, text()), 16),
        proptest::option::weighted(0.3, (instant(), instant())),
        proptest::collection::vec(any::<u32>(), 4),
        any::<bool>(),
    )
        .prop_map(|(t, freeze, n, flag)| {
            let mut v = serde_json::to_value(crate::api::tests::example().spec).ok()?;
            let s = &mut v["schedule"];
            set(s, "timeZone", &t[0]);
            set(s, "build", &t[1]);
            set(&mut s["production"], "start", &t[2]);
            set(&mut s["production"], "duration", &t[3]);
            if let Some((start, end)) = freeze {
                let reason = t[4].clone().unwrap_or_default();
                s["freezes"] = json!([{ "start": start, "end": end, "reason": reason }]);
            }
            s["suspend"] = json!(flag && n[3] % 5 == 0);
            let envs = v["environments"].as_array_mut()?;
            for (i, env) in envs.iter_mut().enumerate() {
                let h = &mut env["health"];
                set(h, "rolloutTimeout", &t[5 + i]);
                set(h, "soak", &t[7 + i]);
                if n[i] % 4 == 0 {
                    h["maxRestarts"] = json!(n[i]);
                }
                let mut metric = json!({
                    "name": "m", "prometheus": { "address": "http://p:9090" }, "query": "up",
                    "thresholdRange": { "max": 1.0 }, "failureThreshold": 1 + n[2] % 150
                });
                set(&mut metric, "query", &t[10]);
                set(&mut metric, "interval", &t[11]);
                h["metrics"] = json!([metric]);
                let mut smoke = json!({ "name": "s", "template": {
                    "spec": { "containers": [{ "name": "s", "image": "smoke" }] }
                } });
                set(&mut smoke, "timeout", &t[12]);
                h["jobs"] = json!([smoke]);
                set(&mut h["httpChecks"][0], "interval", &t[9]);
            }
            if let Some(name) = &t[13] {
                envs[0]["name"] = json!(name);
            }
            if n[1] % 8 == 0 {
                envs.push(envs[0].clone());
            }
            set(&mut v["components"][0]["build"], "timeout", &t[14]);
            if let Some(c) = &t[15] {
                v["environments"][1]["targets"][0]["component"] = json!(c);
            }
            v["historyLimit"] = json!(n[2] % 100);
            serde_json::from_value::<PackitDeploymentSpec>(v).ok()
        })
}

fn state() -> impl Strategy<Value = TrainState> {
    (
        proptest::option::of((
            ".{0,12}",
            0u8..3,
            proptest::option::of(prop_oneof![
                Just("staging".to_owned()),
                Just("production".to_owned()),
                ".{0,8}"
            ]),
            instant(),
            proptest::option::of(instant()),
        )),
        proptest::collection::vec(
            (
                prop_oneof![
                    Just("staging".to_owned()),
                    Just("production".to_owned()),
                    ".{0,8}"
                ],
                proptest::option::of(".{0,8}"),
                proptest::option::of(instant()),
            ),
            0..4,
        ),
        proptest::option::of(instant()),
        proptest::collection::vec((".{0,8}", instant(), instant()), 0..3),
    )
        .prop_map(|(flight, envs, slot, rollbacks)| TrainState {
            in_flight: flight.map(|(release, stage, environment, since, complete)| InFlight {
                release,
                trigger: None,
                stage: [Stage::Building, Stage::Waiting, Stage::Verifying][usize::from(stage)],
                environment,
                since,
                rollout_complete_at: complete,
                promote: None,
                message: None,
                approvals: Vec::new(),
            }),
            environments: envs
                .into_iter()
                .map(|(name, release, deployed_at)| EnvironmentState {
                    verified: release.iter().cloned().collect(),
                    name,
                    release,
                    deployed_at,
                })
                .collect(),
            last_build_slot: slot,
            scheduled_rollbacks: rollbacks
                .into_iter()
                .map(|(environment, at, requested_at)| ScheduledRollback {
                    environment,
                    to: None,
                    at,
                    requested_at,
                })
                .collect(),
            ..TrainState::default()
        })
}

fn observed() -> impl Strategy<Value = Observed> {
    (
        proptest::option::of(prop_oneof![
            Just(BuildResult::Running),
            Just(BuildResult::Succeeded),
            ".{0,8}".prop_map(BuildResult::Failed),
        ]),
        proptest::option::of((
            ".{0,8}",
            proptest::collection::vec((0u8..3, any::<u32>()), 0..4),
        )),
        proptest::option::of((".{0,8}", instant())),
        proptest::option::of((
            ".{0,8}",
            instant(),
            ".{0,10}",
            proptest::option::of(instant()),
        )),
        // Held or contended environments, known or not.
        proptest::collection::btree_map(
            prop_oneof![
                Just("staging".to_owned()),
                Just("production".to_owned()),
                ".{0,6}"
            ],
            ".{0,8}",
            0..3,
        ),
    )
        .prop_map(|(build, health, release, rollback, blocked)| Observed {
            blocked,
            unreachable: Default::default(),
            name: "pkd".into(),
            built: Default::default(),
            build,
            health: health.map(|(release, workloads)| HealthReport {
                release,
                workloads: workloads
                    .into_iter()
                    .map(|(r, restarts)| WorkloadHealth {
                        name: "w".into(),
                        rollout: match r {
                            0 => Rollout::Progressing,
                            1 => Rollout::Complete,
                            _ => Rollout::Failed("deadline".into()),
                        },
                        restarts,
                    })
                    .collect(),
                ..HealthReport::default()
            }),
            requests: Requests {
                release: release.map(|(id, requested_at)| Request { id, requested_at }),
                promote: None,
                rollback: rollback.map(|(id, requested_at, environment, at)| RollbackRequest {
                    id,
                    requested_at,
                    environment,
                    to: None,
                    at,
                }),
                approve: None,
            },
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn planning_a_valid_train_from_any_state_at_any_instant_decides(
        state in state(),
        observed in observed(),
        now in instant(),
    ) {
        let spec = crate::api::tests::example().spec;
        let d = plan(&spec, &state, &observed, now);
        prop_assert!(d.is_ok(), "{d:?}");
    }

    #[test]
    fn any_spec_validates_or_says_why(spec in spec()) {
        let Some(spec) = spec else { return Ok(()) };
        if let Err(e) = validate::validate(&spec) {
            prop_assert!(!e.0.is_empty());
            for problem in &e.0 {
                prop_assert!(!problem.field.is_empty(), "{problem:?}");
                prop_assert!(!problem.message.is_empty(), "{problem:?}");
                // The value is shown once, by the error itself.
                let quoted = format!("{:?}", problem.value);
                prop_assert!(problem.value.len() < 3 || !problem.message.contains(&quoted), "{problem}");
            }
        }
    }

    #[test]
    fn planning_anything_at_any_instant_answers(
        spec in spec(),
        state in state(),
        observed in observed(),
        now in instant(),
    ) {
        let Some(spec) = spec else { return Ok(()) };
        let valid = validate::validate(&spec).is_ok();
        match plan(&spec, &state, &observed, now) {
            Ok(d) => {
                prop_assert!(valid, "a spec validation refuses was planned");
                prop_assert!(d.requeue_at.is_none_or(|t| t > now));
                prop_assert!(!d.phase.is_empty());
            }
            Err(e) => prop_assert!(!valid && !e.to_string().is_empty()),
        }
    }
}

#[test]
fn the_generator_makes_valid_specs_too() {
    // Guards the properties above against testing only refusals, or only
    // what fails to deserialize.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let specs: Vec<PackitDeploymentSpec> = (0..300)
        .filter_map(|_| spec().new_tree(&mut runner).ok())
        .filter_map(|t| t.current())
        .collect();
    assert!(specs.len() > 200, "{} of 300 deserialize", specs.len());
    let valid: Vec<&PackitDeploymentSpec> = specs
        .iter()
        .filter(|s| validate::validate(s).is_ok())
        .collect();
    assert!(valid.len() > 10, "{} valid", valid.len());
    assert!(
        valid
            .iter()
            .any(|s| s.environments.iter().any(|e| !e.health.metrics.is_empty()))
    );
}
