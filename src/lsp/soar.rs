//! SOAR as the server sees it: one `soar::Workspace` and one LLM client per folder, built on first
//! use and rebuilt when the configuration or the folder's writer changes; open documents are shown
//! to SOAR with their unsaved text.

use std::sync::{Arc, PoisonError, Weak};

use crate::config::Config;
use crate::llm::{Budget, Llm, MemoryUsageLog, ProviderKind, UsageLog};
use crate::lsp::session::{Folder, Session};
use crate::soar::{OpenDoc, OpenDocuments, Pipeline, Workspace};
use crate::store::usage::StoreUsageLog;
use crate::store::writer::Writer;

/// What a folder's SOAR runs share, and what it was built from.
pub(crate) struct FolderSoar {
    config: Arc<Config>,
    writer: Option<Arc<Writer>>,
    ws: Arc<Workspace>,
    /// `None` when no provider is configured; an error when the provider cannot be built (a
    /// missing key), kept as its message.
    llm: Result<Option<Arc<Llm>>, String>,
}

/// The session's open documents of one folder. Weak references: the folder owns this view.
struct SessionDocuments {
    session: Weak<Session>,
    folder: Weak<Folder>,
}

impl OpenDocuments for SessionDocuments {
    fn get(&self, rel: &str) -> Option<OpenDoc> {
        let (session, folder) = (self.session.upgrade()?, self.folder.upgrade()?);
        let (text, version) = session.documents.text_at(&folder, rel)?;
        Some(OpenDoc { text, version: Some(version) })
    }
}

/// A pipeline over `folder` with the current configuration; the reason when the configured
/// provider cannot be built (a key that is not set). Blocking (opens a read connection for the
/// budget on first use).
pub(crate) fn pipeline(session: &Arc<Session>, folder: &Arc<Folder>) -> Result<Pipeline, String> {
    let config = session.config();
    let writer = folder.writer();
    let mut cache = folder.soar.lock().unwrap_or_else(PoisonError::into_inner);
    let fresh = cache.as_ref().is_some_and(|c| {
        Arc::ptr_eq(&c.config, &config)
            && match (&c.writer, &writer) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    });
    if !fresh {
        let documents = SessionDocuments { session: Arc::downgrade(session), folder: Arc::downgrade(folder) };
        let ws = Workspace::new(folder.root.clone(), folder.store.clone(), writer.clone(), &config.memory)
            .with_documents(Arc::new(documents));
        let llm = build_llm(&config, folder, writer.as_ref());
        *cache = Some(FolderSoar { config: config.clone(), writer, ws: Arc::new(ws), llm });
    }
    let c = cache.as_ref().expect("the cache was filled above");
    match &c.llm {
        Ok(llm) => Ok(Pipeline::new(config, c.ws.clone(), llm.clone())),
        Err(message) => Err(message.clone()),
    }
}

/// The configured client, with the folder's usage log as its budget when this server writes the
/// store. `Ok(None)` without a provider.
fn build_llm(config: &Config, folder: &Folder, writer: Option<&Arc<Writer>>) -> Result<Option<Arc<Llm>>, String> {
    if config.llm.provider == ProviderKind::None {
        return Ok(None);
    }
    let llm = Llm::from_config(&config.llm, &|k| std::env::var(k).ok()).map_err(|e| e.to_string())?;
    // Without the writer (another server owns the store) spend is counted for this server only.
    let log: Arc<dyn UsageLog> = match writer.map(|w| (w, crate::store::open_reader(&folder.store))) {
        Some((w, Ok(reader))) => Arc::new(StoreUsageLog::new(w.clone(), reader)),
        Some((_, Err(e))) => {
            tracing::warn!(
                "{}: the budget cannot read the store ({e}); counting this session's spend only",
                folder.name
            );
            Arc::new(MemoryUsageLog::new())
        }
        None => Arc::new(MemoryUsageLog::new()),
    };
    Ok(Some(Arc::new(llm.with_budget(Arc::new(Budget::new(config.budget.clone(), log))))))
}
