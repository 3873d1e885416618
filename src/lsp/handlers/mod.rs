//! Request and notification handlers. Each one is of exactly one kind:
//!
//! - **state**: applies a document or configuration change, in arrival order, through the one
//!   owner of that document. No `.await` while the state lock is held; no parsing, no SQL.
//! - **snapshot**: a read. Takes an `Arc` snapshot, then does CPU and SQLite work in
//!   `spawn_blocking`. Never waits on another request.
//! - **job**: long work. Runs as a task with a `CancellationToken` (dropping the handler cancels
//!   it), reports `$/progress` only if the client supports it, and answers exactly once.
//!
//! Every request ends in exactly one response: a panic in the blocking part or in the handler
//! future itself becomes `InternalError` (spec/lsp.md §0.1) and the server keeps running.

pub(crate) mod actions;
pub(crate) mod ask;
pub(crate) mod commands;
pub(crate) mod conversations;
pub(crate) mod documents;
pub(crate) mod lifecycle;
pub(crate) mod search;
pub(crate) mod soar_commands;
pub(crate) mod status;
pub(crate) mod symbols;
pub(crate) mod workspace;

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use tower_lsp_server::jsonrpc;

use crate::lsp::protocol::internal_error;

/// Runs a request handler, turning a panic into `InternalError` for `method`.
pub(crate) async fn request<T>(
    method: &'static str,
    handler: impl Future<Output = jsonrpc::Result<T>>,
) -> jsonrpc::Result<T> {
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            tracing::error!("{method} panicked: {}", panic_text(&*panic));
            Err(internal_error(method))
        }
    }
}

/// Runs a notification handler; a panic is logged and the server keeps running.
pub(crate) async fn notification(method: &'static str, handler: impl Future<Output = ()>) {
    if let Err(panic) = AssertUnwindSafe(handler).catch_unwind().await {
        tracing::error!("{method} panicked: {}", panic_text(&*panic));
    }
}

/// Runs CPU or SQLite work on the blocking pool; a panic there becomes `InternalError`.
pub(crate) async fn blocking<T: Send + 'static>(
    method: &'static str,
    work: impl FnOnce() -> jsonrpc::Result<T> + Send + 'static,
) -> jsonrpc::Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => {
            let why = if e.is_panic() { panic_text(&*e.into_panic()) } else { e.to_string() };
            tracing::error!("{method} failed on the blocking pool: {why}");
            Err(internal_error(method))
        }
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}
