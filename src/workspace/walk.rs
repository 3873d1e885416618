//! Walking a workspace (spec/memory.md §2): ignore files, default exclusions, limits, and a reason
//! for every source file that is not indexed. A skip never aborts the walk.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::{DirEntry, WalkBuilder, WalkState};

use crate::config::IndexingConfig;
use crate::index::lang::language_for;
use crate::privacy::DenyList;

/// Why a source file was not indexed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    TooLarge,
    Binary,
    Generated,
    InvalidUtf8,
    Unreadable,
    Symlink,
    SymlinkLoop,
    OutsideRoot,
    ParseTimeout,
    StubShadowed,
    PathNotUtf8,
    /// Matched `privacy.denyGlobs`: never indexed nor sent to a model.
    Denied,
}

impl SkipReason {
    pub const ALL: [SkipReason; 12] = [
        SkipReason::TooLarge,
        SkipReason::Binary,
        SkipReason::Generated,
        SkipReason::InvalidUtf8,
        SkipReason::Unreadable,
        SkipReason::Symlink,
        SkipReason::SymlinkLoop,
        SkipReason::OutsideRoot,
        SkipReason::ParseTimeout,
        SkipReason::StubShadowed,
        SkipReason::PathNotUtf8,
        SkipReason::Denied,
    ];

    pub fn parse(text: &str) -> Option<SkipReason> {
        SkipReason::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::TooLarge => "too_large",
            SkipReason::Binary => "binary",
            SkipReason::Generated => "generated",
            SkipReason::InvalidUtf8 => "invalid_utf8",
            SkipReason::Unreadable => "unreadable",
            SkipReason::Symlink => "symlink",
            SkipReason::SymlinkLoop => "symlink_loop",
            SkipReason::OutsideRoot => "outside_root",
            SkipReason::ParseTimeout => "parse_timeout",
            SkipReason::StubShadowed => "stub_shadowed",
            SkipReason::PathNotUtf8 => "path_not_utf8",
            SkipReason::Denied => "denied",
        }
    }
}

/// A source file found by the walk, with the `stat` the change detection needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Walked {
    /// Relative to the root, `/`-separated.
    pub path: String,
    pub abs: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
}

/// A source file the walk itself rejected (links, stubs), with a human-readable detail.
#[derive(Clone, Debug, PartialEq)]
pub struct WalkSkip {
    pub path: String,
    pub reason: SkipReason,
    pub error: String,
}

#[derive(Debug, Default)]
pub struct WalkResult {
    /// Sorted by path.
    pub files: Vec<Walked>,
    pub skipped: Vec<WalkSkip>,
    /// Files that are not source files of a known language (no row is kept for them).
    pub other_files: u64,
    /// Folders that could not be read: stored files under them must be left alone.
    pub unreadable_dirs: Vec<String>,
    /// Files whose names are not UTF-8 (they cannot be keys), counted only.
    pub names_not_utf8: u64,
    /// The walk stopped at `indexing.maxFiles`.
    pub truncated: bool,
}

/// Directory names excluded below the walk root (spec/memory.md §2.3).
const EXCLUDED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    ".aurora",
    "__pycache__",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    ".nox",
    ".eggs",
    "site-packages",
];
/// Build outputs, excluded unless they are a package (hold an `__init__.py`).
const BUILD_DIRS: &[&str] = &["build", "dist", "target"];

/// Walks `scope` (the root, a folder under it, or one file) and returns the source files in it.
/// Files matching `deny` are reported as skipped (`denied`) and never read.
pub fn walk(root: &Path, scope: &Path, cfg: &IndexingConfig, deny: &DenyList) -> WalkResult {
    let user_excludes = build_excludes(root, &cfg.exclude);
    let mut builder = WalkBuilder::new(scope);
    builder
        .hidden(!cfg.include_hidden)
        .parents(true)
        .ignore(true)
        .git_ignore(true)
        .git_global(true)
        .git_exclude(true)
        .require_git(false)
        .follow_links(cfg.follow_symlinks)
        .add_custom_ignore_filename(".auroraignore")
        .threads(std::thread::available_parallelism().map_or(2, |n| n.get()).min(4));
    let scope_depth_root = scope.to_path_buf();
    let default_excludes = cfg.default_excludes;
    builder.filter_entry(move |entry| keep_entry(entry, &scope_depth_root, default_excludes, &user_excludes));

    let state = Mutex::new(WalkResult::default());
    let count = std::sync::atomic::AtomicU64::new(0);
    let root_canon = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    builder.build_parallel().run(|| {
        let state = &state;
        let count = &count;
        let root_canon = &root_canon;
        Box::new(move |result| {
            let mut st = state.lock().expect("walk state lock is never poisoned by a panic-free visitor");
            match result {
                Ok(entry) => visit(entry, root, root_canon, cfg, deny, &mut st, count),
                Err(err) => record_error(err, root, &mut st),
            }
            if st.truncated { WalkState::Quit } else { WalkState::Continue }
        })
    });
    let mut result = state.into_inner().expect("no visitor panicked");
    shadow_stubs(&mut result);
    result.files.sort_by(|a, b| a.path.cmp(&b.path));
    result.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    result.unreadable_dirs.sort();
    result
}

