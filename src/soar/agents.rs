//! Agents (spec/soar.md §8): the registry of built-in roles and user-configured external commands,
//! the agents' JSON, and one agent's invocation. Agents never run code: built-in agents are offered no
//! tools, and the only process SOAR starts is a user-configured external agent.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::{ExternalAgentConfig, SoarConfig};
use crate::index::chunk::ChunkId;
use crate::llm::{JsonSchema, LlmError, StructuredOutput};
use crate::soar::calls::{CallSpec, ModelRole};
use crate::soar::citations::{self, Checked, RawCitation};
use crate::soar::edits::{self, RawEdit};
use crate::soar::external::{self, ExternalOutcome, ExternalRun};
use crate::soar::pipeline::Run;
use crate::soar::prompts::{self, CITATION_RULES};
use crate::soar::retrieve::{memory_editor, ranked};
use crate::soar::types::{
    AgentStatus, CitationSource, CitationStats, ContextChunk, EditStats, PhaseKey, Plan, ProposedEdit, Subgoal, Usage,
};
use crate::store::read;

/// How an agent runs.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentKind {
    Builtin,
    External { command: Vec<String>, timeout: Duration, env: BTreeMap<String, String>, cost_estimate_usd: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct AgentSpec {
    pub id: String,
    pub name: String,
    pub description: String,
    pub capabilities: Vec<String>,
    pub may_propose_edits: bool,
    pub kind: AgentKind,
}

fn builtin(id: &str, name: &str, description: &str, caps: &[&str], edits: bool) -> AgentSpec {
    AgentSpec {
        id: id.into(),
        name: name.into(),
        description: description.into(),
        capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        may_propose_edits: edits,
        kind: AgentKind::Builtin,
    }
}

/// The built-in roles, in registry order (spec/soar.md §8.1).
pub fn builtins() -> Vec<AgentSpec> {
    vec![
        builtin(
            "code-analyzer",
            "Code analyzer",
            "explains behaviour, control and data flow, and relationships between the cited code",
            &["code", "analysis", "explanation", "code-analysis"],
            false,
        ),
        builtin(
            "refactoring-engine",
            "Refactoring engine",
            "proposes behaviour-preserving restructurings as edits",
            &["refactoring", "refactor", "code-generation", "code"],
            true,
        ),
        builtin(
            "documentation-generator",
            "Documentation generator",
            "writes docstrings, comments and documentation sections as edits",
            &["documentation", "docs", "docstring"],
            true,
        ),
        builtin(
            "test-writer",
            "Test writer",
            "proposes pytest tests for the given code as edits; never runs them",
            &["testing", "test", "test-generation"],
            true,
        ),
        builtin(
            "dependency-tracker",
            "Dependency tracker",
            "finds imports, callers and callees, usages, and the impact of a change",
            &["dependencies", "dependency", "imports", "impact-analysis"],
            false,
        ),
        builtin(
            "security-scanner",
            "Security scanner",
            "finds vulnerabilities (injection, secrets, unsafe deserialization, authorization gaps) with severity",
            &["security", "vulnerability", "audit"],
            false,
        ),
        builtin(
            "llm-executor",
            "General executor",
            "generic fallback for any other task; acts as the specialist the subgoal names",
            &["reasoning", "general-purpose", "text-generation", "code-generation"],
            true,
        ),
    ]
}

/// The enabled agents: built-ins, then external agents in config order, minus `soar.agents.disabled`
/// (`llm-executor` always stays).
pub fn registry(cfg: &SoarConfig) -> Vec<AgentSpec> {
    let disabled: Vec<String> = cfg.agents.disabled.iter().map(|d| d.trim().to_lowercase()).collect();
    let default_timeout = Duration::from_secs(cfg.timeouts.agent_secs);
    builtins()
        .into_iter()
        .chain(cfg.agents.external.iter().map(|e| external_spec(e, default_timeout)))
        .filter(|a| a.id == "llm-executor" || !disabled.contains(&a.id))
        .collect()
}

fn external_spec(e: &ExternalAgentConfig, default_timeout: Duration) -> AgentSpec {
    AgentSpec {
        id: e.id.trim().to_lowercase(),
        name: if e.name.is_empty() { e.id.clone() } else { e.name.clone() },
        description: e.description.clone(),
        capabilities: e.capabilities.iter().map(|c| c.to_lowercase()).collect(),
        may_propose_edits: e.may_propose_edits,
        kind: AgentKind::External {
            command: e.command.clone(),
            timeout: if e.timeout_secs == 0 { default_timeout } else { Duration::from_secs(e.timeout_secs) },
            env: e.env.clone(),
            cost_estimate_usd: e.cost_estimate_usd,
        },
    }
}

/// Every agent's JSON (spec/soar.md §8.3).
#[derive(Clone, Debug, Deserialize)]
pub struct AgentReply {
    pub summary: String,
    #[serde(default)]
    pub citations: Vec<RawCitation>,
    #[serde(default)]
    pub edits: Vec<Value>,
    #[serde(default)]
    pub confidence: Option<f64>,
    #[serde(default)]
    pub open_questions: Vec<String>,
}

impl StructuredOutput for AgentReply {
    fn schema() -> JsonSchema {
        JsonSchema {
            name: "agent_result".into(),
            schema: json!({
                "type": "object",
                "required": ["summary", "citations", "edits"],
                "properties": {
                    "summary": {"type": "string"},
                    "citations": {"type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": "string"}, "chunk_id": {"type": ["string", "null"]},
                        "file": {"type": ["string", "null"]},
                        "start_line": {"type": ["integer", "null"]}, "end_line": {"type": ["integer", "null"]}
                    }}},
                    "edits": {"type": "array", "items": {"type": "object", "properties": {
                        "kind": {"type": "string", "enum": ["replace", "diff", "create"]},
                        "file": {"type": "string"},
                        "start_line": {"type": "integer"}, "end_line": {"type": "integer"},
                        "new_text": {"type": "string"}, "diff": {"type": "string"}, "description": {"type": "string"}
                    }}},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "open_questions": {"type": "array", "items": {"type": "string"}}
                }
            }),
        }
    }

    fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.summary.trim().is_empty() {
            errors.push("`summary` must be a non-empty string".to_owned());
        }
        if self.confidence.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
            errors.push("`confidence` must be between 0 and 1".to_owned());
        }
        errors
    }
}

