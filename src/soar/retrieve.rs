//! Phase 2 (spec/soar.md §4): code chunks for the query from the store, pinned editor context first,
//! and similar past reasoning patterns. Writes nothing.

use std::collections::HashSet;
use std::sync::Arc;

use rusqlite::Connection;

use crate::config::SoarConfig;
use crate::index::chunk::ChunkId;
use crate::memory::retrieve::{self as memory, RetrieveRequest, Retriever, ScoreBreakdown};
use crate::memory::tokenize::Tokenizer;
use crate::soar::types::{Complexity, ContextChunk, EditorContext, IndexFreshness, IndexHint, Plan, Warning, hex};
use crate::soar::workspace::{Workspace, line_count, slice_lines};
use crate::store::StoreError;
use crate::store::read::{self, ChunkRow};

/// Pinned chunks from a selection, at most.
const MAX_PINNED: usize = 3;
/// Lines around the cursor in a synthetic buffer chunk.
const CURSOR_WINDOW: u32 = 20;
/// Stored patterns examined for similarity.
const PATTERN_SCAN: usize = 500;

/// A past reasoning chunk similar to the query.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatternRef {
    pub id: String,
    pub pattern: String,
    pub complexity: Complexity,
    #[serde(skip)]
    pub plan: Option<Plan>,
    pub success_score: f64,
    pub base_level: f64,
    pub similarity: f64,
}

/// What phase 2 found.
#[derive(Clone, Debug, Default)]
pub struct RetrievedContext {
    /// Ranked, pinned first; at most `budget`.
    pub code: Vec<ContextChunk>,
    pub patterns: Vec<PatternRef>,
    pub budget: usize,
    pub pinned: usize,
    pub index: IndexFreshness,
    pub warnings: Vec<Warning>,
}

/// The chunk budget of a level.
pub fn budget(cfg: &SoarConfig, level: Complexity) -> usize {
    level.pick(&cfg.retrieval.budget).max(1) as usize
}

/// Runs phase 2 on the blocking pool.
pub async fn retrieve(
    ws: &Arc<Workspace>,
    cfg: &SoarConfig,
    query: &str,
    limit: usize,
    editor: Option<&EditorContext>,
    hint: IndexHint,
    deny: &[String],
) -> Result<RetrievedContext, StoreError> {
    let query = query.to_owned();
    let deny = deny.to_vec();
    let cfg = cfg.clone();
    let editor = editor.cloned();
    let stemming = ws.memory().tokenizer.stemming;
    let ws2 = Arc::clone(ws);
    ws.read(move |r| {
        let mut out = RetrievedContext { budget: limit, ..RetrievedContext::default() };
        let (indexed_files, any_chunk) = read::index_size(r.connection())?;
        out.index = IndexFreshness { partial: hint.partial, indexed_files, pending_files: hint.pending_files };
        if !any_chunk {
            out.warnings.push(Warning::new("indexEmpty", "workspace not indexed yet"));
        }
        if let Some(ed) = &editor {
            if crate::privacy::DenyList::new(std::path::Path::new(""), &deny).denies(&ed.path) {
                out.warnings.push(Warning::new(
                    "contextDenied",
                    format!("{} matches privacy.denyGlobs: its text was not sent", ed.path),
                ));
            } else {
                out.code = pinned(&ws2, r.connection(), ed)?;
                out.pinned = out.code.len();
            }
        }
        let rest = limit.saturating_sub(out.pinned);
        if rest > 0 && any_chunk {
            let mem_editor = editor.as_ref().map(memory_editor);
            let seen: HashSet<String> = out.code.iter().map(|c| c.chunk_id.clone()).collect();
            for c in ranked(r, &query, rest + seen.len(), mem_editor.as_ref())? {
                if out.code.len() >= limit {
                    break;
                }
                if !seen.contains(&c.chunk_id) {
                    out.code.push(c);
                }
            }
        }
        out.patterns = patterns(r.connection(), &cfg, &Tokenizer::new(stemming), &query)?;
        Ok(out)
    })
    .await
}

/// The memory layer's editor context for a SOAR one.
pub fn memory_editor(e: &EditorContext) -> memory::EditorContext {
    let (line, end_line) = match (e.selection, e.cursor) {
        (Some(s), _) => (s.start_line, Some(s.end_line)),
        (None, Some(c)) => (c.line, None),
        (None, None) => (0, None),
    };
    memory::EditorContext { file: e.path.clone(), line, end_line }
}

/// Hybrid retrieval (`memory::retrieve`) with each hit's text.
pub fn ranked(
    r: &mut Retriever,
    query: &str,
    limit: usize,
    editor: Option<&memory::EditorContext>,
) -> Result<Vec<ContextChunk>, StoreError> {
    let req = RetrieveRequest { query, limit: Some(limit), editor, ..RetrieveRequest::default() };
    let found = r.retrieve(&req)?;
    let mut out = Vec::with_capacity(found.hits.len());
    for hit in found.hits {
        let Some(content) = read::chunk_content(r.connection(), hit.chunk.id)? else { continue };
        out.push(context_chunk(&hit.chunk, content, hit.breakdown, false));
    }
    Ok(out)
}

