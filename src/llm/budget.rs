//! Spend limits: the per-query and monthly caps checked before every paid call, and the `UsageLog` that
//! records every call (the store implements it over `llm_usage`; `MemoryUsageLog` serves tests).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::llm::{BudgetConfig, BudgetScope, LlmError, QueryId};

/// One row of `llm_usage`: a call, successful or not.
#[derive(Clone, Debug, Default, PartialEq)]
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

/// Set on the [`crate::llm::Usage`] of a call that went ahead with the month's spend at or past
/// `budget.softLimitPct`.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetWarning {
    /// The UTC calendar month, `YYYY-MM`.
    pub period: String,
    /// This month's spend when the call was admitted, counting calls still in flight and this call at its
    /// estimate.
    pub projected_usd: f64,
    /// `budget.monthlyUsd`.
    pub limit_usd: f64,
    /// `budget.softLimitPct`.
    pub soft_limit_pct: u32,
}

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Calls admitted but not yet recorded.
#[derive(Clone, Copy, Debug, Default)]
struct Hold {
    calls: u32,
    usd: f64,
}

impl Hold {
    fn add(&mut self, usd: f64) {
        self.calls += 1;
        self.usd += usd;
    }

    /// Returns true when no call is left.
    fn remove(&mut self, usd: f64) -> bool {
        self.calls = self.calls.saturating_sub(1);
        // With no call left the sum is exactly zero; float subtraction would leave dust.
        self.usd = if self.calls == 0 { 0.0 } else { (self.usd - usd).max(0.0) };
        self.calls == 0
    }
}

/// Spend the budget keeps in memory: recorded per query, and held for calls in flight.
#[derive(Debug, Default)]
struct Ledger {
    query_spent: HashMap<QueryId, f64>,
    held: Hold,
    query_held: HashMap<QueryId, Hold>,
}

