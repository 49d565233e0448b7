//! The release lifecycle as a state machine over `TrainState`.

use chrono::{DateTime, TimeDelta, Utc};

use super::state::*;
use crate::api::deployment::{Environment, PackitDeploymentSpec};
use crate::api::duration;
use crate::api::release::Trigger;
use crate::api::validate::{InvalidSpec, validate};
use crate::schedule::{Calendar, Gate, later};

/// Decides what to do at `now`. Pure: the same inputs give the same
/// decision, and planning again from the returned state with the same
/// observations repeats no deploy, rollback or build.
pub fn plan(
    spec: &PackitDeploymentSpec,
    state: &TrainState,
    observed: &Observed,
    now: DateTime<Utc>,
) -> Result<Decision, InvalidSpec> {
    let calendar = Calendar::from(validate(spec)?);
    let mut p = Planner {
        spec,
        calendar: &calendar,
        observed,
        now,
        state: state.clone(),
        actions: Vec::new(),
        wake: Vec::new(),
    };
    p.sync_environments();
    p.handle_rollback_request();
    p.run_due_rollbacks();
    p.apply_pins();
    p.handle_promote_request();
    p.handle_approve_request();
    p.advance_in_flight();
    p.start_due_build();
    Ok(p.finish())
}

struct Planner<'a> {
    spec: &'a PackitDeploymentSpec,
    calendar: &'a Calendar,
    observed: &'a Observed,
    now: DateTime<Utc>,
    state: TrainState,
    actions: Vec<Action>,
    /// Instants at which the decision may change without a watch event.
    wake: Vec<DateTime<Utc>>,
}

