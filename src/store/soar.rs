//! SOAR's tables: the decomposition cache, recorded reasoning patterns and the conversation log.
//! Rows are plain data (JSON text where the shape belongs to SOAR); the store knows no phase.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// A `decomposition_cache` row. Times are epoch milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedPlan {
    pub key: String,
    pub plan_json: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: i64,
    pub hits: u32,
    pub prompt_version: u32,
    pub model: String,
}

/// A `reasoning_chunks` row. `agents_used`, `prompt_versions`, `models` and `metadata` are JSON text.
#[derive(Clone, Debug, PartialEq)]
pub struct ReasoningRow {
    pub id: String,
    pub pattern: String,
    pub normalized_query: String,
    pub complexity: String,
    pub goal: String,
    pub plan_json: String,
    pub agents_used: String,
    pub success_score: f64,
    pub pattern_marked: bool,
    pub base_level: f64,
    pub access_count: u32,
    pub last_access_ms: i64,
    pub created_at_ms: i64,
    pub query_id: String,
    pub prompt_versions: String,
    pub models: String,
    pub metadata: String,
}

/// A `conversations` row: one query, whatever its outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationRow {
    pub query_id: String,
    pub conversation_id: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub query: String,
    pub complexity: String,
    pub outcome: String,
    pub confidence: f64,
    pub total_cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub answer: String,
    pub envelope_json: String,
    pub calls_json: String,
    pub prompts_json: Option<String>,
}

/// One SOAR write, applied by the writer thread in its own transaction.
#[derive(Clone, Debug)]
pub enum SoarWrite {
    /// Inserts (or replaces) a verified plan, removes rows created before `expired_before_ms`, then
    /// evicts the least recently used rows beyond `max_entries`.
    CachePut { entry: CachedPlan, expired_before_ms: i64, max_entries: u32 },
    /// A cache hit: `hits += 1`, `last_used_at = at_ms` (the TTL still runs from `created_at`).
    CacheHit { key: String, at_ms: i64 },
    /// Removes one entry (its plan no longer passes the structural checks) and every expired row.
    CacheDelete { key: String, expired_before_ms: i64 },
    /// Inserts a pattern, or, when one with the same normalised query and complexity exists, replaces
    /// its plan and score, adds `row.base_level` to its base level and keeps its id.
    Reasoning { row: ReasoningRow },
    /// `base_level += delta; access_count += 1; last_access = at_ms` for each pattern id.
    AdjustPatterns { ids: Vec<String>, delta: f64, at_ms: i64 },
    /// Inserts one conversation row and keeps only the newest `max_entries`.
    Conversation { row: ConversationRow, max_entries: u32 },
}

/// Applies one write (on the writer thread, inside its transaction).
pub(super) fn apply(conn: &Connection, write: SoarWrite) -> Result<(), StoreError> {
    match write {
        SoarWrite::CachePut { entry, expired_before_ms, max_entries } => {
            conn.prepare_cached(
                "INSERT INTO decomposition_cache (key, plan_json, created_at, last_used_at, hits, prompt_version, model) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(key) DO UPDATE SET plan_json = excluded.plan_json, \
                 created_at = excluded.created_at, last_used_at = excluded.last_used_at, hits = excluded.hits, \
                 prompt_version = excluded.prompt_version, model = excluded.model",
            )?
            .execute(params![
                entry.key,
                entry.plan_json,
                entry.created_at_ms,
                entry.last_used_at_ms,
                entry.hits,
                entry.prompt_version,
                entry.model
            ])?;
            purge_expired(conn, expired_before_ms)?;
            conn.prepare_cached(
                "DELETE FROM decomposition_cache WHERE key IN (SELECT key FROM decomposition_cache \
                 ORDER BY last_used_at DESC, created_at DESC LIMIT -1 OFFSET ?1)",
            )?
            .execute([max_entries])?;
        }
        SoarWrite::CacheHit { key, at_ms } => {
            conn.prepare_cached("UPDATE decomposition_cache SET hits = hits + 1, last_used_at = ?2 WHERE key = ?1")?
                .execute(params![key, at_ms])?;
        }
        SoarWrite::CacheDelete { key, expired_before_ms } => {
            conn.prepare_cached("DELETE FROM decomposition_cache WHERE key = ?1")?.execute([key])?;
            purge_expired(conn, expired_before_ms)?;
        }
        SoarWrite::Reasoning { row } => upsert_reasoning(conn, &row)?,
        SoarWrite::AdjustPatterns { ids, delta, at_ms } => {
            let mut stmt = conn.prepare_cached(
                "UPDATE reasoning_chunks SET base_level = base_level + ?2, access_count = access_count + 1, \
                 last_access = ?3 WHERE id = ?1",
            )?;
            for id in ids {
                stmt.execute(params![id, delta, at_ms])?;
            }
        }
        SoarWrite::Conversation { row, max_entries } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO conversations (query_id, conversation_id, started_at, finished_at, query, \
                 complexity, outcome, confidence, total_cost_usd, input_tokens, output_tokens, answer, envelope_json, \
                 calls_json, prompts_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?
            .execute(params![
                row.query_id,
                row.conversation_id,
                row.started_at_ms,
                row.finished_at_ms,
                row.query,
                row.complexity,
                row.outcome,
                row.confidence,
                row.total_cost_usd,
                row.input_tokens as i64,
                row.output_tokens as i64,
                row.answer,
                row.envelope_json,
                row.calls_json,
                row.prompts_json
            ])?;
            conn.prepare_cached(
                "DELETE FROM conversations WHERE query_id IN (SELECT query_id FROM conversations \
                 ORDER BY finished_at DESC, rowid DESC LIMIT -1 OFFSET ?1)",
            )?
            .execute([max_entries])?;
        }
    }
    Ok(())
}

