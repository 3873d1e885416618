//! The immutable values that flow between SOAR's phases, and the request and response a front-end sees.
//!
//! Lines are 0-based and inclusive everywhere in this module, as in the store; models see 1-based
//! lines, and [`model_lines`] converts at parse time. Wire names are camelCase.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::memory::retrieve::ScoreBreakdown;

/// A path relative to the workspace root, `/`-separated.
pub type RelPath = String;

/// How deep the pipeline goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Complexity {
    Simple,
    Medium,
    Complex,
    Critical,
}

impl Complexity {
    pub fn as_str(self) -> &'static str {
        match self {
            Complexity::Simple => "SIMPLE",
            Complexity::Medium => "MEDIUM",
            Complexity::Complex => "COMPLEX",
            Complexity::Critical => "CRITICAL",
        }
    }

    pub fn parse(text: &str) -> Option<Complexity> {
        match text.to_ascii_uppercase().as_str() {
            "SIMPLE" => Some(Complexity::Simple),
            "MEDIUM" => Some(Complexity::Medium),
            "COMPLEX" => Some(Complexity::Complex),
            "CRITICAL" => Some(Complexity::Critical),
            _ => None,
        }
    }

    /// The value of a per-level setting for this level.
    pub fn pick(self, v: &crate::config::PerLevel) -> u32 {
        match self {
            Complexity::Simple => v.simple,
            Complexity::Medium => v.medium,
            Complexity::Complex => v.complex,
            Complexity::Critical => v.critical,
        }
    }
}

impl fmt::Display for Complexity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// 0-based inclusive line range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineRange {
    pub start_line: u32,
    pub end_line: u32,
}

/// A 0-based position; `character` is not used for retrieval, only kept for the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    pub line: u32,
    pub character: u32,
}

/// Where the user is. A front-end with buffers newer than the store passes their text: retrieval
/// then pins chunks of that text, and citations and edits are checked against it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EditorContext {
    /// The current file, relative to the root.
    pub path: RelPath,
    /// The document version the request started from (edits record it as their base).
    pub version: Option<i32>,
    pub selection: Option<LineRange>,
    pub cursor: Option<Position>,
    /// The current text of the open document, when the client has it open (saved or not).
    #[serde(skip)]
    pub buffer_text: Option<Arc<str>>,
    /// The selected text as the editor has it (used when no buffer text is given).
    pub selection_text: Option<String>,
}

/// What the request asks for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RequestMode {
    /// A question (`aurora/ask`, `aurora ask`, and `aurora.explain` with the selection pinned).
    #[default]
    Ask,
    /// A code action with a fixed one-subgoal plan (spec/soar.md §14.2).
    Directed(DirectedTask),
}

/// A code action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectedTask {
    pub kind: DirectedKind,
    /// The user's instruction; `None` uses the kind's default.
    pub instruction: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DirectedKind {
    Refactor,
    Document,
    Tests,
}

impl DirectedKind {
    /// The built-in agent that carries the task out.
    pub fn agent(self) -> &'static str {
        match self {
            DirectedKind::Refactor => "refactoring-engine",
            DirectedKind::Document => "documentation-generator",
            DirectedKind::Tests => "test-writer",
        }
    }

    pub fn default_instruction(self) -> &'static str {
        match self {
            DirectedKind::Refactor => "Refactor the selected code for readability without changing its behaviour.",
            DirectedKind::Document => {
                "Write or improve the docstring of the selected code, in the style the file already uses."
            }
            DirectedKind::Tests => {
                "Write pytest tests for the selected code, in the test layout the workspace already uses."
            }
        }
    }
}

/// What the front-end knows about indexing that the store cannot tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexHint {
    /// A background pass is still running.
    pub partial: bool,
    pub pending_files: u64,
}

/// One SOAR request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SoarRequest {
    pub query: String,
    pub editor: Option<EditorContext>,
    pub mode: RequestMode,
    pub complexity_override: Option<Complexity>,
    /// May only lower the per-query cap (`budget.perQueryUsd`).
    pub max_cost_usd: Option<f64>,
    /// Continue a conversation (its last 5 turns are shown to the models); unknown ids start a new one.
    pub conversation_id: Option<String>,
    /// Bypass the decomposition cache (lookup and insert).
    pub no_cache: bool,
    pub index: IndexHint,
}

