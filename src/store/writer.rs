//! The single SQLite writer: owns the write connection and applies batches in order.
//!
//! Two queues feed it: `interactive` (live edits, accesses, syncs) and `bulk` (bounded; indexing
//! workers block when it is full). Bulk work is committed in batches of 200 files, 5,000 chunks or
//! 250 ms, whichever comes first; interactive work commits the open batch first and runs in its own
//! transaction. A file's row, chunks, FTS rows and edges are always in the same transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreError, StorePath, WriteLock, now_ms, open_writer};
use crate::index::chunk::{Chunk, ChunkId};

const BATCH_FILES: usize = 200;
const BATCH_CHUNKS: usize = 5000;
/// A batch is committed this long after it began, so progress and readers see steady commits.
const BATCH_MAX_AGE: Duration = Duration::from_millis(250);
/// Queue depth of the bulk channel, in files: enough to keep the writer busy, small enough to
/// bound memory while parsing outruns writing.
const BULK_QUEUE: usize = 64;
/// Bulk commits between two passive WAL checkpoints.
const CHECKPOINT_EVERY_COMMITS: u32 = 16;
/// Two accesses of one chunk closer than this count once (spec/memory.md §5.1).
const ACCESS_DEDUP_MS: i64 = 60_000;
/// Orphan access history older than this is pruned at the end of a reconcile.
const ORPHAN_HISTORY_MS: i64 = 30 * 24 * 3600 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Disk,
    Buffer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileStatus {
    Ok,
    Partial,
    Skipped,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Ok => "ok",
            FileStatus::Partial => "partial",
            FileStatus::Skipped => "skipped",
        }
    }
}

/// The `files` row of one file.
#[derive(Clone, Debug)]
pub struct FileRow {
    pub path: String,
    pub language: Option<&'static str>,
    pub module: Option<String>,
    pub size: u64,
    pub mtime_ns: i64,
    pub content_hash: Option<[u8; 32]>,
    pub origin: Origin,
    pub status: FileStatus,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub lossy: bool,
}

/// The pre-tokenised FTS document of a chunk: each column the space-joined tokens.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FtsDoc {
    pub name: String,
    pub path: String,
    pub signature: String,
    pub doc: String,
    pub body: String,
    pub text: String,
}

#[derive(Clone, Debug)]
pub struct ChunkWrite {
    pub chunk: Chunk,
    pub fts: Fts,
}

/// Makes a chunk's FTS document on the writer thread.
pub type FtsMaker = std::sync::Arc<dyn Fn(&Chunk) -> FtsDoc + Send + Sync>;

/// A chunk's FTS document, tokenised already (cold indexing tokenises on the parallel workers),
/// or on demand (editor buffers: most chunks of a re-chunked buffer are unchanged, and the writer
/// tokenises only the ones it inserts or updates).
#[derive(Clone)]
pub enum Fts {
    Ready(FtsDoc),
    Deferred(FtsMaker),
}

impl Fts {
    fn doc(&self, chunk: &Chunk) -> std::borrow::Cow<'_, FtsDoc> {
        match self {
            Fts::Ready(doc) => std::borrow::Cow::Borrowed(doc),
            Fts::Deferred(make) => std::borrow::Cow::Owned(make(chunk)),
        }
    }
}

impl std::fmt::Debug for Fts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fts::Ready(doc) => f.debug_tuple("Ready").field(doc).finish(),
            Fts::Deferred(_) => f.write_str("Deferred"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    Cited,
    Opened,
    Edited,
}

impl AccessKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessKind::Cited => "cited",
            AccessKind::Opened => "opened",
            AccessKind::Edited => "edited",
        }
    }
}

