//! The language server over stdio: the real binary, driven by a small JSON-RPC client that
//! answers the server's requests like an editor and checks every frame and response count.

mod actions;
mod ask;
mod ask_llm;
mod edits;
mod fake_llm;
mod faults;
mod server;
mod workspace;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Longest wait for any one answer or event; generous because tests share the machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Inbox {
    responses: HashMap<i64, Value>,
    response_counts: HashMap<i64, usize>,
    notifications: Vec<Value>,
    server_requests: Vec<Value>,
    bad_frames: Vec<String>,
    closed: bool,
    /// What the editor answers to `workspace/configuration` for the `aurora` section.
    settings: Value,
}

/// A running `aurora lsp` and the editor side of the conversation.
pub struct TestServer {
    child: Child,
    stdin: Arc<Mutex<ChildStdin>>,
    inbox: Arc<(Mutex<Inbox>, Condvar)>,
    stderr: Arc<Mutex<String>>,
    next_id: i64,
    sent_ids: Vec<i64>,
    _config_home: tempfile::TempDir,
    exited: bool,
}

/// How the test editor introduces itself.
pub struct Setup<'a> {
    pub root: Option<&'a Path>,
    pub init_options: Value,
    pub utf8: bool,
    pub work_done_progress: bool,
    /// The `processId` the editor gives (`null` by default).
    pub process_id: Option<u32>,
    /// Extra environment variables of the server process (an API key for a fake provider).
    pub env: Vec<(&'static str, String)>,
    /// `RLIMIT_FSIZE` of the server process (SIGXFSZ ignored, so writes past it fail like a full disk).
    pub file_size_limit: Option<u64>,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            root: None,
            init_options: Value::Null,
            utf8: false,
            work_done_progress: true,
            process_id: None,
            env: Vec::new(),
            file_size_limit: None,
        }
    }
}

