//! Spend limits: the per-query and monthly caps checked before every paid call, and the `UsageLog` that
//! records every call (the store implements it over `llm_usage`; `MemoryUsageLog` serves tests).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::llm::{BudgetConfig, BudgetScope, LlmError, QueryId};

/// One row of `llm_usage`: a call, successful or not.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageRecord {
    /// Unix milliseconds when the call ended.
    pub at_ms: i64,
    pub query_id: Option<String>,
    pub phase: Option<String>,
    pub role: String,
    pub prompt_version: u32,
    pub provider: String,
    pub model: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub estimated: bool,
    pub cost_usd: f64,
    pub price_known: bool,
    pub duration_ms: u64,
    /// `ok`, or the failure's [`LlmError::status_name`].
    pub status: String,
}

#[derive(Debug, thiserror::Error)]
#[error("usage log: {0}")]
pub struct UsageLogError(pub String);

/// Where usage is kept. Implementations must be cheap to call from async code (the store's does one indexed
/// query and hands writes to its writer thread).
pub trait UsageLog: Send + Sync {
    fn record(&self, usage: &UsageRecord) -> Result<(), UsageLogError>;
    /// Sum of `cost_usd` of the records at or after `since_ms`.
    fn spent_usd(&self, since_ms: i64) -> Result<f64, UsageLogError>;
    /// Number of records at or after `since_ms`.
    fn count(&self, since_ms: i64) -> Result<u64, UsageLogError>;
}

/// A `UsageLog` in memory, for tests and for runs without a store.
#[derive(Debug, Default)]
pub struct MemoryUsageLog {
    records: Mutex<Vec<UsageRecord>>,
}

impl MemoryUsageLog {
    pub fn new() -> MemoryUsageLog {
        MemoryUsageLog::default()
    }

    pub fn records(&self) -> Vec<UsageRecord> {
        self.records.lock().expect("usage records lock is never poisoned").clone()
    }
}

impl UsageLog for MemoryUsageLog {
    fn record(&self, usage: &UsageRecord) -> Result<(), UsageLogError> {
        self.records.lock().expect("usage records lock is never poisoned").push(usage.clone());
        Ok(())
    }

    fn spent_usd(&self, since_ms: i64) -> Result<f64, UsageLogError> {
        let records = self.records.lock().expect("usage records lock is never poisoned");
        Ok(records.iter().filter(|r| r.at_ms >= since_ms).map(|r| r.cost_usd).sum())
    }

    fn count(&self, since_ms: i64) -> Result<u64, UsageLogError> {
        let records = self.records.lock().expect("usage records lock is never poisoned");
        Ok(records.iter().filter(|r| r.at_ms >= since_ms).count() as u64)
    }
}

/// Spend in the current period, as `aurora/status` and `aurora doctor` show it.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetStatus {
    /// The UTC calendar month, `YYYY-MM`.
    pub period: String,
    /// 0 means no limit.
    pub limit_usd: f64,
    pub consumed_usd: f64,
    pub remaining_usd: f64,
    pub percent_consumed: f64,
    pub at_soft_limit: bool,
    pub at_hard_limit: bool,
    pub total_entries: u64,
}

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The spend gate. Cheap to share (`Arc`); per-query spend is kept in memory for the process's life.
pub struct Budget {
    config: BudgetConfig,
    log: Arc<dyn UsageLog>,
    per_query: Mutex<HashMap<QueryId, f64>>,
    warned_periods: Mutex<HashSet<String>>,
    clock: Clock,
}

