//! Phase 3 (spec/soar.md §5): the planner's prompt and schema, the plan it returns, and the
//! decomposition cache.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::SoarConfig;
use crate::llm::{JsonSchema, StructuredOutput};
use crate::soar::agents::AgentSpec;
use crate::soar::prompts::{self, DECOMPOSE_EXAMPLES};
use crate::soar::retrieve::RetrievedContext;
use crate::soar::types::{Complexity, ContextChunk, Plan, PlanSource, Subgoal, hex, normalize_query};
use crate::soar::verify::Issue;
use crate::soar::workspace::Workspace;
use crate::store::StoreError;
use crate::store::soar::{CachedPlan, SoarWrite};
use crate::store::writer::Op;

/// The planner's reply (spec/soar.md §5.2), checked at parse level; counts, ranges and cycles are
/// phase 4's.
#[derive(Clone, Debug, Deserialize)]
pub struct RawPlan {
    #[serde(default)]
    pub goal: Value,
    pub subgoals: Vec<RawSubgoal>,
    #[serde(default)]
    pub expected_tools: Vec<Value>,
    /// Ignored with a warning: scheduling comes from `depends_on` only.
    #[serde(default)]
    pub execution_order: Option<Value>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RawSubgoal {
    pub description: String,
    #[serde(alias = "assigned_agent")]
    pub suggested_agent: String,
    #[serde(default)]
    pub specialist_hint: Option<String>,
    #[serde(default)]
    pub is_critical: Value,
    #[serde(default)]
    pub depends_on: Vec<Value>,
}

impl StructuredOutput for RawPlan {
    fn schema() -> JsonSchema {
        JsonSchema {
            name: "plan".into(),
            schema: json!({
                "type": "object",
                "required": ["goal", "subgoals"],
                "properties": {
                    "goal": {"type": "string"},
                    "subgoals": {"type": "array", "items": {
                        "type": "object",
                        "required": ["description", "suggested_agent", "is_critical", "depends_on"],
                        "properties": {
                            "description": {"type": "string"},
                            "suggested_agent": {"type": "string"},
                            "specialist_hint": {"type": ["string", "null"]},
                            "is_critical": {"type": "boolean"},
                            "depends_on": {"type": "array", "items": {"type": "integer", "minimum": 0}}
                        }
                    }},
                    "expected_tools": {"type": "array", "items": {"type": "string"}}
                }
            }),
        }
    }

    fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.goal.as_str().is_none_or(|g| g.trim().is_empty()) {
            errors.push("`goal` must be a non-empty string".to_owned());
        }
        for (i, s) in self.subgoals.iter().enumerate() {
            if !s.is_critical.is_boolean() {
                errors.push(format!("subgoals[{i}].is_critical must be a JSON boolean (true or false)"));
            }
            for d in &s.depends_on {
                if dependency_index(d).is_none() {
                    errors.push(format!(
                        "subgoals[{i}].depends_on entry {d} must be a non-negative integer index or \"sg-N\""
                    ));
                }
            }
        }
        errors
    }
}

/// A `depends_on` entry as a 0-based index: `2` or `"sg-3"`.
pub fn dependency_index(v: &Value) -> Option<usize> {
    match v {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(s) => {
            let n: usize = s.trim().to_ascii_lowercase().strip_prefix("sg-")?.parse().ok()?;
            n.checked_sub(1)
        }
        _ => None,
    }
}

/// A normalised agent id: trimmed, leading `@` removed, lower-cased.
pub fn agent_id(text: &str) -> String {
    text.trim().trim_start_matches('@').trim().to_lowercase()
}

impl RawPlan {
    pub fn into_plan(self, attempt: u8, source: PlanSource) -> Plan {
        let subgoals = self
            .subgoals
            .into_iter()
            .enumerate()
            .map(|(index, s)| {
                let mut depends_on: Vec<usize> = s.depends_on.iter().filter_map(dependency_index).collect();
                depends_on.sort_unstable();
                depends_on.dedup();
                Subgoal {
                    index,
                    id: format!("sg-{}", index + 1),
                    description: s.description.trim().to_owned(),
                    suggested_agent: agent_id(&s.suggested_agent),
                    specialist_hint: s.specialist_hint.map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()),
                    is_critical: s.is_critical.as_bool().unwrap_or(false),
                    depends_on,
                }
            })
            .collect();
        Plan {
            goal: self.goal.as_str().unwrap_or_default().trim().to_owned(),
            subgoals,
            expected_tools: self
                .expected_tools
                .into_iter()
                .map(|t| t.as_str().map(str::to_owned).unwrap_or_else(|| t.to_string()))
                .collect(),
            waves: Vec::new(),
            attempt,
            source,
        }
    }
}

/// A plan in the schema the model writes (ids 0-based), for prompts, examples and stored patterns.
pub fn plan_json(plan: &Plan) -> Value {
    json!({
        "goal": plan.goal,
        "subgoals": plan.subgoals.iter().map(|s| json!({
            "description": s.description,
            "suggested_agent": s.suggested_agent,
            "specialist_hint": s.specialist_hint,
            "is_critical": s.is_critical,
            "depends_on": s.depends_on,
        })).collect::<Vec<_>>(),
        "expected_tools": plan.expected_tools,
    })
}

