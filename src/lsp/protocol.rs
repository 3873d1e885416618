//! Wire types of the custom methods (spec/lsp.md §4) and the error codes of §4.7.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lsp::lsp;
use tower_lsp_server::jsonrpc;

pub const PROTOCOL_VERSION: u32 = 1;

/// Error codes of spec/lsp.md §4.7 beyond JSON-RPC's own.
pub const INDEX_NOT_READY: i64 = -33005;

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