impl SoarRequest {
    pub fn ask(query: impl Into<String>) -> SoarRequest {
        SoarRequest { query: query.into(), ..SoarRequest::default() }
    }

    /// `aurora.explain`: the normal pipeline with the selection pinned (spec/soar.md §14.2).
    pub fn explain(editor: EditorContext, user_text: Option<&str>) -> SoarRequest {
        let mut query = String::from("Explain the selected code");
        if let Some(text) = user_text.map(str::trim).filter(|t| !t.is_empty()) {
            query.push_str(": ");
            query.push_str(text);
        }
        SoarRequest { query, editor: Some(editor), ..SoarRequest::default() }
    }

    /// A directed code action on the editor's selection.
    pub fn directed(kind: DirectedKind, instruction: Option<String>, editor: EditorContext) -> SoarRequest {
        let query = instruction.clone().unwrap_or_else(|| kind.default_instruction().to_owned());
        SoarRequest {
            query,
            editor: Some(editor),
            mode: RequestMode::Directed(DirectedTask { kind, instruction }),
            ..SoarRequest::default()
        }
    }
}

/// A chunk as shown to a model.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextChunk {
    /// The store's 16-hex id, or `buffer:<path>:<start>-<end>` for text of an unsaved buffer.
    pub chunk_id: String,
    pub file: RelPath,
    pub kind: String,
    pub qualified_name: String,
    pub signature: Option<String>,
    pub docstring: Option<String>,
    pub start_line: u32,
    pub end_line: u32,
    #[serde(skip)]
    pub content: Arc<str>,
    pub content_hash: String,
    pub score: ScoreBreakdown,
    /// Came from the editor selection or cursor.
    pub pinned: bool,
}

impl ContextChunk {
    /// `path:L10-L24` with 1-based lines, as models and people read it.
    pub fn location(&self) -> String {
        location(&self.file, self.start_line, self.end_line)
    }

    /// A summary without text, for phase records and `related`.
    pub fn as_ref(&self) -> ChunkRef {
        ChunkRef {
            chunk_id: self.chunk_id.clone(),
            file: self.file.clone(),
            start_line: self.start_line,
            end_line: self.end_line,
            kind: self.kind.clone(),
            name: self.qualified_name.clone(),
            score: self.score.final_score,
            pinned: self.pinned,
        }
    }
}

/// `path:L<start>-L<end>` with 1-based lines.
pub fn location(file: &str, start_line: u32, end_line: u32) -> String {
    format!("{file}:L{}-L{}", start_line + 1, end_line + 1)
}

/// 1-based inclusive lines from a model to 0-based, or `None` when they are not a valid range.
pub fn model_lines(start: i64, end: i64) -> Option<(u32, u32)> {
    if start < 1 || end < start || end > i64::from(u32::MAX) {
        return None;
    }
    Some((start as u32 - 1, end as u32 - 1))
}

/// A chunk named without its text.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkRef {
    pub chunk_id: String,
    pub file: RelPath,
    pub start_line: u32,
    pub end_line: u32,
    pub kind: String,
    pub name: String,
    pub score: f64,
    pub pinned: bool,
}

/// The nine phases, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PhaseKey {
    #[serde(rename = "phase1_assess")]
    Assess,
    #[serde(rename = "phase2_retrieve")]
    Retrieve,
    #[serde(rename = "phase3_decompose")]
    Decompose,
    #[serde(rename = "phase4_verify")]
    Verify,
    #[serde(rename = "phase5_route")]
    Route,
    #[serde(rename = "phase6_collect")]
    Collect,
    #[serde(rename = "phase7_synthesize")]
    Synthesize,
    #[serde(rename = "phase8_record")]
    Record,
    #[serde(rename = "phase9_respond")]
    Respond,
}

