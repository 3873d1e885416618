//! The HTTP transport shared by the HTTP providers: the reqwest client, status-to-error mapping, deadlines,
//! cancellation, and the SSE/NDJSON framing of streamed bodies. Only this file and the providers speak HTTP.

use std::collections::VecDeque;
use std::sync::Once;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use crate::llm::error::{LlmError, SecretKey};
use crate::llm::{LlmResponse, StreamEvent, TextStream, Usage};

/// Largest error body read from a failing response: enough for any provider's error JSON.
const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;

/// The limits of one attempt of one call: its cancellation token, its deadline (`timeout` from its start)
/// and when it started, for latency.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub cancel: CancellationToken,
    pub deadline: tokio::time::Instant,
    pub timeout: Duration,
    pub started: Instant,
}

impl Attempt {
    pub fn new(timeout: Duration, cancel: &CancellationToken) -> Attempt {
        Attempt {
            cancel: cancel.clone(),
            deadline: tokio::time::Instant::now() + timeout,
            timeout,
            started: Instant::now(),
        }
    }
}

/// Where and how one provider is reached.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub provider: &'static str,
    /// Without a trailing slash.
    pub base_url: String,
    pub key: Option<SecretKey>,
    /// Name of the environment variable the key came from, for messages.
    pub key_env: String,
    pub default_model: String,
    pub client: reqwest::Client,
}

/// Builds the reqwest client: rustls with the `ring` provider, no proxy lookup, the given connect and idle
/// (per read) timeouts. The total per-call timeout is applied per request.
pub fn build_client(connect: Duration, idle: Duration) -> Result<reqwest::Client, LlmError> {
    static PROVIDER: Once = Once::new();
    // reqwest is built without a default crypto provider; installing fails only if one is already installed.
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder().connect_timeout(connect).read_timeout(idle).no_proxy().build().map_err(|e| {
        LlmError::InvalidResponse { provider: "http".into(), message: format!("building the HTTP client: {e}") }
    })
}

impl Endpoint {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// `text` with the API key removed, for anything that came from the server.
    pub fn redact(&self, text: &str) -> String {
        match &self.key {
            Some(key) => key.redact(text),
            None => text.to_owned(),
        }
    }

    /// Sends `request` and returns the response if its status is 2xx, else the mapped error. Races the send
    /// against `cancel` and `deadline`.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        model: &str,
        attempt: &Attempt,
    ) -> Result<reqwest::Response, LlmError> {
        let response = race(attempt, self.provider, async {
            request.send().await.map_err(|e| self.transport_error(&e, attempt.timeout))
        })
        .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let body = race(attempt, self.provider, async { Ok(read_limited(response).await) }).await?;
        Err(self.status_error(status.as_u16(), &body, model, retry_after))
    }

    /// Reads a whole (non-streamed) body as JSON.
    pub async fn read_json(
        &self,
        response: reqwest::Response,
        attempt: &Attempt,
    ) -> Result<serde_json::Value, LlmError> {
        let body = race(attempt, self.provider, async {
            response.bytes().await.map_err(|e| self.transport_error(&e, attempt.timeout))
        })
        .await?;
        serde_json::from_slice(&body).map_err(|e| LlmError::InvalidResponse {
            provider: self.provider.into(),
            message: format!("response body is not JSON: {e}"),
        })
    }

    pub fn transport_error(&self, e: &reqwest::Error, timeout: Duration) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout { provider: self.provider.into(), after: timeout }
        } else {
            // Refused, reset, DNS or TLS failures: the server could not be talked to.
            LlmError::Connect {
                provider: self.provider.into(),
                base_url: self.base_url.clone(),
                message: self.redact(&error_chain(e)),
            }
        }
    }

    /// Maps a non-2xx status and its body to the typed error a user can act on.
    pub fn status_error(&self, status: u16, body: &str, model: &str, retry_after: Option<Duration>) -> LlmError {
        let (kind, message) = error_message(body);
        let message = self.redact(&message);
        let provider = self.provider.to_owned();
        match status {
            401 | 403 => LlmError::Auth { provider, status, message, env: self.key_env.clone() },
            404 => {
                LlmError::ModelNotFound { provider, model: model.to_owned(), base_url: self.base_url.clone(), message }
            }
            429 => LlmError::RateLimited { provider, message, retry_after },
            529 => LlmError::Overloaded { provider, message },
            500..=599 if kind == "overloaded_error" => LlmError::Overloaded { provider, message },
            500..=599 => LlmError::Server { provider, status, message, retry_after },
            _ => LlmError::BadRequest { provider, status, message },
        }
    }
}

