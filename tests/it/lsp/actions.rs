//! Code actions (listing is cheap and LLM-free) and `aurora.reindex`.

use serde_json::{Value, json};

use super::{Setup, TestServer, file_uri};
use crate::support::Workspace;

const SHOP_PY: &str = "class Cart:\n    def total(self, items):\n        s = 0\n        for i in items:\n            s += i\n        return s\n\n\nTAX = 0.2\n";

fn open(ws: &Workspace) -> (TestServer, String) {
    let root = ws.root();
    let (server, _) = TestServer::start(Setup { root: Some(&root), ..Setup::default() });
    server.wait_indexed();
    let uri = file_uri(&ws.path("shop.py"));
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "python", "version": 3, "text": SHOP_PY } }),
    );
    (server, uri)
}

fn actions(server: &mut TestServer, uri: &str, range: Value, context: Value) -> Vec<Value> {
    let result = server
        .request(
            "textDocument/codeAction",
            json!({ "textDocument": { "uri": uri }, "range": range, "context": context }),
        )
        .expect("codeAction answers");
    result.as_array().cloned().unwrap_or_default()
}

fn range(a: (u32, u32), b: (u32, u32)) -> Value {
    json!({ "start": { "line": a.0, "character": a.1 }, "end": { "line": b.0, "character": b.1 } })
}

#[test]
fn actions_on_a_selection_name_the_target_and_are_disabled_without_an_llm() {
    let ws = Workspace::new(&[("shop.py", SHOP_PY)]);
    let (mut server, uri) = open(&ws);
    let list = actions(&mut server, &uri, range((2, 8), (4, 18)), json!({ "diagnostics": [] }));
    let titles: Vec<&str> = list.iter().filter_map(|a| a["title"].as_str()).collect();
    assert_eq!(
        titles,
        [
            "Aurora: Explain this code",
            "Aurora: Refactor selection",
            "Aurora: Add docstring to `total`",
            "Aurora: Write tests for `total`"
        ]
    );
    let explain = &list[0];
    assert_eq!(explain["kind"], "aurora.explain");
    assert!(explain.get("disabled").is_none(), "explain works without an LLM");
    let args = &explain["command"]["arguments"][0];
    assert_eq!(args["textDocument"], json!({ "uri": uri, "version": 3 }));
    assert_eq!(args["range"], range((2, 8), (4, 18)));
    for edit in &list[1..] {
        assert_eq!(edit["disabled"]["reason"], "No LLM provider configured (aurora.llm.provider)", "{edit}");
    }
    // The docstring and tests actions target the whole method.
    assert_eq!(list[2]["command"]["arguments"][0]["range"], range((1, 0), (6, 0)));
    assert!(list[2]["command"]["arguments"][0]["chunkId"].is_string());

    // `only` filters by kind prefix; Explain is neither refactor nor source.
    let only_source =
        actions(&mut server, &uri, range((2, 8), (4, 18)), json!({ "diagnostics": [], "only": ["source"] }));
    let kinds: Vec<&str> = only_source.iter().filter_map(|a| a["kind"].as_str()).collect();
    assert_eq!(kinds, ["source.aurora.document", "source.aurora.tests"]);
    let only_refactor =
        actions(&mut server, &uri, range((2, 8), (4, 18)), json!({ "diagnostics": [], "only": ["refactor.rewrite"] }));
    assert_eq!(only_refactor.len(), 1);
    assert_eq!(only_refactor[0]["kind"], "refactor.rewrite.aurora");

    // Automatic trigger on a bare cursor: nothing (no lightbulb on every move).
    let auto = actions(&mut server, &uri, range((2, 9), (2, 9)), json!({ "diagnostics": [], "triggerKind": 2 }));
    assert!(auto.is_empty(), "{auto:?}");
    // Invoked on a bare cursor at module level outside any definition: nothing to explain either.
    let module_level =
        actions(&mut server, &uri, range((8, 2), (8, 2)), json!({ "diagnostics": [], "triggerKind": 1 }));
    assert!(module_level.is_empty(), "{module_level:?}");
    // Invoked on a bare cursor inside the method: Explain covers the method's lines.
    let cursor = actions(&mut server, &uri, range((3, 4), (3, 4)), json!({ "diagnostics": [], "triggerKind": 1 }));
    assert_eq!(cursor[0]["command"]["arguments"][0]["range"], range((1, 0), (6, 0)));
    assert!(server.shutdown().success());
}

#[test]
fn unknown_commands_and_malformed_arguments_are_invalid_params() {
    let ws = Workspace::new(&[("shop.py", SHOP_PY)]);
    let (mut server, _) = open(&ws);
    let err = server
        .request("workspace/executeCommand", json!({ "command": "aurora.frobnicate", "arguments": [] }))
        .expect_err("unknown command");
    assert_eq!(err["code"], -32602);
    let err = server
        .request("workspace/executeCommand", json!({ "command": "aurora.reindex", "arguments": [{ "force": "yes" }] }))
        .expect_err("malformed");
    assert_eq!(err["code"], -32602);
    assert!(err["message"].as_str().unwrap().contains("aurora.reindex"), "{err}");
    assert!(server.shutdown().success());
}

#[test]
fn reindex_reports_the_pass_and_force_reparses_everything() {
    let ws = Workspace::new(&[("shop.py", SHOP_PY), ("pkg/a.py", "def a():\n    pass\n")]);
    let (mut server, _) = open(&ws);
    let plain = server
        .request("workspace/executeCommand", json!({ "command": "aurora.reindex", "arguments": [{}] }))
        .expect("reindex");
    assert_eq!(plain["filesIndexed"], 0, "nothing changed: {plain}");
    assert_eq!(plain["filesUnchanged"], 2, "{plain}");
    let forced = server
        .request("workspace/executeCommand", json!({ "command": "aurora.reindex", "arguments": [{ "force": true }] }))
        .expect("reindex");
    assert_eq!(forced["filesIndexed"], 2, "{forced}");
    assert_eq!(forced["chunks"], 4, "shop: module (TAX), class, method; a.py: function only: {forced}");
    assert!(server.shutdown().success());
}

#[test]
fn edit_commands_without_a_provider_answer_llm_not_configured() {
    let ws = Workspace::new(&[("shop.py", SHOP_PY)]);
    let (mut server, uri) = open(&ws);
    let args = json!({ "textDocument": { "uri": uri, "version": 3 }, "range": range((1, 0), (6, 0)) });
    let err = server
        .request("workspace/executeCommand", json!({ "command": "aurora.document", "arguments": [args] }))
        .expect_err("not available");
    assert_eq!(err["code"], -33001, "{err}");
    assert!(err["message"].as_str().unwrap().contains("aurora.llm.provider"), "{err}");
    assert!(server.shutdown().success());
}
