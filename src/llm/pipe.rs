//! The `command` provider: pipes the prompt to a configured program (e.g. `claude -p`) on stdin and reads the
//! reply from stdout, with a timeout, and kills the program and everything it started on cancel, timeout or
//! drop.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio_util::sync::CancellationToken;

use crate::llm::http::{self, MAX_REPLY_BYTES, elapsed_ms};
use crate::llm::{LlmClient, LlmError, LlmRequest, LlmResponse, OutputKind, StreamEvent, TextStream, Usage};

/// Last bytes of stderr kept for the error message of a failing command; the rest is read and discarded, so
/// a chatty program can neither block on a full pipe nor fill memory.
const STDERR_TAIL_BYTES: usize = 2000;

pub struct Pipe {
    argv: Vec<String>,
    model: String,
    request_timeout: Duration,
}

impl Pipe {
    /// `argv[0]` is the program; `model` is only a label for usage records (e.g. "claude-code").
    pub fn new(argv: Vec<String>, model: impl Into<String>) -> Result<Pipe, LlmError> {
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(LlmError::Command {
                program: String::new(),
                message: "llm.command is empty; set it to the program and its arguments, e.g. [\"claude\", \"-p\"]"
                    .into(),
            });
        }
        Ok(Pipe { argv, model: model.into(), request_timeout: LlmRequest::DEFAULT_TIMEOUT })
    }

    /// The timeout of a request that sets none (`llm.timeouts.requestMs`).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Pipe {
        self.request_timeout = timeout;
        self
    }

    fn program(&self) -> &str {
        &self.argv[0]
    }

    /// The whole prompt as one text: system, the conversation, and for JSON output the schema to follow.
    fn prompt(req: &LlmRequest) -> String {
        let mut prompt = String::new();
        if !req.system.is_empty() {
            prompt.push_str(&req.system);
            prompt.push_str("\n\n");
        }
        let multi = req.messages.len() > 1;
        for m in &req.messages {
            if multi {
                prompt.push_str(&format!("[{}]\n", m.speaker.wire()));
            }
            prompt.push_str(&m.text);
            prompt.push_str("\n\n");
        }
        if let OutputKind::Json(schema) = &req.output {
            prompt.push_str("Reply with one JSON object only, no prose, matching this JSON Schema:\n");
            prompt.push_str(&schema.schema.to_string());
            prompt.push('\n');
        }
        prompt
    }

    fn spawn(&self, prompt: String) -> Result<(Child, ChildStdout, tokio::task::JoinHandle<String>), LlmError> {
        let mut child = Command::new(self.program())
            .args(&self.argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // The program leads a process group of its own, so that killing the group also ends what it
            // started (a shell's children, an agent's tools), and kill-on-drop covers the program itself.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LlmError::Command { program: self.program().into(), message: format!("cannot start: {e}") })?;
        let missing =
            |what: &str| LlmError::Command { program: self.program().into(), message: format!("no {what} pipe") };
        let mut stdin = child.stdin.take().ok_or_else(|| missing("stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| missing("stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| missing("stderr"))?;
        // Written from a task so a program that answers before reading all of stdin cannot deadlock us; a
        // program that never reads it just closes the pipe, which is not an error.
        tokio::spawn(async move {
            let _ = stdin.write_all(prompt.as_bytes()).await;
            let _ = stdin.shutdown().await;
        });
        Ok((child, stdout, tokio::spawn(stderr_tail(stderr, STDERR_TAIL_BYTES))))
    }

    fn start(&self, req: &LlmRequest, cancel: &CancellationToken) -> Result<TextStream, LlmError> {
        let prompt = Pipe::prompt(req);
        let prompt_chars = prompt.len();
        let timeout = req.timeout_or(self.request_timeout);
        tracing::debug!(program = self.program(), role = %req.role, "command request");
        let (child, stdout, stderr) = self.spawn(prompt)?;
        let state = PipeState {
            group: child.id().and_then(|pid| i32::try_from(pid).ok()),
            child,
            stdout,
            stderr: Some(stderr),
            program: self.program().to_owned(),
            model: req.model.clone().unwrap_or_else(|| self.model.clone()),
            prompt_chars,
            decoder: Utf8Decoder::default(),
            content: String::new(),
            eof: false,
            cancel: cancel.clone(),
            deadline: tokio::time::Instant::now() + timeout,
            timeout,
            started: Instant::now(),
            finished: false,
        };
        Ok(futures_util::stream::unfold(state, |mut s| async move {
            if s.finished {
                return None;
            }
            let item = s.next_event().await;
            if !matches!(item, Ok(StreamEvent::Delta(_))) {
                s.finished = true;
            }
            Some((item, s))
        })
        .boxed())
    }
}

/// Reads a child's stderr to its end, keeping only its last `limit` bytes, cut at a character
/// boundary (also used for SOAR's external agents).
pub(crate) async fn stderr_tail(mut stderr: ChildStderr, limit: usize) -> String {
    let mut tail = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n @ 1..) = stderr.read(&mut buf).await {
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 2 * limit {
            tail.drain(..tail.len() - limit);
        }
    }
    let cut = tail.len().saturating_sub(limit);
    // Skip the continuation bytes of a character cut in half (at most three).
    let start = (cut..tail.len().min(cut + 3)).find(|&i| tail[i] & 0xC0 != 0x80).unwrap_or(tail.len().min(cut + 3));
    String::from_utf8_lossy(&tail[start..]).trim().to_owned()
}

