//! Phase 7 (spec/soar.md §10, §14.1): the answer with structured citations, reviewed against the cited
//! source and the agents' outputs, and the SIMPLE path's one-call answer.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::llm::{JsonSchema, LlmError, StructuredOutput};
use crate::soar::calls::{CallSpec, ModelRole};
use crate::soar::citations::{self, Checked, RawCitation};
use crate::soar::collect::CollectResult;
use crate::soar::pipeline::Run;
use crate::soar::prompts::{self, CITATION_RULES};
use crate::soar::types::{
    AgentStatus, Citation, CitationSource, CitationStats, ContextChunk, PhaseKey, Plan, TraceEntry, location,
};

/// The answer JSON of `soar.synthesize` and `soar.simpleAnswer`; `answer` comes first so it streams.
#[derive(Clone, Debug, Deserialize)]
pub struct AnswerReply {
    pub answer: String,
    #[serde(default)]
    pub citations: Vec<RawCitation>,
    #[serde(default)]
    pub used_subgoals: Vec<Value>,
    #[serde(default)]
    pub confidence: Option<f64>,
    #[serde(default)]
    pub uncertainties: Vec<String>,
}

impl StructuredOutput for AnswerReply {
    fn schema() -> JsonSchema {
        JsonSchema {
            name: "answer".into(),
            schema: json!({
                "type": "object",
                "required": ["answer", "citations"],
                "properties": {
                    "answer": {"type": "string"},
                    "citations": {"type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": "string"}, "chunk_id": {"type": ["string", "null"]},
                        "file": {"type": ["string", "null"]},
                        "start_line": {"type": ["integer", "null"]}, "end_line": {"type": ["integer", "null"]}
                    }}},
                    "used_subgoals": {"type": "array", "items": {"type": "string"}},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "uncertainties": {"type": "array", "items": {"type": "string"}}
                }
            }),
        }
    }

    fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.answer.trim().is_empty() {
            errors.push("`answer` must be a non-empty string".to_owned());
        }
        for (i, c) in self.citations.iter().enumerate() {
            let has_id = c.chunk_id.as_deref().is_some_and(|s| !s.trim().is_empty() && s != "null");
            let has_range = c.file.is_some() && c.start_line.is_some() && c.end_line.is_some();
            if !has_id && !has_range {
                errors.push(format!("citations[{i}] needs `chunk_id`, or `file` with `start_line` and `end_line`"));
            }
        }
        errors
    }
}

/// The reviewer's JSON of `soar.verifySynthesis`.
#[derive(Clone, Debug, Deserialize)]
pub struct RawAnswerReview {
    pub coherence: f64,
    pub completeness: f64,
    pub factuality: f64,
    #[serde(default)]
    pub overall_score: Option<f64>,
    #[serde(default)]
    pub issues: Vec<String>,
    #[serde(default)]
    pub suggestions: Vec<String>,
}

impl StructuredOutput for RawAnswerReview {
    fn schema() -> JsonSchema {
        let score = json!({"type": "number", "minimum": 0, "maximum": 1});
        JsonSchema {
            name: "answer_review".into(),
            schema: json!({
                "type": "object",
                "required": ["coherence", "completeness", "factuality"],
                "properties": {
                    "coherence": score, "completeness": score, "factuality": score, "overall_score": score,
                    "issues": {"type": "array", "items": {"type": "string"}},
                    "suggestions": {"type": "array", "items": {"type": "string"}}
                }
            }),
        }
    }

    fn validate(&self) -> Vec<String> {
        [("coherence", self.coherence), ("completeness", self.completeness), ("factuality", self.factuality)]
            .into_iter()
            .filter(|(_, v)| !(0.0..=1.0).contains(v))
            .map(|(k, v)| format!("`{k}` must be a number between 0 and 1, not {v}"))
            .collect()
    }
}

/// A review as we scored it: `overall` is the mean of the three, recomputed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerReview {
    pub coherence: f64,
    pub completeness: f64,
    pub factuality: f64,
    pub overall: f64,
    pub model_score: Option<f64>,
    pub score_corrected: bool,
    pub issues: Vec<String>,
    pub suggestions: Vec<String>,
}

impl From<RawAnswerReview> for AnswerReview {
    fn from(r: RawAnswerReview) -> AnswerReview {
        let overall = (r.coherence + r.completeness + r.factuality) / 3.0;
        AnswerReview {
            coherence: r.coherence,
            completeness: r.completeness,
            factuality: r.factuality,
            overall,
            model_score: r.overall_score,
            score_corrected: r.overall_score.is_some_and(|m| (m - overall).abs() > 0.01),
            issues: r.issues,
            suggestions: r.suggestions,
        }
    }
}

