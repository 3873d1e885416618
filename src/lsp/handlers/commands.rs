//! `workspace/executeCommand` (job, spec/lsp.md §5.3).

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tower_lsp_server::jsonrpc;

use crate::lsp::convert;
use crate::lsp::handlers::actions::{COMMANDS, REINDEX};
use crate::lsp::lsp;
use crate::lsp::protocol::{ReindexArgs, ReindexResult, invalid_params};
use crate::lsp::session::Session;

pub(crate) async fn execute_command(
    session: &Arc<Session>,
    params: lsp::ExecuteCommandParams,
) -> jsonrpc::Result<Option<Value>> {
    let command = params.command.as_str();
    if !COMMANDS.contains(&command) {
        return Err(invalid_params(format!("workspace/executeCommand: unknown command `{command}`.")));
    }
    let arg = params.arguments.into_iter().next();
    match command {
        REINDEX => {
            let args: ReindexArgs = match arg {
                None | Some(Value::Null) => ReindexArgs::default(),
                Some(Value::Array(a)) if a.is_empty() => ReindexArgs::default(),
                Some(v) => serde_json::from_value(v)
                    .map_err(|e| invalid_params(format!("aurora.reindex: the argument is malformed: {e}")))?,
            };
            reindex(session, args).await.map(|r| Some(serde_json::to_value(r).unwrap_or_default()))
        }
        _ => super::soar_commands::run(session, command, arg, params.work_done_progress_params.work_done_token).await,
    }
}

/// Runs a pass over the chosen folders (all by default) and sums their summaries.
async fn reindex(session: &Arc<Session>, args: ReindexArgs) -> jsonrpc::Result<ReindexResult> {
    let started = Instant::now();
    let mut folders = session.folders();
    if let Some(wanted) = &args.folders {
        let roots: Vec<_> = wanted
            .iter()
            .filter_map(|u| u.parse::<lsp::Uri>().ok())
            .filter_map(|u| convert::uri_to_path(&u))
            .map(|p| p.canonicalize().unwrap_or(p))
            .collect();
        folders.retain(|f| roots.contains(&f.root));
        if folders.is_empty() {
            return Err(invalid_params("aurora.reindex: none of `folders` is a workspace folder."));
        }
    }
    let mut out = ReindexResult::default();
    for folder in folders {
        let stats = session.clone().index_pass_with(folder, args.force).await.map_err(|e| {
            crate::lsp::protocol::error(
                crate::lsp::protocol::INDEX_NOT_READY,
                e,
                Some(serde_json::json!({"reason": "failed"})),
            )
        })?;
        out.files_indexed += stats.indexed;
        out.files_unchanged += stats.unchanged + stats.touched;
        out.files_removed += stats.deleted;
        for (reason, n) in &stats.skipped {
            *out.skipped.entry(reason.as_str().to_owned()).or_default() += n;
        }
        out.chunks += stats.total_chunks;
    }
    out.ms = started.elapsed().as_millis() as u64;
    Ok(out)
}
