//! Phase 8 (spec/soar.md §12): stores a clean run as a reasoning pattern, adjusts pattern activation
//! (the failure penalty is applied, not just reported), and records accesses of the cited chunks.

use serde::Serialize;
use serde_json::json;

use crate::index::chunk::ChunkId;
use crate::soar::collect::CollectResult;
use crate::soar::decompose::plan_json;
use crate::soar::pipeline::Run;
use crate::soar::types::{AgentStatus, Citation, Complexity, normalize_query};
use crate::soar::verify::VerifiedPlan;
use crate::store::soar::{ReasoningRow, SoarWrite};
use crate::store::writer::{AccessKind, Op};

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordResult {
    pub cached: bool,
    pub reasoning_chunk_id: Option<String>,
    pub pattern_marked: bool,
    pub activation_update: f64,
    pub penalized_patterns: Vec<String>,
    pub accesses_recorded: u32,
    pub error: Option<String>,
}

/// What the policy does with a success score `s`: (store?, marked?, delta).
pub fn policy(run: &Run, s: f64) -> (bool, bool, f64) {
    let r = &run.config.soar.record;
    if s + 1e-9 < r.min_score {
        (false, false, -r.failure_penalty)
    } else if s + 1e-9 < r.pattern_score {
        (true, false, r.boost_learning)
    } else {
        (true, true, r.boost_pattern)
    }
}

/// Records an eligible run (the caller checked eligibility): stores or penalises by its confidence.
#[allow(clippy::too_many_arguments)]
pub async fn record(
    run: &Run,
    level: Complexity,
    plan: &VerifiedPlan,
    agent_ids: &[String],
    collect: &CollectResult,
    confidence: f64,
    citations: &[Citation],
    used_patterns: &[String],
    edits: usize,
) -> RecordResult {
    let mut out = RecordResult::default();
    let now = crate::store::now_ms();
    let (store, marked, delta) = policy(run, confidence);
    out.activation_update = delta;
    let result = async {
        if store {
            let p = plan.plan();
            let mut pj = plan_json(p);
            pj["waves"] = json!(p.waves);
            pj["resolved_agents"] = json!(agent_ids);
            let mut agents = agent_ids.to_vec();
            agents.dedup();
            let id = format!("reasoning_{:016x}", fastrand::u64(..));
            let count = |s: AgentStatus| collect.outputs.iter().filter(|o| o.status == s).count();
            let row = ReasoningRow {
                id: id.clone(),
                pattern: run.query.chars().take(2000).collect(),
                normalized_query: normalize_query(&run.query),
                complexity: level.as_str().to_owned(),
                goal: p.goal.clone(),
                plan_json: pj.to_string(),
                agents_used: json!(agents).to_string(),
                success_score: confidence,
                pattern_marked: marked,
                base_level: delta,
                access_count: 1,
                last_access_ms: now,
                created_at_ms: now,
                query_id: run.query_id.clone(),
                prompt_versions: json!(run.calls.prompt_versions()).to_string(),
                models: json!(run.calls.models()).to_string(),
                metadata: json!({
                    "subgoals_completed": count(AgentStatus::Succeeded),
                    "subgoals_failed": count(AgentStatus::Failed) + count(AgentStatus::TimedOut),
                    "subgoals_skipped": count(AgentStatus::Skipped),
                    "cited_chunks": citations.iter().filter_map(|c| c.chunk_id.clone()).collect::<Vec<_>>(),
                    "proposed_edits": edits,
                })
                .to_string(),
            };
            run.ws.write(Op::Soar(SoarWrite::Reasoning { row })).await?;
            out.cached = true;
            out.pattern_marked = marked;
            // An update in place keeps the older id.
            let norm = normalize_query(&run.query);
            let lvl = level.as_str().to_owned();
            let stored: Option<String> = run
                .ws
                .read(move |r| {
                    Ok(r.connection()
                        .query_row(
                            "SELECT id FROM reasoning_chunks WHERE normalized_query = ?1 AND complexity = ?2",
                            [norm, lvl],
                            |row| row.get(0),
                        )
                        .ok())
                })
                .await?;
            out.reasoning_chunk_id = stored.or(Some(id));
        } else if !used_patterns.is_empty() {
            penalize(run, used_patterns).await?;
            out.penalized_patterns = used_patterns.to_vec();
        }
        out.accesses_recorded = record_accesses(run, citations).await?;
        Ok::<(), crate::store::StoreError>(())
    }
    .await;
    if let Err(e) = result {
        out.error = Some(e.to_string());
    }
    out
}

/// Subtracts the failure penalty from each pattern used as an example.
pub async fn penalize(run: &Run, patterns: &[String]) -> Result<(), crate::store::StoreError> {
    if patterns.is_empty() {
        return Ok(());
    }
    let delta = -run.config.soar.record.failure_penalty;
    run.ws
        .write(Op::Soar(SoarWrite::AdjustPatterns { ids: patterns.to_vec(), delta, at_ms: crate::store::now_ms() }))
        .await
}

/// One access per distinct chunk cited validly in the final answer.
pub async fn record_accesses(run: &Run, citations: &[Citation]) -> Result<u32, crate::store::StoreError> {
    let mut ids: Vec<ChunkId> = citations.iter().filter_map(|c| ChunkId::parse(c.chunk_id.as_deref()?)).collect();
    ids.sort_by_key(|i| i.0);
    ids.dedup();
    if ids.is_empty() || run.ws.writer().is_none() {
        return Ok(0);
    }
    let n = ids.len() as u32;
    let max_history = run.ws.memory().activation.max_history;
    run.ws.write(Op::Access { ids, kind: AccessKind::Cited, at_ms: crate::store::now_ms(), max_history }).await?;
    Ok(n)
}
