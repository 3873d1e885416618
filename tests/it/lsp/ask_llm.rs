//! SOAR through the language server with a model: a fake OpenAI-compatible provider answers each
//! role; answers stream as partial results, cancellation closes the provider's connection, and an
//! edit command ends in one `workspace/applyEdit`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::ask::{MAIN_PY, shop};
use super::fake_llm::{FakeLlm, Mode, Replies, chunk_id};
use super::{Setup, TestServer, file_uri};
use crate::support::Workspace;

const ANSWER: &str = "Configuration is loaded by `load_config` [c1].";
const TESTS_PY: &str =
    "from app.main import main\n\n\ndef test_main_returns_settings():\n    assert main() is not None\n";
const DOCSTRING: &str = "    \"\"\"Load the shop settings and return them.\"\"\"\n";

/// Replies for every role: the answer cites `load_config`, reviews pass, the documentation agent
/// adds a docstring to `main`.
fn replies() -> Replies {
    Arc::new(|role: &str, user: &str| {
        let cite = match chunk_id(user, "load_config") {
            Some(id) => json!([{"id": "c1", "chunk_id": id}]),
            None => json!([{"id": "c1", "file": "app/config.py", "start_line": 12, "end_line": 16}]),
        };
        match role {
            "soar.simpleAnswer" | "soar.synthesize" => json!({
                "answer": ANSWER, "citations": cite, "used_subgoals": ["sg-1"], "confidence": 0.9, "uncertainties": []
            }),
            "soar.verifySynthesis" => json!({
                "coherence": 0.9, "completeness": 0.9, "factuality": 0.9, "overall_score": 0.9, "issues": [], "suggestions": []
            }),
            "soar.decompose" => json!({
                "goal": "answer the question", "expected_tools": [],
                "subgoals": [{"description": "Find where the config is loaded", "suggested_agent": "code-analyzer",
                              "specialist_hint": null, "is_critical": true, "depends_on": []}]
            }),
            r if r.starts_with("soar.verify") => json!({
                "completeness": 0.9, "consistency": 0.9, "groundedness": 0.9, "routability": 0.9, "overall_score": 0.9,
                "verdict": "PASS", "issues": [], "suggestions": [], "critical_issues": [], "minor_issues": [], "edge_cases": []
            }),
            "agent.documentation-generator" => json!({
                "summary": "Added a docstring to `main`.", "citations": [], "confidence": 0.8, "open_questions": [],
                "edits": [{"kind": "replace", "file": "app/main.py", "start_line": 4, "end_line": 4,
                           "new_text": format!("def main():\n{DOCSTRING}"), "description": "docstring for main"}]
            }),
            "agent.test-writer" => json!({
                "summary": "Tests for `main`.", "citations": [], "confidence": 0.8, "open_questions": [],
                "edits": [{"kind": "create", "file": "tests/test_main.py", "new_text": TESTS_PY, "description": "tests"}]
            }),
            _ => json!({
                "summary": "`load_config` reads the TOML file [c1].", "citations": cite, "edits": [],
                "confidence": 0.8, "open_questions": []
            }),
        }
    })
}

fn start(ws: &Workspace, llm: &FakeLlm) -> TestServer {
    let root = ws.root();
    let (server, _) = TestServer::start(Setup {
        root: Some(&root),
        init_options: llm.settings(),
        env: FakeLlm::env(),
        ..Setup::default()
    });
    server.wait_indexed();
    server
}

fn progress_values(server: &TestServer, token: &str) -> Vec<Value> {
    server
        .notifications("$/progress")
        .into_iter()
        .filter(|n| n["params"]["token"] == token)
        .map(|n| n["params"]["value"].clone())
        .collect()
}

