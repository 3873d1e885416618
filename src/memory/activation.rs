//! ACT-R activation (spec/memory.md §5): pure functions of access history, spreading, query and time.
//!
//! Nothing here is stored: activation is computed at query time from the access timestamps.

use crate::config::ActivationConfig;
pub use crate::store::read::History;

const MS_PER_SEC: f64 = 1000.0;
const SECS_PER_DAY: f64 = 86_400.0;

/// Seconds between `at_ms` and `now_ms`, floored at 1 s (also when the clock went backwards).
fn age_secs(now_ms: i64, at_ms: i64) -> f64 {
    ((now_ms - at_ms) as f64 / MS_PER_SEC).max(1.0)
}

/// Base-level activation B with Petrov's hybrid approximation for pruned accesses (§5.3).
/// No history gives `cfg.no_history`, which is also the floor.
pub fn base_level(h: &History, now_ms: i64, cfg: &ActivationConfig) -> f64 {
    if h.is_empty() {
        return cfg.no_history;
    }
    let d = cfg.decay;
    let mut sum: f64 = h.kept_ms.iter().map(|&t| age_secs(now_ms, t).powf(-d)).sum();
    let k = h.kept_ms.len() as u64;
    if h.count > k {
        let extra = (h.count - k) as f64;
        let t_n = age_secs(now_ms, h.first_ms);
        let oldest_kept = h.kept_ms.iter().copied().min().expect("history is not empty");
        let t_k = age_secs(now_ms, oldest_kept);
        sum += if (t_n - t_k).abs() < f64::EPSILON {
            extra * t_k.powf(-d)
        } else {
            extra * (t_n.powf(1.0 - d) - t_k.powf(1.0 - d)) / ((1.0 - d) * (t_n - t_k))
        };
    }
    sum.ln().max(cfg.no_history)
}

/// The decay penalty P of the last access (§5.6): 0 within a day, `c · log10(days)` capped at 90 days.
pub fn decay_penalty(h: &History, now_ms: i64, cfg: &ActivationConfig) -> f64 {
    let Some(last) = h.last_ms() else { return 0.0 };
    let secs = age_secs(now_ms, last);
    if secs <= 3600.0 {
        return 0.0;
    }
    let days = (secs / SECS_PER_DAY).min(90.0);
    cfg.decay_penalty * days.max(1.0).log10()
}

/// The context boost C (§5.5): `c · |Q ∩ K| / |Q|`, 0 for an empty query.
pub fn context_boost(matched: usize, query_terms: usize, cfg: &ActivationConfig) -> f64 {
    if query_terms == 0 {
        return 0.0;
    }
    cfg.context_boost * matched as f64 / query_terms as f64
}

/// All parts of one chunk's activation, and the retrieval probability `act` derived from them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Activation {
    pub base_level: f64,
    pub decay_penalty: f64,
    pub spreading: f64,
    pub context_boost: f64,
    /// `A = max(B − P, B_none) + S + C`.
    pub total: f64,
    /// `1 / (1 + e^(−(A − τ)/s))`, in (0, 1).
    pub probability: f64,
}

/// Combines the parts (§5.7).
pub fn activation(h: &History, spreading: f64, context_boost: f64, now_ms: i64, cfg: &ActivationConfig) -> Activation {
    let base_level = base_level(h, now_ms, cfg);
    let decay_penalty = decay_penalty(h, now_ms, cfg);
    let total = (base_level - decay_penalty).max(cfg.no_history) + spreading + context_boost;
    Activation { base_level, decay_penalty, spreading, context_boost, total, probability: probability(total, cfg) }
}