fn purge_expired(conn: &Connection, before_ms: i64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM decomposition_cache WHERE created_at < ?1")?.execute([before_ms])?;
    Ok(())
}

fn upsert_reasoning(conn: &Connection, r: &ReasoningRow) -> Result<(), StoreError> {
    let existing: Option<String> = conn
        .prepare_cached("SELECT id FROM reasoning_chunks WHERE normalized_query = ?1 AND complexity = ?2")?
        .query_row(params![r.normalized_query, r.complexity], |row| row.get(0))
        .optional()?;
    match existing {
        Some(id) => {
            conn.prepare_cached(
                "UPDATE reasoning_chunks SET pattern = ?2, goal = ?3, plan_json = ?4, agents_used = ?5, \
                 success_score = ?6, pattern_marked = ?7, base_level = base_level + ?8, \
                 access_count = access_count + 1, last_access = ?9, query_id = ?10, prompt_versions = ?11, \
                 models = ?12, metadata = ?13 WHERE id = ?1",
            )?
            .execute(params![
                id,
                r.pattern,
                r.goal,
                r.plan_json,
                r.agents_used,
                r.success_score,
                r.pattern_marked,
                r.base_level,
                r.last_access_ms,
                r.query_id,
                r.prompt_versions,
                r.models,
                r.metadata
            ])?;
        }
        None => {
            conn.prepare_cached(
                "INSERT INTO reasoning_chunks (id, pattern, normalized_query, complexity, goal, plan_json, agents_used, \
                 success_score, pattern_marked, base_level, access_count, last_access, created_at, query_id, \
                 prompt_versions, models, metadata) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?
            .execute(params![
                r.id,
                r.pattern,
                r.normalized_query,
                r.complexity,
                r.goal,
                r.plan_json,
                r.agents_used,
                r.success_score,
                r.pattern_marked,
                r.base_level,
                r.access_count,
                r.last_access_ms,
                r.created_at_ms,
                r.query_id,
                r.prompt_versions,
                r.models,
                r.metadata
            ])?;
        }
    }
    Ok(())
}

/// The cache entry under `key` if it was created at or after `fresh_since_ms`.
pub fn cache_get(conn: &Connection, key: &str, fresh_since_ms: i64) -> Result<Option<CachedPlan>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT key, plan_json, created_at, last_used_at, hits, prompt_version, model FROM decomposition_cache \
             WHERE key = ?1 AND created_at >= ?2",
        )?
        .query_row(params![key, fresh_since_ms], |r| {
            Ok(CachedPlan {
                key: r.get(0)?,
                plan_json: r.get(1)?,
                created_at_ms: r.get(2)?,
                last_used_at_ms: r.get(3)?,
                hits: r.get(4)?,
                prompt_version: r.get(5)?,
                model: r.get(6)?,
            })
        })
        .optional()?)
}

/// Number of cache rows (fresh or not).
pub fn cache_len(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.query_row("SELECT count(*) FROM decomposition_cache", [], |r| r.get::<_, i64>(0))? as u64)
}

