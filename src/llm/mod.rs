//! The LLM layer: one `LlmClient` trait, its providers, and the retry, cost, budget and JSON rules around them.
//!
//! Layers, outermost first: [`Llm`] (budget gate, transport retries, pricing, usage records, cancellation)
//! wraps one provider ([`anthropic`], [`openai`], [`ollama`], [`pipe`], or [`scripted`] in tests), each of
//! which implements [`LlmClient`] too. Structured output goes through [`json`], which asks the provider for
//! native JSON where it has it, extracts leniently otherwise, and makes one repair call. This module knows no
//! chunk, no SOAR phase and no SQL: usage goes to a [`budget::UsageLog`] the store implements.

pub mod anthropic;
pub mod budget;
pub mod client;
pub mod config;
pub mod cost;
pub mod error;
pub mod http;
pub mod json;
pub mod ollama;
pub mod openai;
pub mod pipe;
pub mod retry;
pub mod scripted;

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tokio_util::sync::CancellationToken;

pub use budget::{
    Budget, BudgetStatus, BudgetWarning, MemoryUsageLog, Reservation, UsageLog, UsageLogError, UsageRecord,
};
pub use client::{CheckReport, Llm, check};
pub use config::{BudgetConfig, ConfigProblem, LlmConfig, LlmTimeouts, ProviderKind, RoleTemperatures};
pub use cost::{Price, PriceTable};
pub use error::{BudgetScope, LlmError, SecretKey};
pub use json::{JsonReply, StructuredOutput};
pub use retry::RetryPolicy;
pub use scripted::{Failure, Reply, ScriptedLlm};

/// The purpose of a call, e.g. `soar.decompose` or `agent.code-analyzer`. Scripted replies, usage records and
/// per-role parameters are keyed by it; prompt text never is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleId(pub Cow<'static, str>);

impl RoleId {
    pub const fn new(id: &'static str) -> RoleId {
        RoleId(Cow::Borrowed(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&'static str> for RoleId {
    fn from(id: &'static str) -> RoleId {
        RoleId::new(id)
    }
}

impl From<String> for RoleId {
    /// For roles built at run time, e.g. `agent.<agent id>`.
    fn from(id: String) -> RoleId {
        RoleId(Cow::Owned(id))
    }
}

/// The query a call belongs to, for the per-query budget and usage records.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueryId(pub String);

/// Who wrote a message of the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaker {
    User,
    Assistant,
}

impl Speaker {
    /// The wire name shared by the Anthropic, OpenAI and Ollama formats.
    pub fn wire(self) -> &'static str {
        match self {
            Speaker::User => "user",
            Speaker::Assistant => "assistant",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub speaker: Speaker,
    pub text: String,
}

impl Message {
    pub fn user(text: impl Into<String>) -> Message {
        Message { speaker: Speaker::User, text: text.into() }
    }

    pub fn assistant(text: impl Into<String>) -> Message {
        Message { speaker: Speaker::Assistant, text: text.into() }
    }
}

/// A JSON Schema for structured output; `name` is what providers call the schema or the forced tool.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonSchema {
    pub name: String,
    pub schema: serde_json::Value,
}

/// What the caller wants back.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputKind {
    Text,
    /// JSON for this schema: native structured output where the provider has it.
    Json(JsonSchema),
}

/// One call. Build with [`LlmRequest::new`] and the `with_*` methods.
#[derive(Clone, Debug)]
pub struct LlmRequest {
    pub role: RoleId,
    /// Version of the prompt file used, recorded with the usage.
    pub prompt_version: u32,
    /// 1-based; increases on phase retries.
    pub attempt: u8,
    /// True for a JSON-repair follow-up.
    pub repair: bool,
    /// `None` uses the provider's configured model.
    pub model: Option<String>,
    pub system: String,
    /// The conversation, oldest first; usually one user message.
    pub messages: Vec<Message>,
    pub temperature: f64,
    pub max_tokens: u32,
    pub stop: Vec<String>,
    pub output: OutputKind,
    /// Total time for one attempt, streaming included; each transport retry gets its own. Zero, as
    /// [`LlmRequest::new`] leaves it, means the client's default: `llm.timeouts.requestMs` for clients built
    /// from the settings, [`LlmRequest::DEFAULT_TIMEOUT`] otherwise (see [`LlmRequest::timeout_or`]).
    pub timeout: Duration,
    pub query_id: Option<QueryId>,
    pub phase: Option<String>,
}

impl LlmRequest {
    /// The timeout of a request that sets none, sent through a client that has no configured default.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// A text request with the layer's defaults: temperature 0.2, 1024 tokens, and the client's default
    /// timeout.
    pub fn new(role: impl Into<RoleId>, system: impl Into<String>, user: impl Into<String>) -> LlmRequest {
        LlmRequest {
            role: role.into(),
            prompt_version: 1,
            attempt: 1,
            repair: false,
            model: None,
            system: system.into(),
            messages: vec![Message::user(user)],
            temperature: 0.2,
            max_tokens: 1024,
            stop: Vec::new(),
            output: OutputKind::Text,
            timeout: Duration::ZERO,
            query_id: None,
            phase: None,
        }
    }