fn build_excludes(root: &Path, patterns: &[String]) -> Gitignore {
    let mut builder = GitignoreBuilder::new(root);
    for p in patterns {
        if let Err(e) = builder.add_line(None, p) {
            tracing::warn!("indexing.exclude: pattern {p:?} ignored: {e}");
        }
    }
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

/// Final filters no ignore file can undo: `.aurora`, the default exclusions (below the walk root
/// only, matched on the folder's own name) and `indexing.exclude`.
fn keep_entry(entry: &DirEntry, scope: &Path, default_excludes: bool, user: &Gitignore) -> bool {
    if entry.depth() == 0 || entry.path() == scope {
        return true;
    }
    let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
    if is_dir {
        let name = entry.file_name().to_string_lossy();
        if name == ".aurora" {
            return false;
        }
        if default_excludes && excluded_dir(entry.path(), &name) {
            return false;
        }
    }
    !user.matched_path_or_any_parents(entry.path(), is_dir).is_ignore()
}

fn excluded_dir(path: &Path, name: &str) -> bool {
    EXCLUDED_DIRS.contains(&name)
        || name.ends_with(".egg-info")
        || path.join("pyvenv.cfg").is_file()
        || (BUILD_DIRS.contains(&name) && !path.join("__init__.py").is_file())
}

fn rel_path(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let text = rel.to_str()?;
    Some(if std::path::MAIN_SEPARATOR == '/' { text.to_owned() } else { text.replace(std::path::MAIN_SEPARATOR, "/") })
}

fn visit(
    entry: DirEntry,
    root: &Path,
    root_canon: &Path,
    cfg: &IndexingConfig,
    deny: &DenyList,
    st: &mut WalkResult,
    count: &std::sync::atomic::AtomicU64,
) {
    let Some(file_type) = entry.file_type() else { return };
    if file_type.is_dir() {
        return;
    }
    let Some(name) = entry.file_name().to_str() else {
        st.names_not_utf8 += 1;
        tracing::warn!("skipping {}: file name is not UTF-8", entry.path().display());
        return;
    };
    if language_for(name).is_none() {
        st.other_files += 1;
        return;
    }
    let Some(path) = rel_path(root, entry.path()) else {
        st.names_not_utf8 += 1;
        return;
    };
    if deny.denies(&path) {
        st.skipped.push(WalkSkip { path, reason: SkipReason::Denied, error: "matches privacy.denyGlobs".into() });
        return;
    }
    if file_type.is_symlink() {
        // Only reached when links are not followed.
        st.skipped.push(WalkSkip {
            path,
            reason: SkipReason::Symlink,
            error: "symbolic link (indexing.followSymlinks is off)".into(),
        });
        return;
    }
    if entry.path_is_symlink() {
        match entry.path().canonicalize() {
            Ok(target) if target.starts_with(root_canon) => {}
            Ok(target) => {
                st.skipped.push(WalkSkip {
                    path,
                    reason: SkipReason::OutsideRoot,
                    error: format!("link points outside the workspace ({})", target.display()),
                });
                return;
            }
            Err(e) => {
                st.skipped.push(WalkSkip { path, reason: SkipReason::Unreadable, error: e.to_string() });
                return;
            }
        }
    }
    if !file_type.is_file() && !entry.path_is_symlink() {
        return; // sockets, fifos, devices
    }
    let metadata = match entry.metadata() {
        Ok(m) => m,
        Err(e) => {
            st.skipped.push(WalkSkip { path, reason: SkipReason::Unreadable, error: e.to_string() });
            return;
        }
    };
    if count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= cfg.max_files {
        st.truncated = true;
        return;
    }
    st.files.push(Walked { path, abs: entry.into_path(), size: metadata.len(), mtime_ns: mtime_ns(&metadata) });
}

fn record_error(err: ignore::Error, root: &Path, st: &mut WalkResult) {
    let (path, inner) = error_path(&err);
    let rel = path.as_deref().and_then(|p| rel_path(root, p));
    if let (Some(rel), true) = (&rel, is_loop(inner)) {
        st.skipped.push(WalkSkip { path: rel.clone(), reason: SkipReason::SymlinkLoop, error: inner.to_string() });
        return;
    }
    match (rel, path) {
        (Some(rel), Some(p)) if p.is_dir() || !p.exists() => {
            tracing::warn!("cannot read folder {}: {inner}", p.display());
            st.unreadable_dirs.push(rel);
        }
        (Some(rel), Some(_)) if language_for(&rel).is_some() => {
            st.skipped.push(WalkSkip { path: rel, reason: SkipReason::Unreadable, error: inner.to_string() });
        }
        _ => tracing::warn!("walking: {err}"),
    }
}

fn error_path(err: &ignore::Error) -> (Option<PathBuf>, &ignore::Error) {
    match err {
        ignore::Error::WithPath { path, err } => (Some(path.clone()), err.as_ref()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => error_path(err),
        ignore::Error::Loop { child, .. } => (Some(child.clone()), err),
        _ => (None, err),
    }
}

fn is_loop(err: &ignore::Error) -> bool {
    matches!(err, ignore::Error::Loop { .. })
}

/// A `.pyi` next to a `.py` of the same stem is skipped (`stub_shadowed`).
fn shadow_stubs(result: &mut WalkResult) {
    let sources: HashSet<String> = result
        .files
        .iter()
        .filter(|f| f.path.to_ascii_lowercase().ends_with(".py"))
        .map(|f| f.path[..f.path.len() - 3].to_owned())
        .collect();
    let mut kept = Vec::with_capacity(result.files.len());
    for f in result.files.drain(..) {
        let lower = f.path.to_ascii_lowercase();
        match lower.strip_suffix(".pyi") {
            Some(stem) if sources.contains(&f.path[..stem.len()]) => result.skipped.push(WalkSkip {
                error: format!("stub shadowed by {}.py", &f.path[..stem.len()]),
                path: f.path,
                reason: SkipReason::StubShadowed,
            }),
            _ => kept.push(f),
        }
    }
    result.files = kept;
}

/// Modification time in nanoseconds since the epoch (0 when the platform has none).
pub fn mtime_ns(metadata: &std::fs::Metadata) -> i64 {
    metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}
