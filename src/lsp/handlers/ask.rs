//! `aurora/ask` (job, spec/lsp.md §4.2), and the SOAR job every SOAR command shares: a slot in the
//! queue of §0.3, a task with a cancellation token that dropping the request cancels, phase
//! progress and streamed answer text, and exactly one response.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use futures_util::FutureExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc;

use crate::llm::BudgetScope;
use crate::lsp::convert::{Encoding, LineIndex};
use crate::lsp::documents::Target;
use crate::lsp::handlers::search::Texts;
use crate::lsp::lsp;
use crate::lsp::progress::WorkDone;
use crate::lsp::protocol::{
    AskParams, AskPartialResult, AskResult, BUDGET_EXCEEDED, Citation, LLM_REQUEST_FAILED, LLM_UNAVAILABLE,
    PartialProgress, PartialProgressParams, PhaseTiming, Usage, Warning, error, index_not_ready, internal_error,
    invalid_params,
};
use crate::lsp::session::{Folder, FolderState, Session};
use crate::soar::error::LlmFailureKind;
use crate::soar::types::{EditorContext, IndexHint, LineRange, Outcome, Position, SoarEvent, SoarRequest};
use crate::soar::{SoarError, SoarResponse};

pub(crate) const METHOD: &str = "aurora/ask";
/// Longest question, in characters (spec/lsp.md §4.2).
const MAX_QUESTION_CHARS: usize = 10_000;
/// A longer selection is cut to its first 400 lines and 32 KiB (spec/lsp.md §4.2): a model's
/// context holds little more, and the rest of the file is retrieved by its chunks anyway.
const MAX_SELECTION_LINES: usize = 400;
const MAX_SELECTION_BYTES: usize = 32 * 1024;
const WAITING: &str = "Waiting for another Aurora request to finish";

pub(crate) async fn ask(session: &Arc<Session>, params: Value) -> jsonrpc::Result<AskResult> {
    let params = parse(params)?;
    let question = question(METHOD, params.question.as_deref())?;
    if params.text_document.is_none() {
        for (field, given) in [("range", params.range.is_some()), ("position", params.position.is_some())] {
            if given {
                return Err(invalid_params(format!("aurora/ask: `{field}` requires `textDocument`.")));
            }
        }
    }
    let uri = params.text_document.as_ref().map(|d| d.uri.clone());
    let context = prepare(session, uri.as_ref(), params.range, params.position).await?;
    let req = SoarRequest {
        editor: context.editor.clone(),
        conversation_id: params.conversation_id.clone(),
        no_cache: params.no_cache,
        index: context.hint,
        ..SoarRequest::ask(question)
    };
    let job = Job {
        method: METHOD,
        title: "Aurora: Thinking",
        progress: params.work_done_token.clone(),
        partial: params.partial_result_token.clone(),
    };
    let s = session.clone();
    run(session, context.folder.clone(), req, job, move |response, _| async move {
        let message = answered(&response);
        Ok((project(&s, &context, &response).await?, message))
    })
    .await
}

/// Params absent, `null`, `{}` or `[]` count as an empty object (spec/lsp.md §0.5).
fn parse(params: Value) -> jsonrpc::Result<AskParams> {
    match params {
        Value::Null => Ok(AskParams::default()),
        Value::Array(a) if a.is_empty() => Ok(AskParams::default()),
        other => serde_json::from_value(other).map_err(|e| invalid_params(format!("aurora/ask: {e}"))),
    }
}

/// The trimmed question, 1 to 10000 characters.
pub(crate) fn question(method: &str, question: Option<&str>) -> jsonrpc::Result<String> {
    let q = question.unwrap_or_default().trim();
    if q.is_empty() || q.chars().count() > MAX_QUESTION_CHARS {
        return Err(invalid_params(format!("{method}: `question` must be 1 to 10000 characters.")));
    }
    Ok(q.to_owned())
}

/// Where a request runs and what it knows of the editor.
#[derive(Clone)]
pub(crate) struct Context {
    pub folder: Arc<Folder>,
    /// The open document's place in `folder`, when the request named one there.
    pub target: Option<Target>,
    pub editor: Option<EditorContext>,
    pub hint: IndexHint,
    /// The handler's own warnings (`selectionTruncated`, `indexIncomplete`).
    pub warnings: Vec<Warning>,
}

