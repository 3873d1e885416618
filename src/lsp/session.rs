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
use crate::lsp::jobs::Jobs;
use crate::lsp::lsp;
use crate::lsp::progress::WorkDone;
use crate::memory::tokenize::Tokenizer;
use crate::store::writer::{Op, Writer};
use crate::store::{StoreError, StorePath, read};
use crate::workspace::watch::{self, WatchEvent, Watcher};

/// Longest wait for the writer at shutdown before giving up (spec/lsp.md §1.3).
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);
/// Indexing progress is polled this often; reports go out only when their text changes.
const PROGRESS_TICK: Duration = Duration::from_millis(100);
/// Read connections kept per folder.
const READER_POOL: usize = 4;
/// The store file under a running server is checked this often.
const STORE_CHECK: Duration = Duration::from_secs(2);
/// A store locked by another server is tried again this often (spec/lsp.md §3.5).
const LOCK_RETRY: Duration = Duration::from_secs(10);
/// Longest wait for the client's answer to `workspace/configuration`.
const CONFIG_PULL_WAIT: Duration = Duration::from_secs(5);
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
    /// Another process writes this store: search and ask read it, nothing is written; the lock
    /// is retried every 10 s (spec/lsp.md §3.5).
    ReadOnly(String),
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
    /// Removed from the workspace (or shut down): background work for it stops.
    pub closed: AtomicBool,
    /// Read connections kept between requests: their statement caches and page caches stay warm.
    readers: Mutex<Vec<rusqlite::Connection>>,
    /// SOAR's view of this folder, built on first use (see `lsp/soar.rs`); dropped with the writer.
    pub soar: Mutex<Option<crate::lsp::soar::FolderSoar>>,
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
            closed: AtomicBool::new(false),
            readers: Mutex::new(Vec::new()),
            soar: Mutex::new(None),
        }
    }

    pub fn writer(&self) -> Option<Arc<Writer>> {
        lock(&self.writer).clone()
    }

    /// Takes the writer out, with SOAR's view that holds it, so the write connection can close.
    fn take_writer(&self) -> Option<Arc<Writer>> {
        lock(&self.soar).take();
        lock(&self.writer).take()
    }

    pub fn state(&self) -> FolderState {
        lock(&self.state).clone()
    }

    fn set_state(&self, state: FolderState) {
        *lock(&self.state) = state;
    }

    /// A read connection to the store: a pooled one, or a new one. Give it back with
    /// [`Folder::give_back`]. Blocking.
    pub fn reader(&self) -> Result<rusqlite::Connection, StoreError> {
        if let Some(conn) = lock(&self.readers).pop() {
            return Ok(conn);
        }
        crate::store::open_reader(&self.store)
    }

    pub fn give_back(&self, conn: rusqlite::Connection) {
        let mut pool = lock(&self.readers);
        if pool.len() < READER_POOL && !self.closed.load(Ordering::Relaxed) {
            pool.push(conn);
        }
    }

    /// Drops the pooled connections (the store file is about to change under them).
    fn drop_readers(&self) {
        lock(&self.readers).clear();
    }

    /// The path of `abs` relative to the folder, `/`-separated, if inside it.
    pub fn relative(&self, abs: &Path) -> Option<String> {
        let rel = abs.strip_prefix(&self.root).ok()?;
        let text = rel.to_str()?.replace(std::path::MAIN_SEPARATOR, "/");
        (!text.is_empty()).then_some(text)
    }
}

/// What is wrong with a store file that the server has open, if anything: gone, or not SQLite.
fn store_problem(store: &StorePath) -> Option<&'static str> {
    use std::io::Read;
    let mut header = [0u8; 16];
    match std::fs::File::open(&store.db) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("was deleted"),
        Err(_) => None, // unreadable for a moment: the next check decides
        Ok(mut f) => match f.read_exact(&mut header) {
            Ok(()) if &header == b"SQLite format 3\0" => None,
            Ok(()) => Some("is damaged (not an SQLite database)"),
            Err(_) => Some("is damaged (truncated)"),
        },
    }
}

