//! Workspace-level behaviour: status notifications, configuration changes, the client watcher,
//! folders added and removed, and two servers on one folder.

use serde_json::{Value, json};

use super::{Setup, TestServer, file_uri};
use crate::support::Workspace;

fn found(result: &Value, name: &str) -> bool {
    result["results"].as_array().is_some_and(|r| r.iter().any(|i| i["qualifiedName"] == name))
}

fn start(ws: &Workspace) -> TestServer {
    let root = ws.root();
    let (server, _) = TestServer::start(Setup { root: Some(&root), ..Setup::default() });
    server.wait_indexed();
    server
}

#[test]
fn status_notifications_follow_the_state_and_name_the_reasons() {
    let ws = Workspace::new(&[("a.py", "def alpha():\n    return 1\n")]);
    let server = start(&ws);
    let degraded = server.wait_notification("a degraded status (no LLM configured)", |n| {
        n["method"] == "aurora/didChangeStatus" && n["params"]["state"] == "degraded"
    });
    let params = &degraded["params"];
    assert_eq!(params["busy"], false);
    assert_eq!(params["reasons"], json!(["llmNotConfigured"]));
    assert_eq!(params["message"], "Search only: no LLM configured");
    assert_eq!(params["command"]["command"], "aurora.showStatus");
    assert!(params["message"].as_str().unwrap().chars().count() <= 60);
    // Every notification is well formed; none came before `initialized` could have been handled.
    for n in server.notifications("aurora/didChangeStatus") {
        let state = n["params"]["state"].as_str().expect("a state");
        assert!(["starting", "indexing", "ready", "degraded", "error"].contains(&state), "{n}");
    }
    assert!(server.shutdown().success());
}

#[test]
fn configuration_changes_are_pulled_validated_and_shown_once() {
    let ws = Workspace::new(&[("a.py", "def alpha():\n    return 1\n")]);
    let mut server = start(&ws);
    server.set_settings(json!({ "search": { "limt": 5 } }));
    server.notify("workspace/didChangeConfiguration", json!({ "settings": null }));
    let shown = server.wait_notification("a message naming the misspelt key", |n| {
        n["method"] == "window/showMessage"
            && n["params"]["message"].as_str().unwrap_or("").contains("aurora.search.limt")
    });
    assert_eq!(shown["params"]["type"], 2, "a warning");
    let status = server.request("aurora/status", json!({})).expect("status");
    let problems = status["config"]["problems"].as_array().expect("problems");
    assert!(problems.iter().any(|p| p["keyPath"] == "aurora.search.limt"), "{status}");
    // The same problem set again: not shown a second time.
    server.notify("workspace/didChangeConfiguration", json!({ "settings": null }));
    server.set_settings(json!({ "memory": { "retrieval": { "limit": 1 } } }));
    server.notify("workspace/didChangeConfiguration", json!({ "settings": null }));
    server.poll("the valid setting to apply", |s| {
        let status = s.request("aurora/status", json!({})).expect("status");
        status["config"]["problems"].as_array().is_some_and(Vec::is_empty).then_some(())
    });
    let shown = server
        .notifications("window/showMessage")
        .into_iter()
        .filter(|n| n["params"]["message"].as_str().unwrap_or("").contains("limt"))
        .count();
    assert_eq!(shown, 1, "a problem set is shown once");
    // memory.retrieval.limit = 1 now applies.
    ws.write("b.py", "def alpha_two():\n    return 2\n");
    server.poll("b.py to be indexed", |s| found(&s.search("alpha_two"), "alpha_two").then_some(()));
    let result = server.search("alpha");
    assert_eq!(result["results"].as_array().map(Vec::len), Some(1), "{result}");
    assert!(server.shutdown().success());
}