/// Runs `fut` unless the attempt is cancelled or its deadline passes first.
pub async fn race<T>(
    attempt: &Attempt,
    provider: &str,
    fut: impl Future<Output = Result<T, LlmError>>,
) -> Result<T, LlmError> {
    tokio::select! {
        _ = attempt.cancel.cancelled() => Err(LlmError::Cancelled),
        r = tokio::time::timeout_at(attempt.deadline, fut) => match r {
            Ok(r) => r,
            Err(_) => Err(LlmError::Timeout { provider: provider.to_owned(), after: attempt.timeout }),
        },
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn read_limited(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY_BYTES {
            body.truncate(MAX_ERROR_BODY_BYTES);
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// The error type and message from the JSON error shapes of Anthropic (`{error: {type, message}}`), OpenAI
/// (`{error: {message, code}}`) and Ollama (`{error: "…"}`); otherwise the body itself.
fn error_message(body: &str) -> (String, String) {
    let fallback = || (String::new(), body.trim().chars().take(500).collect());
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else { return fallback() };
    match value.get("error") {
        Some(serde_json::Value::String(s)) => (String::new(), s.clone()),
        Some(obj) => {
            let kind = obj.get("type").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let message = obj.get("message").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            (kind, message)
        }
        None => fallback(),
    }
}

/// `retry-after-ms` (OpenAI) or `Retry-After` in seconds.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    text("retry-after").and_then(|v| v.parse::<f64>().ok()).map(|s| Duration::from_secs_f64(s.max(0.0)))
}

/// How a streamed body is cut into frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events: `event:`/`data:` lines, a blank line ends an event.
    Sse,
    /// One JSON object per line.
    Ndjson,
}

/// One SSE event (`event` empty when absent) or one NDJSON line (in `data`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    pub event: String,
    pub data: String,
}

/// Splits bytes into frames; keeps a partial line, and an SSE event until its blank line, for later.
#[derive(Debug)]
pub struct Framer {
    framing: Framing,
    buf: Vec<u8>,
    /// The SSE event whose fields have been read but whose blank line has not.
    open: Option<Frame>,
}

impl Framer {
    pub fn new(framing: Framing) -> Framer {
        Framer { framing, buf: Vec::new(), open: None }
    }

    /// Appends complete frames to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut VecDeque<Frame>) {
        self.buf.extend_from_slice(bytes);
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            self.line(&String::from_utf8_lossy(&line), out);
        }
    }

    /// At the end of the body: a last line without its newline, or an event without its blank line, still
    /// counts.
    pub fn finish(&mut self, out: &mut VecDeque<Frame>) {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.line(&String::from_utf8_lossy(&rest), out);
        }
        out.extend(self.open.take());
    }

    fn line(&mut self, line: &str, out: &mut VecDeque<Frame>) {
        let line = line.trim_end_matches(['\n', '\r']);
        if self.framing == Framing::Ndjson {
            if !line.trim().is_empty() {
                out.push_back(Frame { event: String::new(), data: line.to_owned() });
            }
            return;
        }
        if line.is_empty() {
            out.extend(self.open.take());
            return;
        }
        if line.starts_with(':') {
            return; // an SSE comment, used as a keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        let frame = self.open.get_or_insert_with(Frame::default);
        match field {
            "event" => frame.event = value.to_owned(),
            "data" => {
                if !frame.data.is_empty() {
                    frame.data.push('\n');
                }
                frame.data.push_str(value);
            }
            _ => {}
        }
    }
}

/// What a provider's stream decoder makes of one frame.
pub trait Decoder: Send + 'static {
    /// A text delta to emit, if the frame carried one. Errors end the stream.
    fn frame(&mut self, frame: &Frame) -> Result<Option<String>, LlmError>;
    /// True once the provider has said the reply is complete.
    fn is_done(&self) -> bool;
    /// Model, usage and finish reason, once done.
    fn finish(&mut self) -> (String, Usage, String);
}

struct StreamState<D> {
    body: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    framer: Framer,
    frames: VecDeque<Frame>,
    out: VecDeque<Result<StreamEvent, LlmError>>,
    decoder: D,
    content: String,
    endpoint: Endpoint,
    attempt: Attempt,
    finished: bool,
}