impl Planner<'_> {
    fn sync_environments(&mut self) {
        let old = std::mem::take(&mut self.state.environments);
        self.state.environments = self
            .spec
            .environments
            .iter()
            .map(|e| {
                old.iter()
                    .find(|s| s.name == e.name)
                    .cloned()
                    .unwrap_or_else(|| EnvironmentState {
                        name: e.name.clone(),
                        ..Default::default()
                    })
            })
            .collect();
        // A release waiting for or verified in an environment that was
        // removed from the spec cannot go on.
        if let Some(f) = &self.state.in_flight
            && let Some(env) = &f.environment
            && self.env_index(env).is_none()
        {
            let msg = format!("{}: environment {env} was removed from the spec", f.release);
            self.event(super::reasons::CANCELLED, msg.clone(), true);
            self.end_in_flight(ReleasePhase::Cancelled, None, msg);
        }
        if self.state.last_build_slot.is_none() {
            // Only slots after the schedule was first seen count.
            self.state.last_build_slot = Some(self.now);
        }
    }

    fn env_index(&self, name: &str) -> Option<usize> {
        self.spec.environments.iter().position(|e| e.name == name)
    }

    fn production_index(&self) -> usize {
        self.spec.environments.len() - 1
    }

    fn env_spec(&self, i: usize) -> &Environment {
        &self.spec.environments[i]
    }

    fn event(&mut self, reason: &'static str, message: String, warning: bool) {
        self.actions.push(Action::Event {
            reason,
            message,
            warning,
        });
    }

    fn set_phase(
        &mut self,
        release: &str,
        phase: ReleasePhase,
        env: Option<&str>,
        message: String,
    ) {
        self.actions.push(Action::SetPhase {
            release: release.to_owned(),
            phase,
            environment: env.map(str::to_owned),
            message,
        });
    }

    // --- manual rollback --------------------------------------------------

    fn handle_rollback_request(&mut self) {
        let Some(req) = &self.observed.requests.rollback else {
            return;
        };
        if self.state.handled.rollback.as_deref() == Some(req.id.as_str()) {
            return;
        }
        self.state.handled.rollback = Some(req.id.clone());
        if self.env_index(&req.environment).is_none() {
            self.event(
                super::reasons::ROLLBACK_REJECTED,
                format!(
                    "rollback rejected: no environment named {:?}",
                    req.environment
                ),
                true,
            );
            return;
        }
        match req.at {
            Some(at) if at > self.now => {
                self.state.scheduled_rollbacks.push(ScheduledRollback {
                    environment: req.environment.clone(),
                    to: req.to.clone(),
                    at,
                    requested_at: req.requested_at,
                });
                let target = req.to.as_deref().unwrap_or("the previous good release");
                self.event(
                    super::reasons::ROLLBACK_SCHEDULED,
                    format!(
                        "rollback of {} to {target} scheduled for {}",
                        req.environment,
                        at.to_rfc3339()
                    ),
                    false,
                );
            }
            _ => {
                let (env, to, requested_at) =
                    (req.environment.clone(), req.to.clone(), req.requested_at);
                self.manual_rollback(&env, to.as_deref(), requested_at);
            }
        }
    }

    fn run_due_rollbacks(&mut self) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.state.scheduled_rollbacks)
            .into_iter()
            .partition(|r| r.at <= self.now);
        self.state.scheduled_rollbacks = later;
        for r in due {
            if self.env_index(&r.environment).is_some() {
                self.manual_rollback(&r.environment, r.to.as_deref(), r.requested_at);
            }
        }
        let next = self.state.scheduled_rollbacks.iter().map(|r| r.at).min();
        self.wake.extend(next);
    }

    /// The release a rollback of `env` restores: a named one that was
    /// verified there, or the latest verified one other than the current.
    fn rollback_target(&self, env: usize, to: Option<&str>) -> Result<String, String> {
        let state = &self.state.environments[env];
        let exists = |r: &str| self.observed.built.contains(r);
        match to {
            Some(name) if !state.verified.iter().any(|v| v == name) => Err(format!(
                "release {name} was never verified healthy in {}",
                state.name
            )),
            Some(name) if !exists(name) => Err(format!("release {name} no longer exists")),
            Some(name) => Ok(name.to_owned()),
            None => state
                .verified
                .iter()
                .rev()
                .find(|v| Some(v.as_str()) != state.release.as_deref() && exists(v))
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "{} has no earlier release that was verified healthy",
                        state.name
                    )
                }),
        }
    }

    fn manual_rollback(&mut self, env_name: &str, to: Option<&str>, requested_at: DateTime<Utc>) {
        let Some(env) = self.env_index(env_name) else {
            return;
        };
        if let Some(pin) = &self.env_spec(env).pin {
            let msg =
                format!("rollback of {env_name} rejected: the environment is pinned to {pin}");
            self.event(super::reasons::ROLLBACK_REJECTED, msg, true);
            return;
        }
        let target = match self.rollback_target(env, to) {
            Ok(t) => t,
            Err(why) => {
                self.event(
                    super::reasons::ROLLBACK_REJECTED,
                    format!("rollback rejected: {why}"),
                    true,
                );
                return;
            }
        };
        if self.state.environments[env].release.as_deref() == Some(target.as_str()) {
            self.event(
                super::reasons::ROLLBACK_REJECTED,
                format!("rollback of {env_name} skipped: it already runs {target}"),
                false,
            );
            return;
        }
        // A release on its way through this environment stops here.
        if let Some(f) = &self.state.in_flight
            && f.environment.as_deref() == Some(env_name)
            && f.stage == Stage::Verifying
        {
            let msg = format!("stopped by a rollback of {env_name}");
            self.end_in_flight(ReleasePhase::Cancelled, Some(env_name), msg);
        }
        let from = self.state.environments[env].release.clone();
        if env == self.production_index()
            && let Some(from) = &from
        {
            let msg = format!("production rolled back to {target} on request");
            let from = from.clone();
            self.finished(&from, ReleasePhase::RolledBack, Some(env_name), msg);
        }
        self.rollback(env, target, RollbackCause::Requested { requested_at });
    }

    fn rollback(&mut self, env: usize, to: String, cause: RollbackCause) {
        let name = self.env_spec(env).name.clone();
        let from = self.state.environments[env].release.clone();
        let why = match &cause {
            RollbackCause::Automatic(reason) => format!("verification failed: {reason}"),
            RollbackCause::Requested { requested_at } => {
                format!("requested at {}", requested_at.to_rfc3339())
            }
        };
        self.event(
            super::reasons::ROLLED_BACK,
            format!(
                "{name} rolled back from {} to {to}: {why}",
                from.as_deref().unwrap_or("nothing")
            ),
            true,
        );
        self.actions.push(Action::Rollback {
            environment: name,
            from,
            to: to.clone(),
            targets: self.env_spec(env).targets.clone(),
            cause,
        });
        let state = &mut self.state.environments[env];
        state.release = Some(to);
        state.deployed_at = Some(self.now);
    }

    // --- pins ---------------------------------------------------------------

    fn apply_pins(&mut self) {
        for env in 0..self.spec.environments.len() {
            let Some(pin) = self.env_spec(env).pin.clone() else {
                continue;
            };
            if self.state.environments[env].release.as_deref() == Some(pin.as_str()) {
                continue;
            }
            let name = self.env_spec(env).name.clone();
            // A held or contended environment gets its pin once it is free.
            if self.observed.blocked.contains_key(&name) {
                continue;
            }
            if !self.observed.built.contains(&pin) {
                let msg =
                    format!("{name} is pinned to {pin}, which does not exist or has no images");
                self.event(super::reasons::PIN_UNKNOWN, msg, true);
                continue;
            }
            if let Some(f) = &self.state.in_flight
                && f.environment.as_deref() == Some(name.as_str())
                && f.stage == Stage::Verifying
            {
                let msg = format!("stopped: {name} was pinned to {pin}");
                self.end_in_flight(ReleasePhase::Cancelled, Some(&name), msg);
            }
            self.event(
                super::reasons::PINNED,
                format!("{name} pinned to {pin}"),
                false,
            );
            self.deploy(env, pin, DeployCause::Pin);
        }
    }

    fn deploy(&mut self, env: usize, release: String, cause: DeployCause) {
        let name = self.env_spec(env).name.clone();
        self.actions.push(Action::Deploy {
            environment: name.clone(),
            release: release.clone(),
            targets: self.env_spec(env).targets.clone(),
            cause,
        });
        self.event(
            super::reasons::DEPLOYED,
            format!("{release} deployed to {name}"),
            false,
        );
        let state = &mut self.state.environments[env];
        state.release = Some(release);
        state.deployed_at = Some(self.now);
    }

    // --- promotion -----------------------------------------------------------

    fn handle_promote_request(&mut self) {
        let Some(req) = &self.observed.requests.promote else {
            return;
        };
        if self.state.handled.promote.as_deref() == Some(req.id.as_str()) {
            return;
        }
        self.state.handled.promote = Some(req.id.clone());
        match &mut self.state.in_flight {
            Some(f) => {
                // A forced promotion stays forced: the release may already
                // have skipped the earlier environments because of it.
                let promotion = Promotion {
                    requested_at: req.requested_at,
                    force: req.force || f.promote.as_ref().is_some_and(|p| p.force),
                };
                let msg = format!(
                    "{} will be promoted to production without waiting for the window{}",
                    f.release,
                    if req.force {
                        ", before passing the earlier environments (forced)"
                    } else {
                        ""
                    }
                );
                f.promote = Some(promotion);
                self.event(super::reasons::PROMOTED, msg, false);
            }
            None => self.event(
                super::reasons::PROMOTE_REJECTED,
                "promotion ignored: no release is in flight".into(),
                true,
            ),
        }
    }

    // --- approval ------------------------------------------------------------

    fn handle_approve_request(&mut self) {
        let Some(req) = &self.observed.requests.approve else {
            return;
        };
        if self.state.handled.approve.as_deref() == Some(req.id.as_str()) {
            return;
        }
        self.state.handled.approve = Some(req.id.clone());
        let req = req.clone();
        match self.approval_of(&req) {
            Ok(approval) => {
                let by = approval
                    .reported_user
                    .as_deref()
                    .map(|u| format!(" by {u} (as reported by the client)"))
                    .unwrap_or_default();
                let msg = format!("{} approved for {}{by}", req.release, approval.environment);
                self.event(super::reasons::APPROVED, msg, false);
                self.actions.push(Action::RecordApproval {
                    release: req.release.clone(),
                    approval: approval.clone(),
                });
                if let Some(f) = &mut self.state.in_flight {
                    f.approvals
                        .retain(|a| a.environment != approval.environment);
                    f.approvals.push(approval);
                }
            }
            Err(why) => {
                let msg = format!("approval of {} ignored: {why}", req.release);
                self.event(super::reasons::APPROVAL_REJECTED, msg, true);
            }
        }
    }

    /// The approval a request gives, or why it gives none.
    fn approval_of(&self, req: &ApproveRequest) -> Result<Approval, String> {
        let f = match &self.state.in_flight {
            Some(f) if f.release == req.release => f,
            Some(f) => return Err(format!("the release in flight is {}", f.release)),
            None => return Err("no release is in flight".into()),
        };
        let env = req
            .environment
            .clone()
            .or_else(|| f.environment.clone())
            .ok_or("it names no environment and the release waits for none")?;
        let i = self
            .env_index(&env)
            .ok_or_else(|| format!("no environment named {env:?}"))?;
        if !self.env_spec(i).requires_approval() {
            return Err(format!("{env} does not require approval"));
        }
        let current = f.environment.as_deref().and_then(|e| self.env_index(e));
        let passed = match (current, f.stage) {
            (Some(c), Stage::Verifying) => i <= c,
            (Some(c), _) => i < c,
            (None, _) => false,
        };
        if passed {
            return Err(format!("it was already deployed to {env}"));
        }
        Ok(Approval {
            environment: env,
            approved_at: req.requested_at,
            reported_user: req.user.clone(),
            reported_groups: req.groups.clone(),
        })
    }

    // --- the release in flight -------------------------------------------------

    fn advance_in_flight(&mut self) {
        // Each step may move the release on; a bounded loop lets a release go
        // through several instant transitions (built -> staging) in one plan.
        for _ in 0..=self.spec.environments.len() + 1 {
            let Some(f) = self.state.in_flight.clone() else {
                return;
            };
            let moved = match f.stage {
                Stage::Building => self.advance_build(&f),
                Stage::Waiting => self.advance_waiting(&f),
                Stage::Verifying => self.advance_verifying(&f),
            };
            if !moved {
                return;
            }
        }
    }

    fn build_timeout(&self) -> TimeDelta {
        self.spec
            .components
            .iter()
            .filter_map(|c| duration::parse(&c.build.timeout).ok())
            .max()
            .unwrap_or(TimeDelta::hours(1))
    }

    fn advance_build(&mut self, f: &InFlight) -> bool {
        let deadline = later(f.since, self.build_timeout());
        let failure = match &self.observed.build {
            Some(BuildResult::Succeeded) => None,
            Some(BuildResult::Failed(reason)) => Some(reason.clone()),
            _ if self.now >= deadline => Some(format!(
                "the build did not finish within {}",
                duration::Display(self.build_timeout())
            )),
            _ => {
                self.wake.push(deadline);
                return false;
            }
        };
        if let Some(reason) = failure {
            let msg = format!("{} failed to build: {reason}", f.release);
            self.event(super::reasons::BUILD_FAILED, msg, true);
            self.end_in_flight(ReleasePhase::BuildFailed, None, reason);
            return true;
        }
        self.set_phase(&f.release, ReleasePhase::Built, None, "images built".into());
        self.event(super::reasons::BUILT, format!("{} built", f.release), false);
        self.wait_for(0);
        true
    }

    /// Moves the release in flight to wait for environment `env`.
    fn wait_for(&mut self, env: usize) {
        let name = self.env_spec(env).name.clone();
        if let Some(f) = &mut self.state.in_flight {
            f.stage = Stage::Waiting;
            f.environment = Some(name);
            f.since = self.now;
            f.rollout_complete_at = None;
            f.message = None;
        }
    }

    fn advance_waiting(&mut self, f: &InFlight) -> bool {
        let Some(env) = f.environment.as_deref().and_then(|e| self.env_index(e)) else {
            return false;
        };
        let production = env == self.production_index();
        let promoted = production && f.promote.is_some();
        let blocked = if let Some(why) = self.observed.blocked.get(&self.env_spec(env).name) {
            Some((why.clone(), None))
        } else if let Some(pin) = &self.env_spec(env).pin {
            Some((
                format!("{} is pinned to {pin}", self.env_spec(env).name),
                None,
            ))
        } else if self.awaits_approval(f, env) {
            Some((
                format!(
                    "waiting for approval to deploy to {}",
                    self.env_spec(env).name
                ),
                None,
            ))
        } else if promoted {
            None
        } else if self.spec.schedule.suspend {
            Some(("the deployment is suspended".to_owned(), None))
        } else {
            let gate = if production {
                self.calendar.production_gate(self.now)
            } else {
                self.calendar.staging_gate(self.now)
            };
            match gate {
                Gate::Open => None,
                Gate::Closed { why, reopens } => Some((why, reopens)),
            }
        };
        if let Some((why, reopens)) = blocked {
            self.wake.extend(reopens);
            let phase = if self.awaits_approval(f, env) {
                ReleasePhase::AwaitingApproval
            } else if production {
                ReleasePhase::AwaitingWindow
            } else {
                ReleasePhase::Built
            };
            if f.message.as_deref() != Some(why.as_str()) {
                self.set_phase(
                    &f.release,
                    phase,
                    Some(&self.env_spec(env).name.clone()),
                    why.clone(),
                );
                self.event(
                    super::reasons::WAITING,
                    format!("{}: {why}", f.release),
                    false,
                );
                if let Some(f) = &mut self.state.in_flight {
                    f.message = Some(why);
                }
            }
            return false;
        }
        let cause = match &f.promote {
            _ if !production => DeployCause::Train,
            Some(p) if p.force && !self.passed_before(&f.release, env) => DeployCause::Forced,
            Some(_) => DeployCause::Promoted,
            None => DeployCause::Train,
        };
        let name = self.env_spec(env).name.clone();
        let phase = if production {
            ReleasePhase::Production
        } else {
            ReleasePhase::Staging
        };
        self.set_phase(
            &f.release,
            phase,
            Some(&name),
            format!("deployed to {name}"),
        );
        self.deploy(env, f.release.clone(), cause);
        if let Some(f) = &mut self.state.in_flight {
            f.stage = Stage::Verifying;
            f.since = self.now;
            f.rollout_complete_at = None;
            f.message = None;
        }
        true
    }

    /// Whether the release may not deploy to `env` before a person approves.
    fn awaits_approval(&self, f: &InFlight, env: usize) -> bool {
        let spec = self.env_spec(env);
        spec.requires_approval() && !f.approvals.iter().any(|a| a.environment == spec.name)
    }

    /// Whether `release` was verified in every environment before `env`.
    fn passed_before(&self, release: &str, env: usize) -> bool {
        self.state.environments[..env]
            .iter()
            .all(|e| e.verified.iter().any(|v| v == release))
    }

    fn advance_verifying(&mut self, f: &InFlight) -> bool {
        let Some(env) = f.environment.as_deref().and_then(|e| self.env_index(e)) else {
            return false;
        };
        // A forced promotion skips the rest of staging.
        if env < self.production_index() && f.promote.as_ref().is_some_and(|p| p.force) {
            let msg = "staging verification skipped: forced promotion".to_owned();
            self.set_phase(&f.release, ReleasePhase::Verified, None, msg);
            self.wait_for(self.production_index());
            return true;
        }
        if let Some(why) = self.observed.unreachable.get(&self.env_spec(env).name) {
            self.pause_verification(f, why.clone());
            return false;
        }
        if f.message.is_some()
            && let Some(s) = &mut self.state.in_flight
        {
            s.message = None;
        }
        let health = &self.env_spec(env).health;
        let rollout_timeout =
            duration::parse(&health.rollout_timeout).unwrap_or(TimeDelta::minutes(10));
        let soak = duration::parse(&health.soak).unwrap_or_default();
        let report = self
            .observed
            .health
            .as_ref()
            .filter(|h| h.release == f.release);

        if let Some(reason) = report.and_then(|r| self.failure(env, r)) {
            self.fail_verification(f, env, reason);
            return true;
        }
        let complete = report.is_some_and(|r| {
            !r.workloads.is_empty() && r.workloads.iter().all(|w| w.rollout == Rollout::Complete)
        });
        // The soak needs the rollout to stay complete; a workload that goes
        // back to progressing restarts it, within the rollout timeout.
        let complete_at = complete.then(|| f.rollout_complete_at.unwrap_or(self.now));
        if let Some(s) = &mut self.state.in_flight {
            s.rollout_complete_at = complete_at;
        }
        let Some(complete_at) = complete_at else {
            let deadline = later(f.since, rollout_timeout);
            if self.now >= deadline {
                let reason = format!(
                    "the rollout did not complete within {}",
                    duration::Display(rollout_timeout)
                );
                self.fail_verification(f, env, reason);
                return true;
            }
            self.wake.push(deadline);
            self.wake_for_http_checks(env);
            return false;
        };
        if let Some(reason) = self.smoke_tests(f, env, report) {
            self.fail_verification(f, env, reason);
            return true;
        }
        let soaked = later(complete_at, soak);
        if self.now < soaked {
            self.wake.push(soaked);
            self.wake_for_http_checks(env);
            return false;
        }
        // Every metric check must have passed once; one that never had a
        // number to judge fails the release when the time is up.
        let unproven: Vec<String> = self
            .env_spec(env)
            .health
            .metrics
            .iter()
            .filter(|m| {
                !report
                    .and_then(|r| r.metrics.iter().find(|h| h.name == m.name))
                    .is_some_and(|h| h.passed)
            })
            .map(|m| m.name.clone())
            .collect();
        // Smoke tests still running hold the verdict; their timeout bounds
        // the wait.
        let passed = |name: &str| {
            report.is_some_and(|r| {
                r.jobs
                    .iter()
                    .any(|h| h.name == name && h.state == JobState::Passed)
            })
        };
        if !self
            .env_spec(env)
            .health
            .jobs
            .iter()
            .all(|j| passed(&j.name))
        {
            self.wake_for_http_checks(env);
            return false;
        }
        if !unproven.is_empty() {
            let deadline = soaked.max(later(later(f.since, rollout_timeout), soak));
            if self.now >= deadline {
                let reason = format!(
                    "metric check(s) {} had no passing measurement within the soak and rollout timeout",
                    unproven.join(", ")
                );
                self.fail_verification(f, env, reason);
                return true;
            }
            self.wake.push(deadline);
            self.wake_for_http_checks(env);
            return false;
        }
        self.verified(f, env);
        true
    }

    /// Nothing is judged while the environment's cluster does not answer:
    /// the rollout timeout and the soak start again once it does, so an
    /// outage of the API never fails a release.
    fn pause_verification(&mut self, f: &InFlight, why: String) {
        if f.message.as_deref() != Some(why.as_str()) {
            self.event(
                super::reasons::WAITING,
                format!("{}: verification paused: {why}", f.release),
                true,
            );
        }
        if let Some(s) = &mut self.state.in_flight {
            s.since = self.now;
            s.rollout_complete_at = None;
            s.message = Some(why);
        }
    }

    /// Starts the smoke tests not started yet, and wakes for the timeouts
    /// of those running. Says why verification fails when one failed or
    /// ran out of time.
    fn smoke_tests(
        &mut self,
        f: &InFlight,
        env: usize,
        report: Option<&HealthReport>,
    ) -> Option<String> {
        let spec = self.env_spec(env);
        let environment = spec.name.clone();
        let tests = spec.health.jobs.clone();
        let mut start = Vec::new();
        for test in &tests {
            let state = report
                .and_then(|r| r.jobs.iter().find(|h| h.name == test.name))
                .map_or(&JobState::NotStarted, |h| &h.state);
            match state {
                JobState::NotStarted => start.push(test.name.clone()),
                JobState::Running { since } => {
                    let timeout = duration::parse(&test.timeout).unwrap_or(TimeDelta::minutes(5));
                    let deadline = later(*since, timeout);
                    if self.now >= deadline {
                        return Some(format!(
                            "smoke test {} did not finish within {}",
                            test.name,
                            duration::Display(timeout)
                        ));
                    }
                    self.wake.push(deadline);
                }
                JobState::Passed => {}
                JobState::Failed(why) => {
                    return Some(format!("smoke test {} failed: {why}", test.name));
                }
            }
        }
        self.actions
            .extend(start.into_iter().map(|test| Action::RunSmokeTest {
                environment: environment.clone(),
                release: f.release.clone(),
                test,
            }));
        None
    }

    /// Wakes for the next HTTP or metric measurement.
    fn wake_for_http_checks(&mut self, env: usize) {
        let health = &self.env_spec(env).health;
        let interval = health
            .http_checks
            .iter()
            .map(|c| &c.interval)
            .chain(health.metrics.iter().map(|m| &m.interval))
            .filter_map(|i| duration::parse(i).ok())
            .filter(|d| *d > TimeDelta::zero())
            .min();
        self.wake.extend(interval.map(|i| later(self.now, i)));
    }

    /// Why an environment's health report fails verification, if it does.
    fn failure(&self, env: usize, report: &HealthReport) -> Option<String> {
        let health = &self.env_spec(env).health;
        if let Some(why) = &report.deploy_error {
            return Some(format!("deploy failed: {why}"));
        }
        for w in &report.workloads {
            if let Rollout::Failed(reason) = &w.rollout {
                return Some(format!("{}: {reason}", w.name));
            }
            if w.restarts > health.max_restarts {
                return Some(format!(
                    "{}: {} container restarts (limit {})",
                    w.name, w.restarts, health.max_restarts
                ));
            }
        }
        for h in &report.http {
            let threshold = health
                .http_checks
                .iter()
                .find(|c| c.url == h.url)
                .map_or(1, |c| c.failure_threshold);
            if h.consecutive_failures >= threshold {
                let why = h
                    .last_error
                    .as_deref()
                    .map(|e| format!(" (last: {e})"))
                    .unwrap_or_default();
                return Some(format!(
                    "{} failed {} checks in a row{why}",
                    h.url, h.consecutive_failures
                ));
            }
        }
        for m in &report.metrics {
            let Some(check) = health.metrics.iter().find(|c| c.name == m.name) else {
                continue;
            };
            if m.consecutive_failures >= check.failure_threshold {
                let what = match m.last.as_ref() {
                    Some(v) => match v
                        .value
                        .and_then(|x| Some((x, check.threshold_range.broken_by(x)?)))
                    {
                        Some((value, broken)) => format!("= {value} {broken}"),
                        None => format!("failed: {}", v.message),
                    },
                    None => "failed".to_owned(),
                };
                return Some(format!(
                    "metric {} {what} ({} of {} measurements)",
                    m.name, m.consecutive_failures, check.failure_threshold
                ));
            }
        }
        None
    }

    fn verified(&mut self, f: &InFlight, env: usize) {
        let name = self.env_spec(env).name.clone();
        let state = &mut self.state.environments[env];
        state.verified.retain(|v| v != &f.release);
        state.verified.push(f.release.clone());
        if state.verified.len() > VERIFIED_HISTORY {
            state.verified.remove(0);
        }
        self.event(
            super::reasons::VERIFIED,
            format!("{} verified in {name}", f.release),
            false,
        );
        if env == self.production_index() {
            self.event(
                super::reasons::RELEASED,
                format!("{} released", f.release),
                false,
            );
            self.end_in_flight(
                ReleasePhase::Released,
                Some(&name),
                format!("released to {name}"),
            );
            return;
        }
        let next = env + 1;
        if next == self.production_index() {
            self.set_phase(
                &f.release,
                ReleasePhase::Verified,
                Some(&name),
                format!("verified in {name}"),
            );
        }
        self.wait_for(next);
    }

    fn fail_verification(&mut self, f: &InFlight, env: usize, reason: String) {
        let name = self.env_spec(env).name.clone();
        self.event(
            super::reasons::VERIFICATION_FAILED,
            format!("{} failed verification in {name}: {reason}", f.release),
            true,
        );
        let production = env == self.production_index();
        // A pin holds the environment: nothing rolls it elsewhere.
        let spec = self.env_spec(env);
        let target = (spec.rollback.automatic && spec.pin.is_none())
            .then(|| self.rollback_target(env, None).ok())
            .flatten();
        let phase = match (&target, production) {
            (_, false) => ReleasePhase::StagingFailed,
            (Some(_), true) => ReleasePhase::RolledBack,
            (None, true) => ReleasePhase::Failed,
        };
        let message = match &target {
            Some(t) => format!("{reason}; {name} rolled back to {t}"),
            None => format!(
                "{reason}; {name} not rolled back (pinned, automatic rollback off, or no earlier verified release)"
            ),
        };
        self.end_in_flight(phase, Some(&name), message);
        if let Some(to) = target {
            self.rollback(env, to, RollbackCause::Automatic(reason));
        }
    }

    /// Ends the release in flight with a final phase.
    fn end_in_flight(&mut self, phase: ReleasePhase, env: Option<&str>, message: String) {
        if let Some(f) = self.state.in_flight.take() {
            self.finished(&f.release, phase, env, message);
        }
    }

    /// Records a release's final phase, also as the train's last outcome.
    fn finished(&mut self, release: &str, phase: ReleasePhase, env: Option<&str>, message: String) {
        self.state.last_finished = Some(Finished {
            release: release.to_owned(),
            phase,
            message: message.clone(),
        });
        self.set_phase(release, phase, env, message);
    }

    // --- new builds ---------------------------------------------------------------

    fn start_due_build(&mut self) {
        let suspended = self.spec.schedule.suspend;
        if !suspended {
            let since = self.state.last_build_slot.unwrap_or(self.now);
            if let Some(slot) = self.calendar.due_build(since, self.now) {
                self.state.last_build_slot = Some(slot);
                self.state.pending_build.get_or_insert(Trigger::Schedule);
            }
            if let Some(req) = &self.observed.requests.release
                && self.state.handled.release.as_deref() != Some(req.id.as_str())
            {
                self.state.handled.release = Some(req.id.clone());
                self.state.pending_build = Some(Trigger::Manual);
            }
        }
        if let Some(next) = self.calendar.next_build_after(self.now)
            && !suspended
        {
            self.wake.push(next);
        }
        let Some(trigger) = self.state.pending_build else {
            return;
        };
        match &self.state.in_flight {
            Some(f) if f.stage == Stage::Waiting => {
                let msg = format!("{} superseded by a newer build", f.release);
                self.event(super::reasons::SUPERSEDED, msg, false);
                self.end_in_flight(
                    ReleasePhase::Superseded,
                    None,
                    "a newer build replaced it".into(),
                );
            }
            Some(_) => return, // one release in flight; the build waits
            None => {}
        }
        self.state.pending_build = None;
        let release = self.new_release_name();
        self.event(
            super::reasons::BUILD_STARTED,
            format!("building {release} ({trigger:?})"),
            false,
        );
        self.actions.push(Action::StartBuild {
            release: release.clone(),
            trigger,
        });
        self.state.in_flight = Some(InFlight {
            release,
            trigger: Some(trigger),
            stage: Stage::Building,
            environment: None,
            since: self.now,
            rollout_complete_at: None,
            promote: None,
            message: None,
            approvals: Vec::new(),
        });
        self.wake.push(later(self.now, self.build_timeout()));
    }

    /// `<deployment>-<UTC time>`, with a counter if two builds start within
    /// the same second.
    fn new_release_name(&mut self) -> String {
        let base = format!(
            "{}-{}",
            self.observed.name,
            self.now.format("%Y%m%d-%H%M%S")
        );
        let name = match self.state.last_release.as_deref() {
            Some(last) if last == base || last.starts_with(&format!("{base}-")) => {
                let n: u32 = last
                    .strip_prefix(&base)
                    .and_then(|s| s.strip_prefix('-'))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                format!("{base}-{}", n + 1)
            }
            _ => base,
        };
        self.state.last_release = Some(name.clone());
        name
    }

    fn finish(mut self) -> Decision {
        // Even an idle train looks again when the window opens or closes,
        // so that the next window it reports is never one that passed.
        if self.calendar.has_window()
            && let Some(w) = self.calendar.window(self.now)
        {
            self.wake
                .push(if w.start > self.now { w.start } else { w.end });
        }
        let phase = match &self.state.in_flight {
            None if self.spec.schedule.suspend => "Suspended".to_owned(),
            None => "Idle".to_owned(),
            Some(f) => match (f.stage, f.environment.as_deref()) {
                (Stage::Building, _) => "Building".to_owned(),
                (Stage::Waiting, Some(env)) => format!("Waiting:{env}"),
                (Stage::Verifying, Some(env)) => format!("Verifying:{env}"),
                (_, None) => format!("{:?}", f.stage),
            },
        };
        let requeue_at = self.wake.iter().copied().filter(|t| *t > self.now).min();
        Decision {
            next_build: (!self.spec.schedule.suspend)
                .then(|| self.calendar.next_build_after(self.now))
                .flatten(),
            next_window: self
                .calendar
                .has_window()
                .then(|| self.calendar.window(self.now).map(|w| w.start))
                .flatten(),
            actions: self.actions,
            state: self.state,
            requeue_at,
            phase,
        }
    }
}
