//! A test harness that plays the controller around `plan`: it persists the
//! state after each decision and lets a test script the world.

use chrono::{DateTime, Utc};

use super::*;
use crate::api::PackitDeploymentSpec;

pub(crate) struct Sim {
    pub spec: PackitDeploymentSpec,
    pub state: TrainState,
    pub observed: Observed,
    pub now: DateTime<Utc>,
    /// Every action taken so far.
    pub log: Vec<Action>,
}

impl Sim {
    pub fn new(spec: PackitDeploymentSpec, now: DateTime<Utc>) -> Self {
        let mut sim = Self {
            spec,
            state: TrainState::default(),
            observed: Observed {
                name: "pkd".into(),
                ..Default::default()
            },
            now,
            log: Vec::new(),
        };
        sim.plan();
        sim
    }

    pub fn decide(&self) -> Decision {
        plan(&self.spec, &self.state, &self.observed, self.now).expect("valid spec")
    }

    /// Plans at the current time and persists the state, like the controller.
    pub fn plan(&mut self) -> Decision {
        let d = self.decide();
        self.state = d.state.clone();
        // The build result and health report belong to the release in
        // flight; a new stage starts without them.
        let stage = self.state.in_flight.as_ref().map(|f| f.stage);
        if stage != Some(Stage::Building) {
            self.observed.build = None;
        } else if d
            .actions
            .iter()
            .any(|a| matches!(a, Action::StartBuild { .. }))
        {
            self.observed.build = Some(BuildResult::Running);
        }
        if self
            .state
            .in_flight
            .as_ref()
            .is_none_or(|f| f.stage != Stage::Verifying)
        {
            self.observed.health = None;
        }
        self.log.extend(d.actions.iter().cloned());
        d
    }

    pub fn at(&mut self, now: DateTime<Utc>) -> Decision {
        self.now = now;
        self.plan()
    }

    pub fn in_flight(&self) -> Option<&InFlight> {
        self.state.in_flight.as_ref()
    }

    pub fn release(&self) -> String {
        self.in_flight()
            .expect("a release in flight")
            .release
            .clone()
    }

    pub fn finish_build(&mut self, result: BuildResult) {
        if result == BuildResult::Succeeded {
            let r = self.release();
            self.observed.built.insert(r);
        }
        self.observed.build = Some(result);
    }

    /// Reports the release in flight's environment as fully rolled out, or
    /// with one workload in the given state.
    pub fn report(&mut self, rollout: Rollout, restarts: u32) {
        let f = self.in_flight().expect("a release in flight").clone();
        let env = f.environment.expect("an environment");
        let env = self
            .spec
            .environments
            .iter()
            .find(|e| e.name == env)
            .expect("known env");
        self.observed.health = Some(HealthReport {
            release: f.release,
            workloads: env
                .targets
                .iter()
                .map(|t| WorkloadHealth {
                    name: t.name.clone(),
                    rollout: rollout.clone(),
                    restarts,
                })
                .collect(),
            http: vec![],
            metrics: vec![],
            jobs: vec![],
            deploy_error: None,
        });
    }

    pub fn healthy(&mut self) {
        self.report(Rollout::Complete, 0);
    }

    pub fn env(&self, name: &str) -> &EnvironmentState {
        self.state
            .environments
            .iter()
            .find(|e| e.name == name)
            .expect("env")
    }
}

/// The deploys and rollbacks among some actions, as `(kind, env, release)`.
pub(crate) fn moves(actions: &[Action]) -> Vec<(&'static str, String, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deploy {
                environment,
                release,
                ..
            } => Some(("deploy", environment.clone(), release.clone())),
            Action::Rollback {
                environment, to, ..
            } => Some(("rollback", environment.clone(), to.clone())),
            Action::StartBuild { release, .. } => Some(("build", String::new(), release.clone())),
            Action::RunSmokeTest {
                environment, test, ..
            } => Some(("smoke", environment.clone(), test.clone())),
            _ => None,
        })
        .collect()
}

pub(crate) fn phases(actions: &[Action]) -> Vec<(String, ReleasePhase)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SetPhase { release, phase, .. } => Some((release.clone(), *phase)),
            _ => None,
        })
        .collect()
}

pub(crate) fn events(actions: &[Action]) -> Vec<(&'static str, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event {
                reason, message, ..
            } => Some((*reason, message.clone())),
            _ => None,
        })
        .collect()
}
