//! Faults under a running server: the store deleted or damaged → set aside, rebuilt, announced.

use serde_json::Value;

use super::{Setup, TestServer};
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

/// A search that may meet the index while it is being reopened (IndexNotReady).
fn finds(server: &mut TestServer, name: &str) -> Option<()> {
    let result = server.request("aurora/search", serde_json::json!({ "query": name })).ok()?;
    found(&result, name).then_some(())
}

fn wait_message(server: &TestServer, part: &str) -> Value {
    server.wait_notification(&format!("a message saying the index {part}"), |n| {
        n["method"] == "window/showMessage" && n["params"]["message"].as_str().unwrap_or("").contains(part)
    })
}

#[test]
fn a_deleted_store_is_rebuilt_with_a_message() {
    let ws = Workspace::new(&[("a.py", "def alpha():\n    return 1\n")]);
    let mut server = start(&ws);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", ws.store().db.display()));
    }
    wait_message(&server, "was deleted");
    server.poll("the rebuilt index to answer", |s| finds(s, "alpha"));
    assert!(ws.store().db.exists(), "a new store file");
    ws.write("b.py", "def beta():\n    return 2\n");
    server.poll("the rebuilt store to take new files", |s| finds(s, "beta"));
    assert!(server.shutdown().success());
}

#[test]
fn a_damaged_store_is_set_aside_and_rebuilt() {
    let ws = Workspace::new(&[("a.py", "def alpha():\n    return 1\n")]);
    let mut server = start(&ws);
    let db = ws.store().db;
    // Replaced under the server (a sync tool, a bad restore): same name, other content.
    let garbage = db.with_extension("tmp");
    std::fs::write(&garbage, vec![0xA5u8; 64 * 1024]).unwrap();
    std::fs::rename(&garbage, &db).unwrap();
    wait_message(&server, "is damaged");
    server.poll("the rebuilt index to answer", |s| finds(s, "alpha"));
    let aside = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("memory.db.corrupt-"));
    assert!(aside, "the damaged file is kept aside for inspection");
    let integrity: String = ws.conn().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    assert!(server.shutdown().success());
}

fn many_files(n: usize) -> Workspace {
    let ws = Workspace::new(&[]);
    for i in 0..n {
        let mut text = format!("\"\"\"Module {i}.\"\"\"\n");
        for j in 0..20 {
            text.push_str(&format!(
                "def handler_{i}_{j}(value):\n    \"\"\"Handle {i} {j}.\"\"\"\n    return value + {j}\n\n"
            ));
        }
        ws.write(&format!("pkg/mod_{i}.py", i = i), &text);
    }
    ws
}

#[test]
fn a_full_disk_fails_indexing_clearly_and_a_reindex_resumes_when_space_returns() {
    let ws = many_files(300);
    let root = ws.root();
    let (mut server, _) =
        TestServer::start(Setup { root: Some(&root), file_size_limit: Some(300 * 1024), ..Setup::default() });
    let end = server.wait_notification("indexing to fail", |n| {
        n["method"] == "$/progress" && n["params"]["value"]["kind"] == "end"
    });
    let message = end["params"]["value"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.starts_with("Indexing failed"), "{message}");
    assert!(message.contains("if the disk is full, free space"), "{message}");
    let status = server.request("aurora/status", serde_json::json!({})).unwrap();
    assert_eq!(status["folders"][0]["state"], "error", "{status}");
    // What was committed before the disk filled is intact.
    let integrity: String = ws.conn().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    // Space returns; the next pass completes.
    super::lift_file_size_limit(server.pid());
    let reindex = server
        .request("workspace/executeCommand", serde_json::json!({"command": "aurora.reindex", "arguments": [{}]}))
        .unwrap();
    assert!(reindex.to_string().contains("300"), "{reindex}");
    server.poll("the last module to be searchable", |s| finds(s, "handler_299_7"));
    let status = server.request("aurora/status", serde_json::json!({})).unwrap();
    assert_eq!(status["folders"][0]["state"], "ready", "{status}");
    let files: i64 = ws.conn().query_row("SELECT count(*) FROM files WHERE status = 'ok'", [], |r| r.get(0)).unwrap();
    assert_eq!(files, 300);
    assert!(server.shutdown().success());
}