impl Budget {
    pub fn new(config: BudgetConfig, log: Arc<dyn UsageLog>) -> Budget {
        let clock: Clock = Arc::new(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        });
        Budget::with_clock(config, log, clock)
    }

    /// A budget reading time from `clock` (Unix milliseconds), for tests.
    pub fn with_clock(config: BudgetConfig, log: Arc<dyn UsageLog>, clock: Clock) -> Budget {
        Budget { config, log, per_query: Mutex::new(HashMap::new()), warned_periods: Mutex::new(HashSet::new()), clock }
    }

    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// Refuses a call whose estimated cost would pass a cap, before anything is sent. Returns `true` when the
    /// call may go ahead but the month has reached the soft limit (`budget.softLimitPct`, 80%). Calls priced
    /// at 0 (local models) are never refused; a limit of 0 means no limit.
    pub fn check(&self, query: Option<&QueryId>, estimated_usd: f64) -> Result<bool, LlmError> {
        if estimated_usd <= 0.0 {
            return Ok(false);
        }
        if let Some(query) = query
            && self.config.per_query_usd > 0.0
        {
            let spent = self.query_spent(query);
            if spent + estimated_usd > self.config.per_query_usd {
                return Err(LlmError::BudgetExceeded {
                    scope: BudgetScope::Query,
                    consumed_usd: spent,
                    limit_usd: self.config.per_query_usd,
                    estimated_usd,
                });
            }
        }
        let limit = self.config.monthly_usd;
        if limit <= 0.0 {
            return Ok(false);
        }
        let now = self.now_ms();
        let consumed = self.log.spent_usd(month_start_ms(now)).map_err(|e| LlmError::UsageLog(e.to_string()))?;
        let projected = consumed + estimated_usd;
        if projected >= limit * f64::from(self.config.hard_limit_pct) / 100.0 {
            return Err(LlmError::BudgetExceeded {
                scope: BudgetScope::Monthly,
                consumed_usd: consumed,
                limit_usd: limit,
                estimated_usd,
            });
        }
        let soft = projected >= limit * f64::from(self.config.soft_limit_pct) / 100.0;
        if soft {
            let period = period_of(now);
            if self.warned_periods.lock().expect("budget lock is never poisoned").insert(period.clone()) {
                tracing::warn!(
                    period,
                    consumed_usd = consumed,
                    limit_usd = limit,
                    "LLM spend has reached the soft limit"
                );
            }
        }
        Ok(soft)
    }

    /// Records a finished call: in the usage log, and in its query's running total.
    pub fn record(&self, usage: &UsageRecord) {
        if let Some(query) = &usage.query_id {
            *self
                .per_query
                .lock()
                .expect("budget lock is never poisoned")
                .entry(QueryId(query.clone()))
                .or_default() += usage.cost_usd;
        }
        if let Err(e) = self.log.record(usage) {
            tracing::warn!(error = %e, "could not record LLM usage");
        }
    }

    /// What this query has spent so far.
    pub fn query_spent(&self, query: &QueryId) -> f64 {
        self.per_query.lock().expect("budget lock is never poisoned").get(query).copied().unwrap_or(0.0)
    }

    /// Forgets a finished query's running total.
    pub fn end_query(&self, query: &QueryId) {
        self.per_query.lock().expect("budget lock is never poisoned").remove(query);
    }

    pub fn status(&self) -> Result<BudgetStatus, LlmError> {
        let now = self.now_ms();
        let since = month_start_ms(now);
        let consumed = self.log.spent_usd(since).map_err(|e| LlmError::UsageLog(e.to_string()))?;
        let total_entries = self.log.count(since).map_err(|e| LlmError::UsageLog(e.to_string()))?;
        let limit = self.config.monthly_usd;
        let percent = if limit > 0.0 { consumed / limit * 100.0 } else { 0.0 };
        Ok(BudgetStatus {
            period: period_of(now),
            limit_usd: limit,
            consumed_usd: consumed,
            remaining_usd: if limit > 0.0 { (limit - consumed).max(0.0) } else { f64::INFINITY },
            percent_consumed: percent,
            at_soft_limit: limit > 0.0 && percent >= f64::from(self.config.soft_limit_pct),
            at_hard_limit: limit > 0.0 && percent >= f64::from(self.config.hard_limit_pct),
            total_entries,
        })
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

const DAY_MS: i64 = 86_400_000;

/// Unix milliseconds of the first instant of the UTC month containing `now_ms`.
pub fn month_start_ms(now_ms: i64) -> i64 {
    let days = now_ms.div_euclid(DAY_MS);
    let (_, _, day) = civil_from_days(days);
    (days - i64::from(day) + 1) * DAY_MS
}

/// The budget period of `now_ms`: `YYYY-MM`, UTC.
pub fn period_of(now_ms: i64) -> String {
    let (year, month, _) = civil_from_days(now_ms.div_euclid(DAY_MS));
    format!("{year:04}-{month:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-28T13:00:00Z.
    const NOW: i64 = 1_795_870_800_000;

    fn record(at_ms: i64, cost_usd: f64) -> UsageRecord {
        UsageRecord {
            at_ms,
            query_id: None,
            phase: None,
            role: "r".into(),
            prompt_version: 1,
            provider: "anthropic".into(),
            model: "m".into(),
            input_tokens: 0,
            output_tokens: 0,
            estimated: false,
            cost_usd,
            price_known: true,
            duration_ms: 0,
            status: "ok".into(),
        }
    }

    fn budget(monthly_usd: f64, per_query_usd: f64, spent: &[(i64, f64)]) -> Budget {
        let log = Arc::new(MemoryUsageLog::new());
        for (at, cost) in spent {
            log.record(&record(*at, *cost)).expect("memory log");
        }
        let config = BudgetConfig { monthly_usd, per_query_usd, ..BudgetConfig::default() };
        Budget::with_clock(config, log, Arc::new(|| NOW))
    }

    #[test]
    fn months_are_utc_calendar_months() {
        assert_eq!(period_of(NOW), "2026-11");
        assert_eq!(month_start_ms(NOW), 1_793_491_200_000); // 2026-11-01T00:00:00Z
        assert_eq!(period_of(0), "1970-01");
        assert_eq!(period_of(951_782_400_000), "2000-02"); // 2000-02-29
    }

    #[test]
    fn last_month_spend_does_not_count() {
        let b = budget(10.0, 0.0, &[(month_start_ms(NOW) - 1, 9.99), (NOW, 1.0)]);
        let status = b.status().expect("status");
        assert_eq!(status.consumed_usd, 1.0);
        assert_eq!(status.total_entries, 1);
        assert!(b.check(None, 1.0).is_ok());
    }

    #[test]
    fn monthly_cap_refuses_and_soft_limit_warns() {
        let b = budget(10.0, 0.0, &[(NOW, 7.9)]);
        assert!(!b.check(None, 0.05).expect("under soft"));
        assert!(b.check(None, 0.2).expect("over soft"));
        let err = b.check(None, 2.2).expect_err("over hard");
        assert!(matches!(err, LlmError::BudgetExceeded { scope: BudgetScope::Monthly, .. }), "{err}");
    }

    #[test]
    fn per_query_cap_counts_the_query_spend() {
        let b = budget(0.0, 0.5, &[]);
        let q = QueryId("q1".into());
        let mut spent = record(NOW, 0.4);
        spent.query_id = Some("q1".into());
        b.record(&spent);
        assert!(b.check(Some(&q), 0.05).is_ok());
        let err = b.check(Some(&q), 0.2).expect_err("over the query cap");
        assert!(matches!(err, LlmError::BudgetExceeded { scope: BudgetScope::Query, .. }));
        assert!(b.check(Some(&QueryId("q2".into())), 0.2).is_ok());
    }

    #[test]
    fn free_calls_and_zero_limits_are_never_refused() {
        let b = budget(0.0, 0.0, &[(NOW, 1000.0)]);
        assert!(b.check(None, 5.0).is_ok());
        let b = budget(1.0, 0.1, &[(NOW, 1000.0)]);
        assert!(b.check(None, 0.0).is_ok());
    }
}