/// One subgoal's result, stored by subgoal index.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentOutput {
    pub subgoal_index: usize,
    pub agent_id: String,
    pub status: AgentStatus,
    pub summary: String,
    #[serde(skip)]
    pub checked: Vec<Checked>,
    pub citation_stats: CitationStats,
    pub edits: Vec<ProposedEdit>,
    pub edit_stats: EditStats,
    pub self_confidence: Option<f64>,
    pub open_questions: Vec<String>,
    pub error: Option<String>,
    pub structured: bool,
    pub fallback_used: bool,
    pub attempts: u8,
    pub duration_ms: f64,
    pub usage: Usage,
    #[serde(skip)]
    pub shown: Vec<ContextChunk>,
}

impl AgentOutput {
    pub fn new(subgoal_index: usize, agent_id: &str, status: AgentStatus, error: Option<String>) -> AgentOutput {
        AgentOutput {
            subgoal_index,
            agent_id: agent_id.to_owned(),
            status,
            summary: String::new(),
            checked: Vec::new(),
            citation_stats: CitationStats::default(),
            edits: Vec::new(),
            edit_stats: EditStats::default(),
            self_confidence: None,
            open_questions: Vec::new(),
            error,
            structured: false,
            fallback_used: false,
            attempts: 0,
            duration_ms: 0.0,
            usage: Usage::default(),
            shown: Vec::new(),
        }
    }

    /// The summary with citation markers replaced by locations.
    pub fn resolved_summary(&self) -> String {
        citations::resolve_markers(&self.summary, &self.checked)
    }
}

/// The block of dependency results (spec/soar.md §8.2).
pub fn dependency_block(cfg: &SoarConfig, plan: &Plan, sg: &Subgoal, outputs: &[Option<AgentOutput>]) -> String {
    if sg.depends_on.is_empty() {
        return String::new();
    }
    let max = cfg.agents.max_dependency_chars as usize;
    let mut ok = 0;
    let mut lines = Vec::new();
    for d in &sg.depends_on {
        let id = plan.subgoals.get(*d).map_or_else(|| format!("sg-{}", d + 1), |s| s.id.clone());
        match outputs.get(*d).and_then(Option::as_ref) {
            Some(o) if o.status == AgentStatus::Succeeded => {
                ok += 1;
                let text: String = o.resolved_summary().chars().take(max).collect();
                lines.push(format!("✓ [{id}] {}: {text}", o.agent_id));
            }
            Some(o) => lines.push(format!(
                "✗ [{id}] {}: FAILED - {}",
                o.agent_id,
                o.error.clone().unwrap_or_else(|| format!("{:?}", o.status).to_lowercase())
            )),
            None => lines.push(format!("✗ [{id}]: FAILED - did not run")),
        }
    }
    let n = sg.depends_on.len();
    let mut out = format!("Results of the subgoals this one depends on ({ok}/{n}):\n{}\n", lines.join("\n"));
    if ok < n {
        out.push_str(&format!(
            "WARNING: {}/{n} dependencies failed. Proceed with the available results and say what is missing.\n",
            n - ok
        ));
    }
    out
}

