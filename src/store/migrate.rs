//! Schema versions: an ordered list of migrations; `PRAGMA user_version` = how many have run.

use rusqlite::Connection;

use super::StoreError;

/// Migration *n* (1-based) brings the schema from version *n − 1* to *n*. Never edit a shipped one.
const MIGRATIONS: &[&str] =
    &[include_str!("schema_v1.sql"), include_str!("schema_v2.sql"), include_str!("schema_v3.sql")];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub(super) fn user_version(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Refuses a store from a newer build without touching it.
pub(super) fn check_not_newer(conn: &Connection) -> Result<u32, StoreError> {
    let found = user_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { found, known: SCHEMA_VERSION });
    }
    Ok(found)
}

/// Brings the store up to [`SCHEMA_VERSION`]. An existing store is copied to
/// `memory.db.bak-v<n>` first. Each migration runs in its own transaction with its version bump,
/// so a crash leaves the old or the new version.
pub(super) fn migrate(conn: &mut Connection, backup_dir: &std::path::Path) -> Result<(), StoreError> {
    let found = check_not_newer(conn)?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    if found == 0 {
        // Must precede every table, and cannot run inside a transaction.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL;")?;
    } else {
        let backup = backup_dir.join(format!("memory.db.bak-v{found}"));
        let _ = std::fs::remove_file(&backup);
        conn.execute("VACUUM INTO ?1", [backup.to_string_lossy()])?;
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let to = i as u32 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql).map_err(|e| StoreError::MigrationFailed { from: to - 1, to, source: e })?;
        tx.pragma_update(None, "user_version", to)?;
        tx.commit()?;
    }
    Ok(())
}
