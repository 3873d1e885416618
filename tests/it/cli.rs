//! The real binary: README commands, user-facing errors, and a SIGKILL in the middle of an index.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Workspace, aurora_bin, dump};

fn aurora(args: &[&str], cwd: &std::path::Path) -> (bool, String, String) {
    let out =
        Command::new(aurora_bin()).args(args).current_dir(cwd).env("NO_COLOR", "1").output().expect("aurora runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn index_then_search_from_the_command_line() {
    let ws = Workspace::new(&[(
        "pkg/config.py",
        "def load_config(path):\n    \"\"\"Read the settings file.\"\"\"\n    return path\n",
    )]);
    let (ok, out, err) = aurora(&["index", "."], &ws.root());
    assert!(ok, "{err}");
    assert!(out.starts_with("1 files: 1 indexed"), "{out}");
    let (ok, out, err) = aurora(&["search", "load config"], &ws.root());
    assert!(ok, "{err}");
    assert!(out.starts_with("pkg/config.py:1  function  load_config  "), "{out}");
    let (ok, out, _) = aurora(&["search", "settings", "--json", "--explain"], &ws.root().join("pkg"));
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["results"][0]["qualifiedName"], "load_config");
    assert_eq!(v["results"][0]["startLine"], 1);
    assert!(v["results"][0]["breakdown"]["lexical"].as_f64().unwrap() > 0.0);
    let (ok, out, _) = aurora(&["status"], &ws.root());
    assert!(ok);
    assert!(out.contains("chunks  1 (0 stale)"), "{out}");
}

#[test]
fn user_errors_are_one_line_and_exit_non_zero() {
    let ws = Workspace::new(&[("a.py", "def f():\n    pass\n")]);
    let (ok, _, err) = aurora(&["index", "missing-folder"], &ws.root());
    assert!(!ok);
    assert_eq!(err.trim(), "aurora: error: missing-folder: no such file or folder");
    let (ok, _, err) = aurora(&["search", "x"], &ws.root());
    assert!(!ok);
    assert!(
        err.trim().starts_with("aurora: error: no store at ") && err.trim().ends_with("run `aurora index` first"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1);

    // Locked by another writer.
    ws.index();
    let tok = aurora::memory::tokenize::Tokenizer::new(ws.config.memory.tokenizer.stemming);
    let writer =
        aurora::store::writer::Writer::open(&ws.store(), &aurora::index::indexer::store_versions(&tok)).unwrap();
    let (ok, _, err) = aurora(&["index", "."], &ws.root());
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!(
            "aurora: error: store is being written by another aurora process (pid {}); stop it or use --db",
            std::process::id()
        )
    );
    // Reads never need the lock.
    assert!(aurora(&["search", "f"], &ws.root()).0);
    drop(writer);

    // A store from a newer schema is refused untouched.
    ws.conn().pragma_update(None, "user_version", 99).unwrap();
    let (ok, _, err) = aurora(&["index", "."], &ws.root());
    assert!(!ok);
    assert!(err.contains("this store was written by a newer aurora (schema 99"), "{err}");
    let v: i64 = ws.conn().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 99);
}

fn big_workspace(files: usize) -> Workspace {
    let ws = Workspace::new(&[]);
    for i in 0..files {
        let mut text = format!("\"\"\"Module {i}.\"\"\"\nimport os\n\n");
        for j in 0..20 {
            text.push_str(&format!(
                "class Model{i}_{j}:\n    def method_{j}(self, value):\n        if value > {j}:\n            return os.path.join(str(value), 'x')\n        return None\n\n"
            ));
        }
        ws.write(&format!("pkg{}/mod_{i}.py", i % 10), &text);
    }
    ws
}