/// Moves a damaged store and its WAL files aside (`memory.db.corrupt-<ms>`), for inspection.
fn set_aside(store: &StorePath) {
    let stamp = crate::store::now_ms();
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", store.db.display()));
        if from.exists() {
            let to = PathBuf::from(format!("{}.corrupt-{stamp}{suffix}", store.db.display()));
            if let Err(e) = std::fs::rename(&from, &to) {
                tracing::warn!("setting {} aside: {e}; removing it", from.display());
                let _ = std::fs::remove_file(&from);
            }
        }
    }
}

/// Why a folder's store could not be opened for writing.
enum OpenFailure {
    /// Another process holds the writer lock.
    Locked(String),
    Failed(String),
}

/// What `initialize` learned about the client.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientFlags {
    pub work_done_progress: bool,
    /// The client answers `workspace/configuration`.
    pub configuration_pull: bool,
    /// The client accepts a dynamic registration of `workspace/didChangeWatchedFiles`.
    pub watched_files_registration: bool,
    /// `codeActionLiteralSupport`: actions, not bare commands.
    pub code_action_literals: bool,
    /// `CodeAction.disabled` is shown.
    pub code_action_disabled_support: bool,
    /// `WorkspaceEdit.documentChanges`.
    pub document_changes: bool,
    /// `resourceOperations` includes `create`.
    pub create_files: bool,
    /// `changeAnnotationSupport`: edits can ask for confirmation.
    pub change_annotations: bool,
    /// `window/showDocument`.
    pub show_document: bool,
    /// `experimental.aurora.answerView`: the client shows answers itself.
    pub answer_view: bool,
    /// The editor's `processId`, watched so the server never outlives it.
    pub editor_pid: Option<u32>,
}

/// The configuration layers the editor supplies (spec/lsp.md §7.1, layers 4 and 5).
#[derive(Clone, Copy, Debug)]
pub(crate) enum ConfigLayer {
    InitializationOptions,
    /// `workspace/configuration`, or `didChangeConfiguration.settings.aurora`.
    EditorSettings,
}

/// Config problems listed in one message before "and N more".
const SHOWN_PROBLEMS: usize = 5;

pub(crate) struct Session {
    pub client: Client,
    encoding: OnceLock<Encoding>,
    config: RwLock<Arc<Config>>,
    pub problems: Mutex<Vec<Problem>>,
    /// The problem set last shown to the user; the same set is not shown twice.
    shown_problems: Mutex<Vec<String>>,
    /// `initializationOptions` and the editor's settings, as sent.
    layers: Mutex<[serde_json::Value; 2]>,
    pub config_sources: Mutex<Vec<String>>,
    pub flags: Mutex<ClientFlags>,
    folders: RwLock<Vec<Arc<Folder>>>,
    pub documents: Documents,
    /// Buffer writes take turns, so two flushes of one document cannot land out of order.
    flush_turn: Mutex<()>,
    generation: AtomicU64,
    pub shutdown_requested: AtomicBool,
    /// Long jobs: slots, queue and cancellation by progress token.
    pub jobs: Arc<Jobs>,
    /// What the last model calls said about the provider (spec/lsp.md §4.4 `llm.state`).
    pub llm_health: Mutex<LlmHealth>,
}

/// The provider's health as the last questions saw it; `configured` until a call was made.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LlmHealth {
    /// `configured`, `ready`, `keyMissing`, `unreachable` or `failing`.
    pub state: &'static str,
    pub message: Option<String>,
    pub last_latency_ms: Option<u64>,
}

impl LlmHealth {
    /// The provider cannot be used right now (search still works).
    pub fn unavailable(&self) -> bool {
        matches!(self.state, "keyMissing" | "unreachable" | "failing")
    }
}