/// One unit of work for the writer.
#[derive(Debug)]
pub enum Op {
    /// A parsed file and all its chunks. With `syntax_errors`, stored chunks that the new tree
    /// does not hold cleanly are kept and flagged stale (spec/memory.md §1.9).
    File { row: FileRow, chunks: Vec<ChunkWrite>, syntax_errors: bool },
    /// Same content as stored: only size, mtime and `indexed_at` change.
    Touch { path: String, size: u64, mtime_ns: i64 },
    /// A skipped file: its row records why and its chunks are removed.
    Skip { row: FileRow },
    /// The file is gone: FTS rows, chunks (edges cascade) and its row.
    Delete { path: String },
    /// Record accesses (at most one per chunk per minute; bounded history).
    Access { ids: Vec<ChunkId>, kind: AccessKind, at_ms: i64, max_history: u32 },
    /// A file moved: copy the access history of each chunk of `from` to the chunk of `to` with
    /// the same kind, qualified name and ordinal (the old rows stay, keyed by the old ids).
    CarryHistory { from: String, to: String },
    /// One LLM call's usage (cost, tokens, outcome).
    RecordUsage(crate::llm::UsageRecord),
    /// A write to SOAR's tables (cache, reasoning patterns, conversation log).
    Soar(super::soar::SoarWrite),
    /// Drop every file, chunk, FTS row and edge (`--rebuild`); access history is kept.
    Clear,
    /// Remove access history of chunks that no longer exist and were last used 30+ days ago.
    PruneOrphanHistory,
    /// Commit, truncate the WAL, and report.
    Checkpoint,
}

/// Chunk rows written, by what happened to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChunkCounts {
    pub inserted: u64,
    pub updated: u64,
    pub moved: u64,
    pub unchanged: u64,
    pub deleted: u64,
    pub stale: u64,
}

impl ChunkCounts {
    fn add(&mut self, o: &ChunkCounts) {
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.moved += o.moved;
        self.unchanged += o.unchanged;
        self.deleted += o.deleted;
        self.stale += o.stale;
    }
}

/// What the writer has committed since it started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteStats {
    pub files: u64,
    pub chunks: ChunkCounts,
    pub id_collisions: u64,
    /// Batches rolled back, with the first error: their files are redone by the next run.
    pub failed_batches: u64,
    pub first_error: Option<String>,
}

enum Msg {
    Op(Op),
    Sync(Sender<WriteStats>),
    /// An op applied and committed in its own transaction; the sender learns whether it stuck.
    Acked(Op, Sender<Result<(), String>>),
}

/// Handle to the writer thread. Dropping it (or [`Writer::finish`]) commits what is queued.
pub struct Writer {
    bulk: Sender<Msg>,
    interactive: Sender<Msg>,
    committed_files: Arc<AtomicU64>,
    handle: Option<JoinHandle<WriteStats>>,
    _lock: WriteLock,
}

impl Writer {
    /// Opens (creating or migrating) the store and starts its writer thread.
    pub fn open(path: &StorePath, versions: &[(&str, String)]) -> Result<Writer, StoreError> {
        let (conn, lock) = open_writer(path, versions)?;
        let (bulk, bulk_rx) = bounded(BULK_QUEUE);
        let (interactive, interactive_rx) = unbounded();
        let committed_files = Arc::new(AtomicU64::new(0));
        let counter = committed_files.clone();
        let handle = std::thread::Builder::new()
            .name("aurora-writer".into())
            .spawn(move || WriterThread::new(conn, counter).run(&bulk_rx, &interactive_rx))
            .map_err(|source| StoreError::Io { path: path.db.clone(), source })?;
        Ok(Writer { bulk, interactive, committed_files, handle: Some(handle), _lock: lock })
    }

    /// Queues bulk work; blocks while the queue is full.
    pub fn send_bulk(&self, op: Op) -> Result<(), StoreError> {
        self.bulk.send(Msg::Op(op)).map_err(|_| StoreError::WriterGone("writer thread ended".into()))
    }

    /// Queues interactive work, which jumps ahead of bulk work.
    pub fn send(&self, op: Op) -> Result<(), StoreError> {
        self.interactive.send(Msg::Op(op)).map_err(|_| StoreError::WriterGone("writer thread ended".into()))
    }

    /// Applies `op` in its own transaction, ahead of bulk work, and waits until it is committed or
    /// rolled back. Blocks: call it from a blocking context.
    pub fn send_acked(&self, op: Op) -> Result<(), StoreError> {
        let (tx, rx) = bounded(1);
        self.interactive.send(Msg::Acked(op, tx)).map_err(|_| StoreError::WriterGone("writer thread ended".into()))?;
        rx.recv().map_err(|_| StoreError::WriterGone("writer thread ended".into()))?.map_err(StoreError::WriterGone)
    }

    /// Waits until everything queued before this call is committed; returns the totals so far.
    pub fn sync(&self) -> Result<WriteStats, StoreError> {
        let (tx, rx) = bounded(1);
        // Through the bulk queue, so it is ordered after every bulk op sent before it.
        self.bulk.send(Msg::Sync(tx)).map_err(|_| StoreError::WriterGone("writer thread ended".into()))?;
        rx.recv().map_err(|_| StoreError::WriterGone("writer thread ended".into()))
    }

