//! Metric checks: PromQL instant queries against the application's own
//! Prometheus, each on its own interval with at most one query in flight
//! per check, and their verdicts kept in memory per deploy.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::join_all;
use serde::Deserialize;

use crate::api::checks::{CheckResult, CheckVerdict, OnNoData, ThresholdRange};
use crate::http::AddressPolicy;
use crate::plan::MetricHealth;

/// Upper bound of a query's timeout; shorter intervals time out sooner.
const MAX_TIMEOUT: Duration = Duration::from_secs(10);
const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Credentials for Prometheus.
#[derive(Clone, PartialEq, Eq)]
pub enum PrometheusAuth {
    Bearer(String),
    Basic { username: String, password: String },
}

impl std::fmt::Debug for PrometheusAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret itself.
        f.write_str(match self {
            Self::Bearer(_) => "Bearer(..)",
            Self::Basic { .. } => "Basic(..)",
        })
    }
}

/// One metric check, ready to run: variables filled in.
#[derive(Debug, Clone)]
pub struct MetricQuery {
    pub name: String,
    pub address: String,
    pub auth: Option<PrometheusAuth>,
    pub query: String,
    pub interval: TimeDelta,
    pub range: ThresholdRange,
    pub on_no_data: OnNoData,
    /// Why it cannot be asked at all (its credentials cannot be read): each
    /// measurement is then "no data" with this reason.
    pub blocked: Option<String>,
}

/// What one query gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Measurement {
    /// One finite number.
    Value(f64),
    /// An answer that is not one number (several series, NaN, a string).
    Malformed(String),
    /// No number to judge: an empty result, Prometheus unreachable or
    /// answering with an error.
    NoData(String),
    /// The address may not be connected to: a failure whatever `onNoData`
    /// says, since waiting will not change it.
    Refused(String),
}

/// Runs metric checks and keeps their verdicts per `(key, release)`, where
/// the key names an environment of a PackitDeployment: a new release there
/// starts from nothing. Verdicts live in memory; the release records the
/// latest, and after a restart counting starts again.
pub struct MetricProber {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    state: Mutex<HashMap<String, Deploy>>,
}

#[derive(Default)]
struct Deploy {
    release: String,
    checks: BTreeMap<String, CheckState>,
}

#[derive(Debug, Clone, Default)]
struct CheckState {
    last_started: Option<DateTime<Utc>>,
    in_flight: bool,
    consecutive_failures: u32,
    measurements: u32,
    passed: bool,
    last: Option<CheckVerdict>,
}