#[test]
fn ask_streams_partial_results_then_answers_with_citations() {
    let ws = shop();
    let llm = FakeLlm::start(Mode::Answer, replies());
    let mut server = start(&ws, &llm);
    let result = server
        .request(
            "aurora/ask",
            json!({ "question": "Where is the config loaded?", "workDoneToken": "w-7", "partialResultToken": "p-7" }),
        )
        .unwrap_or_else(|e| panic!("ask failed: {e}\n{}", server.log()));
    assert_eq!(
        result["answer"],
        "Configuration is loaded by `load_config` [1].",
        "{result:#}\nroles: {:?}",
        llm.roles()
    );
    let citations = result["citations"].as_array().expect("citations");
    assert_eq!(citations.len(), 1, "{result:#}");
    assert_eq!(citations[0]["name"], "load_config");
    assert_eq!(citations[0]["uri"], file_uri(&ws.path("app/config.py")));
    assert_eq!(
        citations[0]["range"],
        json!({ "start": { "line": 11, "character": 0 }, "end": { "line": 15, "character": 25 } })
    );
    assert!(result["confidence"].as_f64().unwrap() > 0.0);
    assert!(result["warnings"].as_array().unwrap().iter().all(|w| w["code"] != "llmNotConfigured"), "{result:#}");
    // The answer text arrived in pieces on the partial-result token (the last piece may trail the
    // response: tower-lsp-server interleaves notifications and responses).
    let streamed_all = |s: &TestServer| {
        progress_values(s, "p-7").iter().filter_map(|p| p["delta"].as_str().map(str::to_owned)).collect::<String>()
    };
    server.poll("the whole streamed answer", |s| (streamed_all(s) == ANSWER).then_some(()));
    server.wait_notification("the end of the ask's progress", |n| {
        n["method"] == "$/progress" && n["params"]["token"] == "w-7" && n["params"]["value"]["kind"] == "end"
    });
    let partials = progress_values(&server, "p-7");
    assert!(partials.len() >= 2, "{partials:?}");
    assert!(partials.iter().all(|p| p["phase"] == "synthesize" && p.get("kind").is_none()), "{partials:?}");
    let streamed: String = partials.iter().filter_map(|p| p["delta"].as_str()).collect();
    assert_eq!(streamed, ANSWER);
    let work = progress_values(&server, "w-7");
    assert_eq!(work[0]["kind"], "begin");
    assert_eq!(work.last().unwrap()["kind"], "end");
    assert!(work.last().unwrap()["message"].as_str().unwrap().starts_with("Answered in "));
    assert!(llm.roles().iter().all(|r| r.starts_with("soar.") || r.starts_with("agent.")), "{:?}", llm.roles());
    assert!(server.shutdown().success());
}

#[test]
fn cancelling_an_ask_answers_request_cancelled_and_closes_the_provider_connection() {
    let ws = shop();
    let llm = FakeLlm::start(Mode::Hang, replies());
    let mut server = start(&ws, &llm);
    let id = server.send("aurora/ask", json!({ "question": "Where is the config loaded?", "workDoneToken": "w-9" }));
    assert!(llm.received(1), "the model was called");
    server.notify("$/cancelRequest", json!({ "id": id }));
    let e = server.response(id).expect_err("a cancelled ask is an error");
    assert_eq!(e["code"], -32800, "{e}");
    assert!(llm.closed_by_client(), "the provider saw its connection close");
    // The server keeps working and the job's slot is free again.
    let status = server.request("aurora/status", json!({})).expect("status");
    let end = server.wait_notification("the end of the cancelled job's progress", |n| {
        n["method"] == "$/progress" && n["params"]["token"] == "w-9" && n["params"]["value"]["kind"] == "end"
    });
    assert_eq!(end["params"]["value"]["message"], "Cancelled");
    assert!(status["activeRequests"].as_u64().is_some());
    assert!(server.shutdown().success());
}

