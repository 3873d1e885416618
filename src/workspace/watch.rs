//! Watching a workspace folder for changes made outside the editor: notify through a debouncer,
//! delivered as batches of changed paths.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_full::notify::{self, EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

/// A running watcher; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// What a batch reports.
#[derive(Debug)]
pub enum WatchEvent {
    /// Paths created, modified, renamed or removed (deduplicated, sorted). The receiver decides
    /// what each became by looking at the disk.
    Changed(Vec<PathBuf>),
    /// The watcher lost events (overflow, OS error): the folder needs a full reconcile.
    Degraded(String),
}

/// Watches `root` recursively. `on_event` runs on the debouncer's thread, so it must only hand the
/// batch over (e.g. to a channel). Events under `<root>/.aurora/` are dropped here.
pub fn watch(
    root: &Path,
    debounce: Duration,
    on_event: impl Fn(WatchEvent) + Send + 'static,
) -> Result<Watcher, notify::Error> {
    let own_dir = root.join(".aurora");
    let handler = move |result: DebounceEventResult| match result {
        Ok(events) => {
            let mut paths = BTreeSet::new();
            let mut rescan = false;
            for event in events {
                if event.need_rescan() {
                    rescan = true;
                }
                if matches!(event.kind, EventKind::Access(_)) {
                    continue;
                }
                for path in &event.paths {
                    if !path.starts_with(&own_dir) {
                        paths.insert(path.clone());
                    }
                }
            }
            if rescan {
                on_event(WatchEvent::Degraded("the file watcher asked for a rescan".into()));
            }
            if !paths.is_empty() {
                on_event(WatchEvent::Changed(paths.into_iter().collect()));
            }
        }
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            on_event(WatchEvent::Degraded(text.join("; ")));
        }
    };
    let mut debouncer = new_debouncer(debounce, None, handler)?;
    debouncer.watch(root, RecursiveMode::Recursive)?;
    Ok(Watcher { _debouncer: debouncer })
}

/// Default folder names a watcher event is never indexed under (the walk excludes them too).
const IGNORED_DIRS: &[&str] = &["__pycache__", "node_modules", "site-packages"];

/// Whether a changed path (relative, `/`-separated) is out of the index by the cheap rules: a
/// hidden or excluded folder on the way, or a match in the root's `.gitignore`, `.ignore` or
/// `.auroraignore`. Ignore files in subfolders are not consulted here.
pub fn is_ignored(root: &Path, rel: &str, is_dir: bool) -> bool {
    let mut parts: Vec<&str> = rel.split('/').collect();
    parts.pop();
    if parts.iter().any(|p| p.starts_with('.') || IGNORED_DIRS.contains(p)) {
        return true;
    }
    let mut builder = ignore::gitignore::GitignoreBuilder::new(root);
    for name in [".gitignore", ".ignore", ".auroraignore"] {
        let file = root.join(name);
        if file.is_file() {
            let _ = builder.add(file);
        }
    }
    builder.build().is_ok_and(|gi| gi.matched_path_or_any_parents(rel, is_dir).is_ignore())
}