/// A stored chunk as shown to a model.
pub fn context_chunk(row: &ChunkRow, content: String, score: ScoreBreakdown, pinned: bool) -> ContextChunk {
    ContextChunk {
        chunk_id: row.id.to_string(),
        file: row.file.clone(),
        kind: row.kind.as_str().to_owned(),
        qualified_name: row.qualified_name.clone(),
        signature: row.signature.clone(),
        docstring: row.docstring.clone(),
        start_line: row.start_line,
        end_line: row.end_line,
        content: Arc::from(content),
        content_hash: hex(&row.content_hash),
        score,
        pinned,
    }
}

/// Whether the stored copy of `path` has exactly `text`.
fn store_matches(conn: &Connection, path: &str, text: &str) -> Result<bool, StoreError> {
    let stored = read::file(conn, path)?;
    Ok(stored.and_then(|f| f.content_hash).is_some_and(|h| h[..] == blake3::hash(text.as_bytes()).as_bytes()[..]))
}

/// The editor's chunks: those overlapping the selection (innermost first, at most 3), or the innermost
/// one holding the cursor. Text newer than the store gives one synthetic `buffer:` chunk instead.
fn pinned(ws: &Workspace, conn: &Connection, ed: &EditorContext) -> Result<Vec<ContextChunk>, StoreError> {
    let (start, end) = match (ed.selection, ed.cursor) {
        (Some(s), _) => (s.start_line, s.end_line),
        (None, Some(c)) => (c.line, c.line),
        (None, None) => return Ok(Vec::new()),
    };
    let buffer = ed.buffer_text.clone().or_else(|| ws.document(&ed.path).map(|d| d.text));
    let fresh = match &buffer {
        Some(text) => store_matches(conn, &ed.path, text)?,
        None => read::file(conn, &ed.path)?.is_some(),
    };
    if fresh {
        let mut rows: Vec<ChunkRow> = read::chunks_of_file(conn, &ed.path)?
            .into_iter()
            .filter(|c| c.start_line <= end && c.end_line >= start && c.kind.as_str() != "module")
            .collect();
        rows.sort_by_key(|c| (c.end_line - c.start_line, c.start_line));
        rows.truncate(if ed.selection.is_some() { MAX_PINNED } else { 1 });
        let mut out = Vec::new();
        for row in rows {
            if let Some(content) = read::chunk_content(conn, row.id)? {
                out.push(context_chunk(&row, content, ScoreBreakdown::default(), true));
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
    }
    // The store does not know this text (unsaved, or not indexed): show the selection itself.
    let (text, first, last) = match (&buffer, &ed.selection_text) {
        (Some(text), _) => {
            let n = line_count(text).max(1);
            let (first, last) = if ed.selection.is_some() {
                (start.min(n - 1), end.min(n - 1))
            } else {
                (start.saturating_sub(CURSOR_WINDOW).min(n - 1), (end + CURSOR_WINDOW).min(n - 1))
            };
            (slice_lines(text, first, last), first, last)
        }
        (None, Some(sel)) => (sel.clone(), start, end),
        (None, None) => return Ok(Vec::new()),
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![ContextChunk {
        chunk_id: format!("buffer:{}:{}-{}", ed.path, first + 1, last + 1),
        file: ed.path.clone(),
        kind: "selection".into(),
        qualified_name: ed.path.rsplit('/').next().unwrap_or(&ed.path).to_owned(),
        signature: None,
        docstring: None,
        start_line: first,
        end_line: last,
        content_hash: hex(&blake3::hash(text.as_bytes()).as_bytes()[..16]),
        content: Arc::from(text),
        score: ScoreBreakdown::default(),
        pinned: true,
    }])
}

/// Token set of a text for pattern similarity.
fn token_set(tok: &Tokenizer, text: &str) -> HashSet<String> {
    tok.tokens(text).into_iter().collect()
}

/// Jaccard similarity of two token sets.
pub fn jaccard(a: &HashSet<String>, b: &HashSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

/// Similar reasoning patterns (§4 step 4): Jaccard ≥ the minimum, rank with activation ≥ 0.5, best first.
fn patterns(conn: &Connection, cfg: &SoarConfig, tok: &Tokenizer, query: &str) -> Result<Vec<PatternRef>, StoreError> {
    let q = token_set(tok, query);
    let mut found: Vec<(f64, PatternRef)> = Vec::new();
    for row in crate::store::soar::reasoning_recent(conn, PATTERN_SCAN)? {
        let sim = jaccard(&q, &token_set(tok, &row.pattern));
        if sim < cfg.retrieval.pattern_min_similarity {
            continue;
        }
        let rank = sim + cfg.retrieval.pattern_activation_weight * row.base_level;
        if rank < 0.5 {
            continue;
        }
        let Some(complexity) = Complexity::parse(&row.complexity) else { continue };
        found.push((
            rank,
            PatternRef {
                id: row.id,
                pattern: row.pattern,
                complexity,
                plan: serde_json::from_str::<crate::soar::decompose::RawPlan>(&row.plan_json)
                    .ok()
                    .map(|raw| raw.into_plan(1, crate::soar::types::PlanSource::Llm)),
                success_score: row.success_score,
                base_level: row.base_level,
                similarity: sim,
            },
        ));
    }
    found.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    found.truncate(cfg.retrieval.max_patterns as usize);
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// Parses a chunk id shown to a model (16 hex digits).
pub fn chunk_id(text: &str) -> Option<ChunkId> {
    ChunkId::parse(text.trim().trim_start_matches("chunk").trim())
}
