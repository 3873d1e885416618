//! The indexer: walk → stat → read and hash → parse and chunk → the writer, on a worker pool.
//!
//! Change detection follows spec/memory.md §4.1: equal size and mtime (and not racily clean) means
//! unchanged and the file is not read; an equal content hash means touched; anything else is parsed.
//! Parsing and tokenising run on rayon workers; only finished per-file results reach the writer.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::config::{Config, IndexingConfig, InvalidUtf8};
use crate::index::chunk::{Chunk, ChunkedFile, Language};
use crate::index::lang::{language_for, python};
use crate::memory::tokenize::Tokenizer;
use crate::store::read::{self, StoredFile};
use crate::store::writer::{ChunkCounts, ChunkWrite, FileRow, FileStatus, Fts, FtsDoc, FtsMaker, Op, Origin, Writer};
use crate::store::{StoreError, StorePath};
use crate::workspace::walk::{self, SkipReason, Walked};

/// Bumped whenever chunk rules or the id scheme change (forces a re-chunk of every file).
pub const CHUNKER_VERSION: u32 = 1;

/// A stored mtime this close to (or after) the time it was indexed may hide a second change
/// within the same timestamp tick ("racy git"), so such a file is re-hashed.
const RACY_WINDOW_MS: i64 = 2000;
/// Bytes inspected for a NUL (git's and ripgrep's heuristic).
const BINARY_PROBE: usize = 8192;
/// Average line length above which a file is treated as generated or minified.
const GENERATED_AVG_LINE: usize = 150;
const GENERATED_MIN_ALNUM: f64 = 0.25;

/// Progress of a run: `committed` counts files whose writes are committed, out of `total`.
#[derive(Debug, Default)]
pub struct Progress {
    pub total: AtomicU64,
    pub committed: Arc<AtomicU64>,
    pub cancel: AtomicBool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseTimings {
    pub walk: f64,
    pub read_hash: f64,
    pub parse: f64,
    pub write: f64,
    pub total: f64,
}

/// The summary of one run (spec/memory.md §2.6).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexStats {
    pub files_seen: u64,
    pub indexed: u64,
    pub unchanged: u64,
    pub touched: u64,
    pub partial: u64,
    pub deleted: u64,
    pub lossy: u64,
    pub skipped: BTreeMap<SkipReason, u64>,
    pub other_files: u64,
    pub chunks: ChunkCounts,
    pub id_collisions: u64,
    pub total_chunks: u64,
    pub timings_ms: PhaseTimings,
    pub store_bytes: u64,
    pub warnings: Vec<String>,
    pub cancelled: bool,
}

/// What to index and how.
pub struct IndexRequest<'a> {
    /// The workspace root (the folder holding `.aurora/`).
    pub root: &'a Path,
    /// The root, a folder under it, or one file: nothing outside it is touched.
    pub scope: &'a Path,
    pub store: &'a StorePath,
    pub config: &'a Config,
    /// Drop every file, chunk, FTS row and edge first (access history is kept).
    pub rebuild: bool,
}

/// The store's `meta` versions this build writes (a change forces a re-chunk).
pub fn store_versions(tokenizer: &Tokenizer) -> Vec<(&'static str, String)> {
    vec![("chunker_version", CHUNKER_VERSION.to_string()), ("tokenizer_version", tokenizer.version_tag())]
}

/// Runs one reconcile of `req.scope` against the store.
#[tracing::instrument(skip_all, fields(scope = %req.scope.display()))]
pub fn index(req: &IndexRequest<'_>, progress: &Progress) -> Result<IndexStats, IndexError> {
    let tokenizer = Tokenizer::new(req.config.memory.tokenizer.stemming);
    let writer = Writer::open(req.store, &store_versions(&tokenizer))?;
    let mut stats = index_with_writer(req, progress, &writer)?;
    let written = writer.finish()?;
    if let Some(e) = &written.first_error {
        return Err(IndexError::Store(StoreError::WriterGone(rolled_back(written.failed_batches, e, req.store))));
    }
    stats.store_bytes = req.store.size_bytes();
    Ok(stats)
}

