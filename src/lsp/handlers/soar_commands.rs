//! The commands that run SOAR (job, spec/lsp.md §5.3–5.4): `aurora.ask` and `aurora.explain`
//! answer and write an answer file; `aurora.refactor`, `aurora.document` and `aurora.tests` turn
//! the proposed edits into one `workspace/applyEdit`, pinned to the document version the job
//! started from.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc;

use crate::llm::ProviderKind;
use crate::lsp::handlers::actions::{ASK, DOCUMENT, EXPLAIN, EXPLAIN_QUESTION, REFACTOR, TESTS};
use crate::lsp::handlers::ask::{self, Context, Job};
use crate::lsp::line_edits::line_edits;
use crate::lsp::lsp;
use crate::lsp::progress::WorkDone;
use crate::lsp::protocol::{
    ActionArgs, AskParams, AskResult, CONTENT_MODIFIED, EditResult, LLM_NOT_CONFIGURED, REQUEST_FAILED, Warning, error,
    invalid_params,
};
use crate::lsp::session::Session;
use crate::soar::SoarResponse;
use crate::soar::types::{DirectedKind, EditChange, Outcome, SoarRequest};

/// Answer files kept per folder (spec/lsp.md §5.3).
const ANSWERS_KEPT: usize = 50;
const NOT_PARSED: &str = "The model's code did not parse; nothing was changed.";
const NO_PROVIDER: &str = "No LLM provider is configured, so Aurora cannot write code. Set aurora.llm.provider \
(anthropic, openai, ollama or command). Search and questions still work.";

/// Server-created progress tokens are numbered in this session.
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

pub(crate) async fn run(
    session: &Arc<Session>,
    command: &str,
    arg: Option<Value>,
    token: Option<lsp::ProgressToken>,
) -> jsonrpc::Result<Option<Value>> {
    let value = match command {
        ASK => {
            let params: AskParams = argument(command, arg)?;
            to_value(ask_command(session, params, token).await?)
        }
        EXPLAIN => to_value(explain(session, argument(command, arg)?, token).await?),
        _ => {
            let kind = match command {
                REFACTOR => DirectedKind::Refactor,
                DOCUMENT => DirectedKind::Document,
                TESTS => DirectedKind::Tests,
                other => return Err(invalid_params(format!("workspace/executeCommand: unknown command `{other}`."))),
            };
            let command: &'static str = match kind {
                DirectedKind::Refactor => REFACTOR,
                DirectedKind::Document => DOCUMENT,
                DirectedKind::Tests => TESTS,
            };
            to_value(edit(session, command, kind, argument(command, arg)?, token).await?)
        }
    };
    Ok(Some(value))
}

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The command's one argument object; missing or malformed → InvalidParams.
fn argument<T: serde::de::DeserializeOwned>(command: &str, arg: Option<Value>) -> jsonrpc::Result<T> {
    match arg {
        Some(v @ Value::Object(_)) => {
            serde_json::from_value(v).map_err(|e| invalid_params(format!("{command}: the argument is malformed: {e}")))
        }
        _ => Err(invalid_params(format!("{command}: the argument object is missing."))),
    }
}

/// The request's token, else a server-created one when the client shows progress.
async fn progress_token(session: &Session, token: Option<lsp::ProgressToken>) -> Option<lsp::ProgressToken> {
    if token.is_some() || !session.flags().work_done_progress {
        return token;
    }
    let id = format!("aurora-job-{}", NEXT_TOKEN.fetch_add(1, Ordering::Relaxed));
    WorkDone::create(&session.client, &id).await
}