/// Turns a streamed response into [`StreamEvent`]s: deltas in order, then `Done`. A body that ends before
/// the provider's end marker is a [`LlmError::StreamInterrupted`].
pub fn decode_stream<D: Decoder>(
    endpoint: &Endpoint,
    response: reqwest::Response,
    framing: Framing,
    decoder: D,
    attempt: Attempt,
) -> TextStream {
    let state = StreamState {
        body: response.bytes_stream().boxed(),
        framer: Framer::new(framing),
        frames: VecDeque::new(),
        out: VecDeque::new(),
        decoder,
        content: String::new(),
        endpoint: endpoint.clone(),
        attempt,
        finished: false,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(item) = s.out.pop_front() {
                return Some((item, s));
            }
            if s.finished {
                return None;
            }
            if let Some(frame) = s.frames.pop_front() {
                s.on_frame(&frame);
                continue;
            }
            let next = race(&s.attempt, s.endpoint.provider, async { Ok(s.body.next().await) }).await;
            match next {
                Ok(Some(Ok(bytes))) => s.framer.push(&bytes, &mut s.frames),
                Ok(Some(Err(e))) => {
                    let err = if e.is_timeout() {
                        LlmError::Timeout { provider: s.endpoint.provider.into(), after: s.attempt.timeout }
                    } else {
                        s.interrupted(&error_chain(&e))
                    };
                    s.fail(err);
                }
                Ok(None) => {
                    s.framer.finish(&mut s.frames);
                    while let Some(frame) = s.frames.pop_front() {
                        if !s.finished {
                            s.on_frame(&frame);
                        }
                    }
                    if !s.finished {
                        let err = s.interrupted("the connection closed before the end of the reply");
                        s.fail(err);
                    }
                }
                Err(e) => s.fail(e),
            }
        }
    })
    .boxed()
}

impl<D: Decoder> StreamState<D> {
    fn on_frame(&mut self, frame: &Frame) {
        match self.decoder.frame(frame) {
            Ok(delta) => {
                if let Some(delta) = delta.filter(|d| !d.is_empty()) {
                    self.content.push_str(&delta);
                    self.out.push_back(Ok(StreamEvent::Delta(delta)));
                }
                if self.decoder.is_done() {
                    let (model, usage, finish_reason) = self.decoder.finish();
                    let model = if model.is_empty() { self.endpoint.default_model.clone() } else { model };
                    self.out.push_back(Ok(StreamEvent::Done(LlmResponse {
                        content: std::mem::take(&mut self.content),
                        provider: self.endpoint.provider.into(),
                        model,
                        usage,
                        finish_reason,
                        latency_ms: elapsed_ms(self.attempt.started),
                    })));
                    self.finished = true;
                }
            }
            Err(e) => self.fail(e),
        }
    }

    fn interrupted(&self, message: &str) -> LlmError {
        LlmError::StreamInterrupted {
            provider: self.endpoint.provider.into(),
            received_chars: self.content.chars().count(),
            message: self.endpoint.redact(message),
        }
    }

    fn fail(&mut self, e: LlmError) {
        self.out.push_back(Err(e));
        self.finished = true;
    }
}

pub fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Collects a stream into its final response (used by providers whose `complete` reuses `stream`).
pub async fn collect(mut stream: TextStream) -> Result<LlmResponse, LlmError> {
    while let Some(event) = stream.next().await {
        if let StreamEvent::Done(response) = event? {
            return Ok(response);
        }
    }
    Err(LlmError::InvalidResponse { provider: "stream".into(), message: "the stream ended without a result".into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framing: Framing, chunks: &[&str]) -> Vec<Frame> {
        let mut framer = Framer::new(framing);
        let mut pending = VecDeque::new();
        let mut done = Vec::new();
        for chunk in chunks {
            framer.push(chunk.as_bytes(), &mut pending);
            done.extend(pending.drain(..));
        }
        framer.finish(&mut pending);
        done.extend(pending);
        done
    }

    #[test]
    fn sse_events_split_across_chunks_are_joined() {
        let got = frames(
            Framing::Sse,
            &["event: a\nda", "ta: {\"x\":1}\n\n: ping\n\ndata: one\ndata: two\r\n\r\ndata: [DONE]"],
        );
        assert_eq!(
            got,
            vec![
                Frame { event: "a".into(), data: "{\"x\":1}".into() },
                Frame { event: String::new(), data: "one\ntwo".into() },
                Frame { event: String::new(), data: "[DONE]".into() },
            ]
        );
    }

    #[test]
    fn ndjson_lines_become_frames() {
        let got = frames(Framing::Ndjson, &["{\"a\":1}\n{\"b\"", ":2}\n\n"]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].data, "{\"b\":2}");
    }

    #[test]
    fn retry_after_prefers_milliseconds() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "2".parse().expect("valid header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "150".parse().expect("valid header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(150)));
    }
}