/// Picks the folder (the document's, else the first), flushes dirty buffers, and builds the editor
/// context from the open buffer. `IndexNotReady` without a folder or a store.
pub(crate) async fn prepare(
    session: &Arc<Session>,
    uri: Option<&lsp::Uri>,
    range: Option<lsp::Range>,
    position: Option<lsp::Position>,
) -> jsonrpc::Result<Context> {
    let folders = session.folders();
    let Some(first) = folders.first().cloned() else {
        return Err(index_not_ready(
            "Aurora has no workspace folder; open a folder to ask about its code.",
            "noWorkspace",
        ));
    };
    let target = uri.and_then(|u| session.target_for(u));
    let folder = target.as_ref().map_or(first, |t| t.folder.clone());
    let mut warnings = Vec::new();
    let mut hint = IndexHint::default();
    match folder.state() {
        FolderState::Error(e) => {
            return Err(index_not_ready(format!("The index for '{}': {e}", folder.name), "failed"));
        }
        FolderState::Opening if !folder.store.db.exists() => {
            return Err(index_not_ready(
                format!("The index for '{}' is still being opened; try again in a moment.", folder.name),
                "opening",
            ));
        }
        FolderState::Indexing | FolderState::Opening => {
            let pass = folder.pass.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            let total = pass.total.load(std::sync::atomic::Ordering::Relaxed);
            let done = pass.committed.load(std::sync::atomic::Ordering::Relaxed).min(total);
            hint = IndexHint { partial: true, pending_files: total - done };
            let counts = if total > 0 { format!(" ({done}/{total} files)") } else { String::new() };
            warnings.push(Warning {
                code: "indexIncomplete".into(),
                message: format!("The index is still being built{counts}; the answer may miss code."),
            });
        }
        FolderState::Ready | FolderState::ReadOnly(_) => {}
    }
    session.flush_all().await;
    let editor = match (&target, uri) {
        (Some(t), Some(u)) => Some(editor_context(session, t, u, range, position, &mut warnings).await),
        _ => None,
    };
    Ok(Context { folder, target, editor, hint, warnings })
}

/// The editor context of `uri`: its open text (or the file on disk), version, selection and cursor.
async fn editor_context(
    session: &Arc<Session>,
    target: &Target,
    uri: &lsp::Uri,
    range: Option<lsp::Range>,
    position: Option<lsp::Position>,
    warnings: &mut Vec<Warning>,
) -> EditorContext {
    let (text, version) = match session.documents.snapshot(uri.as_str()) {
        Some((text, version)) => (Some(text), Some(version)),
        None => {
            let path = target.folder.root.join(&target.rel);
            (tokio::task::spawn_blocking(move || std::fs::read_to_string(path).ok()).await.ok().flatten(), None)
        }
    };
    let enc = session.encoding();
    let mut editor = EditorContext {
        path: target.rel.clone(),
        version,
        cursor: position.or(range.map(|r| r.start)).map(|p| Position { line: p.line, character: p.character }),
        ..EditorContext::default()
    };
    if let (Some(range), Some(text)) = (range.filter(|r| r.start < r.end), text.as_deref()) {
        let (selection, selected, truncated) = selection(text, range, enc);
        if truncated {
            warnings.push(Warning {
                code: "selectionTruncated".into(),
                message: "The selection is over 400 lines or 32 KiB; Aurora read only its beginning.".into(),
            });
        }
        editor.selection = Some(selection);
        editor.selection_text = Some(selected);
    }
    editor.buffer_text = version.and(text).map(Arc::from);
    editor
}

/// The selected lines (0-based, inclusive; a range ending at column 0 leaves that line out), the
/// selected text, and whether it was cut to the limits.
fn selection(text: &str, range: lsp::Range, enc: Encoding) -> (LineRange, String, bool) {
    let index = LineIndex::new(text);
    let start = index.offset(text, range.start, enc);
    let end = index.offset(text, range.end, enc).max(start);
    let mut selected = &text[start..end];
    let mut truncated = false;
    if let Some((cut, _)) = selected.match_indices('\n').nth(MAX_SELECTION_LINES - 1) {
        selected = &selected[..cut + 1];
        truncated = true;
    }
    if selected.len() > MAX_SELECTION_BYTES {
        let mut cut = MAX_SELECTION_BYTES;
        while !selected.is_char_boundary(cut) {
            cut -= 1;
        }
        selected = &selected[..cut];
        truncated = true;
    }
    let start_line = range.start.line;
    let newlines = selected.matches('\n').count() as u32;
    let end_line =
        if selected.ends_with('\n') && newlines > 0 { start_line + newlines - 1 } else { start_line + newlines };
    (LineRange { start_line, end_line }, selected.to_owned(), truncated)
}

