//! The `command` provider: pipes the prompt to a configured program (e.g. `claude -p`) on stdin and reads the
//! reply from stdout, with a timeout, and kills the program on cancel, timeout or drop.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdout, Command};
use tokio_util::sync::CancellationToken;

use crate::llm::http::{self, elapsed_ms};
use crate::llm::{LlmClient, LlmError, LlmRequest, LlmResponse, OutputKind, StreamEvent, TextStream, Usage};

/// Last bytes of stderr kept for the error message of a failing command.
const STDERR_TAIL_BYTES: usize = 2000;

pub struct Pipe {
    argv: Vec<String>,
    model: String,
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
        Ok(Pipe { argv, model: model.into() })
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
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LlmError::Command { program: self.program().into(), message: format!("cannot start: {e}") })?;
        let missing =
            |what: &str| LlmError::Command { program: self.program().into(), message: format!("no {what} pipe") };
        let mut stdin = child.stdin.take().ok_or_else(|| missing("stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| missing("stdout"))?;
        let mut stderr = child.stderr.take().ok_or_else(|| missing("stderr"))?;
        // Written from a task so a program that answers before reading all of stdin cannot deadlock us; a
        // program that never reads it just closes the pipe, which is not an error.
        tokio::spawn(async move {
            let _ = stdin.write_all(prompt.as_bytes()).await;
            let _ = stdin.shutdown().await;
        });
        let stderr = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf).await;
            let start = buf.len().saturating_sub(STDERR_TAIL_BYTES);
            String::from_utf8_lossy(&buf[start..]).trim().to_owned()
        });
        Ok((child, stdout, stderr))
    }

    fn start(&self, req: &LlmRequest, cancel: &CancellationToken) -> Result<TextStream, LlmError> {
        let prompt = Pipe::prompt(req);
        let prompt_chars = prompt.len();
        tracing::debug!(program = self.program(), role = %req.role, "command request");
        let (child, stdout, stderr) = self.spawn(prompt)?;
        let state = PipeState {
            child,
            stdout,
            stderr: Some(stderr),
            program: self.program().to_owned(),
            model: req.model.clone().unwrap_or_else(|| self.model.clone()),
            prompt_chars,
            content: Vec::new(),
            emitted: 0,
            cancel: cancel.clone(),
            deadline: tokio::time::Instant::now() + req.timeout,
            timeout: req.timeout,
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

struct PipeState {
    child: Child,
    stdout: ChildStdout,
    stderr: Option<tokio::task::JoinHandle<String>>,
    program: String,
    model: String,
    prompt_chars: usize,
    /// Raw stdout so far; deltas are emitted on UTF-8 boundaries.
    content: Vec<u8>,
    emitted: usize,
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
            let read = tokio::select! {
                _ = self.cancel.cancelled() => Err(LlmError::Cancelled),
                r = tokio::time::timeout_at(self.deadline, self.stdout.read(&mut buf)) => match r {
                    Ok(r) => r.map_err(|e| LlmError::Command { program: self.program.clone(), message: format!("reading stdout: {e}") }),
                    Err(_) => Err(LlmError::Timeout { provider: "command".into(), after: self.timeout }),
                },
            };
            match read {
                Ok(0) => return self.exit().await,
                Ok(n) => {
                    self.content.extend_from_slice(&buf[..n]);
                    let valid = match std::str::from_utf8(&self.content[self.emitted..]) {
                        Ok(s) => s.len(),
                        Err(e) => e.valid_up_to(),
                    };
                    if valid > 0 {
                        let delta =
                            String::from_utf8_lossy(&self.content[self.emitted..self.emitted + valid]).into_owned();
                        self.emitted += valid;
                        return Ok(StreamEvent::Delta(delta));
                    }
                }
                Err(e) => {
                    self.kill().await;
                    return Err(e);
                }
            }
        }
    }

    async fn kill(&mut self) {
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
        let stderr = match self.stderr.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        if !status.success() {
            return Err(LlmError::Command {
                program: self.program.clone(),
                message: format!("exited with {status}: {}", if stderr.is_empty() { "no stderr" } else { &stderr }),
            });
        }
        let content = String::from_utf8_lossy(&self.content).trim_end().to_owned();
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