/// What phase 7 produced.
#[derive(Clone, Debug)]
pub struct Synthesis {
    pub answer_markdown: String,
    pub citations: Vec<Citation>,
    pub traceability: Vec<TraceEntry>,
    pub confidence: f64,
    pub review: Option<AnswerReview>,
    pub model_confidence: Option<f64>,
    pub uncertainties: Vec<String>,
    pub attempts: u8,
    pub quality_warning: Option<String>,
    pub citation_stats: CitationStats,
    pub had_sources: bool,
}

/// A phase 7 failure: the model failed on the last attempt (the answer falls back to the agents'
/// summaries), or the run must stop (cancellation, budget).
pub enum SynthError {
    Failed(LlmError),
    Stop(LlmError),
}

fn stop_or_fail(e: LlmError) -> SynthError {
    match e {
        LlmError::Cancelled | LlmError::BudgetExceeded { .. } => SynthError::Stop(e),
        e => SynthError::Failed(e),
    }
}

/// The source chunks synthesis sees: pinned first, then the chunks the agents cited validly.
fn source_chunks(run: &Run, pinned: &[ContextChunk], collect: &CollectResult) -> Vec<ContextChunk> {
    let max = run.config.soar.synthesis.max_source_chunks as usize;
    let mut by_id: HashMap<&str, &ContextChunk> = HashMap::new();
    for o in &collect.outputs {
        for c in &o.shown {
            by_id.entry(c.chunk_id.as_str()).or_insert(c);
        }
    }
    let mut out: Vec<ContextChunk> = pinned.iter().take(max).cloned().collect();
    for o in &collect.outputs {
        for ch in &o.checked {
            if out.len() >= max {
                return out;
            }
            let Some(id) = ch.citation.chunk_id.as_deref() else { continue };
            if out.iter().any(|c| c.chunk_id == id) {
                continue;
            }
            if let Some(c) = by_id.get(id) {
                out.push((*c).clone());
            }
        }
    }
    out
}

fn agent_results(plan: &Plan, collect: &CollectResult) -> String {
    let mut out = String::from("Results of the subgoals:\n");
    for o in &collect.outputs {
        let sg = &plan.subgoals[o.subgoal_index];
        match o.status {
            AgentStatus::Succeeded => out.push_str(&format!(
                "✓ [{}] {} ({}):\n{}\n\n",
                sg.id,
                o.agent_id,
                sg.description,
                o.resolved_summary()
            )),
            _ => out.push_str(&format!(
                "✗ [{}] {} ({}): {:?} - {}\n\n",
                sg.id,
                o.agent_id,
                sg.description,
                o.status,
                o.error.clone().unwrap_or_default()
            )),
        }
    }
    out
}

fn feedback_text(prev: &str, review: Option<&AnswerReview>, threshold: f64, reason: Option<&str>) -> String {
    let mut out = String::from("\nYour previous answer (below) was rejected");
    if let Some(r) = review {
        out.push_str(&format!(": score {:.2}, below {threshold:.2}.\nIssues:\n", r.overall));
        for i in &r.issues {
            out.push_str(&format!("- {i}\n"));
        }
        for s in &r.suggestions {
            out.push_str(&format!("- suggestion: {s}\n"));
        }
    } else {
        out.push_str(&format!(": {}.\n", reason.unwrap_or("it could not be used")));
    }
    out.push_str("Previous answer:\n");
    out.push_str(prev);
    out.push('\n');
    out
}

/// The final confidence (spec/soar.md §10).
pub fn confidence(verifier: f64, succeeded: usize, total: usize, factor: f64, critical_failure: bool) -> f64 {
    let ratio = if total == 0 { 1.0 } else { succeeded as f64 / total as f64 };
    let c = verifier * ratio * factor;
    if critical_failure { c.min(0.49) } else { c }
}

