//! `workspace/symbol` (snapshot, spec/lsp.md §5.1): chunk names from the index, no LLM.

use std::sync::Arc;

use tower_lsp_server::jsonrpc;

use crate::index::chunk::ChunkKind;
use crate::lsp::handlers::search::{Texts, chunk_location};
use crate::lsp::lsp;
use crate::lsp::session::{Folder, Session};
use crate::memory::retrieve::{RetrieveRequest, Retriever};
use crate::store::read::{self, ChunkRow};

const METHOD: &str = "workspace/symbol";
/// At most this many symbols per answer.
const MAX_SYMBOLS: usize = 100;

pub(crate) async fn symbols(
    session: &Arc<Session>,
    params: lsp::WorkspaceSymbolParams,
) -> jsonrpc::Result<Option<lsp::WorkspaceSymbolResponse>> {
    let config = session.config();
    if !config.search.workspace_symbols || session.folders().is_empty() {
        return Ok(Some(lsp::WorkspaceSymbolResponse::Flat(Vec::new())));
    }
    session.flush_all().await;
    let s = session.clone();
    let query = params.query.trim().to_owned();
    super::blocking(METHOD, move || {
        let enc = s.encoding();
        let mut rows: Vec<(Arc<Folder>, ChunkRow)> = Vec::new();
        for folder in s.folders() {
            let Ok(conn) = crate::store::open_reader(&folder.store) else { continue };
            let found = if query.is_empty() {
                read::recently_used(&conn, MAX_SYMBOLS).and_then(|ids| read::chunk_rows(&conn, &ids))
            } else {
                let mut retriever = Retriever::new(conn, &config.memory);
                let req = RetrieveRequest {
                    query: &query,
                    limit: Some(MAX_SYMBOLS),
                    max_per_file: Some(0),
                    ..RetrieveRequest::default()
                };
                retriever.retrieve(&req).map(|r| r.hits.into_iter().map(|h| h.chunk).collect())
            };
            match found {
                Ok(found) => rows.extend(found.into_iter().map(|r| (folder.clone(), r))),
                Err(e) => tracing::warn!("{METHOD} in {}: {e}", folder.name),
            }
        }
        // Exact, then prefix matches on the name first; the ranking's order otherwise.
        let q = query.to_lowercase();
        let rank = |c: &ChunkRow| {
            let (name, qn) = (c.name.to_lowercase(), c.qualified_name.to_lowercase());
            if q.is_empty() || name == q || qn == q {
                0
            } else if name.starts_with(&q) || qn.starts_with(&q) {
                1
            } else {
                2
            }
        };
        rows.sort_by_key(|(_, c)| rank(c));
        rows.truncate(MAX_SYMBOLS);
        let mut texts = Texts::new(&s);
        let mut out = Vec::with_capacity(rows.len());
        for (folder, c) in rows {
            let Some((uri, mut range, _)) = chunk_location(&mut texts, &folder, &c, enc) else { continue };
            // Navigation lands on the `def`/`class` line, not on a decorator.
            if c.def_line > range.start.line {
                range.start = lsp::Position { line: c.def_line, character: 0 };
            }
            let container = match c.qualified_name.rsplit_once('.') {
                Some((parent, _)) if c.kind != ChunkKind::Module => parent.to_owned(),
                _ => c.file.clone(),
            };
            #[allow(deprecated)] // `deprecated` is a field every SymbolInformation must carry
            out.push(lsp::SymbolInformation {
                name: c.name.clone(),
                kind: match c.kind {
                    ChunkKind::Function => lsp::SymbolKind::FUNCTION,
                    ChunkKind::Method => lsp::SymbolKind::METHOD,
                    ChunkKind::Class => lsp::SymbolKind::CLASS,
                    ChunkKind::Module => lsp::SymbolKind::MODULE,
                },
                tags: None,
                deprecated: None,
                location: lsp::Location { uri, range },
                container_name: Some(container),
            });
        }
        Ok(Some(lsp::WorkspaceSymbolResponse::Flat(out)))
    })
    .await
}
