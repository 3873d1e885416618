//! Phase 4 (spec/soar.md §6): deterministic structural checks, the model's review scored by us, and
//! the verdict. Only this module can make a [`VerifiedPlan`], the one input route and collect take.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::SoarConfig;
use crate::llm::{JsonSchema, StructuredOutput};
use crate::soar::types::{Plan, PlanSource};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Minor,
    EdgeCase,
    Info,
}

impl Severity {
    pub fn tag(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::Minor => "MINOR",
            Severity::EdgeCase => "EDGE CASE",
            Severity::Info => "INFO",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Issue {
    pub severity: Severity,
    pub code: Option<String>,
    pub text: String,
}

impl Issue {
    fn structural(code: &str, text: String) -> Issue {
        Issue { severity: Severity::Critical, code: Some(code.to_owned()), text }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Retry,
    Fail,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Retry => "RETRY",
            Verdict::Fail => "FAIL",
        }
    }

    fn parse(text: &str) -> Option<Verdict> {
        match text.trim().to_ascii_uppercase().as_str() {
            "PASS" => Some(Verdict::Pass),
            "RETRY" => Some(Verdict::Retry),
            "FAIL" => Some(Verdict::Fail),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyMethod {
    Structural,
    SelfReview,
    Adversarial,
    Cached,
}

/// A plan that passed phase 4. Its constructor is private to this module.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedPlan(Plan);

impl VerifiedPlan {
    pub fn plan(&self) -> &Plan {
        &self.0
    }
}

/// Wraps a plan whose structural checks passed with `waves` (and, for model plans, whose review passed).
pub fn verified(mut plan: Plan, waves: Vec<Vec<usize>>) -> VerifiedPlan {
    plan.waves = waves;
    VerifiedPlan(plan)
}

/// The structural issues of a plan (spec/soar.md §6.1) and, when there are none, its Kahn waves.
pub fn structural(plan: &Plan, max_subgoals: u32) -> (Vec<Issue>, Vec<Vec<usize>>) {
    let n = plan.subgoals.len();
    let mut issues = Vec::new();
    if n == 0 {
        issues.push(Issue::structural("E_NO_SUBGOALS", "the plan has no subgoals".into()));
    }
    let max = if plan.source == PlanSource::Directed { 1 } else { max_subgoals as usize };
    if n > max {
        issues.push(Issue::structural(
            "E_TOO_MANY_SUBGOALS",
            format!("the plan has {n} subgoals; at most {max} are allowed for this question"),
        ));
    }
    for s in &plan.subgoals {
        let len = s.description.trim().chars().count();
        if len == 0 || len > 2000 {
            issues.push(Issue::structural(
                "E_EMPTY_DESCRIPTION",
                format!("{}: the description must be 1 to 2000 characters", s.id),
            ));
        }
        for d in &s.depends_on {
            if *d >= n {
                issues.push(Issue::structural(
                    "E_BAD_DEPENDENCY",
                    format!(
                        "{} depends on subgoal index {d}, which does not exist (valid: 0..{})",
                        s.id,
                        n.saturating_sub(1)
                    ),
                ));
            } else if *d == s.index {
                issues.push(Issue::structural("E_SELF_DEPENDENCY", format!("{} depends on itself", s.id)));
            }
        }
    }
    if !issues.is_empty() {
        return (issues, Vec::new());
    }
    match kahn(plan) {
        Ok(waves) => (issues, waves),
        Err(cycle) => {
            let ids: Vec<String> = cycle.iter().map(|i| format!("sg-{}", i + 1)).collect();
            issues.push(Issue::structural("E_CYCLE", format!("dependency cycle among {}", ids.join(", "))));
            (issues, Vec::new())
        }
    }
}

/// Kahn layers over `depends_on`, each sorted by index; `Err` holds the subgoals left in a cycle.
pub fn kahn(plan: &Plan) -> Result<Vec<Vec<usize>>, Vec<usize>> {
    let n = plan.subgoals.len();
    let mut indegree: Vec<usize> = plan.subgoals.iter().map(|s| s.depends_on.len()).collect();
    let mut done = vec![false; n];
    let mut waves = Vec::new();
    let mut left = n;
    while left > 0 {
        let wave: Vec<usize> = (0..n).filter(|i| !done[*i] && indegree[*i] == 0).collect();
        if wave.is_empty() {
            return Err((0..n).filter(|i| !done[*i]).collect());
        }
        for &i in &wave {
            done[i] = true;
            left -= 1;
        }
        for s in &plan.subgoals {
            if !done[s.index] {
                indegree[s.index] -= s.depends_on.iter().filter(|d| wave.contains(d)).count();
            }
        }
        waves.push(wave);
    }
    Ok(waves)
}

fn unit(v: f64) -> bool {
    (0.0..=1.0).contains(&v)
}

/// A plan review, either kind (spec/soar.md §6.2).
#[derive(Clone, Debug, Deserialize)]
pub struct RawReview {
    pub completeness: f64,
    pub consistency: f64,
    pub groundedness: f64,
    pub routability: f64,
    #[serde(default)]
    pub overall_score: Option<f64>,
    #[serde(default)]
    pub verdict: Option<String>,
    #[serde(default)]
    pub issues: Vec<String>,
    #[serde(default)]
    pub critical_issues: Vec<String>,
    #[serde(default)]
    pub minor_issues: Vec<String>,
    #[serde(default)]
    pub edge_cases: Vec<String>,
    #[serde(default)]
    pub suggestions: Vec<String>,
}

impl StructuredOutput for RawReview {
    fn schema() -> JsonSchema {
        let score = json!({"type": "number", "minimum": 0, "maximum": 1});
        JsonSchema {
            name: "plan_review".into(),
            schema: json!({
                "type": "object",
                "required": ["completeness", "consistency", "groundedness", "routability"],
                "properties": {
                    "completeness": score, "consistency": score, "groundedness": score, "routability": score,
                    "overall_score": score,
                    "verdict": {"type": "string", "enum": ["PASS", "RETRY", "FAIL"]},
                    "issues": {"type": "array", "items": {"type": "string"}},
                    "critical_issues": {"type": "array", "items": {"type": "string"}},
                    "minor_issues": {"type": "array", "items": {"type": "string"}},
                    "edge_cases": {"type": "array", "items": {"type": "string"}},
                    "suggestions": {"type": "array", "items": {"type": "string"}}
                }
            }),
        }
    }

    fn validate(&self) -> Vec<String> {
        [
            ("completeness", self.completeness),
            ("consistency", self.consistency),
            ("groundedness", self.groundedness),
            ("routability", self.routability),
        ]
        .into_iter()
        .filter(|(_, v)| !unit(*v))
        .map(|(k, v)| format!("`{k}` must be a number between 0 and 1, not {v}"))
        .collect()
    }
}

/// A review as we scored it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Review {
    pub completeness: f64,
    pub consistency: f64,
    pub groundedness: f64,
    pub routability: f64,
    pub computed_score: f64,
    pub model_score: Option<f64>,
    pub score_corrected: bool,
    pub model_verdict: Option<Verdict>,
    pub verdict_corrected: bool,
    pub verdict: Verdict,
    pub issues: Vec<Issue>,
    pub suggestions: Vec<String>,
}

/// Our score and verdict for a model's review (spec/soar.md §6.3).
pub fn score(cfg: &SoarConfig, raw: RawReview, adversarial: bool) -> Review {
    let w = &cfg.verify.weights;
    let weight = |i: usize, d: f64| w.get(i).copied().unwrap_or(d);
    let computed = weight(0, 0.4) * raw.completeness
        + weight(1, 0.2) * raw.consistency
        + weight(2, 0.2) * raw.groundedness
        + weight(3, 0.2) * raw.routability;
    // Scores are sums of decimals: compare with a tolerance so 0.7 × weights still reaches 0.7.
    let mut verdict = if computed + 1e-9 >= cfg.verify.pass_threshold {
        Verdict::Pass
    } else if computed + 1e-9 >= cfg.verify.retry_threshold {
        Verdict::Retry
    } else {
        Verdict::Fail
    };
    let mut issues = Vec::new();
    let mut push = |sev: Severity, list: Vec<String>| {
        issues.extend(list.into_iter().map(|text| Issue { severity: sev, code: None, text }));
    };
    let has_critical = !raw.critical_issues.is_empty();
    push(Severity::Critical, raw.critical_issues);
    push(Severity::Minor, raw.minor_issues);
    push(Severity::EdgeCase, raw.edge_cases);
    push(Severity::Minor, raw.issues);
    if adversarial && has_critical && verdict == Verdict::Pass {
        verdict = Verdict::Retry;
    }
    let model_verdict = raw.verdict.as_deref().and_then(Verdict::parse);
    Review {
        completeness: raw.completeness,
        consistency: raw.consistency,
        groundedness: raw.groundedness,
        routability: raw.routability,
        computed_score: computed,
        model_score: raw.overall_score,
        score_corrected: raw.overall_score.is_some_and(|m| (m - computed).abs() > 0.01),
        verdict_corrected: model_verdict.is_some_and(|m| m != verdict),
        model_verdict,
        verdict,
        issues,
        suggestions: raw.suggestions,
    }
}

/// One plan checked, for the envelope.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerifyAttempt {
    pub attempt: u8,
    pub plan_goal: String,
    pub subgoal_count: usize,
    pub structural_issues: Vec<Issue>,
    pub review: Option<Review>,
    pub verdict: Verdict,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soar::types::Subgoal;

    fn plan(deps: &[&[usize]]) -> Plan {
        Plan {
            goal: "g".into(),
            subgoals: deps
                .iter()
                .enumerate()
                .map(|(i, d)| Subgoal {
                    index: i,
                    id: format!("sg-{}", i + 1),
                    description: format!("do {i}"),
                    suggested_agent: "code-analyzer".into(),
                    specialist_hint: None,
                    is_critical: false,
                    depends_on: d.to_vec(),
                })
                .collect(),
            expected_tools: vec![],
            waves: vec![],
            attempt: 1,
            source: PlanSource::Llm,
        }
    }

    #[test]
    fn waves_are_kahn_layers() {
        let (issues, waves) = structural(&plan(&[&[], &[0], &[0], &[1, 2]]), 4);
        assert!(issues.is_empty());
        assert_eq!(waves, vec![vec![0], vec![1, 2], vec![3]]);
    }

    #[test]
    fn cycles_bad_indices_and_counts_are_issues() {
        let (issues, _) = structural(&plan(&[&[1], &[0]]), 4);
        assert_eq!(issues[0].code.as_deref(), Some("E_CYCLE"));
        assert!(issues[0].text.contains("sg-1, sg-2"));
        let (issues, _) = structural(&plan(&[&[5]]), 4);
        assert_eq!(issues[0].code.as_deref(), Some("E_BAD_DEPENDENCY"));
        let (issues, _) = structural(&plan(&[&[0]]), 4);
        assert_eq!(issues[0].code.as_deref(), Some("E_SELF_DEPENDENCY"));
        let (issues, _) = structural(&plan(&[&[], &[], &[]]), 2);
        assert_eq!(issues[0].code.as_deref(), Some("E_TOO_MANY_SUBGOALS"));
        let (issues, _) = structural(&plan(&[]), 2);
        assert_eq!(issues[0].code.as_deref(), Some("E_NO_SUBGOALS"));
    }

    fn raw(c: f64, critical: Vec<String>, overall: Option<f64>, verdict: Option<&str>) -> RawReview {
        RawReview {
            completeness: c,
            consistency: c,
            groundedness: c,
            routability: c,
            overall_score: overall,
            verdict: verdict.map(str::to_owned),
            issues: vec![],
            critical_issues: critical,
            minor_issues: vec![],
            edge_cases: vec![],
            suggestions: vec![],
        }
    }

    #[test]
    fn our_score_decides_and_a_critical_issue_caps_at_retry() {
        let cfg = SoarConfig::default();
        let r = score(&cfg, raw(0.75, vec!["flaw".into()], Some(0.75), Some("PASS")), true);
        assert_eq!(r.verdict, Verdict::Retry);
        assert!(r.verdict_corrected);
        assert_eq!(r.issues[0].severity, Severity::Critical);
        let r = score(&cfg, raw(0.62, vec![], Some(0.9), None), false);
        assert_eq!(r.verdict, Verdict::Retry);
        assert!(r.score_corrected);
        let r = score(&cfg, raw(0.4, vec![], None, None), false);
        assert_eq!(r.verdict, Verdict::Fail);
        let r = score(&cfg, raw(0.7, vec![], None, None), false);
        assert_eq!(r.verdict, Verdict::Pass);
    }
}