#[test]
fn progress_cancel_stops_an_ask() {
    let ws = shop();
    let llm = FakeLlm::start(Mode::Hang, replies());
    let mut server = start(&ws, &llm);
    let id = server.send("aurora/ask", json!({ "question": "Where is the config loaded?", "workDoneToken": "w-3" }));
    assert!(llm.received(1), "the model was called");
    server.notify("window/workDoneProgress/cancel", json!({ "token": "w-3" }));
    let e = server.response(id).expect_err("a cancelled ask is an error");
    assert_eq!(e["code"], -32800, "{e}");
    assert!(llm.closed_by_client(), "the provider saw its connection close");
    assert!(server.shutdown().success());
}

#[test]
fn document_command_sends_one_apply_edit_with_the_docstring() {
    let ws = shop();
    let llm = FakeLlm::start(Mode::Answer, replies());
    let mut server = start(&ws, &llm);
    let uri = file_uri(&ws.path("app/main.py"));
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "python", "version": 4, "text": MAIN_PY } }),
    );
    let actions = server
        .request(
            "textDocument/codeAction",
            json!({ "textDocument": { "uri": uri },
                    "range": { "start": { "line": 4, "character": 4 }, "end": { "line": 4, "character": 4 } },
                    "context": { "diagnostics": [], "only": ["source.aurora.document"], "triggerKind": 1 } }),
        )
        .expect("code actions");
    let action = &actions[0];
    assert_eq!(action["title"], "Aurora: Add docstring to `main`", "{actions:#}");
    assert!(action.get("disabled").is_none());
    let command = &action["command"];
    let result = server
        .request(
            "workspace/executeCommand",
            json!({ "command": command["command"], "arguments": command["arguments"] }),
        )
        .unwrap_or_else(|e| panic!("the command failed: {e}\nroles: {:?}\n{}", llm.roles(), server.log()));
    assert_eq!(result["applied"], true, "{result:#}");
    assert_eq!(result["label"], "Aurora: Add docstring to main");
    assert_eq!(result["files"], json!([uri]));
    let edits = server.server_requests("workspace/applyEdit");
    assert_eq!(edits.len(), 1);
    let params = &edits[0]["params"];
    assert_eq!(params["label"], "Aurora: Add docstring to main");
    assert_eq!(
        params["edit"]["documentChanges"],
        json!([{ "textDocument": { "uri": uri, "version": 4 },
                 "edits": [{ "range": { "start": { "line": 4, "character": 0 }, "end": { "line": 4, "character": 0 } },
                             "newText": DOCSTRING }] }])
    );
    assert!(server.shutdown().success());
}

#[test]
fn an_edit_command_on_a_moved_on_document_is_content_modified() {
    let ws = shop();
    let llm = FakeLlm::start(Mode::Answer, replies());
    let mut server = start(&ws, &llm);
    let uri = file_uri(&ws.path("app/main.py"));
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "python", "version": 5, "text": MAIN_PY } }),
    );
    let args = json!({ "textDocument": { "uri": uri, "version": 4 },
                       "range": { "start": { "line": 3, "character": 0 }, "end": { "line": 6, "character": 0 } } });
    let e = server
        .request("workspace/executeCommand", json!({ "command": "aurora.refactor", "arguments": [args] }))
        .expect_err("the version moved on");
    assert_eq!(e["code"], -32801, "{e}");
    assert_eq!(e["data"]["expectedVersion"], 4);
    assert_eq!(e["data"]["actualVersion"], 5);
    assert!(llm.roles().is_empty(), "no model call: {:?}", llm.roles());
    assert!(server.server_requests("workspace/applyEdit").is_empty());
    assert!(server.shutdown().success());
}