/// A built-in example.
#[derive(Clone, Debug, Deserialize)]
pub struct Example {
    pub query: String,
    pub plan: Value,
}

/// The built-in examples.
pub fn builtin_examples() -> Vec<Example> {
    serde_json::from_str(DECOMPOSE_EXAMPLES).expect("the built-in decomposition examples are valid JSON")
}

/// What a retry tells the planner (spec/soar.md §6.4), built without a model call.
#[derive(Clone, Debug)]
pub struct RetryFeedback {
    pub previous: Plan,
    pub score: Option<f64>,
    pub verdict: &'static str,
    pub issues: Vec<Issue>,
    pub suggestions: Vec<String>,
}

impl RetryFeedback {
    pub fn render(&self) -> String {
        let score = self.score.map_or("structural checks failed".to_owned(), |s| format!("score {s:.2}"));
        let mut out = format!("The previous plan (below) was rejected: {score}, {}. Fix these issues:\n", self.verdict);
        for i in &self.issues {
            out.push_str(&format!("- [{}] {}\n", i.severity.tag(), i.text));
        }
        if !self.suggestions.is_empty() {
            out.push_str("Suggestions:\n");
            for s in &self.suggestions {
                out.push_str(&format!("- {s}\n"));
            }
        }
        out.push_str("Previous plan:\n");
        out.push_str(&plan_json(&self.previous).to_string());
        out.push('\n');
        out
    }
}

/// The context chunks the planner sees for a level: at most `maxChunks`, the first `fullChunks` in full.
pub fn shown_chunks<'a>(cfg: &SoarConfig, level: Complexity, rc: &'a RetrievedContext) -> (&'a [ContextChunk], usize) {
    let max = level.pick(&cfg.decompose.max_chunks) as usize;
    let full = level.pick(&cfg.decompose.full_chunks) as usize;
    let shown = &rc.code[..rc.code.len().min(max.max(1))];
    (shown, full)
}

/// The user prompt of `soar.decompose`.
pub fn user_prompt(
    cfg: &SoarConfig,
    query: &str,
    level: Complexity,
    rc: &RetrievedContext,
    agents: &[AgentSpec],
    feedback: Option<&RetryFeedback>,
) -> String {
    let max_subgoals = level.pick(&cfg.decompose.max_subgoals);
    let preference = match level {
        Complexity::Simple | Complexity::Medium => "sequential",
        Complexity::Complex => "mixed",
        Complexity::Critical => "parallel where possible",
    };
    let mut out = format!(
        "Question: {query}\nComplexity: {level}\nMaximum number of subgoals: {max_subgoals}\nExecution preference: {preference}\n\n"
    );
    let (shown, full) = shown_chunks(cfg, level, rc);
    let mut files: Vec<&str> = Vec::new();
    for c in shown {
        if !files.contains(&c.file.as_str()) && files.len() < 10 {
            files.push(&c.file);
        }
    }
    out.push_str("Available source files:\n");
    for f in &files {
        out.push_str(&format!("- {f}\n"));
    }
    out.push_str("\nAgents (id: name — description):\n");
    for a in agents {
        out.push_str(&format!("- {}: {} — {}\n", a.id, a.name, a.description));
    }
    let examples = examples(cfg, level, rc);
    if !examples.is_empty() {
        out.push_str("\nExamples of good plans:\n");
        for (q, plan) in examples {
            out.push_str(&format!("Question: {q}\nPlan: {plan}\n"));
        }
    }
    out.push_str("\nCode context:\n");
    out.push_str(&prompts::render_context(shown, full, cfg.context.max_chunk_lines));
    if let Some(f) = feedback {
        out.push('\n');
        out.push_str(&f.render());
    }
    out
}

/// The examples for a level: stored patterns first, then built-ins.
pub fn examples(cfg: &SoarConfig, level: Complexity, rc: &RetrievedContext) -> Vec<(String, String)> {
    let n = match level {
        Complexity::Simple => 0,
        _ => level.pick(&cfg.decompose.examples) as usize,
    };
    let mut out: Vec<(String, String)> = rc
        .patterns
        .iter()
        .filter_map(|p| Some((p.pattern.clone(), plan_json(p.plan.as_ref()?).to_string())))
        .take(n)
        .collect();
    for e in builtin_examples() {
        if out.len() >= n {
            break;
        }
        out.push((e.query, e.plan.to_string()));
    }
    out
}

/// The ids of the patterns used as examples.
pub fn example_pattern_ids(cfg: &SoarConfig, level: Complexity, rc: &RetrievedContext) -> Vec<String> {
    let n = match level {
        Complexity::Simple => 0,
        _ => level.pick(&cfg.decompose.examples) as usize,
    };
    rc.patterns.iter().filter(|p| p.plan.is_some()).take(n).map(|p| p.id.clone()).collect()
}