/// The spend gate. Cheap to share (`Arc`); per-query spend is kept in memory for the process's life.
///
/// A call is admitted by [`Budget::reserve`], which holds its estimated cost against the caps until its
/// usage is recorded ([`Reservation::settle`]) or it is abandoned (dropping the [`Reservation`]). Admission
/// is atomic, so calls started together cannot pass a cap together.
pub struct Budget {
    config: BudgetConfig,
    log: Arc<dyn UsageLog>,
    ledger: Mutex<Ledger>,
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
        Budget { config, log, ledger: Mutex::new(Ledger::default()), warned_periods: Mutex::new(HashSet::new()), clock }
    }

    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("budget lock is never poisoned")
    }

    /// Whether a call estimated at `estimated_usd` would be admitted now, without holding anything for it.
    /// `Ok(true)` means it may go ahead but the month has reached the soft limit (`budget.softLimitPct`).
    /// Calls priced at 0 (local models) are never refused; a limit of 0 means no limit.
    pub fn check(&self, query: Option<&QueryId>, estimated_usd: f64) -> Result<bool, LlmError> {
        let ledger = self.ledger();
        self.admit(&ledger, query, estimated_usd, true).map(|warning| warning.is_some())
    }

    /// Admits a call and holds `estimated_usd` for it against both caps, or refuses it with
    /// [`LlmError::BudgetExceeded`] before anything is sent. Calls of known price 0 (local models) are never
    /// refused. A call of unknown price (`price_known` false, estimated at 0) is still refused once recorded
    /// and held spend has reached a cap.
    pub fn reserve(
        self: &Arc<Self>,
        query: Option<&QueryId>,
        estimated_usd: f64,
        price_known: bool,
    ) -> Result<Reservation, LlmError> {
        let estimated_usd = if estimated_usd.is_finite() { estimated_usd.max(0.0) } else { 0.0 };
        let mut ledger = self.ledger();
        let warning = self.admit(&ledger, query, estimated_usd, price_known)?;
        ledger.held.add(estimated_usd);
        if let Some(query) = query {
            ledger.query_held.entry(query.clone()).or_default().add(estimated_usd);
        }
        Ok(Reservation {
            budget: Arc::clone(self),
            query: query.cloned(),
            held_usd: estimated_usd,
            warning,
            released: false,
        })
    }

    fn admit(
        &self,
        ledger: &Ledger,
        query: Option<&QueryId>,
        estimated_usd: f64,
        price_known: bool,
    ) -> Result<Option<BudgetWarning>, LlmError> {
        if estimated_usd <= 0.0 && price_known {
            return Ok(None);
        }
        let estimated_usd = estimated_usd.max(0.0);
        let cap = self.config.per_query_usd;
        if let Some(query) = query
            && cap > 0.0
        {
            let spent = ledger.query_spent.get(query).copied().unwrap_or(0.0)
                + ledger.query_held.get(query).map_or(0.0, |h| h.usd);
            if spent >= cap || spent + estimated_usd > cap {
                return Err(LlmError::BudgetExceeded {
                    scope: BudgetScope::Query,
                    consumed_usd: spent,
                    limit_usd: cap,
                    estimated_usd,
                });
            }
        }
        let limit = self.config.monthly_usd;
        if limit <= 0.0 {
            return Ok(None);
        }
        let now = self.now_ms();
        let recorded = self.log.spent_usd(month_start_ms(now)).map_err(|e| LlmError::UsageLog(e.to_string()))?;
        let consumed = recorded + ledger.held.usd;
        let projected = consumed + estimated_usd;
        if projected >= limit * f64::from(self.config.hard_limit_pct) / 100.0 {
            return Err(LlmError::BudgetExceeded {
                scope: BudgetScope::Monthly,
                consumed_usd: consumed,
                limit_usd: limit,
                estimated_usd,
            });
        }
        if projected < limit * f64::from(self.config.soft_limit_pct) / 100.0 {
            return Ok(None);
        }
        let period = period_of(now);
        if self.warned_periods.lock().expect("budget lock is never poisoned").insert(period.clone()) {
            tracing::warn!(period, consumed_usd = consumed, limit_usd = limit, "LLM spend has reached the soft limit");
        }
        Ok(Some(BudgetWarning {
            period,
            projected_usd: projected,
            limit_usd: limit,
            soft_limit_pct: self.config.soft_limit_pct,
        }))
    }

    /// Records a finished call: in the usage log, and in its query's running total.
    pub fn record(&self, usage: &UsageRecord) {
        // The log first: until the hold is released, a concurrent admission counts this call twice (too
        // strict for a moment) rather than not at all.
        if let Err(e) = self.log.record(usage) {
            tracing::warn!(error = %e, "could not record LLM usage");
        }
        if let Some(query) = &usage.query_id {
            *self.ledger().query_spent.entry(QueryId(query.clone())).or_default() += usage.cost_usd;
        }
    }

    fn release(&self, query: Option<&QueryId>, usd: f64) {
        let mut ledger = self.ledger();
        ledger.held.remove(usd);
        if let Some(query) = query
            && ledger.query_held.get_mut(query).is_some_and(|hold| hold.remove(usd))
        {
            ledger.query_held.remove(query);
        }
    }

    /// What this query has spent so far (recorded calls only).
    pub fn query_spent(&self, query: &QueryId) -> f64 {
        self.ledger().query_spent.get(query).copied().unwrap_or(0.0)
    }

    /// The estimated cost held for calls admitted and not yet recorded.
    pub fn in_flight_usd(&self) -> f64 {
        self.ledger().held.usd
    }

    /// Forgets a finished query's running total.
    pub fn end_query(&self, query: &QueryId) {
        self.ledger().query_spent.remove(query);
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

/// One admitted call's hold on the budget. [`Reservation::settle`] records the call's real usage and
/// releases the hold; dropping it unsettled only releases the hold.
#[must_use = "dropping a reservation releases it at once"]
pub struct Reservation {
    budget: Arc<Budget>,
    query: Option<QueryId>,
    held_usd: f64,
    warning: Option<BudgetWarning>,
    released: bool,
}

impl Reservation {
    /// Set when the call was admitted at or past the soft limit.
    pub fn warning(&self) -> Option<&BudgetWarning> {
        self.warning.as_ref()
    }

    /// The estimate held for this call.
    pub fn held_usd(&self) -> f64 {
        self.held_usd
    }

    /// Records the call's usage and releases the hold.
    pub fn settle(mut self, usage: &UsageRecord) {
        self.budget.record(usage);
        self.release();
    }

    fn release(&mut self) {
        if !self.released {
            self.released = true;
            self.budget.release(self.query.as_ref(), self.held_usd);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation").field("query", &self.query).field("held_usd", &self.held_usd).finish()
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
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
    fn reservations_hold_until_settled_or_dropped() {
        let b = Arc::new(budget(1.0, 0.0, &[(NOW, 0.5)]));
        let first = b.reserve(None, 0.2, true).expect("0.7 of 1.0");
        let second = b.reserve(None, 0.2, true).expect("0.9 of 1.0");
        let err = b.reserve(None, 0.2, true).expect_err("1.1 of 1.0, counting both calls in flight");
        assert!(
            matches!(err, LlmError::BudgetExceeded { scope: BudgetScope::Monthly, consumed_usd, .. } if (consumed_usd - 0.9).abs() < 1e-9),
            "{err}"
        );
        assert!((b.in_flight_usd() - 0.4).abs() < 1e-9);
        // Settled at its real cost, the first call holds nothing more; the second is abandoned.
        first.settle(&record(NOW, 0.05));
        drop(second);
        assert_eq!(b.in_flight_usd(), 0.0);
        assert!((b.status().expect("status").consumed_usd - 0.55).abs() < 1e-9);
        let _held = b.reserve(None, 0.3, true).expect("0.85 of 1.0");
    }

    #[test]
    fn the_per_query_cap_counts_calls_in_flight_of_that_query() {
        let b = Arc::new(budget(0.0, 0.5, &[]));
        let q = QueryId("q1".into());
        let held = b.reserve(Some(&q), 0.3, true).expect("fits");
        assert!(b.reserve(Some(&q), 0.3, true).is_err());
        let other = b.reserve(Some(&QueryId("q2".into())), 0.3, true).expect("another query");
        drop(held);
        let again = b.reserve(Some(&q), 0.3, true).expect("released");
        drop((other, again));
        assert_eq!(b.in_flight_usd(), 0.0);
    }

    #[test]
    fn the_soft_limit_is_reported_with_the_reservation() {
        let b = Arc::new(budget(10.0, 0.0, &[(NOW, 7.9)]));
        let first = b.reserve(None, 0.05, true).expect("under soft");
        assert_eq!(first.warning(), None);
        // The first call, still in flight, counts towards the second's projection.
        let warned = b.reserve(None, 0.1, true).expect("over soft");
        let warning = warned.warning().expect("a warning");
        assert_eq!((warning.period.as_str(), warning.limit_usd, warning.soft_limit_pct), ("2026-11", 10.0, 80));
        assert!((warning.projected_usd - 8.05).abs() < 1e-9, "{warning:?}");
    }

    #[test]
    fn unknown_prices_are_refused_once_a_cap_is_reached() {
        let b = Arc::new(budget(1.0, 0.0, &[(NOW, 0.99)]));
        let _held = b.reserve(None, 0.0, false).expect("under the cap: an unknown price is let through");
        let b = Arc::new(budget(1.0, 0.0, &[(NOW, 1.0)]));
        let err = b.reserve(None, 0.0, false).expect_err("the month is spent");
        assert!(matches!(err, LlmError::BudgetExceeded { scope: BudgetScope::Monthly, .. }), "{err}");
        let _held = b.reserve(None, 0.0, true).expect("a known free call is never refused");
        let b = Arc::new(budget(0.0, 0.5, &[]));
        let q = QueryId("q".into());
        let mut spent = record(NOW, 0.5);
        spent.query_id = Some("q".into());
        b.record(&spent);
        assert!(b.reserve(Some(&q), 0.0, false).is_err());
    }

    #[test]
    fn free_calls_and_zero_limits_are_never_refused() {
        let b = budget(0.0, 0.0, &[(NOW, 1000.0)]);
        assert!(b.check(None, 5.0).is_ok());
        let b = budget(1.0, 0.1, &[(NOW, 1000.0)]);
        assert!(b.check(None, 0.0).is_ok());
    }
}