/// How a job shows itself.
pub(crate) struct Job {
    /// The method or command, for logs and `InternalError`.
    pub method: &'static str,
    pub title: &'static str,
    /// Phase progress goes here: the request's `workDoneToken` or a server-created token.
    pub progress: Option<lsp::ProgressToken>,
    /// Streamed answer text goes here (`aurora/ask` only).
    pub partial: Option<lsp::ProgressToken>,
}

/// Runs `req` over `folder` as a job (spec/lsp.md §0.3–0.4): waits for a slot, runs the pipeline in
/// a task whose token is cancelled when this future is dropped (`$/cancelRequest`) or the progress
/// is cancelled, forwards events, and hands the response to `finish`, which returns the result and
/// the progress end's message. Model failures, budget refusals and cancellation become errors.
pub(crate) async fn run<T, F, Fut>(
    session: &Arc<Session>,
    folder: Arc<Folder>,
    req: SoarRequest,
    job: Job,
    finish: F,
) -> jsonrpc::Result<T>
where
    T: Send + 'static,
    F: FnOnce(SoarResponse, CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = jsonrpc::Result<(T, String)>> + Send + 'static,
{
    let method = job.method;
    let cancel = CancellationToken::new();
    // Dropping the request's future (tower-lsp-server answers RequestCancelled) cancels the task.
    let _guard = cancel.clone().drop_guard();
    let task = tokio::spawn(job_task(session.clone(), folder, req, job, cancel, finish));
    match task.await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!("{method} failed: {e}");
            Err(internal_error(method))
        }
    }
}