const REASONING_COLUMNS: &str = "id, pattern, normalized_query, complexity, goal, plan_json, agents_used, \
     success_score, pattern_marked, base_level, access_count, last_access, created_at, query_id, prompt_versions, \
     models, metadata";

fn reasoning_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReasoningRow> {
    Ok(ReasoningRow {
        id: r.get(0)?,
        pattern: r.get(1)?,
        normalized_query: r.get(2)?,
        complexity: r.get(3)?,
        goal: r.get(4)?,
        plan_json: r.get(5)?,
        agents_used: r.get(6)?,
        success_score: r.get(7)?,
        pattern_marked: r.get(8)?,
        base_level: r.get(9)?,
        access_count: r.get(10)?,
        last_access_ms: r.get(11)?,
        created_at_ms: r.get(12)?,
        query_id: r.get(13)?,
        prompt_versions: r.get(14)?,
        models: r.get(15)?,
        metadata: r.get(16)?,
    })
}

/// The most recently used reasoning patterns, at most `limit`.
pub fn reasoning_recent(conn: &Connection, limit: usize) -> Result<Vec<ReasoningRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {REASONING_COLUMNS} FROM reasoning_chunks ORDER BY last_access DESC, id LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit as i64], reasoning_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One reasoning pattern by id.
pub fn reasoning_by_id(conn: &Connection, id: &str) -> Result<Option<ReasoningRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {REASONING_COLUMNS} FROM reasoning_chunks WHERE id = ?1"))?
        .query_row([id], reasoning_row)
        .optional()?)
}

/// The last `limit` turns of a conversation as `(query, answer)`, oldest first; empty when unknown.
pub fn conversation_turns(
    conn: &Connection,
    conversation_id: &str,
    limit: usize,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT query, answer FROM conversations WHERE conversation_id = ?1 ORDER BY finished_at DESC, rowid DESC \
         LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![conversation_id, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut out: Vec<(String, String)> = rows.collect::<Result<_, _>>()?;
    out.reverse();
    Ok(out)
}

/// One conversation row by query id.
pub fn conversation(conn: &Connection, query_id: &str) -> Result<Option<ConversationRow>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT query_id, conversation_id, started_at, finished_at, query, complexity, outcome, confidence, \
             total_cost_usd, input_tokens, output_tokens, answer, envelope_json, calls_json, prompts_json \
             FROM conversations WHERE query_id = ?1",
        )?
        .query_row([query_id], |r| {
            Ok(ConversationRow {
                query_id: r.get(0)?,
                conversation_id: r.get(1)?,
                started_at_ms: r.get(2)?,
                finished_at_ms: r.get(3)?,
                query: r.get(4)?,
                complexity: r.get(5)?,
                outcome: r.get(6)?,
                confidence: r.get(7)?,
                total_cost_usd: r.get(8)?,
                input_tokens: r.get::<_, i64>(9)? as u64,
                output_tokens: r.get::<_, i64>(10)? as u64,
                answer: r.get(11)?,
                envelope_json: r.get(12)?,
                calls_json: r.get(13)?,
                prompts_json: r.get(14)?,
            })
        })
        .optional()?)
}