async fn ask_command(
    session: &Arc<Session>,
    params: AskParams,
    token: Option<lsp::ProgressToken>,
) -> jsonrpc::Result<AskResult> {
    let question = ask::question(ASK, params.question.as_deref())?;
    if params.text_document.is_none() && (params.range.is_some() || params.position.is_some()) {
        let field = if params.range.is_some() { "range" } else { "position" };
        return Err(invalid_params(format!("{ASK}: `{field}` requires `textDocument`.")));
    }
    let uri = params.text_document.as_ref().map(|d| d.uri.clone());
    let ctx = ask::prepare(session, uri.as_ref(), params.range, params.position).await?;
    let req = SoarRequest {
        editor: ctx.editor.clone(),
        conversation_id: params.conversation_id.clone(),
        no_cache: params.no_cache,
        index: ctx.hint,
        ..SoarRequest::ask(question.clone())
    };
    answer_job(session, ctx, req, question, ASK, "Aurora: Ask", token).await
}

async fn explain(
    session: &Arc<Session>,
    args: ActionArgs,
    token: Option<lsp::ProgressToken>,
) -> jsonrpc::Result<AskResult> {
    let uri = args.text_document.uri.clone();
    let ctx = ask::prepare(session, Some(&uri), Some(args.range), None).await?;
    let Some(editor) = ctx.editor.clone() else {
        return Err(invalid_params(format!("{EXPLAIN}: {} is not in a workspace folder.", uri.as_str())));
    };
    let user_text = args.question.as_deref().filter(|q| q.trim() != EXPLAIN_QUESTION);
    let req = SoarRequest { index: ctx.hint, ..SoarRequest::explain(editor.clone(), user_text) };
    let title = format!("Explain {}", editor.path);
    answer_job(session, ctx, req, title, EXPLAIN, "Aurora: Explain", token).await
}

/// Runs an answering job; the answer also goes to an answer file shown to the user, unless the
/// client shows answers itself (`experimental.aurora.answerView`).
async fn answer_job(
    session: &Arc<Session>,
    ctx: Context,
    req: SoarRequest,
    title: String,
    method: &'static str,
    progress_title: &'static str,
    token: Option<lsp::ProgressToken>,
) -> jsonrpc::Result<AskResult> {
    let progress = progress_token(session, token).await;
    let job = Job { method, title: progress_title, progress, partial: None };
    let s = session.clone();
    let folder = ctx.folder.clone();
    ask::run(session, folder, req, job, move |response, _| async move {
        let message = ask::answered(&response);
        let result = ask::project(&s, &ctx, &response).await?;
        if !s.flags().answer_view {
            show_answer(&s, &ctx, &title, &response).await;
        }
        Ok((result, message))
    })
    .await
}

/// Writes the answer file and opens it (`window/showDocument`), or names it in a message.
async fn show_answer(session: &Arc<Session>, ctx: &Context, title: &str, r: &SoarResponse) {
    let root = ctx.folder.root.clone();
    let text = answer_markdown(title, r);
    let name = answer_name(title, &r.metadata.query_id);
    let written = tokio::task::spawn_blocking(move || write_answer(&root, &name, &text)).await;
    let path = match written {
        Ok(Ok(path)) => path,
        Ok(Err(e)) => {
            tracing::warn!("writing the answer file: {e}");
            return;
        }
        Err(e) => {
            tracing::error!("writing the answer file: {e}");
            return;
        }
    };
    if session.flags().show_document
        && let Some(uri) = crate::lsp::convert::path_to_uri(&path)
    {
        let params = lsp::ShowDocumentParams { uri, external: None, take_focus: Some(true), selection: None };
        if let Ok(true) = session.client.show_document(params).await {
            return;
        }
    }
    let rel = ctx.folder.relative(&path).unwrap_or_else(|| path.display().to_string());
    session.client.show_message(lsp::MessageType::INFO, format!("Aurora wrote the answer to {rel}.")).await;
}

/// `<YYYY-MM-DD>-<slug>-<queryId>.md`.
fn answer_name(title: &str, query_id: &str) -> String {
    let (y, m, d) = crate::llm::budget::civil_from_days(crate::store::now_ms().div_euclid(86_400_000));
    let mut slug = String::new();
    for word in title.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        if slug.len() + word.len() > 40 {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_lowercase());
    }
    if slug.is_empty() {
        slug.push_str("answer");
    }
    format!("{y:04}-{m:02}-{d:02}-{slug}-{query_id}.md")
}