impl PhaseKey {
    pub const ALL: [PhaseKey; 9] = [
        PhaseKey::Assess,
        PhaseKey::Retrieve,
        PhaseKey::Decompose,
        PhaseKey::Verify,
        PhaseKey::Route,
        PhaseKey::Collect,
        PhaseKey::Synthesize,
        PhaseKey::Record,
        PhaseKey::Respond,
    ];

    /// `phase1_assess` … `phase9_respond`.
    pub fn key(self) -> &'static str {
        match self {
            PhaseKey::Assess => "phase1_assess",
            PhaseKey::Retrieve => "phase2_retrieve",
            PhaseKey::Decompose => "phase3_decompose",
            PhaseKey::Verify => "phase4_verify",
            PhaseKey::Route => "phase5_route",
            PhaseKey::Collect => "phase6_collect",
            PhaseKey::Synthesize => "phase7_synthesize",
            PhaseKey::Record => "phase8_record",
            PhaseKey::Respond => "phase9_respond",
        }
    }

    /// The short name of spec/lsp.md §4.1 (`assess` … `respond`).
    pub fn name(self) -> &'static str {
        match self {
            PhaseKey::Assess => "assess",
            PhaseKey::Retrieve => "retrieve",
            PhaseKey::Decompose => "decompose",
            PhaseKey::Verify => "verify",
            PhaseKey::Route => "route",
            PhaseKey::Collect => "collect",
            PhaseKey::Synthesize => "synthesize",
            PhaseKey::Record => "record",
            PhaseKey::Respond => "respond",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseStatus {
    Ok,
    Skipped,
    Degraded,
    Failed,
}

/// What one phase did: status, time, error, and a plain-data summary (ids and locations, never text).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseRecord {
    pub status: PhaseStatus,
    pub duration_ms: f64,
    pub error: Option<String>,
    pub detail: serde_json::Value,
}

impl PhaseRecord {
    pub fn skipped() -> PhaseRecord {
        PhaseRecord { status: PhaseStatus::Skipped, duration_ms: 0.0, error: None, detail: serde_json::Value::Null }
    }
}

/// A subgoal of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Subgoal {
    /// 0-based identity.
    pub index: usize,
    /// `sg-{index+1}`.
    pub id: String,
    pub description: String,
    /// Trimmed, leading `@` removed, lower-cased.
    pub suggested_agent: String,
    pub specialist_hint: Option<String>,
    pub is_critical: bool,
    /// Normalised, sorted, de-duplicated.
    pub depends_on: Vec<usize>,
}

/// Where a plan came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PlanSource {
    Llm,
    Cache { key: String },
    Directed,
}

/// A decomposition. Only `verify.rs` can wrap it as a `VerifiedPlan`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Plan {
    pub goal: String,
    pub subgoals: Vec<Subgoal>,
    pub expected_tools: Vec<String>,
    /// Kahn layers, filled by verify, never by the model.
    pub waves: Vec<Vec<usize>>,
    pub attempt: u8,
    pub source: PlanSource,
}

/// Token counts and cost of one or more calls.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Some count was estimated from text length.
    pub estimated: bool,
    pub cost_usd: f64,
    /// Every call's model was in the price table.
    pub price_known: bool,
    pub calls: u32,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.estimated |= other.estimated;
        self.cost_usd += other.cost_usd;
        self.price_known = (self.calls == 0 || self.price_known) && (other.calls == 0 || other.price_known);
        self.calls += other.calls;
    }

    pub fn of_call(u: &crate::llm::Usage) -> Usage {
        Usage {
            input_tokens: u64::from(u.input_tokens),
            output_tokens: u64::from(u.output_tokens),
            estimated: u.estimated,
            cost_usd: u.cost_usd,
            price_known: u.price_known,
            calls: 1,
        }
    }
}

/// How a finished query went (snake_case on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Answered,
    AnsweredSimple,
    Directed,
    Partial,
    VerificationFailed,
    Failed,
    TimedOut,
    NoLlm,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::AnsweredSimple => "answered_simple",
            Outcome::Directed => "directed",
            Outcome::Partial => "partial",
            Outcome::VerificationFailed => "verification_failed",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::NoLlm => "no_llm",
        }
    }
}