/// Runs the synthesis loop.
pub async fn synthesize(
    run: &Run,
    plan: &Plan,
    collect: &CollectResult,
    pinned: &[ContextChunk],
) -> Result<Synthesis, SynthError> {
    let cfg = &run.config.soar;
    let sources = source_chunks(run, pinned, collect);
    run.shown.add(&sources);
    let had_sources = !sources.is_empty();
    let results = agent_results(plan, collect);
    let base = format!(
        "{}User question: {}\n\nPlan goal: {}\n\n{}\nSource code of the cited chunks:\n{}\n{}\n",
        run.history,
        run.query,
        plan.goal,
        results,
        prompts::render_context(&sources, sources.len(), cfg.context.max_chunk_lines),
        CITATION_RULES
    );
    let attempts = 1 + cfg.synthesis.max_retries as u8;
    let mut feedback = String::new();
    let mut last_error = None;
    for attempt in 1..=attempts {
        run.progress(
            PhaseKey::Synthesize,
            if attempt == 1 {
                "Writing answer".into()
            } else {
                format!("Checking answer (attempt {attempt}/{attempts})")
            },
            80 + (attempt as u32 - 1) * 5,
        );
        if attempt > 1 {
            run.answer_reset(attempt);
        }
        let spec = CallSpec {
            phase: PhaseKey::Synthesize,
            role: prompts::SYNTHESIZE.role.into(),
            prompt: prompts::SYNTHESIZE,
            model: ModelRole::Solving,
            params: cfg.llm_params.synthesize.clone(),
            system: prompts::SYNTHESIZE.text.into(),
            user: format!("{base}{feedback}"),
            attempt,
        };
        let reply = match run.calls.json::<AnswerReply>(&spec, true, &run.cancel).await {
            Ok(r) => r,
            Err(e @ LlmError::InvalidModelOutput { .. }) if attempt < attempts => {
                feedback = feedback_text("(not valid JSON)", None, 0.0, Some(&e.to_string()));
                last_error = Some(e);
                continue;
            }
            Err(e) => return Err(stop_or_fail(e)),
        };
        let (checked, mut stats) =
            citations::check(&run.ws, &run.shown, reply.citations.clone(), CitationSource::Synthesis)
                .await
                .map_err(|e| SynthError::Failed(LlmError::UsageLog(e.to_string())))?;
        let last = attempt == attempts;
        let mut quality_warning = None;
        if had_sources && checked.is_empty() {
            if !last {
                feedback = feedback_text(
                    &reply.answer,
                    None,
                    0.0,
                    Some("support the answer with citations to the provided chunks"),
                );
                continue;
            }
            quality_warning = Some("no valid citations".to_owned());
        }
        let review = review(run, &reply.answer, &checked, &results, &sources, attempt).await.map_err(stop_or_fail)?;
        if review.overall + 1e-9 < cfg.synthesis.pass_threshold {
            if !last {
                feedback = feedback_text(&reply.answer, Some(&review), cfg.synthesis.pass_threshold, None);
                continue;
            }
            quality_warning =
                Some(format!("synthesis score {:.2} below {:.2}", review.overall, cfg.synthesis.pass_threshold));
        }
        let factor = citations::citation_factor(&stats, had_sources);
        let (answer, cites) = citations::renumber(&reply.answer, checked, cfg.citations.max as usize, &mut stats);
        let traceability = used_subgoals(run, plan, collect, &reply.used_subgoals);
        let confidence = confidence(
            review.overall,
            collect.stats.succeeded,
            collect.outputs.len(),
            factor,
            collect.critical_failure.is_some(),
        );
        return Ok(Synthesis {
            answer_markdown: answer,
            citations: cites,
            traceability,
            confidence,
            review: Some(review),
            model_confidence: reply.confidence,
            uncertainties: reply.uncertainties,
            attempts: attempt,
            quality_warning,
            citation_stats: stats,
            had_sources,
        });
    }
    Err(SynthError::Failed(last_error.unwrap_or(LlmError::InvalidModelOutput {
        role: prompts::SYNTHESIZE.role.into(),
        errors: vec!["no acceptable answer".into()],
    })))
}

/// `used_subgoals` as trace entries, by subgoal index; names of missing or failed subgoals are dropped.
fn used_subgoals(run: &Run, plan: &Plan, collect: &CollectResult, used: &[Value]) -> Vec<TraceEntry> {
    let mut out: Vec<TraceEntry> = Vec::new();
    for v in used {
        let Some(i) = crate::soar::decompose::dependency_index(v) else {
            run.warn("subgoalUnknown", format!("synthesis named an unknown subgoal {v}"));
            continue;
        };
        let (Some(sg), Some(o)) = (plan.subgoals.get(i), collect.outputs.get(i)) else {
            run.warn("subgoalUnknown", format!("synthesis named subgoal {v}, which the plan does not have"));
            continue;
        };
        if o.status != AgentStatus::Succeeded {
            run.warn("subgoalUnknown", format!("synthesis named {}, which did not succeed", sg.id));
            continue;
        }
        if out.iter().any(|t| t.subgoal_index == i) {
            continue;
        }
        out.push(TraceEntry {
            subgoal_id: sg.id.clone(),
            subgoal_index: i,
            agent_id: o.agent_id.clone(),
            description: sg.description.clone(),
            status: o.status,
        });
    }
    out
}