/// Same as [`index`], through a writer the caller keeps open (the language server holds one per
/// folder for the whole session). Everything this run queued is committed when it returns; the
/// writer is neither checkpointed nor stopped.
#[tracing::instrument(skip_all, fields(scope = %req.scope.display()))]
pub fn index_with_writer(
    req: &IndexRequest<'_>,
    progress: &Progress,
    writer: &Writer,
) -> Result<IndexStats, IndexError> {
    let started = Instant::now();
    let cfg = &req.config.indexing;
    let tokenizer = Tokenizer::new(req.config.memory.tokenizer.stemming);
    let root = req.root;
    let scope_rel = scope_prefix(root, req.scope)?;
    let before = writer.sync()?;

    if req.rebuild {
        writer.send_bulk(Op::Clear)?;
        writer.sync()?;
    }
    let t_walk = Instant::now();
    let deny = crate::privacy::DenyList::new(root, &req.config.privacy.deny_globs);
    let walked = walk::walk(root, req.scope, cfg, &deny);
    let walk_ms = ms(t_walk);

    let reader = crate::store::open_reader(req.store)?;
    let stored = match &scope_rel {
        Scope::Folder(prefix) => read::files_under(&reader, prefix)?,
        Scope::File(path) => read::file(&reader, path)?.map(|f| (path.clone(), f)).into_iter().collect(),
    };
    drop(reader);

    let mut stats = IndexStats {
        files_seen: (walked.files.len() + walked.skipped.len()) as u64,
        other_files: walked.other_files,
        ..IndexStats::default()
    };
    if walked.truncated {
        stats.warnings.push(format!(
            "workspace too large: first {} files indexed; narrow the root or add ignores",
            cfg.max_files
        ));
    }
    if walked.names_not_utf8 > 0 {
        *stats.skipped.entry(SkipReason::PathNotUtf8).or_default() += walked.names_not_utf8;
    }
    for dir in &walked.unreadable_dirs {
        *stats.skipped.entry(SkipReason::Unreadable).or_default() += 1;
        stats.warnings.push(format!("cannot read folder {dir}: files stored under it are kept"));
    }

    // Files gone from disk: stored, in scope, not seen by this walk. Never those under an
    // unreadable folder, nor any after a truncated walk.
    let seen: HashSet<&str> =
        walked.files.iter().map(|f| f.path.as_str()).chain(walked.skipped.iter().map(|s| s.path.as_str())).collect();
    let gone: Vec<String> = if walked.truncated {
        Vec::new()
    } else {
        stored
            .keys()
            .filter(|path| !seen.contains(path.as_str()))
            .filter(|path| !walked.unreadable_dirs.iter().any(|d| path.starts_with(&format!("{d}/"))))
            .cloned()
            .collect()
    };
    drop(seen);
    // A new path with the content of a vanished one is a rename: its chunks inherit the history.
    let gone_by_hash: HashMap<Vec<u8>, String> =
        gone.iter().filter_map(|p| Some((stored.get(p)?.content_hash.clone()?, p.clone()))).collect();

    // Decide from `stat` alone what needs reading.
    let mut work = Vec::new();
    for file in walked.files {
        match stored.get(&file.path) {
            Some(s) if unchanged_by_stat(s, &file, cfg) => match s.reason.as_deref().and_then(SkipReason::parse) {
                // Still skipped for the same reason: counted as skipped, not read again.
                Some(reason) if s.status == "skipped" => *stats.skipped.entry(reason).or_default() += 1,
                _ => stats.unchanged += 1,
            },
            s => work.push((file, s.cloned())),
        }
    }
    progress.total.store((work.len() + walked.skipped.len() + gone.len()) as u64, Ordering::Relaxed);
    let committed = progress.committed.clone();
    let committed_base = writer.committed_files();
    committed.store(0, Ordering::Relaxed);
    let report = || committed.store(writer.committed_files() - committed_base, Ordering::Relaxed);

    for skip in &walked.skipped {
        *stats.skipped.entry(skip.reason).or_default() += 1;
        let row = skipped_row(&skip.path, 0, 0, skip.reason, skip.error.clone());
        writer.send_bulk(Op::Skip { row })?;
    }

    // Parse and chunk on the pool; results go to the writer as they finish.
    let totals = Totals::default();
    let opts = python::ChunkOptions {
        max_nesting: cfg.max_nesting,
        parse_timeout_ms: cfg.parse_timeout_ms,
        index_docstrings: cfg.index_docstrings,
    };
    let ctx = WorkerCtx { cfg, opts: &opts, tokenizer: &tokenizer, totals: &totals };
    let send_result: Result<(), StoreError> = work.par_iter().try_for_each(|(file, stored)| {
        if progress.cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
        let op = ctx.process(file, stored.as_ref());
        report();
        let renamed_from = match (&op, stored) {
            (Some(Op::File { row, .. }), None) => row.content_hash.and_then(|h| gone_by_hash.get(&h[..])),
            _ => None,
        };
        if let Some(op) = op {
            writer.send_bulk(op)?;
        }
        if let Some(from) = renamed_from {
            writer.send_bulk(Op::CarryHistory { from: from.clone(), to: file.path.clone() })?;
        }
        Ok(())
    });
    send_result?;
    stats.cancelled = progress.cancel.load(Ordering::Relaxed);

    // Unchanged files were walked but are not in `work`; every other stored file is gone.
    for path in gone {
        if stats.cancelled {
            break;
        }
        writer.send_bulk(Op::Delete { path })?;
        stats.deleted += 1;
        report();
    }
    if !stats.cancelled {
        writer.send_bulk(Op::PruneOrphanHistory)?;
    }
    let t_write = Instant::now();
    let written = writer.sync()?;
    report();
    if written.failed_batches > before.failed_batches
        && let Some(e) = &written.first_error
    {
        return Err(IndexError::Store(StoreError::WriterGone(rolled_back(
            written.failed_batches - before.failed_batches,
            e,
            req.store,
        ))));
    }

    stats.indexed = totals.indexed.load(Ordering::Relaxed);
    stats.touched = totals.touched.load(Ordering::Relaxed);
    stats.partial = totals.partial.load(Ordering::Relaxed);
    stats.lossy = totals.lossy.load(Ordering::Relaxed);
    for (reason, n) in totals.skipped.into_inner().expect("no worker panicked") {
        *stats.skipped.entry(reason).or_default() += n;
    }
    stats.chunks = chunk_counts_since(&written.chunks, &before.chunks);
    stats.id_collisions = written.id_collisions - before.id_collisions;
    if written.id_collisions > 0 {
        stats.warnings.push(format!("{} chunk id collision(s): the newer chunks were dropped", written.id_collisions));
    }
    let reader = crate::store::open_reader(req.store)?;
    stats.total_chunks = read::chunk_count(&reader)?;
    stats.store_bytes = req.store.size_bytes();
    stats.timings_ms = PhaseTimings {
        walk: walk_ms,
        read_hash: totals.read_ns.load(Ordering::Relaxed) as f64 / 1e6,
        parse: totals.parse_ns.load(Ordering::Relaxed) as f64 / 1e6,
        write: ms(t_write),
        total: ms(started),
    };
    tracing::info!(
        "indexed {} files ({} unchanged) in {:.0} ms",
        stats.indexed,
        stats.unchanged,
        stats.timings_ms.total
    );
    Ok(stats)
}

