//! The server end to end: lifecycle, indexing progress, search, text sync, watching, symbols,
//! configuration problems.

use serde_json::{Value, json};

use super::{Setup, TestServer, file_uri};
use crate::support::Workspace;

const CONFIG_PY: &str = r#""""Loading the application's configuration."""

GREETING = "héllo wörld 😀"


def load_config(path):
    """Read the configuration file at path."""
    with open(path) as f:
        return f.read()  # naïve 😀
"#;

const MAIN_PY: &str = r#"from app.config import load_config


class App:
    def run(self):
        return load_config("app.toml")
"#;

fn fixture() -> Workspace {
    Workspace::new(&[("app/__init__.py", ""), ("app/config.py", CONFIG_PY), ("app/main.py", MAIN_PY)])
}

fn start(ws: &Workspace, setup: Setup<'_>) -> (TestServer, Value) {
    let root = ws.root();
    let (server, init) = TestServer::start(Setup { root: Some(&root), ..setup });
    server.wait_indexed();
    (server, init)
}

fn names(result: &Value) -> Vec<String> {
    result["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["qualifiedName"].as_str().unwrap().to_owned())
        .collect()
}

fn hit<'a>(result: &'a Value, qualified_name: &str) -> Option<&'a Value> {
    result["results"].as_array()?.iter().find(|r| r["qualifiedName"] == qualified_name)
}

fn chunk_count(ws: &Workspace, path: &str) -> i64 {
    ws.conn().query_row("SELECT count(*) FROM chunks WHERE file_path = ?1", [path], |r| r.get(0)).expect("count")
}

#[test]
fn initialize_answers_capabilities_and_indexing_reports_progress() {
    let ws = fixture();
    let root = ws.root();
    let (server, init) = TestServer::start(Setup { root: Some(&root), ..Setup::default() });
    let caps = &init["capabilities"];
    assert_eq!(caps["positionEncoding"], "utf-16");
    assert_eq!(caps["textDocumentSync"], json!({ "openClose": true, "change": 2, "save": { "includeText": false } }));
    assert_eq!(caps["workspaceSymbolProvider"], true);
    assert_eq!(caps["experimental"]["aurora"]["protocolVersion"], 1);
    assert_eq!(init["serverInfo"], json!({ "name": "aurora", "version": env!("CARGO_PKG_VERSION") }));

    let values = server.wait_indexed();
    let kinds: Vec<&str> = values.iter().map(|v| v["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"begin"), "{values:?}");
    assert_eq!(kinds.last(), Some(&"end"), "{values:?}");
    assert!(kinds.contains(&"report"), "{values:?}");
    assert_eq!(values[0]["title"], "Aurora: Indexing");
    let last_report = values.iter().rev().find(|v| v["kind"] == "report").unwrap();
    assert_eq!(last_report["message"], "Indexing 3/3 files");
    assert_eq!(last_report["percentage"], 100);
    assert!(values.last().unwrap()["message"].as_str().unwrap().starts_with("Indexed 3 files"), "{values:?}");
    assert_eq!(server.server_requests("window/workDoneProgress/create").len(), 1);
    assert!(server.shutdown().success());
}

#[test]
fn search_finds_fixture_symbols_with_utf16_ranges() {
    check_search_ranges(false);
}

#[test]
fn search_finds_fixture_symbols_with_utf8_ranges() {
    check_search_ranges(true);
}

fn check_search_ranges(utf8: bool) {
    let ws = fixture();
    let (mut server, init) = start(&ws, Setup { utf8, ..Setup::default() });
    assert_eq!(init["capabilities"]["positionEncoding"], if utf8 { "utf-8" } else { "utf-16" });
    let result = server.search("load_config");
    assert_eq!(result["partial"], false);
    let item = hit(&result, "load_config").unwrap_or_else(|| panic!("load_config found: {result}"));
    assert_eq!(item["location"]["uri"], file_uri(&ws.path("app/config.py")));
    assert_eq!(item["kind"], "function");
    // The chunk's last line holds non-ASCII characters: its end differs by encoding.
    let last = "        return f.read()  # naïve 😀";
    let end = if utf8 { last.len() } else { last.encode_utf16().count() };
    assert_eq!(
        item["location"]["range"],
        json!({ "start": { "line": 5, "character": 0 }, "end": { "line": 8, "character": end } })
    );
    assert_eq!(
        item["selectionRange"],
        json!({ "start": { "line": 5, "character": 4 }, "end": { "line": 5, "character": 15 } })
    );
    let b = &item["breakdown"];
    for key in ["bm25", "activation", "spreading", "contextBoost"] {
        assert!(b[key].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)), "{key} in {b}");
    }
    assert!(server.shutdown().success());
}

