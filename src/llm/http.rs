//! The HTTP transport shared by the HTTP providers: the reqwest client, status-to-error mapping, deadlines,
//! cancellation, and the SSE/NDJSON framing of streamed bodies. Only this file and the providers speak HTTP.

use std::collections::VecDeque;
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::header::{AUTHORIZATION, HeaderValue, LOCATION};
use tokio_util::sync::CancellationToken;

use crate::llm::error::{LlmError, SecretKey};
use crate::llm::{LlmRequest, LlmResponse, StreamEvent, TextStream, Usage};

/// Largest error body read from a failing response: enough for any provider's error JSON.
const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;
/// Largest non-streamed JSON body. A reply at the largest `llm.maxTokens` (200k tokens) is under 2 MiB of
/// JSON, so this only stops a runaway or hostile server from filling memory.
pub const MAX_JSON_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Largest line of a streamed body, and largest SSE event: a provider's frame carries one delta, a few KiB.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Largest streamed reply text (HTTP or command), on the same reasoning as [`MAX_JSON_BODY_BYTES`].
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

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
    /// The timeout of a request that sets none (`llm.timeouts.requestMs`).
    pub request_timeout: Duration,
    pub client: reqwest::Client,
}

/// The header a provider sends its key in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyHeader {
    /// `x-api-key: <key>` (Anthropic).
    ApiKey,
    /// `Authorization: Bearer <key>` (OpenAI, Ollama behind a proxy).
    Bearer,
}

/// Builds the reqwest client: rustls with the `ring` provider, no proxy lookup, no redirects, the given
/// connect and idle (per read) timeouts. The total per-call timeout is applied per request.
pub fn build_client(connect: Duration, idle: Duration) -> Result<reqwest::Client, LlmError> {
    static PROVIDER: Once = Once::new();
    // reqwest is built without a default crypto provider; installing fails only if one is already installed.
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .connect_timeout(connect)
        .read_timeout(idle)
        .no_proxy()
        // A followed redirect replays the request, key header included, to whatever host `Location` names.
        // Provider APIs do not redirect, so a 3xx ends the call as `LlmError::Redirected` instead.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| LlmError::InvalidResponse {
            provider: "http".into(),
            message: format!("building the HTTP client: {e}"),
        })
}

impl Endpoint {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// The time one attempt of `req` may take.
    pub fn timeout(&self, req: &LlmRequest) -> Duration {
        req.timeout_or(self.request_timeout)
    }

    /// `builder` with the key, if there is one, in `header`, marked sensitive so that no `Debug` output of
    /// the request or its headers shows it.
    pub fn with_key(
        &self,
        builder: reqwest::RequestBuilder,
        header: KeyHeader,
    ) -> Result<reqwest::RequestBuilder, LlmError> {
        let Some(key) = &self.key else { return Ok(builder) };
        let (name, value) = match header {
            KeyHeader::ApiKey => ("x-api-key", HeaderValue::from_str(key.expose())),
            KeyHeader::Bearer => (AUTHORIZATION.as_str(), HeaderValue::from_str(&format!("Bearer {}", key.expose()))),
        };
        let mut value = value.map_err(|_| LlmError::InvalidConfig {
            problems: vec![format!(
                "the key in ${} contains characters that cannot be sent in an HTTP header; check its value",
                self.key_env
            )],
        })?;
        value.set_sensitive(true);
        Ok(builder.header(name, value))
    }

    /// `text` with the API key removed, for anything that came from the server.
    pub fn redact(&self, text: &str) -> String {
        match &self.key {
            Some(key) => key.redact(text),
            None => text.to_owned(),
        }
    }

    /// `e` with the API key removed from every message: applied to every error a provider returns.
    pub fn redact_error(&self, e: LlmError) -> LlmError {
        match &self.key {
            Some(key) => e.redacted(&|text| key.redact(text)),
            None => e,
        }
    }

