//! The server's state: workspace folders with their stores and writers, open documents, the
//! configuration, and the background work that keeps the stores current (indexing passes,
//! watchers, debounced buffer writes).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tower_lsp_server::Client;

use crate::config::{Config, Problem};
use crate::index::indexer::{self, IndexRequest, IndexStats, Progress};
use crate::index::lang::language_for;
use crate::lsp::convert::Encoding;
use crate::lsp::documents::{Documents, Target};
use crate::lsp::lsp;
use crate::lsp::progress::WorkDone;
use crate::memory::tokenize::Tokenizer;
use crate::store::writer::{Op, Writer};
use crate::store::{StorePath, read};
use crate::workspace::watch::{self, WatchEvent, Watcher};

/// Longest wait for the writer at shutdown before giving up (spec/lsp.md §1.3).
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);
/// Indexing progress is polled this often; reports go out only when their text changes.
const PROGRESS_TICK: Duration = Duration::from_millis(100);
/// Upper bound of `indexing.debounceMs` (spec/lsp.md §7.2).
const MAX_DEBOUNCE_MS: u64 = 5000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum FolderState {
    Opening,
    Indexing,
    Ready,
    Error(String),
}

/// One workspace folder: its store, the single writer of that store, and its indexing state.
pub(crate) struct Folder {
    /// Canonical path of the folder.
    pub root: PathBuf,
    /// The folder's URI as the client gave it (outgoing URIs are built from it).
    pub uri: String,
    pub name: String,
    pub store: StorePath,
    writer: Mutex<Option<Arc<Writer>>>,
    pub state: Mutex<FolderState>,
    /// The running (or last) indexing pass.
    pub pass: Mutex<Arc<Progress>>,
    /// Indexer runs of one folder take turns (the reconcile reads the catalog first).
    index_turn: Mutex<()>,
    watcher: Mutex<Option<Watcher>>,
    pub watcher_state: Mutex<&'static str>,
}

impl Folder {
    pub fn new(root: PathBuf, uri: String) -> Folder {
        let name = root.file_name().map_or_else(|| root.display().to_string(), |n| n.to_string_lossy().into_owned());
        Folder {
            store: StorePath::for_root(&root),
            root,
            uri,
            name,
            writer: Mutex::new(None),
            state: Mutex::new(FolderState::Opening),
            pass: Mutex::new(Arc::new(Progress::default())),
            index_turn: Mutex::new(()),
            watcher: Mutex::new(None),
            watcher_state: Mutex::new("off"),
        }
    }

    pub fn writer(&self) -> Option<Arc<Writer>> {
        lock(&self.writer).clone()
    }

    pub fn state(&self) -> FolderState {
        lock(&self.state).clone()
    }

    fn set_state(&self, state: FolderState) {
        *lock(&self.state) = state;
    }

    /// The path of `abs` relative to the folder, `/`-separated, if inside it.
    pub fn relative(&self, abs: &Path) -> Option<String> {
        let rel = abs.strip_prefix(&self.root).ok()?;
        let text = rel.to_str()?.replace(std::path::MAIN_SEPARATOR, "/");
        (!text.is_empty()).then_some(text)
    }
}

/// What `initialize` learned about the client.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientFlags {
    pub work_done_progress: bool,
}

pub(crate) struct Session {
    pub client: Client,
    encoding: OnceLock<Encoding>,
    config: RwLock<Arc<Config>>,
    pub problems: Mutex<Vec<Problem>>,
    pub config_sources: Mutex<Vec<String>>,
    pub flags: Mutex<ClientFlags>,
    folders: RwLock<Vec<Arc<Folder>>>,
    pub documents: Documents,
    /// Buffer writes take turns, so two flushes of one document cannot land out of order.
    flush_turn: Mutex<()>,
    generation: AtomicU64,
    pub shutdown_requested: AtomicBool,
}

impl Session {
    pub fn new(client: Client) -> Session {
        Session {
            client,
            encoding: OnceLock::new(),
            config: RwLock::new(Arc::new(Config::default())),
            problems: Mutex::new(Vec::new()),
            config_sources: Mutex::new(Vec::new()),
            flags: Mutex::new(ClientFlags::default()),
            folders: RwLock::new(Vec::new()),
            documents: Documents::default(),
            flush_turn: Mutex::new(()),
            generation: AtomicU64::new(0),
            shutdown_requested: AtomicBool::new(false),
        }
    }

