//! HTTP health checks with their failure counts kept in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::join_all;

use super::HealthError;
use crate::api::deployment::HttpCheck;
use crate::api::duration;
use crate::http::AddressPolicy;
use crate::plan::HttpHealth;

/// Used when a check's interval does not parse (the schema prevents it).
const DEFAULT_INTERVAL: TimeDelta = TimeDelta::seconds(30);
/// Upper bound of a probe's timeout; shorter intervals time out sooner.
const MAX_TIMEOUT: Duration = Duration::from_secs(10);
/// Lower bound, so a zero interval still gives a probe a chance.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Probes HTTP checks and counts consecutive failures per `(key, url)`,
/// where the key names whatever the checks belong to (say, an environment
/// of a PackitDeployment). The counts live in memory only: after a restart
/// they start from zero, which at worst delays a failure by a few probes.
pub struct HttpProber {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    state: Mutex<HashMap<String, HashMap<String, CheckState>>>,
}

#[derive(Debug, Clone, Default)]
struct CheckState {
    last_probe: Option<DateTime<Utc>>,
    consecutive_failures: u32,
    last_error: Option<String>,
}

impl HttpProber {
    /// A prober with its own HTTP client (rustls with aws-lc-rs, the system's
    /// trusted roots, no proxy), connecting only where `policy` allows.
    pub fn new(policy: Arc<AddressPolicy>) -> Result<Self, HealthError> {
        let client = crate::http::client(policy.clone()).map_err(HealthError::HttpClient)?;
        Ok(Self {
            client,
            policy,
            state: Mutex::new(HashMap::new()),
        })
    }

    /// The HTTP client, for the operator's other outgoing requests.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The address policy the client enforces.
    pub fn policy(&self) -> &Arc<AddressPolicy> {
        &self.policy
    }

    /// GETs every check whose interval has passed since its last probe (or
    /// that was never probed), then reports all checks. A 2xx answer resets
    /// the count; any other status, a timeout or a connection error adds one.
    /// Counts of URLs no longer among `checks` are dropped.
    pub async fn probe_due(
        &self,
        key: &str,
        checks: &[HttpCheck],
        now: DateTime<Utc>,
    ) -> Vec<HttpHealth> {
        let due = self.take_due(key, checks, now);
        let outcomes = join_all(
            due.iter()
                .map(|(url, timeout)| self.probe(url.as_str(), *timeout)),
        )
        .await;

        let mut state = self.lock();
        // A reset while probing means the results belong to an old deploy.
        let Some(entry) = state.get_mut(key) else {
            return checks.iter().map(|c| health(&c.url, None)).collect();
        };
        for ((url, _), outcome) in due.iter().zip(outcomes) {
            if let Some(check) = entry.get_mut(url) {
                match outcome {
                    Ok(()) => {
                        check.consecutive_failures = 0;
                        check.last_error = None;
                    }
                    Err(why) => {
                        check.consecutive_failures = check.consecutive_failures.saturating_add(1);
                        check.last_error = Some(why);
                    }
                }
            }
        }
        checks
            .iter()
            .map(|c| health(&c.url, entry.get(&c.url)))
            .collect()
    }

    /// Forgets the counts of `key` (for example after a new deploy).
    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Marks the checks that are due as probed now and returns their URLs
    /// and timeouts, so a concurrent call does not probe them again.
    fn take_due(
        &self,
        key: &str,
        checks: &[HttpCheck],
        now: DateTime<Utc>,
    ) -> Vec<(String, Duration)> {
        let mut state = self.lock();
        let entry = state.entry(key.to_owned()).or_default();
        entry.retain(|url, _| checks.iter().any(|c| c.url == *url));
        let mut due: Vec<(String, Duration)> = Vec::new();
        for check in checks {
            if due.iter().any(|(url, _)| *url == check.url) {
                continue;
            }
            let interval = duration::parse(&check.interval).unwrap_or(DEFAULT_INTERVAL);
            let state = entry.entry(check.url.clone()).or_default();
            // A clock that went back counts as due rather than stalling.
            let is_due = state
                .last_probe
                .is_none_or(|last| now < last || now - last >= interval);
            if is_due {
                state.last_probe = Some(now);
                let timeout = interval
                    .to_std()
                    .unwrap_or(MIN_TIMEOUT)
                    .clamp(MIN_TIMEOUT, MAX_TIMEOUT);
                due.push((check.url.clone(), timeout));
            }
        }
        due
    }

    /// One GET; why it failed, when it did.
    async fn probe(&self, url: &str, timeout: Duration) -> Result<(), String> {
        // A refused literal address is not even connected to (the client
        // checks names and every connection itself).
        if let Ok(parsed) = reqwest::Url::parse(url) {
            self.policy.check_url(&parsed).map_err(|r| r.to_string())?;
        }
        match self.client.get(url).timeout(timeout).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => {
                tracing::debug!(url, status = %response.status(), "HTTP check failed");
                Err(format!("answered {}", response.status()))
            }
            Err(error) => {
                tracing::debug!(url, %error, "HTTP check failed");
                // A refusal is said as such: it is the spec to fix, not
                // the application.
                Err(match crate::http::refusal(&error) {
                    Some(refused) => refused.to_string(),
                    None if error.is_timeout() => "timed out".to_owned(),
                    None => "unreachable".to_owned(),
                })
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, CheckState>>> {
        // The map stays consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn health(url: &str, state: Option<&CheckState>) -> HttpHealth {
    HttpHealth {
        url: url.to_owned(),
        consecutive_failures: state.map_or(0, |s| s.consecutive_failures),
        last_error: state.and_then(|s| s.last_error.clone()),
    }
}
