//! Read queries over a store connection: file states for change detection, candidates and rows
//! for retrieval, access history, edges and status counts.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::StoreError;
use crate::index::chunk::{ChunkId, ChunkKind};

/// The access history of one chunk, as kept by the store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// The kept access times (epoch ms), any order; at most `max_history`.
    pub kept_ms: Vec<i64>,
    /// Every access ever, pruned ones included.
    pub count: u64,
    /// The first access ever (epoch ms).
    pub first_ms: i64,
}

impl History {
    pub fn is_empty(&self) -> bool {
        self.count == 0 || self.kept_ms.is_empty()
    }

    pub fn last_ms(&self) -> Option<i64> {
        self.kept_ms.iter().copied().max()
    }
}

/// A stored `files` row, as change detection needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFile {
    pub size: u64,
    pub mtime_ns: i64,
    pub content_hash: Option<Vec<u8>>,
    pub buffer_origin: bool,
    pub status: String,
    pub reason: Option<String>,
    pub indexed_at: i64,
}

/// The half-open key range `[prefix/, prefix0)` of paths under `prefix` (`'0'` follows `'/'`),
/// or everything for an empty prefix.
fn scope_bounds(prefix: &str) -> (String, String) {
    if prefix.is_empty() {
        (String::new(), "\u{10FFFF}".to_owned())
    } else {
        (format!("{prefix}/"), format!("{prefix}0"))
    }
}

