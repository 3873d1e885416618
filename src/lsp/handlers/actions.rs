//! `textDocument/codeAction` (snapshot, spec/lsp.md §5.2): cheap — no LLM, no writes but the
//! document's own pending flush. Each action is a command; the work happens in
//! `workspace/executeCommand`.

use std::sync::Arc;

use serde_json::json;
use tower_lsp_server::jsonrpc;

use crate::index::chunk::ChunkKind;
use crate::llm::config::ProviderKind;
use crate::lsp::lsp;
use crate::lsp::protocol::ActionArgs;
use crate::lsp::session::Session;
use crate::store::read::{self, ChunkRow};

const METHOD: &str = "textDocument/codeAction";

pub(crate) const EXPLAIN_QUESTION: &str = "Explain what this code does and how it is used in the workspace.";
pub(crate) const REFACTOR_INSTRUCTION: &str = "Simplify and improve readability without changing behaviour";

/// Command ids and their kinds.
pub(crate) const EXPLAIN: &str = "aurora.explain";
pub(crate) const REFACTOR: &str = "aurora.refactor";
pub(crate) const DOCUMENT: &str = "aurora.document";
pub(crate) const TESTS: &str = "aurora.tests";
pub(crate) const ASK: &str = "aurora.ask";
pub(crate) const REINDEX: &str = "aurora.reindex";
pub(crate) const COMMANDS: [&str; 6] = [ASK, EXPLAIN, REFACTOR, DOCUMENT, TESTS, REINDEX];

const KIND_EXPLAIN: &str = "aurora.explain";
const KIND_REFACTOR: &str = "refactor.rewrite.aurora";
const KIND_DOCUMENT: &str = "source.aurora.document";
const KIND_TESTS: &str = "source.aurora.tests";

/// The kinds we offer, for the server capability.
pub(crate) fn kinds() -> Vec<lsp::CodeActionKind> {
    [KIND_EXPLAIN, KIND_REFACTOR, KIND_DOCUMENT, KIND_TESTS]
        .into_iter()
        .map(|k| lsp::CodeActionKind::from(k.to_owned()))
        .collect()
}

pub(crate) async fn code_action(
    session: &Arc<Session>,
    params: lsp::CodeActionParams,
) -> jsonrpc::Result<Option<lsp::CodeActionResponse>> {
    let uri = params.text_document.uri.clone();
    let range = params.range;
    let context = params.context;
    let automatic = context.trigger_kind == Some(lsp::CodeActionTriggerKind::AUTOMATIC);
    let empty = range.start == range.end;
    if (automatic && empty) || !session.config().code_actions.enabled {
        return Ok(None); // no lightbulb on every cursor move
    }
    let Some(version) = session.documents.version(uri.as_str()) else { return Ok(None) };
    // The target chunk comes from the store, brought up to date with this buffer first.
    let target = session.documents.target(uri.as_str());
    let chunks = match target {
        Some(target) => {
            let s = session.clone();
            let key = uri.as_str().to_owned();
            super::blocking(METHOD, move || {
                s.flush_blocking(Some(&key));
                let conn = crate::store::open_reader(&target.folder.store).ok();
                Ok(conn.and_then(|c| read::chunks_of_file(&c, &target.rel).ok()).unwrap_or_default())
            })
            .await?
        }
        None => Vec::new(),
    };
    let innermost = |pred: &dyn Fn(&ChunkRow) -> bool| {
        chunks
            .iter()
            .filter(|c| c.start_line <= range.start.line && c.end_line >= range.end.line && pred(c))
            .min_by_key(|c| c.end_line - c.start_line)
            .cloned()
    };
    let definition = innermost(&|c| matches!(c.kind, ChunkKind::Function | ChunkKind::Method | ChunkKind::Class));
    let enclosing = innermost(&|c| c.kind != ChunkKind::Module);

    let flags = session.flags();
    let config = session.config();
    let no_llm = config.llm.provider == ProviderKind::None;
    let only = context.only.as_deref();
    let wanted = |kind: &str| {
        only.is_none_or(|only| {
            only.iter().any(|o| {
                let o = o.as_str();
                !o.is_empty() && (kind == o || kind.starts_with(&format!("{o}.")))
            })
        })
    };
    let source_ok = !automatic;
    let text_document = lsp::VersionedTextDocumentIdentifier { uri: uri.clone(), version };
    let args = |range: lsp::Range, chunk: Option<&ChunkRow>| ActionArgs {
        text_document: text_document.clone(),
        range,
        chunk_id: chunk.map(|c| c.id.to_string()),
        question: None,
        instruction: None,
    };

    let mut actions: Vec<(String, &str, &str, ActionArgs, bool)> = Vec::new();
    if only.is_none() && (!empty || enclosing.is_some()) {
        let explain_range = if empty { enclosing.as_ref().map_or(range, line_range) } else { range };
        let mut a = args(explain_range, None);
        a.question = Some(EXPLAIN_QUESTION.to_owned());
        actions.push(("Aurora: Explain this code".into(), KIND_EXPLAIN, EXPLAIN, a, false));
    }
    if !empty && wanted(KIND_REFACTOR) {
        let mut a = args(range, None);
        a.instruction = Some(REFACTOR_INSTRUCTION.to_owned());
        actions.push(("Aurora: Refactor selection".into(), KIND_REFACTOR, REFACTOR, a, true));
    }
    if let Some(def) = definition.as_ref().filter(|_| source_ok) {
        let verb = if def.docstring.is_some() { "Rewrite docstring of" } else { "Add docstring to" };
        if wanted(KIND_DOCUMENT) {
            actions.push((
                format!("Aurora: {verb} `{}`", def.name),
                KIND_DOCUMENT,
                DOCUMENT,
                args(line_range(def), Some(def)),
                true,
            ));
        }
        if wanted(KIND_TESTS) {
            actions.push((
                format!("Aurora: Write tests for `{}`", def.name),
                KIND_TESTS,
                TESTS,
                args(line_range(def), Some(def)),
                true,
            ));
        }
    }

    let mut out = Vec::new();
    for (title, kind, command, args, needs_llm) in actions {
        let disabled = needs_llm && no_llm;
        if disabled && !flags.code_action_disabled_support {
            continue;
        }
        let command =
            lsp::Command { title: title.clone(), command: command.into(), arguments: Some(vec![json!(args)]) };
        if flags.code_action_literals {
            out.push(lsp::CodeActionOrCommand::CodeAction(lsp::CodeAction {
                title,
                kind: Some(lsp::CodeActionKind::from(kind.to_owned())),
                command: Some(command),
                disabled: disabled.then(|| lsp::CodeActionDisabled {
                    reason: "No LLM provider configured (aurora.llm.provider)".into(),
                }),
                ..Default::default()
            }));
        } else {
            out.push(lsp::CodeActionOrCommand::Command(command));
        }
    }
    Ok(Some(out))
}

/// Whole lines of a chunk, as an LSP range (the end is the start of the line after it).
fn line_range(c: &ChunkRow) -> lsp::Range {
    lsp::Range {
        start: lsp::Position { line: c.start_line, character: 0 },
        end: lsp::Position { line: c.end_line + 1, character: 0 },
    }
}
