//! A hand-written HTTP/1.1 fake provider on `127.0.0.1:0`: scripted responses (JSON, chunked SSE/NDJSON
//! streams, delays, cuts, hangs), a record of every request, and events a test can wait on: a request
//! arrived, the client closed a connection the server was still holding open.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long a test waits for an event before deciding it will not come: generous, since a loaded machine
/// may be slow, and an event that does come ends the wait at once.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// How a streamed response ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The terminating chunk is sent.
    Complete,
    /// The connection is dropped without the terminating chunk.
    Cut,
    /// Nothing more is sent; the server holds the connection until the client closes it.
    Hang,
}

/// One scripted response; requests take them in order.
#[derive(Clone, Debug)]
pub enum Step {
    Respond { status: u16, headers: Vec<(String, String)>, body: String, delay: Duration },
    Stream { content_type: &'static str, chunks: Vec<String>, end: End },
}

impl Step {
    pub fn json(status: u16, body: &Value) -> Step {
        Step::Respond { status, headers: Vec::new(), body: body.to_string(), delay: Duration::ZERO }
    }

    pub fn header(mut self, name: &str, value: &str) -> Step {
        if let Step::Respond { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    pub fn delayed(mut self, by: Duration) -> Step {
        if let Step::Respond { delay, .. } = &mut self {
            *delay = by;
        }
        self
    }
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Counts of what happened, published to waiting tests.
#[derive(Clone, Copy, Debug, Default)]
struct Events {
    requests: usize,
    /// Connections the client closed (or reset) while the server was delaying or holding its response.
    closed_by_client: usize,
}

struct State {
    script: Mutex<VecDeque<Step>>,
    requests: Mutex<Vec<Recorded>>,
    events: watch::Sender<Events>,
}

pub struct FakeServer {
    pub url: String,
    state: Arc<State>,
}

impl FakeServer {
    pub async fn start(steps: Vec<Step>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let state = Arc::new(State {
            script: Mutex::new(steps.into()),
            requests: Mutex::new(Vec::new()),
            events: watch::Sender::new(Events::default()),
        });
        let serving = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, Arc::clone(&serving)));
            }
        });
        FakeServer { url, state }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.state.requests.lock().expect("lock").len()
    }

    async fn wait_for(&self, done: impl Fn(&Events) -> bool) -> bool {
        let mut events = self.state.events.subscribe();
        tokio::time::timeout(EVENT_WAIT, events.wait_for(|e| done(e))).await.is_ok_and(|r| r.is_ok())
    }

    /// Waits until `n` requests have arrived; false if they did not within [`EVENT_WAIT`].
    pub async fn received(&self, n: usize) -> bool {
        self.wait_for(|e| e.requests >= n).await
    }

    /// Waits until the client has closed a connection whose response the server was delaying or holding
    /// open (a delayed reply, a hung stream); false if it did not within [`EVENT_WAIT`]. Scripts that use it
    /// delay or hold far longer than that, so only the client can have closed.
    pub async fn closed_by_client(&self) -> bool {
        self.wait_for(|e| e.closed_by_client >= 1).await
    }

    /// How many such connections the client has closed so far.
    pub fn closed_count(&self) -> usize {
        self.state.events.borrow().closed_by_client
    }
}

async fn serve(mut socket: TcpStream, state: Arc<State>) {
    let Some(request) = read_request(&mut socket).await else { return };
    state.requests.lock().expect("lock").push(request);
    state.events.send_modify(|e| e.requests += 1);
    let step = state.script.lock().expect("lock").pop_front();
    let step = step.unwrap_or_else(|| Step::json(500, &serde_json::json!({"error": "unscripted request"})));
    match step {
        Step::Respond { status, headers, body, delay } => {
            let closed = tokio::select! {
                _ = tokio::time::sleep(delay) => false,
                _ = wait_closed(&mut socket) => true,
            };
            if closed {
                state.events.send_modify(|e| e.closed_by_client += 1);
                return;
            }
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
        Step::Stream { content_type, chunks, end } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            );
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for chunk in chunks {
                let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                if socket.write_all(framed.as_bytes()).await.is_err() {
                    return;
                }
                let _ = socket.flush().await;
                // Separate TCP writes, so the client sees real deltas.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            match end {
                End::Complete => {
                    let _ = socket.write_all(b"0\r\n\r\n").await;
                    let _ = socket.shutdown().await;
                }
                End::Cut => drop(socket),
                End::Hang => {
                    wait_closed(&mut socket).await;
                    state.events.send_modify(|e| e.closed_by_client += 1);
                }
            }
        }
    }
}

/// Returns when the client closes the connection (it sends nothing after its request).
async fn wait_closed(socket: &mut TcpStream) {
    let mut buf = [0u8; 256];
    loop {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn read_request(socket: &mut TcpStream) -> Option<Recorded> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(pos) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    while data.len() < head_end + length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let body_text = String::from_utf8_lossy(&data[head_end..head_end + length]).into_owned();
    let body = serde_json::from_str(&body_text).unwrap_or(Value::Null);
    Some(Recorded { method, path, headers, body, at: Instant::now() })
}