/// Outgoing references of a chunk with their kind: `(kind, dst_name)`.
pub fn edges_with_kind(conn: &Connection, chunk_id: i64) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT kind, dst_name FROM edges WHERE src_chunk = ?1 ORDER BY kind, dst_name")?;
    let rows = stmt.query_map([chunk_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `status` and line count of an indexed file (`None` when not in the store).
pub fn file_status(conn: &Connection, path: &str) -> Result<Option<String>, StoreError> {
    Ok(conn.prepare_cached("SELECT status FROM files WHERE path = ?1")?.query_row([path], |r| r.get(0)).optional()?)
}

/// The stored blake3 hash of a file's text, when it was indexed.
pub fn file_hash(conn: &Connection, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT content_hash FROM files WHERE path = ?1")?
        .query_row([path], |r| r.get::<_, Option<Vec<u8>>>(0))
        .optional()?
        .flatten())
}

/// Files indexed (any status) and how many of them are usable (`ok` or `partial`).
pub fn file_counts(conn: &Connection) -> Result<(u64, u64), StoreError> {
    Ok(conn.query_row("SELECT count(*), coalesce(sum(status IN ('ok', 'partial')), 0) FROM files", [], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::writer::{Op, Writer};
    use crate::store::{StorePath, open_reader};

    fn plan(key: &str, created: i64, used: i64) -> CachedPlan {
        CachedPlan {
            key: key.into(),
            plan_json: "{}".into(),
            created_at_ms: created,
            last_used_at_ms: used,
            hits: 0,
            prompt_version: 1,
            model: "m".into(),
        }
    }

    fn reasoning(id: &str, query: &str, delta: f64) -> ReasoningRow {
        ReasoningRow {
            id: id.into(),
            pattern: query.into(),
            normalized_query: query.into(),
            complexity: "MEDIUM".into(),
            goal: "g".into(),
            plan_json: "{}".into(),
            agents_used: "[]".into(),
            success_score: 0.6,
            pattern_marked: false,
            base_level: delta,
            access_count: 1,
            last_access_ms: 5,
            created_at_ms: 5,
            query_id: "q".into(),
            prompt_versions: "{}".into(),
            models: "{}".into(),
            metadata: "{}".into(),
        }
    }

    #[test]
    fn cache_is_bounded_by_lru_and_ttl_and_patterns_update_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = StorePath::for_root(dir.path());
        let writer = Writer::open(&path, &[]).unwrap();
        let put = |entry: CachedPlan, expired_before_ms: i64| {
            writer.send_acked(Op::Soar(SoarWrite::CachePut { entry, expired_before_ms, max_entries: 2 })).unwrap()
        };
        put(plan("a", 100, 100), 0);
        put(plan("b", 100, 300), 0);
        writer.send_acked(Op::Soar(SoarWrite::CacheHit { key: "a".into(), at_ms: 400 })).unwrap();
        // "b" is now the least recently used: the third insert evicts it.
        put(plan("c", 100, 350), 0);
        let conn = open_reader(&path).unwrap();
        assert!(cache_get(&conn, "a", 0).unwrap().is_some_and(|p| p.hits == 1 && p.last_used_at_ms == 400));
        assert!(cache_get(&conn, "b", 0).unwrap().is_none());
        assert!(cache_get(&conn, "c", 101).unwrap().is_none(), "created before the freshness bound");
        // An insert removes expired rows.
        put(plan("d", 1000, 1000), 500);
        assert_eq!(cache_len(&conn).unwrap(), 1);

        let write = |row| writer.send_acked(Op::Soar(SoarWrite::Reasoning { row })).unwrap();
        write(reasoning("r1", "how does x work", 0.05));
        write(reasoning("r2", "how does x work", 0.2));
        let kept = reasoning_by_id(&conn, "r1").unwrap().expect("the first id is kept");
        assert!((kept.base_level - 0.25).abs() < 1e-9);
        assert_eq!(kept.access_count, 2);
        assert!(reasoning_by_id(&conn, "r2").unwrap().is_none());
        writer
            .send_acked(Op::Soar(SoarWrite::AdjustPatterns { ids: vec!["r1".into()], delta: -0.1, at_ms: 9 }))
            .unwrap();
        let kept = reasoning_by_id(&conn, "r1").unwrap().unwrap();
        assert!((kept.base_level - 0.15).abs() < 1e-9);
        assert_eq!(reasoning_recent(&conn, 10).unwrap().len(), 1);
    }

    #[test]
    fn conversation_retention_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = StorePath::for_root(dir.path());
        let writer = Writer::open(&path, &[]).unwrap();
        for i in 0..5 {
            let row = ConversationRow {
                query_id: format!("q{i}"),
                conversation_id: "c".into(),
                started_at_ms: i,
                finished_at_ms: i,
                query: format!("question {i}"),
                complexity: "SIMPLE".into(),
                outcome: "answered_simple".into(),
                confidence: 0.5,
                total_cost_usd: 0.0,
                input_tokens: 1,
                output_tokens: 1,
                answer: format!("answer {i}"),
                envelope_json: "{}".into(),
                calls_json: "[]".into(),
                prompts_json: None,
            };
            writer.send_acked(Op::Soar(SoarWrite::Conversation { row, max_entries: 3 })).unwrap();
        }
        let conn = open_reader(&path).unwrap();
        assert!(conversation(&conn, "q1").unwrap().is_none());
        assert!(conversation(&conn, "q4").unwrap().is_some());
        let turns = conversation_turns(&conn, "c", 2).unwrap();
        assert_eq!(turns, vec![("question 3".into(), "answer 3".into()), ("question 4".into(), "answer 4".into())]);
    }
}
