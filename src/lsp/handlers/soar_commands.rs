//! The commands that run SOAR: `aurora.ask`, `aurora.explain`, and the edit commands.

use std::sync::Arc;

use serde_json::Value;
use tower_lsp_server::jsonrpc;

use crate::lsp::lsp;
use crate::lsp::protocol::{REQUEST_FAILED, error};
use crate::lsp::session::Session;

pub(crate) async fn run(
    _session: &Arc<Session>,
    command: &str,
    _arg: Option<Value>,
    _token: Option<lsp::ProgressToken>,
) -> jsonrpc::Result<Option<Value>> {
    // Not LlmNotConfigured: a provider may well be configured; the SOAR pipeline is what is missing.
    Err(error(
        REQUEST_FAILED,
        format!("{command} needs the SOAR pipeline, which this build of the Aurora server does not have yet."),
        None,
    ))
}
