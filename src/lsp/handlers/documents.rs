//! Text synchronisation (state handlers, spec/lsp.md §2): each change is applied before the
//! handler's first `.await`, so changes keep the order in which they arrived. The store write is
//! debounced; searches flush it first.

use std::sync::Arc;

use crate::lsp::lsp;
use crate::lsp::session::Session;

pub(crate) async fn did_open(session: &Arc<Session>, params: lsp::DidOpenTextDocumentParams) {
    let doc = params.text_document;
    let target = session.target_for(&doc.uri);
    let indexed = target.is_some();
    session.documents.open(&doc.uri, doc.version, doc.text, target);
    if indexed {
        // The buffer is authoritative while open; an unchanged text rewrites nothing but its row.
        session.schedule_write(doc.uri.as_str().to_owned(), 1);
    }
}

pub(crate) async fn did_change(session: &Arc<Session>, params: lsp::DidChangeTextDocumentParams) {
    let uri = params.text_document.uri;
    match session.documents.change(&uri, params.text_document.version, params.content_changes, session.encoding()) {
        Ok(Some(changes)) => {
            if session.documents.target(uri.as_str()).is_some() {
                session.schedule_write(uri.as_str().to_owned(), changes);
            }
        }
        Ok(None) => tracing::warn!("didChange for {} which is not open; ignored", uri.as_str()),
        Err(_) => {
            tracing::error!(
                "a change to {} (version {}) lies outside its text: the copy is out of sync",
                uri.as_str(),
                params.text_document.version
            );
            let name = crate::lsp::convert::uri_to_path(&uri)
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| uri.as_str().to_owned());
            session
                .client
                .show_message(
                    lsp::MessageType::WARNING,
                    format!("Aurora lost track of the text of {name}; close and reopen the file"),
                )
                .await;
        }
    }
}

pub(crate) async fn did_save(session: &Arc<Session>, params: lsp::DidSaveTextDocumentParams) {
    let uri = params.text_document.uri.as_str().to_owned();
    let s = session.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || s.flush_blocking(Some(&uri))).await {
        tracing::error!("writing a saved buffer: {e}");
    }
}

pub(crate) async fn did_close(session: &Arc<Session>, params: lsp::DidCloseTextDocumentParams) {
    // Dropped first, so a watcher event from now on reads the disk; then the disk wins.
    let Some(doc) = session.documents.close(&params.text_document.uri) else { return };
    if let Some(target) = doc.target {
        session.reconcile_file(target).await;
    }
}
