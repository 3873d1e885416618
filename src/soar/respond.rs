//! Phase 9 (spec/soar.md §13): the envelope and the conversation log. No text formatting happens
//! here; the CLI and the LSP layer render the envelope.

use std::collections::BTreeMap;

use serde_json::json;

use crate::soar::error::LlmFailure;
use crate::soar::pipeline::Run;
use crate::soar::record::RecordResult;
use crate::soar::types::{
    BudgetState, ChunkRef, Citation, CitationStats, Complexity, ConfidenceBasis, EditStats, IndexFreshness, Outcome,
    PhaseKey, PhaseRecord, PhaseStatus, ProposedEdit, ReasoningTrace, ResponseMetadata, SoarResponse, TokensUsed,
};
use crate::store::soar::{ConversationRow, SoarWrite};
use crate::store::writer::Op;

/// Everything the phases produced that the envelope reports.
#[derive(Clone, Debug)]
pub struct Parts {
    pub outcome: Outcome,
    pub complexity: Complexity,
    pub answer: String,
    pub confidence: f64,
    pub basis: ConfidenceBasis,
    pub citations: Vec<Citation>,
    pub related: Vec<ChunkRef>,
    pub proposed_edits: Vec<ProposedEdit>,
    pub trace: ReasoningTrace,
    pub simple_path: bool,
    pub record: RecordResult,
    pub cache_hit: bool,
    pub quality_warning: Option<String>,
    pub llm_failure: Option<LlmFailure>,
    pub citation_stats: CitationStats,
    pub edit_stats: EditStats,
    pub index: IndexFreshness,
    /// The conversation row's outcome when the run stopped without an envelope of its own
    /// (`cancelled`, `budget_exceeded`); `None`: the outcome's own name.
    pub log_outcome: Option<&'static str>,
}

impl Parts {
    pub fn new(outcome: Outcome, complexity: Complexity, answer: String) -> Parts {
        Parts {
            outcome,
            complexity,
            answer,
            confidence: 0.0,
            basis: ConfidenceBasis::None,
            citations: Vec::new(),
            related: Vec::new(),
            proposed_edits: Vec::new(),
            trace: ReasoningTrace::default(),
            simple_path: false,
            record: RecordResult::default(),
            cache_hit: false,
            quality_warning: None,
            llm_failure: None,
            citation_stats: CitationStats::default(),
            edit_stats: EditStats::default(),
            index: IndexFreshness::default(),
            log_outcome: None,
        }
    }
}

fn budget_state(run: &Run) -> Option<BudgetState> {
    let budget = run.calls.llm()?.budget()?;
    let s = budget.status().ok()?;
    Some(BudgetState {
        period: s.period,
        limit_usd: s.limit_usd,
        consumed_usd: s.consumed_usd,
        remaining_usd: s.remaining_usd.is_finite().then_some(s.remaining_usd),
        percent_consumed: s.percent_consumed,
        at_soft_limit: s.at_soft_limit,
        at_hard_limit: s.at_hard_limit,
    })
}

/// Builds the envelope, records phase 9, and writes the conversation row.
pub async fn respond(run: &Run, parts: Parts) -> SoarResponse {
    let started = std::time::Instant::now();
    let log_outcome = parts.log_outcome.unwrap_or(parts.outcome.as_str());
    let usage = run.calls.usage();
    let mut phases = run.phases();
    for key in PhaseKey::ALL {
        phases.entry(key).or_insert_with(PhaseRecord::skipped);
    }
    let mut response = SoarResponse {
        answer: parts.answer,
        confidence: parts.confidence,
        overall_score: parts.confidence,
        outcome: parts.outcome,
        complexity: parts.complexity,
        citations: parts.citations,
        related: parts.related,
        proposed_edits: parts.proposed_edits,
        reasoning_trace: parts.trace,
        metadata: ResponseMetadata {
            query_id: run.query_id.clone(),
            conversation_id: run.conversation_id.clone(),
            query: run.query.clone(),
            simple_path: parts.simple_path,
            cached: parts.record.cached,
            reasoning_chunk_id: parts.record.reasoning_chunk_id.clone(),
            pattern_marked: parts.record.pattern_marked,
            decomposition_cache_hit: parts.cache_hit,
            total_duration_ms: 0.0,
            total_cost_usd: usage.cost_usd,
            tokens_used: TokensUsed {
                input: usage.input_tokens,
                output: usage.output_tokens,
                estimated: usage.estimated,
            },
            usage,
            usage_by_phase: run.calls.usage_by_phase(),
            budget_status: budget_state(run),
            budget_warning: run.calls.budget_warning(),
            phases,
            citations: parts.citation_stats,
            edits: parts.edit_stats,
            index: parts.index,
            confidence_basis: parts.basis,
            quality_warning: parts.quality_warning,
            llm_failure: parts.llm_failure,
            warnings: Vec::new(),
            prompt_versions: run.calls.prompt_versions(),
            models: run.calls.models(),
            timestamp: crate::store::now_ms() / 1000,
        },
    };
    let redacted = run.calls.redacted();
    if redacted > 0 {
        run.warn(
            "secretsRedacted",
            format!("{redacted} secret(s) in the workspace text were redacted before it was sent to the model"),
        );
    }
    response.metadata.warnings = run.warnings();
    if let Some(w) = write_log(run, &response, log_outcome).await {
        run.warn("conversationLog", w);
        response.metadata.warnings = run.warnings();
    }
    response.metadata.phases.insert(
        PhaseKey::Respond,
        PhaseRecord {
            status: PhaseStatus::Ok,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            error: None,
            detail: json!({"outcome": response.outcome.as_str()}),
        },
    );
    response.metadata.total_duration_ms = run.elapsed_ms();
    response
}

