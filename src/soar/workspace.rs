//! SOAR's view of one workspace folder: its store (pooled read connections, the writer when this
//! process holds it), its files on disk, and the documents the editor has open (whose text wins over
//! disk). Store reads are blocking; [`Workspace::read`] runs them on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::MemoryConfig;
use crate::memory::retrieve::Retriever;
use crate::store::writer::{Op, Writer};
use crate::store::{StoreError, StorePath};

/// Files larger than this are not read for citations or edits.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Read connections kept for reuse.
const POOL: usize = 4;

/// An open editor document.
#[derive(Clone, Debug)]
pub struct OpenDoc {
    pub text: Arc<str>,
    pub version: Option<i32>,
}

/// The documents a front-end has open, by path relative to the root.
pub trait OpenDocuments: Send + Sync {
    fn get(&self, rel: &str) -> Option<OpenDoc>;
}

/// The current text of a file, and where it came from.
#[derive(Clone, Debug)]
pub struct FileText {
    pub text: Arc<str>,
    /// The document version when the text is an open document's.
    pub version: Option<i32>,
}

pub struct Workspace {
    root: PathBuf,
    store: StorePath,
    writer: Option<Arc<Writer>>,
    memory: MemoryConfig,
    /// Pooled retrievers with the store generation their caches were filled at.
    pool: Mutex<Vec<(Retriever, u64)>>,
    documents: Option<Arc<dyn OpenDocuments>>,
}

impl Workspace {
    /// `writer` is `None` when another process owns the store: SOAR then answers without recording.
    pub fn new(root: PathBuf, store: StorePath, writer: Option<Arc<Writer>>, memory: &MemoryConfig) -> Workspace {
        Workspace { root, store, writer, memory: memory.clone(), pool: Mutex::new(Vec::new()), documents: None }
    }

    pub fn with_documents(mut self, documents: Arc<dyn OpenDocuments>) -> Workspace {
        self.documents = Some(documents);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn memory(&self) -> &MemoryConfig {
        &self.memory
    }

    pub fn writer(&self) -> Option<&Arc<Writer>> {
        self.writer.as_ref()
    }

    /// A number that changes whenever indexed content may have changed: the writer's committed file
    /// count when this process writes, else SQLite's `data_version` of the connection.
    fn generation(&self, r: &Retriever) -> u64 {
        match &self.writer {
            Some(w) => w.committed_files(),
            None => {
                r.connection().query_row("PRAGMA data_version", [], |row| row.get::<_, i64>(0)).map_or(0, |v| v as u64)
            }
        }
    }

    fn take(&self) -> Result<Retriever, StoreError> {
        let pooled = self.pool.lock().map(|mut p| p.pop()).unwrap_or(None);
        match pooled {
            Some((mut r, generation)) => {
                // Document frequencies are kept while the indexed files are unchanged.
                if self.generation(&r) != generation {
                    r.invalidate();
                }
                Ok(r)
            }
            None => Ok(Retriever::new(crate::store::open_reader(&self.store)?, &self.memory)),
        }
    }

    fn give_back(&self, r: Retriever) {
        let generation = self.generation(&r);
        if let Ok(mut pool) = self.pool.lock()
            && pool.len() < POOL
        {
            pool.push((r, generation));
        }
    }

    /// Runs `f` with a pooled retriever (and its read connection) on the blocking pool.
    pub async fn read<R, F>(self: &Arc<Self>, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Retriever) -> Result<R, StoreError> + Send + 'static,
    {
        let ws = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut r = ws.take()?;
            let out = f(&mut r);
            if out.is_ok() {
                ws.give_back(r);
            }
            out
        })
        .await
        .map_err(|e| StoreError::WriterGone(format!("store read task failed: {e}")))?
    }

    /// Applies one write and waits for its commit. Without a writer the write is skipped with an error.
    pub async fn write(self: &Arc<Self>, op: Op) -> Result<(), StoreError> {
        let Some(writer) = self.writer.clone() else {
            return Err(StoreError::WriterGone("the store is open read-only (another Aurora owns it)".into()));
        };
        tokio::task::spawn_blocking(move || writer.send_acked(op))
            .await
            .map_err(|e| StoreError::WriterGone(format!("store write task failed: {e}")))?
    }

    /// The open document at `rel`, if the front-end has one.
    pub fn document(&self, rel: &str) -> Option<OpenDoc> {
        self.documents.as_ref().and_then(|d| d.get(rel))
    }

    /// `rel` resolved under the root, or `None` when it is not a plain relative path inside it.
    pub fn resolve(&self, rel: &str) -> Option<PathBuf> {
        let rel_path = Path::new(rel);
        if rel.is_empty() || rel_path.is_absolute() || rel.contains('\\') {
            return None;
        }
        let mut out = self.root.clone();
        for part in rel_path.components() {
            match part {
                std::path::Component::Normal(p) => out.push(p),
                _ => return None,
            }
        }
        Some(out)
    }

    /// The current text of `rel`: the open document's, else the file's on disk (UTF-8, bounded).
    pub fn file_text(&self, rel: &str) -> Option<FileText> {
        if let Some(doc) = self.document(rel) {
            return Some(FileText { text: doc.text, version: doc.version });
        }
        let path = self.resolve(rel)?;
        let meta = std::fs::metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        Some(FileText { text: Arc::from(text), version: None })
    }

    /// Whether `rel` exists as an open document or a file on disk.
    pub fn exists(&self, rel: &str) -> bool {
        self.document(rel).is_some() || self.resolve(rel).is_some_and(|p| p.exists())
    }
}

/// Lines of a text as editors count them (a final newline ends the last line; it opens none).
pub fn line_count(text: &str) -> u32 {
    if text.is_empty() {
        return 0;
    }
    let n = text.bytes().filter(|b| *b == b'\n').count() as u32;
    if text.ends_with('\n') { n } else { n + 1 }
}

/// Lines `start..=end` (0-based) of `text`, without the final newline.
pub fn slice_lines(text: &str, start: u32, end: u32) -> String {
    text.lines().skip(start as usize).take((end.saturating_sub(start) + 1) as usize).collect::<Vec<_>>().join("\n")
}
