//! The `soar.*` settings (spec/soar.md §18): typed, with the spec's defaults, and their range checks.
//!
//! Spend limits are not here: SOAR's budget gate reads the `budget.*` section the LLM layer already
//! enforces (spec/lsp.md §7.2), so one set of limits governs every call.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SoarConfig {
    pub models: SoarModels,
    pub llm_params: LlmParams,
    /// Repair calls after a reply that does not parse or validate; 0..=2.
    pub json_repair_attempts: u32,
    pub retrieval: SoarRetrieval,
    pub context: SoarContext,
    pub decompose: SoarDecompose,
    pub cache: SoarCache,
    pub verify: SoarVerify,
    pub agents: SoarAgents,
    pub timeouts: SoarTimeouts,
    pub synthesis: SoarSynthesis,
    pub simple: SoarSimple,
    pub citations: SoarCitations,
    pub record: SoarRecord,
    pub conversation_log: SoarConversationLog,
}

impl Default for SoarConfig {
    fn default() -> SoarConfig {
        SoarConfig {
            models: SoarModels::default(),
            llm_params: LlmParams::default(),
            json_repair_attempts: 1,
            retrieval: SoarRetrieval::default(),
            context: SoarContext::default(),
            decompose: SoarDecompose::default(),
            cache: SoarCache::default(),
            verify: SoarVerify::default(),
            agents: SoarAgents::default(),
            timeouts: SoarTimeouts::default(),
            synthesis: SoarSynthesis::default(),
            simple: SoarSimple::default(),
            citations: SoarCitations::default(),
            record: SoarRecord::default(),
            conversation_log: SoarConversationLog::default(),
        }
    }
}

/// Model of each SOAR role; empty means the fallback named on each field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SoarModels {
    /// Decomposition; empty: `llm.reasoningModel`, else `llm.model`.
    pub reasoning: String,
    /// SIMPLE answers and synthesis; empty: `reasoning`.
    pub solving: String,
    /// Plan and synthesis reviews; empty: `reasoning`.
    pub review: String,
    /// Built-in agents; empty: `solving`.
    pub agents: String,
}

/// Temperature and output limit of one role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoleParams {
    pub temperature: f64,
    pub max_tokens: u32,
}

impl Default for RoleParams {
    fn default() -> RoleParams {
        RoleParams { temperature: 0.2, max_tokens: 4096 }
    }
}

fn params(temperature: f64, max_tokens: u32) -> RoleParams {
    RoleParams { temperature, max_tokens }
}

/// `soar.llmParams.<role>`: one entry per role of spec/soar.md §1.3. The keys are the role ids without
/// their `soar.` prefix and dots (`verifySelf` for `soar.verify.self`; `agents` for every `agent.<id>`),
/// because a settings key path cannot hold a dotted name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LlmParams {
    pub simple_answer: RoleParams,
    pub decompose: RoleParams,
    pub verify_self: RoleParams,
    pub verify_adversarial: RoleParams,
    pub agents: RoleParams,
    pub synthesize: RoleParams,
    pub verify_synthesis: RoleParams,
}

impl Default for LlmParams {
    fn default() -> LlmParams {
        LlmParams {
            simple_answer: params(0.3, 1024),
            decompose: params(0.2, 4096),
            verify_self: params(0.1, 1024),
            verify_adversarial: params(0.1, 1024),
            agents: params(0.2, 4096),
            synthesize: params(0.3, 4096),
            verify_synthesis: params(0.1, 1024),
        }
    }
}

/// A value per complexity level (SIMPLE has none where the level never decomposes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PerLevel {
    pub simple: u32,
    pub medium: u32,
    pub complex: u32,
    pub critical: u32,
}