/// Decodes a byte stream as UTF-8 in pieces: a sequence cut by a read boundary waits for the next read,
/// bytes that can never be valid become U+FFFD.
#[derive(Debug, Default)]
struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// The text of `bytes` and of what was pending, up to an incomplete sequence at the end.
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut text = String::new();
        let mut rest: &[u8] = &self.pending;
        while !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    rest = &[];
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    text.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        Some(invalid) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[invalid..];
                        }
                        // An incomplete sequence at the end: it may be completed by the next read.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        let done = self.pending.len() - rest.len();
        self.pending.drain(..done);
        text
    }

    /// At the end of the stream: an incomplete sequence left over becomes U+FFFD.
    fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        String::from_utf8_lossy(&rest).into_owned()
    }
}

struct PipeState {
    child: Child,
    /// The program's process group (its pid, as it leads the group); `None` once killed.
    group: Option<i32>,
    stdout: ChildStdout,
    stderr: Option<tokio::task::JoinHandle<String>>,
    program: String,
    model: String,
    prompt_chars: usize,
    decoder: Utf8Decoder,
    content: String,
    /// Stdout has ended; only the exit status is left to read.
    eof: bool,
    cancel: CancellationToken,
    deadline: tokio::time::Instant,
    timeout: Duration,
    started: Instant,
    finished: bool,
}