/// Makes writes of the child past `limit` bytes per file fail with EFBIG, as on a full disk.
pub fn limit_file_size(cmd: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let rl = libc::rlimit { rlim_cur: limit, rlim_max: libc::RLIM_INFINITY };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

/// Lifts the file-size limit of a running process: space "returns".
pub fn lift_file_size_limit(pid: u32) {
    let rl = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain values; `pid` is our child.
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_FSIZE, &rl, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

pub fn file_uri(path: &Path) -> String {
    let mut out = String::from("file://");
    for b in path.to_str().expect("utf-8 test paths").bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn write_frame(stdin: &Mutex<ChildStdin>, msg: &Value) {
    let body = serde_json::to_string(msg).expect("messages serialise");
    let mut w = stdin.lock().expect("stdin lock");
    // The server may already be gone in a failing test; the wait that follows reports it.
    let _ = write!(w, "Content-Length: {}\r\n\r\n{body}", body.len());
    let _ = w.flush();
}

impl TestServer {
    /// Spawns the server, sends `initialize` and `initialized`; returns it with the init result.
    pub fn start(setup: Setup<'_>) -> (TestServer, Value) {
        let config_home = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aurora"));
        cmd.arg("lsp")
            .env("XDG_CONFIG_HOME", config_home.path())
            .env("AURORA_LOG", "aurora=debug")
            .envs(setup.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(limit) = setup.file_size_limit {
            limit_file_size(&mut cmd, limit);
        }
        let mut child = cmd.spawn().expect("aurora lsp starts");
        let stdin = Arc::new(Mutex::new(child.stdin.take().expect("piped stdin")));
        let inbox: Arc<(Mutex<Inbox>, Condvar)> = Arc::default();
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let mut err = child.stderr.take().expect("piped stderr");
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    stderr.lock().expect("stderr lock").push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        {
            let out = child.stdout.take().expect("piped stdout");
            let (inbox, stdin) = (inbox.clone(), stdin.clone());
            std::thread::spawn(move || read_frames(BufReader::new(out), &inbox, &stdin));
        }
        let mut server = TestServer {
            child,
            stdin,
            inbox,
            stderr,
            next_id: 0,
            sent_ids: Vec::new(),
            _config_home: config_home,
            exited: false,
        };
        let encodings = if setup.utf8 { json!(["utf-8", "utf-16"]) } else { json!(["utf-16"]) };
        let folders = setup.root.map(|r| json!([{ "uri": file_uri(r), "name": "ws" }])).unwrap_or(Value::Null);
        let init = server
            .request(
                "initialize",
                json!({
                    "processId": setup.process_id,
                    "rootUri": null,
                    "capabilities": {
                        "general": { "positionEncodings": encodings },
                        "window": { "workDoneProgress": setup.work_done_progress, "showDocument": { "support": true } },
                        "textDocument": { "codeAction": {
                            "codeActionLiteralSupport": { "codeActionKind": { "valueSet": ["", "refactor", "source"] } },
                            "disabledSupport": true
                        } },
                        "workspace": {
                            "configuration": true,
                            "workspaceFolders": true,
                            "didChangeWatchedFiles": { "dynamicRegistration": true },
                            "workspaceEdit": { "documentChanges": true, "resourceOperations": ["create"] }
                        }
                    },
                    "workspaceFolders": folders,
                    "initializationOptions": setup.init_options,
                }),
            )
            .expect("initialize succeeds");
        server.notify("initialized", json!({}));
        (server, init)
    }

    pub fn notify(&self, method: &str, params: Value) {
        write_frame(&self.stdin, &json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request and waits for its response: `Ok(result)` or `Err(error object)`.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let mut msg = json!({ "jsonrpc": "2.0", "id": self.next_id, "method": method });
        if !params.is_null() {
            msg["params"] = params;
        }
        self.send_request(msg)
    }

    /// A request sent without a `params` member at all.
    pub fn request_without_params(&mut self, method: &str) -> Result<Value, Value> {
        self.send_request(json!({ "jsonrpc": "2.0", "id": self.next_id, "method": method }))
    }

    fn send_request(&mut self, msg: Value) -> Result<Value, Value> {
        let id = self.send_message(msg);
        self.response(id)
    }

    /// Sends a request without waiting; returns its id (see [`TestServer::response`]).
    pub fn send(&mut self, method: &str, params: Value) -> i64 {
        self.send_message(json!({ "jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params }))
    }

    fn send_message(&mut self, msg: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.sent_ids.push(id);
        write_frame(&self.stdin, &msg);
        id
    }

    /// Waits for the response to request `id`: `Ok(result)` or `Err(error object)`.
    pub fn response(&self, id: i64) -> Result<Value, Value> {
        let response = self.wait("a response", |inbox| inbox.responses.get(&id).cloned());
        match response.get("error") {
            Some(err) => Err(err.clone()),
            None => Ok(response.get("result").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Waits until `found` returns something, or fails with the server's log.
    fn wait<T>(&self, what: &str, mut found: impl FnMut(&Inbox) -> Option<T>) -> T {
        let started = Instant::now();
        let (lock, cvar) = &*self.inbox;
        let mut inbox = lock.lock().expect("inbox lock");
        loop {
            if let Some(v) = found(&inbox) {
                return v;
            }
            if inbox.closed || started.elapsed() > DEADLINE {
                drop(inbox);
                panic!("no {what} (server {}); log:\n{}", if self.exited { "exited" } else { "running" }, self.log());
            }
            inbox = cvar.wait_timeout(inbox, Duration::from_millis(100)).expect("inbox lock").0;
        }
    }

    /// The first notification (in arrival order) for which `pick` holds.
    pub fn wait_notification(&self, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
        self.wait(what, |inbox| inbox.notifications.iter().find(|n| pick(n)).cloned())
    }

    pub fn notifications(&self, method: &str) -> Vec<Value> {
        let inbox = self.inbox.0.lock().expect("inbox lock");
        inbox.notifications.iter().filter(|n| n["method"] == method).cloned().collect()
    }

    pub fn server_requests(&self, method: &str) -> Vec<Value> {
        let inbox = self.inbox.0.lock().expect("inbox lock");
        inbox.server_requests.iter().filter(|n| n["method"] == method).cloned().collect()
    }

    /// Waits for the `end` of the first indexing progress; returns the progress values in order.
    pub fn wait_indexed(&self) -> Vec<Value> {
        let end = self.wait_notification("the end of indexing progress", |n| {
            n["method"] == "$/progress" && n["params"]["value"]["kind"] == "end"
        });
        let token = end["params"]["token"].clone();
        self.notifications("$/progress")
            .into_iter()
            .filter(|n| n["params"]["token"] == token)
            .map(|n| n["params"]["value"].clone())
            .collect()
    }

    /// Repeats `f` until it returns `Some`, within the deadline (no fixed long sleeps).
    pub fn poll<T>(&mut self, what: &str, mut f: impl FnMut(&mut TestServer) -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if started.elapsed() > DEADLINE {
                panic!("timed out waiting for {what}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn search(&mut self, query: &str) -> Value {
        self.request("aurora/search", json!({ "query": query })).unwrap_or_else(|e| panic!("search failed: {e}"))
    }

    /// Sets what the editor answers to `workspace/configuration` from now on.
    pub fn set_settings(&self, settings: Value) {
        self.inbox.0.lock().expect("inbox lock").settings = settings;
    }

    pub fn log(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// `shutdown`, `exit`, and the exit status; checks every frame and every response count.
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn shutdown(mut self) -> ExitStatus {
        let result = self.request("shutdown", Value::Null);
        assert_eq!(result, Ok(Value::Null), "shutdown answers null");
        self.notify("exit", Value::Null);
        let status = self.wait_exit();
        self.check_conversation();
        status
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                self.exited = true;
                return status;
            }
            if started.elapsed() > DEADLINE {
                panic!("the server did not exit; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn check_conversation(&self) {
        let inbox = self.inbox.0.lock().expect("inbox lock");
        assert!(inbox.bad_frames.is_empty(), "stdout held non-frames: {:?}", inbox.bad_frames);
        for id in &self.sent_ids {
            assert_eq!(inbox.response_counts.get(id).copied().unwrap_or(0), 1, "request {id} answered once");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads frames from the server's stdout until it closes; answers its requests like an editor.
fn read_frames(mut out: impl BufRead, inbox: &(Mutex<Inbox>, Condvar), stdin: &Mutex<ChildStdin>) {
    loop {
        let mut length = None;
        let mut line = String::new();
        loop {
            line.clear();
            match out.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    inbox.0.lock().expect("inbox lock").closed = true;
                    inbox.1.notify_all();
                    return;
                }
                Ok(_) => {}
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            match header.strip_prefix("Content-Length: ") {
                Some(n) => length = n.parse::<usize>().ok(),
                None if header.starts_with("Content-Type: ") => {}
                None => inbox.0.lock().expect("inbox lock").bad_frames.push(header.to_owned()),
            }
        }
        let Some(length) = length else {
            inbox.0.lock().expect("inbox lock").bad_frames.push("a frame without Content-Length".into());
            continue;
        };
        let mut body = vec![0u8; length];
        if out.read_exact(&mut body).is_err() {
            inbox.0.lock().expect("inbox lock").closed = true;
            inbox.1.notify_all();
            return;
        }
        let msg: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                inbox.0.lock().expect("inbox lock").bad_frames.push(format!("invalid JSON: {e}"));
                continue;
            }
        };
        let mut guard = inbox.0.lock().expect("inbox lock");
        match (msg.get("method").and_then(Value::as_str), msg.get("id")) {
            (Some(method), Some(id)) => {
                let result = match method {
                    "workspace/configuration" => {
                        let n = msg["params"]["items"].as_array().map_or(0, Vec::len);
                        Value::Array(vec![guard.settings.clone(); n])
                    }
                    "workspace/applyEdit" => json!({ "applied": true }),
                    "window/showDocument" => json!({ "success": true }),
                    _ => Value::Null,
                };
                write_frame(stdin, &json!({ "jsonrpc": "2.0", "id": id, "result": result }));
                guard.server_requests.push(msg);
            }
            (Some(_), None) => guard.notifications.push(msg),
            (None, Some(id)) => {
                let id = id.as_i64().expect("our ids are integers");
                *guard.response_counts.entry(id).or_default() += 1;
                guard.responses.insert(id, msg);
            }
            (None, None) => guard.bad_frames.push(format!("neither request nor response: {msg}")),
        }
        drop(guard);
        inbox.1.notify_all();
    }
}