/// ACT-R's retrieval probability for total activation `a`.
pub fn probability(a: f64, cfg: &ActivationConfig) -> f64 {
    1.0 / (1.0 + (-(a - cfg.threshold) / cfg.noise).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;

    fn hist(ages_ms: &[i64]) -> History {
        let kept_ms: Vec<i64> = ages_ms.iter().map(|a| NOW - a).collect();
        History { count: kept_ms.len() as u64, first_ms: *kept_ms.iter().min().unwrap_or(&NOW), kept_ms }
    }

    fn assert_close(actual: f64, expected: f64, what: &str) {
        assert!((actual - expected).abs() <= 0.001, "{what}: {actual} != {expected}");
    }

    #[test]
    fn spec_table_values() {
        let cfg = ActivationConfig::default();
        // (history ages, B, P, A, act) from spec/memory.md §5.7.
        let rows: [(&[i64], f64, f64, f64, f64); 7] = [
            (&[1000], 0.000, 0.0, 0.000, 0.993),
            (&[MIN], -2.047, 0.0, -2.047, 0.950),
            (&[HOUR], -4.094, 0.0, -4.094, 0.712),
            (&[DAY], -5.683, 0.0, -5.683, 0.336),
            (&[7 * DAY], -6.656, 0.423, -7.079, 0.111),
            (&[30 * DAY], -7.384, 0.739, -8.123, 0.042),
            (&[HOUR, DAY, 7 * DAY], -3.846, 0.0, -3.846, 0.760),
        ];
        for (ages, b, p, a, act) in rows {
            let h = hist(ages);
            let got = activation(&h, 0.0, 0.0, NOW, &cfg);
            assert_close(got.base_level, b, "B");
            assert_close(got.decay_penalty, p, "P");
            assert_close(got.total, a, "A");
            assert_close(got.probability, act, "act");
        }
        let none = activation(&History::default(), 0.0, 0.0, NOW, &cfg);
        assert_eq!(none.total, -10.0);
        assert_close(none.probability, 0.0067, "act of no history");
    }

    #[test]
    fn decay_penalty_values() {
        let cfg = ActivationConfig::default();
        for (days, p) in [(1, 0.0), (7, 0.423), (10, 0.5), (30, 0.739), (90, 0.977), (400, 0.977)] {
            assert_close(decay_penalty(&hist(&[days * DAY]), NOW, &cfg), p, "P");
        }
        assert_eq!(decay_penalty(&hist(&[30 * MIN]), NOW, &cfg), 0.0);
    }

    #[test]
    fn petrov_tail_approximates_the_exact_sum_for_100_accesses() {
        let cfg = ActivationConfig::default();
        // 100 accesses, one every 2 hours; keep the newest 50.
        let all: Vec<i64> = (1..=100).map(|i| i * 2 * HOUR).collect();
        let exact = base_level(&hist(&all), NOW, &cfg);
        let kept: Vec<i64> = all[..50].iter().map(|a| NOW - a).collect();
        let approx = History { kept_ms: kept, count: 100, first_ms: NOW - 200 * HOUR };
        let b = base_level(&approx, NOW, &cfg);
        assert!((b - exact).abs() < 0.01, "approx {b} vs exact {exact}");
        // The tail adds something: dropping it lowers B.
        let truncated = History { count: 50, ..approx };
        assert!(base_level(&truncated, NOW, &cfg) < b - 0.05);
    }

    #[test]
    fn clock_going_backwards_is_floored_and_ever_accessed_never_ranks_below_none() {
        let cfg = ActivationConfig::default();
        let future = History { kept_ms: vec![NOW + HOUR], count: 1, first_ms: NOW + HOUR };
        assert_close(base_level(&future, NOW, &cfg), 0.0, "B in the future");
        let ancient = hist(&[3000 * DAY]);
        let a = activation(&ancient, 0.0, 0.0, NOW, &cfg);
        assert!(a.total >= cfg.no_history);
    }

    #[test]
    fn context_boost_is_the_matched_share() {
        let cfg = ActivationConfig::default();
        assert_close(context_boost(2, 3, &cfg), 0.333, "C");
        assert_eq!(context_boost(0, 0, &cfg), 0.0);
    }
}
