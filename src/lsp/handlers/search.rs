//! `aurora/search` (snapshot, spec/lsp.md §4.3): hybrid retrieval over every folder's store,
//! after flushing pending buffer writes so the results reflect the latest text.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tower_lsp_server::jsonrpc;

use crate::index::chunk::ChunkKind;
use crate::lsp::convert::{self, Encoding, LineIndex};
use crate::lsp::lsp;
use crate::lsp::protocol::{self, Breakdown, SearchItem, SearchParams, SearchResult, index_not_ready, invalid_params};
use crate::lsp::session::{Folder, FolderState, Session};
use crate::memory::retrieve::{EditorContext, Hit, RetrieveRequest, Retriever};
use crate::store::read::ChunkRow;

const METHOD: &str = "aurora/search";
/// With `paths` globs, this many times `limit` candidates are ranked before filtering.
const PATH_FILTER_OVERFETCH: usize = 5;

pub(crate) async fn search(session: &Arc<Session>, params: Value) -> jsonrpc::Result<SearchResult> {
    let started = Instant::now();
    let params = parse(params)?;
    let query = params.query.clone().unwrap_or_default();
    let query = query.trim().to_owned();
    if query.is_empty() || query.chars().count() > 1000 {
        return Err(invalid_params("aurora/search: `query` must be 1 to 1000 characters."));
    }
    let config = session.config();
    let limit = match &params.limit {
        None | Some(Value::Null) => config.memory.retrieval.limit.clamp(1, 100),
        Some(v) => match v.as_f64() {
            Some(n) if n.fract() == 0.0 && (1.0..=100.0).contains(&n) => n as usize,
            _ => return Err(invalid_params("aurora/search: `limit` must be between 1 and 100.")),
        },
    };
    let mut kinds = Vec::new();
    for k in params.kinds.iter().flatten() {
        match ChunkKind::parse(k) {
            Some(kind) => kinds.push(kind),
            None => return Err(invalid_params(format!("aurora/search: `kinds` has an unknown kind {k:?}."))),
        }
    }
    if (params.position.is_some()) && params.text_document.is_none() {
        return Err(invalid_params("aurora/search: `position` requires `textDocument`."));
    }
    let folders = session.folders();
    if folders.is_empty() {
        return Err(index_not_ready("Aurora has no workspace folder to search; open a folder.", "noWorkspace"));
    }
    session.flush_all().await;

    let enc = session.encoding();
    let context = params.text_document.as_ref().and_then(|doc| {
        let target = session.target_for(&doc.uri)?;
        let line = params.position.map_or(0, |p| p.line);
        Some((target, line))
    });
    let s = session.clone();
    let paths = params.paths.clone().unwrap_or_default();
    let mut result = super::blocking(METHOD, move || {
        let mut partial = false;
        let mut any_store = false;
        let mut hits: Vec<(Arc<Folder>, Hit)> = Vec::new();
        for folder in &folders {
            let state = folder.state();
            partial |= matches!(state, FolderState::Indexing | FolderState::Opening);
            let Ok(conn) = folder.reader() else { continue };
            any_store = true;
            let filter = path_filter(&folder.root, &paths).map_err(invalid_params)?;
            let editor = context
                .as_ref()
                .filter(|(t, _)| Arc::ptr_eq(&t.folder, folder))
                .map(|(t, line)| EditorContext { file: t.rel.clone(), line: *line, end_line: None });
            let fetch = if filter.is_some() { (limit * PATH_FILTER_OVERFETCH).min(500) } else { limit };
            let mut retriever = Retriever::new(conn, &config.memory);
            let req = RetrieveRequest {
                query: &query,
                limit: Some(fetch),
                editor: editor.as_ref(),
                kinds: (!kinds.is_empty()).then_some(&kinds[..]),
                path_prefix: None,
                max_per_file: None,
                now_ms: None,
            };
            let found = retriever.retrieve(&req).map_err(|e| {
                tracing::error!("{METHOD} in {}: {e}", folder.name);
                protocol::internal_error(METHOD)
            })?;
            folder.give_back(retriever.into_connection());
            hits.extend(
                found
                    .hits
                    .into_iter()
                    .filter(|h| filter.as_ref().is_none_or(|f| f.matched(&h.chunk.file, false).is_whitelist()))
                    .map(|h| (folder.clone(), h)),
            );
        }
        if !any_store {
            return Err(index_not_ready("The index is still being opened; try again in a moment.", "opening"));
        }
        hits.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
        hits.truncate(limit);
        let results = locate(&s, &hits, enc);
        Ok(SearchResult { results, partial, index_generation: s.generation(), took_ms: 0 })
    })
    .await?;
    result.took_ms = started.elapsed().as_millis() as u64;
    Ok(result)
}

