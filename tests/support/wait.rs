//! Waiting for the cluster to reach a state: poll with a short interval
//! until a deadline, never sleep a guessed time.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use anyhow::{Result, bail};
use kube::Api;
use serde::de::DeserializeOwned;
use tokio::time::{Instant, sleep};

/// Long enough for anything the local cluster does in the smoke tests
/// several times over, even on a loaded two-core machine.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);
/// How often a condition is checked again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Calls `check` every [`POLL_INTERVAL`] until it returns `Ok(Some(value))`
/// and returns that value. Errors count as "not yet" (the API server may be
/// busy); after `timeout` this fails, naming `what` and the last error.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(err) => last_error = Some(err),
        }
        if Instant::now() >= deadline {
            match last_error {
                Some(err) => bail!("timed out after {timeout:?} waiting for {what}: {err:#}"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        sleep(POLL_INTERVAL).await;
    }
}

/// Waits until the object `name` exists and satisfies `condition`, and
/// returns it. On timeout the error shows the object as last seen.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    condition: impl Fn(&K) -> bool,
) -> Result<K>
where
    K: Clone + DeserializeOwned + Debug,
{
    let deadline = Instant::now() + timeout;
    let mut last_seen = None;
    let mut last_error = None;
    loop {
        match api.get_opt(name).await {
            Ok(Some(object)) if condition(&object) => return Ok(object),
            Ok(object) => last_seen = object,
            Err(err) => last_error = Some(err),
        }
        if Instant::now() >= deadline {
            let seen = match last_seen {
                Some(object) => format!("{name} as last seen: {object:#?}"),
                None => format!("{name} was not found"),
            };
            match last_error {
                Some(err) => {
                    bail!("timed out after {timeout:?} waiting for {what} ({err}); {seen}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}; {seen}"),
            }
        }
        sleep(POLL_INTERVAL).await;
    }
}
