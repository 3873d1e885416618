//! Open documents: the text of each, its version, and whether its store write is pending.
//! Changes are applied under one short lock, in the order the handlers start (no `.await`
//! between receiving a notification and applying it), so edits are never reordered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tree_sitter::Tree;

use crate::index::edit::EditedText;
use crate::lsp::convert::{Encoding, LineIndex};
use crate::lsp::lsp;
use crate::lsp::session::Folder;

/// Where an open document is indexed: a workspace folder and the path relative to it.
#[derive(Clone)]
pub(crate) struct Target {
    pub folder: Arc<Folder>,
    pub rel: String,
}

pub(crate) struct Document {
    pub version: i32,
    /// The text, and the tree of its last parse kept in step with every edit.
    pub text: EditedText,
    /// The text differs from what was last written to the store.
    pub dirty: bool,
    /// Changes applied so far; a debounced write runs only if no change came after it.
    pub changes: u64,
    pub target: Option<Target>,
}

/// A document's text taken for a store write.
pub(crate) struct Dirty {
    pub uri: String,
    pub target: Target,
    pub text: String,
    /// The tree of an earlier text with every edit since applied.
    pub tree: Option<Tree>,
    pub changes: u64,
}

/// A content change whose range lies outside the text: the copy is out of sync.
#[derive(Debug)]
pub(crate) struct OutOfSync;

#[derive(Default)]
pub(crate) struct Documents {
    /// Keyed by the URI string exactly as the client sent it.
    map: Mutex<HashMap<String, Document>>,
}

impl Documents {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Document>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn open(&self, uri: &lsp::Uri, version: i32, text: String, target: Option<Target>) {
        let dirty = target.is_some();
        let text = EditedText::new(text);
        self.lock().insert(uri.as_str().to_owned(), Document { version, text, dirty, changes: 1, target });
    }

    /// Applies content changes in array order; returns the change counter after them.
    pub fn change(
        &self,
        uri: &lsp::Uri,
        version: i32,
        changes: Vec<lsp::TextDocumentContentChangeEvent>,
        enc: Encoding,
    ) -> Result<Option<u64>, OutOfSync> {
        let mut map = self.lock();
        let Some(doc) = map.get_mut(uri.as_str()) else { return Ok(None) };
        for change in changes {
            match change.range {
                None => doc.text.replace_all(change.text),
                Some(range) => {
                    let text = doc.text.text();
                    let index = LineIndex::new(text);
                    let lines = index.lines() as u32;
                    if range.start.line >= lines || range.end.line >= lines || range.start > range.end {
                        map.remove(uri.as_str());
                        return Err(OutOfSync);
                    }
                    let start = index.offset(text, range.start, enc);
                    let end = index.offset(text, range.end, enc).max(start);
                    doc.text.replace(start, end, &change.text);
                }
            }
        }
        doc.version = version;
        doc.dirty = doc.target.is_some();
        doc.changes += 1;
        Ok(Some(doc.changes))
    }

    pub fn close(&self, uri: &lsp::Uri) -> Option<Document> {
        self.lock().remove(uri.as_str())
    }

    /// True when `changes` is still the document's latest change.
    pub fn is_current(&self, uri: &str, changes: u64) -> bool {
        self.lock().get(uri).is_some_and(|d| d.changes == changes)
    }

    /// Takes the texts to write: every dirty document, or only `uri`; marks them clean.
    pub fn take_dirty(&self, only: Option<&str>) -> Vec<Dirty> {
        let mut map = self.lock();
        let mut out = Vec::new();
        for (uri, doc) in map.iter_mut() {
            if !doc.dirty || only.is_some_and(|o| o != uri) {
                continue;
            }
            doc.dirty = false;
            if let Some(target) = &doc.target {
                out.push(Dirty {
                    uri: uri.clone(),
                    target: target.clone(),
                    text: doc.text.text().to_owned(),
                    tree: doc.text.tree().cloned(),
                    changes: doc.changes,
                });
            }
        }
        out
    }

    /// Keeps `tree`, parsed from the text of change `changes`, unless the document changed since
    /// (its edited older tree then stays: still a valid base for the next reparse).
    pub fn parsed(&self, uri: &str, changes: u64, tree: Tree) {
        if let Some(doc) = self.lock().get_mut(uri).filter(|d| d.changes == changes) {
            doc.text.set_tree(tree);
        }
    }

    /// Marks every open document of `folder` dirty (after a pass that read their files from disk).
    pub fn mark_dirty_in(&self, folder: &Arc<Folder>) {
        for doc in self.lock().values_mut() {
            if doc.target.as_ref().is_some_and(|t| Arc::ptr_eq(&t.folder, folder)) {
                doc.dirty = true;
            }
        }
    }

    /// The relative paths of the open documents of `folder`.
    pub fn open_paths_in(&self, folder: &Arc<Folder>) -> Vec<String> {
        self.lock()
            .values()
            .filter_map(|d| d.target.as_ref().filter(|t| Arc::ptr_eq(&t.folder, folder)).map(|t| t.rel.clone()))
            .collect()
    }

    /// The client's URI and the text of the open document at `rel` in `folder`, if any.
    pub fn by_path(&self, folder: &Arc<Folder>, rel: &str) -> Option<(String, String)> {
        self.lock().iter().find_map(|(uri, d)| {
            let t = d.target.as_ref()?;
            (Arc::ptr_eq(&t.folder, folder) && t.rel == rel).then(|| (uri.clone(), d.text.text().to_owned()))
        })
    }

    /// The text and version of the open document at `rel` in `folder`, if any.
    pub fn text_at(&self, folder: &Arc<Folder>, rel: &str) -> Option<(Arc<str>, i32)> {
        self.lock().values().find_map(|d| {
            let t = d.target.as_ref()?;
            (Arc::ptr_eq(&t.folder, folder) && t.rel == rel).then(|| (Arc::from(d.text.text()), d.version))
        })
    }

    /// The version of an open document.
    pub fn version(&self, uri: &str) -> Option<i32> {
        self.lock().get(uri).map(|d| d.version)
    }

    /// The text and version of an open document.
    pub fn snapshot(&self, uri: &str) -> Option<(String, i32)> {
        self.lock().get(uri).map(|d| (d.text.text().to_owned(), d.version))
    }

    /// The target of an open document.
    pub fn target(&self, uri: &str) -> Option<Target> {
        self.lock().get(uri).and_then(|d| d.target.clone())
    }
}
