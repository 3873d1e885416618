//! The typed failures a SOAR run returns instead of an envelope (spec/soar.md §16). Everything else,
//! model failures included, is an envelope with its outcome and phase records.

use crate::llm::{BudgetScope, LlmError};

#[derive(Debug, thiserror::Error)]
pub enum SoarError {
    /// The caller's token was cancelled: `$/cancelRequest`, a progress cancel, or shutdown.
    #[error("cancelled")]
    Cancelled,
    /// A spend cap would be passed; checked before the first paid call and before every later one.
    #[error(
        "{scope} exceeded: spent {consumed_usd:.4} USD of {limit_usd:.2} USD, this query needs about {estimated_usd:.4} USD more"
    )]
    BudgetExceeded { scope: BudgetScope, consumed_usd: f64, limit_usd: f64, estimated_usd: f64 },
    /// The request itself is unusable (empty question, selection outside the file, …).
    #[error("{0}")]
    InvalidRequest(String),
}

impl SoarError {
    /// The budget refusal of the LLM layer as a SOAR error; `None` for other LLM errors.
    pub fn from_budget(e: &LlmError) -> Option<SoarError> {
        match e {
            LlmError::BudgetExceeded { scope, consumed_usd, limit_usd, estimated_usd } => {
                Some(SoarError::BudgetExceeded {
                    scope: *scope,
                    consumed_usd: *consumed_usd,
                    limit_usd: *limit_usd,
                    estimated_usd: *estimated_usd,
                })
            }
            LlmError::Cancelled => Some(SoarError::Cancelled),
            _ => None,
        }
    }
}

/// How a failed model call is reported to a front-end (spec/lsp.md §4.7): the provider cannot be used
/// at all (key, auth, model, connection) or it failed after retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LlmFailureKind {
    Unavailable,
    RequestFailed,
    InvalidOutput,
}

/// A model failure that ended a run, kept in the envelope.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LlmFailure {
    pub kind: LlmFailureKind,
    pub role: String,
    pub message: String,
}

impl LlmFailure {
    pub fn of(role: &str, e: &LlmError) -> LlmFailure {
        let root = match e {
            LlmError::RetriesExhausted { last, .. } => last.as_ref(),
            other => other,
        };
        let kind = match root {
            LlmError::NotConfigured
            | LlmError::InvalidConfig { .. }
            | LlmError::MissingApiKey { .. }
            | LlmError::Auth { .. }
            | LlmError::ModelNotFound { .. }
            | LlmError::Connect { .. }
            | LlmError::Redirected { .. }
            | LlmError::Command { .. } => LlmFailureKind::Unavailable,
            LlmError::InvalidModelOutput { .. } => LlmFailureKind::InvalidOutput,
            _ => LlmFailureKind::RequestFailed,
        };
        LlmFailure { kind, role: role.to_owned(), message: e.to_string() }
    }
}