/// Title, answer, sources as relative links, and a footer (spec/lsp.md §5.3).
fn answer_markdown(title: &str, r: &SoarResponse) -> String {
    let mut out = format!("# {title}\n\n{}\n", r.answer.trim_end());
    let sources: Vec<(String, u32, String)> = if r.outcome == Outcome::NoLlm {
        r.related.iter().map(|c| (c.file.clone(), c.start_line, c.name.clone())).collect()
    } else {
        r.citations.iter().map(|c| (c.file.clone(), c.start_line, c.name.clone())).collect()
    };
    if !sources.is_empty() {
        out.push_str("\n## Sources\n\n");
        for (file, line, name) in sources {
            out.push_str(&format!("- [{file}:{0}](../../{file}#L{0}) `{name}`\n", line + 1));
        }
    }
    out.push_str(&format!(
        "\n---\n{} · confidence {:.2} · {:.1} s · ${:.4}\n",
        r.complexity,
        r.confidence,
        r.metadata.total_duration_ms / 1000.0,
        r.metadata.total_cost_usd
    ));
    out
}

/// Writes `.aurora/answers/<name>` and keeps the newest files only. Blocking.
fn write_answer(root: &Path, name: &str, text: &str) -> std::io::Result<PathBuf> {
    let dir = root.join(".aurora").join("answers");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    for (_, old) in files.into_iter().skip(ANSWERS_KEPT) {
        if old != path {
            let _ = std::fs::remove_file(old);
        }
    }
    Ok(path)
}

// ----- edit commands -----------------------------------------------------------------------

fn content_modified(uri: &lsp::Uri, rel: &str, expected: i32, actual: Option<i32>) -> jsonrpc::Error {
    error(
        CONTENT_MODIFIED,
        format!("{rel} changed while Aurora was working; nothing was applied. Run the action again."),
        Some(json!({"uri": uri.as_str(), "expectedVersion": expected, "actualVersion": actual})),
    )
}

async fn edit(
    session: &Arc<Session>,
    command: &'static str,
    kind: DirectedKind,
    args: ActionArgs,
    token: Option<lsp::ProgressToken>,
) -> jsonrpc::Result<EditResult> {
    if session.config().llm.provider == ProviderKind::None {
        return Err(error(LLM_NOT_CONFIGURED, NO_PROVIDER, None));
    }
    let uri = args.text_document.uri.clone();
    let expected = args.text_document.version;
    let Some(target) = session.target_for(&uri) else {
        return Err(invalid_params(format!("{command}: {} is not in a workspace folder.", uri.as_str())));
    };
    // Checked before any model call (spec/lsp.md §5.4 step 1).
    let actual = session.documents.version(uri.as_str());
    if actual != Some(expected) {
        return Err(content_modified(&uri, &target.rel, expected, actual));
    }
    let ctx = ask::prepare(session, Some(&uri), Some(args.range), None).await?;
    let Some(editor) = ctx.editor.clone() else {
        return Err(invalid_params(format!("{command}: {} is not in a workspace folder.", uri.as_str())));
    };
    let instruction = match kind {
        DirectedKind::Refactor => args.instruction.clone().filter(|i| !i.trim().is_empty()),
        _ => None,
    };
    let name = target_name(&ctx, &args).await;
    let label = match kind {
        DirectedKind::Refactor => format!("Aurora: Refactor selection in {}", target.rel),
        DirectedKind::Document => format!("Aurora: Add docstring to {name}"),
        DirectedKind::Tests => format!("Aurora: Write tests for {name}"),
    };
    let req = SoarRequest { index: ctx.hint, ..SoarRequest::directed(kind, instruction, editor) };
    let title = match kind {
        DirectedKind::Refactor => "Aurora: Refactor",
        DirectedKind::Document => "Aurora: Add docstring",
        DirectedKind::Tests => "Aurora: Write tests",
    };
    let progress = progress_token(session, token).await;
    let job = Job { method: command, title, progress, partial: None };
    let s = session.clone();
    let folder = ctx.folder.clone();
    ask::run(session, folder, req, job, move |response, cancel| async move {
        let tests = kind == DirectedKind::Tests;
        let result = apply(&s, &ctx, uri, expected, label, tests, &response, &cancel).await?;
        let message = if result.applied {
            format!("{} ({})", result.label, ask::answered(&response).replace("Answered in", "done in"))
        } else {
            format!("Not applied: {}", result.failure_reason.clone().unwrap_or_default())
        };
        Ok((result, message))
    })
    .await
}

