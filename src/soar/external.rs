//! TEMPORARY stand-in (replaced by the soar-edits branch).
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
pub struct ExternalRun {
    pub command: Vec<String>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub stdin: String,
    pub timeout: Duration,
    pub max_output_bytes: u64,
}
pub enum ExternalOutcome {
    Exited { stdout: String, stderr_tail: String },
    Failed { code: Option<i32>, stderr_tail: String },
    TimedOut,
    Cancelled,
    OutputTooLarge,
    SpawnFailed(String),
}
pub async fn run(_spec: ExternalRun, _cancel: &CancellationToken) -> ExternalOutcome {
    ExternalOutcome::SpawnFailed("stand-in".into())
}
