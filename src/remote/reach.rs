//! Whether a remote cluster answers, and how long to wait before asking
//! again when it does not.

use std::sync::Mutex;
use std::time::Duration;

/// Consecutive failed attempts to reach one cluster.
#[derive(Debug, Default)]
pub struct Reach(Mutex<u32>);

impl Reach {
    pub fn succeeded(&self) {
        *self.lock() = 0;
    }

    /// Counts a failure; returns how long to wait before the next try.
    pub fn failed(&self) -> Duration {
        let mut failures = self.lock();
        *failures = failures.saturating_add(1);
        backoff(*failures)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u32> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// 2 s after the first failure, doubling to at most a minute. The watches
/// wake the train sooner when the cluster is back.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(5);
    Duration::from_secs(2u64 << exp).min(Duration::from_secs(60))
}

/// Whether an error means the cluster did not answer (or answered that it
/// cannot serve now), as opposed to a refusal worth reporting as such.
pub fn is_unreachable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_from_two_seconds_to_a_minute() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
        let reach = Reach::default();
        assert_eq!(reach.failed(), Duration::from_secs(2));
        assert_eq!(reach.failed(), Duration::from_secs(4));
        reach.succeeded();
        assert_eq!(reach.failed(), Duration::from_secs(2));
    }
}