    /// Files whose writes are committed (the progress figure).
    pub fn committed_files(&self) -> u64 {
        self.committed_files.load(Ordering::Relaxed)
    }

    /// Commits everything, checkpoints the WAL, and stops the thread.
    pub fn finish(mut self) -> Result<WriteStats, StoreError> {
        self.send_bulk(Op::Checkpoint)?;
        self.stop()
    }

    fn stop(&mut self) -> Result<WriteStats, StoreError> {
        let (closed_bulk, _) = bounded(0);
        let (closed_interactive, _) = unbounded();
        drop(std::mem::replace(&mut self.bulk, closed_bulk));
        drop(std::mem::replace(&mut self.interactive, closed_interactive));
        match self.handle.take() {
            Some(handle) => handle.join().map_err(|_| StoreError::WriterGone("writer thread panicked".into())),
            None => Ok(WriteStats::default()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

struct WriterThread {
    conn: Connection,
    committed_files: Arc<AtomicU64>,
    stats: WriteStats,
    batch: Option<Batch>,
    commits_since_checkpoint: u32,
    last_error: Option<String>,
}

struct Batch {
    started: Instant,
    files: u64,
    chunks: usize,
    counts: ChunkCounts,
    collisions: u64,
}

impl WriterThread {
    fn new(conn: Connection, committed_files: Arc<AtomicU64>) -> WriterThread {
        WriterThread {
            conn,
            committed_files,
            stats: WriteStats::default(),
            batch: None,
            commits_since_checkpoint: 0,
            last_error: None,
        }
    }

    fn run(mut self, bulk: &Receiver<Msg>, interactive: &Receiver<Msg>) -> WriteStats {
        loop {
            // Interactive work first: commit the open bulk batch, then run it on its own.
            if let Ok(msg) = interactive.try_recv() {
                self.commit();
                self.handle(msg);
                self.commit();
                continue;
            }
            let timeout = match &self.batch {
                Some(b) => BATCH_MAX_AGE.saturating_sub(b.started.elapsed()),
                None => Duration::from_secs(1),
            };
            let mut sel = crossbeam_channel::Select::new();
            let i_bulk = sel.recv(bulk);
            let i_inter = sel.recv(interactive);
            let msg = match sel.select_timeout(timeout) {
                Ok(op) if op.index() == i_bulk => op.recv(bulk),
                Ok(op) if op.index() == i_inter => {
                    let msg = op.recv(interactive);
                    if let Ok(msg) = msg {
                        self.commit();
                        self.handle(msg);
                        self.commit();
                        continue;
                    }
                    msg
                }
                Ok(_) => unreachable!("two operations registered"),
                Err(_) => {
                    if self.batch.is_some() {
                        self.commit();
                    } else if self.commits_since_checkpoint > 0 {
                        // Idle for a second: move the WAL into the database now, outside any
                        // keystroke's transaction.
                        self.checkpoint("PASSIVE");
                    }
                    continue;
                }
            };
            match msg {
                Ok(msg) => {
                    self.handle(msg);
                    if self.batch.as_ref().is_some_and(|b| {
                        b.files as usize >= BATCH_FILES
                            || b.chunks >= BATCH_CHUNKS
                            || b.started.elapsed() >= BATCH_MAX_AGE
                    }) {
                        self.commit();
                        // A checkpoint writes and syncs the database file: during a bulk run, one
                        // every few batches bounds the WAL without stalling the pipeline each time.
                        if self.commits_since_checkpoint >= CHECKPOINT_EVERY_COMMITS {
                            self.checkpoint("PASSIVE");
                        }
                    }
                }
                Err(_) => {
                    // Bulk closed: drain interactive, then stop.
                    while let Ok(msg) = interactive.try_recv() {
                        self.handle(msg);
                    }
                    self.commit();
                    let _ = self.conn.execute_batch("PRAGMA optimize;");
                    return self.stats;
                }
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Sync(reply) => {
                self.commit();
                let _ = reply.send(self.stats.clone());
            }
            Msg::Acked(op, reply) => {
                self.commit();
                let failed = self.stats.failed_batches;
                self.handle(Msg::Op(op));
                self.commit();
                let result = if self.stats.failed_batches == failed {
                    Ok(())
                } else {
                    Err(self.last_error.clone().unwrap_or_else(|| "the write was rolled back".into()))
                };
                let _ = reply.send(result);
            }
            Msg::Op(Op::Checkpoint) => {
                self.commit();
                self.checkpoint("TRUNCATE");
            }
            Msg::Op(op) => {
                if self.batch.is_none() {
                    if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
                        self.fail(e.into());
                        return;
                    }
                    self.batch = Some(Batch {
                        started: Instant::now(),
                        files: 0,
                        chunks: 0,
                        counts: ChunkCounts::default(),
                        collisions: 0,
                    });
                }
                let result = apply(&self.conn, op);
                let batch = self.batch.as_mut().expect("a batch was opened above");
                match result {
                    Ok(applied) => {
                        batch.files += applied.files;
                        batch.chunks += applied.chunks;
                        batch.counts.add(&applied.counts);
                        batch.collisions += applied.collisions;
                    }
                    Err(e) => {
                        let _ = self.conn.execute_batch("ROLLBACK");
                        self.batch = None;
                        self.fail(e);
                    }
                }
            }
        }
    }

    fn commit(&mut self) {
        let Some(batch) = self.batch.take() else { return };
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => {
                self.stats.files += batch.files;
                self.stats.chunks.add(&batch.counts);
                self.stats.id_collisions += batch.collisions;
                self.committed_files.fetch_add(batch.files, Ordering::Relaxed);
                self.commits_since_checkpoint += 1;
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.fail(e.into());
            }
        }
    }

    fn fail(&mut self, e: StoreError) {
        tracing::error!("store write failed, batch rolled back: {e}");
        self.stats.failed_batches += 1;
        self.stats.first_error.get_or_insert_with(|| e.to_string());
        self.last_error = Some(e.to_string());
    }

    fn checkpoint(&mut self, mode: &str) {
        self.commits_since_checkpoint = 0;
        if let Err(e) = self.conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
            tracing::warn!("WAL checkpoint ({mode}) failed: {e}");
        }
    }
}

#[derive(Default)]
struct Applied {
    files: u64,
    chunks: usize,
    counts: ChunkCounts,
    collisions: u64,
}

fn apply(conn: &Connection, op: Op) -> Result<Applied, StoreError> {
    let now = now_ms();
    match op {
        Op::File { row, chunks, syntax_errors } => write_file(conn, &row, &chunks, syntax_errors, now),
        Op::Touch { path, size, mtime_ns } => {
            conn.prepare_cached("UPDATE files SET size = ?2, mtime_ns = ?3, indexed_at = ?4 WHERE path = ?1")?
                .execute(params![path, size as i64, mtime_ns, now])?;
            Ok(Applied { files: 1, ..Applied::default() })
        }
        Op::Skip { row } => {
            let deleted = delete_chunks_of(conn, &row.path)?;
            upsert_file(conn, &row, 0, now)?;
            Ok(Applied { files: 1, counts: ChunkCounts { deleted, ..ChunkCounts::default() }, ..Applied::default() })
        }
        Op::Delete { path } => {
            let deleted = delete_chunks_of(conn, &path)?;
            conn.prepare_cached("DELETE FROM files WHERE path = ?1")?.execute([&path])?;
            Ok(Applied { files: 1, counts: ChunkCounts { deleted, ..ChunkCounts::default() }, ..Applied::default() })
        }
        Op::Access { ids, kind, at_ms, max_history } => {
            for id in ids {
                record_access(conn, id, kind, at_ms, max_history)?;
            }
            Ok(Applied::default())
        }
        Op::PruneOrphanHistory => {
            let cutoff = now - ORPHAN_HISTORY_MS;
            conn.execute(
                "DELETE FROM access_log WHERE chunk_id IN (SELECT chunk_id FROM access_stats \
                 WHERE last_at < ?1 AND chunk_id NOT IN (SELECT id FROM chunks))",
                [cutoff],
            )?;
            conn.execute(
                "DELETE FROM access_stats WHERE last_at < ?1 AND chunk_id NOT IN (SELECT id FROM chunks)",
                [cutoff],
            )?;
            Ok(Applied::default())
        }
        Op::CarryHistory { from, to } => {
            carry_history(conn, &from, &to)?;
            Ok(Applied::default())
        }
        Op::RecordUsage(usage) => {
            super::usage::insert(conn, &usage)?;
            Ok(Applied::default())
        }
        Op::Soar(write) => {
            super::soar::apply(conn, write)?;
            Ok(Applied::default())
        }
        Op::Clear => {
            conn.execute_batch(
                "INSERT INTO chunks_fts(chunks_fts) VALUES('delete-all'); DELETE FROM edges; DELETE FROM chunks; \
                 DELETE FROM files;",
            )?;
            Ok(Applied::default())
        }
        Op::Checkpoint => Ok(Applied::default()),
    }
}

fn delete_chunks_of(conn: &Connection, path: &str) -> Result<u64, StoreError> {
    // FTS rows first and explicitly: no trigger or cascade reaches the FTS table.
    conn.prepare_cached("DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE file_path = ?1)")?
        .execute([path])?;
    Ok(conn.prepare_cached("DELETE FROM chunks WHERE file_path = ?1")?.execute([path])? as u64)
}

fn upsert_file(conn: &Connection, row: &FileRow, chunk_count: u64, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO files (path, language, module, size, mtime_ns, content_hash, origin, status, reason, error, \
         lossy, chunk_count, indexed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
         ON CONFLICT(path) DO UPDATE SET language = excluded.language, module = excluded.module, \
         size = excluded.size, mtime_ns = excluded.mtime_ns, content_hash = excluded.content_hash, \
         origin = excluded.origin, status = excluded.status, reason = excluded.reason, error = excluded.error, \
         lossy = excluded.lossy, chunk_count = excluded.chunk_count, indexed_at = excluded.indexed_at",
    )?
    .execute(params![
        row.path,
        row.language,
        row.module,
        row.size as i64,
        row.mtime_ns,
        row.content_hash.as_ref().map(|h| &h[..]),
        match row.origin {
            Origin::Disk => "disk",
            Origin::Buffer => "buffer",
        },
        row.status.as_str(),
        row.reason,
        row.error,
        row.lossy,
        chunk_count as i64,
        now,
    ])?;
    Ok(())
}

/// A stored chunk's identity-free state, enough to decide what a new version needs.
struct Stored {
    hash: Vec<u8>,
    positions: [i64; 6],
    flags: [i64; 4],
}

fn positions(c: &Chunk) -> [i64; 6] {
    [
        c.bytes.start as i64,
        c.bytes.end as i64,
        c.start_line as i64,
        c.end_line as i64,
        c.def_line as i64,
        c.name_byte as i64,
    ]
}

fn flags(c: &Chunk, stale: bool) -> [i64; 4] {
    [c.parse_partial as i64, stale as i64, c.parent.map_or(-1, |p| p.0), c.depth as i64]
}

fn write_file(
    conn: &Connection,
    row: &FileRow,
    chunks: &[ChunkWrite],
    syntax_errors: bool,
    now: i64,
) -> Result<Applied, StoreError> {
    let mut stored: HashMap<i64, Stored> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT id, content_hash, start_byte, end_byte, start_line, end_line, def_line, name_byte, \
             parse_partial, stale, coalesce(parent_id, -1), depth FROM chunks WHERE file_path = ?1",
        )?;
        let mut rows = stmt.query([&row.path])?;
        while let Some(r) = rows.next()? {
            stored.insert(
                r.get(0)?,
                Stored {
                    hash: r.get(1)?,
                    positions: [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?],
                    flags: [r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?],
                },
            );
        }
    }
    let mut applied = Applied { files: 1, chunks: chunks.len(), ..Applied::default() };
    let counts = &mut applied.counts;
    let mut status = row.status;
    if syntax_errors && status == FileStatus::Ok {
        status = FileStatus::Partial;
    }
    let file_row = FileRow { status, ..row.clone() };
    // The row first: chunks reference it. Its chunk_count is fixed at the end.
    upsert_file(conn, &file_row, 0, now)?;

