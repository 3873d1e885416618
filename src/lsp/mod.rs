//! The LSP edge: the only module that sees protocol types, JSON-RPC or position encodings.
//!
//! `aurora lsp` serves the Language Server Protocol on stdin/stdout (spec/lsp.md): background
//! indexing of every workspace folder, text sync into the store, file watching, `aurora/ask` and
//! the SOAR commands (through `soar`), `aurora/search`, `aurora/status` and `workspace/symbol`. Logs go to stderr only; stdout carries frames.

pub(crate) use tower_lsp_server::ls_types as lsp;

#[doc(hidden)]
pub mod convert;
pub(crate) mod documents;
pub(crate) mod handlers;
pub(crate) mod jobs;
pub(crate) mod line_edits;
pub(crate) mod progress;
pub(crate) mod protocol;
pub(crate) mod server;
pub(crate) mod session;
pub(crate) mod soar;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use tower_lsp_server::jsonrpc::Request;
use tower_lsp_server::{LspService, Server};

/// Handler futures run in one bounded pool: at the default 4, four slow requests held a
/// `didChange` back 1.45 s (DESIGN.md §3a).
const CONCURRENCY: usize = 32;
/// Blocking work still running at exit gets this long before the process ends anyway.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Runs the server until `exit` or the end of stdin. Exit code 0 only after `shutdown`.
pub fn run() -> ExitCode {
    if std::io::stdin().is_terminal() {
        tracing::warn!(
            "aurora lsp speaks the Language Server Protocol on stdin/stdout and is started by an editor; try `aurora --help`."
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let clean = runtime.block_on(async {
        let mut session = None;
        let (service, socket) = LspService::build(|client| {
            let backend = server::Backend::new(client);
            session = Some(backend.session.clone());
            backend
        })
        .custom_method("aurora/ask", server::Backend::ask)
        .custom_method("aurora/search", server::Backend::search)
        .custom_method("aurora/status", server::Backend::status)
        .custom_method("aurora/conversations", server::Backend::conversations)
        .custom_method("window/workDoneProgress/cancel", server::Backend::work_done_progress_cancel)
        .finish();
        Server::new(tokio::io::stdin(), tokio::io::stdout(), socket)
            .concurrency_level(CONCURRENCY)
            .serve(DefaultParams(service))
            .await;
        session.is_some_and(|s| s.shutdown_requested.load(Ordering::Relaxed))
    });
    runtime.shutdown_timeout(EXIT_GRACE);
    if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Gives custom requests sent without `params` an empty object, so methods whose fields are all
/// optional accept params absent as well as `null`, `{}` and `[]` (spec/lsp.md §0.5).
struct DefaultParams<S>(S);

impl<S: tower_service::Service<Request>> tower_service::Service<Request> for DefaultParams<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let req = if req.params().is_none() && req.id().is_some() && req.method().starts_with("aurora/") {
            let (method, id, _) = req.into_parts();
            let builder = Request::build(method).params(serde_json::json!({}));
            match id {
                Some(id) => builder.id(id).finish(),
                None => builder.finish(),
            }
        } else {
            req
        };
        self.0.call(req)
    }
}