#[test]
fn did_change_adding_a_function_is_found_without_a_save() {
    let ws = fixture();
    let (mut server, _) = start(&ws, Setup::default());
    let uri = file_uri(&ws.path("app/main.py"));
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "python", "version": 1, "text": MAIN_PY } }),
    );
    // Two incremental edits in one notification, then one more: applied strictly in order.
    let end_line = MAIN_PY.lines().count();
    server.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": 2 }, "contentChanges": [
            { "range": { "start": { "line": end_line, "character": 0 }, "end": { "line": end_line, "character": 0 } },
              "text": "\n\ndef freshly_typed_helper():\n    return 1\n" },
            { "range": { "start": { "line": end_line + 2, "character": 4 }, "end": { "line": end_line + 2, "character": 11 } },
              "text": "brand" },
        ] }),
    );
    server.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": 3 }, "contentChanges": [
            { "range": { "start": { "line": end_line + 2, "character": 4 }, "end": { "line": end_line + 2, "character": 9 } },
              "text": "shiny" },
        ] }),
    );
    let result = server.search("shiny_typed_helper");
    let item = hit(&result, "shiny_typed_helper").unwrap_or_else(|| panic!("the typed function is found: {result}"));
    assert_eq!(item["location"]["uri"], uri);
    assert_eq!(item["location"]["range"]["start"]["line"], end_line + 2);
    // Nothing was saved: the disk still has the old text.
    assert_eq!(std::fs::read_to_string(ws.path("app/main.py")).unwrap(), MAIN_PY);

    // Closing without saving: the disk wins again.
    server.notify("textDocument/didClose", json!({ "textDocument": { "uri": uri } }));
    server.poll("the unsaved function to disappear after didClose", |s| {
        hit(&s.search("shiny_typed_helper"), "shiny_typed_helper").is_none().then_some(())
    });
    assert!(server.shutdown().success());
}

#[test]
fn files_changed_on_disk_are_indexed_and_deleted_files_removed() {
    let ws = fixture();
    let (mut server, _) = start(&ws, Setup::default());
    std::fs::write(ws.path("app/extra.py"), "def written_outside_the_editor():\n    return 42\n").unwrap();
    server.poll("the watcher to index app/extra.py", |s| {
        hit(&s.search("written_outside_the_editor"), "written_outside_the_editor").map(|_| ())
    });
    std::fs::write(ws.path(".aurora/scratch.py"), "def inside_the_store_dir():\n    pass\n").unwrap();

    std::fs::remove_file(ws.path("app/extra.py")).unwrap();
    server.poll("the watcher to drop app/extra.py", |_| (chunk_count(&ws, "app/extra.py") == 0).then_some(()));
    let result = server.search("written_outside_the_editor");
    assert!(hit(&result, "written_outside_the_editor").is_none(), "{result}");
    assert!(names(&server.search("inside_the_store_dir")).is_empty());
    assert!(server.shutdown().success());
}

#[test]
fn workspace_symbol_lists_chunk_names() {
    let ws = fixture();
    let (mut server, _) = start(&ws, Setup::default());
    let symbols = server.request("workspace/symbol", json!({ "query": "run" })).unwrap();
    let run = symbols
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "run")
        .unwrap_or_else(|| panic!("App.run listed: {symbols}"));
    assert_eq!(run["kind"], 6);
    assert_eq!(run["containerName"], "App");
    assert_eq!(run["location"]["uri"], file_uri(&ws.path("app/main.py")));
    assert_eq!(run["location"]["range"]["start"], json!({ "line": 4, "character": 0 }));

    let symbols = server.request("workspace/symbol", json!({ "query": "load_config" })).unwrap();
    assert_eq!(symbols[0]["name"], "load_config", "{symbols}");
    assert_eq!(symbols[0]["kind"], 12);
    assert_eq!(symbols[0]["containerName"], "app/config.py");
    assert!(server.shutdown().success());
}