    pub fn with_model(mut self, model: impl Into<String>) -> LlmRequest {
        self.model = Some(model.into());
        self
    }

    pub fn with_max_tokens(mut self, max_tokens: u32) -> LlmRequest {
        self.max_tokens = max_tokens;
        self
    }

    pub fn with_temperature(mut self, temperature: f64) -> LlmRequest {
        self.temperature = temperature;
        self
    }

    /// Zero means the client's default.
    pub fn with_timeout(mut self, timeout: Duration) -> LlmRequest {
        self.timeout = timeout;
        self
    }

    /// The time one attempt may take: `timeout`, or `default` when the request set none.
    pub fn timeout_or(&self, default: Duration) -> Duration {
        if self.timeout.is_zero() { default } else { self.timeout }
    }

    pub fn with_stop(mut self, stop: Vec<String>) -> LlmRequest {
        self.stop = stop;
        self
    }

    pub fn with_output(mut self, output: OutputKind) -> LlmRequest {
        self.output = output;
        self
    }

    pub fn with_query(mut self, query_id: QueryId, phase: impl Into<String>) -> LlmRequest {
        self.query_id = Some(query_id);
        self.phase = Some(phase.into());
        self
    }

    /// Characters of prompt text, for estimates where no tokenizer is at hand.
    pub fn prompt_chars(&self) -> usize {
        self.system.len() + self.messages.iter().map(|m| m.text.len()).sum::<usize>()
    }
}

/// Tokens used by one call and what they cost. Providers fill the tokens; [`Llm`] fills the price.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// True when the provider reported no counts and they were estimated from text length.
    pub estimated: bool,
    pub cost_usd: f64,
    /// False when the model is not in the price table (cost then follows [`PriceTable`]'s fallback).
    pub price_known: bool,
    /// Set by [`Llm`] when the call went ahead with the month's spend at or past `budget.softLimitPct`;
    /// callers show it to the user. `None` without a budget, under the soft limit, and for free calls.
    pub budget_warning: Option<BudgetWarning>,
}

impl Usage {
    /// Token counts estimated from text, about four characters per token, for providers that report none.
    pub fn estimate(prompt_chars: usize, reply_chars: usize) -> Usage {
        let tokens = |chars: usize| u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX);
        Usage {
            input_tokens: tokens(prompt_chars),
            output_tokens: tokens(reply_chars),
            estimated: true,
            ..Usage::default()
        }
    }
}

/// The answer to one call, JSON calls included.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmResponse {
    /// The text, or for structured output the JSON text.
    pub content: String,
    pub provider: String,
    pub model: String,
    pub usage: Usage,
    pub finish_reason: String,
    /// Wall time of the successful attempt, from sending to the last byte.
    pub latency_ms: u64,
}

/// One item of a streamed reply: text deltas in order, then exactly one `Done` with the whole response.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    Delta(String),
    Done(LlmResponse),
}

/// A streamed reply. It ends after `Done` or after the first error.
pub type TextStream = BoxStream<'static, Result<StreamEvent, LlmError>>;

/// A language model, as SOAR and the code actions see it. Dropping a returned future or stream aborts the
/// call; cancelling `cancel` ends it with [`LlmError::Cancelled`].
pub trait LlmClient: Send + Sync {
    /// Provider name as used in prices and usage records: `anthropic`, `openai`, `ollama`, `command`,
    /// `scripted`.
    fn provider(&self) -> &str;

    /// The model used when a request names none.
    fn default_model(&self) -> &str;

    /// One complete reply.
    fn complete<'a>(
        &'a self,
        req: &'a LlmRequest,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>>;

    /// A streamed reply; the future resolves once the provider has accepted the request.
    fn stream<'a>(
        &'a self,
        req: &'a LlmRequest,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<TextStream, LlmError>>;
}

impl dyn LlmClient {
    /// A typed, validated JSON reply, with one repair call on a parse or validation failure
    /// (see [`json::complete_json`]).
    pub async fn json<T: StructuredOutput>(
        &self,
        req: LlmRequest,
        cancel: &CancellationToken,
    ) -> Result<JsonReply<T>, LlmError> {
        json::complete_json(self, req, cancel, 1).await
    }
}