#[test]
fn edit_commands_without_a_provider_say_so() {
    let ws = shop();
    let root = ws.root();
    let (mut server, _) = TestServer::start(Setup { root: Some(&root), ..Setup::default() });
    server.wait_indexed();
    let uri = file_uri(&ws.path("app/main.py"));
    let args = json!({ "textDocument": { "uri": uri, "version": 1 },
                       "range": { "start": { "line": 3, "character": 0 }, "end": { "line": 6, "character": 0 } } });
    let e = server
        .request("workspace/executeCommand", json!({ "command": "aurora.document", "arguments": [args] }))
        .expect_err("no provider");
    assert_eq!(e["code"], -33001, "{e}");
    let e = server
        .request("workspace/executeCommand", json!({ "command": "aurora.tests", "arguments": [] }))
        .expect_err("no argument");
    assert_eq!(e["code"], -32602, "{e}");
    assert!(server.shutdown().success());
}

#[test]
fn explain_command_writes_and_shows_an_answer_file() {
    let ws = shop();
    let llm = FakeLlm::start(Mode::Answer, replies());
    let mut server = start(&ws, &llm);
    let uri = file_uri(&ws.path("app/main.py"));
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "python", "version": 1, "text": MAIN_PY } }),
    );
    let args = json!({ "textDocument": { "uri": uri, "version": 1 },
                       "range": { "start": { "line": 3, "character": 0 }, "end": { "line": 6, "character": 0 } },
                       "question": "Explain what this code does and how it is used in the workspace." });
    let result = server
        .request("workspace/executeCommand", json!({ "command": "aurora.explain", "arguments": [args] }))
        .unwrap_or_else(|e| panic!("explain failed: {e}\n{}", server.log()));
    assert!(result["answer"].as_str().unwrap().contains("load_config"), "{result:#}");
    let shown = server.server_requests("window/showDocument");
    assert_eq!(shown.len(), 1);
    let shown_uri = shown[0]["params"]["uri"].as_str().unwrap().to_owned();
    assert!(shown_uri.contains("/.aurora/answers/"), "{shown_uri}");
    assert!(shown_uri.ends_with(&format!("{}.md", result["queryId"].as_str().unwrap())), "{shown_uri}");
    let dir = ws.root().join(".aurora/answers");
    let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains("## Sources") && text.contains("(../../app/config.py#L12)"), "{text}");
    assert!(server.shutdown().success());
}

#[test]
fn asks_beyond_the_queue_are_too_many_requests_and_waiting_ones_say_so() {
    let ws = shop();
    let llm = FakeLlm::start(Mode::Hang, replies());
    let mut server = start(&ws, &llm);
    // Two run (the model hangs), eight wait in the queue.
    let ids: Vec<i64> = (0..10)
        .map(|i| {
            server.send(
                "aurora/ask",
                json!({ "question": "Where is the config loaded?", "workDoneToken": format!("q-{i}") }),
            )
        })
        .collect();
    assert!(llm.received(2), "two asks reached the model");
    server.poll("eight queued asks", |s| {
        let status = s.request("aurora/status", json!({})).ok()?;
        (status["queuedRequests"] == 8 && status["activeRequests"] == 2).then_some(())
    });
    let e = server.request("aurora/ask", json!({ "question": "one more" })).expect_err("the queue is full");
    assert_eq!(e["code"], -33006, "{e}");
    assert_eq!(e["message"], "Aurora is already working on 10 requests; wait for one to finish or cancel it.");
    let waiting = server.wait_notification("a queued ask's progress", |n| {
        n["method"] == "$/progress"
            && n["params"]["value"]["kind"] == "begin"
            && n["params"]["value"]["message"] == "Waiting for another Aurora request to finish"
    });
    assert_eq!(waiting["params"]["value"]["percentage"], 0);
    for id in &ids {
        server.notify("$/cancelRequest", json!({ "id": id }));
    }
    for id in ids {
        assert_eq!(server.response(id).expect_err("cancelled")["code"], -32800);
    }
    assert_eq!(llm.roles().len(), 2, "queued asks never reached the model: {:?}", llm.roles());
    assert!(server.shutdown().success());
}