/// The qualified name of the target chunk, for the label; "the selection" when unknown.
async fn target_name(ctx: &Context, args: &ActionArgs) -> String {
    let (Some(target), Some(id)) = (ctx.target.clone(), args.chunk_id.clone()) else {
        return "the selection".into();
    };
    let folder = target.folder.clone();
    let name = tokio::task::spawn_blocking(move || {
        let conn = folder.reader().ok()?;
        let rows = crate::store::read::chunks_of_file(&conn, &target.rel).ok();
        folder.give_back(conn);
        rows?.into_iter().find(|c| c.id.to_string() == id).map(|c| c.qualified_name)
    })
    .await
    .ok()
    .flatten();
    name.unwrap_or_else(|| "the selection".into())
}

/// One file's change: its text before (`None`: a new file) and after.
struct FileChange {
    rel: String,
    uri: lsp::Uri,
    /// The open document's version; `None` for a file that is not open.
    version: Option<i32>,
    old: Option<String>,
    new: String,
}

/// The proposed edits as whole-file changes, checked to parse; edits of one file apply bottom-up
/// (their line numbers refer to the text the model saw).
/// Where tests of `module` go (spec/lsp.md §5.4): `tests/test_<module>.py` when the folder has a
/// `tests/` directory, else `test_<module>.py` beside the module.
fn tests_path(root: &Path, module: &str) -> String {
    let (dir, file) = module.rsplit_once('/').unwrap_or(("", module));
    let stem = file.strip_suffix(".py").or_else(|| file.strip_suffix(".pyi")).unwrap_or(file);
    if root.join("tests").is_dir() {
        format!("tests/test_{stem}.py")
    } else if dir.is_empty() {
        format!("test_{stem}.py")
    } else {
        format!("{dir}/test_{stem}.py")
    }
}

/// The edits of a directed run by file. With `tests_for` (the module under test), new files go to
/// the conventional test file of that module, whatever path the model chose.
fn file_changes(
    session: &Session,
    ctx: &Context,
    r: &SoarResponse,
    tests_for: Option<&str>,
) -> jsonrpc::Result<Vec<FileChange>> {
    let folder = &ctx.folder;
    let tests_file = tests_for.map(|m| tests_path(&folder.root, m));
    let mut by_file: BTreeMap<&str, Vec<&EditChange>> = BTreeMap::new();
    let mut bases: BTreeMap<&str, &str> = BTreeMap::new();
    for e in &r.proposed_edits {
        let file = match (&e.change, &tests_file) {
            (EditChange::Create { .. }, Some(t)) => t.as_str(),
            _ => e.file.as_str(),
        };
        by_file.entry(file).or_default().push(&e.change);
        if let Some(hash) = &e.base_content_hash {
            bases.insert(e.file.as_str(), hash.as_str());
        }
    }
    let mut out = Vec::new();
    for (rel, mut changes) in by_file {
        let uri = crate::lsp::convert::join_uri(&folder.uri, rel).ok_or_else(|| {
            error(REQUEST_FAILED, format!("The model named a file Aurora cannot address: {rel}."), None)
        })?;
        let (old, version) = match session.documents.text_at(folder, rel) {
            Some((text, version)) => (Some(text.to_string()), Some(version)),
            None => (std::fs::read_to_string(folder.root.join(rel)).ok(), None),
        };
        // The model saw this text; a file that changed since is not edited from stale lines.
        if let (Some(hash), Some(text)) = (bases.get(rel), old.as_deref())
            && crate::soar::edits::content_hash(text) != *hash
        {
            let message = format!("{rel} changed while Aurora was working; nothing was applied. Run the action again.");
            return Err(error(CONTENT_MODIFIED, message, Some(json!({"uri": uri.as_str()}))));
        }
        changes.sort_by_key(|c| {
            std::cmp::Reverse(match c {
                EditChange::Replace { start_line, .. } => *start_line,
                _ => u32::MAX,
            })
        });
        let mut new = old.clone().unwrap_or_default();
        for change in changes {
            new = match change {
                EditChange::Create { new_text } if old.is_some() => append(&new, new_text),
                EditChange::Create { new_text } => new_text.clone(),
                EditChange::Replace { .. } | EditChange::Diff { .. } if old.is_none() => {
                    let message = format!("The model edited {rel}, which does not exist; nothing was changed.");
                    return Err(error(REQUEST_FAILED, message, None));
                }
                change => crate::soar::edits::apply(&new, change).map_err(|e| {
                    let message = format!("The model's edit of {rel} does not apply ({e}); nothing was changed.");
                    error(REQUEST_FAILED, message, None)
                })?,
            };
        }
        if rel.ends_with(".py") && parse_errors(&new) && !old.as_deref().is_some_and(parse_errors) {
            return Err(error(REQUEST_FAILED, NOT_PARSED, None));
        }
        out.push(FileChange { rel: rel.to_owned(), uri, version, old, new });
    }
    Ok(out)
}

