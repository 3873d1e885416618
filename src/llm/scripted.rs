//! A scripted `LlmClient` for tests of higher layers: replies queued per role id (never chosen by prompt
//! text), with usage, latency and failure injection, and a record of every request.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::llm::http::elapsed_ms;
use crate::llm::{LlmClient, LlmError, LlmRequest, LlmResponse, StreamEvent, TextStream, Usage};

/// A failure to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    RateLimited,
    Auth,
    Server,
    /// The stream breaks after the listed chunks.
    StreamCut,
}

#[derive(Clone, Debug)]
enum Body {
    Text(String),
    Stream(Vec<String>),
    Fail(Failure),
    Hang,
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    body: Body,
    /// Chunks sent before a `StreamCut` failure.
    partial: Vec<String>,
    usage: Option<(u32, u32)>,
    delay: Duration,
}

impl Reply {
    fn with(body: Body) -> Reply {
        Reply { body, partial: Vec::new(), usage: None, delay: Duration::ZERO }
    }

    pub fn text(text: impl Into<String>) -> Reply {
        Reply::with(Body::Text(text.into()))
    }

    pub fn json(value: Value) -> Reply {
        Reply::with(Body::Text(value.to_string()))
    }

    /// Streamed as these chunks; `complete` returns them joined.
    pub fn stream(chunks: Vec<String>) -> Reply {
        Reply::with(Body::Stream(chunks))
    }

    pub fn error(failure: Failure) -> Reply {
        Reply::with(Body::Fail(failure))
    }

    /// Streams `sent`, then the connection breaks.
    pub fn cut_after(sent: Vec<String>) -> Reply {
        Reply { partial: sent, ..Reply::with(Body::Fail(Failure::StreamCut)) }
    }

    /// Never answers; only cancellation or the request timeout ends it.
    pub fn hang() -> Reply {
        Reply::with(Body::Hang)
    }

    /// Token counts to report (otherwise estimated from text, flagged `estimated`).
    pub fn usage(mut self, input_tokens: u32, output_tokens: u32) -> Reply {
        self.usage = Some((input_tokens, output_tokens));
        self
    }

    /// Latency before the reply (or before the first chunk).
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Script {
    replies: HashMap<String, VecDeque<Reply>>,
    repairs: HashMap<String, VecDeque<Reply>>,
    requests: Vec<LlmRequest>,
    unscripted: Vec<String>,
}

/// Dispatches on `LlmRequest::role` only, one FIFO queue per role; `on_repair` queues answer repair
/// requests first. An unscripted call fails with [`LlmError::Script`] and makes
/// [`ScriptedLlm::assert_all_consumed`] panic.
pub struct ScriptedLlm {
    provider: String,
    model: String,
    script: Mutex<Script>,
}

impl Default for ScriptedLlm {
    fn default() -> ScriptedLlm {
        ScriptedLlm::new()
    }
}

impl ScriptedLlm {
    /// Provider `scripted` (unpriced) and model `scripted-model`.
    pub fn new() -> ScriptedLlm {
        ScriptedLlm {
            provider: "scripted".into(),
            model: "scripted-model".into(),
            script: Mutex::new(Script::default()),
        }
    }

    /// Poses as `provider`/`model`, e.g. to have its usage priced like a real model.
    pub fn posing_as(mut self, provider: &str, model: &str) -> ScriptedLlm {
        self.provider = provider.into();
        self.model = model.into();
        self
    }

    pub fn on(self, role: &str, reply: Reply) -> ScriptedLlm {
        self.lock().replies.entry(role.into()).or_default().push_back(reply);
        self
    }

    pub fn on_repair(self, role: &str, reply: Reply) -> ScriptedLlm {
        self.lock().repairs.entry(role.into()).or_default().push_back(reply);
        self
    }

    /// Every request received, in order, for assertions on prompt content.
    pub fn requests(&self) -> Vec<LlmRequest> {
        self.lock().requests.clone()
    }

    /// Panics if a scripted reply was never used or an unscripted call was made.
    pub fn assert_all_consumed(&self) {
        let script = self.lock();
        let left: Vec<String> = script
            .replies
            .iter()
            .chain(script.repairs.iter())
            .filter(|(_, q)| !q.is_empty())
            .map(|(role, q)| format!("{role} ({} left)", q.len()))
            .collect();
        assert!(script.unscripted.is_empty(), "unscripted LLM calls: {:?}", script.unscripted);
        assert!(left.is_empty(), "scripted replies never used: {left:?}");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().expect("the script lock is never poisoned")
    }

