//! `LlmError`, the typed failures of the LLM layer, and the secret key type that keeps API keys out of them.

use std::fmt;
use std::time::Duration;

/// Which limit a refused call would have passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetScope {
    /// `budget.monthlyUsd`, over the current UTC calendar month.
    Monthly,
    /// `budget.perQueryUsd`, over the calls of one query.
    Query,
}

impl fmt::Display for BudgetScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BudgetScope::Monthly => "monthly budget (budget.monthlyUsd)",
            BudgetScope::Query => "per-query budget (budget.perQueryUsd)",
        })
    }
}

/// Every failure of an LLM call. Messages say what happened, where, and what the user can do; they never
/// contain an API key (server messages are passed through [`SecretKey::redact`]).
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the llm settings are not usable: {}", problems.join("; "))]
    InvalidConfig { problems: Vec<String> },
    #[error("no LLM provider is configured; set llm.provider to anthropic, openai, ollama or command")]
    NotConfigured,
    #[error("llm.apiKeyEnv names {env}, which is not set; set it or use provider \"ollama\"")]
    MissingApiKey { provider: String, env: String },
    #[error("{provider} rejected the API key ({status}): {message}; check the key in ${env}")]
    Auth { provider: String, status: u16, message: String, env: String },
    #[error("model '{model}' not found at {base_url}: {message}; check llm.model")]
    ModelNotFound { provider: String, model: String, base_url: String, message: String },
    #[error("{provider} refused the request ({status}): {message}")]
    BadRequest { provider: String, status: u16, message: String },
    #[error("{provider}: rate limited (429): {message}")]
    RateLimited { provider: String, message: String, retry_after: Option<Duration> },
    #[error("{provider}: server error ({status}): {message}")]
    Server { provider: String, status: u16, message: String, retry_after: Option<Duration> },
    #[error("{provider}: overloaded: {message}")]
    Overloaded { provider: String, message: String },
    #[error("cannot reach {provider} at {base_url}: {message}; is the server running and llm.baseUrl right?")]
    Connect { provider: String, base_url: String, message: String },
    #[error("{provider}: no complete answer within {} ms; raise llm.timeouts or retry later", after.as_millis())]
    Timeout { provider: String, after: Duration },
    #[error("{provider}: the response stream broke after {received_chars} characters: {message}")]
    StreamInterrupted { provider: String, received_chars: usize, message: String },
    #[error("{provider}: unexpected response: {message}")]
    InvalidResponse { provider: String, message: String },
    #[error(
        "{provider}: the server answered {status} with a redirect to {location}; redirects are not followed, so the API key never goes to another address: set llm.baseUrl to the final URL"
    )]
    Redirected { provider: String, status: u16, location: String },
    #[error("{provider}: {what} is larger than the {} KiB allowed; is llm.baseUrl the provider's API?", limit_bytes / 1024)]
    ResponseTooLarge { provider: String, what: &'static str, limit_bytes: usize },
    #[error("{last}; retried {retries} times over {:.1} s", elapsed.as_secs_f64())]
    RetriesExhausted { retries: u32, elapsed: Duration, last: Box<LlmError> },
    #[error("the model's reply for {role} is not valid JSON for its schema, even after a repair: {}", errors.join("; "))]
    InvalidModelOutput { role: String, errors: Vec<String> },
    #[error(
        "{scope} exceeded: spent {consumed_usd:.4} USD of {limit_usd:.2} USD, this call needs about {estimated_usd:.4} USD"
    )]
    BudgetExceeded { scope: BudgetScope, consumed_usd: f64, limit_usd: f64, estimated_usd: f64 },
    #[error("cannot read LLM spend from the usage log: {0}; the call was not made")]
    UsageLog(String),
    #[error("the LLM call was cancelled")]
    Cancelled,
    #[error("llm.command {program}: {message}")]
    Command { program: String, message: String },
    #[error("scripted LLM: {0}")]
    Script(String),
}