    for cw in chunks {
        let c = &cw.chunk;
        match stored.remove(&c.id.0) {
            None => {
                if insert_chunk(conn, c, now)? {
                    insert_fts(conn, c.id, &cw.fts.doc(c))?;
                    insert_edges(conn, c)?;
                    counts.inserted += 1;
                } else {
                    applied.collisions += 1;
                }
            }
            Some(old) if syntax_errors && c.parse_partial && old.flags[0] == 0 => {
                // Found only as an unclean node: keep the last good content, take the positions.
                update_positions(conn, c, true)?;
                counts.stale += 1;
                let _ = old;
            }
            Some(old) if old.hash == c.content_hash => {
                if old.positions == positions(c) && old.flags == flags(c, false) {
                    counts.unchanged += 1;
                } else {
                    update_positions(conn, c, false)?;
                    counts.moved += 1;
                }
            }
            Some(_) => {
                if update_chunk(conn, c, now)? {
                    conn.prepare_cached("DELETE FROM chunks_fts WHERE rowid = ?1")?.execute([c.id.0])?;
                    insert_fts(conn, c.id, &cw.fts.doc(c))?;
                    conn.prepare_cached("DELETE FROM edges WHERE src_chunk = ?1")?.execute([c.id.0])?;
                    insert_edges(conn, c)?;
                    counts.updated += 1;
                } else {
                    applied.collisions += 1;
                }
            }
        }
    }
    // What is left vanished from the file, unless a broken parse merely hid it.
    let mut kept = 0u64;
    for (id, old) in stored {
        if syntax_errors {
            if old.flags[1] == 0 {
                conn.prepare_cached("UPDATE chunks SET stale = 1 WHERE id = ?1")?.execute([id])?;
                counts.stale += 1;
            }
            kept += 1;
        } else {
            conn.prepare_cached("DELETE FROM chunks_fts WHERE rowid = ?1")?.execute([id])?;
            conn.prepare_cached("DELETE FROM chunks WHERE id = ?1")?.execute([id])?;
            counts.deleted += 1;
        }
    }
    let total = chunks.len() as u64 - applied.collisions + kept;
    conn.prepare_cached("UPDATE files SET chunk_count = ?2 WHERE path = ?1")?
        .execute(params![row.path, total as i64])?;
    Ok(applied)
}