#[test]
fn status_answers_without_params_and_counts_the_index() {
    let ws = fixture();
    let (mut server, _) = start(&ws, Setup::default());
    let status = server.request_without_params("aurora/status").unwrap();
    assert_eq!(status["protocolVersion"], 1);
    assert_eq!(status["positionEncoding"], "utf-16");
    assert_eq!(status["llm"]["state"], "notConfigured");
    assert_eq!(status["folders"][0]["state"], "ready");
    assert_eq!(status["folders"][0]["filesIndexed"], 3);
    assert!(status["folders"][0]["chunks"].as_u64().unwrap() >= 5, "{status}");
    assert_eq!(server.request("aurora/status", json!([])).unwrap()["protocolVersion"], 1);
    let err = server.request("aurora/search", json!({ "query": "x", "limit": 0 })).unwrap_err();
    assert_eq!(err["code"], -32602);
    assert_eq!(err["message"], "aurora/search: `limit` must be between 1 and 100.");
    assert!(server.shutdown().success());
}

#[test]
fn search_without_a_workspace_is_index_not_ready() {
    let (mut server, _) = TestServer::start(Setup::default());
    let err = server.request("aurora/search", json!({ "query": "load_config" })).unwrap_err();
    assert_eq!(err["code"], -33005);
    assert_eq!(err["data"]["reason"], "noWorkspace");
    assert_eq!(server.request("workspace/symbol", json!({ "query": "x" })).unwrap(), json!([]));
    assert!(server.shutdown().success());
}

#[test]
fn bad_config_in_initialization_options_is_shown_naming_the_key() {
    let ws = fixture();
    let options = json!({ "indexing": { "maxFileSizeKB": 5, "debounceMs": "soon" } });
    let (mut server, _) = start(&ws, Setup { init_options: options, ..Setup::default() });
    let shown = server.wait_notification("a showMessage", |n| n["method"] == "window/showMessage");
    let message = shown["params"]["message"].as_str().unwrap();
    assert_eq!(shown["params"]["type"], 2, "a warning");
    assert!(message.contains("aurora.indexing.maxFileSizeKB: unknown key"), "{message}");
    assert!(message.contains("aurora.indexing.debounceMs: expected a number"), "{message}");
    // The server keeps serving with the keys that were valid.
    assert!(hit(&server.search("load_config"), "load_config").is_some());
    let status = server.request("aurora/status", json!({})).unwrap();
    assert_eq!(status["config"]["problems"].as_array().unwrap().len(), 2, "{status}");
    assert!(server.shutdown().success());
}

#[test]
fn a_change_right_before_shutdown_is_in_the_store_after_exit() {
    let ws = fixture();
    // A long debounce: only shutdown's flush can write the change.
    let options = json!({ "indexing": { "debounceMs": 5000 } });
    let (server, _) = start(&ws, Setup { init_options: options, ..Setup::default() });
    let uri = file_uri(&ws.path("app/main.py"));
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "python", "version": 1, "text": MAIN_PY } }),
    );
    server.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": 2 }, "contentChanges": [{ "text": "def last_words():\n    pass\n" }] }),
    );
    let status = server.shutdown();
    assert!(status.success(), "exit code 0 after shutdown");
    let n: i64 = ws
        .conn()
        .query_row("SELECT count(*) FROM chunks WHERE qualified_name = 'last_words'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn exit_without_shutdown_is_exit_code_1() {
    let (server, _) = TestServer::start(Setup::default());
    server.notify("exit", Value::Null);
    let mut server = server;
    assert_eq!(server.wait_exit().code(), Some(1));
}