/// Where a citation came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CitationSource {
    Synthesis,
    Agent { subgoal_index: usize },
}

/// A citation checked against the store (or the open document).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Citation {
    /// Display number after renumbering (`[n]` in the answer).
    pub n: u32,
    pub chunk_id: Option<String>,
    pub file: RelPath,
    /// 0-based inclusive.
    pub start_line: u32,
    pub end_line: u32,
    /// Qualified name of the chunk, or the file name for a range without a chunk.
    pub name: String,
    pub content_hash: Option<String>,
    /// The chunk changed since it was shown to the model.
    pub stale: bool,
    pub source: CitationSource,
}

/// Why a citation was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    Malformed,
    UnknownChunk,
    FileMismatch,
    OutOfRange,
    NotInContext,
    OverLimit,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CitationStats {
    pub given: u32,
    pub valid: u32,
    pub dropped: u32,
    pub stale: u32,
    pub unreferenced: u32,
    pub dropped_by_reason: BTreeMap<DropReason, u32>,
}

impl CitationStats {
    pub fn add(&mut self, o: &CitationStats) {
        self.given += o.given;
        self.valid += o.valid;
        self.dropped += o.dropped;
        self.stale += o.stale;
        self.unreferenced += o.unreferenced;
        for (k, v) in &o.dropped_by_reason {
            *self.dropped_by_reason.entry(*k).or_default() += v;
        }
    }
}

/// A proposed change; SOAR never writes a file.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposedEdit {
    /// `e1`, `e2`, … in response order.
    pub id: String,
    pub subgoal_index: usize,
    pub agent_id: String,
    pub file: RelPath,
    pub change: EditChange,
    pub description: String,
    /// blake3 hex of the text the edit was validated against; a front-end refuses the edit when the
    /// document no longer has this text.
    pub base_content_hash: Option<String>,
    /// The document version, when the file is the open document.
    pub base_version: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum EditChange {
    /// Replace lines `start_line..=end_line` (0-based) with `new_text`.
    Replace { start_line: u32, end_line: u32, new_text: String },
    /// A unified diff of exactly this file that applies cleanly to the base text.
    Diff { unified: String },
    /// A new file.
    Create { new_text: String },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditStats {
    pub proposed: u32,
    pub kept: u32,
    pub dropped: u32,
    pub dropped_by_reason: BTreeMap<String, u32>,
}

impl EditStats {
    pub fn add(&mut self, o: &EditStats) {
        self.proposed += o.proposed;
        self.kept += o.kept;
        self.dropped += o.dropped;
        for (k, v) in &o.dropped_by_reason {
            *self.dropped_by_reason.entry(k.clone()).or_default() += v;
        }
    }
}

/// How fresh the index behind an answer was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexFreshness {
    pub partial: bool,
    pub indexed_files: u64,
    pub pending_files: u64,
}

/// A warning for the user: a stable code (spec/lsp.md §4.1) and one sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Warning {
    pub code: String,
    pub message: String,
}

impl Warning {
    pub fn new(code: &str, message: impl Into<String>) -> Warning {
        Warning { code: code.to_owned(), message: message.into() }
    }
}

/// How much to trust a confidence figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfidenceBasis {
    /// A reviewer scored the answer.
    Verified,
    /// A fixed prior times the citation factor.
    Unverified,
    /// No model ran.
    None,
}

/// Tokens of a query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct TokensUsed {
    pub input: u64,
    pub output: u64,
    pub estimated: bool,
}

/// Calls and spend of one phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseUsage {
    pub calls: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// Which subgoal produced what, for the reasoning trace.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceEntry {
    pub subgoal_id: String,
    pub subgoal_index: usize,
    pub agent_id: String,
    pub description: String,
    pub status: AgentStatus,
}

