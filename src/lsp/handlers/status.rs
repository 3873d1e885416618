//! `aurora/status` (snapshot, spec/lsp.md §4.4): what each folder's store holds, indexing state,
//! the LLM's configuration (never probed) and configuration problems.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;
use tower_lsp_server::jsonrpc;

use crate::llm::config::ProviderKind;
use crate::lsp::protocol::{
    BudgetStatus, ConfigProblem, ConfigStatus, DidChangeStatus, FolderStatus, IndexingCount, LlmStatus,
    PROTOCOL_VERSION, StatusCommand, StatusResult,
};
use crate::lsp::session::{FolderState, Session};
use crate::store::read;

const METHOD: &str = "aurora/status";

pub(crate) async fn status(session: &Arc<Session>, _params: Value) -> jsonrpc::Result<StatusResult> {
    session.flush_all().await;
    let s = session.clone();
    super::blocking(METHOD, move || Ok(build(&s))).await
}

fn build(session: &Session) -> StatusResult {
    let config = session.config();
    let mut folders = Vec::new();
    for folder in session.folders() {
        let state = folder.state();
        let counts = crate::store::open_reader(&folder.store).and_then(|c| read::counts(&c)).unwrap_or_default();
        let pass = folder.pass.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let total = pass.total.load(Ordering::Relaxed);
        let watcher = *folder.watcher_state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        folders.push(FolderStatus {
            uri: folder.uri.clone(),
            store_path: folder.store.db.display().to_string(),
            state: match state {
                FolderState::Opening => "opening",
                FolderState::Indexing => "indexing",
                FolderState::Ready => "ready",
                FolderState::ReadOnly(_) => "readOnly",
                FolderState::Error(_) => "error",
            },
            files_indexed: counts.files_ok + counts.files_partial,
            files_total: (state == FolderState::Indexing).then_some(total),
            chunks: counts.chunks,
            skipped: counts.skipped_by_reason.clone(),
            stale_files: counts.files_partial,
            watcher,
            last_indexed_at: counts.last_indexed_at.map(|ms| format!("{ms}")),
            db_bytes: folder.store.size_bytes(),
            error: match state {
                FolderState::Error(e) | FolderState::ReadOnly(e) => Some(e),
                _ => None,
            },
        });
    }
    let llm = &config.llm;
    let llm_status = if llm.provider == ProviderKind::None {
        LlmStatus {
            provider: "none".into(),
            model: None,
            state: "notConfigured",
            message: Some("To ask questions, set aurora.llm.provider.".into()),
            last_latency_ms: None,
        }
    } else {
        let health = session.llm_health.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        LlmStatus {
            provider: llm.provider.name().into(),
            model: (!llm.model.is_empty()).then(|| llm.model.clone()),
            state: health.state,
            message: health.message,
            last_latency_ms: health.last_latency_ms,
        }
    };
    let problems: Vec<ConfigProblem> = session
        .problems
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|p| ConfigProblem { key_path: p.key.clone(), source: p.source.clone(), message: p.message.clone() })
        .collect();
    let summary = summary(session);
    let state = STATES.iter().find(|s| **s == summary.state).copied().unwrap_or("ready");
    let message = summary.message;
    let now = crate::store::now_ms();
    let since = crate::llm::budget::month_start_ms(now);
    let spent: f64 = session
        .folders()
        .iter()
        .filter_map(|f| crate::store::open_reader(&f.store).ok())
        .filter_map(|c| {
            c.query_row("SELECT coalesce(sum(cost_usd), 0.0) FROM llm_usage WHERE at_ms >= ?1", [since], |r| {
                r.get::<_, f64>(0)
            })
            .ok()
        })
        .sum();
    let b = &config.budget;
    let budget = BudgetStatus {
        period: crate::llm::budget::period_of(now),
        spent_usd: spent,
        monthly_usd: b.monthly_usd,
        per_query_usd: b.per_query_usd,
        state: if b.monthly_usd > 0.0 && spent >= b.monthly_usd * f64::from(b.hard_limit_pct) / 100.0 {
            "exceeded"
        } else if b.monthly_usd > 0.0 && spent >= b.monthly_usd * f64::from(b.soft_limit_pct) / 100.0 {
            "warning"
        } else {
            "ok"
        },
    };
    StatusResult {
        budget,
        state,
        message,
        server_version: env!("CARGO_PKG_VERSION").into(),
        protocol_version: PROTOCOL_VERSION,
        position_encoding: session.encoding().as_str(),
        index_generation: session.generation(),
        folders,
        llm: llm_status,
        config: ConfigStatus {
            sources: session.config_sources.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
            problems,
        },
        active_requests: session.jobs.counts().0,
        queued_requests: session.jobs.counts().1,
    }
}