    fn take(&self, req: &LlmRequest) -> Result<Reply, LlmError> {
        let mut script = self.lock();
        script.requests.push(req.clone());
        let role = req.role.as_str();
        let repair = if req.repair { script.repairs.get_mut(role).and_then(VecDeque::pop_front) } else { None };
        match repair.or_else(|| script.replies.get_mut(role).and_then(VecDeque::pop_front)) {
            Some(reply) => Ok(reply),
            None => {
                let what = format!("{role} (attempt {}{})", req.attempt, if req.repair { ", repair" } else { "" });
                script.unscripted.push(what.clone());
                Err(LlmError::Script(format!("no scripted reply for {what}")))
            }
        }
    }

    fn failure(&self, failure: Failure, req: &LlmRequest, received_chars: usize) -> LlmError {
        let provider = self.provider.clone();
        match failure {
            Failure::Timeout => LlmError::Timeout { provider, after: timeout(req) },
            Failure::RateLimited => LlmError::RateLimited { provider, message: "scripted".into(), retry_after: None },
            Failure::Auth => {
                LlmError::Auth { provider, status: 401, message: "scripted".into(), env: "SCRIPTED_KEY".into() }
            }
            Failure::Server => {
                LlmError::Server { provider, status: 500, message: "scripted".into(), retry_after: None }
            }
            Failure::StreamCut => {
                LlmError::StreamInterrupted { provider, received_chars, message: "scripted disconnect".into() }
            }
        }
    }

    fn response(&self, req: &LlmRequest, reply: &Reply, content: String, started: Instant) -> LlmResponse {
        let usage = match reply.usage {
            Some((input_tokens, output_tokens)) => Usage { input_tokens, output_tokens, ..Usage::default() },
            None => Usage::estimate(req.prompt_chars(), content.len()),
        };
        LlmResponse {
            content,
            provider: self.provider.clone(),
            model: req.model.clone().unwrap_or_else(|| self.model.clone()),
            usage,
            finish_reason: "stop".into(),
            latency_ms: elapsed_ms(started),
        }
    }

    /// Waits out the reply's delay (forever for `hang`), honouring cancellation and the request timeout.
    async fn wait(&self, req: &LlmRequest, reply: &Reply, cancel: &CancellationToken) -> Result<(), LlmError> {
        let timeout = timeout(req);
        let delay = if matches!(reply.body, Body::Hang) { timeout } else { reply.delay };
        let timed_out = delay >= timeout;
        tokio::select! {
            _ = cancel.cancelled() => Err(LlmError::Cancelled),
            _ = tokio::time::sleep(delay.min(timeout)) => {
                if timed_out { Err(LlmError::Timeout { provider: self.provider.clone(), after: timeout }) } else { Ok(()) }
            }
        }
    }
}

/// The request's timeout, or the layer's default when it sets none.
fn timeout(req: &LlmRequest) -> Duration {
    req.timeout_or(LlmRequest::DEFAULT_TIMEOUT)
}

impl LlmClient for ScriptedLlm {
    fn provider(&self) -> &str {
        &self.provider
    }

    fn default_model(&self) -> &str {
        &self.model
    }

    fn complete<'a>(
        &'a self,
        req: &'a LlmRequest,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        async move {
            let started = Instant::now();
            let reply = self.take(req)?;
            self.wait(req, &reply, cancel).await?;
            let content = match &reply.body {
                Body::Text(text) => text.clone(),
                Body::Stream(chunks) => chunks.concat(),
                Body::Fail(failure) => return Err(self.failure(*failure, req, 0)),
                Body::Hang => return Err(LlmError::Timeout { provider: self.provider.clone(), after: timeout(req) }),
            };
            Ok(self.response(req, &reply, content, started))
        }
        .boxed()
    }

    fn stream<'a>(
        &'a self,
        req: &'a LlmRequest,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<TextStream, LlmError>> {
        async move {
            let started = Instant::now();
            let reply = self.take(req)?;
            self.wait(req, &reply, cancel).await?;
            let (chunks, tail) = match &reply.body {
                Body::Text(text) => (vec![text.clone()], None),
                Body::Stream(chunks) => (chunks.clone(), None),
                Body::Fail(Failure::StreamCut) => {
                    let sent = reply.partial.concat().chars().count();
                    (reply.partial.clone(), Some(self.failure(Failure::StreamCut, req, sent)))
                }
                Body::Fail(failure) => return Err(self.failure(*failure, req, 0)),
                Body::Hang => return Err(LlmError::Timeout { provider: self.provider.clone(), after: timeout(req) }),
            };
            let mut events: Vec<Result<StreamEvent, LlmError>> =
                chunks.iter().map(|c| Ok(StreamEvent::Delta(c.clone()))).collect();
            match tail {
                Some(error) => events.push(Err(error)),
                None => events.push(Ok(StreamEvent::Done(self.response(req, &reply, chunks.concat(), started)))),
            }
            Ok(futures_util::stream::iter(events).boxed())
        }
        .boxed()
    }
}