/// The answer with citations resolved to `file:Lstart-Lend`, for the reviewer.
fn resolved_answer(answer: &str, checked: &[Checked]) -> String {
    let mut text = citations::resolve_markers(answer, checked);
    text.push_str("\n\nCitations:\n");
    for c in checked {
        text.push_str(&format!("- {}\n", location(&c.citation.file, c.citation.start_line, c.citation.end_line)));
    }
    text
}

/// The synthesis review; `results` are the agents' results as shown to the writer ("" on the SIMPLE
/// path, which has none).
async fn review(
    run: &Run,
    answer: &str,
    checked: &[Checked],
    results: &str,
    sources: &[ContextChunk],
    attempt: u8,
) -> Result<AnswerReview, LlmError> {
    let cfg = &run.config.soar;
    let cited: Vec<ContextChunk> = sources
        .iter()
        .filter(|s| {
            checked
                .iter()
                .any(|c| c.citation.chunk_id.as_deref() == Some(s.chunk_id.as_str()) || c.citation.file == s.file)
        })
        .cloned()
        .collect();
    let user = format!(
        "User question: {}\n\nAnswer to review:\n{}\n\n{}\nSource code of the cited chunks:\n{}",
        run.query,
        resolved_answer(answer, checked),
        results,
        prompts::render_context(&cited, cited.len(), cfg.context.max_chunk_lines)
    );
    let spec = CallSpec {
        phase: PhaseKey::Synthesize,
        role: prompts::VERIFY_SYNTHESIS.role.into(),
        prompt: prompts::VERIFY_SYNTHESIS,
        model: ModelRole::Review,
        params: cfg.llm_params.verify_synthesis.clone(),
        system: prompts::VERIFY_SYNTHESIS.text.into(),
        user,
        attempt,
    };
    Ok(run.calls.json::<RawAnswerReview>(&spec, false, &run.cancel).await?.into())
}

/// The SIMPLE path's answer (spec/soar.md §14.1): one call over the retrieved chunks in full text.
pub async fn simple_answer(run: &Run, chunks: &[ContextChunk]) -> Result<Synthesis, LlmError> {
    let cfg = &run.config.soar;
    run.shown.add(chunks);
    let user = format!(
        "{}Question: {}\n\nCode context:\n{}\n{}\n",
        run.history,
        run.query,
        prompts::render_context(chunks, chunks.len(), cfg.context.max_chunk_lines),
        CITATION_RULES
    );
    let spec = CallSpec {
        phase: PhaseKey::Synthesize,
        role: prompts::SIMPLE_ANSWER.role.into(),
        prompt: prompts::SIMPLE_ANSWER,
        model: ModelRole::Solving,
        params: cfg.llm_params.simple_answer.clone(),
        system: prompts::SIMPLE_ANSWER.text.into(),
        user,
        attempt: 1,
    };
    let reply = run.calls.json::<AnswerReply>(&spec, true, &run.cancel).await?;
    let (checked, mut stats) =
        citations::check(&run.ws, &run.shown, reply.citations.clone(), CitationSource::Synthesis)
            .await
            .map_err(|e| LlmError::UsageLog(e.to_string()))?;
    let had_sources = !chunks.is_empty();
    let factor = citations::citation_factor(&stats, had_sources);
    let review =
        if cfg.simple.verify { Some(review(run, &reply.answer, &checked, "", chunks, 1).await?) } else { None };
    let quality_warning = (had_sources && checked.is_empty()).then(|| "no valid citations".to_owned());
    let (answer, cites) = citations::renumber(&reply.answer, checked, cfg.citations.max as usize, &mut stats);
    let confidence = review.as_ref().map_or(0.7, |r| r.overall) * factor;
    Ok(Synthesis {
        answer_markdown: answer,
        citations: cites,
        traceability: Vec::new(),
        confidence,
        review,
        model_confidence: reply.confidence,
        uncertainties: reply.uncertainties,
        attempts: 1,
        quality_warning,
        citation_stats: stats,
        had_sources,
    })
}
