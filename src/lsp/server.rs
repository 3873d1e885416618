//! The `LanguageServer` impl: one delegation per route into `handlers/`, so every route reads in
//! one screen.

use std::sync::Arc;

use serde_json::Value;
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::{Client, LanguageServer};

use crate::lsp::handlers::{
    self, actions, ask, commands, conversations, documents, lifecycle, search, status, symbols, workspace,
};
use crate::lsp::lsp;
use crate::lsp::protocol::{AskResult, SearchResult, StatusResult};
use crate::lsp::session::Session;

pub(crate) struct Backend {
    pub session: Arc<Session>,
}

impl Backend {
    pub fn new(client: Client) -> Backend {
        Backend { session: Arc::new(Session::new(client)) }
    }

    pub async fn search(&self, params: Value) -> Result<SearchResult> {
        handlers::request("aurora/search", search::search(&self.session, params)).await
    }

    pub async fn ask(&self, params: Value) -> Result<AskResult> {
        handlers::request("aurora/ask", ask::ask(&self.session, params)).await
    }

    pub async fn status(&self, params: Value) -> Result<StatusResult> {
        handlers::request("aurora/status", status::status(&self.session, params)).await
    }

    pub async fn conversations(&self, params: Value) -> Result<conversations::ConversationsResult> {
        handlers::request("aurora/conversations", conversations::conversations(&self.session, params)).await
    }

    /// `window/workDoneProgress/cancel` (not in tower-lsp-server's trait): cancels the job whose
    /// server-created progress the user cancelled.
    pub async fn work_done_progress_cancel(&self, params: lsp::WorkDoneProgressCancelParams) {
        if !self.session.jobs.cancel(&params.token) {
            tracing::debug!("window/workDoneProgress/cancel for a token of no running job");
        }
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: lsp::InitializeParams) -> Result<lsp::InitializeResult> {
        handlers::request("initialize", lifecycle::initialize(&self.session, params)).await
    }

    async fn initialized(&self, _: lsp::InitializedParams) {
        handlers::notification("initialized", lifecycle::initialized(&self.session)).await
    }

    async fn shutdown(&self) -> Result<()> {
        handlers::request("shutdown", lifecycle::shutdown(&self.session)).await
    }

    async fn did_open(&self, params: lsp::DidOpenTextDocumentParams) {
        handlers::notification("textDocument/didOpen", documents::did_open(&self.session, params)).await
    }

    async fn did_change(&self, params: lsp::DidChangeTextDocumentParams) {
        handlers::notification("textDocument/didChange", documents::did_change(&self.session, params)).await
    }

    async fn did_save(&self, params: lsp::DidSaveTextDocumentParams) {
        handlers::notification("textDocument/didSave", documents::did_save(&self.session, params)).await
    }

    async fn did_close(&self, params: lsp::DidCloseTextDocumentParams) {
        handlers::notification("textDocument/didClose", documents::did_close(&self.session, params)).await
    }

    async fn did_change_configuration(&self, params: lsp::DidChangeConfigurationParams) {
        handlers::notification(
            "workspace/didChangeConfiguration",
            workspace::did_change_configuration(&self.session, params),
        )
        .await
    }

    async fn did_change_watched_files(&self, params: lsp::DidChangeWatchedFilesParams) {
        handlers::notification(
            "workspace/didChangeWatchedFiles",
            workspace::did_change_watched_files(&self.session, params),
        )
        .await
    }

    async fn did_change_workspace_folders(&self, params: lsp::DidChangeWorkspaceFoldersParams) {
        handlers::notification(
            "workspace/didChangeWorkspaceFolders",
            workspace::did_change_workspace_folders(&self.session, params),
        )
        .await
    }

    async fn code_action(&self, params: lsp::CodeActionParams) -> Result<Option<lsp::CodeActionResponse>> {
        handlers::request("textDocument/codeAction", actions::code_action(&self.session, params)).await
    }

    async fn execute_command(&self, params: lsp::ExecuteCommandParams) -> Result<Option<Value>> {
        handlers::request("workspace/executeCommand", commands::execute_command(&self.session, params)).await
    }

    async fn symbol(&self, params: lsp::WorkspaceSymbolParams) -> Result<Option<lsp::WorkspaceSymbolResponse>> {
        handlers::request("workspace/symbol", symbols::symbols(&self.session, params)).await
    }
}