async fn job_task<T, F, Fut>(
    session: Arc<Session>,
    folder: Arc<Folder>,
    req: SoarRequest,
    job: Job,
    cancel: CancellationToken,
    finish: F,
) -> jsonrpc::Result<T>
where
    F: FnOnce(SoarResponse, CancellationToken) -> Fut,
    Fut: Future<Output = jsonrpc::Result<(T, String)>>,
{
    let client = session.client.clone();
    let jobs = session.jobs.clone();
    let mut waiting = pin!(jobs.wait());
    // A full queue answers at once, before any progress is shown.
    let ready = (&mut waiting).now_or_never();
    let _entry = jobs.register(job.progress.as_ref(), &cancel);
    let (_slot, mut work) = match ready {
        Some(slot) => {
            (slot?, WorkDone::start(&client, job.progress.clone(), job.title, "Thinking…".into(), true).await)
        }
        None => {
            let work = WorkDone::start(&client, job.progress.clone(), job.title, WAITING.into(), true).await;
            tokio::select! {
                slot = &mut waiting => match slot {
                    Ok(slot) => (slot, work),
                    Err(e) => return end(work, Err(e)).await,
                },
                () = cancel.cancelled() => return end(work, Err(cancelled())).await,
            }
        }
    };
    let (s, f) = (session.clone(), folder.clone());
    let pipeline = match tokio::task::spawn_blocking(move || crate::lsp::soar::pipeline(&s, &f)).await {
        Ok(Ok(p)) => p,
        Ok(Err(message)) => {
            session.note_llm_unusable(&message);
            return end(work, Err(error(LLM_UNAVAILABLE, message, None))).await;
        }
        Err(e) => {
            tracing::error!("{}: building the pipeline: {e}", job.method);
            return end(work, Err(internal_error(job.method))).await;
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let result = {
        let mut run = pin!(pipeline.run(req, tx, cancel.clone()));
        loop {
            tokio::select! {
                biased;
                Some(event) = rx.recv() => forward(&client, &mut work, job.partial.as_ref(), event).await,
                r = &mut run => break r,
            }
        }
    };
    while let Ok(event) = rx.try_recv() {
        forward(&client, &mut work, job.partial.as_ref(), event).await;
    }
    session.note_llm(&result);
    let config = session.config();
    let outcome = match result {
        Ok(r) => match &r.metadata.llm_failure {
            Some(f) => {
                let code = if f.kind == LlmFailureKind::Unavailable { LLM_UNAVAILABLE } else { LLM_REQUEST_FAILED };
                let data = json!({"provider": config.llm.provider.name(), "model": config.llm.model, "role": f.role});
                Err(error(code, f.message.clone(), Some(data)))
            }
            None => Ok(r),
        },
        Err(e) => Err(soar_error(job.method, e)),
    };
    match outcome {
        Ok(response) => match finish(response, cancel.clone()).await {
            Ok((value, message)) => {
                work.end(message).await;
                Ok(value)
            }
            Err(e) => end(work, Err(e)).await,
        },
        Err(e) => end(work, Err(e)).await,
    }
}

/// Ends the progress with the error's message ("Cancelled" for a cancellation).
async fn end<T>(work: WorkDone, result: jsonrpc::Result<T>) -> jsonrpc::Result<T> {
    if let Err(e) = &result {
        let message =
            if e.code == jsonrpc::ErrorCode::RequestCancelled { "Cancelled".into() } else { e.message.to_string() };
        work.end(message).await;
    }
    result
}

/// One pipeline event to the client: phase progress, streamed text, a budget warning.
async fn forward(
    client: &tower_lsp_server::Client,
    work: &mut WorkDone,
    partial: Option<&lsp::ProgressToken>,
    event: SoarEvent,
) {
    match event {
        SoarEvent::Progress { message, percentage, .. } => work.report(message, percentage).await,
        SoarEvent::AnswerDelta { text, .. } => {
            if let Some(token) = partial {
                let value = AskPartialResult { delta: text, phase: "synthesize".into(), reset: false };
                client
                    .send_notification::<PartialProgress>(PartialProgressParams { token: token.clone(), value })
                    .await;
            }
        }
        SoarEvent::AnswerReset { .. } => {
            if let Some(token) = partial {
                let value = AskPartialResult { delta: String::new(), phase: "synthesize".into(), reset: true };
                client
                    .send_notification::<PartialProgress>(PartialProgressParams { token: token.clone(), value })
                    .await;
            }
        }
        SoarEvent::BudgetWarning { message } => client.log_message(lsp::MessageType::WARNING, message).await,
    }
}

pub(crate) fn cancelled() -> jsonrpc::Error {
    jsonrpc::Error { code: jsonrpc::ErrorCode::RequestCancelled, message: "Cancelled.".into(), data: None }
}

/// A typed SOAR failure as the error of spec/lsp.md §4.7.
fn soar_error(method: &str, e: SoarError) -> jsonrpc::Error {
    match e {
        SoarError::Cancelled => cancelled(),
        SoarError::InvalidRequest(why) => invalid_params(format!("{method}: {why}.")),
        SoarError::BudgetExceeded { scope, consumed_usd, limit_usd, estimated_usd } => {
            let (name, message) = match scope {
                BudgetScope::Monthly => (
                    "monthly",
                    format!(
                        "This question would exceed your monthly LLM budget (${limit_usd:.2}; ${consumed_usd:.2} spent in {}). Raise aurora.budget.monthlyUsd to continue.",
                        crate::llm::budget::period_of(crate::store::now_ms())
                    ),
                ),
                BudgetScope::Query => (
                    "perQuery",
                    format!(
                        "This question would cost about ${estimated_usd:.4}, over the per-question limit of ${limit_usd:.2}. Raise aurora.budget.perQueryUsd to continue."
                    ),
                ),
            };
            let data =
                json!({"scope": name, "limitUsd": limit_usd, "spentUsd": consumed_usd, "estimateUsd": estimated_usd});
            error(BUDGET_EXCEEDED, message, Some(data))
        }
    }
}

/// "Answered in 3.1 s ($0.0126)".
pub(crate) fn answered(r: &SoarResponse) -> String {
    format!("Answered in {:.1} s (${:.4})", r.metadata.total_duration_ms / 1000.0, r.metadata.total_cost_usd)
}

/// The `AskResult` of a response: citations as locations in the negotiated encoding.
pub(crate) async fn project(session: &Arc<Session>, ctx: &Context, r: &SoarResponse) -> jsonrpc::Result<AskResult> {
    let no_llm = r.outcome == Outcome::NoLlm;
    // Without a model the retrieved locations are the citations (spec/lsp.md §4.2).
    let places: Vec<(String, u32, u32, String, String, bool)> = if no_llm {
        r.related
            .iter()
            .map(|c| (c.file.clone(), c.start_line, c.end_line, c.chunk_id.clone(), c.name.clone(), false))
            .collect()
    } else {
        r.citations
            .iter()
            .map(|c| {
                (
                    c.file.clone(),
                    c.start_line,
                    c.end_line,
                    c.chunk_id.clone().unwrap_or_default(),
                    c.name.clone(),
                    c.stale,
                )
            })
            .collect()
    };
    let (s, folder) = (session.clone(), ctx.folder.clone());
    let enc = session.encoding();
    let citations = super::blocking(METHOD, move || {
        let mut texts = Texts::new(&s);
        Ok(places
            .into_iter()
            .filter_map(|(file, start, end, chunk_id, name, stale)| {
                let (uri, range) = line_range(&mut texts, &folder, &file, start, end, enc)?;
                Some(Citation { uri, range, chunk_id, name, stale })
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let mut warnings: Vec<Warning> = ctx.warnings.clone();
    warnings.extend(r.metadata.warnings.iter().map(|w| Warning { code: w.code.clone(), message: w.message.clone() }));
    if no_llm && !warnings.iter().any(|w| w.code == "llmNotConfigured") {
        warnings.push(Warning {
            code: "llmNotConfigured".into(),
            message: "No LLM provider is configured, so these are the matching code locations; set aurora.llm.provider for answers.".into(),
        });
    }
    if citations.iter().any(|c| c.stale) && !warnings.iter().any(|w| w.code == "staleCitations") {
        warnings.push(Warning {
            code: "staleCitations".into(),
            message: "Some cited code changed after Aurora read it.".into(),
        });
    }
    let m = &r.metadata;
    Ok(AskResult {
        conversation_id: m.conversation_id.clone(),
        query_id: m.query_id.clone(),
        answer: r.answer.clone(),
        citations,
        confidence: if no_llm { 0.0 } else { r.confidence },
        complexity: r.complexity.as_str().to_owned(),
        phases: phases(r),
        usage: usage(r),
        cached: m.decomposition_cache_hit,
        index_generation: session.generation(),
        partial: ctx.hint.partial || m.index.partial,
        warnings,
    })
}

pub(crate) fn phases(r: &SoarResponse) -> Vec<PhaseTiming> {
    r.timings().into_iter().map(|(k, ms)| PhaseTiming { name: k.name().to_owned(), ms: ms.round() as u64 }).collect()
}

pub(crate) fn usage(r: &SoarResponse) -> Usage {
    let u = &r.metadata.usage;
    Usage { input_tokens: u.input_tokens, output_tokens: u.output_tokens, cost_usd: u.cost_usd }
}

/// Lines `start..=end` of `rel` as a range from column 0 to the end of the last line. Blocking.
pub(crate) fn line_range(
    texts: &mut Texts<'_>,
    folder: &Arc<Folder>,
    rel: &str,
    start: u32,
    end: u32,
    enc: Encoding,
) -> Option<(lsp::Uri, lsp::Range)> {
    let at = |line: u32, character: u32| lsp::Position { line, character };
    match texts.get(folder, rel) {
        Some((uri, text, index)) => {
            let range = lsp::Range { start: at(start, 0), end: index.line_end(text, end as usize, enc) };
            Some((uri.parse().ok()?, range))
        }
        None => Some((
            crate::lsp::convert::join_uri(&folder.uri, rel)?,
            lsp::Range { start: at(start, 0), end: at(end + 1, 0) },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(a: (u32, u32), b: (u32, u32)) -> lsp::Range {
        lsp::Range {
            start: lsp::Position { line: a.0, character: a.1 },
            end: lsp::Position { line: b.0, character: b.1 },
        }
    }

    #[test]
    fn a_selection_ending_at_column_zero_leaves_that_line_out() {
        let (lines, text, cut) = selection("a\nb\nc\n", range((0, 0), (2, 0)), Encoding::Utf16);
        assert_eq!((lines.start_line, lines.end_line, text.as_str(), cut), (0, 1, "a\nb\n", false));
        let (lines, text, _) = selection("a\nbcd\nc\n", range((1, 1), (1, 2)), Encoding::Utf16);
        assert_eq!((lines.start_line, lines.end_line, text.as_str()), (1, 1, "c"));
    }

    #[test]
    fn a_long_selection_is_cut_to_400_lines() {
        let text = "x = 1\n".repeat(1000);
        let (lines, selected, cut) = selection(&text, range((10, 0), (900, 0)), Encoding::Utf16);
        assert!(cut);
        assert_eq!((lines.start_line, lines.end_line), (10, 409));
        assert_eq!(selected.lines().count(), 400);
    }

    #[test]
    fn questions_are_trimmed_and_bounded() {
        assert_eq!(question(METHOD, Some("  where?  ")).ok(), Some("where?".to_owned()));
        assert!(question(METHOD, Some("   ")).is_err());
        assert!(question(METHOD, None).is_err());
        assert!(question(METHOD, Some(&"x".repeat(10_001))).is_err());
    }
}