impl LlmError {
    /// Whether a new attempt may succeed: timeouts, connection errors, 429, 5xx and "overloaded".
    /// Auth errors, 4xx, unknown models, missing keys and budget refusals are permanent.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. }
                | LlmError::Server { .. }
                | LlmError::Overloaded { .. }
                | LlmError::Connect { .. }
                | LlmError::Timeout { .. }
        )
    }

    /// The server's requested wait (`Retry-After`, `retry-after-ms`), if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimited { retry_after, .. } | LlmError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The same error with `redact` applied to every text that may have come from a server or a program
    /// (messages, locations, stderr), so that one call at each boundary keeps a key out of all of them.
    pub fn redacted(self, redact: &dyn Fn(&str) -> String) -> LlmError {
        let r = |s: String| redact(&s);
        match self {
            LlmError::InvalidConfig { problems } => {
                LlmError::InvalidConfig { problems: problems.into_iter().map(r).collect() }
            }
            LlmError::Auth { provider, status, message, env } => {
                LlmError::Auth { provider, status, message: r(message), env }
            }
            LlmError::ModelNotFound { provider, model, base_url, message } => {
                LlmError::ModelNotFound { provider, model, base_url, message: r(message) }
            }
            LlmError::BadRequest { provider, status, message } => {
                LlmError::BadRequest { provider, status, message: r(message) }
            }
            LlmError::RateLimited { provider, message, retry_after } => {
                LlmError::RateLimited { provider, message: r(message), retry_after }
            }
            LlmError::Server { provider, status, message, retry_after } => {
                LlmError::Server { provider, status, message: r(message), retry_after }
            }
            LlmError::Overloaded { provider, message } => LlmError::Overloaded { provider, message: r(message) },
            LlmError::Connect { provider, base_url, message } => {
                LlmError::Connect { provider, base_url, message: r(message) }
            }
            LlmError::StreamInterrupted { provider, received_chars, message } => {
                LlmError::StreamInterrupted { provider, received_chars, message: r(message) }
            }
            LlmError::InvalidResponse { provider, message } => {
                LlmError::InvalidResponse { provider, message: r(message) }
            }
            LlmError::Redirected { provider, status, location } => {
                LlmError::Redirected { provider, status, location: r(location) }
            }
            LlmError::RetriesExhausted { retries, elapsed, last } => {
                LlmError::RetriesExhausted { retries, elapsed, last: Box::new(last.redacted(redact)) }
            }
            LlmError::InvalidModelOutput { role, errors } => {
                LlmError::InvalidModelOutput { role, errors: errors.into_iter().map(r).collect() }
            }
            LlmError::UsageLog(message) => LlmError::UsageLog(r(message)),
            LlmError::Command { program, message } => LlmError::Command { program, message: r(message) },
            LlmError::Script(message) => LlmError::Script(r(message)),
            other @ (LlmError::NotConfigured
            | LlmError::MissingApiKey { .. }
            | LlmError::Timeout { .. }
            | LlmError::ResponseTooLarge { .. }
            | LlmError::BudgetExceeded { .. }
            | LlmError::Cancelled) => other,
        }
    }

    /// A short stable name for usage records and logs (`ok` is used for success).
    pub fn status_name(&self) -> &'static str {
        match self {
            LlmError::InvalidConfig { .. } => "invalid_config",
            LlmError::NotConfigured => "not_configured",
            LlmError::MissingApiKey { .. } => "missing_key",
            LlmError::Auth { .. } => "auth",
            LlmError::ModelNotFound { .. } => "model_not_found",
            LlmError::BadRequest { .. } => "bad_request",
            LlmError::RateLimited { .. } => "rate_limited",
            LlmError::Server { .. } => "server_error",
            LlmError::Overloaded { .. } => "overloaded",
            LlmError::Connect { .. } => "connect",
            LlmError::Timeout { .. } => "timeout",
            LlmError::StreamInterrupted { .. } => "stream_interrupted",
            LlmError::InvalidResponse { .. } => "invalid_response",
            LlmError::Redirected { .. } => "redirected",
            LlmError::ResponseTooLarge { .. } => "too_large",
            LlmError::RetriesExhausted { last, .. } => last.status_name(),
            LlmError::InvalidModelOutput { .. } => "invalid_output",
            LlmError::BudgetExceeded { .. } => "budget_exceeded",
            LlmError::UsageLog(_) => "usage_log",
            LlmError::Cancelled => "cancelled",
            LlmError::Command { .. } => "command",
            LlmError::Script(_) => "script",
        }
    }
}

/// An API key read from the environment. `Debug` and `Display` never show it; only the HTTP layer reads it
/// through [`SecretKey::expose`], to set a header.
#[derive(Clone)]
pub struct SecretKey(String);

impl SecretKey {
    pub fn new(key: String) -> SecretKey {
        SecretKey(key)
    }

    /// The key itself, for an `Authorization`/`x-api-key` header and nothing else.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key replaced, for server messages that may echo it.
    pub fn redact(&self, text: &str) -> String {
        if self.0.len() < 4 { text.to_owned() } else { text.replace(&self.0, "[redacted]") }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}