/// Params absent, `null`, `{}` or `[]` count as an empty object (spec/lsp.md §0.5).
fn parse(params: Value) -> jsonrpc::Result<SearchParams> {
    match params {
        Value::Null => Ok(SearchParams::default()),
        Value::Array(a) if a.is_empty() => Ok(SearchParams::default()),
        other => serde_json::from_value(other).map_err(|e| invalid_params(format!("aurora/search: {e}"))),
    }
}

/// `paths` globs as an override matcher (whitelist), `None` when there are none.
fn path_filter(root: &std::path::Path, paths: &[String]) -> Result<Option<ignore::overrides::Override>, String> {
    if paths.is_empty() {
        return Ok(None);
    }
    let mut builder = ignore::overrides::OverrideBuilder::new(root);
    for p in paths {
        builder.add(p).map_err(|e| format!("aurora/search: `paths` has a bad glob {p:?}: {e}"))?;
    }
    builder.build().map(Some).map_err(|e| format!("aurora/search: `paths`: {e}"))
}

/// A file as positions are computed from it: `(uri, text, line index)`.
pub(crate) type FileText = (String, String, LineIndex);

/// Texts of files by relative path: the open buffer if any, else the file on disk.
pub(crate) struct Texts<'a> {
    session: &'a Session,
    /// Keyed by folder (its address) and relative path; `None` when the file cannot be read.
    cache: HashMap<(usize, String), Option<FileText>>,
}

impl<'a> Texts<'a> {
    pub fn new(session: &'a Session) -> Texts<'a> {
        Texts { session, cache: HashMap::new() }
    }

    /// `(uri, text, line index)` of a chunk's file.
    pub fn get(&mut self, folder: &Arc<Folder>, rel: &str) -> Option<&FileText> {
        let key = (Arc::as_ptr(folder) as usize, rel.to_owned());
        let session = self.session;
        self.cache
            .entry(key)
            .or_insert_with(|| {
                let (uri, text) = match session.documents.by_path(folder, rel) {
                    Some(open) => open,
                    None => {
                        let text = std::fs::read(folder.root.join(rel)).ok()?;
                        let uri = convert::join_uri(&folder.uri, rel)?;
                        (uri.as_str().to_owned(), String::from_utf8_lossy(&text).into_owned())
                    }
                };
                let index = LineIndex::new(&text);
                Some((uri, text, index))
            })
            .as_ref()
    }
}

/// The range of a chunk from its byte offsets; from its stored lines when the text is gone.
pub(crate) fn chunk_location(
    texts: &mut Texts<'_>,
    folder: &Arc<Folder>,
    c: &ChunkRow,
    enc: Encoding,
) -> Option<(lsp::Uri, lsp::Range, lsp::Range)> {
    match texts.get(folder, &c.file) {
        Some((uri, text, index)) => {
            let range = convert::chunk_range(text, index, c.start_byte as usize, c.end_byte as usize, enc);
            let name = convert::byte_range(text, index, c.name_byte as usize, c.name.len(), enc);
            Some((uri.parse().ok()?, range, name))
        }
        None => {
            let uri = convert::join_uri(&folder.uri, &c.file)?;
            let at = |line: u32| lsp::Position { line, character: 0 };
            Some((
                uri,
                lsp::Range { start: at(c.start_line), end: at(c.end_line + 1) },
                lsp::Range { start: at(c.def_line), end: at(c.def_line) },
            ))
        }
    }
}

fn locate(session: &Session, hits: &[(Arc<Folder>, Hit)], enc: Encoding) -> Vec<SearchItem> {
    let mut texts = Texts::new(session);
    let mut out = Vec::with_capacity(hits.len());
    for (folder, hit) in hits {
        let c = &hit.chunk;
        let Some((uri, range, selection_range)) = chunk_location(&mut texts, folder, c, enc) else { continue };
        let b = &hit.breakdown;
        out.push(SearchItem {
            location: lsp::Location { uri, range },
            selection_range,
            name: c.name.clone(),
            qualified_name: c.qualified_name.clone(),
            kind: c.kind.as_str().to_owned(),
            chunk_id: c.id.to_string(),
            signature: c.signature.clone(),
            score: hit.score,
            breakdown: Breakdown {
                bm25: b.lexical.clamp(0.0, 1.0),
                activation: b.activation.clamp(0.0, 1.0),
                spreading: b.spreading.clamp(0.0, 1.0),
                context_boost: b.context_boost.clamp(0.0, 1.0),
            },
        });
    }
    out
}
