//! Long jobs (`aurora/ask`, code-action commands; spec/lsp.md §0.3): at most
//! `soar.concurrency.requests` run at once, at most 8 more wait in FIFO order, and a request
//! beyond that is answered `TooManyRequests` at once. Each job has a `CancellationToken`,
//! cancelled when its handler future is dropped (`$/cancelRequest`) or when the client cancels
//! the job's progress (`window/workDoneProgress/cancel`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc;

use crate::lsp::lsp;
use crate::lsp::protocol::too_many_requests;

/// Requests that may wait for a slot (spec/lsp.md §0.3).
const MAX_WAITING: usize = 8;
/// Jobs running at once (`soar.concurrency.requests`, 1..=8; default 2).
pub(crate) const DEFAULT_RUNNING: usize = 2;

pub(crate) struct Jobs {
    slots: Arc<Semaphore>,
    running: usize,
    active: AtomicUsize,
    waiting: AtomicUsize,
    /// Cancellation by progress token, for `window/workDoneProgress/cancel`.
    by_token: Mutex<HashMap<String, CancellationToken>>,
}

/// A running job's slot; frees it when dropped.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    jobs: Arc<Jobs>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.jobs.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a waiting request until it gets its slot or is dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Removes a job's progress token from the registry when the job ends.
pub(crate) struct TokenEntry {
    jobs: Arc<Jobs>,
    key: Option<String>,
}

impl Drop for TokenEntry {
    fn drop(&mut self) {
        if let Some(key) = &self.key {
            self.jobs.by_token.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        }
    }
}

fn token_key(token: &lsp::ProgressToken) -> String {
    match token {
        lsp::ProgressToken::Number(n) => format!("n:{n}"),
        lsp::ProgressToken::String(s) => format!("s:{s}"),
    }
}

impl Jobs {
    pub fn new(running: usize) -> Arc<Jobs> {
        let running = running.clamp(1, 8);
        Arc::new(Jobs {
            slots: Arc::new(Semaphore::new(running)),
            running,
            active: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            by_token: Mutex::new(HashMap::new()),
        })
    }

    /// Waits in FIFO order for a slot; `TooManyRequests` when the queue is full.
    pub async fn wait(self: &Arc<Self>) -> jsonrpc::Result<Slot> {
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(too_many_requests(self.running + MAX_WAITING));
        }
        let _waiting = Waiting(&self.waiting);
        let permit = self.slots.clone().acquire_owned().await.map_err(|_| jsonrpc::Error::request_cancelled())?;
        self.active.fetch_add(1, Ordering::Relaxed);
        Ok(Slot { _permit: permit, jobs: self.clone() })
    }

    /// Lets `window/workDoneProgress/cancel` on `token` cancel `cancel` until the entry drops.
    pub fn register(self: &Arc<Self>, token: Option<&lsp::ProgressToken>, cancel: &CancellationToken) -> TokenEntry {
        let key = token.map(token_key);
        if let Some(key) = &key {
            self.by_token.lock().unwrap_or_else(PoisonError::into_inner).insert(key.clone(), cancel.clone());
        }
        TokenEntry { jobs: self.clone(), key }
    }

    /// `window/workDoneProgress/cancel`: cancels the job showing `token`, if any.
    pub fn cancel(&self, token: &lsp::ProgressToken) -> bool {
        let found = self.by_token.lock().unwrap_or_else(PoisonError::into_inner).get(&token_key(token)).cloned();
        found.map(|c| c.cancel()).is_some()
    }

    /// Running and waiting jobs, for `aurora/status`.
    pub fn counts(&self) -> (u64, u64) {
        (self.active.load(Ordering::Relaxed) as u64, self.waiting.load(Ordering::Relaxed) as u64)
    }

    /// Cancels every registered job (shutdown).
    pub fn cancel_all(&self) {
        for token in self.by_token.lock().unwrap_or_else(PoisonError::into_inner).values() {
            token.cancel();
        }
    }
}