#[test]
fn the_client_watcher_is_registered_and_its_events_are_applied() {
    let ws = Workspace::new(&[("a.py", "def alpha():\n    return 1\n")]);
    let mut server = start(&ws);
    let registration = server.server_requests("client/registerCapability");
    let watchers = &registration.first().expect("a registration")["params"]["registrations"][0];
    assert_eq!(watchers["method"], "workspace/didChangeWatchedFiles");
    let globs: Vec<&str> = watchers["registerOptions"]["watchers"]
        .as_array()
        .expect("watchers")
        .iter()
        .filter_map(|w| w["globPattern"].as_str())
        .collect();
    assert!(globs.contains(&"**/*.{py,pyi}") && globs.contains(&"**/.aurora/config.toml"), "{globs:?}");

    ws.remove("a.py");
    server.notify(
        "workspace/didChangeWatchedFiles",
        json!({ "changes": [{ "uri": file_uri(&ws.path("a.py")), "type": 3 }] }),
    );
    server.poll("alpha to be gone", |s| (!found(&s.search("alpha"), "alpha")).then_some(()));
    assert!(server.shutdown().success());
}

#[test]
fn folders_added_are_indexed_and_folders_removed_are_released() {
    let first = Workspace::new(&[("a.py", "def in_first_folder():\n    return 1\n")]);
    let second = Workspace::new(&[("b.py", "def in_second_folder():\n    return 2\n")]);
    let mut server = start(&first);
    server.notify(
        "workspace/didChangeWorkspaceFolders",
        json!({ "event": { "added": [{ "uri": file_uri(&second.root()), "name": "second" }], "removed": [] } }),
    );
    server.poll("the added folder to be searchable", |s| {
        found(&s.search("in_second_folder"), "in_second_folder").then_some(())
    });
    assert!(found(&server.search("in_first_folder"), "in_first_folder"));

    server.notify(
        "workspace/didChangeWorkspaceFolders",
        json!({ "event": { "added": [], "removed": [{ "uri": file_uri(&first.root()), "name": "ws" }] } }),
    );
    server.poll("the removed folder to leave search", |s| {
        (!found(&s.search("in_first_folder"), "in_first_folder")).then_some(())
    });
    // Its store stays on disk and its writer lock is released: the CLI can index it now.
    let first_root = first.root();
    server.poll("the removed folder's store to be released", |_| {
        let out = std::process::Command::new(crate::support::aurora_bin())
            .args(["index", first_root.to_str().unwrap()])
            .env("XDG_CONFIG_HOME", &first_root)
            .output()
            .expect("aurora index runs");
        out.status.success().then_some(())
    });
    assert!(server.shutdown().success());
}

#[test]
fn a_second_server_serves_the_folder_read_only_then_takes_over() {
    let ws = Workspace::new(&[("a.py", "def alpha():\n    return 1\n")]);
    let first = start(&ws);
    let root = ws.root();
    let (mut second, _) = TestServer::start(Setup { root: Some(&root), ..Setup::default() });
    let status = second.poll("the second server to go read-only", |s| {
        let status = s.request("aurora/status", json!({})).expect("status");
        (status["folders"][0]["state"] == "readOnly").then_some(status)
    });
    assert!(status["folders"][0]["error"].as_str().unwrap().contains("another Aurora server"), "{status}");
    second.wait_notification("storeReadOnly in the status", |n| {
        n["method"] == "aurora/didChangeStatus"
            && n["params"]["reasons"].as_array().is_some_and(|r| r.contains(&json!("storeReadOnly")))
    });
    assert!(found(&second.search("alpha"), "alpha"), "read-only search works");

    assert!(first.shutdown().success());
    ws.write("b.py", "def beta():\n    return 2\n");
    second.poll("the second server to take the store over and index b.py", |s| {
        found(&s.search("beta"), "beta").then_some(())
    });
    assert!(second.shutdown().success());
}

#[test]
fn indexing_watch_chooses_the_watchers() {
    let ws = Workspace::new(&[("a.py", "def alpha():\n    return 1\n")]);
    let root = ws.root();
    for (mode, registered, watcher) in [("off", false, "off"), ("server", false, "server"), ("both", true, "both")] {
        let (mut server, _) = TestServer::start(Setup {
            root: Some(&root),
            init_options: json!({ "indexing": { "watch": mode } }),
            ..Setup::default()
        });
        server.wait_indexed();
        let status = server.request("aurora/status", json!({})).expect("status");
        assert_eq!(status["folders"][0]["watcher"], watcher, "indexing.watch = {mode}: {status}");
        assert_eq!(!server.server_requests("client/registerCapability").is_empty(), registered, "{mode}");
        assert!(server.shutdown().success());
    }
}
