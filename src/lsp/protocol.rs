//! Wire types of the custom methods (spec/lsp.md §4) and the error codes of §4.7.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lsp::lsp;
use tower_lsp_server::jsonrpc;

pub const PROTOCOL_VERSION: u32 = 1;

/// Error codes of spec/lsp.md §4.7 beyond JSON-RPC's own.
pub const CONTENT_MODIFIED: i64 = -32801;
pub const REQUEST_FAILED: i64 = -32803;
pub const LLM_NOT_CONFIGURED: i64 = -33001;
pub const LLM_UNAVAILABLE: i64 = -33002;
pub const LLM_REQUEST_FAILED: i64 = -33003;
pub const BUDGET_EXCEEDED: i64 = -33004;
pub const INDEX_NOT_READY: i64 = -33005;
pub const TOO_MANY_REQUESTS: i64 = -33006;

/// An error with one of the codes above, a message for the user and machine-readable `data`.
pub fn error(code: i64, message: impl Into<String>, data: Option<Value>) -> jsonrpc::Error {
    jsonrpc::Error { code: jsonrpc::ErrorCode::ServerError(code), message: message.into().into(), data }
}

pub fn too_many_requests(limit: usize) -> jsonrpc::Error {
    error(
        TOO_MANY_REQUESTS,
        format!("Aurora is already working on {limit} requests; wait for one to finish or cancel it."),
        None,
    )
}

/// An `IndexNotReady` error with its machine-readable reason.
pub fn index_not_ready(message: impl Into<String>, reason: &str) -> jsonrpc::Error {
    jsonrpc::Error {
        code: jsonrpc::ErrorCode::ServerError(INDEX_NOT_READY),
        message: message.into().into(),
        data: Some(serde_json::json!({ "reason": reason })),
    }
}

/// The answer to a bug or a panic: the details go to the log, not to the user.
pub fn internal_error(method: &str) -> jsonrpc::Error {
    jsonrpc::Error {
        code: jsonrpc::ErrorCode::InternalError,
        message: format!("Internal error in {method}; details are in the Aurora log.").into(),
        data: None,
    }
}

pub fn invalid_params(message: impl Into<String>) -> jsonrpc::Error {
    jsonrpc::Error::invalid_params(message.into())
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchParams {
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub limit: Option<Value>,
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    #[serde(default)]
    pub text_document: Option<lsp::TextDocumentIdentifier>,
    #[serde(default)]
    pub position: Option<lsp::Position>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Breakdown {
    pub bm25: f64,
    pub activation: f64,
    pub spreading: f64,
    pub context_boost: f64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchItem {
    pub location: lsp::Location,
    pub selection_range: lsp::Range,
    pub name: String,
    pub qualified_name: String,
    pub kind: String,
    pub chunk_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    pub score: f64,
    pub breakdown: Breakdown,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    pub results: Vec<SearchItem>,
    pub partial: bool,
    pub index_generation: u64,
    pub took_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderStatus {
    pub uri: String,
    pub store_path: String,
    pub state: &'static str,
    pub files_indexed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_total: Option<u64>,
    pub chunks: u64,
    pub skipped: std::collections::BTreeMap<String, u64>,
    pub stale_files: u64,
    pub watcher: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_indexed_at: Option<String>,
    pub db_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LlmStatus {
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_latency_ms: Option<u64>,
}

/// This month's LLM spend against the caps (0 = no limit).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    pub period: String,
    pub spent_usd: f64,
    pub monthly_usd: f64,
    pub per_query_usd: f64,
    pub state: &'static str,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigProblem {
    pub key_path: String,
    pub source: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    pub sources: Vec<String>,
    pub problems: Vec<ConfigProblem>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResult {
    pub state: &'static str,
    pub message: String,
    pub server_version: String,
    pub protocol_version: u32,
    pub position_encoding: &'static str,
    pub index_generation: u64,
    pub folders: Vec<FolderStatus>,
    pub llm: LlmStatus,
    pub budget: BudgetStatus,
    pub config: ConfigStatus,
    pub active_requests: u64,
    pub queued_requests: u64,
}

/// `aurora/didChangeStatus` (spec/lsp.md §4.5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DidChangeStatus {
    pub state: String,
    pub busy: bool,
    pub message: String,
    pub reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indexing: Option<IndexingCount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<StatusCommand>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexingCount {
    pub done: u64,
    pub total: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusCommand {
    pub title: String,
    pub command: String,
}

/// The one argument of the edit and explain commands (spec/lsp.md §5.2).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionArgs {
    pub text_document: lsp::VersionedTextDocumentIdentifier,
    pub range: lsp::Range,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
}

/// `aurora.reindex`'s argument.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReindexArgs {
    #[serde(default)]
    pub folders: Option<Vec<String>>,
    #[serde(default)]
    pub force: bool,
}

/// `aurora.reindex`'s result: the passes' totals.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReindexResult {
    pub files_indexed: u64,
    pub files_unchanged: u64,
    pub files_removed: u64,
    pub skipped: std::collections::BTreeMap<String, u64>,
    pub chunks: u64,
    pub ms: u64,
}

/// `aurora/ask` params (spec/lsp.md §4.2); the progress tokens are read separately.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AskParams {
    #[serde(default)]
    pub question: Option<String>,
    #[serde(default)]
    pub text_document: Option<lsp::TextDocumentIdentifier>,
    #[serde(default)]
    pub range: Option<lsp::Range>,
    #[serde(default)]
    pub position: Option<lsp::Position>,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub no_cache: bool,
    #[serde(default)]
    pub work_done_token: Option<lsp::ProgressToken>,
    #[serde(default)]
    pub partial_result_token: Option<lsp::ProgressToken>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Citation {
    pub uri: lsp::Uri,
    pub range: lsp::Range,
    pub chunk_id: String,
    pub name: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Warning {
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhaseTiming {
    pub name: String,
    pub ms: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AskResult {
    pub conversation_id: String,
    pub query_id: String,
    pub answer: String,
    pub citations: Vec<Citation>,
    pub confidence: f64,
    pub complexity: String,
    pub phases: Vec<PhaseTiming>,
    pub usage: Usage,
    pub cached: bool,
    pub index_generation: u64,
    pub partial: bool,
    pub warnings: Vec<Warning>,
}

/// A piece of streamed answer text, sent as `$/progress` on the `partialResultToken`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AskPartialResult {
    pub delta: String,
    pub phase: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
}

/// `$/progress` carrying an [`AskPartialResult`]: `lsp::ProgressParamsValue` models work-done
/// values only (spec/lsp.md §4.2).
pub enum PartialProgress {}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartialProgressParams {
    pub token: lsp::ProgressToken,
    pub value: AskPartialResult,
}

impl lsp::notification::Notification for PartialProgress {
    type Params = PartialProgressParams;
    const METHOD: &'static str = "$/progress";
}

/// `workspace/applyEdit`'s outcome for an edit command (spec/lsp.md §5.4).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditResult {
    pub applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    pub label: String,
    pub files: Vec<lsp::Uri>,
    pub usage: Usage,
    pub phases: Vec<PhaseTiming>,
    pub warnings: Vec<Warning>,
}