fn decorators_json(c: &Chunk) -> Option<String> {
    (!c.decorators.is_empty()).then(|| serde_json::to_string(&c.decorators).expect("strings serialise"))
}

/// Inserts a new chunk row; `false` when its id is taken by a different chunk (a collision).
fn insert_chunk(conn: &Connection, c: &Chunk, now: i64) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "INSERT INTO chunks (id, file_path, kind, name, qualified_name, ordinal, parent_id, depth, signature, \
             docstring, decorators, start_byte, end_byte, start_line, end_line, def_line, name_byte, content, \
             content_hash, language, complexity, branches, parse_partial, stale, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, \
             ?21, ?22, ?23, 0, ?24, ?24) ON CONFLICT(id) DO NOTHING",
        )?
        .execute(params![
            c.id.0,
            c.file,
            c.kind.as_str(),
            c.name,
            c.qualified_name,
            c.ordinal,
            c.parent.map(|p| p.0),
            c.depth,
            c.signature,
            c.docstring,
            decorators_json(c),
            c.bytes.start as i64,
            c.bytes.end as i64,
            c.start_line,
            c.end_line,
            c.def_line,
            c.name_byte as i64,
            c.content,
            &c.content_hash[..],
            c.language.as_str(),
            c.complexity as f64,
            c.branches,
            c.parse_partial,
            now,
        ])?;
    Ok(changed == 1)
}