/// The context of one agent: phase 2's pinned chunks, then a retrieval keyed by the subgoal, within
/// the token budget (lowest-ranked dropped first).
async fn agent_context(run: &Run, sg: &Subgoal, pinned: &[ContextChunk]) -> Vec<ContextChunk> {
    let cfg = &run.config.soar;
    let query = sg.description.clone();
    let limit = cfg.agents.retrieval_budget as usize;
    let editor = run.editor.as_ref().map(memory_editor);
    let found = run.ws.read(move |r| ranked(r, &query, limit, editor.as_ref())).await.unwrap_or_default();
    let mut out: Vec<ContextChunk> = pinned.to_vec();
    for c in found {
        if !out.iter().any(|o| o.chunk_id == c.chunk_id) {
            out.push(c);
        }
    }
    let max_lines = cfg.context.max_chunk_lines as usize;
    let budget = cfg.agents.max_context_tokens as usize;
    let mut tokens = 0;
    let mut kept = Vec::new();
    for c in out {
        let chars: usize = c.content.lines().take(max_lines).map(|l| l.len() + 1).sum();
        let t = chars.div_ceil(4) + 30;
        if tokens + t > budget && !kept.is_empty() {
            continue;
        }
        tokens += t;
        kept.push(c);
    }
    kept
}

/// Edges of the chunks, for `dependency-tracker`.
async fn edges_block(run: &Run, chunks: &[ContextChunk]) -> String {
    let ids: Vec<(String, ChunkId)> =
        chunks.iter().filter_map(|c| Some((c.qualified_name.clone(), ChunkId::parse(&c.chunk_id)?))).collect();
    let found = run
        .ws
        .read(move |r| {
            let mut out = Vec::new();
            for (name, id) in ids {
                for (dst, _) in read::edges_from(r.connection(), id)? {
                    if out.len() >= 50 {
                        return Ok(out);
                    }
                    out.push(format!("{name} → {dst}"));
                }
            }
            Ok(out)
        })
        .await
        .unwrap_or_default();
    if found.is_empty() {
        return String::new();
    }
    format!("References from these chunks (calls and imports):\n{}\n", found.join("\n"))
}

/// The task prompt of an agent (also an external agent's stdin).
#[allow(clippy::too_many_arguments)]
pub fn task_prompt(
    run: &Run,
    plan: &Plan,
    sg: &Subgoal,
    agent: &AgentSpec,
    hint: Option<&str>,
    deps: &str,
    context: &[ContextChunk],
    extra: &str,
) -> String {
    let cfg = &run.config.soar;
    let mut out = format!("User question: {}\n\nPlan goal: {}\n\n", run.query, plan.goal);
    out.push_str(&format!(
        "Your subgoal [{}]{}: {}\n",
        sg.id,
        if sg.is_critical { " (critical)" } else { "" },
        sg.description
    ));
    if let Some(h) = hint {
        out.push_str(&format!("Act as: {h}\n"));
    }
    out.push('\n');
    if !deps.is_empty() {
        out.push_str(deps);
        out.push('\n');
    }
    out.push_str("Code context:\n");
    out.push_str(&prompts::render_context(context, context.len(), cfg.context.max_chunk_lines));
    if !extra.is_empty() {
        out.push('\n');
        out.push_str(extra);
    }
    out.push_str("\nOutput: one JSON object only, {\"summary\": \"Markdown with [c1] markers\", \"citations\": [...], \"edits\": [...], \"confidence\": 0.0, \"open_questions\": []}.\n");
    out.push_str(CITATION_RULES);
    out.push('\n');
    if agent.may_propose_edits {
        out.push_str(
            "Edits, if the subgoal calls for them: {\"kind\": \"replace\", \"file\": \"path\", \"start_line\": N, \"end_line\": M, \"new_text\": \"…\", \"description\": \"…\"} (1-based inclusive lines of the current file), {\"kind\": \"diff\", \"file\": \"path\", \"diff\": \"unified diff\", \"description\": \"…\"} or {\"kind\": \"create\", \"file\": \"new/path.py\", \"new_text\": \"…\", \"description\": \"…\"}.\n",
        );
    } else {
        out.push_str("Return \"edits\": [].\n");
    }
    out
}