/// The error of a pass whose writes failed: what failed, that nothing is lost, and what to do.
fn rolled_back(batches: u64, error: &str, store: &StorePath) -> String {
    let lower = error.to_ascii_lowercase();
    let hint = if lower.contains("full") || lower.contains("i/o") || lower.contains("disk") {
        format!(
            "; the store kept everything committed before (it is consistent) — if the disk is full, free space \
             where {} lives and index again: the next pass resumes from there",
            store.db.display()
        )
    } else {
        "; the store kept everything committed before (it is consistent); index again to retry".to_owned()
    };
    format!("{batches} batch(es) rolled back, first error: {error}{hint}")
}

/// Whether `privacy.denyGlobs` denies `path` (relative), with the compiled list cached per thread.
fn denied(path: &str, globs: &[String]) -> bool {
    thread_local! {
        static CACHE: std::cell::RefCell<Option<(Vec<String>, crate::privacy::DenyList)>> = const { std::cell::RefCell::new(None) };
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(g, _)| g.as_slice() != globs) {
            *c = Some((globs.to_vec(), crate::privacy::DenyList::new(Path::new(""), globs)));
        }
        c.as_ref().is_some_and(|(_, d)| d.denies(path))
    })
}

/// The writer op for the text of an editor buffer at relative `path` (origin `buffer`): what the
/// language server writes for unsaved text. The file's `mtime_ns` is 0 and its size is the
/// text's, so the next reconcile re-reads the file from disk. `old_tree` is the previous parse
/// of the buffer with every edit since applied (`Tree::edit`): only the edited regions are parsed
/// again. Returns the op and the new tree; `None` when the path is not of an indexed language or
/// parsing ran over `indexing.parseTimeoutMs`, or `privacy.denyGlobs` denies the path.
pub fn buffer_op(
    path: &str,
    text: &str,
    old_tree: Option<&tree_sitter::Tree>,
    config: &Config,
) -> Option<(Op, tree_sitter::Tree)> {
    language_for(path)?;
    if denied(path, &config.privacy.deny_globs) {
        return None;
    }
    let cfg = &config.indexing;
    let tokenizer = Tokenizer::new(config.memory.tokenizer.stemming);
    let opts = python::ChunkOptions {
        max_nesting: cfg.max_nesting,
        parse_timeout_ms: cfg.parse_timeout_ms,
        index_docstrings: cfg.index_docstrings,
    };
    let totals = Totals::default();
    let ctx = WorkerCtx { cfg, opts: &opts, tokenizer: &tokenizer, totals: &totals };
    let started = Instant::now();
    let tree = PARSER.with(|p| python::reparse(&mut p.borrow_mut(), text, old_tree, opts.parse_timeout_ms)).ok()?;
    let parsed = started.elapsed();
    let chunked = python::chunk_tree(&tree, path, text, &opts);
    tracing::debug!(
        "buffer {path}: {} parse {:.2} ms, chunk {:.2} ms",
        if old_tree.is_some() { "incremental" } else { "full" },
        parsed.as_secs_f64() * 1e3,
        (started.elapsed() - parsed).as_secs_f64() * 1e3
    );
    let file = Walked { path: path.to_owned(), abs: PathBuf::new(), size: text.len() as u64, mtime_ns: 0 };
    // Most chunks of a re-chunked buffer are unchanged: the writer tokenises only the ones it
    // inserts or updates.
    let path_doc = path_document(&tokenizer, path);
    let index_docstrings = opts.index_docstrings;
    let owned = Tokenizer::new(config.memory.tokenizer.stemming);
    let make: FtsMaker = Arc::new(move |chunk: &Chunk| fts_doc(&owned, chunk, &path_doc, index_docstrings));
    let mut op = ctx.file_op(&file, *blake3::hash(text.as_bytes()).as_bytes(), false, chunked, Some(make));
    if let Op::File { row, .. } = &mut op {
        row.origin = Origin::Buffer;
    }
    Some((op, tree))
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{} is not inside the workspace root {}", .scope.display(), .root.display())]
    OutsideRoot { scope: PathBuf, root: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
}

enum Scope {
    /// Relative folder path, `""` for the root.
    Folder(String),
    File(String),
}

fn scope_prefix(root: &Path, scope: &Path) -> Result<Scope, IndexError> {
    let outside = || IndexError::OutsideRoot { scope: scope.to_path_buf(), root: root.to_path_buf() };
    let rel = scope.strip_prefix(root).map_err(|_| outside())?;
    let text = rel.to_str().ok_or_else(outside)?.replace(std::path::MAIN_SEPARATOR, "/");
    Ok(if scope.is_file() { Scope::File(text) } else { Scope::Folder(text.trim_end_matches('/').to_owned()) })
}

fn unchanged_by_stat(s: &StoredFile, f: &Walked, cfg: &IndexingConfig) -> bool {
    let racy = s.mtime_ns / 1_000_000 > s.indexed_at - RACY_WINDOW_MS;
    let too_large_now = f.size > cfg.max_file_size_kb * 1024;
    let was_too_large = s.reason.as_deref() == Some(SkipReason::TooLarge.as_str());
    !s.buffer_origin
        && s.size == f.size
        && s.mtime_ns == f.mtime_ns
        && !racy
        && too_large_now == was_too_large
        && (s.content_hash.is_some() || s.status == "skipped")
}

fn skipped_row(path: &str, size: u64, mtime_ns: i64, reason: SkipReason, error: String) -> FileRow {
    FileRow {
        path: path.to_owned(),
        language: language_for(path).map(Language::as_str),
        module: None,
        size,
        mtime_ns,
        content_hash: None,
        origin: Origin::Disk,
        status: FileStatus::Skipped,
        reason: Some(reason.as_str().to_owned()),
        error: Some(error),
        lossy: false,
    }
}

#[derive(Default)]
struct Totals {
    indexed: AtomicU64,
    touched: AtomicU64,
    partial: AtomicU64,
    lossy: AtomicU64,
    read_ns: AtomicU64,
    parse_ns: AtomicU64,
    skipped: std::sync::Mutex<BTreeMap<SkipReason, u64>>,
}

struct WorkerCtx<'a> {
    cfg: &'a IndexingConfig,
    opts: &'a python::ChunkOptions,
    tokenizer: &'a Tokenizer,
    totals: &'a Totals,
}