/// Rewrites a stored chunk with the same key; `false` when the stored row has another key.
/// Never `INSERT OR REPLACE`: that deletes the row and cascades through what hangs off it.
fn update_chunk(conn: &Connection, c: &Chunk, now: i64) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE chunks SET parent_id = ?6, depth = ?7, signature = ?8, docstring = ?9, decorators = ?10, \
             start_byte = ?11, end_byte = ?12, start_line = ?13, end_line = ?14, def_line = ?15, name_byte = ?16, \
             content = ?17, content_hash = ?18, complexity = ?19, branches = ?20, parse_partial = ?21, stale = 0, \
             updated_at = ?22 \
             WHERE id = ?1 AND file_path = ?2 AND kind = ?3 AND qualified_name = ?4 AND ordinal = ?5",
        )?
        .execute(params![
            c.id.0,
            c.file,
            c.kind.as_str(),
            c.qualified_name,
            c.ordinal,
            c.parent.map(|p| p.0),
            c.depth,
            c.signature,
            c.docstring,
            decorators_json(c),
            c.bytes.start as i64,
            c.bytes.end as i64,
            c.start_line,
            c.end_line,
            c.def_line,
            c.name_byte as i64,
            c.content,
            &c.content_hash[..],
            c.complexity as f64,
            c.branches,
            c.parse_partial,
            now,
        ])?;
    Ok(changed == 1)
}

