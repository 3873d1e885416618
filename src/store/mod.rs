//! The SQLite store `<root>/.aurora/memory.db`: schema, the single writer, and read queries.
//!
//! One writer per store across processes (an advisory lock on `.aurora/memory.lock`), one writer
//! thread inside the process, read-only connections for queries (WAL lets them run beside it).

mod migrate;
pub mod read;
pub mod soar;
pub mod usage;
pub mod writer;

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use thiserror::Error;

pub use migrate::SCHEMA_VERSION;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store is being written by another aurora process{}; stop it or use --db", pid_note(*.pid))]
    Locked { pid: Option<u32> },
    #[error(
        "this store was written by a newer aurora (schema {found}; this build knows {known}): \
         upgrade aurora or delete .aurora/memory.db"
    )]
    NewerSchema { found: u32, known: u32 },
    #[error("this store uses schema {found}; run `aurora index` to upgrade it to {known}")]
    OlderSchema { found: u32, known: u32 },
    #[error("no store at {}; run `aurora index` first", .path.display())]
    Missing { path: PathBuf },
    #[error("migrating the store from schema {from} to {to}: {source}")]
    MigrationFailed { from: u32, to: u32, source: rusqlite::Error },
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the store's writer stopped: {0}")]
    WriterGone(String),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

fn pid_note(pid: Option<u32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

/// Where a store lives: the database file and the folder holding it.
#[derive(Clone, Debug)]
pub struct StorePath {
    pub db: PathBuf,
}

impl StorePath {
    /// The default store of a workspace root: `<root>/.aurora/memory.db`.
    pub fn for_root(root: &Path) -> StorePath {
        StorePath { db: root.join(".aurora").join("memory.db") }
    }

    pub fn dir(&self) -> &Path {
        self.db.parent().unwrap_or(Path::new("."))
    }

    fn lock_file(&self) -> PathBuf {
        self.dir().join("memory.lock")
    }

    /// Bytes on disk: the database plus its WAL.
    pub fn size_bytes(&self) -> u64 {
        let wal = PathBuf::from(format!("{}-wal", self.db.display()));
        [&self.db, &wal].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
    }
}

/// The exclusive right to write a store, held until dropped.
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
}

impl WriteLock {
    /// Takes the advisory lock on `.aurora/memory.lock` without waiting.
    pub fn acquire(path: &StorePath) -> Result<WriteLock, StoreError> {
        let lock_path = path.lock_file();
        let io = |source| StoreError::Io { path: lock_path.clone(), source };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(StoreError::Locked { pid: text.trim().parse().ok() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(WriteLock { _file: file })
    }
}

/// Creates `.aurora/` with its `.gitignore` when missing.
fn ensure_dir(path: &StorePath) -> Result<(), StoreError> {
    let dir = path.dir();
    let io = |source| StoreError::Io { path: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "memory.db\nmemory.db-wal\nmemory.db-shm\nmemory.lock\nmemory.db.bak-*\n")
            .map_err(io)?;
    }
    Ok(())
}

fn common_pragmas(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
         PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;",
    )?;
    Ok(())
}

/// Opens the write connection: takes the cross-process lock, creates or migrates the schema, and
/// resets file hashes when the chunker or tokenizer changed (`versions`: `meta` key → value).
pub fn open_writer(path: &StorePath, versions: &[(&str, String)]) -> Result<(Connection, WriteLock), StoreError> {
    ensure_dir(path)?;
    let lock = WriteLock::acquire(path)?;
    let mut conn = Connection::open(&path.db)?;
    common_pragmas(&conn)?;
    migrate::migrate(&mut conn, path.dir())?;
    conn.execute_batch(
        "PRAGMA cache_size = -8192; PRAGMA journal_size_limit = 67108864; PRAGMA wal_autocheckpoint = 0;",
    )?;
    sync_versions(&mut conn, versions)?;
    Ok((conn, lock))
}

fn sync_versions(conn: &mut Connection, versions: &[(&str, String)]) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let mut changed = false;
    for (key, value) in versions {
        let stored: Option<String> = tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).ok();
        if stored.as_deref() != Some(value.as_str()) {
            changed |= stored.is_some();
            tx.execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value.as_str()],
            )?;
        }
    }
    if changed {
        // Ids are stable, so access history survives the re-chunk this forces.
        tx.execute("UPDATE files SET content_hash = NULL", [])?;
        tracing::info!("chunker or tokenizer changed: every file will be re-chunked");
    }
    tx.execute(
        "INSERT INTO meta(key, value) VALUES ('created_at', ?1) ON CONFLICT(key) DO NOTHING",
        [now_ms().to_string()],
    )?;
    tx.commit()?;
    Ok(())
}

/// Opens a read-only connection. The store must exist with this build's schema.
pub fn open_reader(path: &StorePath) -> Result<Connection, StoreError> {
    if !path.db.exists() {
        return Err(StoreError::Missing { path: path.db.clone() });
    }
    let conn = Connection::open_with_flags(
        &path.db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )?;
    common_pragmas(&conn)?;
    conn.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -4096;")?;
    let found = migrate::check_not_newer(&conn)?;
    if found < SCHEMA_VERSION {
        return Err(StoreError::OlderSchema { found, known: SCHEMA_VERSION });
    }
    Ok(conn)
}