/// The cache key (spec/soar.md §5.4; blake3 where the spec says sha256, the hash the store already uses).
pub fn cache_key(
    query: &str,
    level: Complexity,
    shown: &[ContextChunk],
    agents: &[AgentSpec],
    prompt_version: u32,
    model: &str,
) -> String {
    let mut pairs: Vec<(&str, &str)> = shown.iter().map(|c| (c.chunk_id.as_str(), c.content_hash.as_str())).collect();
    pairs.sort_unstable();
    let mut ctx = blake3::Hasher::new();
    for (id, h) in pairs {
        ctx.update(id.as_bytes());
        ctx.update(b"=");
        ctx.update(h.as_bytes());
        ctx.update(b";");
    }
    let mut ids: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
    ids.sort_unstable();
    let agents_fp = blake3::hash(ids.join(",").as_bytes());
    let text = format!(
        "{}|{}|{}|{}|{}|{}",
        normalize_query(query),
        level.as_str(),
        ctx.finalize().to_hex(),
        agents_fp.to_hex(),
        prompt_version,
        model
    );
    hex(blake3::hash(text.as_bytes()).as_bytes())
}

/// A fresh cached plan under `key`, marking the hit.
pub async fn cache_lookup(
    ws: &Arc<Workspace>,
    cfg: &SoarConfig,
    key: &str,
    now_ms: i64,
) -> Result<Option<Plan>, StoreError> {
    let k = key.to_owned();
    let fresh_since = now_ms - (cfg.cache.ttl_secs as i64) * 1000;
    let found = ws.read(move |r| crate::store::soar::cache_get(r.connection(), &k, fresh_since)).await?;
    let Some(entry) = found else { return Ok(None) };
    let Ok(raw) = serde_json::from_str::<RawPlan>(&entry.plan_json) else {
        return Ok(None);
    };
    if ws.writer().is_some() {
        ws.write(Op::Soar(SoarWrite::CacheHit { key: key.to_owned(), at_ms: now_ms })).await?;
    }
    Ok(Some(raw.into_plan(1, PlanSource::Cache { key: key.to_owned() })))
}

/// Stores a verified plan.
pub async fn cache_put(
    ws: &Arc<Workspace>,
    cfg: &SoarConfig,
    key: &str,
    plan: &Plan,
    model: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let entry = CachedPlan {
        key: key.to_owned(),
        plan_json: plan_json(plan).to_string(),
        created_at_ms: now_ms,
        last_used_at_ms: now_ms,
        hits: 0,
        prompt_version: prompts::DECOMPOSE.version,
        model: model.to_owned(),
    };
    let expired_before_ms = now_ms - (cfg.cache.ttl_secs as i64) * 1000;
    ws.write(Op::Soar(SoarWrite::CachePut { entry, expired_before_ms, max_entries: cfg.cache.max_entries })).await
}

/// Removes an entry whose plan no longer passes the structural checks.
pub async fn cache_delete(ws: &Arc<Workspace>, cfg: &SoarConfig, key: &str, now_ms: i64) -> Result<(), StoreError> {
    let expired_before_ms = now_ms - (cfg.cache.ttl_secs as i64) * 1000;
    ws.write(Op::Soar(SoarWrite::CacheDelete { key: key.to_owned(), expired_before_ms })).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soar::verify::structural;

    #[test]
    fn depends_on_accepts_indices_and_sg_ids() {
        assert_eq!(dependency_index(&json!(0)), Some(0));
        assert_eq!(dependency_index(&json!("sg-2")), Some(1));
        assert_eq!(dependency_index(&json!("sg-0")), None);
        assert_eq!(dependency_index(&json!(-1)), None);
        assert_eq!(dependency_index(&json!(true)), None);
    }

    #[test]
    fn a_string_boolean_is_a_validation_error() {
        let raw: RawPlan = serde_json::from_value(json!({"goal": "g", "subgoals": [
            {"description": "d", "suggested_agent": "@Code-Analyzer", "is_critical": "true", "depends_on": []}
        ]}))
        .unwrap();
        assert_eq!(raw.validate().len(), 1);
        let plan = raw.into_plan(1, PlanSource::Llm);
        assert_eq!(plan.subgoals[0].suggested_agent, "code-analyzer");
    }

    #[test]
    fn builtin_examples_parse_and_pass_the_structural_checks() {
        for e in builtin_examples() {
            let raw: RawPlan = serde_json::from_value(e.plan).unwrap();
            assert!(raw.validate().is_empty());
            let plan = raw.into_plan(1, PlanSource::Llm);
            let (issues, waves) = structural(&plan, 6);
            assert!(issues.is_empty(), "{issues:?}");
            assert!(!waves.is_empty());
        }
    }

    #[test]
    fn cache_key_normalises_the_query() {
        let a = cache_key("  Where is   CONFIG loaded? ", Complexity::Medium, &[], &[], 1, "m");
        let b = cache_key("where is config loaded?", Complexity::Medium, &[], &[], 1, "m");
        let c = cache_key("where is config loaded?", Complexity::Complex, &[], &[], 1, "m");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
