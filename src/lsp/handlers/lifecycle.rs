//! `initialize`, `initialized` and `shutdown` (spec/lsp.md §1).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use tower_lsp_server::jsonrpc;

use crate::lsp::convert::{self, Encoding};
use crate::lsp::handlers::actions;
use crate::lsp::lsp;
use crate::lsp::protocol::PROTOCOL_VERSION;
use crate::lsp::session::{ConfigLayer, Folder, Session};

/// Reads the configuration and negotiates; opens no store and walks no directory.
pub(crate) async fn initialize(
    session: &Arc<Session>,
    params: lsp::InitializeParams,
) -> jsonrpc::Result<lsp::InitializeResult> {
    let enc = Encoding::negotiate(params.capabilities.general.as_ref().and_then(|g| g.position_encodings.as_deref()));
    session.set_encoding(enc);
    session.flags.lock().unwrap_or_else(std::sync::PoisonError::into_inner).work_done_progress =
        params.capabilities.window.as_ref().and_then(|w| w.work_done_progress).unwrap_or(false);

    let folders = workspace_folders(&params);
    session.set_folders(folders);

    {
        let mut flags = session.flags.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let workspace = params.capabilities.workspace.as_ref();
        flags.configuration_pull = workspace.and_then(|w| w.configuration).unwrap_or(false);
        flags.watched_files_registration = workspace
            .and_then(|w| w.did_change_watched_files.as_ref())
            .and_then(|d| d.dynamic_registration)
            .unwrap_or(false);
        let edit = workspace.and_then(|w| w.workspace_edit.as_ref());
        flags.editor_pid = params.process_id;
        flags.document_changes = edit.and_then(|e| e.document_changes).unwrap_or(false);
        flags.create_files = edit
            .and_then(|e| e.resource_operations.as_ref())
            .is_some_and(|ops| ops.contains(&lsp::ResourceOperationKind::Create));
        flags.change_annotations = edit.and_then(|e| e.change_annotation_support.as_ref()).is_some();
        let code_action = params.capabilities.text_document.as_ref().and_then(|t| t.code_action.as_ref());
        flags.code_action_literals = code_action.and_then(|c| c.code_action_literal_support.as_ref()).is_some();
        flags.code_action_disabled_support = code_action.and_then(|c| c.disabled_support).unwrap_or(false);
        flags.show_document =
            params.capabilities.window.as_ref().and_then(|w| w.show_document.as_ref()).is_some_and(|s| s.support);
        flags.answer_view = params
            .capabilities
            .experimental
            .as_ref()
            .and_then(|e| e.pointer("/aurora/answerView"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
    }
    session.set_layer(ConfigLayer::InitializationOptions, params.initialization_options.clone().unwrap_or_default());
    let s = session.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || s.reload_config()).await {
        tracing::error!("reading configuration: {e}");
    }

    let capabilities = lsp::ServerCapabilities {
        position_encoding: Some(enc.kind()),
        text_document_sync: Some(lsp::TextDocumentSyncCapability::Options(lsp::TextDocumentSyncOptions {
            open_close: Some(true),
            change: Some(lsp::TextDocumentSyncKind::INCREMENTAL),
            save: Some(lsp::TextDocumentSyncSaveOptions::SaveOptions(lsp::SaveOptions { include_text: Some(false) })),
            ..Default::default()
        })),
        workspace_symbol_provider: Some(lsp::OneOf::Left(true)),
        code_action_provider: Some(lsp::CodeActionProviderCapability::Options(lsp::CodeActionOptions {
            code_action_kinds: Some(actions::kinds()),
            resolve_provider: Some(false),
            work_done_progress_options: Default::default(),
        })),
        execute_command_provider: Some(lsp::ExecuteCommandOptions {
            commands: actions::COMMANDS.iter().map(|c| (*c).to_owned()).collect(),
            work_done_progress_options: lsp::WorkDoneProgressOptions { work_done_progress: Some(true) },
        }),
        workspace: Some(lsp::WorkspaceServerCapabilities {
            workspace_folders: Some(lsp::WorkspaceFoldersServerCapabilities {
                supported: Some(true),
                change_notifications: Some(lsp::OneOf::Left(true)),
            }),
            file_operations: None,
        }),
        experimental: Some(json!({
            "aurora": {
                "protocolVersion": PROTOCOL_VERSION,
                "requests": ["aurora/ask", "aurora/search", "aurora/status", "aurora/conversations"],
                "partialResults": ["aurora/ask"],
                "notifications": ["aurora/didChangeStatus"],
            }
        })),
        ..Default::default()
    };
    Ok(lsp::InitializeResult {
        capabilities,
        server_info: Some(lsp::ServerInfo { name: "aurora".into(), version: Some(env!("CARGO_PKG_VERSION").into()) }),
        offset_encoding: None,
    })
}

/// `workspaceFolders`, else `rootUri`, else `rootPath`; only local folders that exist.
#[allow(deprecated)] // rootUri and rootPath are the fallbacks the spec names
fn workspace_folders(params: &lsp::InitializeParams) -> Vec<Folder> {
    let given: Vec<(String, PathBuf)> = if let Some(folders) = &params.workspace_folders {
        folders.iter().filter_map(|f| Some((f.uri.as_str().to_owned(), convert::uri_to_path(&f.uri)?))).collect()
    } else if let Some(uri) = &params.root_uri {
        convert::uri_to_path(uri).map(|p| (uri.as_str().to_owned(), p)).into_iter().collect()
    } else if let Some(path) = &params.root_path {
        let path = PathBuf::from(path);
        convert::path_to_uri(&path).map(|u| (u.as_str().to_owned(), path)).into_iter().collect()
    } else {
        Vec::new()
    };
    given
        .into_iter()
        .filter_map(|(uri, path)| match path.canonicalize() {
            Ok(root) if root.is_dir() => Some(Folder::new(root, uri)),
            _ => {
                tracing::warn!("workspace folder {} is not a readable folder; ignored", path.display());
                None
            }
        })
        .collect()
}

/// Reports configuration problems, then opens each folder's store, starts its watcher and
/// indexes it in the background. Returns at once: the work runs in a task, since its requests to
/// the client (`workspace/configuration`, `client/registerCapability`) would otherwise hold the
/// handler, and tower-lsp-server waits for every handler before it lets the process exit; a reply
/// that comes after `exit` is never read.
pub(crate) async fn initialized(session: &Arc<Session>) {
    tokio::spawn(start(session.clone()));
}

async fn start(session: Arc<Session>) {
    let session = &session;
    if session.flags().configuration_pull {
        session.pull_configuration().await;
    }
    session.report_problems().await;
    if session.flags().watched_files_registration && session.config().indexing.watch.client() {
        super::workspace::register_watchers(session).await;
    }
    tokio::spawn(super::status::notifier(session.clone()));
    if let Some(pid) = session.flags().editor_pid {
        tokio::spawn(watch_editor(session.clone(), pid));
    }
    for folder in session.folders() {
        tokio::spawn(session.clone().start_folder(folder));
    }
}

/// The editor process is checked this often (spec/lsp.md §1.3).
const EDITOR_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Ends the server (writes flushed, exit code 1) when the editor that started it is gone.
async fn watch_editor(session: Arc<Session>, pid: u32) {
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    if !std::path::Path::new("/proc/self").exists() {
        return; // no procfs: nothing to check with
    }
    loop {
        tokio::time::sleep(EDITOR_CHECK).await;
        if session.shutdown_requested.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if !proc_dir.exists() {
            tracing::warn!("the editor (pid {pid}) is gone; writing pending changes and exiting");
            session.shutdown().await;
            std::process::exit(1);
        }
    }
}

pub(crate) async fn shutdown(session: &Arc<Session>) -> jsonrpc::Result<()> {
    session.shutdown().await;
    Ok(())
}
