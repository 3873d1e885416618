//! Workspace notifications (state handlers): configuration changes (spec/lsp.md §7.1), the
//! client's file watcher (§3.1–3.2) and workspace folder changes (§1.4).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use crate::lsp::convert;
use crate::lsp::lsp;
use crate::lsp::session::{ConfigLayer, Folder, Session};

/// Ignore files whose change re-evaluates what a folder indexes.
const IGNORE_FILES: [&str; 3] = [".gitignore", ".auroraignore", ".ignore"];

/// Registers `workspace/didChangeWatchedFiles` (spec/lsp.md §3.2).
pub(crate) async fn register_watchers(session: &Arc<Session>) {
    let options = json!({ "watchers": [
        { "globPattern": "**/*.{py,pyi}" },
        { "globPattern": "**/{.gitignore,.auroraignore,.ignore}" },
        { "globPattern": "**/.aurora/config.toml" },
        { "globPattern": "**/*", "kind": 4 },
    ] });
    let registration = lsp::Registration {
        id: "aurora-watch".into(),
        method: "workspace/didChangeWatchedFiles".into(),
        register_options: Some(options),
    };
    if let Err(e) = session.client.register_capability(vec![registration]).await {
        tracing::warn!("registering the client file watcher failed: {e}; the server's own watcher remains");
    }
}

/// Re-reads the configuration: pulled again when the client answers `workspace/configuration`,
/// else taken from `settings.aurora` (or `settings` itself). Indexing changes reconcile folders.
pub(crate) async fn did_change_configuration(session: &Arc<Session>, params: lsp::DidChangeConfigurationParams) {
    if session.flags().configuration_pull {
        session.pull_configuration().await;
    } else {
        let settings = match params.settings {
            serde_json::Value::Object(mut map) if map.contains_key("aurora") => {
                map.remove("aurora").unwrap_or_default()
            }
            other => other,
        };
        session.set_layer(ConfigLayer::EditorSettings, settings);
    }
    reload(session).await;
}

/// Rebuilds the configuration from every source and applies what changed.
async fn reload(session: &Arc<Session>) {
    let before = session.config();
    let s = session.clone();
    let changed = match tokio::task::spawn_blocking(move || s.reload_config()).await {
        Ok(changed) => changed,
        Err(e) => {
            tracing::error!("reloading configuration: {e}");
            return;
        }
    };
    session.report_problems().await;
    if changed && before.indexing != session.config().indexing {
        tracing::info!("indexing settings changed; reconciling every folder");
        for folder in session.folders() {
            tokio::spawn(session.clone().index_pass(folder));
        }
    }
}

/// Changes seen by the client's watcher join the server's own: one routine applies both, and a
/// change already applied costs a stat and a hash at most.
pub(crate) async fn did_change_watched_files(session: &Arc<Session>, params: lsp::DidChangeWatchedFilesParams) {
    if !session.config().indexing.watch.client() {
        return;
    }
    let folders = session.folders();
    let mut paths: HashMap<PathBuf, (Arc<Folder>, Vec<PathBuf>)> = HashMap::new();
    let mut reconcile: Vec<Arc<Folder>> = Vec::new();
    let mut config_changed = false;
    for change in params.changes {
        let Some(path) = convert::uri_to_path(&change.uri) else { continue };
        let Some(folder) = folders.iter().find(|f| path.starts_with(&f.root)) else { continue };
        let Some(rel) = folder.relative(&path) else { continue };
        if rel == ".aurora/config.toml" {
            config_changed = true;
        } else if IGNORE_FILES.iter().any(|n| rel == *n || rel.ends_with(&format!("/{n}"))) {
            if !reconcile.iter().any(|f| Arc::ptr_eq(f, folder)) {
                reconcile.push(folder.clone());
            }
        } else {
            paths.entry(folder.root.clone()).or_insert_with(|| (folder.clone(), Vec::new())).1.push(path);
        }
    }
    if config_changed {
        reload(session).await;
    }
    for (_, (folder, changed)) in paths {
        if reconcile.iter().any(|f| Arc::ptr_eq(f, &folder)) {
            continue;
        }
        let s = session.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || s.apply_disk_changes(&folder, changed)).await {
            tracing::error!("applying client file events: {e}");
        }
    }
    for folder in reconcile {
        tracing::info!("an ignore file changed in {}; reconciling", folder.name);
        tokio::spawn(session.clone().index_pass(folder));
    }
}

/// Removed folders are closed (index kept on disk); added ones are opened and indexed.
pub(crate) async fn did_change_workspace_folders(session: &Arc<Session>, params: lsp::DidChangeWorkspaceFoldersParams) {
    for gone in params.event.removed {
        let Some(path) = convert::uri_to_path(&gone.uri) else { continue };
        let root = path.canonicalize().unwrap_or(path);
        match session.remove_folder(&root) {
            Some(folder) => {
                tracing::info!("workspace folder {} removed", folder.name);
                session.close_folder(folder).await;
            }
            None => tracing::debug!("removed folder {} was not served", root.display()),
        }
    }
    for added in params.event.added {
        let Some(path) = convert::uri_to_path(&added.uri) else { continue };
        let root = match path.canonicalize() {
            Ok(root) if root.is_dir() => root,
            _ => {
                tracing::warn!("workspace folder {} is not a readable folder; ignored", path.display());
                continue;
            }
        };
        if let Some(folder) = session.add_folder(Folder::new(root, added.uri.as_str().to_owned())) {
            tracing::info!("workspace folder {} added", folder.name);
            tokio::spawn(session.clone().start_folder(folder));
        }
    }
}
