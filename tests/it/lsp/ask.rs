//! `aurora/ask` without a model: retrieved locations as citations, and the params it refuses.

use serde_json::{Value, json};

use super::{Setup, TestServer, file_uri};
use crate::support::Workspace;

pub const CONFIG_PY: &str = r#""""Configuration loading."""
import tomllib


class Settings:
    """Typed settings of the shop."""

    def __init__(self, data):
        self.data = data


def load_config(path):
    """Read the TOML file at path and return Settings."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    return Settings(data)
"#;

pub const MAIN_PY: &str = "from app.config import load_config\n\n\ndef main():\n    settings = load_config(\"shop.toml\")\n    return settings\n";

pub fn shop() -> Workspace {
    Workspace::new(&[("app/config.py", CONFIG_PY), ("app/main.py", MAIN_PY)])
}

fn start(ws: &Workspace) -> TestServer {
    let root = ws.root();
    let (server, _) = TestServer::start(Setup { root: Some(&root), ..Setup::default() });
    server.wait_indexed();
    server
}

fn error_code(e: &Value) -> i64 {
    e["code"].as_i64().unwrap_or_default()
}

#[test]
fn without_a_model_the_answer_lists_the_retrieved_locations() {
    let ws = shop();
    let mut server = start(&ws);
    let result = server
        .request("aurora/ask", json!({ "question": "Where is the config loaded?", "workDoneToken": "w-1" }))
        .unwrap_or_else(|e| panic!("ask failed: {e}\n{}", server.log()));
    assert_eq!(result["confidence"], 0.0);
    let codes: Vec<&str> = result["warnings"].as_array().unwrap().iter().filter_map(|w| w["code"].as_str()).collect();
    assert!(codes.contains(&"llmNotConfigured"), "{result:#}");
    let citations = result["citations"].as_array().expect("citations");
    let load = citations.iter().find(|c| c["name"] == "load_config").unwrap_or_else(|| panic!("{result:#}"));
    assert_eq!(load["uri"], file_uri(&ws.path("app/config.py")));
    // Column 0 of the def line to the end of the chunk's last line.
    assert_eq!(
        load["range"],
        json!({ "start": { "line": 11, "character": 0 }, "end": { "line": 15, "character": 25 } })
    );
    assert!(load["chunkId"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(result["answer"].as_str().unwrap().contains("No language model is configured"));
    assert!(result["queryId"].is_string() && result["conversationId"].is_string());
    let phases: Vec<&str> = result["phases"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(phases[..2], ["assess", "retrieve"]);
    assert_eq!(result["partial"], false);
    // Phase progress went to the request's token and ended (the end may trail the response).
    server.wait_notification("the end of the ask's progress", |n| {
        n["method"] == "$/progress" && n["params"]["token"] == "w-1" && n["params"]["value"]["kind"] == "end"
    });
    let progress: Vec<Value> = server
        .notifications("$/progress")
        .into_iter()
        .filter(|n| n["params"]["token"] == "w-1")
        .map(|n| n["params"]["value"].clone())
        .collect();
    assert_eq!(progress.first().map(|v| v["kind"].clone()), Some(json!("begin")), "{progress:?}");
    assert_eq!(progress[0]["title"], "Aurora: Thinking");
    assert_eq!(progress[0]["cancellable"], true);
    let last = progress.last().unwrap();
    assert_eq!(last["kind"], "end");
    assert!(last["message"].as_str().unwrap().starts_with("Answered in "), "{last}");
    assert!(server.shutdown().success());
}

#[test]
fn a_selection_is_context_and_its_file_is_pinned() {
    let ws = shop();
    let mut server = start(&ws);
    let uri = file_uri(&ws.path("app/main.py"));
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "python", "version": 1, "text": MAIN_PY } }),
    );
    let result = server
        .request(
            "aurora/ask",
            json!({ "question": "what does this do", "textDocument": { "uri": uri },
                    "range": { "start": { "line": 3, "character": 0 }, "end": { "line": 6, "character": 0 } } }),
        )
        .unwrap_or_else(|e| panic!("ask failed: {e}"));
    let names: Vec<&str> = result["citations"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert!(names.contains(&"main"), "{result:#}");
    assert!(server.shutdown().success());
}

#[test]
fn invalid_params_name_the_field() {
    let ws = shop();
    let mut server = start(&ws);
    let cases = [
        (json!({}), "aurora/ask: `question` must be 1 to 10000 characters."),
        (json!({ "question": "   " }), "aurora/ask: `question` must be 1 to 10000 characters."),
        (json!({ "question": "x".repeat(10_001) }), "aurora/ask: `question` must be 1 to 10000 characters."),
        (
            json!({ "question": "why", "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 1, "character": 0 } } }),
            "aurora/ask: `range` requires `textDocument`.",
        ),
        (
            json!({ "question": "why", "position": { "line": 0, "character": 0 } }),
            "aurora/ask: `position` requires `textDocument`.",
        ),
    ];
    for (params, message) in cases {
        let e = server.request("aurora/ask", params.clone()).expect_err("invalid params are refused");
        assert_eq!(error_code(&e), -32602, "{params}: {e}");
        assert_eq!(e["message"], message, "{params}");
    }
    let e = server.request_without_params("aurora/ask").expect_err("no question");
    assert_eq!(error_code(&e), -32602);
    assert!(server.shutdown().success());
}

#[test]
fn without_a_folder_the_index_is_not_ready() {
    let (mut server, _) = TestServer::start(Setup::default());
    let e = server.request("aurora/ask", json!({ "question": "where?" })).expect_err("no folder");
    assert_eq!(error_code(&e), -33005);
    assert_eq!(e["data"]["reason"], "noWorkspace");
    assert!(server.shutdown().success());
}
