//! Test harness: workspaces built from strings in temp dirs, in-process indexing, and row dumps.

use std::path::{Path, PathBuf};

use aurora::config::Config;
use aurora::index::indexer::{self, IndexRequest, IndexStats, Progress};
use aurora::store::StorePath;
use rusqlite::Connection;

/// A workspace in a temp dir. Files are given as `(relative path, text)`.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub config: Config,
}

impl Workspace {
    pub fn new(files: &[(&str, &str)]) -> Workspace {
        let ws = Workspace { dir: tempfile::tempdir().expect("temp dir"), config: Config::default() };
        for (path, text) in files {
            ws.write(path, text);
        }
        ws
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().expect("temp dir exists")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        self.write_bytes(rel, text.as_bytes());
    }

    pub fn write_bytes(&self, rel: &str, bytes: &[u8]) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("files live in folders")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write fixture");
        // Move the mtime into the past so the racy-clean rule does not force a re-read.
        set_mtime_past(&p);
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path(rel)).expect("remove fixture");
    }

    pub fn rename(&self, from: &str, to: &str) {
        std::fs::rename(self.path(from), self.path(to)).expect("rename fixture");
    }

    pub fn store(&self) -> StorePath {
        StorePath::for_root(&self.root())
    }

    /// Indexes `scope` (relative; "" for the root) in-process.
    pub fn index_scope(&self, scope: &str) -> IndexStats {
        let root = self.root();
        let scope = if scope.is_empty() { root.clone() } else { root.join(scope) };
        let req =
            IndexRequest { root: &root, scope: &scope, store: &self.store(), config: &self.config, rebuild: false };
        let stats = indexer::index(&req, &Progress::default()).expect("index runs");
        assert_fts_matches_chunks(&self.conn());
        stats
    }

    pub fn index(&self) -> IndexStats {
        self.index_scope("")
    }

    /// A read-write connection for assertions (the writer is closed after each run).
    pub fn conn(&self) -> Connection {
        Connection::open(self.store().db).expect("store opens")
    }

    /// One line per chunk: `path kind qualified_name#ordinal lines a..=b [flags]`, sorted.
    pub fn chunk_rows(&self) -> String {
        dump(
            &self.conn(),
            "SELECT file_path || ' ' || kind || ' ' || qualified_name || '#' || ordinal || ' lines ' || \
             (start_line + 1) || '..=' || (end_line + 1) || CASE WHEN stale THEN ' stale' ELSE '' END || \
             CASE WHEN parse_partial THEN ' partial' ELSE '' END FROM chunks ORDER BY file_path, start_byte, depth",
        )
    }

    /// One line per file: `path status reason chunks=N`.
    pub fn file_rows(&self) -> String {
        dump(
            &self.conn(),
            "SELECT path || ' ' || status || coalesce(' ' || reason, '') || ' chunks=' || chunk_count FROM files \
             ORDER BY path",
        )
    }
}

pub fn dump(conn: &Connection, sql: &str) -> String {
    let mut stmt = conn.prepare(sql).expect("query prepares");
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("query runs");
    let mut out = String::new();
    for r in rows {
        out.push_str(&r.expect("row"));
        out.push('\n');
    }
    out
}

/// The FTS index holds exactly one row per chunk.
pub fn assert_fts_matches_chunks(conn: &Connection) {
    let ids = dump(conn, "SELECT CAST(id AS TEXT) FROM chunks ORDER BY id");
    let fts = dump(conn, "SELECT CAST(rowid AS TEXT) FROM chunks_fts ORDER BY rowid");
    assert_eq!(fts, ids, "FTS rowids must equal chunk ids");
}

pub fn set_mtime_past(path: &Path) {
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let f = std::fs::File::options().write(true).open(path).expect("open for mtime");
    f.set_modified(past).expect("set mtime");
}

/// The `aurora` binary built for these tests.
pub fn aurora_bin() -> &'static str {
    env!("CARGO_BIN_EXE_aurora")
}