impl Session {
    pub fn new(client: Client) -> Session {
        Session {
            llm_health: Mutex::new(LlmHealth { state: "configured", ..LlmHealth::default() }),
            client,
            encoding: OnceLock::new(),
            config: RwLock::new(Arc::new(Config::default())),
            problems: Mutex::new(Vec::new()),
            shown_problems: Mutex::new(Vec::new()),
            layers: Mutex::new([serde_json::Value::Null, serde_json::Value::Null]),
            config_sources: Mutex::new(Vec::new()),
            flags: Mutex::new(ClientFlags::default()),
            folders: RwLock::new(Vec::new()),
            documents: Documents::default(),
            flush_turn: Mutex::new(()),
            generation: AtomicU64::new(0),
            shutdown_requested: AtomicBool::new(false),
            jobs: Jobs::new(crate::lsp::jobs::DEFAULT_RUNNING),
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

    pub fn flags(&self) -> ClientFlags {
        lock(&self.flags).clone()
    }

    // ----- configuration -------------------------------------------------------------------

    pub fn set_layer(&self, layer: ConfigLayer, value: serde_json::Value) {
        lock(&self.layers)[layer as usize] = value;
    }

    /// Rebuilds the configuration from every source (spec/lsp.md §7.1) and records its problems.
    /// Returns whether the configuration changed. Blocking (reads the TOML files).
    pub fn reload_config(&self) -> bool {
        let [init, editor] = lock(&self.layers).clone();
        let mut problems = Vec::new();
        let mut layer = |source: &str, value: serde_json::Value| match value {
            serde_json::Value::Object(_) | serde_json::Value::Null => value,
            serde_json::Value::Array(ref a) if a.is_empty() => serde_json::Value::Null,
            other => {
                problems.push(Problem {
                    source: source.into(),
                    key: String::new(),
                    message: format!("expected an object with the `aurora` settings, found {other}; ignored"),
                });
                serde_json::Value::Null
            }
        };
        let init = layer("initializationOptions", init);
        let editor = layer("editor settings", editor);
        let root = self.folders().first().map(|f| f.root.clone());
        let loaded = match Config::load_with_layers(
            root.as_deref(),
            &[("initializationOptions", init), ("editor settings", editor)],
        ) {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::warn!("reading configuration: {e}; keeping the current one");
                return false;
            }
        };
        problems.extend(loaded.problems.into_iter().map(|mut p| {
            // Editor settings are spelled with the `aurora.` prefix (spec/lsp.md §7.3).
            if (p.source == "initializationOptions" || p.source == "editor settings") && !p.key.is_empty() {
                p.key = format!("aurora.{}", p.key);
            }
            p
        }));
        *lock(&self.problems) = problems;
        *lock(&self.config_sources) = vec![
            "defaults".into(),
            "user file".into(),
            "folder file".into(),
            "initializationOptions".into(),
            "editor settings".into(),
        ];
        let changed = *self.config() != loaded.config;
        if self.config().llm != loaded.config.llm {
            // Another provider, model or key: what the old one did says nothing about it.
            *lock(&self.llm_health) = LlmHealth { state: "configured", ..LlmHealth::default() };
        }
        self.set_config(loaded.config);
        changed
    }

    /// Records what a SOAR run said about the provider: a model failure, or calls that succeeded.
    pub fn note_llm(&self, result: &Result<crate::soar::SoarResponse, crate::soar::SoarError>) {
        let Ok(r) = result else { return };
        let mut health = lock(&self.llm_health);
        match &r.metadata.llm_failure {
            Some(f) => {
                health.state = match f.kind {
                    crate::soar::error::LlmFailureKind::Unavailable if f.message.contains("not set") => "keyMissing",
                    crate::soar::error::LlmFailureKind::Unavailable => "unreachable",
                    _ => "failing",
                };
                health.message = Some(f.message.clone());
            }
            None if r.metadata.usage.calls > 0 => {
                health.state = "ready";
                health.message = None;
                health.last_latency_ms =
                    Some((r.metadata.total_duration_ms / f64::from(r.metadata.usage.calls.max(1))) as u64);
            }
            None => {}
        }
    }

    /// Records that the provider could not even be set up (e.g. its key variable is unset).
    pub fn note_llm_unusable(&self, message: &str) {
        let mut health = lock(&self.llm_health);
        health.state = if message.contains("not set") { "keyMissing" } else { "unreachable" };
        health.message = Some(message.to_owned());
    }

    /// Pulls the `aurora` section with `workspace/configuration` into the editor-settings layer.
    pub async fn pull_configuration(&self) {
        let item = lsp::ConfigurationItem { scope_uri: None, section: Some("aurora".into()) };
        match tokio::time::timeout(CONFIG_PULL_WAIT, self.client.configuration(vec![item])).await {
            Ok(Ok(mut values)) => {
                let value = if values.is_empty() { serde_json::Value::Null } else { values.swap_remove(0) };
                self.set_layer(ConfigLayer::EditorSettings, value);
            }
            Ok(Err(e)) => tracing::warn!("workspace/configuration failed: {e}"),
            Err(_) => tracing::warn!("the client did not answer workspace/configuration within 5 s"),
        }
    }

    /// Shows the configuration problems in one Warning message, unless this set was shown already.
    pub async fn report_problems(&self) {
        let problems: Vec<String> = lock(&self.problems).iter().map(ToString::to_string).collect();
        {
            let mut shown = lock(&self.shown_problems);
            if *shown == problems {
                return;
            }
            shown.clone_from(&problems);
        }
        for p in &problems {
            tracing::warn!("configuration: {p}");
        }
        if problems.is_empty() {
            return;
        }
        let mut message =
            format!("Aurora configuration: {}", problems[..problems.len().min(SHOWN_PROBLEMS)].join("; "));
        if problems.len() > SHOWN_PROBLEMS {
            message.push_str(&format!(" — and {} more; see Aurora: Show status", problems.len() - SHOWN_PROBLEMS));
        }
        let client = self.client.clone();
        tokio::spawn(async move { client.show_message(lsp::MessageType::WARNING, message).await });
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

    /// Adds a folder unless it lies inside a folder already served; returns it if added.
    pub fn add_folder(&self, folder: Folder) -> Option<Arc<Folder>> {
        let mut folders = self.folders.write().unwrap_or_else(PoisonError::into_inner);
        if folders.iter().any(|k| folder.root.starts_with(&k.root)) {
            tracing::info!("{} lies inside a served folder; it shares that folder's index", folder.root.display());
            return None;
        }
        let folder = Arc::new(folder);
        folders.push(folder.clone());
        folders.sort_by(|a, b| a.root.cmp(&b.root));
        Some(folder)
    }

    /// Removes the folder with this root; returns it.
    pub fn remove_folder(&self, root: &Path) -> Option<Arc<Folder>> {
        let mut folders = self.folders.write().unwrap_or_else(PoisonError::into_inner);
        let at = folders.iter().position(|f| f.root == root)?;
        Some(folders.remove(at))
    }

    /// Stops a folder's pass and watcher, writes its pending buffers, then commits, checkpoints
    /// and releases its store (the files stay on disk).
    pub async fn close_folder(self: &Arc<Self>, folder: Arc<Folder>) {
        folder.closed.store(true, Ordering::Relaxed);
        lock(&folder.pass).cancel.store(true, Ordering::Relaxed);
        lock(&folder.watcher).take();
        folder.drop_readers();
        let session = self.clone();
        let work = tokio::task::spawn_blocking(move || {
            session.flush_blocking(None);
            let _turn = lock(&folder.index_turn);
            if let Some(writer) = folder.take_writer()
                && let Err(e) = writer.send_bulk(Op::Checkpoint).and_then(|()| writer.sync().map(drop))
            {
                tracing::error!("closing the store of {}: {e}", folder.name);
            }
        });
        if tokio::time::timeout(SHUTDOWN_FLUSH, work).await.is_err() {
            tracing::error!("closing a folder's store took over 5 s; pending writes were dropped");
        }
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
    fn run_index(
        &self,
        folder: &Arc<Folder>,
        scope: &Path,
        progress: &Progress,
        rebuild: bool,
    ) -> Result<IndexStats, String> {
        let writer = folder.writer().ok_or_else(|| "the store is not open".to_owned())?;
        let _turn = lock(&folder.index_turn);
        let config = self.config();
        let req = IndexRequest { root: &folder.root, scope, store: &folder.store, config: &config, rebuild };
        let stats = indexer::index_with_writer(&req, progress, &writer).map_err(|e| format!("{e:#}"))?;
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.documents.mark_dirty_in(folder);
        self.flush_blocking(None);
        Ok(stats)
    }

    /// Opens the folder's store and takes its writer. Blocking.
    fn open_store(&self, folder: &Folder) -> Result<(), OpenFailure> {
        let tokenizer = Tokenizer::new(self.config().memory.tokenizer.stemming);
        let writer = Writer::open(&folder.store, &indexer::store_versions(&tokenizer)).map_err(|e| match e {
            StoreError::Locked { pid } => OpenFailure::Locked(match pid {
                Some(pid) => format!("another Aurora server, pid {pid}, is indexing this folder"),
                None => "another Aurora server is indexing this folder".to_owned(),
            }),
            e => OpenFailure::Failed(format!("the index for '{}' could not be opened: {e}", folder.name)),
        })?;
        *lock(&folder.writer) = Some(Arc::new(writer));
        Ok(())
    }

    /// `initialized` for one folder: store, watcher, then a full indexing pass under progress.
    /// A store locked by another server is served read-only while the lock is retried.
    pub async fn start_folder(self: Arc<Self>, folder: Arc<Folder>) {
        let mut announced = false;
        let opened = loop {
            let s = self.clone();
            let f = folder.clone();
            match tokio::task::spawn_blocking(move || s.open_store(&f)).await {
                Ok(Err(OpenFailure::Locked(why))) => {
                    if !announced {
                        tracing::warn!("{}: {why}; serving its index read-only", folder.name);
                        announced = true;
                    }
                    folder.set_state(FolderState::ReadOnly(why));
                    tokio::time::sleep(LOCK_RETRY).await;
                    if folder.closed.load(Ordering::Relaxed) || self.shutdown_requested.load(Ordering::Relaxed) {
                        return;
                    }
                }
                other => break other,
            }
        };
        match opened {
            Ok(Ok(())) => {
                if announced {
                    tracing::info!("{}: the store's lock was released; this server now indexes it", folder.name);
                }
            }
            Ok(Err(OpenFailure::Failed(e) | OpenFailure::Locked(e))) => {
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
        tokio::spawn(self.clone().guard_store(folder.clone()));
        self.index_pass(folder).await;
    }

    /// Watches the store file under the running server: deleted, or no longer an SQLite database
    /// (overwritten, truncated), it is set aside and rebuilt from the workspace, with a message.
    async fn guard_store(self: Arc<Self>, folder: Arc<Folder>) {
        loop {
            tokio::time::sleep(STORE_CHECK).await;
            if folder.closed.load(Ordering::Relaxed) || self.shutdown_requested.load(Ordering::Relaxed) {
                return;
            }
            if folder.writer().is_none() {
                continue;
            }
            let Some(problem) = store_problem(&folder.store) else { continue };
            tracing::error!("the index of {} {problem}; rebuilding it", folder.name);
            folder.set_state(FolderState::Opening);
            let (s, f) = (self.clone(), folder.clone());
            let reopened = tokio::task::spawn_blocking(move || {
                let _turn = lock(&f.index_turn);
                drop(f.take_writer());
                f.drop_readers();
                set_aside(&f.store);
                s.open_store(&f)
            })
            .await;
            // Announced once the damaged file is set aside and a new store is open.
            let message = format!("The Aurora index of '{}' {problem}; it is being rebuilt.", folder.name);
            let client = self.client.clone();
            tokio::spawn(async move { client.show_message(lsp::MessageType::WARNING, message).await });
            match reopened {
                Ok(Ok(())) => {
                    let _ = self.clone().index_pass_with(folder.clone(), true).await;
                }
                Ok(Err(OpenFailure::Failed(e) | OpenFailure::Locked(e))) => {
                    tracing::error!("{e}");
                    folder.set_state(FolderState::Error(e));
                    return;
                }
                Err(e) => {
                    tracing::error!("rebuilding the store of {}: {e}", folder.name);
                    folder.set_state(FolderState::Error("rebuilding the index failed".into()));
                    return;
                }
            }
        }
    }

    /// A full pass over a folder (see [`Session::index_pass_with`]).
    pub async fn index_pass(self: Arc<Self>, folder: Arc<Folder>) {
        let _ = self.index_pass_with(folder, false).await;
    }

    /// One full pass over a folder, reported as `$/progress` ("Indexing 120/884 files"); a
    /// running pass is cancelled first. `rebuild` re-parses every file regardless of mtime and hash.
    pub async fn index_pass_with(self: Arc<Self>, folder: Arc<Folder>, rebuild: bool) -> Result<IndexStats, String> {
        let progress = Arc::new(Progress::default());
        lock(&folder.pass).cancel.store(true, Ordering::Relaxed);
        *lock(&folder.pass) = progress.clone();
        folder.set_state(FolderState::Indexing);
        let supported = lock(&self.flags).work_done_progress;
        let id = format!("aurora-index-{}-{}", folder.name, self.generation());
        let mut work =
            WorkDone::begin(&self.client, supported, &id, "Aurora: Indexing", format!("Scanning {}", folder.name))
                .await;
        let started = Instant::now();
        let (s, f, p) = (self.clone(), folder.clone(), progress.clone());
        let mut job = tokio::task::spawn_blocking(move || s.run_index(&f, &f.root.clone(), &p, rebuild));
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
                let message = if stats.cancelled {
                    "Indexing restarted".to_owned()
                } else {
                    format!(
                        "Indexed {} files, {} chunks in {secs:.1} s ({skipped} skipped)",
                        stats.indexed + stats.unchanged + stats.touched,
                        stats.total_chunks
                    )
                };
                tracing::info!("{}: {message}", folder.name);
                if Arc::ptr_eq(&*lock(&folder.pass), &progress) {
                    folder.set_state(FolderState::Ready);
                }
                work.end(message).await;
                Ok(stats)
            }
            Ok(Err(e)) => {
                tracing::error!("indexing {}: {e}", folder.name);
                folder.set_state(FolderState::Error(e.clone()));
                work.end(format!("Indexing failed: {e}")).await;
                Err(e)
            }
            Err(e) => {
                tracing::error!("indexing {} panicked: {e}", folder.name);
                folder.set_state(FolderState::Error("indexing failed; details are in the Aurora log".into()));
                work.end("Indexing failed; details are in the Aurora log.".into()).await;
                Err("indexing failed; details are in the Aurora log".into())
            }
        }
    }

    // ----- watching ------------------------------------------------------------------------

    /// The client's watcher reports to us (`indexing.watch` allows it and the client registers).
    fn client_watches(&self) -> bool {
        self.config().indexing.watch.client() && self.flags().watched_files_registration
    }

    fn start_watcher(self: &Arc<Self>, folder: &Arc<Folder>) {
        if !self.config().indexing.watch.server() {
            *lock(&folder.watcher_state) = if self.client_watches() { "client" } else { "off" };
            return;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let debounce = Duration::from_millis(self.config().indexing.watch_debounce_ms.clamp(20, 10_000));
        match watch::watch(&folder.root, debounce, move |event| {
            let _ = tx.send(event);
        }) {
            Ok(w) => {
                *lock(&folder.watcher) = Some(w);
                *lock(&folder.watcher_state) = if self.client_watches() { "both" } else { "server" };
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
    pub fn apply_disk_changes(&self, folder: &Arc<Folder>, paths: Vec<PathBuf>) {
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
                if let Err(e) = self.run_index(folder, &path, &Progress::default(), false) {
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
                session.run_index(&target.folder, &abs, &Progress::default(), false).map(drop)
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
        self.jobs.cancel_all();
        let folders = self.folders();
        for folder in &folders {
            folder.closed.store(true, Ordering::Relaxed);
            lock(&folder.pass).cancel.store(true, Ordering::Relaxed);
            lock(&folder.watcher).take();
        }
        let session = self.clone();
        let work = tokio::task::spawn_blocking(move || {
            session.flush_blocking(None);
            for folder in session.folders() {
                if let Some(writer) = folder.take_writer()
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