    /// Sends `request` and returns the response if its status is 2xx, else the mapped error. Races the send
    /// against `cancel` and `deadline`. A failing response is dropped before this returns, which closes its
    /// connection.
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
        if status.is_redirection() {
            let location = response.headers().get(LOCATION).map_or("nowhere (no Location header)".into(), |v| {
                String::from_utf8_lossy(v.as_bytes()).chars().take(200).collect::<String>()
            });
            return Err(LlmError::Redirected {
                provider: self.provider.into(),
                status: status.as_u16(),
                location: self.redact(&location),
            });
        }
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let body = race(attempt, self.provider, async { Ok(read_limited(response).await) }).await?;
        Err(self.status_error(status.as_u16(), &body, model, retry_after))
    }

    /// Reads a whole (non-streamed) body as JSON, refusing one over [`MAX_JSON_BODY_BYTES`] without reading
    /// the rest of it.
    pub async fn read_json(
        &self,
        mut response: reqwest::Response,
        attempt: &Attempt,
    ) -> Result<serde_json::Value, LlmError> {
        let too_large = || LlmError::ResponseTooLarge {
            provider: self.provider.into(),
            what: "the response body",
            limit_bytes: MAX_JSON_BODY_BYTES,
        };
        if response.content_length().is_some_and(|n| n > MAX_JSON_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let body = race(attempt, self.provider, async move {
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_error(&e, attempt.timeout))? {
                if body.len() + chunk.len() > MAX_JSON_BODY_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
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

/// The wait a failing response asks for: `retry-after-ms` (OpenAI), else `Retry-After` in seconds or as an
/// HTTP date (relative to `now`). A negative or NaN value is no request at all; an infinite or huge one
/// saturates, and the retry policy caps every wait by its total time.
fn retry_after(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return wait_secs(ms / 1000.0);
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return wait_secs(secs);
    }
    let at = http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn wait_secs(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    // Only infinities and values past u64::MAX seconds fail here; both mean "a very long time".
    Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// An IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`), the HTTP date format servers send.
fn http_date(text: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = text.split_ascii_whitespace().collect();
    let [_weekday, day, month, year, time, "GMT"] = parts.as_slice() else { return None };
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let day: i64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let year: i64 = year.parse().ok().filter(|y| (1970..=9999).contains(y))?;
    let mut hms = time.split(':').map(|n| n.parse::<i64>().ok());
    let (Some(Some(h)), Some(Some(m)), Some(Some(s)), None) = (hms.next(), hms.next(), hms.next(), hms.next()) else {
        return None;
    };
    if !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..61).contains(&s) {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

/// A line or an SSE event passed [`MAX_FRAME_BYTES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameTooLarge;

/// Splits bytes into frames; keeps a partial line, and an SSE event until its blank line, for later. Each
/// byte is searched for a newline once, however the body is chunked.
#[derive(Debug)]
pub struct Framer {
    framing: Framing,
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
    /// The open SSE event's type, and its data once a `data` field was seen (an event without one is not
    /// dispatched, as the SSE specification says).
    event: String,
    data: Option<String>,
}

impl Framer {
    pub fn new(framing: Framing) -> Framer {
        Framer { framing, buf: Vec::new(), scanned: 0, event: String::new(), data: None }
    }

    /// Appends complete frames to `out`. Fails once a line or an event passes [`MAX_FRAME_BYTES`].
    pub fn push(&mut self, bytes: &[u8], out: &mut VecDeque<Frame>) -> Result<(), FrameTooLarge> {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(offset) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            let end = self.scanned + offset;
            let line = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
            start = end + 1;
            self.scanned = start;
            self.line(&line, out)?;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.buf.len() > MAX_FRAME_BYTES { Err(FrameTooLarge) } else { Ok(()) }
    }

    /// At the end of the body: a last line without its newline, or an event with data but without its blank
    /// line, still counts.
    pub fn finish(&mut self, out: &mut VecDeque<Frame>) -> Result<(), FrameTooLarge> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.scanned = 0;
            self.line(&String::from_utf8_lossy(&rest), out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn dispatch(&mut self, out: &mut VecDeque<Frame>) {
        let event = std::mem::take(&mut self.event);
        if let Some(data) = self.data.take() {
            out.push_back(Frame { event, data });
        }
    }

    fn line(&mut self, line: &str, out: &mut VecDeque<Frame>) -> Result<(), FrameTooLarge> {
        let line = line.trim_end_matches(['\n', '\r']);
        if self.framing == Framing::Ndjson {
            if !line.trim().is_empty() {
                out.push_back(Frame { event: String::new(), data: line.to_owned() });
            }
            return Ok(());
        }
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(()); // an SSE comment, used as a keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                let held = self.data.as_ref().map_or(0, |d| d.len() + 1);
                if held + value.len() > MAX_FRAME_BYTES {
                    return Err(FrameTooLarge);
                }
                match &mut self.data {
                    // Lines of one event are joined with newlines, empty ones included.
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                }
            }
            _ => {}
        }
        Ok(())
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
/// the provider's end marker is a [`LlmError::StreamInterrupted`]. Every error is redacted, and ending the
/// stream in an error (cancellation and timeouts included) drops the body at once, which closes the
/// connection even while the caller still holds the stream.
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
                Ok(Some(Ok(bytes))) => {
                    if s.framer.push(&bytes, &mut s.frames).is_err() {
                        let err = s.frame_too_large();
                        s.fail(err);
                    }
                }
                Ok(Some(Err(e))) => {
                    let err = if e.is_timeout() {
                        LlmError::Timeout { provider: s.endpoint.provider.into(), after: s.attempt.timeout }
                    } else {
                        s.interrupted(&error_chain(&e))
                    };
                    s.fail(err);
                }
                Ok(None) => {
                    if s.framer.finish(&mut s.frames).is_err() {
                        let err = s.frame_too_large();
                        s.fail(err);
                    }
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
                    if self.content.len() + delta.len() > MAX_REPLY_BYTES {
                        self.fail(LlmError::ResponseTooLarge {
                            provider: self.endpoint.provider.into(),
                            what: "the streamed reply",
                            limit_bytes: MAX_REPLY_BYTES,
                        });
                        return;
                    }
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

    fn frame_too_large(&self) -> LlmError {
        LlmError::ResponseTooLarge {
            provider: self.endpoint.provider.into(),
            what: "a line or event of the streamed response",
            limit_bytes: MAX_FRAME_BYTES,
        }
    }

    /// Ends the stream with `e`, redacted the same way as errors of non-streamed calls, and drops the body
    /// so that the connection closes now rather than when the caller drops the stream.
    fn fail(&mut self, e: LlmError) {
        self.body = futures_util::stream::empty().boxed();
        self.frames.clear();
        self.out.push_back(Err(self.endpoint.redact_error(e)));
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
            framer.push(chunk.as_bytes(), &mut pending).expect("small frames");
            done.extend(pending.drain(..));
        }
        framer.finish(&mut pending).expect("small frames");
        done.extend(pending);
        done
    }

    fn frame(event: &str, data: &str) -> Frame {
        Frame { event: event.into(), data: data.into() }
    }

    #[test]
    fn sse_events_split_across_chunks_are_joined() {
        let got = frames(
            Framing::Sse,
            &["event: a\nda", "ta: {\"x\":1}\n\n: ping\n\ndata: one\ndata: two\r\n\r\ndata: [DONE]"],
        );
        assert_eq!(got, vec![frame("a", "{\"x\":1}"), frame("", "one\ntwo"), frame("", "[DONE]")]);
    }

    #[test]
    fn sse_events_without_data_are_not_dispatched() {
        let got = frames(
            Framing::Sse,
            &["event: ping\n\n", ": keep-alive\n\n", "id: 7\nretry: 10\n\n", "\n\n", "event: last\n"],
        );
        assert_eq!(got, Vec::<Frame>::new());
        // The type of a skipped event does not leak into the next one; an empty data field still counts.
        let got = frames(Framing::Sse, &["event: ping\n\ndata: x\n\n", "data:\n\n", "data:\ndata: y\n\n"]);
        assert_eq!(got, vec![frame("", "x"), frame("", ""), frame("", "\ny")]);
    }

    #[test]
    fn ndjson_lines_become_frames() {
        let got = frames(Framing::Ndjson, &["{\"a\":1}\n{\"b\"", ":2}\n\n"]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].data, "{\"b\":2}");
    }

    #[test]
    fn a_body_fed_byte_by_byte_gives_the_same_frames() {
        let body = "data: {\"n\":1}\n\ndata: {\"n\":2}\n\n";
        let bytes: Vec<String> = body.chars().map(String::from).collect();
        let chunks: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(frames(Framing::Sse, &chunks), frames(Framing::Sse, &[body]));
        assert_eq!(frames(Framing::Sse, &[body]).len(), 2);
    }

    #[test]
    fn an_endless_line_or_event_is_refused() {
        let mut framer = Framer::new(Framing::Ndjson);
        let mut out = VecDeque::new();
        let block = vec![b'x'; 64 * 1024];
        let mut result = Ok(());
        for _ in 0..=MAX_FRAME_BYTES / block.len() {
            result = framer.push(&block, &mut out);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(FrameTooLarge));
        assert!(out.is_empty());
        // Many short data lines that never end their event.
        let mut framer = Framer::new(Framing::Sse);
        let line = format!("data: {}\n", "y".repeat(1000));
        let result = (0..=MAX_FRAME_BYTES / 1000).try_for_each(|_| framer.push(line.as_bytes(), &mut out));
        assert_eq!(result, Err(FrameTooLarge));
    }

    #[test]
    fn key_headers_are_sensitive_and_never_printed() {
        let key = "sk-unit-SECRET-1234";
        let endpoint = Endpoint {
            provider: "anthropic",
            base_url: "http://127.0.0.1:9".into(),
            key: Some(SecretKey::new(key.into())),
            key_env: "K".into(),
            default_model: "m".into(),
            request_timeout: Duration::from_secs(1),
            client: build_client(Duration::from_secs(1), Duration::from_secs(1)).expect("client"),
        };
        for (header, name, value) in [
            (KeyHeader::ApiKey, "x-api-key", key.to_owned()),
            (KeyHeader::Bearer, "authorization", format!("Bearer {key}")),
        ] {
            let builder = endpoint.with_key(endpoint.client.post(endpoint.url("/x")), header).expect("valid key");
            let request = builder.build().expect("request");
            let sent = &request.headers()[name];
            assert_eq!((sent.to_str().expect("ascii"), sent.is_sensitive()), (value.as_str(), true));
            assert!(!format!("{request:?} {:?}", request.headers()).contains(key));
        }
        let bad = Endpoint { key: Some(SecretKey::new("sk-with\nnewline".into())), ..endpoint };
        let err = bad.with_key(bad.client.post(bad.url("/x")), KeyHeader::ApiKey).expect_err("not a header value");
        assert_eq!(
            err.to_string(),
            "the llm settings are not usable: the key in $K contains characters that cannot be sent in an HTTP header; check its value"
        );
    }

    fn headers(pairs: &[(&str, &str)]) -> reqwest::header::HeaderMap {
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("valid name"),
                value.parse().expect("valid header"),
            );
        }
        headers
    }

    /// 2015-10-21T07:27:50Z, ten seconds before the date used below.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_445_412_470)
    }

    #[test]
    fn retry_after_prefers_milliseconds() {
        assert_eq!(retry_after(&headers(&[("retry-after", "2")]), now()), Some(Duration::from_secs(2)));
        let both = headers(&[("retry-after", "2"), ("retry-after-ms", "150")]);
        assert_eq!(retry_after(&both, now()), Some(Duration::from_millis(150)));
    }

    #[test]
    fn retry_after_survives_any_number() {
        for (name, value, expected) in [
            ("retry-after", "inf", Some(Duration::MAX)),
            ("retry-after", "1e20", Some(Duration::MAX)),
            ("retry-after", "1.5", Some(Duration::from_millis(1500))),
            ("retry-after", "-5", None),
            ("retry-after", "NaN", None),
            ("retry-after", "-inf", None),
            ("retry-after", "soon", None),
            ("retry-after-ms", "inf", Some(Duration::MAX)),
            ("retry-after-ms", "1e300", Some(Duration::MAX)),
            ("retry-after-ms", "-1", None),
        ] {
            assert_eq!(retry_after(&headers(&[(name, value)]), now()), expected, "{name}: {value}");
        }
    }

    #[test]
    fn retry_after_as_an_http_date() {
        let at = |date: &str| retry_after(&headers(&[("retry-after", date)]), now());
        assert_eq!(at("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::from_secs(10)));
        assert_eq!(at("Tue, 20 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a date in the past");
        assert_eq!(at("Fri, 31 Dec 9999 23:59:59 GMT"), Some(Duration::from_secs(253_402_300_799 - 1_445_412_470)));
        for bad in ["Wed, 21 Oct 2015 07:28:00 PST", "Wed, 21 Foo 2015 07:28:00 GMT", "Wed, 21 Oct 2015 25:00:00 GMT"] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }
}
