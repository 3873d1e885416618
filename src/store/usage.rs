//! LLM usage in the store (`llm_usage`): the [`UsageLog`] the budget reads and every call writes.

use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};

use super::StoreError;
use super::writer::{Op, Writer};
use crate::llm::{UsageLog, UsageLogError, UsageRecord};

/// Writes go through the store's writer (interactive queue); sums are read on a read connection.
pub struct StoreUsageLog {
    writer: Arc<Writer>,
    reader: Mutex<Connection>,
}

impl StoreUsageLog {
    pub fn new(writer: Arc<Writer>, reader: Connection) -> StoreUsageLog {
        StoreUsageLog { writer, reader: Mutex::new(reader) }
    }

    fn query(&self, sql: &str, since_ms: i64) -> Result<f64, UsageLogError> {
        let conn = self.reader.lock().map_err(|_| UsageLogError("reader lock poisoned".into()))?;
        conn.prepare_cached(sql)
            .and_then(|mut s| s.query_row([since_ms], |r| r.get::<_, f64>(0)))
            .map_err(|e| UsageLogError(e.to_string()))
    }
}

impl UsageLog for StoreUsageLog {
    fn record(&self, usage: &UsageRecord) -> Result<(), UsageLogError> {
        self.writer.send(Op::RecordUsage(usage.clone())).map_err(|e| UsageLogError(e.to_string()))?;
        // The budget reads what it just recorded: wait for the commit.
        self.writer.sync().map(|_| ()).map_err(|e| UsageLogError(e.to_string()))
    }

    fn spent_usd(&self, since_ms: i64) -> Result<f64, UsageLogError> {
        self.query("SELECT coalesce(sum(cost_usd), 0.0) FROM llm_usage WHERE at_ms >= ?1", since_ms)
    }

    fn count(&self, since_ms: i64) -> Result<u64, UsageLogError> {
        self.query("SELECT CAST(count(*) AS REAL) FROM llm_usage WHERE at_ms >= ?1", since_ms).map(|n| n as u64)
    }
}

/// Inserts one usage row (on the writer thread).
pub(super) fn insert(conn: &Connection, u: &UsageRecord) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO llm_usage (at_ms, query_id, phase, role, prompt_version, provider, model, input_tokens, \
         output_tokens, estimated, cost_usd, price_known, duration_ms, status) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        u.at_ms,
        u.query_id,
        u.phase,
        u.role,
        u.prompt_version,
        u.provider,
        u.model,
        u.input_tokens,
        u.output_tokens,
        u.estimated,
        u.cost_usd,
        u.price_known,
        u.duration_ms as i64,
        u.status,
    ])?;
    Ok(())
}