fn update_positions(conn: &Connection, c: &Chunk, stale: bool) -> Result<(), StoreError> {
    let [sb, eb, sl, el, dl, nb] = positions(c);
    conn.prepare_cached(
        "UPDATE chunks SET start_byte = ?2, end_byte = ?3, start_line = ?4, end_line = ?5, def_line = ?6, \
         name_byte = ?7, parent_id = ?8, depth = ?9, parse_partial = CASE WHEN ?10 THEN parse_partial ELSE ?11 END, \
         stale = ?10 WHERE id = ?1",
    )?
    .execute(params![c.id.0, sb, eb, sl, el, dl, nb, c.parent.map(|p| p.0), c.depth, stale, c.parse_partial])?;
    Ok(())
}

fn insert_fts(conn: &Connection, id: ChunkId, d: &FtsDoc) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO chunks_fts (rowid, name, path, signature, doc, body, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![id.0, d.name, d.path, d.signature, d.doc, d.body, d.text])?;
    Ok(())
}

fn insert_edges(conn: &Connection, c: &Chunk) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO edges (src_chunk, kind, dst_name, dst_last, count) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT(src_chunk, kind, dst_name) DO UPDATE SET count = count + excluded.count",
    )?;
    for r in &c.refs {
        let last = r.target.rsplit('.').next().unwrap_or(&r.target);
        stmt.execute(params![c.id.0, r.kind.as_str(), r.target, last, r.count])?;
    }
    Ok(())
}

fn carry_history(conn: &Connection, from: &str, to: &str) -> Result<(), StoreError> {
    let moved: Vec<(i64, i64)> = {
        let mut stmt =
            conn.prepare_cached("SELECT id, kind, qualified_name, ordinal FROM chunks WHERE file_path = ?1")?;
        let rows = stmt.query_map([to], |r| {
            let kind: String = r.get(1)?;
            let qn: String = r.get(2)?;
            let ordinal: u32 = r.get(3)?;
            Ok((r.get::<_, i64>(0)?, kind, qn, ordinal))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, qn, ordinal) = row?;
            if let Some(kind) = crate::index::chunk::ChunkKind::parse(&kind) {
                out.push((ChunkId::new(from, kind, &qn, ordinal).0, id));
            }
        }
        out
    };
    for (old, new) in moved {
        conn.prepare_cached("INSERT OR IGNORE INTO access_log (chunk_id, at, kind) SELECT ?2, at, kind FROM access_log WHERE chunk_id = ?1")?
            .execute([old, new])?;
        conn.prepare_cached(
            "INSERT INTO access_stats (chunk_id, count, first_at, last_at) SELECT ?2, count, first_at, last_at \
             FROM access_stats WHERE chunk_id = ?1 ON CONFLICT(chunk_id) DO UPDATE SET count = count + excluded.count, \
             first_at = min(first_at, excluded.first_at), last_at = max(last_at, excluded.last_at)",
        )?
        .execute([old, new])?;
    }
    Ok(())
}

fn record_access(
    conn: &Connection,
    id: ChunkId,
    kind: AccessKind,
    at: i64,
    max_history: u32,
) -> Result<(), StoreError> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT last_at FROM access_stats WHERE chunk_id = ?1")?
        .query_row([id.0], |r| r.get(0))
        .optional()?;
    if last.is_some_and(|l| (at - l).abs() < ACCESS_DEDUP_MS) {
        return Ok(());
    }
    conn.prepare_cached("INSERT OR IGNORE INTO access_log (chunk_id, at, kind) VALUES (?1, ?2, ?3)")?
        .execute(params![id.0, at, kind.as_str()])?;
    conn.prepare_cached(
        "INSERT INTO access_stats (chunk_id, count, first_at, last_at) VALUES (?1, 1, ?2, ?2) \
         ON CONFLICT(chunk_id) DO UPDATE SET count = count + 1, first_at = min(first_at, excluded.first_at), \
         last_at = max(last_at, excluded.last_at)",
    )?
    .execute(params![id.0, at])?;
    conn.prepare_cached(
        "DELETE FROM access_log WHERE chunk_id = ?1 AND at < (SELECT at FROM access_log WHERE chunk_id = ?1 \
         ORDER BY at DESC LIMIT 1 OFFSET ?2)",
    )?
    .execute(params![id.0, max_history.saturating_sub(1)])?;
    Ok(())
}