impl PipeState {
    async fn next_event(&mut self) -> Result<StreamEvent, LlmError> {
        let mut buf = [0u8; 8192];
        loop {
            if self.eof {
                return self.exit().await;
            }
            let read = tokio::select! {
                _ = self.cancel.cancelled() => Err(LlmError::Cancelled),
                r = tokio::time::timeout_at(self.deadline, self.stdout.read(&mut buf)) => match r {
                    Ok(r) => r.map_err(|e| LlmError::Command { program: self.program.clone(), message: format!("reading stdout: {e}") }),
                    Err(_) => Err(LlmError::Timeout { provider: "command".into(), after: self.timeout }),
                },
            };
            let text = match read {
                Ok(0) => {
                    self.eof = true;
                    self.decoder.finish()
                }
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) => {
                    self.kill().await;
                    return Err(e);
                }
            };
            if text.is_empty() {
                continue;
            }
            if self.content.len() + text.len() > MAX_REPLY_BYTES {
                self.kill().await;
                return Err(LlmError::ResponseTooLarge {
                    provider: "command".into(),
                    what: "the program's output",
                    limit_bytes: MAX_REPLY_BYTES,
                });
            }
            self.content.push_str(&text);
            return Ok(StreamEvent::Delta(text));
        }
    }

    /// Kills the program's whole process group. The group outlives its leader while any member is left, so
    /// its id cannot be reused before this runs.
    fn kill_group(&mut self) {
        if let Some(group) = self.group.take() {
            // SAFETY: killpg takes plain integers and touches no memory; `group` is the id of the process
            // group this provider created for the program (`process_group(0)`), never 0 or negative.
            let _ = unsafe { libc::killpg(group, libc::SIGKILL) };
        }
    }

    async fn kill(&mut self) {
        self.kill_group();
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        tracing::debug!(program = %self.program, "command killed");
    }

    async fn exit(&mut self) -> Result<StreamEvent, LlmError> {
        let status = tokio::select! {
            _ = self.cancel.cancelled() => Err(LlmError::Cancelled),
            r = tokio::time::timeout_at(self.deadline, self.child.wait()) => match r {
                Ok(r) => r.map_err(|e| LlmError::Command { program: self.program.clone(), message: e.to_string() }),
                Err(_) => Err(LlmError::Timeout { provider: "command".into(), after: self.timeout }),
            },
        };
        let status = match status {
            Ok(status) => status,
            Err(e) => {
                self.kill().await;
                return Err(e);
            }
        };
        // Anything the program left running is ended with it; that also closes stderr if it had inherited it.
        self.kill_group();
        let stderr = match self.stderr.take() {
            Some(task) => {
                tokio::time::timeout_at(self.deadline, task).await.ok().and_then(Result::ok).unwrap_or_default()
            }
            None => String::new(),
        };
        if !status.success() {
            return Err(LlmError::Command {
                program: self.program.clone(),
                message: format!("exited with {status}: {}", if stderr.is_empty() { "no stderr" } else { &stderr }),
            });
        }
        let content = self.content.trim_end().to_owned();
        Ok(StreamEvent::Done(LlmResponse {
            usage: Usage::estimate(self.prompt_chars, content.len()),
            content,
            provider: "command".into(),
            model: self.model.clone(),
            finish_reason: "stop".into(),
            latency_ms: elapsed_ms(self.started),
        }))
    }
}

impl Drop for PipeState {
    /// A dropped stream or `complete` future: the group is killed here, the program by `kill_on_drop`.
    fn drop(&mut self) {
        self.kill_group();
    }
}

impl LlmClient for Pipe {
    fn provider(&self) -> &str {
        "command"
    }

    fn default_model(&self) -> &str {
        &self.model
    }

    fn complete<'a>(
        &'a self,
        req: &'a LlmRequest,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        async move { http::collect(self.start(req, cancel)?).await }.boxed()
    }

    fn stream<'a>(
        &'a self,
        req: &'a LlmRequest,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<TextStream, LlmError>> {
        async move { self.start(req, cancel) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<String> {
        let mut decoder = Utf8Decoder::default();
        let mut out: Vec<String> = chunks.iter().map(|c| decoder.push(c)).collect();
        out.push(decoder.finish());
        out
    }

    #[test]
    fn sequences_cut_by_reads_wait_for_the_rest() {
        // "é" is C3 A9 and "€" is E2 82 AC.
        assert_eq!(decode(&[b"caf\xc3", b"\xa9 \xe2", b"\x82", b"\xac!"]), vec!["caf", "é ", "", "€!", ""]);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_and_text_goes_on() {
        assert_eq!(
            decode(&[b"one\xff", b"two\xc3(", b"\xed\xa0\x80x"]),
            vec!["one\u{fffd}", "two\u{fffd}(", "\u{fffd}\u{fffd}\u{fffd}x", ""]
        );
        // A sequence still incomplete when the output ends.
        assert_eq!(decode(&[b"end\xe2\x82"]), vec!["end", "\u{fffd}"]);
    }
}