thread_local! {
    /// One parser per worker thread: a `Parser` is not `Sync`.
    static PARSER: RefCell<tree_sitter::Parser> = RefCell::new(python::new_parser());
}

impl WorkerCtx<'_> {
    /// The writer op for one changed-by-stat file, or `None` when it vanished.
    fn process(&self, file: &Walked, stored: Option<&StoredFile>) -> Option<Op> {
        let skip = |reason: SkipReason, error: String| {
            *self.totals.skipped.lock().expect("no worker panicked").entry(reason).or_default() += 1;
            Some(Op::Skip { row: skipped_row(&file.path, file.size, file.mtime_ns, reason, error) })
        };
        if file.size > self.cfg.max_file_size_kb * 1024 {
            return skip(
                SkipReason::TooLarge,
                format!("{} KB is over indexing.maxFileSizeKb = {}", file.size / 1024, self.cfg.max_file_size_kb),
            );
        }
        let t_read = Instant::now();
        let bytes = match std::fs::read(&file.abs) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Op::Delete { path: file.path.clone() }),
            Err(e) => return skip(SkipReason::Unreadable, e.to_string()),
        };
        let hash: [u8; 32] = *blake3::hash(&bytes).as_bytes();
        self.totals.read_ns.fetch_add(t_read.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if let Some(s) = stored
            && s.content_hash.as_deref() == Some(&hash[..])
            && s.status != "skipped"
        {
            self.totals.touched.fetch_add(1, Ordering::Relaxed);
            return Some(Op::Touch { path: file.path.clone(), size: file.size, mtime_ns: file.mtime_ns });
        }
        if bytes[..bytes.len().min(BINARY_PROBE)].contains(&0) {
            return skip(SkipReason::Binary, "NUL byte in the first 8 KiB".into());
        }
        if self.cfg.skip_generated
            && let Some(why) = looks_generated(&bytes)
        {
            return skip(SkipReason::Generated, why);
        }
        let (text, lossy) = match String::from_utf8(bytes) {
            Ok(t) => (t, false),
            Err(e) => match self.cfg.invalid_utf8 {
                InvalidUtf8::Skip => {
                    return skip(SkipReason::InvalidUtf8, format!("not UTF-8: {}", e.utf8_error()));
                }
                InvalidUtf8::Lossy => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
            },
        };
        let t_parse = Instant::now();
        let chunked = PARSER.with(|p| python::chunk_file(&mut p.borrow_mut(), &file.path, &text, self.opts));
        let Ok(chunked) = chunked else {
            return skip(
                SkipReason::ParseTimeout,
                format!("parsing took over indexing.parseTimeoutMs = {}", self.cfg.parse_timeout_ms),
            );
        };
        let op = self.file_op(file, hash, lossy, chunked, None);
        self.totals.parse_ns.fetch_add(t_parse.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.totals.indexed.fetch_add(1, Ordering::Relaxed);
        if lossy {
            self.totals.lossy.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("{}: not valid UTF-8, indexed with replacement characters", file.path);
        }
        Some(op)
    }

    /// The op for a parsed file. With `deferred`, FTS documents are made by the writer, only for
    /// the chunks it inserts or updates; else they are made here.
    fn file_op(
        &self,
        file: &Walked,
        hash: [u8; 32],
        lossy: bool,
        chunked: ChunkedFile,
        deferred: Option<FtsMaker>,
    ) -> Op {
        let errors = chunked.syntax_errors;
        let (status, reason, error) = if errors == 0 {
            (FileStatus::Ok, None, None)
        } else {
            self.totals.partial.fetch_add(1, Ordering::Relaxed);
            let first = chunked.first_error_line.map(|l| format!(", first at line {}", l + 1)).unwrap_or_default();
            let plural = if errors == 1 { "" } else { "s" };
            (
                FileStatus::Partial,
                Some("syntax_error".to_owned()),
                Some(format!("{errors} syntax error{plural}{first}")),
            )
        };
        let path_doc = path_document(self.tokenizer, &file.path);
        let chunks = match deferred {
            Some(make) => {
                chunked.chunks.into_iter().map(|chunk| ChunkWrite { chunk, fts: Fts::Deferred(make.clone()) }).collect()
            }
            None => chunked
                .chunks
                .into_iter()
                .map(|chunk| fts_document(self.tokenizer, chunk, &path_doc, self.opts))
                .collect(),
        };
        Op::File {
            row: FileRow {
                path: file.path.clone(),
                language: Some(Language::Python.as_str()),
                module: Some(python::module_name(&file.path)),
                size: file.size,
                mtime_ns: file.mtime_ns,
                content_hash: Some(hash),
                origin: Origin::Disk,
                status,
                reason,
                error,
                lossy,
            },
            chunks,
            syntax_errors: errors > 0,
        }
    }
}

