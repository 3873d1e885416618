//! The commands that run SOAR: `aurora.ask`, `aurora.explain`, and the edit commands.

use std::sync::Arc;

use serde_json::Value;
use tower_lsp_server::jsonrpc;

use crate::lsp::lsp;
use crate::lsp::protocol::{LLM_NOT_CONFIGURED, error};
use crate::lsp::session::Session;

pub(crate) async fn run(
    _session: &Arc<Session>,
    command: &str,
    _arg: Option<Value>,
    _token: Option<lsp::ProgressToken>,
) -> jsonrpc::Result<Option<Value>> {
    Err(error(LLM_NOT_CONFIGURED, format!("{command} is not available in this build."), None))
}