/// Writes the conversation row of a finished or stopped run; a failure is returned as a warning.
async fn write_log(run: &Run, envelope: &SoarResponse, outcome: &str) -> Option<String> {
    let cfg = &run.config.soar.conversation_log;
    if !cfg.enabled {
        return None;
    }
    if run.ws.writer().is_none() {
        return Some("the conversation was not logged: the store is open read-only".into());
    }
    let calls = run.calls.log();
    let row = ConversationRow {
        query_id: run.query_id.clone(),
        conversation_id: run.conversation_id.clone(),
        started_at_ms: run.started_ms,
        finished_at_ms: crate::store::now_ms(),
        query: run.query.clone(),
        complexity: envelope.complexity.as_str().to_owned(),
        outcome: outcome.to_owned(),
        confidence: envelope.confidence,
        total_cost_usd: envelope.metadata.usage.cost_usd,
        input_tokens: envelope.metadata.usage.input_tokens,
        output_tokens: envelope.metadata.usage.output_tokens,
        answer: envelope.answer.clone(),
        envelope_json: serde_json::to_string(envelope).unwrap_or_else(|e| json!({"error": e.to_string()}).to_string()),
        calls_json: serde_json::to_string(&calls).unwrap_or_default(),
        prompts_json: cfg.include_prompts.then(|| serde_json::to_string(&run.calls.prompts()).unwrap_or_default()),
    };
    if let Err(e) = run.ws.write(Op::Soar(SoarWrite::Conversation { row, max_entries: cfg.max_entries })).await {
        return Some(format!("the conversation could not be logged: {e}"));
    }
    if cfg.markdown
        && let Err(e) = write_markdown(run, envelope, outcome)
    {
        return Some(format!("the Markdown conversation log could not be written: {e}"));
    }
    None
}

/// A readable log of one query (spec/soar.md §13.1).
pub fn render_log_markdown(envelope: &SoarResponse, outcome: &str) -> String {
    let m = &envelope.metadata;
    let mut out = format!("# SOAR conversation {}\n\n", m.query_id);
    out.push_str(&format!(
        "- Query ID: {}\n- Timestamp: {}\n- User Query: {}\n\n",
        m.query_id,
        iso(m.timestamp),
        m.query
    ));
    for key in PhaseKey::ALL {
        if let Some(r) = m.phases.get(&key) {
            out.push_str(&format!(
                "## {}\n\n```json\n{}\n```\n\n",
                key.key(),
                serde_json::to_string_pretty(r).unwrap_or_default()
            ));
        }
    }
    out.push_str(&format!(
        "## Execution Summary\n\n- Outcome: {outcome}\n- Duration: {:.0} ms\n- Confidence: {:.2}\n- Stored: {}\n- Cost: ${:.4}\n- Tokens: {} + {}\n\n",
        m.total_duration_ms, envelope.confidence, if m.cached { "yes" } else { "no" }, m.total_cost_usd, m.tokens_used.input, m.tokens_used.output
    ));
    let meta: BTreeMap<&str, serde_json::Value> = [
        ("complexity", json!(envelope.complexity)),
        ("outcome", json!(outcome)),
        ("promptVersions", json!(m.prompt_versions)),
        ("models", json!(m.models)),
        ("citations", json!(m.citations)),
    ]
    .into_iter()
    .collect();
    out.push_str(&format!(
        "## Metadata\n\n```json\n{}\n```\n",
        serde_json::to_string_pretty(&meta).unwrap_or_default()
    ));
    out
}

fn iso(epoch_secs: i64) -> String {
    let days = epoch_secs.div_euclid(86_400);
    let secs = epoch_secs.rem_euclid(86_400);
    let (y, mo, d) = crate::llm::budget::civil_from_days(days);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

fn write_markdown(run: &Run, envelope: &SoarResponse, outcome: &str) -> std::io::Result<()> {
    let stamp = iso(envelope.metadata.timestamp);
    let dir = run.ws.root().join(".aurora/logs/conversations").join(&stamp[..4]).join(&stamp[5..7]);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{}.md", run.query_id)), render_log_markdown(envelope, outcome))
}