/// The stored files under `prefix` (a folder path relative to the root; `""` for everything).
pub fn files_under(conn: &Connection, prefix: &str) -> Result<HashMap<String, StoredFile>, StoreError> {
    let (lo, hi) = scope_bounds(prefix);
    let mut stmt = conn.prepare_cached(
        "SELECT path, size, mtime_ns, content_hash, origin, status, reason, indexed_at FROM files \
         WHERE path >= ?1 AND path < ?2",
    )?;
    let rows = stmt.query_map([lo, hi], |r| {
        Ok((
            r.get::<_, String>(0)?,
            StoredFile {
                size: r.get::<_, i64>(1)? as u64,
                mtime_ns: r.get(2)?,
                content_hash: r.get(3)?,
                buffer_origin: r.get::<_, String>(4)? == "buffer",
                status: r.get(5)?,
                reason: r.get(6)?,
                indexed_at: r.get(7)?,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One stored file, if any.
pub fn file(conn: &Connection, path: &str) -> Result<Option<StoredFile>, StoreError> {
    let mut all = files_under(conn, "")?;
    Ok(all.remove(path))
}

/// A chunk row without its content: what a search hit shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkRow {
    pub id: ChunkId,
    pub file: String,
    pub kind: ChunkKind,
    pub name: String,
    pub qualified_name: String,
    pub signature: Option<String>,
    pub docstring: Option<String>,
    pub start_byte: u64,
    pub end_byte: u64,
    pub start_line: u32,
    pub end_line: u32,
    pub def_line: u32,
    pub name_byte: u64,
    pub content_hash: Vec<u8>,
    pub parse_partial: bool,
    pub stale: bool,
}

const ROW_COLUMNS: &str = "id, file_path, kind, name, qualified_name, signature, docstring, start_byte, end_byte, \
     start_line, end_line, def_line, name_byte, content_hash, parse_partial, stale";

fn chunk_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChunkRow> {
    let kind: String = r.get(2)?;
    Ok(ChunkRow {
        id: ChunkId(r.get(0)?),
        file: r.get(1)?,
        kind: ChunkKind::parse(&kind).unwrap_or(ChunkKind::Module),
        name: r.get(3)?,
        qualified_name: r.get(4)?,
        signature: r.get(5)?,
        docstring: r.get(6)?,
        start_byte: r.get::<_, i64>(7)? as u64,
        end_byte: r.get::<_, i64>(8)? as u64,
        start_line: r.get(9)?,
        end_line: r.get(10)?,
        def_line: r.get(11)?,
        name_byte: r.get::<_, i64>(12)? as u64,
        content_hash: r.get(13)?,
        parse_partial: r.get(14)?,
        stale: r.get(15)?,
    })
}

/// The rows of `ids` that exist (any order).
pub fn chunk_rows(conn: &Connection, ids: &[ChunkId]) -> Result<Vec<ChunkRow>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    let mut stmt = conn.prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM chunks WHERE id = ?1"))?;
    for id in ids {
        if let Some(row) = stmt.query_row([id.0], chunk_row).optional()? {
            out.push(row);
        }
    }
    Ok(out)
}

/// Every chunk of one file, in document order.
pub fn chunks_of_file(conn: &Connection, path: &str) -> Result<Vec<ChunkRow>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM chunks WHERE file_path = ?1 ORDER BY start_byte, depth"))?;
    let rows = stmt.query_map([path], chunk_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The content of one chunk.
pub fn chunk_content(conn: &Connection, id: ChunkId) -> Result<Option<String>, StoreError> {
    Ok(conn.prepare_cached("SELECT content FROM chunks WHERE id = ?1")?.query_row([id.0], |r| r.get(0)).optional()?)
}

/// Number of chunks in the store.
pub fn chunk_count(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.prepare_cached("SELECT count(*) FROM chunks")?.query_row([], |r| r.get::<_, i64>(0))? as u64)
}

/// Number of chunks whose FTS document holds `term` (0 when none).
pub fn document_frequency(conn: &Connection, term: &str) -> Result<u64, StoreError> {
    let df: Option<i64> = conn
        .prepare_cached("SELECT doc FROM chunks_fts_vocab WHERE term = ?1")?
        .query_row([term], |r| r.get(0))
        .optional()?;
    Ok(df.unwrap_or(0) as u64)
}

/// Filters that apply inside every retrieval channel.
#[derive(Clone, Debug, Default)]
pub struct Filter<'a> {
    pub kinds: Option<&'a [ChunkKind]>,
    /// A folder (`src`) or file path relative to the root.
    pub path_prefix: Option<&'a str>,
}

impl Filter<'_> {
    /// SQL conditions on `chunks` (aliased `c`) and their parameters, appended after `first_param`.
    fn sql(&self, first_param: usize) -> (String, Vec<String>) {
        let mut cond = String::new();
        let mut params = Vec::new();
        if let Some(kinds) = self.kinds.filter(|k| !k.is_empty()) {
            let marks: Vec<String> = (0..kinds.len()).map(|i| format!("?{}", first_param + i)).collect();
            cond.push_str(&format!(" AND c.kind IN ({})", marks.join(", ")));
            params.extend(kinds.iter().map(|k| k.as_str().to_owned()));
        }
        if let Some(prefix) = self.path_prefix.map(|p| p.trim_end_matches('/')).filter(|p| !p.is_empty()) {
            let n = first_param + params.len();
            let (lo, hi) = scope_bounds(prefix);
            cond.push_str(&format!(
                " AND (c.file_path = ?{n} OR (c.file_path >= ?{} AND c.file_path < ?{}))",
                n + 1,
                n + 2
            ));
            params.extend([prefix.to_owned(), lo, hi]);
        }
        (cond, params)
    }
}

/// FTS candidates for a MATCH expression: `(id, bm25)` with bm25 as FTS5 returns it (more negative
/// is better), best first.
pub fn fts_candidates(
    conn: &Connection,
    match_expr: &str,
    column_weights: [f64; 6],
    filter: &Filter<'_>,
    limit: usize,
) -> Result<Vec<(ChunkId, f64)>, StoreError> {
    let w = column_weights;
    let (cond, extra) = filter.sql(3);
    let join = if cond.is_empty() { "" } else { " JOIN chunks c ON c.id = chunks_fts.rowid" };
    let sql = format!(
        "SELECT chunks_fts.rowid, bm25(chunks_fts, {}, {}, {}, {}, {}, {}) AS score FROM chunks_fts{join} \
         WHERE chunks_fts MATCH ?1{cond} ORDER BY score LIMIT ?2",
        w[0], w[1], w[2], w[3], w[4], w[5]
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut values: Vec<rusqlite::types::Value> = vec![match_expr.to_owned().into(), (limit as i64).into()];
    values.extend(extra.into_iter().map(Into::into));
    let rows = stmt.query_map(params_from_iter(values), |r| Ok((ChunkId(r.get(0)?), r.get::<_, f64>(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Chunks whose `name` (or, with `qualified`, `qualified_name`) equals `name`, case-insensitively.
pub fn chunks_named(
    conn: &Connection,
    name: &str,
    qualified: bool,
    filter: &Filter<'_>,
    limit: usize,
) -> Result<Vec<ChunkId>, StoreError> {
    let column = if qualified { "qualified_name" } else { "name" };
    let (cond, extra) = filter.sql(3);
    let sql = format!("SELECT c.id FROM chunks c WHERE c.{column} = ?1 COLLATE NOCASE{cond} ORDER BY c.id LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut values: Vec<rusqlite::types::Value> = vec![name.to_owned().into(), (limit as i64).into()];
    values.extend(extra.into_iter().map(Into::into));
    let rows = stmt.query_map(params_from_iter(values), |r| Ok(ChunkId(r.get(0)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Chunks `qualified_name` in a file whose dotted module ends with `module` (`src/` layouts).
pub fn chunks_by_module_path(
    conn: &Connection,
    module: &str,
    qualified_name: &str,
    limit: usize,
) -> Result<Vec<ChunkId>, StoreError> {
    let mut stmt = conn.prepare_cached(
        // Driven by the qualified-name index (hence NOCASE and CROSS JOIN), not by a scan of files.
        "SELECT c.id FROM chunks c CROSS JOIN files f ON f.path = c.file_path \
         WHERE c.qualified_name = ?2 COLLATE NOCASE AND c.qualified_name = ?2 \
         AND (f.module = ?1 OR f.module LIKE '%.' || ?1) ORDER BY c.id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![module, qualified_name, limit as i64], |r| Ok(ChunkId(r.get(0)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The access histories of `ids` (missing ids have none).
pub fn histories(conn: &Connection, ids: &[ChunkId]) -> Result<HashMap<ChunkId, History>, StoreError> {
    let mut out = HashMap::new();
    let mut stats = conn.prepare_cached("SELECT count, first_at FROM access_stats WHERE chunk_id = ?1")?;
    let mut log = conn.prepare_cached("SELECT at FROM access_log WHERE chunk_id = ?1")?;
    for id in ids {
        let Some((count, first_ms)) =
            stats.query_row([id.0], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))).optional()?
        else {
            continue;
        };
        let kept_ms = log.query_map([id.0], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
        out.insert(*id, History { kept_ms, count: count as u64, first_ms });
    }
    Ok(out)
}

/// Chunks with an access of one of `kinds` at or after `since_ms`, newest first.
pub fn accessed_since(
    conn: &Connection,
    since_ms: i64,
    kinds: &[&str],
    limit: usize,
) -> Result<Vec<ChunkId>, StoreError> {
    let marks: Vec<String> = (0..kinds.len()).map(|i| format!("?{}", i + 3)).collect();
    let sql = format!(
        "SELECT l.chunk_id FROM access_log l CROSS JOIN chunks c ON c.id = l.chunk_id WHERE l.at >= ?1 AND l.kind IN ({}) \
         GROUP BY l.chunk_id ORDER BY max(l.at) DESC LIMIT ?2",
        marks.join(", ")
    );
    let mut values: Vec<rusqlite::types::Value> = vec![since_ms.into(), (limit as i64).into()];
    values.extend(kinds.iter().map(|k| rusqlite::types::Value::from(k.to_string())));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), |r| Ok(ChunkId(r.get(0)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Existing chunks with any access history, most recently used first.
pub fn recently_used(conn: &Connection, limit: usize) -> Result<Vec<ChunkId>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.chunk_id FROM access_stats s CROSS JOIN chunks c ON c.id = s.chunk_id ORDER BY s.last_at DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| Ok(ChunkId(r.get(0)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Outgoing references of a chunk: `(dst_name, dst_last)`.
pub fn edges_from(conn: &Connection, id: ChunkId) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT dst_name, dst_last FROM edges WHERE src_chunk = ?1")?;
    let rows = stmt.query_map([id.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Chunks that reference a name whose last segment is `last`: `(src_chunk, dst_name)`.
pub fn edges_to_last(conn: &Connection, last: &str) -> Result<Vec<(ChunkId, String)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT src_chunk, dst_name FROM edges WHERE dst_last = ?1 LIMIT 1000")?;
    let rows = stmt.query_map([last], |r| Ok((ChunkId(r.get(0)?), r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The dotted module of a stored file.
pub fn module_of(conn: &Connection, path: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT module FROM files WHERE path = ?1")?
        .query_row([path], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// Counts for `aurora status`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreCounts {
    pub files: u64,
    pub files_ok: u64,
    pub files_partial: u64,
    pub files_skipped: u64,
    pub skipped_by_reason: std::collections::BTreeMap<String, u64>,
    pub chunks: u64,
    pub stale_chunks: u64,
    pub edges: u64,
    pub accessed_chunks: u64,
    pub last_indexed_at: Option<i64>,
}

pub fn counts(conn: &Connection) -> Result<StoreCounts, StoreError> {
    let mut c = StoreCounts::default();
    let mut stmt = conn.prepare("SELECT status, coalesce(reason, ''), count(*) FROM files GROUP BY 1, 2")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (status, reason, n): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let n = n as u64;
        c.files += n;
        match status.as_str() {
            "ok" => c.files_ok += n,
            "partial" => c.files_partial += n,
            _ => {
                c.files_skipped += n;
                *c.skipped_by_reason.entry(reason).or_default() += n;
            }
        }
    }
    let one = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).map(|v| v as u64);
    c.chunks = one("SELECT count(*) FROM chunks")?;
    c.stale_chunks = one("SELECT count(*) FROM chunks WHERE stale = 1")?;
    c.edges = one("SELECT count(*) FROM edges")?;
    c.accessed_chunks = one("SELECT count(*) FROM access_stats")?;
    c.last_indexed_at = conn.query_row("SELECT max(indexed_at) FROM files", [], |r| r.get(0))?;
    Ok(c)
}

/// Indexed files (status ok or partial) and whether any chunk exists: the cheap freshness check of
/// every question (no full scan of chunks or edges).
pub fn index_size(conn: &Connection) -> Result<(u64, bool), StoreError> {
    let files: i64 = conn
        .prepare_cached("SELECT count(*) FROM files WHERE status IN ('ok', 'partial')")?
        .query_row([], |r| r.get(0))?;
    let any: bool = conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM chunks)")?.query_row([], |r| r.get(0))?;
    Ok((files as u64, any))
}