#[test]
fn the_server_exits_when_the_editor_process_is_gone() {
    let mut editor = std::process::Command::new("sleep").arg("3").spawn().expect("sleep runs");
    let pid = editor.id();
    let ws = fixture();
    let root = ws.root();
    let (mut server, _) = TestServer::start(Setup { root: Some(&root), process_id: Some(pid), ..Setup::default() });
    server.wait_indexed();
    let uri = file_uri(&ws.path("app/main.py"));
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "python", "version": 1, "text": MAIN_PY } }),
    );
    server.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": 2 }, "contentChanges": [{ "text": "def orphaned_edit():\n    pass\n" }] }),
    );
    editor.wait().expect("sleep ends");
    assert_eq!(server.wait_exit().code(), Some(1), "no shutdown came: exit code 1");
    let n = chunk_count_named(&ws, "orphaned_edit");
    assert_eq!(n, 1, "pending edits were written before exiting");
}

fn chunk_count_named(ws: &Workspace, name: &str) -> i64 {
    ws.conn().query_row("SELECT count(*) FROM chunks WHERE qualified_name = ?1", [name], |r| r.get(0)).expect("count")
}

#[test]
fn conversations_lists_the_newest_first_with_their_first_question() {
    let ws = fixture();
    let (mut server, _) = start(&ws, Setup::default());
    let empty = server.request_without_params("aurora/conversations").expect("conversations");
    assert_eq!(empty, json!({ "conversations": [] }));
    let conn = ws.conn();
    let long = "Where is the configuration loaded, and which file does it read, and what happens when it is missing?";
    for (q, conv, at, query) in [
        ("q1", "c_a", 1_000, long),
        ("q2", "c_a", 5_000, "And who calls it?"),
        ("q3", "c_b", 3_000, "What does App.run do?"),
    ] {
        conn.execute(
            "INSERT INTO conversations (query_id, conversation_id, started_at, finished_at, query, complexity, outcome, \
             confidence, total_cost_usd, input_tokens, output_tokens, answer, envelope_json, calls_json) \
             VALUES (?1, ?2, ?3, ?3, ?4, 'SIMPLE', 'answered', 0.8, 0.0, 1, 1, 'a', '{}', '[]')",
            rusqlite::params![q, conv, at, query],
        )
        .expect("insert");
    }
    let list = server.request("aurora/conversations", json!({ "limit": 5 })).expect("conversations");
    let items = list["conversations"].as_array().expect("array");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["conversationId"], "c_a");
    assert_eq!(items[0]["turns"], 2);
    assert_eq!(items[0]["title"].as_str().unwrap().chars().count(), 80);
    assert_eq!(items[0]["updatedAt"], "1970-01-01T00:00:05Z");
    assert_eq!(items[1]["title"], "What does App.run do?");
    let bad = server.request("aurora/conversations", json!({ "limit": 0 })).expect_err("limit 0");
    assert_eq!(bad["code"], -32602);
    assert!(server.shutdown().success());
}

#[test]
fn status_reports_this_months_spend_against_the_budget() {
    let ws = fixture();
    let (mut server, _) =
        start(&ws, Setup { init_options: json!({ "budget": { "monthlyUsd": 1.0 } }), ..Setup::default() });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let insert = |at: i64, cost: f64| {
        ws.conn()
            .execute(
                "INSERT INTO llm_usage (at_ms, role, prompt_version, provider, model, input_tokens, output_tokens, \
                 estimated, cost_usd, price_known, duration_ms, status) \
                 VALUES (?1, 'soar.simpleAnswer', 1, 'openai', 'm', 10, 10, 0, ?2, 1, 5, 'ok')",
                rusqlite::params![at, cost],
            )
            .expect("insert usage");
    };
    insert(now, 0.5);
    insert(now - 40 * 86_400_000, 5.0); // an earlier month does not count
    let status = server.request("aurora/status", json!({})).expect("status");
    assert_eq!(status["budget"]["spentUsd"], 0.5, "{status}");
    assert_eq!(status["budget"]["monthlyUsd"], 1.0);
    assert_eq!(status["budget"]["state"], "ok");
    insert(now, 0.35);
    let status = server.request("aurora/status", json!({})).expect("status");
    assert_eq!(status["budget"]["state"], "warning", "85% of the month's cap: {status}");
    assert_eq!(status["budget"]["period"].as_str().unwrap().len(), 7, "YYYY-MM");
    assert!(server.shutdown().success());
}