/// `addition` after `text`, one blank line between.
fn append(text: &str, addition: &str) -> String {
    let mut out = text.trim_end_matches('\n').to_owned();
    if !out.is_empty() {
        out.push_str("\n\n\n");
    }
    out.push_str(addition.trim_start_matches('\n'));
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Whether tree-sitter-python finds an error in `text`.
fn parse_errors(text: &str) -> bool {
    let mut parser = tree_sitter::Parser::new();
    let language: tree_sitter::Language = tree_sitter_python::LANGUAGE.into();
    if parser.set_language(&language).is_err() {
        return false;
    }
    parser.parse(text, None).is_none_or(|t| t.root_node().has_error())
}

/// Builds and sends `workspace/applyEdit` for the response's edits (spec/lsp.md §5.4 steps 3–7).
#[allow(clippy::too_many_arguments)]
async fn apply(
    session: &Arc<Session>,
    ctx: &Context,
    uri: lsp::Uri,
    expected: i32,
    label: String,
    tests: bool,
    r: &SoarResponse,
    cancel: &CancellationToken,
) -> jsonrpc::Result<EditResult> {
    let rel = ctx.target.as_ref().map_or_else(|| uri.as_str().to_owned(), |t| t.rel.clone());
    let tests_for = tests.then(|| rel.clone());
    let mut warnings: Vec<Warning> = ctx.warnings.clone();
    warnings.extend(r.metadata.warnings.iter().map(|w| Warning { code: w.code.clone(), message: w.message.clone() }));
    let result =
        |applied: bool, failure_reason: Option<String>, files: Vec<lsp::Uri>, warnings: Vec<Warning>| EditResult {
            applied,
            failure_reason,
            label: label.clone(),
            files,
            usage: ask::usage(r),
            phases: ask::phases(r),
            warnings,
        };
    if r.proposed_edits.is_empty() {
        let why = if r.metadata.edits.dropped > 0 {
            "The model's edits could not be used; nothing was changed."
        } else {
            "The model proposed no change."
        };
        return Ok(result(false, Some(why.into()), Vec::new(), warnings));
    }
    let (s, c, resp) = (session.clone(), ctx.clone(), r.clone());
    let files =
        super::blocking("workspace/executeCommand", move || file_changes(&s, &c, &resp, tests_for.as_deref())).await?;
    // The buffer must still be the one the job started from (steps 5 and 1).
    session.flush_all().await;
    let actual = session.documents.version(uri.as_str());
    if actual != Some(expected) {
        return Err(content_modified(&uri, &rel, expected, actual));
    }
    if cancel.is_cancelled() {
        return Err(ask::cancelled());
    }
    let flags = session.flags();
    if files.iter().any(|f| f.old.is_none()) && !(flags.document_changes && flags.create_files) {
        return Ok(result(
            false,
            Some("The editor cannot create files, so the new file was not written.".into()),
            Vec::new(),
            warnings,
        ));
    }
    let enc = session.encoding();
    let annotate = session.config().code_actions.confirm_edits && flags.change_annotations && flags.document_changes;
    let annotation = "aurora".to_owned();
    let mut edit = lsp::WorkspaceEdit::default();
    let uris: Vec<lsp::Uri> = files.iter().map(|f| f.uri.clone()).collect();
    if flags.document_changes {
        let mut ops = Vec::new();
        for f in &files {
            if f.old.is_none() {
                ops.push(lsp::DocumentChangeOperation::Op(lsp::ResourceOp::Create(lsp::CreateFile {
                    uri: f.uri.clone(),
                    options: None,
                    annotation_id: annotate.then(|| annotation.clone()),
                })));
            }
            let edits = line_edits(f.old.as_deref().unwrap_or(""), &f.new, enc)
                .into_iter()
                .map(|e| {
                    if annotate {
                        lsp::OneOf::Right(lsp::AnnotatedTextEdit { text_edit: e, annotation_id: annotation.clone() })
                    } else {
                        lsp::OneOf::Left(e)
                    }
                })
                .collect();
            ops.push(lsp::DocumentChangeOperation::Edit(lsp::TextDocumentEdit {
                text_document: lsp::OptionalVersionedTextDocumentIdentifier { uri: f.uri.clone(), version: f.version },
                edits,
            }));
        }
        edit.document_changes = Some(lsp::DocumentChanges::Operations(ops));
        if annotate {
            let note = lsp::ChangeAnnotation {
                label: label.clone(),
                needs_confirmation: Some(true),
                description: Some(files.iter().map(|f| f.rel.as_str()).collect::<Vec<_>>().join(", ")),
            };
            edit.change_annotations = Some(HashMap::from([(annotation, note)]));
        }
    } else {
        edit.changes = Some(
            files.iter().map(|f| (f.uri.clone(), line_edits(f.old.as_deref().unwrap_or(""), &f.new, enc))).collect(),
        );
    }
    let params = lsp::ApplyWorkspaceEditParams { label: Some(label.clone()), edit };
    match session.client.send_request::<lsp::request::ApplyWorkspaceEdit>(params).await {
        Ok(answer) => Ok(result(answer.applied, answer.failure_reason, uris, warnings)),
        Err(e) => {
            tracing::warn!("workspace/applyEdit failed: {e}");
            Ok(result(false, Some(format!("The editor refused the edit: {}", e.message)), uris, warnings))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_go_to_the_tests_folder_or_beside_the_module() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(tests_path(dir.path(), "app/auth.py"), "app/test_auth.py");
        assert_eq!(tests_path(dir.path(), "auth.py"), "test_auth.py");
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        assert_eq!(tests_path(dir.path(), "app/auth.py"), "tests/test_auth.py");
    }

    #[test]
    fn appended_tests_follow_two_blank_lines() {
        assert_eq!(append("import x\n", "def test_a():\n    pass"), "import x\n\n\ndef test_a():\n    pass\n");
        assert_eq!(append("", "x = 1\n"), "x = 1\n");
    }

    #[test]
    fn broken_python_is_caught() {
        assert!(parse_errors("def f(:\n    pass\n"));
        assert!(!parse_errors("def f():\n    pass\n"));
    }

    #[test]
    fn answer_files_are_named_by_date_slug_and_query() {
        let name = answer_name("Where is the config loaded?", "q1");
        assert!(name.ends_with("-where-is-the-config-loaded-q1.md"), "{name}");
        assert_eq!(&name[4..5], "-");
    }
}