/// Runs the agent assigned to `sg`, with its fallback, within the per-agent timeout.
#[allow(clippy::too_many_arguments)]
pub async fn run_agent(
    run: &Run,
    plan: &Plan,
    sg: &Subgoal,
    agent: &AgentSpec,
    hint: Option<&str>,
    deps: String,
    pinned: &[ContextChunk],
    cancel: &CancellationToken,
) -> AgentOutput {
    let started = Instant::now();
    let mut out = attempt(run, plan, sg, agent, hint, &deps, pinned, cancel).await;
    if out.status != AgentStatus::Succeeded
        && out.status != AgentStatus::Cancelled
        && matches!(agent.kind, AgentKind::External { .. })
        && run.config.soar.agents.fallback_to_llm
        && !cancel.is_cancelled()
    {
        let executor = builtins().pop().expect("llm-executor is the last built-in");
        let first_error = out.error.clone();
        let hint = sg.specialist_hint.clone().unwrap_or_else(|| agent.name.clone());
        let mut fb = attempt(run, plan, sg, &executor, Some(&hint), &deps, pinned, cancel).await;
        fb.fallback_used = true;
        fb.attempts += out.attempts;
        fb.usage.add(&out.usage);
        if fb.status != AgentStatus::Succeeded {
            fb.error = Some(format!(
                "{} failed ({}); the llm-executor fallback failed too ({})",
                agent.id,
                first_error.unwrap_or_default(),
                fb.error.clone().unwrap_or_default()
            ));
        }
        out = fb;
    }
    out.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    out
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    run: &Run,
    plan: &Plan,
    sg: &Subgoal,
    agent: &AgentSpec,
    hint: Option<&str>,
    deps: &str,
    pinned: &[ContextChunk],
    cancel: &CancellationToken,
) -> AgentOutput {
    let cfg = &run.config.soar;
    let (timeout, is_external) = match &agent.kind {
        AgentKind::External { timeout, .. } => (*timeout, true),
        AgentKind::Builtin => (Duration::from_secs(cfg.timeouts.agent_secs), false),
    };
    let work = async {
        let context = agent_context(run, sg, pinned).await;
        run.shown.add(&context);
        let extra = if agent.id == "dependency-tracker" { edges_block(run, &context).await } else { String::new() };
        let prompt = task_prompt(run, plan, sg, agent, hint, deps, &context, &extra);
        let reply: Result<(AgentReply, bool), String> = if is_external {
            run_external(run, sg, agent, prompt, cancel).await
        } else {
            let spec = CallSpec {
                phase: PhaseKey::Collect,
                role: format!("agent.{}", agent.id),
                prompt: prompts::AGENT,
                model: ModelRole::Agents,
                params: cfg.llm_params.agents.clone(),
                system: prompts::agent_system(&agent.id, &agent.name, &agent.description, agent.may_propose_edits),
                user: prompt,
                attempt: 1,
            };
            match run.calls.json::<AgentReply>(&spec, false, cancel).await {
                Ok(r) => Ok((r, true)),
                Err(LlmError::Cancelled) => Err("cancelled".into()),
                Err(e) => Err(e.to_string()),
            }
        };
        (reply, context)
    };
    let result = tokio::select! {
        r = tokio::time::timeout(timeout, work) => r,
        () = cancel.cancelled() => {
            return AgentOutput::new(sg.index, &agent.id, AgentStatus::Cancelled, Some("cancelled".into()));
        }
    };
    match result {
        Err(_) => AgentOutput::new(
            sg.index,
            &agent.id,
            AgentStatus::TimedOut,
            Some(format!("no result within {} s", timeout.as_secs())),
        ),
        Ok((Err(e), _)) if e == "cancelled" || cancel.is_cancelled() => {
            AgentOutput::new(sg.index, &agent.id, AgentStatus::Cancelled, Some("cancelled".into()))
        }
        Ok((Err(e), _)) => {
            let mut o = AgentOutput::new(sg.index, &agent.id, AgentStatus::Failed, Some(e));
            o.attempts = 1;
            o
        }
        Ok((Ok((reply, structured)), context)) => finish(run, sg, agent, reply, structured, context).await,
    }
}