/// Milliseconds since the Unix epoch, UTC.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions() -> Vec<(&'static str, String)> {
        vec![("chunker_version", "1".into()), ("tokenizer_version", "1-english".into())]
    }

    #[test]
    fn creates_schema_with_wal_and_gitignore() {
        let dir = tempfile::tempdir().unwrap();
        let path = StorePath::for_root(dir.path());
        let (conn, _lock) = open_writer(&path, &versions()).unwrap();
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(migrate::user_version(&conn).unwrap(), SCHEMA_VERSION);
        assert!(dir.path().join(".aurora/.gitignore").exists());
        let reader = open_reader(&path).unwrap();
        let n: i64 = reader.query_row("SELECT count(*) FROM chunks", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn second_writer_is_refused_with_the_holder_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = StorePath::for_root(dir.path());
        let _first = open_writer(&path, &versions()).unwrap();
        let err = open_writer(&path, &versions()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "store is being written by another aurora process (pid {}); stop it or use --db",
                std::process::id()
            )
        );
    }

    #[test]
    fn newer_schema_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = StorePath::for_root(dir.path());
        drop(open_writer(&path, &versions()).unwrap());
        let conn = Connection::open(&path.db).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 2).unwrap();
        drop(conn);
        let err = open_writer(&path, &versions()).unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
        assert!(err.to_string().starts_with("this store was written by a newer aurora"));
        assert!(matches!(open_reader(&path).unwrap_err(), StoreError::NewerSchema { .. }));
    }

    #[test]
    fn an_older_schema_is_backed_up_then_migrated_keeping_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = StorePath::for_root(dir.path());
        let (conn, lock) = open_writer(&path, &versions()).unwrap();
        conn.execute_batch(
            "INSERT INTO files(path, size, mtime_ns, status, indexed_at) VALUES ('a.py', 1, 1, 'ok', 0); \
             DROP TABLE llm_usage; DROP TABLE decomposition_cache; DROP TABLE reasoning_chunks; \
             DROP TABLE conversations; PRAGMA user_version = 1;",
        )
        .unwrap();
        drop((conn, lock));
        assert!(matches!(open_reader(&path).unwrap_err(), StoreError::OlderSchema { found: 1, .. }));
        let (conn, _lock) = open_writer(&path, &versions()).unwrap();
        assert_eq!(migrate::user_version(&conn).unwrap(), SCHEMA_VERSION);
        let n: i64 = conn.query_row("SELECT count(*) FROM files", [], |r| r.get(0)).unwrap();
        let usage: i64 = conn.query_row("SELECT count(*) FROM llm_usage", [], |r| r.get(0)).unwrap();
        assert_eq!((n, usage), (1, 0));
        assert!(dir.path().join(".aurora/memory.db.bak-v1").exists());
    }

    #[test]
    fn usage_log_over_the_store_feeds_the_budget() {
        use crate::llm::{Budget, BudgetConfig, UsageLog, UsageRecord};
        let dir = tempfile::tempdir().unwrap();
        let path = StorePath::for_root(dir.path());
        let writer = std::sync::Arc::new(writer::Writer::open(&path, &versions()).unwrap());
        let log = usage::StoreUsageLog::new(writer.clone(), open_reader(&path).unwrap());
        let record = UsageRecord {
            at_ms: now_ms(),
            query_id: Some("q1".into()),
            phase: Some("synthesize".into()),
            role: "soar.synthesize".into(),
            prompt_version: 1,
            provider: "anthropic".into(),
            model: "claude-x".into(),
            input_tokens: 1000,
            output_tokens: 200,
            estimated: false,
            cost_usd: 9.5,
            price_known: true,
            duration_ms: 1200,
            status: "ok".into(),
        };
        log.record(&record).unwrap();
        assert_eq!(log.spent_usd(0).unwrap(), 9.5);
        assert_eq!(log.count(0).unwrap(), 1);
        assert_eq!(log.spent_usd(now_ms() + 60_000).unwrap(), 0.0);
        // 9.50 of a 10.00 month is spent: a call estimated at 1.00 is refused before it is made.
        let budget = Budget::new(BudgetConfig::default(), std::sync::Arc::new(log));
        let err = budget.check(None, 1.0).unwrap_err();
        assert!(matches!(err, crate::llm::LlmError::BudgetExceeded { .. }), "{err}");
        assert!(budget.check(None, 0.25).is_ok());
    }

    #[test]
    fn version_change_forces_rechunk() {
        let dir = tempfile::tempdir().unwrap();
        let path = StorePath::for_root(dir.path());
        let (conn, lock) = open_writer(&path, &versions()).unwrap();
        conn.execute(
            "INSERT INTO files(path, size, mtime_ns, content_hash, status, indexed_at) VALUES ('a.py', 1, 1, x'00', 'ok', 0)",
            [],
        )
        .unwrap();
        drop((conn, lock));
        let (conn, _lock) = open_writer(&path, &[("chunker_version", "2".into())]).unwrap();
        let hash: Option<Vec<u8>> = conn.query_row("SELECT content_hash FROM files", [], |r| r.get(0)).unwrap();
        assert_eq!(hash, None);
    }
}