#[test]
fn tests_command_creates_the_test_file() {
    let ws = shop();
    let llm = FakeLlm::start(Mode::Answer, replies());
    let mut server = start(&ws, &llm);
    let uri = file_uri(&ws.path("app/main.py"));
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "python", "version": 2, "text": MAIN_PY } }),
    );
    let args = json!({ "textDocument": { "uri": uri, "version": 2 },
                       "range": { "start": { "line": 3, "character": 0 }, "end": { "line": 6, "character": 0 } } });
    let result = server
        .request("workspace/executeCommand", json!({ "command": "aurora.tests", "arguments": [args] }))
        .unwrap_or_else(|e| panic!("the command failed: {e}\nroles: {:?}", llm.roles()));
    assert_eq!(result["applied"], true, "{result:#}");
    // The shop has no tests/ folder: the tests go beside the module, whatever path the model chose.
    let test_uri = format!("{}/app/test_main.py", file_uri(&ws.root()));
    assert_eq!(result["files"], json!([test_uri]));
    let edits = server.server_requests("workspace/applyEdit");
    assert_eq!(edits.len(), 1);
    assert_eq!(
        edits[0]["params"]["edit"]["documentChanges"],
        json!([
            { "kind": "create", "uri": test_uri },
            { "textDocument": { "uri": test_uri, "version": null },
              "edits": [{ "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 0, "character": 0 } },
                          "newText": TESTS_PY }] }
        ])
    );
    assert!(server.shutdown().success());
}

#[test]
fn a_provider_without_its_key_is_llm_unavailable() {
    let ws = shop();
    let llm = FakeLlm::start(Mode::Answer, replies());
    let root = ws.root();
    // The key's variable is not set in the server's environment.
    let (mut server, _) =
        TestServer::start(Setup { root: Some(&root), init_options: llm.settings(), ..Setup::default() });
    server.wait_indexed();
    let e = server.request("aurora/ask", json!({ "question": "Where is the config loaded?" })).expect_err("no key");
    assert_eq!(e["code"], -33002, "{e}");
    assert!(e["message"].as_str().unwrap().contains(super::fake_llm::KEY_ENV), "{e}");
    assert!(llm.roles().is_empty());
    assert!(server.shutdown().success());
}

#[test]
fn a_provider_that_is_down_degrades_the_status_and_search_still_works() {
    let ws = shop();
    let root = ws.root();
    // A port nobody listens on: the provider is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let settings = json!({ "llm": {
        "provider": "openai", "model": "gpt-4o-mini", "baseUrl": format!("http://127.0.0.1:{port}/v1"),
        "apiKeyEnv": super::fake_llm::KEY_ENV, "maxRetries": 0,
        "timeouts": { "connectMs": 500, "requestMs": 2000, "idleMs": 2000 }
    } });
    let (mut server, _) =
        TestServer::start(Setup { root: Some(&root), init_options: settings, env: FakeLlm::env(), ..Setup::default() });
    server.wait_indexed();
    let status = server.request("aurora/status", json!({})).unwrap();
    assert_eq!(status["llm"]["state"], "configured");
    let e = server.request("aurora/ask", json!({ "question": "Where is the config loaded?" })).expect_err("down");
    assert_eq!(e["code"], -33002, "{e}");
    let status = server.request("aurora/status", json!({})).unwrap();
    assert_eq!(status["llm"]["state"], "unreachable", "{status}");
    assert!(status["llm"]["message"].as_str().unwrap_or_default().contains("cannot reach"), "{status}");
    server.wait_notification("a degraded status naming the provider", |n| {
        n["method"] == "aurora/didChangeStatus"
            && n["params"]["state"] == "degraded"
            && n["params"]["reasons"].as_array().is_some_and(|r| r.iter().any(|x| x == "llmUnavailable"))
    });
    let found = server.request("aurora/search", json!({ "query": "load_config" })).unwrap();
    assert!(found["results"].as_array().is_some_and(|r| !r.is_empty()), "search works without the provider: {found}");
    assert!(server.shutdown().success());
}