/// How one agent's work ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Succeeded,
    Failed,
    TimedOut,
    Skipped,
    Cancelled,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SynthesisMeta {
    pub attempts: u8,
    pub verification_score: Option<f64>,
    pub coherence: Option<f64>,
    pub completeness: Option<f64>,
    pub factuality: Option<f64>,
    pub model_confidence: Option<f64>,
    pub subgoals_completed: u32,
    pub subgoals_failed: u32,
    pub subgoals_skipped: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningTrace {
    pub traceability: Vec<TraceEntry>,
    pub synthesis_metadata: SynthesisMeta,
}

/// The month's spend when the query ended (spec/soar.md §15).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetState {
    pub period: String,
    pub limit_usd: f64,
    pub consumed_usd: f64,
    pub remaining_usd: Option<f64>,
    pub percent_consumed: f64,
    pub at_soft_limit: bool,
    pub at_hard_limit: bool,
}

/// Everything about a run except the answer itself.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseMetadata {
    pub query_id: String,
    pub conversation_id: String,
    pub query: String,
    pub simple_path: bool,
    /// Phase 8 stored the run as a reasoning pattern.
    pub cached: bool,
    pub reasoning_chunk_id: Option<String>,
    pub pattern_marked: bool,
    pub decomposition_cache_hit: bool,
    pub total_duration_ms: f64,
    pub total_cost_usd: f64,
    pub tokens_used: TokensUsed,
    pub usage: Usage,
    pub usage_by_phase: BTreeMap<PhaseKey, PhaseUsage>,
    pub budget_status: Option<BudgetState>,
    pub budget_warning: Option<String>,
    /// All nine keys, always.
    pub phases: BTreeMap<PhaseKey, PhaseRecord>,
    pub citations: CitationStats,
    pub edits: EditStats,
    pub index: IndexFreshness,
    pub confidence_basis: ConfidenceBasis,
    pub quality_warning: Option<String>,
    /// Set when a model failure ended the run (outcome `failed`).
    pub llm_failure: Option<crate::soar::error::LlmFailure>,
    pub warnings: Vec<Warning>,
    pub prompt_versions: BTreeMap<String, u32>,
    pub models: BTreeMap<String, String>,
    /// Epoch seconds.
    pub timestamp: i64,
}

/// The envelope of a finished run (spec/soar.md §13). The CLI and the LSP layer render it; it carries
/// no formatting of its own.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SoarResponse {
    /// Markdown with `[n]` markers.
    pub answer: String,
    pub confidence: f64,
    /// Equal to `confidence` (kept from the original contract).
    pub overall_score: f64,
    pub outcome: Outcome,
    pub complexity: Complexity,
    pub citations: Vec<Citation>,
    /// Retrieved and not cited (the locations of no-LLM and failure answers).
    pub related: Vec<ChunkRef>,
    pub proposed_edits: Vec<ProposedEdit>,
    pub reasoning_trace: ReasoningTrace,
    pub metadata: ResponseMetadata,
}

impl SoarResponse {
    /// Phases that ran (status not `Skipped`), in order, with their times in ms.
    pub fn timings(&self) -> Vec<(PhaseKey, f64)> {
        PhaseKey::ALL
            .iter()
            .filter_map(|k| self.metadata.phases.get(k).map(|r| (*k, r)))
            .filter(|(_, r)| r.status != PhaseStatus::Skipped)
            .map(|(k, r)| (k, r.duration_ms))
            .collect()
    }
}

/// What a run reports while it works (spec/soar.md §17).
#[derive(Clone, Debug, PartialEq)]
pub enum SoarEvent {
    /// Phase progress: `percentage` never decreases within a run.
    Progress { phase: PhaseKey, message: String, percentage: u32 },
    /// Streamed answer text of the SIMPLE answer or a synthesis attempt.
    AnswerDelta { attempt: u8, text: String },
    /// A new synthesis attempt begins: discard the text streamed so far.
    AnswerReset { attempt: u8 },
    /// The month's spend passed the soft limit.
    BudgetWarning { message: String },
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A query normalised for cache keys and pattern matching: trimmed, lower-cased, whitespace collapsed.
pub fn normalize_query(q: &str) -> String {
    q.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}
