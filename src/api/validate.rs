//! Checks the CRD schema cannot express: cron syntax, time zones, windows
//! that never open, freezes that end before they start. The controller turns
//! the errors into an `InvalidSpec` condition and an Event.

use std::collections::BTreeSet;
use std::fmt;

use super::checks::{MetricCheck, SmokeTest, check_query};
use super::cron::{ParsedSchedule, parse_schedule};
use super::deployment::{BuildStrategy, PackitDeploymentSpec, Webhook, WebhookFormat};
use super::duration::{self, BadDuration};

/// One problem in a spec, with the field path and the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub field: String,
    pub value: String,
    pub message: String,
}

impl SpecError {
    pub fn new(
        field: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            value: value.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?} {}", self.field, self.value, self.message)
    }
}

/// All problems of a spec, joined for a condition message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidSpec(pub Vec<SpecError>);

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

/// Validates a spec beyond its schema. Also repeats the schema's structural
/// rules (unique names, known components) so objects stored under an older
/// schema are caught too.
pub fn validate(spec: &PackitDeploymentSpec) -> Result<ParsedSchedule, InvalidSpec> {
    let mut errors = Vec::new();
    let schedule = parse_schedule(&spec.schedule)
        .map_err(|e| errors.extend(e))
        .ok();

    if spec.components.is_empty() {
        errors.push(SpecError::new(
            "spec.components",
            "[]",
            "must list at least one component",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, c) in spec.components.iter().enumerate() {
        if !seen.insert(c.name.as_str()) {
            errors.push(SpecError::new(
                format!("spec.components[{i}].name"),
                &c.name,
                "is used by another component; names must be unique",
            ));
        }
        check_duration(
            &mut errors,
            format!("spec.components[{i}].build.timeout"),
            &c.build.timeout,
        );
        if (c.build.strategy == BuildStrategy::Job) != c.build.job.is_some() {
            errors.push(SpecError::new(
                format!("spec.components[{i}].build.strategy"),
                format!("{:?}", c.build.strategy),
                "needs build.job exactly when the strategy is Job",
            ));
        }
    }

    for (i, r) in spec.changelog.rules.iter().enumerate() {
        if r.pattern.is_none() && r.paths.is_empty() {
            errors.push(SpecError::new(
                format!("spec.changelog.rules[{i}]"),
                "{}",
                "needs a pattern, paths or both",
            ));
        }
    }

    if spec.environments.is_empty() {
        errors.push(SpecError::new(
            "spec.environments",
            "[]",
            "must list at least one environment",
        ));
    }
    let mut envs = BTreeSet::new();
    for (i, e) in spec.environments.iter().enumerate() {
        let path = format!("spec.environments[{i}]");
        if !envs.insert(e.name.as_str()) {
            errors.push(SpecError::new(
                format!("{path}.name"),
                &e.name,
                "is used by another environment; names must be unique",
            ));
        }
        if e.targets.is_empty() {
            errors.push(SpecError::new(
                format!("{path}.targets"),
                "[]",
                "must list at least one target",
            ));
        }
        for (j, t) in e.targets.iter().enumerate() {
            if !seen.contains(t.component.as_str()) {
                errors.push(SpecError::new(
                    format!("{path}.targets[{j}].component"),
                    &t.component,
                    "does not name a component in spec.components",
                ));
            }
        }
        check_duration(
            &mut errors,
            format!("{path}.health.rolloutTimeout"),
            &e.health.rollout_timeout,
        );
        check_duration(&mut errors, format!("{path}.health.soak"), &e.health.soak);
        for (j, h) in e.health.http_checks.iter().enumerate() {
            let field = format!("{path}.health.httpChecks[{j}].interval");
            if let Ok(d) = duration::parse(&h.interval)
                && d.num_seconds() == 0
            {
                errors.push(SpecError::new(
                    field,
                    &h.interval,
                    "must be longer than zero",
                ));
            } else {
                check_duration(&mut errors, field, &h.interval);
            }
        }
        check_metrics(&mut errors, &path, &e.health.metrics);
        check_smoke_tests(&mut errors, &path, &e.health.jobs);
    }
    check_webhooks(&mut errors, &spec.changelog.webhooks);

    match schedule {
        Some(schedule) if errors.is_empty() => Ok(schedule),
        _ => Err(InvalidSpec(errors)),
    }
}

/// The schema's webhook rules again, for objects stored under an older
/// schema: what each format needs and allows.
fn check_webhooks(errors: &mut Vec<SpecError>, hooks: &[Webhook]) {
    for (i, h) in hooks.iter().enumerate() {
        let path = format!("spec.changelog.webhooks[{i}]");
        if h.format == WebhookFormat::Matrix {
            if h.room_id.is_none() {
                errors.push(SpecError::new(
                    format!("{path}.roomId"),
                    "",
                    "is required for a Matrix webhook",
                ));
            }
            if h.secret_ref.is_none() {
                errors.push(SpecError::new(
                    format!("{path}.secretRef"),
                    "",
                    "is required for a Matrix webhook (a Secret whose key token is the access token)",
                ));
            }
            if h.url.contains(['?', '#']) {
                errors.push(SpecError::new(
                    format!("{path}.url"),
                    &h.url,
                    "must be the homeserver's base URL, without query or fragment",
                ));
            }
        } else if h.room_id.is_some() || h.msgtype.is_some() {
            errors.push(SpecError::new(
                format!("{path}.format"),
                format!("{:?}", h.format),
                "does not take roomId or msgtype: they are for Matrix webhooks only",
            ));
        }
    }
}

fn check_duration(errors: &mut Vec<SpecError>, field: String, value: &str) {
    if duration::parse(value).is_err() {
        errors.push(SpecError::new(field, value, BadDuration::EXPECTED));
    }
}

/// Smoke tests: a timeout above zero and a pod template with a container
/// (the rest of the template is checked by the API server when the Job is
/// created).
fn check_smoke_tests(errors: &mut Vec<SpecError>, path: &str, tests: &[SmokeTest]) {
    for (j, t) in tests.iter().enumerate() {
        let field = format!("{path}.health.jobs[{j}]");
        match duration::parse(&t.timeout) {
            Ok(d) if d.num_seconds() == 0 => errors.push(SpecError::new(
                format!("{field}.timeout"),
                &t.timeout,
                "must be longer than zero",
            )),
            Ok(_) => {}
            Err(_) => errors.push(SpecError::new(
                format!("{field}.timeout"),
                &t.timeout,
                BadDuration::EXPECTED,
            )),
        }
        if t.template
            .spec
            .as_ref()
            .is_none_or(|s| s.containers.is_empty())
        {
            errors.push(SpecError::new(
                format!("{field}.template.spec.containers"),
                "[]",
                "a smoke test needs at least one container",
            ));
        }
    }
}

/// Metric checks: unique names, a non-empty query with known variables,
/// bounds that admit a value, an interval above zero.
fn check_metrics(errors: &mut Vec<SpecError>, path: &str, checks: &[MetricCheck]) {
    let mut names = BTreeSet::new();
    for (j, m) in checks.iter().enumerate() {
        let field = format!("{path}.health.metrics[{j}]");
        if !names.insert(m.name.as_str()) {
            errors.push(SpecError::new(
                format!("{field}.name"),
                &m.name,
                "is used by another metric check; names must be unique",
            ));
        }
        if m.query.trim().is_empty() {
            errors.push(SpecError::new(
                format!("{field}.query"),
                &m.query,
                "must not be empty",
            ));
        } else if let Err(e) = check_query(&m.query) {
            errors.push(SpecError::new(format!("{field}.query"), &m.query, e));
        }
        let range = &m.threshold_range;
        let bounds = format!("min {:?}, max {:?}", range.min, range.max);
        let finite = [range.min, range.max]
            .iter()
            .flatten()
            .all(|b| b.is_finite());
        if (range.min.is_none() && range.max.is_none()) || !finite {
            errors.push(SpecError::new(
                format!("{field}.thresholdRange"),
                bounds,
                "needs a finite min, max or both",
            ));
        } else if let (Some(min), Some(max)) = (range.min, range.max)
            && min > max
        {
            errors.push(SpecError::new(
                format!("{field}.thresholdRange"),
                bounds,
                "min must not be above max",
            ));
        }
        let interval = format!("{field}.interval");
        match duration::parse(&m.interval) {
            Ok(d) if d.num_seconds() == 0 => {
                errors.push(SpecError::new(
                    interval,
                    &m.interval,
                    "must be longer than zero",
                ));
            }
            Ok(_) => {}
            Err(_) => errors.push(SpecError::new(interval, &m.interval, BadDuration::EXPECTED)),
        }
    }
}