/// `Some(why)` when the bytes look minified or generated (Tabby's heuristics).
fn looks_generated(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
    let avg = bytes.len() / lines;
    if avg > GENERATED_AVG_LINE {
        return Some(format!("average line of {avg} bytes looks generated or minified"));
    }
    let alnum = bytes.iter().filter(|b| b.is_ascii_alphanumeric() || **b >= 0x80).count() as f64 / bytes.len() as f64;
    (alnum < GENERATED_MIN_ALNUM).then(|| format!("only {:.0}% alphanumeric: looks generated", alnum * 100.0))
}

/// Tokens of a path's folders and file stem.
fn path_document(tokenizer: &Tokenizer, path: &str) -> String {
    let stem = path.rsplit_once('.').map_or(path, |(s, _)| s);
    let mut out = String::new();
    tokenizer.push_document(stem, &mut out);
    out
}

/// The FTS document of a chunk (spec/memory.md §3.6); tokenising happens here, on the worker.
pub fn fts_document(tokenizer: &Tokenizer, chunk: Chunk, path_doc: &str, opts: &python::ChunkOptions) -> ChunkWrite {
    let fts = fts_doc(tokenizer, &chunk, path_doc, opts.index_docstrings);
    ChunkWrite { chunk, fts: Fts::Ready(fts) }
}

