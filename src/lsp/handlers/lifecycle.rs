//! `initialize`, `initialized` and `shutdown` (spec/lsp.md §1).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use tower_lsp_server::jsonrpc;

use crate::config::{Config, Problem};
use crate::lsp::convert::{self, Encoding};
use crate::lsp::lsp;
use crate::lsp::protocol::PROTOCOL_VERSION;
use crate::lsp::session::{Folder, Session};

/// Config problems listed in one message before "and N more".
const SHOWN_PROBLEMS: usize = 5;

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
    let first_root = folders.first().map(|f| f.root.clone());
    session.set_folders(folders);

    let options = params.initialization_options.clone().unwrap_or(serde_json::Value::Null);
    let loaded = tokio::task::spawn_blocking(move || {
        let mut shape = Vec::new();
        let options = match options {
            serde_json::Value::Object(_) | serde_json::Value::Null => options,
            serde_json::Value::Array(ref a) if a.is_empty() => serde_json::Value::Null,
            other => {
                shape.push(Problem {
                    source: "initializationOptions".into(),
                    key: String::new(),
                    message: format!("expected an object with the `aurora` settings, found {other}; ignored"),
                });
                serde_json::Value::Null
            }
        };
        Config::load_with_layers(first_root.as_deref(), &[("initializationOptions", options)]).map(|mut l| {
            shape.append(&mut l.problems);
            l.problems = shape;
            l
        })
    })
    .await;
    match loaded {
        Ok(Ok(loaded)) => {
            let problems = loaded
                .problems
                .into_iter()
                .map(|mut p| {
                    // Editor settings are spelled with the `aurora.` prefix (spec/lsp.md §7.3).
                    if p.source == "initializationOptions" && !p.key.is_empty() {
                        p.key = format!("aurora.{}", p.key);
                    }
                    p
                })
                .collect();
            session.set_config(loaded.config);
            *session.problems.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = problems;
        }
        Ok(Err(e)) => tracing::warn!("reading configuration: {e}; using defaults"),
        Err(e) => tracing::error!("reading configuration: {e}"),
    }
    *session.config_sources.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
        vec!["defaults".into(), "user file".into(), "folder file".into(), "initializationOptions".into()];

    let capabilities = lsp::ServerCapabilities {
        position_encoding: Some(enc.kind()),
        text_document_sync: Some(lsp::TextDocumentSyncCapability::Options(lsp::TextDocumentSyncOptions {
            open_close: Some(true),
            change: Some(lsp::TextDocumentSyncKind::INCREMENTAL),
            save: Some(lsp::TextDocumentSyncSaveOptions::SaveOptions(lsp::SaveOptions { include_text: Some(false) })),
            ..Default::default()
        })),
        workspace_symbol_provider: Some(lsp::OneOf::Left(true)),
        workspace: Some(lsp::WorkspaceServerCapabilities {
            workspace_folders: Some(lsp::WorkspaceFoldersServerCapabilities {
                supported: Some(true),
                change_notifications: None,
            }),
            file_operations: None,
        }),
        experimental: Some(json!({
            "aurora": {
                "protocolVersion": PROTOCOL_VERSION,
                "requests": ["aurora/search", "aurora/status"],
                "notifications": [],
                "partialResults": [],
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
/// indexes it in the background. Returns at once.
pub(crate) async fn initialized(session: &Arc<Session>) {
    let problems: Vec<String> = session
        .problems
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(ToString::to_string)
        .collect();
    for p in &problems {
        tracing::warn!("configuration: {p}");
    }
    if !problems.is_empty() {
        let mut message =
            format!("Aurora configuration: {}", problems[..problems.len().min(SHOWN_PROBLEMS)].join("; "));
        if problems.len() > SHOWN_PROBLEMS {
            message.push_str(&format!(" — and {} more; see Aurora: Show status", problems.len() - SHOWN_PROBLEMS));
        }
        let client = session.client.clone();
        tokio::spawn(async move { client.show_message(lsp::MessageType::WARNING, message).await });
    }
    for folder in session.folders() {
        tokio::spawn(session.clone().start_folder(folder));
    }
}

pub(crate) async fn shutdown(session: &Arc<Session>) -> jsonrpc::Result<()> {
    session.shutdown().await;
    Ok(())
}