    pub fn encoding(&self) -> Encoding {
        *self.encoding.get_or_init(|| Encoding::Utf16)
    }

    pub fn set_encoding(&self, enc: Encoding) {
        let _ = self.encoding.set(enc);
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn set_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }

    pub fn folders(&self) -> Vec<Arc<Folder>> {
        self.folders.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Sets the workspace folders; a folder inside another gets no store of its own.
    pub fn set_folders(&self, mut folders: Vec<Folder>) {
        folders.sort_by(|a, b| a.root.cmp(&b.root));
        let mut kept: Vec<Arc<Folder>> = Vec::new();
        for f in folders {
            if !kept.iter().any(|k| f.root.starts_with(&k.root)) {
                kept.push(Arc::new(f));
            }
        }
        *self.folders.write().unwrap_or_else(PoisonError::into_inner) = kept;
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Where a document is indexed: inside a folder, a `file:` URI, of an indexed language.
    pub fn target_for(&self, uri: &lsp::Uri) -> Option<Target> {
        let path = crate::lsp::convert::uri_to_path(uri)?;
        let path = path.canonicalize().unwrap_or(path);
        let folder = self.folders().into_iter().find(|f| path.starts_with(&f.root))?;
        let rel = folder.relative(&path)?;
        language_for(&rel)?;
        if watch::is_ignored(&folder.root, &rel, false) {
            return None;
        }
        Some(Target { folder, rel })
    }

    // ----- buffer writes -------------------------------------------------------------------

    /// Writes every dirty document (or only `uri`) to its store and waits until it is committed.
    /// Blocking: call from `spawn_blocking`.
    pub fn flush_blocking(&self, only: Option<&str>) {
        let _turn = lock(&self.flush_turn);
        let work = self.documents.take_dirty(only);
        if work.is_empty() {
            return;
        }
        let config = self.config();
        let mut writers: Vec<Arc<Writer>> = Vec::new();
        for dirty in work {
            let target = &dirty.target;
            let Some(writer) = target.folder.writer() else { continue };
            let Some((op, tree)) = indexer::buffer_op(&target.rel, &dirty.text, dirty.tree.as_ref(), &config) else {
                continue;
            };
            self.documents.parsed(&dirty.uri, dirty.changes, tree);
            if let Err(e) = writer.send(op) {
                tracing::error!("writing the buffer of {}: {e}", target.rel);
                continue;
            }
            if !writers.iter().any(|w| Arc::ptr_eq(w, &writer)) {
                writers.push(writer);
            }
        }
        for writer in writers {
            if let Err(e) = writer.sync() {
                tracing::error!("committing buffer writes: {e}");
            }
        }
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Flushes every dirty document from async code.
    pub async fn flush_all(self: &Arc<Self>) {
        let session = self.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || session.flush_blocking(None)).await {
            tracing::error!("flushing buffers: {e}");
        }
    }

    /// Writes `uri` after `indexing.debounceMs` unless another change comes first.
    pub fn schedule_write(self: &Arc<Self>, uri: String, changes: u64) {
        let delay = Duration::from_millis(self.config().indexing.debounce_ms.min(MAX_DEBOUNCE_MS));
        let session = self.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
                if !session.documents.is_current(&uri, changes) {
                    return; // a later change scheduled its own write
                }
            }
            let s = session.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || s.flush_blocking(Some(&uri))).await {
                tracing::error!("writing a buffer: {e}");
            }
        });
    }

    // ----- indexing ------------------------------------------------------------------------

    /// Runs the indexer over `scope` (the folder or one file in it) through the folder's writer,
    /// then rewrites the open buffers of the folder, which take precedence over the disk.
    /// Blocking.
    fn run_index(&self, folder: &Arc<Folder>, scope: &Path, progress: &Progress) -> Result<IndexStats, String> {
        let writer = folder.writer().ok_or_else(|| "the store is not open".to_owned())?;
        let _turn = lock(&folder.index_turn);
        let config = self.config();
        let req = IndexRequest { root: &folder.root, scope, store: &folder.store, config: &config, rebuild: false };
        let stats = indexer::index_with_writer(&req, progress, &writer).map_err(|e| format!("{e:#}"))?;
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.documents.mark_dirty_in(folder);
        self.flush_blocking(None);
        Ok(stats)
    }

    /// Opens the folder's store and takes its writer. Blocking.
    fn open_store(&self, folder: &Folder) -> Result<(), String> {
        let tokenizer = Tokenizer::new(self.config().memory.tokenizer.stemming);
        let writer = Writer::open(&folder.store, &indexer::store_versions(&tokenizer))
            .map_err(|e| format!("the index for '{}' could not be opened: {e}", folder.name))?;
        *lock(&folder.writer) = Some(Arc::new(writer));
        Ok(())
    }

    /// `initialized` for one folder: store, watcher, then a full indexing pass under progress.
    pub async fn start_folder(self: Arc<Self>, folder: Arc<Folder>) {
        let s = self.clone();
        let f = folder.clone();
        let opened = tokio::task::spawn_blocking(move || s.open_store(&f)).await;
        match opened {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!("{e}");
                folder.set_state(FolderState::Error(e));
                return;
            }
            Err(e) => {
                tracing::error!("opening the store of {}: {e}", folder.name);
                folder.set_state(FolderState::Error("opening the store failed".into()));
                return;
            }
        }
        self.start_watcher(&folder);
        self.index_pass(folder).await;
    }

    /// One full pass over a folder, reported as `$/progress` ("Indexing 120/884 files").
    pub async fn index_pass(self: Arc<Self>, folder: Arc<Folder>) {
        let progress = Arc::new(Progress::default());
        *lock(&folder.pass) = progress.clone();
        folder.set_state(FolderState::Indexing);
        let supported = lock(&self.flags).work_done_progress;
        let id = format!("aurora-index-{}-{}", folder.name, self.generation());
        let mut work =
            WorkDone::begin(&self.client, supported, &id, "Aurora: Indexing", format!("Scanning {}", folder.name))
                .await;
        let started = Instant::now();
        let (s, f, p) = (self.clone(), folder.clone(), progress.clone());
        let mut job = tokio::task::spawn_blocking(move || s.run_index(&f, &f.root.clone(), &p));
        let multi = self.folders().len() > 1;
        let label = |done: u64, total: u64| {
            if multi {
                format!("Indexing {}: {done}/{total} files", folder.name)
            } else {
                format!("Indexing {done}/{total} files")
            }
        };
        let result = loop {
            tokio::select! {
                result = &mut job => break result,
                () = tokio::time::sleep(PROGRESS_TICK) => {
                    let total = progress.total.load(Ordering::Relaxed);
                    if total > 0 {
                        let done = progress.committed.load(Ordering::Relaxed).min(total);
                        work.report(label(done, total), (100 * done / total) as u32).await;
                    }
                }
            }
        };
        let total = progress.total.load(Ordering::Relaxed);
        work.report(label(total, total), 100).await;
        let secs = started.elapsed().as_secs_f64();
        match result {
            Ok(Ok(stats)) => {
                let skipped: u64 = stats.skipped.values().sum();
                let message = format!(
                    "Indexed {} files, {} chunks in {secs:.1} s ({skipped} skipped)",
                    stats.indexed + stats.unchanged + stats.touched,
                    stats.total_chunks
                );
                tracing::info!("{}: {message}", folder.name);
                folder.set_state(FolderState::Ready);
                work.end(message).await;
            }
            Ok(Err(e)) => {
                tracing::error!("indexing {}: {e}", folder.name);
                folder.set_state(FolderState::Error(e.clone()));
                work.end(format!("Indexing failed: {e}")).await;
            }
            Err(e) => {
                tracing::error!("indexing {} panicked: {e}", folder.name);
                folder.set_state(FolderState::Error("indexing failed; details are in the Aurora log".into()));
                work.end("Indexing failed; details are in the Aurora log.".into()).await;
            }
        }
    }

    // ----- watching ------------------------------------------------------------------------

    fn start_watcher(self: &Arc<Self>, folder: &Arc<Folder>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let debounce = Duration::from_millis(self.config().indexing.watch_debounce_ms.clamp(20, 10_000));
        match watch::watch(&folder.root, debounce, move |event| {
            let _ = tx.send(event);
        }) {
            Ok(w) => {
                *lock(&folder.watcher) = Some(w);
                *lock(&folder.watcher_state) = "server";
            }
            Err(e) => {
                tracing::warn!("watching {} failed: {e}; changes made outside the editor are not seen", folder.name);
                *lock(&folder.watcher_state) = "degraded";
                return;
            }
        }
        let session = self.clone();
        let folder = folder.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if session.shutdown_requested.load(Ordering::Relaxed) {
                    break;
                }
                match event {
                    WatchEvent::Changed(paths) => {
                        let (s, f) = (session.clone(), folder.clone());
                        if let Err(e) = tokio::task::spawn_blocking(move || s.apply_disk_changes(&f, paths)).await {
                            tracing::error!("applying file changes in {}: {e}", folder.name);
                        }
                    }
                    WatchEvent::Degraded(why) => {
                        tracing::warn!("file watcher of {}: {why}; reconciling the folder", folder.name);
                        *lock(&folder.watcher_state) = "degraded";
                        session.clone().index_pass(folder.clone()).await;
                    }
                }
            }
        });
    }

    /// Brings the store up to date with changed paths on disk. Open documents are skipped (their
    /// buffer wins until closed). Blocking.
    fn apply_disk_changes(&self, folder: &Arc<Folder>, paths: Vec<PathBuf>) {
        let Some(writer) = folder.writer() else { return };
        let open = self.documents.open_paths_in(folder);
        let mut deleted = false;
        for path in paths {
            let Some(rel) = folder.relative(&path) else { continue };
            if open.contains(&rel) {
                continue;
            }
            if path.is_file() {
                if language_for(&rel).is_none() || watch::is_ignored(&folder.root, &rel, false) {
                    continue;
                }
                if let Err(e) = self.run_index(folder, &path, &Progress::default()) {
                    tracing::warn!("indexing {rel}: {e}");
                }
            } else if !path.exists() {
                // A file or a whole folder vanished: every stored file at or under it goes.
                let mut gone: Vec<String> = Vec::new();
                if language_for(&rel).is_some() {
                    gone.push(rel.clone());
                }
                match crate::store::open_reader(&folder.store).and_then(|r| read::files_under(&r, &rel)) {
                    Ok(under) => gone.extend(under.into_keys()),
                    Err(e) => tracing::warn!("listing files under {rel}: {e}"),
                }
                for path in gone {
                    if open.contains(&path) {
                        continue;
                    }
                    tracing::debug!("{path} was deleted");
                    if let Err(e) = writer.send(Op::Delete { path }) {
                        tracing::error!("{e}");
                    }
                    deleted = true;
                }
            }
        }
        if deleted {
            if let Err(e) = writer.sync() {
                tracing::error!("committing deletions: {e}");
            }
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `didClose`: the disk is authoritative again for `target`. Async wrapper over the indexer.
    pub async fn reconcile_file(self: &Arc<Self>, target: Target) {
        let session = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let abs = target.folder.root.join(&target.rel);
            if abs.is_file() {
                session.run_index(&target.folder, &abs, &Progress::default()).map(drop)
            } else {
                // Closed without ever being saved: nothing of it stays.
                session.apply_disk_changes(&target.folder, vec![abs]);
                Ok(())
            }
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("re-indexing a closed document: {e}"),
            Err(e) => tracing::error!("re-indexing a closed document: {e}"),
        }
    }

    // ----- shutdown ------------------------------------------------------------------------

    /// Stops passes and watchers, writes pending buffers, and commits and checkpoints every store.
    pub async fn shutdown(self: &Arc<Self>) {
        self.shutdown_requested.store(true, Ordering::Relaxed);
        let folders = self.folders();
        for folder in &folders {
            lock(&folder.pass).cancel.store(true, Ordering::Relaxed);
            lock(&folder.watcher).take();
        }
        let session = self.clone();
        let work = tokio::task::spawn_blocking(move || {
            session.flush_blocking(None);
            for folder in session.folders() {
                if let Some(writer) = lock(&folder.writer).take()
                    && let Err(e) = writer.send_bulk(Op::Checkpoint).and_then(|()| writer.sync().map(drop))
                {
                    tracing::error!("closing the store of {}: {e}", folder.name);
                }
            }
        });
        if tokio::time::timeout(SHUTDOWN_FLUSH, work).await.is_err() {
            tracing::error!("the stores did not finish writing within 5 s; pending writes were dropped");
        }
    }
}