fn rows(conn: &rusqlite::Connection) -> String {
    let files = dump(
        conn,
        "SELECT path || ' ' || status || ' ' || hex(content_hash) || ' ' || chunk_count FROM files ORDER BY path",
    );
    let chunks = dump(
        conn,
        "SELECT id || ' ' || file_path || ' ' || qualified_name || ' ' || start_line || ' ' || end_line || ' ' || hex(content_hash) FROM chunks ORDER BY id",
    );
    let fts = dump(conn, "SELECT CAST(rowid AS TEXT) FROM chunks_fts ORDER BY rowid");
    let edges = dump(conn, "SELECT src_chunk || ' ' || kind || ' ' || dst_name || ' ' || count FROM edges ORDER BY 1");
    format!("{files}\n{chunks}\n{fts}\n{edges}")
}

#[test]
fn sigkill_in_the_middle_of_a_cold_index_leaves_a_consistent_store() {
    let ws = big_workspace(1500);
    let mut child = Command::new(aurora_bin())
        .args(["index", "."])
        .current_dir(ws.root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some files are committed, then kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    let committed = loop {
        std::thread::sleep(Duration::from_millis(20));
        let n: i64 = rusqlite::Connection::open(ws.store().db)
            .and_then(|c| c.query_row("SELECT count(*) FROM files", [], |r| r.get(0)))
            .unwrap_or(0);
        if n > 0 || Instant::now() > deadline {
            break n;
        }
    };
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(committed > 0, "the index committed nothing in 60 s");
    assert!(committed < 1500, "the index finished before it could be killed ({committed} files)");
    assert!(!status.success());

    let conn = ws.conn();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    crate::support::assert_fts_matches_chunks(&conn);
    drop(conn);

    let (ok, out, err) = aurora(&["index", "."], &ws.root());
    assert!(ok, "{err}");
    assert!(out.contains("unchanged"), "{out}");

    // The same tree indexed without interruption gives the same rows.
    let fresh = big_workspace(1500);
    let (ok, _, err) = aurora(&["index", "."], &fresh.root());
    assert!(ok, "{err}");
    assert_eq!(rows(&ws.conn()), rows(&fresh.conn()));
}

#[test]
fn folder_config_applies_and_its_problems_name_the_key() {
    let ws = Workspace::new(&[
        ("keep.py", "def keep():\n    pass\n"),
        ("gen/skip.py", "def skip():\n    pass\n"),
        (".aurora/config.toml", "[indexing]\nexclude = [\"gen/\"]\nmaxFileSizeKB = 3\n"),
    ]);
    let (ok, out, err) = aurora(&["index"], &ws.root());
    assert!(ok, "{err}");
    assert!(out.starts_with("1 files: 1 indexed"), "{out}");
    assert!(
        err.contains(
            "config.toml: indexing.maxFileSizeKB: unknown key — did you mean `indexing.maxFileSizeKb`?; ignored"
        ),
        "{err}"
    );
}

#[test]
fn doctor_reports_the_llm_state_without_leaking_keys() {
    let ws = Workspace::new(&[("a.py", "def f():\n    pass\n")]);
    let home = tempfile::tempdir().unwrap();
    let doctor = |config: &str, key: Option<&str>| {
        std::fs::create_dir_all(home.path().join("aurora")).unwrap();
        std::fs::write(home.path().join("aurora/config.toml"), config).unwrap();
        let mut cmd = Command::new(aurora_bin());
        cmd.arg("doctor").current_dir(ws.root()).env("XDG_CONFIG_HOME", home.path()).env_remove("ANTHROPIC_API_KEY");
        if let Some(k) = key {
            cmd.env("TEST_AURORA_KEY", k);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, _) = doctor("", None);
    assert!(ok);
    assert!(out.contains("llm     not configured"), "{out}");
    let (ok, _, err) = doctor("[llm]\nprovider = \"anthropic\"\nmodel = \"claude-x\"\n", None);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "aurora: error: llm: llm.apiKeyEnv names ANTHROPIC_API_KEY, which is not set; set it or use provider \"ollama\""
    );
    // A key that is set but refused: the message never echoes it.
    let (ok, out, err) = doctor(
        "[llm]\nprovider = \"openai\"\nmodel = \"gpt-x\"\nbaseUrl = \"http://127.0.0.1:9/v1\"\napiKeyEnv = \"TEST_AURORA_KEY\"\n",
        Some("sk-test-SECRET-123"),
    );
    assert!(!ok);
    assert!(!out.contains("SECRET") && !err.contains("SECRET"), "{out}{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
}

/// `aurora ask` with the user-level config in `home` and the key in the child's environment.
fn ask(ws: &Workspace, home: &std::path::Path, config: &str, args: &[&str]) -> (bool, String, String) {
    std::fs::create_dir_all(home.join("aurora")).unwrap();
    std::fs::write(home.join("aurora/config.toml"), config).unwrap();
    let out = Command::new(aurora_bin())
        .arg("ask")
        .args(args)
        .current_dir(ws.root())
        .env("XDG_CONFIG_HOME", home)
        .env("AURORA_TEST_LLM_KEY", crate::llm::KEY)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ask_without_a_provider_prints_the_locations_and_how_to_configure_one() {
    let ws = Workspace::new(&[(
        "pkg/config.py",
        "def load_config(path):\n    \"\"\"Read the settings.\"\"\"\n    return path\n",
    )]);
    assert!(aurora(&["index", "."], &ws.root()).0);
    let home = tempfile::tempdir().unwrap();
    let (ok, out, err) = ask(&ws, home.path(), "", &["where is load_config"]);
    assert!(ok, "{err}");
    assert!(out.contains("No language model is configured"), "{out}");
    assert!(out.contains("`pkg/config.py:L1-L3` function `load_config`"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_answers_with_citations_through_an_openai_compatible_server() {
    use crate::llm::server::{End, FakeServer};
    use crate::llm::wire::Wire;
    let ws = Workspace::new(&[(
        "pkg/config.py",
        "def load_config(path):\n    \"\"\"Read the settings.\"\"\"\n    return path\n",
    )]);
    assert!(aurora(&["index", "."], &ws.root()).0);
    let id: i64 = ws.conn().query_row("SELECT id FROM chunks WHERE name = 'load_config'", [], |r| r.get(0)).unwrap();
    let reply = serde_json::json!({"answer": "Settings are read by `load_config` [c1].",
        "citations": [{"id": "c1", "chunk_id": format!("{id:016x}")}]})
    .to_string();
    let (a, b) = reply.split_at(20);
    let server = FakeServer::start(vec![Wire::OpenAi.stream(&[a, b], End::Complete)]).await;
    let config = format!(
        "[llm]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\nbaseUrl = \"{}/v1\"\napiKeyEnv = \"AURORA_TEST_LLM_KEY\"\n",
        server.url
    );
    let home = tempfile::tempdir().unwrap();
    // The fake server runs on this runtime: the blocking child process must not stall it.
    let (ok, out, err) = tokio::task::block_in_place(|| ask(&ws, home.path(), &config, &["where is load_config"]));
    assert!(ok, "{err}");
    assert_eq!(out, "Settings are read by `load_config` [1].\n\nCitations:\n  [1] pkg/config.py:1-3  load_config\n");
    assert!(!err.contains(crate::llm::KEY));
    assert_eq!(server.count(), 1);
    let rows: i64 = ws.conn().query_row("SELECT count(*) FROM conversations", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 1, "the conversation was logged");
}

#[test]
fn a_full_disk_stops_the_index_with_a_clear_error_and_the_next_run_completes() {
    let ws = big_workspace(300);
    let mut cmd = Command::new(aurora_bin());
    cmd.args(["index", "."]).current_dir(ws.root());
    crate::lsp::limit_file_size(&mut cmd, 300 * 1024);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("rolled back") && err.contains("if the disk is full, free space"), "{err}");
    let integrity: String = ws.conn().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let (ok, out, err) = aurora(&["index", "."], &ws.root());
    assert!(ok, "{err}");
    assert!(out.contains("300 files"), "{out}");
    let files: i64 = ws.conn().query_row("SELECT count(*) FROM files WHERE status = 'ok'", [], |r| r.get(0)).unwrap();
    assert_eq!(files, 300);
}
