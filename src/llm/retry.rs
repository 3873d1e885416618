//! Transport retries: only transient errors, exponential backoff with jitter, `Retry-After` honoured,
//! bounded in attempts and in total time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::llm::LlmError;

/// How transient failures are retried. `max_retries` 0 means one attempt.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No retry starts once this much time has passed since the first attempt, and no wait may pass it.
    pub max_total: Duration,
    /// Adds up to +50% random jitter to each backoff wait, so clients that failed together do not retry
    /// together. Off in tests that measure waits.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// `llm.maxRetries` = 3; 0.5 s, 1 s, 2 s (plus jitter), capped at 20 s each and 120 s in all.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_total: Duration::from_secs(120),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    pub fn none() -> RetryPolicy {
        RetryPolicy { max_retries: 0, ..RetryPolicy::default() }
    }

    /// The wait before retry number `retry` (1-based) after `error`: the server's `Retry-After` if it gave
    /// one, else the exponential backoff; never more than `max_total`, whatever the server asked for.
    pub fn delay(&self, retry: u32, error: &LlmError) -> Duration {
        if let Some(wait) = error.retry_after() {
            return wait.min(self.max_total);
        }
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        let backoff = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let wait = if self.jitter { backoff.saturating_add(backoff.mul_f64(jitter_fraction() * 0.5)) } else { backoff };
        wait.min(self.max_total)
    }

    /// Runs `attempt` until it succeeds, fails permanently, or the policy is spent. A transient failure
    /// after retries becomes [`LlmError::RetriesExhausted`] naming the count and the time spent.
    pub async fn run<T, F, Fut>(&self, cancel: &CancellationToken, mut attempt: F) -> Result<T, LlmError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let started = Instant::now();
        let mut retries = 0;
        loop {
            let error = match attempt(retries + 1).await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            if !error.is_transient() {
                return Err(error);
            }
            let wait = self.delay(retries + 1, &error);
            let spent = started.elapsed();
            // A wait that would use up the rest of the total time leaves none for the attempt after it.
            if retries >= self.max_retries || spent.saturating_add(wait) >= self.max_total {
                return Err(if retries == 0 {
                    error
                } else {
                    LlmError::RetriesExhausted { retries, elapsed: spent, last: Box::new(error) }
                });
            }
            retries += 1;
            tracing::warn!(retry = retries, wait_ms = wait.as_millis() as u64, error = %error, "transient LLM error; retrying");
            tokio::select! {
                _ = cancel.cancelled() => return Err(LlmError::Cancelled),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// A number in [0, 1) from a xorshift generator seeded by the clock; good enough to spread retries.
fn jitter_fraction() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64) | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error() -> LlmError {
        LlmError::Server { provider: "p".into(), status: 500, message: "boom".into(), retry_after: None }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            jitter: false,
            ..RetryPolicy::default()
        };
        let waits: Vec<_> = (1..=4).map(|n| policy.delay(n, &server_error()).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 300, 300]);
    }

    #[test]
    fn jitter_stays_within_half_the_backoff() {
        let policy = RetryPolicy { base_delay: Duration::from_millis(100), ..RetryPolicy::default() };
        for _ in 0..100 {
            let wait = policy.delay(1, &server_error()).as_millis();
            assert!((100..=150).contains(&wait), "{wait}");
        }
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let policy = RetryPolicy { base_delay: Duration::from_millis(1), ..RetryPolicy::default() };
        let mut calls = 0;
        let result: Result<(), _> = policy
            .run(&CancellationToken::new(), |_| {
                calls += 1;
                async {
                    Err(LlmError::Auth { provider: "p".into(), status: 401, message: "no".into(), env: "K".into() })
                }
            })
            .await;
        assert!(matches!(result, Err(LlmError::Auth { .. })));
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn transient_errors_are_retried_then_reported_with_count_and_time() {
        let policy = RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(40),
            jitter: false,
            ..RetryPolicy::default()
        };
        let mut calls = 0;
        let result: Result<(), _> = policy
            .run(&CancellationToken::new(), |_| {
                calls += 1;
                async { Err(server_error()) }
            })
            .await;
        assert_eq!(calls, 3);
        let err = result.expect_err("always failing");
        let LlmError::RetriesExhausted { retries, elapsed, last } = &err else { panic!("{err:?}") };
        assert_eq!(*retries, 2);
        // Both waits (40 ms, then 80 ms) were spent before giving up.
        assert!(*elapsed >= Duration::from_millis(120), "{elapsed:?}");
        assert!(matches!(**last, LlmError::Server { status: 500, .. }), "{last:?}");
        let message = err.to_string();
        let secs = format!("{:.1}", elapsed.as_secs_f64());
        assert_eq!(message, format!("p: server error (500): boom; retried 2 times over {secs} s"));
    }

    #[test]
    fn a_huge_retry_after_is_capped_by_the_total_time() {
        let policy = RetryPolicy::default();
        let asked = |retry_after| LlmError::RateLimited { provider: "p".into(), message: "m".into(), retry_after };
        assert_eq!(policy.delay(1, &asked(Some(Duration::MAX))), policy.max_total);
        assert_eq!(policy.delay(1, &asked(Some(Duration::from_secs(2)))), Duration::from_secs(2));
        let tiny_total = RetryPolicy { max_total: Duration::from_millis(5), jitter: false, ..RetryPolicy::default() };
        assert_eq!(tiny_total.delay(1, &server_error()), Duration::from_millis(5));
    }

    #[tokio::test]
    async fn a_wait_past_the_total_time_gives_up_at_once() {
        let policy = RetryPolicy::default();
        let mut calls = 0;
        let result: Result<(), _> = policy
            .run(&CancellationToken::new(), |_| {
                calls += 1;
                async {
                    Err(LlmError::RateLimited {
                        provider: "p".into(),
                        message: "m".into(),
                        retry_after: Some(Duration::MAX),
                    })
                }
            })
            .await;
        assert_eq!(calls, 1);
        assert!(matches!(result, Err(LlmError::RateLimited { .. })), "{result:?}");
    }
}