fn per_level(simple: u32, medium: u32, complex: u32, critical: u32) -> PerLevel {
    PerLevel { simple, medium, complex, critical }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SoarRetrieval {
    /// Chunks per level, pinned ones included; each ≥ 1.
    pub budget: PerLevel,
    pub max_patterns: u32,
    /// Minimum Jaccard similarity of query and pattern token sets; 0..=1.
    pub pattern_min_similarity: f64,
    pub pattern_activation_weight: f64,
}

impl Default for SoarRetrieval {
    fn default() -> SoarRetrieval {
        SoarRetrieval {
            budget: per_level(5, 10, 15, 20),
            max_patterns: 3,
            pattern_min_similarity: 0.5,
            pattern_activation_weight: 0.25,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SoarContext {
    /// Lines of a chunk shown to a model; longer bodies are cut.
    pub max_chunk_lines: u32,
}

impl Default for SoarContext {
    fn default() -> SoarContext {
        SoarContext { max_chunk_lines: 50 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SoarDecompose {
    /// Read by both the decomposer's prompt and the plan validator (`simple` is unused).
    pub max_subgoals: PerLevel,
    pub full_chunks: PerLevel,
    pub max_chunks: PerLevel,
    pub examples: PerLevel,
}

impl Default for SoarDecompose {
    fn default() -> SoarDecompose {
        SoarDecompose {
            max_subgoals: per_level(0, 2, 4, 6),
            full_chunks: per_level(0, 5, 7, 10),
            max_chunks: per_level(0, 8, 12, 15),
            examples: per_level(0, 1, 1, 2),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SoarCache {
    pub enabled: bool,
    pub ttl_secs: u64,
    pub max_entries: u32,
}

impl Default for SoarCache {
    fn default() -> SoarCache {
        SoarCache { enabled: true, ttl_secs: 3600, max_entries: 1000 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SoarVerify {
    /// `false`: structural checks only.
    pub llm_review: bool,
    /// completeness, consistency, groundedness, routability; non-negative, summing to 1.
    pub weights: Vec<f64>,
    pub pass_threshold: f64,
    pub retry_threshold: f64,
    /// Re-decompositions after a RETRY; 0..=5.
    pub max_retries: u32,
}

impl Default for SoarVerify {
    fn default() -> SoarVerify {
        SoarVerify {
            llm_review: true,
            weights: vec![0.4, 0.2, 0.2, 0.2],
            pass_threshold: 0.7,
            retry_threshold: 0.5,
            max_retries: 2,
        }
    }
}

/// A user-configured external agent (accepted from the user-level config file only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", default)]
pub struct ExternalAgentConfig {
    pub id: String,
    pub name: String,
    pub description: String,
    pub capabilities: Vec<String>,
    /// argv, no shell.
    pub command: Vec<String>,
    /// 0: `soar.timeouts.agentSecs`.
    pub timeout_secs: u64,
    pub may_propose_edits: bool,
    pub cost_estimate_usd: f64,
    pub env: std::collections::BTreeMap<String, String>,
}

impl Default for ExternalAgentConfig {
    fn default() -> ExternalAgentConfig {
        ExternalAgentConfig {
            id: String::new(),
            name: String::new(),
            description: String::new(),
            capabilities: Vec::new(),
            command: Vec::new(),
            timeout_secs: 0,
            may_propose_edits: false,
            cost_estimate_usd: 0.0,
            env: Default::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SoarAgents {
    /// 1..=16.
    pub max_concurrent: u32,
    pub retrieval_budget: u32,
    pub max_context_tokens: u32,
    pub max_dependency_chars: u32,
    pub max_edits: u32,
    pub max_output_bytes: u64,
    pub fallback_to_llm: bool,
    /// Built-in or external ids; `llm-executor` cannot be disabled.
    pub disabled: Vec<String>,
    pub external: Vec<ExternalAgentConfig>,
}

impl Default for SoarAgents {
    fn default() -> SoarAgents {
        SoarAgents {
            max_concurrent: 4,
            retrieval_budget: 8,
            max_context_tokens: 12_000,
            max_dependency_chars: 4000,
            max_edits: 20,
            max_output_bytes: 1_048_576,
            fallback_to_llm: true,
            disabled: Vec::new(),
            external: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SoarTimeouts {
    pub llm_call_secs: u64,
    pub agent_secs: u64,
    pub overall_secs: u64,
}

impl Default for SoarTimeouts {
    fn default() -> SoarTimeouts {
        SoarTimeouts { llm_call_secs: 30, agent_secs: 60, overall_secs: 300 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SoarSynthesis {
    pub pass_threshold: f64,
    pub max_retries: u32,
    pub max_source_chunks: u32,
}

impl Default for SoarSynthesis {
    fn default() -> SoarSynthesis {
        SoarSynthesis { pass_threshold: 0.7, max_retries: 2, max_source_chunks: 10 }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SoarSimple {
    /// Review SIMPLE answers with `soar.verifySynthesis`.
    pub verify: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SoarCitations {
    pub max: u32,
}

impl Default for SoarCitations {
    fn default() -> SoarCitations {
        SoarCitations { max: 20 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SoarRecord {
    pub min_score: f64,
    pub pattern_score: f64,
    pub boost_learning: f64,
    pub boost_pattern: f64,
    /// Subtracted from the base level of every pattern used as an example by a failed query.
    pub failure_penalty: f64,
}

impl Default for SoarRecord {
    fn default() -> SoarRecord {
        SoarRecord {
            min_score: 0.5,
            pattern_score: 0.8,
            boost_learning: 0.05,
            boost_pattern: 0.2,
            failure_penalty: 0.1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SoarConversationLog {
    pub enabled: bool,
    pub max_entries: u32,
    pub include_prompts: bool,
    /// Also write `<root>/.aurora/logs/conversations/YYYY/MM/<query_id>.md`.
    pub markdown: bool,
}

impl Default for SoarConversationLog {
    fn default() -> SoarConversationLog {
        SoarConversationLog { enabled: true, max_entries: 1000, include_prompts: false, markdown: false }
    }
}

/// The range problem of `key` (a `soar.*` key path), if its value is not acceptable.
pub(super) fn range_problem(c: &SoarConfig, key: &str) -> Option<String> {
    let unit = |v: f64| (0.0..=1.0).contains(&v);
    let v = &c.verify;
    match key {
        "soar.jsonRepairAttempts" => (c.json_repair_attempts > 2).then(|| "must be 0..2".to_owned()),
        k if k.starts_with("soar.retrieval.budget.") => {
            let b = &c.retrieval.budget;
            [b.simple, b.medium, b.complex, b.critical].contains(&0).then(|| "must be at least 1".to_owned())
        }
        "soar.retrieval.patternMinSimilarity" => {
            (!unit(c.retrieval.pattern_min_similarity)).then(|| "must be between 0 and 1".to_owned())
        }
        "soar.retrieval.patternActivationWeight" => {
            (c.retrieval.pattern_activation_weight < 0.0).then(|| "must not be negative".to_owned())
        }
        "soar.context.maxChunkLines" => (c.context.max_chunk_lines == 0).then(|| "must be at least 1".to_owned()),
        k if k.starts_with("soar.decompose.maxSubgoals.") => {
            let m = &c.decompose.max_subgoals;
            [m.medium, m.complex, m.critical].contains(&0).then(|| "must be at least 1".to_owned())
        }
        "soar.verify.weights" => {
            let w = &v.weights;
            let ok = w.len() == 4 && w.iter().all(|x| *x >= 0.0) && (w.iter().sum::<f64>() - 1.0).abs() <= 1e-6;
            (!ok).then(|| "must be four non-negative numbers summing to 1".to_owned())
        }
        "soar.verify.passThreshold" | "soar.verify.retryThreshold" => {
            (!(unit(v.pass_threshold) && unit(v.retry_threshold) && v.retry_threshold <= v.pass_threshold))
                .then(|| "thresholds must satisfy 0 ≤ retryThreshold ≤ passThreshold ≤ 1".to_owned())
        }
        "soar.verify.maxRetries" => (v.max_retries > 5).then(|| "must be 0..5".to_owned()),
        "soar.agents.maxConcurrent" => {
            (!(1..=16).contains(&c.agents.max_concurrent)).then(|| "must be 1..16".to_owned())
        }
        "soar.agents.disabled" => {
            c.agents.disabled.iter().any(|d| d == "llm-executor").then(|| "llm-executor cannot be disabled".to_owned())
        }
        "soar.agents.external" => external_problem(&c.agents.external),
        k if k.starts_with("soar.timeouts.") => {
            let t = &c.timeouts;
            [t.llm_call_secs, t.agent_secs, t.overall_secs].contains(&0).then(|| "must be at least 1".to_owned())
        }
        "soar.synthesis.passThreshold" => (!unit(c.synthesis.pass_threshold)).then(|| "must be 0..1".to_owned()),
        "soar.synthesis.maxRetries" => (c.synthesis.max_retries > 5).then(|| "must be 0..5".to_owned()),
        "soar.record.minScore" | "soar.record.patternScore" => {
            let r = &c.record;
            (!(unit(r.min_score) && unit(r.pattern_score) && r.min_score <= r.pattern_score))
                .then(|| "must satisfy 0 ≤ minScore ≤ patternScore ≤ 1".to_owned())
        }
        _ => None,
    }
}

/// Built-in agent ids an external agent may not take.
pub const BUILTIN_AGENT_IDS: [&str; 7] = [
    "code-analyzer",
    "refactoring-engine",
    "documentation-generator",
    "test-writer",
    "dependency-tracker",
    "security-scanner",
    "llm-executor",
];

fn external_problem(agents: &[ExternalAgentConfig]) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    for a in agents {
        let id = a.id.trim().to_lowercase();
        if id.is_empty() {
            return Some("every external agent needs an id".into());
        }
        if BUILTIN_AGENT_IDS.contains(&id.as_str()) {
            return Some(format!("external agent id '{id}' collides with a built-in agent"));
        }
        if !seen.insert(id.clone()) {
            return Some(format!("external agent id '{id}' is used twice"));
        }
        if a.command.first().is_none_or(|p| p.trim().is_empty()) {
            return Some(format!("external agent '{id}' needs a command (argv, no shell)"));
        }
    }
    None
}