const STATES: [&str; 5] = ["starting", "indexing", "ready", "degraded", "error"];

/// Reasons that make the server `degraded`, in the order their messages take precedence.
const DEGRADING: [(&str, &str); 6] = [
    ("storeError", "Index error; see Aurora status"),
    ("storeReadOnly", "Read-only: another Aurora server indexes this folder"),
    ("configInvalid", "Configuration problems; see Aurora status"),
    ("watcherDegraded", "File watcher degraded; see Aurora status"),
    ("llmUnavailable", "LLM unavailable: search still works"),
    ("llmNotConfigured", "Search only: no LLM configured"),
];

/// The status-bar summary (spec/lsp.md §4.5), from in-memory state only: no SQL, no network.
pub(crate) fn summary(session: &Session) -> DidChangeStatus {
    let folders = session.folders();
    let mut reasons: Vec<&'static str> = Vec::new();
    let (mut done, mut total, mut busy, mut opening, mut usable) = (0, 0, false, false, false);
    for folder in &folders {
        match folder.state() {
            FolderState::Indexing => {
                busy = true;
                let pass = folder.pass.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                let t = pass.total.load(Ordering::Relaxed);
                done += pass.committed.load(Ordering::Relaxed).min(t);
                total += t;
                usable = true;
            }
            FolderState::Opening => opening = true,
            FolderState::Ready => usable = true,
            FolderState::ReadOnly(_) => {
                usable = true;
                reasons.push("storeReadOnly");
            }
            FolderState::Error(_) => reasons.push("storeError"),
        }
        if *folder.watcher_state.lock().unwrap_or_else(std::sync::PoisonError::into_inner) == "degraded" {
            reasons.push("watcherDegraded");
        }
    }
    if !session.problems.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_empty() {
        reasons.push("configInvalid");
    }
    if session.config().llm.provider == ProviderKind::None {
        reasons.push("llmNotConfigured");
    } else if session.llm_health.lock().unwrap_or_else(std::sync::PoisonError::into_inner).unavailable() {
        reasons.push("llmUnavailable");
    }
    reasons.sort_by_key(|r| DEGRADING.iter().position(|(d, _)| d == r).unwrap_or(DEGRADING.len()));
    reasons.dedup();
    let show_status = Some(StatusCommand { title: "Show status".into(), command: "aurora.showStatus".into() });
    let (state, message, command) = if !folders.is_empty() && !usable && !opening {
        ("error", "No folder has a usable index; see Aurora status".to_owned(), show_status)
    } else if busy {
        ("indexing", format!("Indexing {done}/{total} files"), None)
    } else if opening {
        ("starting", "Starting".to_owned(), None)
    } else if let Some((_, text)) = DEGRADING.iter().find(|(d, _)| reasons.contains(d)) {
        ("degraded", (*text).to_owned(), show_status)
    } else {
        ("ready", "Ready".to_owned(), None)
    };
    DidChangeStatus {
        state: state.to_owned(),
        busy: busy || opening,
        message,
        reasons: reasons.into_iter().map(str::to_owned).collect(),
        indexing: busy.then_some(IndexingCount { done, total }),
        command,
    }
}

/// How often the notifier looks at the state.
const STATUS_TICK: Duration = Duration::from_millis(250);
/// Counter-only updates go out at most this often.
const COUNTER_INTERVAL: Duration = Duration::from_secs(1);

/// Sends `aurora/didChangeStatus` after `initialized`, on every change of state, message kind or
/// reasons, and for counter updates at most once per second; ends at shutdown.
pub(crate) async fn notifier(session: Arc<Session>) {
    let mut last: Option<(DidChangeStatus, Instant)> = None;
    while !session.shutdown_requested.load(Ordering::Relaxed) {
        let now = summary(&session);
        let send = match &last {
            None => true,
            Some((prev, at)) => {
                let shape_changed = prev.state != now.state || prev.reasons != now.reasons || prev.busy != now.busy;
                let counters_changed = prev.message != now.message || prev.indexing != now.indexing;
                shape_changed || (counters_changed && at.elapsed() >= COUNTER_INTERVAL)
            }
        };
        if send {
            session.client.send_notification::<DidChangeStatusNotification>(now.clone()).await;
            last = Some((now, Instant::now()));
        }
        tokio::time::sleep(STATUS_TICK).await;
    }
}

enum DidChangeStatusNotification {}

impl tower_lsp_server::ls_types::notification::Notification for DidChangeStatusNotification {
    type Params = DidChangeStatus;
    const METHOD: &'static str = "aurora/didChangeStatus";
}
