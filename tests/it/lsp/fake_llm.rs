//! A fake OpenAI-compatible provider on `127.0.0.1:0` for the language server's SOAR paths: it
//! answers by the role its system prompt names (`Role: soar.simpleAnswer`, …), in the
//! chat-completions format (JSON, or SSE when the request streams), and can hold a stream open
//! to see the server close the connection on cancellation.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const MODEL: &str = "gpt-4o-mini";
pub const KEY_ENV: &str = "AURORA_TEST_OPENAI_KEY";

/// What the server does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Answers every role.
    Answer,
    /// Streams the start of an answer, then holds the connection until the client closes it.
    Hang,
}

/// The reply of one role: its JSON text.
pub type Replies = Arc<dyn Fn(&str, &str) -> Value + Send + Sync>;

#[derive(Default)]
struct State {
    /// `(role, request body)` in arrival order.
    requests: Vec<(String, Value)>,
    closed_by_client: usize,
}

pub struct FakeLlm {
    pub url: String,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl FakeLlm {
    /// Starts the server; `replies(role, user_text)` gives the JSON each role answers with.
    pub fn start(mode: Mode, replies: Replies) -> FakeLlm {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}/v1", listener.local_addr().expect("local addr"));
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let serving = state.clone();
        std::thread::spawn(move || {
            for socket in listener.incoming().flatten() {
                let (state, replies) = (serving.clone(), replies.clone());
                std::thread::spawn(move || serve(socket, mode, &state, &*replies));
            }
        });
        FakeLlm { url, state }
    }

    /// `llm` settings pointing at this server (no retries, short timeouts).
    pub fn settings(&self) -> Value {
        json!({ "llm": {
            "provider": "openai", "model": MODEL, "baseUrl": self.url, "apiKeyEnv": KEY_ENV, "maxRetries": 0,
            "timeouts": { "connectMs": 2000, "requestMs": 30000, "idleMs": 30000 }
        } })
    }

    pub fn env() -> Vec<(&'static str, String)> {
        vec![(KEY_ENV, "sk-test-key".to_owned())]
    }

    pub fn roles(&self) -> Vec<String> {
        self.state.0.lock().expect("lock").requests.iter().map(|(r, _)| r.clone()).collect()
    }

    fn wait_for(&self, done: impl Fn(&State) -> bool) -> bool {
        let started = Instant::now();
        let (lock, cvar) = &*self.state;
        let mut state = lock.lock().expect("lock");
        while !done(&state) {
            if started.elapsed() > super::DEADLINE {
                return false;
            }
            state = cvar.wait_timeout(state, Duration::from_millis(100)).expect("lock").0;
        }
        true
    }

    /// Waits until `n` requests arrived.
    pub fn received(&self, n: usize) -> bool {
        self.wait_for(|s| s.requests.len() >= n)
    }

    /// Waits until the client closed a connection the server was holding open.
    pub fn closed_by_client(&self) -> bool {
        self.wait_for(|s| s.closed_by_client >= 1)
    }
}

/// The role a system prompt names: `Role: <role>.`
fn role_of(body: &Value) -> String {
    let system = body["messages"][0]["content"].as_str().unwrap_or_default();
    system
        .split("Role: ")
        .nth(1)
        .map(|rest| rest.split(|c: char| c.is_whitespace()).next().unwrap_or_default().trim_end_matches('.').to_owned())
        .unwrap_or_default()
}

fn user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .map(|m| m.iter().skip(1).filter_map(|m| m["content"].as_str()).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

fn serve(mut socket: TcpStream, mode: Mode, state: &(Mutex<State>, Condvar), replies: &dyn Fn(&str, &str) -> Value) {
    let Some(body) = read_request(&mut socket) else { return };
    let role = role_of(&body);
    state.0.lock().expect("lock").requests.push((role.clone(), body.clone()));
    state.1.notify_all();
    let text = replies(&role, &user_text(&body)).to_string();
    let stream = body["stream"] == true;
    if mode == Mode::Hang {
        let (head, _) = text.split_at(text.len() / 3);
        let _ = write_stream_head(&mut socket);
        let _ = write_chunk(&mut socket, &sse(json!({"role": "assistant", "content": head}), Value::Null));
        wait_closed(&mut socket);
        state.0.lock().expect("lock").closed_by_client += 1;
        state.1.notify_all();
        return;
    }
    if !stream {
        let reply = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
        })
        .to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            reply.len()
        );
        let _ = socket.write_all(head.as_bytes()).and_then(|()| socket.write_all(reply.as_bytes()));
        return;
    }
    if write_stream_head(&mut socket).is_err() {
        return;
    }
    let chars: Vec<char> = text.chars().collect();
    let mut pieces: Vec<String> = vec![sse(json!({"role": "assistant", "content": ""}), Value::Null)];
    for piece in chars.chunks(chars.len().div_ceil(4).max(1)) {
        pieces.push(sse(json!({"content": piece.iter().collect::<String>()}), Value::Null));
    }
    pieces.push(sse(json!({}), json!("stop")));
    pieces.push(format!(
        "data: {}\n\n",
        json!({"id": "c1", "object": "chat.completion.chunk", "model": MODEL, "choices": [],
               "usage": {"prompt_tokens": 12, "completion_tokens": 7}})
    ));
    pieces.push("data: [DONE]\n\n".into());
    for p in pieces {
        if write_chunk(&mut socket, &p).is_err() {
            return;
        }
        // Separate writes, so the client sees separate deltas.
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = socket.write_all(b"0\r\n\r\n");
}

fn sse(delta: Value, finish: Value) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    )
}

fn write_stream_head(socket: &mut TcpStream) -> std::io::Result<()> {
    socket.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    )
}

fn write_chunk(socket: &mut TcpStream, data: &str) -> std::io::Result<()> {
    socket.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())?;
    socket.flush()
}

/// Returns when the client closes the connection.
fn wait_closed(socket: &mut TcpStream) {
    let mut buf = [0u8; 256];
    loop {
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn read_request(socket: &mut TcpStream) -> Option<Value> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(pos) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    while data.len() < head_end + length {
        let n = socket.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    serde_json::from_slice(&data[head_end..head_end + length]).ok()
}

/// The id of the chunk named `name` as the prompt shows it: `[chunk <id>] path:L1-L9  kind  name`.
pub fn chunk_id(user: &str, name: &str) -> Option<String> {
    user.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("[chunk ")?;
        let (id, tail) = rest.split_once(']')?;
        (tail.split_whitespace().last() == Some(name)).then(|| id.to_owned())
    })
}
