//! The orchestrator (spec/soar.md §1.1): runs the phases in order over immutable values, owns the
//! budget gate, the deadline, cancellation, progress events and timings.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::llm::{Llm, LlmClient, LlmError, QueryId};
use crate::soar::agents;
use crate::soar::assess::{self, AssessMethod, Assessment};
use crate::soar::calls::{CallSpec, Calls, ModelRole};
use crate::soar::citations::{self, Shown};
use crate::soar::collect::{self, CollectResult};
use crate::soar::decompose::{self, RawPlan, RetryFeedback};
use crate::soar::error::{LlmFailure, LlmFailureKind, SoarError};
use crate::soar::prompts;
use crate::soar::record::{self, RecordResult};
use crate::soar::respond::{self, Parts};
use crate::soar::retrieve::{self, RetrievedContext};
use crate::soar::route::{self, Routing};
use crate::soar::synthesize::{self, SynthError, Synthesis};
use crate::soar::types::{
    AgentStatus, Complexity, ConfidenceBasis, ContextChunk, DirectedTask, EditorContext, Outcome, PhaseKey,
    PhaseRecord, PhaseStatus, Plan, PlanSource, RequestMode, SoarEvent, SoarRequest, SoarResponse, Subgoal,
    SynthesisMeta, TraceEntry, Warning, location,
};
use crate::soar::verify::{self, Verdict, VerifiedPlan, VerifyAttempt, VerifyMethod};
use crate::soar::workspace::Workspace;

/// One configured pipeline over one workspace. Cheap to build per request.
pub struct Pipeline {
    config: Arc<Config>,
    ws: Arc<Workspace>,
    llm: Option<Arc<Llm>>,
}

/// The state of one run that every phase reads: configuration, store, calls, what the models were
/// shown, the run's token (cancelled by the caller or the deadline), progress and phase records.
pub struct Run {
    pub config: Arc<Config>,
    pub ws: Arc<Workspace>,
    pub calls: Arc<Calls>,
    pub shown: Arc<Shown>,
    pub query: String,
    pub query_id: String,
    pub conversation_id: String,
    /// The last turns of the conversation this question continues, as prompt text ("" for a new one).
    pub history: String,
    pub editor: Option<EditorContext>,
    pub cancel: CancellationToken,
    pub started_ms: i64,
    started: Instant,
    events: UnboundedSender<SoarEvent>,
    percent: AtomicU32,
    phases: Mutex<BTreeMap<PhaseKey, PhaseRecord>>,
    warnings: Mutex<Vec<Warning>>,
    deadline_hit: Arc<AtomicBool>,
}

impl Run {
    /// Reports progress; the percentage never decreases.
    pub fn progress(&self, phase: PhaseKey, message: String, percentage: u32) {
        let pct = self.percent.fetch_max(percentage.min(100), Ordering::SeqCst).max(percentage.min(100));
        let _ = self.events.send(SoarEvent::Progress { phase, message, percentage: pct });
    }

    /// Collect's progress: 37–80 by subgoals done.
    pub fn progress_collect(&self, wave: usize, waves: usize, done: usize, total: usize, _what: &str) {
        let pct = 37 + (43 * done / total.max(1)) as u32;
        self.progress(
            PhaseKey::Collect,
            format!("Running agents: wave {}/{waves}, {done}/{total} subgoals done", wave + 1),
            pct,
        );
    }

    pub fn answer_reset(&self, attempt: u8) {
        let _ = self.events.send(SoarEvent::AnswerReset { attempt });
    }

    pub fn warn(&self, code: &str, message: impl Into<String>) {
        let message = message.into();
        tracing::debug!(code, %message, "soar warning");
        self.warnings.lock().unwrap_or_else(|e| e.into_inner()).push(Warning::new(code, message));
    }

