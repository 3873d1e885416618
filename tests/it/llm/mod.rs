//! Integration tests of the LLM layer: every provider over real HTTP against fake servers on 127.0.0.1, the
//! command provider with a shell script, the budget gate, the scripted client, secret hygiene, and the
//! limits a misbehaving server cannot push the client past.

mod budget;
mod check;
mod limits;
mod pipe;
mod providers;
mod scripted;
mod secrets;
pub mod server;
pub mod wire;

use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use aurora::llm::{
    JsonSchema, Llm, LlmError, LlmRequest, LlmResponse, RetryPolicy, StreamEvent, StructuredOutput, TextStream,
};

use wire::Wire;

/// The fake API key; tests assert it never shows up in logs or errors.
pub const KEY: &str = "sk-test-SECRET-4f9d2a7c1b";
/// The variable name the settings point at; read through [`env`], never the process environment.
pub const KEY_ENV: &str = "AURORA_TEST_LLM_KEY";

pub fn env(name: &str) -> Option<String> {
    (name == KEY_ENV).then(|| KEY.to_owned())
}

/// Three retries, millisecond backoff, no jitter: waits in tests come from the server's `Retry-After`.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
        max_total: Duration::from_secs(5),
        jitter: false,
    }
}

/// The request every provider test sends.
pub fn request() -> LlmRequest {
    LlmRequest::new("test.hello", "You are terse.", "Say hello")
        .with_max_tokens(100)
        .with_temperature(0.2)
        .with_timeout(Duration::from_secs(5))
}

/// The configured client for `wire` at `url`, with [`fast_retry`].
pub fn client(wire: Wire, url: &str) -> Llm {
    Llm::from_config(&wire.config(url), &env).expect("valid test config").with_retry(fast_retry())
}

/// The structured output used by the JSON tests.
#[derive(Debug, Deserialize, PartialEq)]
pub struct Plan {
    pub goal: String,
    pub steps: Vec<String>,
}

impl StructuredOutput for Plan {
    fn schema() -> JsonSchema {
        JsonSchema {
            name: "plan".into(),
            schema: json!({
                "type": "object",
                "properties": {"goal": {"type": "string"}, "steps": {"type": "array", "items": {"type": "string"}}},
                "required": ["goal", "steps"],
            }),
        }
    }

    fn validate(&self) -> Vec<String> {
        if self.steps.is_empty() { vec!["steps: must list at least one step".into()] } else { Vec::new() }
    }
}

/// Reads a stream to its end: the deltas, then the final response or the error that ended it.
pub async fn drain(mut stream: TextStream) -> (Vec<String>, Result<LlmResponse, LlmError>) {
    let mut deltas = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(StreamEvent::Delta(d)) => deltas.push(d),
            Ok(StreamEvent::Done(response)) => return (deltas, Ok(response)),
            Err(e) => return (deltas, Err(e)),
        }
    }
    (deltas, Err(LlmError::Script("the stream ended without Done or an error".into())))
}