impl MetricProber {
    /// Queries through `client`, which enforces `policy`.
    pub fn new(client: reqwest::Client, policy: Arc<AddressPolicy>) -> Self {
        Self {
            client,
            policy,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Queries every check that is due and not already being queried, then
    /// reports all of them.
    pub async fn measure_due(
        &self,
        key: &str,
        release: &str,
        checks: &[MetricQuery],
        now: DateTime<Utc>,
    ) -> Vec<MetricHealth> {
        let due = self.take_due(key, release, checks, now);
        let measured = join_all(due.iter().map(|c| self.measure(c))).await;
        let mut state = self.lock();
        let deploy = state.entry(key.to_owned()).or_default();
        let mut fresh = Vec::new();
        // A newer release may have replaced this one meanwhile.
        if deploy.release == release {
            for (check, measurement) in due.iter().zip(measured) {
                if let Some(s) = deploy.checks.get_mut(&check.name) {
                    s.in_flight = false;
                    record(s, check, &measurement, now);
                    fresh.push(check.name.clone());
                }
            }
        }
        checks
            .iter()
            .map(|c| {
                let s = deploy.checks.get(&c.name).cloned().unwrap_or_default();
                MetricHealth {
                    name: c.name.clone(),
                    consecutive_failures: s.consecutive_failures,
                    passed: s.passed,
                    last: s.last,
                    fresh: fresh.contains(&c.name),
                }
            })
            .collect()
    }

    fn take_due(
        &self,
        key: &str,
        release: &str,
        checks: &[MetricQuery],
        now: DateTime<Utc>,
    ) -> Vec<MetricQuery> {
        let mut state = self.lock();
        let deploy = state.entry(key.to_owned()).or_default();
        if deploy.release != release {
            *deploy = Deploy {
                release: release.to_owned(),
                ..Default::default()
            };
        }
        deploy
            .checks
            .retain(|name, _| checks.iter().any(|c| c.name == *name));
        let mut due = Vec::new();
        for check in checks {
            let s = deploy.checks.entry(check.name.clone()).or_default();
            // A clock that went back counts as due rather than stalling.
            let is_due = !s.in_flight
                && s.last_started
                    .is_none_or(|last| now < last || now - last >= check.interval);
            if is_due {
                s.last_started = Some(now);
                s.in_flight = true;
                due.push(check.clone());
            }
        }
        due
    }

    async fn measure(&self, check: &MetricQuery) -> Measurement {
        if let Some(why) = &check.blocked {
            return Measurement::NoData(why.clone());
        }
        let timeout = check
            .interval
            .to_std()
            .unwrap_or(MIN_TIMEOUT)
            .clamp(MIN_TIMEOUT, MAX_TIMEOUT);
        let address = check.address.trim_end_matches('/');
        let shown = crate::redact::redact_url(address);
        let mut url = match reqwest::Url::parse(&format!("{address}/api/v1/query")) {
            Ok(u) => u,
            Err(e) => return Measurement::NoData(format!("Prometheus address {shown}: {e}")),
        };
        url.query_pairs_mut().append_pair("query", &check.query);
        if let Err(refused) = self.policy.check_url(&url) {
            return Measurement::Refused(format!("Prometheus {shown}: {refused}"));
        }
        let mut request = self.client.get(url).timeout(timeout);
        request = match &check.auth {
            Some(PrometheusAuth::Bearer(token)) => request.bearer_auth(token),
            Some(PrometheusAuth::Basic { username, password }) => {
                request.basic_auth(username, Some(password))
            }
            None => request,
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return match crate::http::refusal(&e) {
                    Some(refused) => Measurement::Refused(format!("Prometheus {shown}: {refused}")),
                    None => Measurement::NoData(format!("Prometheus {shown} unreachable: {e}")),
                };
            }
        };
        let status = response.status();
        match response.bytes().await {
            Ok(body) => parse(status.as_u16(), &body, &shown),
            Err(e) => Measurement::NoData(format!("Prometheus {shown}: reading the answer: {e}")),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Deploy>> {
        // The map stays consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts a measurement into a check's state.
fn record(s: &mut CheckState, check: &MetricQuery, m: &Measurement, now: DateTime<Utc>) {
    s.measurements += 1;
    let (result, value, message) = match m {
        Measurement::Value(v) => match check.range.broken_by(*v) {
            None => (CheckResult::Pass, Some(*v), format!("{v} within bounds")),
            Some(broken) => (CheckResult::Fail, Some(*v), format!("{v} {broken}")),
        },
        Measurement::Malformed(why) | Measurement::Refused(why) => {
            (CheckResult::Fail, None, why.clone())
        }
        Measurement::NoData(why) => (CheckResult::Inconclusive, None, why.clone()),
    };
    let counts_as = match (result, check.on_no_data) {
        (CheckResult::Inconclusive, OnNoData::Fail) => Some(false),
        (CheckResult::Inconclusive, OnNoData::Pass) => Some(true),
        (CheckResult::Inconclusive, OnNoData::Wait) => None,
        (r, _) => Some(r == CheckResult::Pass),
    };
    match counts_as {
        Some(true) => {
            s.consecutive_failures = 0;
            s.passed = true;
        }
        Some(false) => s.consecutive_failures += 1,
        None => {}
    }
    s.last = Some(CheckVerdict {
        name: check.name.clone(),
        result,
        value,
        bounds: bounds(&check.range),
        consecutive_failures: s.consecutive_failures,
        measurements: s.measurements,
        measured_at: now,
        message,
    });
}

/// `min 0, max 0.05`.
pub fn bounds(range: &ThresholdRange) -> String {
    let parts: Vec<String> = [("min", range.min), ("max", range.max)]
        .into_iter()
        .filter_map(|(n, b)| Some(format!("{n} {}", b?)))
        .collect();
    parts.join(", ")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

/// What an answer of the query API says, as one measurement.
pub fn parse(status: u16, body: &[u8], shown: &str) -> Measurement {
    let answer: Answer = match serde_json::from_slice(body) {
        Ok(a) => a,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(200).collect();
            return Measurement::NoData(format!(
                "Prometheus {shown} answered HTTP {status}: {}",
                text.trim()
            ));
        }
    };
    if answer.status != "success" {
        return Measurement::NoData(format!(
            "Prometheus {shown} answered {}: {}",
            answer.error_type.as_deref().unwrap_or("an error"),
            answer.error.as_deref().unwrap_or("no detail")
        ));
    }
    let Some(data) = answer.data else {
        return Measurement::NoData(format!("Prometheus {shown} answered without data"));
    };
    let sample = match data.result_type.as_str() {
        "scalar" => Some(data.result.clone()),
        "vector" => match data.result.as_array().map(Vec::as_slice) {
            Some([]) | None => return Measurement::NoData("the query returned no data".into()),
            Some([one]) => one.get("value").cloned(),
            Some(many) => {
                return Measurement::Malformed(format!(
                    "the query returned {} series; it must return one number",
                    many.len()
                ));
            }
        },
        other => {
            return Measurement::Malformed(format!(
                "the query returned a {other}; it must return one number"
            ));
        }
    };
    let value = sample
        .as_ref()
        .and_then(|s| s.get(1))
        .and_then(|v| v.as_str())
        .map(str::parse::<f64>);
    match value {
        Some(Ok(v)) if v.is_finite() => Measurement::Value(v),
        Some(Ok(v)) => {
            Measurement::Malformed(format!("the query returned {v}, not a finite number"))
        }
        _ => Measurement::Malformed("the query's sample has no number".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Measurement {
        parse(200, json.as_bytes(), "http://prom")
    }

    fn check(on_no_data: OnNoData) -> MetricQuery {
        MetricQuery {
            name: "error-rate".into(),
            address: "http://prom".into(),
            auth: None,
            query: "q".into(),
            interval: TimeDelta::seconds(10),
            range: ThresholdRange {
                min: None,
                max: Some(0.05),
            },
            on_no_data,
            blocked: None,
        }
    }

    #[test]
    fn one_number_or_a_reason() {
        assert_eq!(
            answer(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.31"]}]}}"#
            ),
            Measurement::Value(0.31)
        );
        assert_eq!(
            answer(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#),
            Measurement::Value(2.0)
        );
        assert!(matches!(
            answer(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#),
            Measurement::NoData(_)
        ));
        let two = answer(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#,
        );
        assert_eq!(
            two,
            Measurement::Malformed("the query returned 2 series; it must return one number".into())
        );
        for (v, shown) in [("NaN", "NaN"), ("+Inf", "inf")] {
            let m = answer(&format!(
                r#"{{"status":"success","data":{{"resultType":"scalar","result":[1,"{v}"]}}}}"#
            ));
            assert!(
                matches!(&m, Measurement::Malformed(w) if w.contains(shown)),
                "{m:?}"
            );
        }
        assert!(matches!(
            answer(r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#),
            Measurement::Malformed(w) if w.contains("string")
        ));
        let err = parse(
            400,
            br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
            "http://prom",
        );
        assert_eq!(
            err,
            Measurement::NoData("Prometheus http://prom answered bad_data: parse error".into())
        );
        assert!(
            matches!(parse(502, b"<html>bad gateway</html>", "http://prom"), Measurement::NoData(w) if w.contains("HTTP 502"))
        );
    }

    #[test]
    fn no_data_counts_by_the_check_rule() {
        let now = Utc::now();
        let no_data = Measurement::NoData("down".into());
        for (rule, failures, passed) in [
            (OnNoData::Fail, 1, false),
            (OnNoData::Pass, 0, true),
            (OnNoData::Wait, 0, false),
        ] {
            let mut s = CheckState::default();
            record(&mut s, &check(rule), &no_data, now);
            assert_eq!(
                (s.consecutive_failures, s.passed),
                (failures, passed),
                "{rule:?}"
            );
            let last = s.last.unwrap();
            assert_eq!(last.result, CheckResult::Inconclusive);
            assert_eq!(last.message, "down");
        }
        let mut s = CheckState::default();
        let c = check(OnNoData::Wait);
        record(&mut s, &c, &Measurement::Value(0.31), now);
        record(&mut s, &c, &Measurement::Value(0.5), now);
        assert_eq!(s.consecutive_failures, 2);
        let last = s.last.clone().unwrap();
        assert_eq!(
            (last.result, last.value, last.bounds.as_str()),
            (CheckResult::Fail, Some(0.5), "max 0.05")
        );
        record(&mut s, &c, &Measurement::Value(0.01), now);
        assert_eq!(
            (s.consecutive_failures, s.passed, s.measurements),
            (0, true, 3)
        );
    }

    #[tokio::test]
    async fn a_refused_address_fails_the_check_even_when_it_waits_on_no_data() {
        let policy = Arc::new(AddressPolicy::default());
        let client = crate::http::client(policy.clone()).unwrap();
        let prober = MetricProber::new(client, policy);
        let mut c = check(OnNoData::Wait);
        c.address = "http://169.254.169.254:9090".into();
        let health = prober.measure_due("k", "r1", &[c], Utc::now()).await;
        assert_eq!(health[0].consecutive_failures, 1);
        let last = health[0].last.clone().unwrap();
        assert_eq!(last.result, CheckResult::Fail);
        assert!(
            last.message
                .starts_with("Prometheus http://169.254.169.254:9090: 169.254.169.254:9090 is refused: a link-local"),
            "{}",
            last.message
        );
    }

    #[test]
    fn a_check_is_not_queried_again_while_in_flight_or_before_its_interval() {
        let prober = MetricProber::new(reqwest::Client::new(), Default::default());
        let now = Utc::now();
        let checks = [check(OnNoData::Wait)];
        assert_eq!(prober.take_due("k", "r1", &checks, now).len(), 1);
        // Still in flight: not due again, whatever the time.
        assert!(
            prober
                .take_due("k", "r1", &checks, now + TimeDelta::minutes(5))
                .is_empty()
        );
        prober
            .lock()
            .get_mut("k")
            .unwrap()
            .checks
            .get_mut("error-rate")
            .unwrap()
            .in_flight = false;
        assert!(
            prober
                .take_due("k", "r1", &checks, now + TimeDelta::seconds(5))
                .is_empty()
        );
        assert_eq!(
            prober
                .take_due("k", "r1", &checks, now + TimeDelta::seconds(10))
                .len(),
            1
        );
        // A new release starts over.
        assert_eq!(prober.take_due("k", "r2", &checks, now).len(), 1);
    }
}