    pub fn warnings(&self) -> Vec<Warning> {
        self.warnings.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn phases(&self) -> BTreeMap<PhaseKey, PhaseRecord> {
        self.phases.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn phase(
        &self,
        key: PhaseKey,
        status: PhaseStatus,
        started: Instant,
        error: Option<String>,
        detail: serde_json::Value,
    ) {
        let record = PhaseRecord { status, duration_ms: started.elapsed().as_secs_f64() * 1000.0, error, detail };
        self.phases.lock().unwrap_or_else(|e| e.into_inner()).insert(key, record);
    }

    pub fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    fn clean(&self) -> bool {
        self.phases().values().all(|r| matches!(r.status, PhaseStatus::Ok | PhaseStatus::Skipped))
    }
}

/// Why a run stops early.
enum Stop {
    /// The caller cancelled, or a cap was reached: a typed error, not an envelope.
    Error(SoarError),
    /// The overall deadline passed; the Markdown of the subgoals that completed, if any.
    TimedOut(Option<String>),
}

/// Cancels the run token when the deadline passes; dropped with the run.
struct Deadline(tokio::task::JoinHandle<()>);

impl Drop for Deadline {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Pipeline {
    /// `llm` is `None` when no provider is configured: runs then answer with locations (`no_llm`).
    pub fn new(config: Arc<Config>, ws: Arc<Workspace>, llm: Option<Arc<Llm>>) -> Pipeline {
        Pipeline { config, ws, llm }
    }

    /// Runs one request to its envelope. `events` receives progress and streamed answer text (a closed
    /// receiver is fine); cancelling `cancel` stops every phase, in-flight calls and agent processes.
    pub async fn run(
        &self,
        req: SoarRequest,
        events: UnboundedSender<SoarEvent>,
        cancel: CancellationToken,
    ) -> Result<SoarResponse, SoarError> {
        let query = req.query.trim().to_owned();
        if query.is_empty() {
            return Err(SoarError::InvalidRequest("the question is empty".into()));
        }
        let started_ms = crate::store::now_ms();
        let query_id = format!("soar-{started_ms}-{:06x}", fastrand::u32(..0x100_0000));
        let new_conversation = || format!("conv-{started_ms}-{:06x}", fastrand::u32(..0x100_0000));
        let asked = req.conversation_id.clone().filter(|c| !c.trim().is_empty());
        let turns = match &asked {
            Some(id) => {
                let id = id.clone();
                self.ws
                    .read(move |r| crate::store::soar::conversation_turns(r.connection(), &id, 5))
                    .await
                    .unwrap_or_default()
            }
            None => Vec::new(),
        };
        let unknown_conversation = asked.is_some() && turns.is_empty();
        let conversation_id = match asked {
            Some(id) if !turns.is_empty() => id,
            _ => new_conversation(),
        };
        let history = history_text(&turns);
        let token = cancel.child_token();
        let deadline_hit = Arc::new(AtomicBool::new(false));
        let _deadline = {
            let (token, hit) = (token.clone(), Arc::clone(&deadline_hit));
            let after = Duration::from_secs(self.config.soar.timeouts.overall_secs);
            Deadline(tokio::spawn(async move {
                tokio::time::sleep(after).await;
                hit.store(true, Ordering::SeqCst);
                token.cancel();
            }))
        };
        let run = Run {
            config: Arc::clone(&self.config),
            ws: Arc::clone(&self.ws),
            calls: Arc::new(Calls::new(
                self.llm.clone(),
                Arc::clone(&self.config),
                QueryId(query_id.clone()),
                events.clone(),
                query_cap(&self.config, req.max_cost_usd),
            )),
            shown: Arc::new(Shown::default()),
            query,
            query_id,
            conversation_id,
            history,
            editor: req.editor.clone(),
            cancel: token,
            started_ms,
            started: Instant::now(),
            events,
            percent: AtomicU32::new(0),
            phases: Mutex::new(BTreeMap::new()),
            warnings: Mutex::new(Vec::new()),
            deadline_hit,
        };
        if unknown_conversation {
            run.warn("conversationNotFound", "the conversation was not found; this question starts a new one");
        }
        run.progress(PhaseKey::Assess, "Thinking…".into(), 0);
        let result = self.run_phases(&run, &req).await;
        if let Some(llm) = &self.llm
            && let Some(b) = llm.budget()
        {
            b.end_query(&QueryId(run.query_id.clone()));
        }
        match result {
            Ok(response) => Ok(response),
            Err(Stop::Error(e)) => {
                let outcome = match &e {
                    SoarError::Cancelled => "cancelled",
                    SoarError::BudgetExceeded { .. } => "budget_exceeded",
                    SoarError::InvalidRequest(_) => "invalid_request",
                };
                let level = req.complexity_override.unwrap_or(Complexity::Simple);
                let parts = Parts { log_outcome: Some(outcome), ..Parts::new(Outcome::Failed, level, String::new()) };
                respond::respond(&run, parts).await;
                Err(e)
            }
            Err(Stop::TimedOut(_)) => unreachable!("time-outs become envelopes inside run_phases"),
        }
    }

    /// Turns an LLM error into a stop, when it is one (cancellation, deadline, budget).
    fn stop_of(run: &Run, e: &LlmError) -> Option<Stop> {
        match e {
            LlmError::Cancelled if run.deadline_hit.load(Ordering::SeqCst) => Some(Stop::TimedOut(None)),
            LlmError::Cancelled => Some(Stop::Error(SoarError::Cancelled)),
            _ => SoarError::from_budget(e).map(Stop::Error),
        }
    }

    fn check_cancel(run: &Run) -> Result<(), Stop> {
        if run.cancel.is_cancelled() {
            if run.deadline_hit.load(Ordering::SeqCst) {
                return Err(Stop::TimedOut(None));
            }
            return Err(Stop::Error(SoarError::Cancelled));
        }
        Ok(())
    }

    async fn run_phases(&self, run: &Run, req: &SoarRequest) -> Result<SoarResponse, Stop> {
        let cfg = &self.config.soar;
        // Phase 1.
        let t = Instant::now();
        run.progress(PhaseKey::Assess, "Assessing complexity".into(), 1);
        let directed = match &req.mode {
            RequestMode::Directed(task) => Some(task.clone()),
            RequestMode::Ask => None,
        };
        let (assessment, keyword): (Assessment, Option<Assessment>) = match (&directed, req.complexity_override) {
            (Some(_), _) => {
                let (a, k) = assess::with_override(&run.query, Complexity::Medium, AssessMethod::Directed);
                (a, Some(k))
            }
            (None, Some(level)) => {
                let (a, k) = assess::with_override(&run.query, level, AssessMethod::Override);
                (a, Some(k))
            }
            (None, None) => (assess::assess(&run.query), None),
        };
        let level = assessment.level;
        run.phase(
            PhaseKey::Assess,
            PhaseStatus::Ok,
            t,
            None,
            json!({"assessment": assessment, "keyword_result": keyword}),
        );
        run.progress(PhaseKey::Assess, format!("Complexity: {level}"), 5);
        Self::check_cancel(run).map_err(|_| Stop::Error(SoarError::Cancelled))?;

        // Phase 2.
        let t = Instant::now();
        let limit = retrieve::budget(cfg, level);
        run.progress(PhaseKey::Retrieve, format!("Retrieving context ({limit} chunks)"), 6);
        let deny = &self.config.privacy.deny_globs;
        let rc = match retrieve::retrieve(&run.ws, cfg, &run.query, limit, run.editor.as_ref(), req.index, deny).await {
            Ok(rc) => {
                run.phase(
                    PhaseKey::Retrieve,
                    PhaseStatus::Ok,
                    t,
                    None,
                    json!({
                        "budget": rc.budget, "budget_used": rc.code.len(), "pinned": rc.pinned,
                        "chunks": rc.code.iter().map(ContextChunk::as_ref).collect::<Vec<_>>(),
                        "patterns": rc.patterns, "index": rc.index,
                    }),
                );
                for w in &rc.warnings {
                    run.warn(&w.code, w.message.clone());
                }
                rc
            }
            Err(e) => {
                run.phase(PhaseKey::Retrieve, PhaseStatus::Degraded, t, Some(e.to_string()), json!({}));
                run.warn("storeError", format!("retrieval failed, answering without code context: {e}"));
                RetrievedContext { budget: limit, ..RetrievedContext::default() }
            }
        };
        let partial = if rc.index.partial { " (index partial)" } else { "" };
        run.progress(
            PhaseKey::Retrieve,
            format!("Retrieved {} chunks{partial}", rc.code.len()),
            if level == Complexity::Simple && directed.is_none() { 15 } else { 10 },
        );
        Self::check_cancel(run).map_err(|_| Stop::Error(SoarError::Cancelled))?;
        let mut base = Parts::new(Outcome::NoLlm, level, String::new());
        base.index = rc.index;
        base.related = rc.code.iter().map(ContextChunk::as_ref).collect();

        // Without a model: locations only.
        if self.llm.is_none() {
            let mut parts = base;
            parts.answer = no_llm_answer(&rc.code);
            return Ok(respond::respond(run, parts).await);
        }

        // Budget pre-flight.
        self.preflight(run, req, level, directed.is_some(), &rc).map_err(Stop::Error)?;

        let result = match (&directed, level) {
            (Some(task), _) => self.directed(run, task, &rc, base).await,
            (None, Complexity::Simple) => self.simple(run, &rc, base).await,
            (None, _) => self.full(run, req, level, &rc, base).await,
        };
        match result {
            Ok(r) => Ok(r),
            Err(Stop::TimedOut(done)) => {
                let mut parts = Parts::new(Outcome::TimedOut, level, String::new());
                parts.index = rc.index;
                parts.related = rc.code.iter().map(ContextChunk::as_ref).collect();
                parts.answer =
                    format!("Aurora ran out of time ({} s) before the answer was complete.", cfg.timeouts.overall_secs);
                if let Some(done) = done.filter(|d| !d.is_empty()) {
                    parts.answer.push_str("\n\nThese subgoals completed; their results are not synthesised:\n\n");
                    parts.answer.push_str(&done);
                }
                Ok(respond::respond(run, parts).await)
            }
            Err(e) => Err(e),
        }
    }

    /// The estimate of the level's happy path against the caps (spec/soar.md §15).
    fn preflight(
        &self,
        run: &Run,
        req: &SoarRequest,
        level: Complexity,
        directed: bool,
        rc: &RetrievedContext,
    ) -> Result<(), SoarError> {
        let Some(llm) = &self.llm else { return Ok(()) };
        let cfg = &self.config.soar;
        let context_chars: usize = rc.code.iter().map(|c| c.content.len().min(4000)).sum();
        let call = |role: &str, model: ModelRole, params: &crate::config::RoleParams| {
            let spec = CallSpec {
                phase: PhaseKey::Assess,
                role: role.to_owned(),
                prompt: prompts::DECOMPOSE,
                model,
                params: params.clone(),
                system: String::new(),
                user: " ".repeat(context_chars + 4000),
                attempt: 1,
            };
            run.calls.estimate(&run.calls.request(&spec))
        };
        let p = &cfg.llm_params;
        let estimate = if directed {
            call("agent.directed", ModelRole::Agents, &p.agents)
        } else if level == Complexity::Simple {
            call("soar.simpleAnswer", ModelRole::Solving, &p.simple_answer)
                + if cfg.simple.verify {
                    call("soar.verifySynthesis", ModelRole::Review, &p.verify_synthesis)
                } else {
                    0.0
                }
        } else {
            let n = level.pick(&cfg.decompose.max_subgoals) as f64;
            let review = if level == Complexity::Medium { &p.verify_self } else { &p.verify_adversarial };
            call("soar.decompose", ModelRole::Reasoning, &p.decompose)
                + call("soar.verify", ModelRole::Review, review)
                + n * call("agent", ModelRole::Agents, &p.agents)
                + call("soar.synthesize", ModelRole::Solving, &p.synthesize)
                + call("soar.verifySynthesis", ModelRole::Review, &p.verify_synthesis)
        };
        if let Some(cap) = query_cap(&self.config, req.max_cost_usd)
            && estimate > 0.0
            && estimate > cap
        {
            return Err(SoarError::BudgetExceeded {
                scope: crate::llm::BudgetScope::Query,
                consumed_usd: 0.0,
                limit_usd: cap,
                estimated_usd: estimate,
            });
        }
        if let Some(budget) = llm.budget() {
            match budget.check(Some(&QueryId(run.query_id.clone())), estimate) {
                Ok(true) => {
                    let status = budget.status().ok();
                    let msg = status.map_or_else(
                        || "Budget past the soft limit".to_owned(),
                        |s| format!("Budget at {:.0}% of monthly limit", s.percent_consumed),
                    );
                    let _ = run.events.send(SoarEvent::BudgetWarning { message: msg.clone() });
                    run.warn("budgetWarning", msg);
                }
                Ok(false) => {}
                Err(e) => return Err(SoarError::from_budget(&e).unwrap_or(SoarError::InvalidRequest(e.to_string()))),
            }
        }
        Ok(())
    }

    /// SIMPLE: one answer over the retrieved chunks (spec/soar.md §14.1).
    async fn simple(&self, run: &Run, rc: &RetrievedContext, mut parts: Parts) -> Result<SoarResponse, Stop> {
        let t = Instant::now();
        run.progress(PhaseKey::Synthesize, "Answering".into(), 15);
        parts.simple_path = true;
        match synthesize::simple_answer(run, &rc.code).await {
            Ok(s) => {
                run.phase(PhaseKey::Synthesize, PhaseStatus::Ok, t, None, synth_detail(&s, true));
                parts.outcome = Outcome::AnsweredSimple;
                parts.basis = if s.review.is_some() { ConfidenceBasis::Verified } else { ConfidenceBasis::Unverified };
                self.fill_answer(&mut parts, s, rc);
            }
            Err(e) => {
                if let Some(stop) = Self::stop_of(run, &e) {
                    return Err(stop);
                }
                run.phase(
                    PhaseKey::Synthesize,
                    PhaseStatus::Failed,
                    t,
                    Some(e.to_string()),
                    json!({"simple_path": true}),
                );
                parts.outcome = Outcome::Failed;
                parts.llm_failure = Some(LlmFailure::of(prompts::SIMPLE_ANSWER.role, &e));
                parts.answer = failure_answer(&format!("The model could not answer: {e}"), &rc.code);
            }
        }
        run.progress(PhaseKey::Respond, "Done".into(), 98);
        Ok(respond::respond(run, parts).await)
    }

    fn fill_answer(&self, parts: &mut Parts, s: Synthesis, rc: &RetrievedContext) {
        parts.confidence = s.confidence;
        parts.quality_warning = s.quality_warning.clone();
        parts.citation_stats = s.citation_stats.clone();
        parts.related = rc
            .code
            .iter()
            .filter(|c| !s.citations.iter().any(|x| x.chunk_id.as_deref() == Some(c.chunk_id.as_str())))
            .map(ContextChunk::as_ref)
            .collect();
        parts.trace.synthesis_metadata = SynthesisMeta {
            attempts: s.attempts,
            verification_score: s.review.as_ref().map(|r| r.overall),
            coherence: s.review.as_ref().map(|r| r.coherence),
            completeness: s.review.as_ref().map(|r| r.completeness),
            factuality: s.review.as_ref().map(|r| r.factuality),
            model_confidence: s.model_confidence,
            ..parts.trace.synthesis_metadata.clone()
        };
        parts.trace.traceability = s.traceability;
        parts.answer = s.answer_markdown;
        parts.citations = s.citations;
    }

    /// A code action (spec/soar.md §14.2): a fixed one-subgoal plan, no synthesis.
    async fn directed(
        &self,
        run: &Run,
        task: &DirectedTask,
        rc: &RetrievedContext,
        mut parts: Parts,
    ) -> Result<SoarResponse, Stop> {
        let instruction = task.instruction.clone().unwrap_or_else(|| task.kind.default_instruction().to_owned());
        let target = run.editor.as_ref().map(|e| match e.selection {
            Some(s) => format!(" Target: {} (the selected code).", location(&e.path, s.start_line, s.end_line)),
            None => format!(" Target: {}.", e.path),
        });
        let plan = Plan {
            goal: instruction.clone(),
            subgoals: vec![Subgoal {
                index: 0,
                id: "sg-1".into(),
                description: format!("{instruction}{}", target.unwrap_or_default()),
                suggested_agent: task.kind.agent().into(),
                specialist_hint: None,
                is_critical: true,
                depends_on: vec![],
            }],
            expected_tools: vec![],
            waves: vec![],
            attempt: 1,
            source: PlanSource::Directed,
        };
        let t = Instant::now();
        let (issues, waves) = verify::structural(&plan, 1);
        debug_assert!(issues.is_empty());
        let plan = verify::verified(plan, waves);
        run.phase(
            PhaseKey::Verify,
            PhaseStatus::Ok,
            t,
            None,
            json!({"method": VerifyMethod::Structural, "directed": true}),
        );
        let registry = agents::registry(&self.config.soar);
        let (routing, outputs) = self.route_and_collect(run, &plan, &registry, rc).await?;
        let out = &outputs.outputs[0];
        parts.basis = ConfidenceBasis::Unverified;
        parts.trace.traceability = trace(&plan, &outputs);
        let _ = routing;
        if out.status != AgentStatus::Succeeded {
            parts.outcome = Outcome::Failed;
            let message = out.error.clone().unwrap_or_else(|| "the agent failed".into());
            parts.llm_failure = Some(LlmFailure {
                kind: if message.contains("JSON") {
                    LlmFailureKind::InvalidOutput
                } else {
                    LlmFailureKind::RequestFailed
                },
                role: format!("agent.{}", out.agent_id),
                message: message.clone(),
            });
            parts.answer = failure_answer(&format!("{} failed: {message}", out.agent_id), &rc.code);
            return Ok(respond::respond(run, parts).await);
        }
        let mut stats = out.citation_stats.clone();
        let factor = citations::citation_factor(&stats, !out.shown.is_empty());
        let (answer, cites) =
            citations::renumber(&out.summary, out.checked.clone(), self.config.soar.citations.max as usize, &mut stats);
        parts.outcome = Outcome::Directed;
        parts.confidence = 0.7 * factor;
        parts.answer = answer;
        parts.citations = cites;
        parts.citation_stats = stats;
        collect_edits(&mut parts, &outputs);
        run.progress(PhaseKey::Respond, "Done".into(), 98);
        Ok(respond::respond(run, parts).await)
    }

    async fn route_and_collect(
        &self,
        run: &Run,
        plan: &VerifiedPlan,
        registry: &[agents::AgentSpec],
        rc: &RetrievedContext,
    ) -> Result<(Routing, CollectResult), Stop> {
        let t = Instant::now();
        let routing = route::route(plan, registry);
        for w in &routing.warnings {
            run.warn("agentFallback", w.clone());
        }
        run.phase(PhaseKey::Route, PhaseStatus::Ok, t, None, json!(routing));
        let fallbacks =
            if routing.fallback_count > 0 { format!(" ({} fallback)", routing.fallback_count) } else { String::new() };
        run.progress(PhaseKey::Route, format!("Assigning agents{fallbacks}"), 37);
        let t = Instant::now();
        let pinned: Vec<ContextChunk> = rc.code.iter().filter(|c| c.pinned).cloned().collect();
        run.shown.add(&rc.code);
        let result = collect::collect(run, plan, &routing, registry, &pinned).await;
        let status = if result.succeeded() == 0 { PhaseStatus::Failed } else { PhaseStatus::Ok };
        let error = (result.succeeded() == 0).then(|| "no subgoal succeeded".to_owned());
        run.phase(
            PhaseKey::Collect,
            status,
            t,
            error,
            json!({
                "waves": result.waves, "stats": result.stats, "critical_failure": result.critical_failure,
                "completion_order": result.completion_order, "outputs": result.outputs,
            }),
        );
        if run.cancel.is_cancelled() {
            if run.deadline_hit.load(Ordering::SeqCst) {
                return Err(Stop::TimedOut(Some(summaries(plan.plan(), &result))));
            }
            return Err(Stop::Error(SoarError::Cancelled));
        }
        Ok((routing, result))
    }

    /// MEDIUM and above: decompose, verify, route, collect, synthesize, record.
    async fn full(
        &self,
        run: &Run,
        req: &SoarRequest,
        level: Complexity,
        rc: &RetrievedContext,
        mut parts: Parts,
    ) -> Result<SoarResponse, Stop> {
        let cfg = &self.config.soar;
        let registry = agents::registry(cfg);
        let used_patterns = decompose::example_pattern_ids(cfg, level, rc);
        let plan = match self.plan(run, req, level, rc, &registry, &mut parts).await? {
            Ok(plan) => plan,
            Err(failure) => {
                // Verification failed or a model call failed: no execution.
                let judged = matches!(parts.outcome, Outcome::VerificationFailed | Outcome::Failed);
                if judged && !used_patterns.is_empty() && record::penalize(run, &used_patterns).await.is_ok() {
                    parts.record.penalized_patterns = used_patterns.clone();
                    parts.record.activation_update = -cfg.record.failure_penalty;
                }
                parts.answer = failure;
                return Ok(respond::respond(run, parts).await);
            }
        };
        let (routing, outputs) = self.route_and_collect(run, &plan, &registry, rc).await?;
        parts.trace.traceability = trace(&plan, &outputs);
        parts.trace.synthesis_metadata = SynthesisMeta {
            subgoals_completed: outputs.stats.succeeded as u32,
            subgoals_failed: (outputs.stats.failed + outputs.stats.timed_out) as u32,
            subgoals_skipped: (outputs.stats.skipped + outputs.stats.cancelled) as u32,
            ..SynthesisMeta::default()
        };
        collect_edits(&mut parts, &outputs);
        if outputs.succeeded() == 0 {
            parts.outcome = Outcome::Failed;
            parts.answer = failure_answer(&subgoal_errors(plan.plan(), &outputs), &rc.code);
            if !used_patterns.is_empty() && record::penalize(run, &used_patterns).await.is_ok() {
                parts.record.penalized_patterns = used_patterns;
                parts.record.activation_update = -cfg.record.failure_penalty;
            }
            return Ok(respond::respond(run, parts).await);
        }
        // Phase 7.
        let t = Instant::now();
        let pinned: Vec<ContextChunk> = rc.code.iter().filter(|c| c.pinned).cloned().collect();
        let synth = match synthesize::synthesize(run, plan.plan(), &outputs, &pinned).await {
            Ok(s) => s,
            Err(SynthError::Stop(e)) => return Err(Self::stop_of(run, &e).unwrap_or(Stop::Error(SoarError::Cancelled))),
            Err(SynthError::Failed(e)) => {
                run.phase(PhaseKey::Synthesize, PhaseStatus::Failed, t, Some(e.to_string()), json!({}));
                parts.outcome = Outcome::Failed;
                parts.llm_failure = Some(LlmFailure::of(prompts::SYNTHESIZE.role, &e));
                parts.answer = format!(
                    "Synthesis failed ({e}); here are the agents' results, unsynthesised:\n\n{}",
                    summaries(plan.plan(), &outputs)
                );
                return Ok(respond::respond(run, parts).await);
            }
        };
        run.phase(PhaseKey::Synthesize, PhaseStatus::Ok, t, None, synth_detail(&synth, false));
        parts.basis = ConfidenceBasis::Verified;
        parts.outcome =
            if outputs.stats.succeeded < outputs.outputs.len() { Outcome::Partial } else { Outcome::Answered };
        let confidence = synth.confidence;
        self.fill_answer(&mut parts, synth, rc);
        // Phase 8.
        let t = Instant::now();
        run.progress(PhaseKey::Record, "Recording outcome".into(), 95);
        let eligible = matches!(parts.outcome, Outcome::Answered | Outcome::Partial)
            && run.clean()
            && outputs.succeeded() > 0
            && outputs.critical_failure.is_none();
        if eligible && run.ws.writer().is_some() {
            let agent_ids: Vec<String> = routing.assignments.iter().map(|a| a.agent_id.clone()).collect();
            let rec = record::record(
                run,
                level,
                &plan,
                &agent_ids,
                &outputs,
                confidence,
                &parts.citations,
                &used_patterns,
                parts.proposed_edits.len(),
            )
            .await;
            let status = if rec.error.is_some() { PhaseStatus::Failed } else { PhaseStatus::Ok };
            if let Some(e) = &rec.error {
                run.warn("recordFailed", format!("the run could not be recorded: {e}"));
            }
            run.phase(PhaseKey::Record, status, t, rec.error.clone(), json!(rec));
            parts.record = rec;
        } else {
            // Not stored; cited chunks still count as accessed.
            let accesses = record::record_accesses(run, &parts.citations).await.unwrap_or(0);
            let reason = if run.ws.writer().is_none() { "read-only store" } else { "not eligible" };
            run.phase(
                PhaseKey::Record,
                PhaseStatus::Skipped,
                t,
                None,
                json!({"reason": reason, "accesses_recorded": accesses}),
            );
            parts.record = RecordResult { accesses_recorded: accesses, ..RecordResult::default() };
        }
        run.progress(PhaseKey::Respond, format!("Done: confidence {:.2}", parts.confidence), 98);
        Ok(respond::respond(run, parts).await)
    }

    /// Phases 3 and 4 with the retry loop. `Ok(Err(answer))` means no plan passed (or a call failed);
    /// `parts` then says why.
    async fn plan(
        &self,
        run: &Run,
        req: &SoarRequest,
        level: Complexity,
        rc: &RetrievedContext,
        registry: &[agents::AgentSpec],
        parts: &mut Parts,
    ) -> Result<Result<VerifiedPlan, String>, Stop> {
        let cfg = &self.config.soar;
        let max_sg = level.pick(&cfg.decompose.max_subgoals);
        let (shown, _) = decompose::shown_chunks(cfg, level, rc);
        run.shown.add(shown);
        let llm = self.llm.as_ref().expect("checked by the caller");
        let model = run.calls.model(ModelRole::Reasoning).unwrap_or_else(|| llm.default_model().to_owned());
        let key = decompose::cache_key(&run.query, level, shown, registry, prompts::DECOMPOSE.version, &model);
        let use_cache = cfg.cache.enabled && !req.no_cache && run.ws.writer().is_some();
        let now = crate::store::now_ms();
        let td = Instant::now();
        if use_cache {
            match decompose::cache_lookup(&run.ws, cfg, &key, now).await {
                Ok(Some(plan)) => {
                    run.progress(PhaseKey::Decompose, "Using cached plan".into(), 25);
                    let tv = Instant::now();
                    let (issues, waves) = verify::structural(&plan, max_sg);
                    if issues.is_empty() {
                        run.phase(
                            PhaseKey::Decompose,
                            PhaseStatus::Ok,
                            td,
                            None,
                            json!({"cache_hit": true, "cache_key": key, "plan": decompose::plan_json(&plan)}),
                        );
                        run.phase(
                            PhaseKey::Verify,
                            PhaseStatus::Ok,
                            tv,
                            None,
                            json!({"method": VerifyMethod::Cached, "verdict": Verdict::Pass}),
                        );
                        parts.cache_hit = true;
                        return Ok(Ok(verify::verified(plan, waves)));
                    }
                    let _ = decompose::cache_delete(&run.ws, cfg, &key, now).await;
                }
                Ok(None) => {}
                Err(e) => run.warn("storeError", format!("the plan cache could not be read: {e}")),
            }
        }
        let attempts = 1 + cfg.verify.max_retries as u8;
        let mut feedback: Option<RetryFeedback> = None;
        let mut checked: Vec<VerifyAttempt> = Vec::new();
        let mut decompose_ms = 0.0;
        let mut verify_ms = 0.0;
        let adversarial = level != Complexity::Medium;
        let method = if !cfg.verify.llm_review {
            VerifyMethod::Structural
        } else if adversarial {
            VerifyMethod::Adversarial
        } else {
            VerifyMethod::SelfReview
        };
        for attempt in 1..=attempts {
            if attempt == 1 {
                run.progress(PhaseKey::Decompose, format!("Planning (attempt 1/{attempts})"), 12);
            } else {
                run.progress(
                    PhaseKey::Verify,
                    format!("Revising plan (retry {}/{})", attempt - 1, attempts - 1),
                    27 + u32::from(attempt) * 2,
                );
            }
            let t = Instant::now();
            let spec = CallSpec {
                phase: PhaseKey::Decompose,
                role: prompts::DECOMPOSE.role.into(),
                prompt: prompts::DECOMPOSE,
                model: ModelRole::Reasoning,
                params: cfg.llm_params.decompose.clone(),
                system: prompts::DECOMPOSE.text.into(),
                user: format!(
                    "{}{}",
                    run.history,
                    decompose::user_prompt(cfg, &run.query, level, rc, registry, feedback.as_ref())
                ),
                attempt,
            };
            let raw = run.calls.json::<RawPlan>(&spec, false, &run.cancel).await;
            decompose_ms += t.elapsed().as_secs_f64() * 1000.0;
            let raw = match raw {
                Ok(r) => r,
                Err(e) => {
                    if let Some(stop) = Self::stop_of(run, &e) {
                        return Err(stop);
                    }
                    self.record_ms(
                        run,
                        PhaseKey::Decompose,
                        PhaseStatus::Failed,
                        decompose_ms,
                        Some(e.to_string()),
                        json!({"attempts": attempt}),
                    );
                    parts.outcome = Outcome::Failed;
                    parts.llm_failure = Some(LlmFailure::of(prompts::DECOMPOSE.role, &e));
                    return Ok(Err(failure_answer(&format!("Planning failed: {e}"), &rc.code)));
                }
            };
            if raw.execution_order.is_some() {
                run.warn(
                    "executionOrderIgnored",
                    "the planner sent `execution_order`; scheduling uses depends_on only",
                );
            }
            let plan = raw.into_plan(attempt, PlanSource::Llm);
            self.record_ms(
                run,
                PhaseKey::Decompose,
                PhaseStatus::Ok,
                decompose_ms,
                None,
                json!({
                    "cache_hit": false, "cache_key": key, "attempts": attempt, "plan": decompose::plan_json(&plan),
                }),
            );
            if attempt == 1 {
                run.progress(PhaseKey::Verify, "Checking plan".into(), 25);
            }
            let t = Instant::now();
            let (issues, waves) = verify::structural(&plan, max_sg);
            let (verdict, review) = if !issues.is_empty() {
                (Verdict::Retry, None)
            } else if cfg.verify.llm_review {
                if attempt == 1 && adversarial {
                    run.progress(PhaseKey::Verify, "Reviewing plan (adversarial)".into(), 27);
                }
                match self.review(run, level, &plan, registry, rc, attempt).await {
                    Ok(r) => (r.verdict, Some(r)),
                    Err(e) => {
                        verify_ms += t.elapsed().as_secs_f64() * 1000.0;
                        if let Some(stop) = Self::stop_of(run, &e) {
                            return Err(stop);
                        }
                        self.record_ms(
                            run,
                            PhaseKey::Verify,
                            PhaseStatus::Failed,
                            verify_ms,
                            Some(e.to_string()),
                            json!({"attempts": checked}),
                        );
                        parts.outcome = Outcome::Failed;
                        let role =
                            if adversarial { prompts::VERIFY_ADVERSARIAL.role } else { prompts::VERIFY_SELF.role };
                        parts.llm_failure = Some(LlmFailure::of(role, &e));
                        return Ok(Err(failure_answer(&format!("The plan review failed: {e}"), &rc.code)));
                    }
                }
            } else {
                (Verdict::Pass, None)
            };
            verify_ms += t.elapsed().as_secs_f64() * 1000.0;
            let score = review.as_ref().map(|r| r.computed_score);
            let mut all_issues = issues.clone();
            let suggestions = review.as_ref().map(|r| r.suggestions.clone()).unwrap_or_default();
            if let Some(r) = &review {
                all_issues.extend(r.issues.iter().cloned());
            }
            checked.push(VerifyAttempt {
                attempt,
                plan_goal: plan.goal.clone(),
                subgoal_count: plan.subgoals.len(),
                structural_issues: issues,
                review,
                verdict,
            });
            let detail = |final_verdict: Verdict| json!({"method": method, "verdict": final_verdict, "retry_count": attempt - 1, "final_score": score, "attempts": checked});
            match verdict {
                Verdict::Pass => {
                    self.record_ms(run, PhaseKey::Verify, PhaseStatus::Ok, verify_ms, None, detail(Verdict::Pass));
                    if use_cache
                        && let Err(e) =
                            decompose::cache_put(&run.ws, cfg, &key, &plan, &model, crate::store::now_ms()).await
                    {
                        run.warn("storeError", format!("the plan could not be cached: {e}"));
                    }
                    return Ok(Ok(verify::verified(plan, waves)));
                }
                Verdict::Retry if attempt < attempts => {
                    feedback = Some(RetryFeedback {
                        previous: plan,
                        score,
                        verdict: verdict.as_str(),
                        issues: all_issues,
                        suggestions,
                    });
                }
                _ => {
                    self.record_ms(run, PhaseKey::Verify, PhaseStatus::Ok, verify_ms, None, detail(verdict));
                    parts.outcome = Outcome::VerificationFailed;
                    let mut text = format!(
                        "Could not build a reliable plan for this question (score {}, {}).\n",
                        score.map_or("n/a".to_owned(), |s| format!("{s:.2}")),
                        verdict.as_str()
                    );
                    let mut sorted = all_issues;
                    sorted.sort_by_key(|i| i.severity);
                    for i in sorted {
                        text.push_str(&format!("\n- [{}] {}", i.severity.tag(), i.text));
                    }
                    return Ok(Err(failure_answer(&text, &rc.code)));
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    fn record_ms(
        &self,
        run: &Run,
        key: PhaseKey,
        status: PhaseStatus,
        ms: f64,
        error: Option<String>,
        detail: serde_json::Value,
    ) {
        let record = PhaseRecord { status, duration_ms: ms, error, detail };
        run.phases.lock().unwrap_or_else(|e| e.into_inner()).insert(key, record);
    }

    async fn review(
        &self,
        run: &Run,
        level: Complexity,
        plan: &Plan,
        registry: &[agents::AgentSpec],
        rc: &RetrievedContext,
        attempt: u8,
    ) -> Result<verify::Review, LlmError> {
        let cfg = &self.config.soar;
        let adversarial = level != Complexity::Medium;
        let prompt = if adversarial { prompts::VERIFY_ADVERSARIAL } else { prompts::VERIFY_SELF };
        let mut plan_view = decompose::plan_json(plan);
        if let Some(subgoals) = plan_view["subgoals"].as_array_mut() {
            for (i, s) in subgoals.iter_mut().enumerate() {
                s["id"] = json!(format!("sg-{}", i + 1));
            }
        }
        let mut user = format!("Question: {}\n\nPlan:\n{}\n\nAgents:\n", run.query, plan_view);
        for a in registry {
            user.push_str(&format!("- {}: {}\n", a.id, a.description));
        }
        let (shown, _) = decompose::shown_chunks(cfg, level, rc);
        user.push_str("\nContext the planner saw (files and signatures):\n");
        for c in shown {
            user.push_str(&format!(
                "- {}  {}  {}\n",
                c.location(),
                c.kind,
                c.signature.as_deref().unwrap_or(&c.qualified_name)
            ));
        }
        let spec = CallSpec {
            phase: PhaseKey::Verify,
            role: prompt.role.into(),
            prompt,
            model: ModelRole::Review,
            params: if adversarial {
                cfg.llm_params.verify_adversarial.clone()
            } else {
                cfg.llm_params.verify_self.clone()
            },
            system: prompt.text.into(),
            user,
            attempt,
        };
        let raw = run.calls.json::<verify::RawReview>(&spec, false, &run.cancel).await?;
        Ok(verify::score(cfg, raw, adversarial))
    }
}

/// The per-query cap: `budget.perQueryUsd` (0 = none), lowered by the request's `max_cost_usd`.
fn query_cap(config: &Config, requested: Option<f64>) -> Option<f64> {
    let configured = (config.budget.per_query_usd > 0.0).then_some(config.budget.per_query_usd);
    match (configured, requested.filter(|r| r.is_finite() && *r >= 0.0)) {
        (Some(c), Some(r)) => Some(c.min(r)),
        (c, r) => c.or(r),
    }
}

fn synth_detail(s: &Synthesis, simple: bool) -> serde_json::Value {
    json!({
        "simple_path": simple, "attempts": s.attempts, "review": s.review, "citations": s.citation_stats,
        "quality_warning": s.quality_warning, "model_confidence": s.model_confidence, "uncertainties": s.uncertainties,
    })
}

fn trace(plan: &VerifiedPlan, outputs: &CollectResult) -> Vec<TraceEntry> {
    outputs
        .outputs
        .iter()
        .map(|o| {
            let sg = &plan.plan().subgoals[o.subgoal_index];
            TraceEntry {
                subgoal_id: sg.id.clone(),
                subgoal_index: sg.index,
                agent_id: o.agent_id.clone(),
                description: sg.description.clone(),
                status: o.status,
            }
        })
        .collect()
}

/// Every kept edit, numbered `e1`, `e2`, … in subgoal order.
fn collect_edits(parts: &mut Parts, outputs: &CollectResult) {
    for o in &outputs.outputs {
        parts.edit_stats.add(&o.edit_stats);
        for e in &o.edits {
            let mut e = e.clone();
            e.id = format!("e{}", parts.proposed_edits.len() + 1);
            parts.proposed_edits.push(e);
        }
    }
}

fn summaries(plan: &Plan, outputs: &CollectResult) -> String {
    outputs
        .outputs
        .iter()
        .filter(|o| o.status == AgentStatus::Succeeded)
        .map(|o| format!("### {} ({})\n\n{}", plan.subgoals[o.subgoal_index].id, o.agent_id, o.resolved_summary()))
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn subgoal_errors(plan: &Plan, outputs: &CollectResult) -> String {
    let mut text = String::from("No subgoal could be completed:\n");
    for o in &outputs.outputs {
        text.push_str(&format!(
            "\n- {} ({}): {:?} — {}",
            plan.subgoals[o.subgoal_index].id,
            o.agent_id,
            o.status,
            o.error.clone().unwrap_or_default()
        ));
    }
    text
}

fn locations(chunks: &[ContextChunk]) -> String {
    chunks
        .iter()
        .map(|c| format!("- `{}` {} `{}`", c.location(), c.kind, c.qualified_name))
        .collect::<Vec<_>>()
        .join("\n")
}

fn failure_answer(head: &str, chunks: &[ContextChunk]) -> String {
    if chunks.is_empty() {
        return head.to_owned();
    }
    format!("{head}\n\nThe most relevant locations found:\n{}", locations(chunks))
}

fn no_llm_answer(chunks: &[ContextChunk]) -> String {
    let head = "No language model is configured, so Aurora cannot write an answer. To configure one, set \
`llm.provider` (anthropic, openai, ollama or command) and `llm.model` in ~/.config/aurora/config.toml, or the \
`aurora.llm.*` settings of your editor, then run `aurora doctor`.";
    if chunks.is_empty() {
        return format!("{head}\n\nNo indexed code matched the question.");
    }
    format!("{head}\n\nThe most relevant locations for your question:\n{}", locations(chunks))
}

/// Earlier turns as prompt text: question and the start of each answer, oldest first.
fn history_text(turns: &[(String, String)]) -> String {
    if turns.is_empty() {
        return String::new();
    }
    let mut out = String::from("Earlier in this conversation (oldest first):\n");
    for (q, a) in turns {
        let a: String = a.chars().take(600).collect();
        out.push_str(&format!("Q: {q}\nA: {a}\n\n"));
    }
    out
}