/// The FTS columns of one chunk.
fn fts_doc(tokenizer: &Tokenizer, chunk: &Chunk, path_doc: &str, index_docstrings: bool) -> FtsDoc {
    let mut fts = FtsDoc { path: path_doc.to_owned(), ..FtsDoc::default() };
    // A module's dotted name repeats its path, which has its own column: the name alone here.
    let name = if chunk.kind == crate::index::chunk::ChunkKind::Module { &chunk.name } else { &chunk.qualified_name };
    tokenizer.push_document(name, &mut fts.name);
    if let Some(sig) = &chunk.signature {
        tokenizer.push_document(sig, &mut fts.signature);
    }
    for d in &chunk.decorators {
        tokenizer.push_document(d, &mut fts.signature);
    }
    if index_docstrings && let Some(doc) = &chunk.docstring {
        tokenizer.push_document(doc, &mut fts.doc);
    }
    tokenizer.push_document(&chunk.words.body, &mut fts.body);
    tokenizer.push_document(&chunk.words.text, &mut fts.text);
    fts
}

/// What a run added to a writer's running totals.
fn chunk_counts_since(now: &ChunkCounts, before: &ChunkCounts) -> ChunkCounts {
    ChunkCounts {
        inserted: now.inserted - before.inserted,
        updated: now.updated - before.updated,
        moved: now.moved - before.moved,
        unchanged: now.unchanged - before.unchanged,
        deleted: now.deleted - before.deleted,
        stale: now.stale - before.stale,
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}