/// Checks an agent's citations and edits.
async fn finish(
    run: &Run,
    sg: &Subgoal,
    agent: &AgentSpec,
    reply: AgentReply,
    structured: bool,
    context: Vec<ContextChunk>,
) -> AgentOutput {
    let mut o = AgentOutput::new(sg.index, &agent.id, AgentStatus::Succeeded, None);
    o.attempts = 1;
    o.structured = structured;
    o.summary = reply.summary.trim().to_owned();
    o.self_confidence = reply.confidence;
    o.open_questions = reply.open_questions;
    o.shown = context;
    match citations::check(&run.ws, &run.shown, reply.citations, CitationSource::Agent { subgoal_index: sg.index })
        .await
    {
        Ok((checked, stats)) => {
            o.checked = checked;
            o.citation_stats = stats;
        }
        Err(e) => run.warn("storeError", format!("citations of {} could not be checked: {e}", sg.id)),
    }
    if !reply.edits.is_empty() && !agent.may_propose_edits {
        run.warn(
            "editsDropped",
            format!("{}: {} may not propose edits; {} dropped", sg.id, agent.id, reply.edits.len()),
        );
        o.edit_stats.proposed = reply.edits.len() as u32;
        o.edit_stats.dropped = reply.edits.len() as u32;
        o.edit_stats.dropped_by_reason.insert("notAllowed".into(), reply.edits.len() as u32);
        return o;
    }
    let max = run.config.soar.agents.max_edits as usize;
    for (i, value) in reply.edits.into_iter().enumerate() {
        o.edit_stats.proposed += 1;
        let mut drop = |reason: &str| {
            o.edit_stats.dropped += 1;
            *o.edit_stats.dropped_by_reason.entry(reason.to_owned()).or_default() += 1;
        };
        if i >= max {
            drop("overLimit");
            continue;
        }
        let Ok(raw) = serde_json::from_value::<RawEdit>(value) else {
            drop("malformed");
            continue;
        };
        match edits::validate(&run.ws, &raw) {
            Ok(v) => {
                o.edit_stats.kept += 1;
                o.edits.push(ProposedEdit {
                    id: String::new(),
                    subgoal_index: sg.index,
                    agent_id: agent.id.clone(),
                    file: v.file,
                    change: v.change,
                    description: v.description,
                    base_content_hash: v.base_content_hash,
                    base_version: v.base_version,
                });
            }
            Err(reason) => drop(reason.as_str()),
        }
    }
    o
}

/// Runs an external agent: the task prompt on stdin, its JSON (or plain text) on stdout.
async fn run_external(
    run: &Run,
    sg: &Subgoal,
    agent: &AgentSpec,
    prompt: String,
    cancel: &CancellationToken,
) -> Result<(AgentReply, bool), String> {
    let AgentKind::External { command, timeout, env, cost_estimate_usd } = &agent.kind else {
        return Err("not an external agent".into());
    };
    let mut env = env.clone();
    env.insert("AURORA_QUERY_ID".into(), run.query_id.clone());
    env.insert("AURORA_SUBGOAL_ID".into(), sg.id.clone());
    let input_chars = prompt.len();
    let spec = ExternalRun {
        command: command.clone(),
        cwd: run.ws.root().to_path_buf(),
        env,
        stdin: run.calls.redact(&prompt),
        timeout: *timeout,
        max_output_bytes: run.config.soar.agents.max_output_bytes,
    };
    let outcome = external::run(spec, cancel).await;
    let out_chars = match &outcome {
        ExternalOutcome::Exited { stdout, .. } => stdout.len(),
        _ => 0,
    };
    run.calls.record_external(PhaseKey::Collect, &agent.id, input_chars, out_chars, *cost_estimate_usd);
    match outcome {
        ExternalOutcome::Exited { stdout, .. } => match crate::llm::json::parse::<AgentReply>(&stdout) {
            Ok(reply) => Ok((reply, true)),
            Err(_) if !stdout.trim().is_empty() => Ok((
                AgentReply {
                    summary: stdout.trim().to_owned(),
                    citations: Vec::new(),
                    edits: Vec::new(),
                    confidence: None,
                    open_questions: Vec::new(),
                },
                false,
            )),
            Err(_) => Err(format!("{} printed nothing", agent.id)),
        },
        ExternalOutcome::Failed { code, stderr_tail } => Err(format!(
            "{} exited with {}: {}",
            agent.id,
            code.map_or("a signal".to_owned(), |c| format!("status {c}")),
            stderr_tail.trim()
        )),
        ExternalOutcome::TimedOut => Err(format!("{} timed out", agent.id)),
        ExternalOutcome::Cancelled => Err("cancelled".into()),
        ExternalOutcome::OutputTooLarge => Err(format!("{}: output too large", agent.id)),
        ExternalOutcome::SpawnFailed(e) => Err(format!("{} could not be started: {e}", agent.id)),
    }
}
