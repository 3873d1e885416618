//! `aurora/status` (snapshot, spec/lsp.md §4.4): what each folder's store holds, indexing state,
//! the LLM's configuration (never probed) and configuration problems.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;
use tower_lsp_server::jsonrpc;

use crate::llm::config::ProviderKind;
use crate::lsp::protocol::{ConfigProblem, ConfigStatus, FolderStatus, LlmStatus, PROTOCOL_VERSION, StatusResult};
use crate::lsp::session::{FolderState, Session};
use crate::store::read;

const METHOD: &str = "aurora/status";

pub(crate) async fn status(session: &Arc<Session>, _params: Value) -> jsonrpc::Result<StatusResult> {
    session.flush_all().await;
    let s = session.clone();
    super::blocking(METHOD, move || Ok(build(&s))).await
}

fn build(session: &Session) -> StatusResult {
    let config = session.config();
    let mut folders = Vec::new();
    let mut indexing = None;
    let mut any_ok = false;
    for folder in session.folders() {
        let state = folder.state();
        let counts = crate::store::open_reader(&folder.store).and_then(|c| read::counts(&c)).unwrap_or_default();
        let pass = folder.pass.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let (done, total) = (pass.committed.load(Ordering::Relaxed), pass.total.load(Ordering::Relaxed));
        if state == FolderState::Indexing {
            let (d, t) = indexing.unwrap_or((0, 0));
            indexing = Some((d + done.min(total), t + total));
        }
        any_ok |= !matches!(state, FolderState::Error(_));
        let watcher = *folder.watcher_state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        folders.push(FolderStatus {
            uri: folder.uri.clone(),
            store_path: folder.store.db.display().to_string(),
            state: match state {
                FolderState::Opening => "opening",
                FolderState::Indexing => "indexing",
                FolderState::Ready => "ready",
                FolderState::Error(_) => "error",
            },
            files_indexed: counts.files_ok + counts.files_partial,
            files_total: (state == FolderState::Indexing).then_some(total),
            chunks: counts.chunks,
            skipped: counts.skipped_by_reason.clone(),
            stale_files: counts.files_partial,
            watcher,
            last_indexed_at: counts.last_indexed_at.map(|ms| format!("{ms}")),
            db_bytes: folder.store.size_bytes(),
            error: match state {
                FolderState::Error(e) => Some(e),
                _ => None,
            },
        });
    }
    let llm = &config.llm;
    let llm_status = if llm.provider == ProviderKind::None {
        LlmStatus {
            provider: "none".into(),
            model: None,
            state: "notConfigured",
            message: Some("To ask questions, set aurora.llm.provider.".into()),
        }
    } else {
        LlmStatus {
            provider: llm.provider.name().into(),
            model: (!llm.model.is_empty()).then(|| llm.model.clone()),
            state: "configured",
            message: None,
        }
    };
    let problems: Vec<ConfigProblem> = session
        .problems
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|p| ConfigProblem { key_path: p.key.clone(), source: p.source.clone(), message: p.message.clone() })
        .collect();
    let (state, message) = if !folders.is_empty() && !any_ok {
        ("error", "No folder has a usable index".to_owned())
    } else if let Some((done, total)) = indexing {
        ("indexing", format!("Indexing {done}/{total} files"))
    } else if llm.provider == ProviderKind::None || !problems.is_empty() {
        (
            "degraded",
            if problems.is_empty() { "Search only: no LLM configured" } else { "Configuration problems" }.into(),
        )
    } else {
        ("ready", "Ready".to_owned())
    };
    StatusResult {
        state,
        message,
        server_version: env!("CARGO_PKG_VERSION").into(),
        protocol_version: PROTOCOL_VERSION,
        position_encoding: session.encoding().as_str(),
        index_generation: session.generation(),
        folders,
        llm: llm_status,
        config: ConfigStatus {
            sources: session.config_sources.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
            problems,
        },
        active_requests: 0,
        queued_requests: 0,
    }
}
