//! The Anthropic Messages API (`POST /v1/messages`): plain, SSE-streamed, and JSON through a forced tool call.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::llm::http::{self, Attempt, Decoder, Endpoint, Frame, Framing, KeyHeader};
use crate::llm::{LlmClient, LlmError, LlmRequest, LlmResponse, OutputKind, TextStream, Usage};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub const DEFAULT_KEY_ENV: &str = "ANTHROPIC_API_KEY";
/// The API version header every request carries.
pub const API_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    endpoint: Endpoint,
}

impl Anthropic {
    pub fn new(endpoint: Endpoint) -> Anthropic {
        Anthropic { endpoint }
    }

    fn body(&self, req: &LlmRequest, stream: bool) -> Value {
        let messages: Vec<Value> =
            req.messages.iter().map(|m| json!({"role": m.speaker.wire(), "content": m.text})).collect();
        let mut body = json!({
            "model": self.model(req),
            "max_tokens": req.max_tokens,
            "messages": messages,
            "temperature": req.temperature,
        });
        if !req.system.is_empty() {
            body["system"] = json!(req.system);
        }
        if !req.stop.is_empty() {
            body["stop_sequences"] = json!(req.stop);
        }
        if stream {
            body["stream"] = json!(true);
        }
        if let OutputKind::Json(schema) = &req.output {
            // Structured output: one tool whose input is the schema, and the model is made to call it.
            body["tools"] = json!([{
                "name": schema.name,
                "description": "Return the answer as this tool's input.",
                "input_schema": schema.schema,
            }]);
            body["tool_choice"] = json!({"type": "tool", "name": schema.name});
        }
        body
    }

    fn model<'a>(&'a self, req: &'a LlmRequest) -> &'a str {
        req.model.as_deref().unwrap_or(&self.endpoint.default_model)
    }

    fn request(&self, body: &Value) -> Result<reqwest::RequestBuilder, LlmError> {
        let builder = self
            .endpoint
            .client
            .post(self.endpoint.url("/v1/messages"))
            .header("anthropic-version", API_VERSION)
            .json(body);
        self.endpoint.with_key(builder, KeyHeader::ApiKey)
    }

    async fn complete_inner(&self, req: &LlmRequest, cancel: &CancellationToken) -> Result<LlmResponse, LlmError> {
        let attempt = Attempt::new(self.endpoint.timeout(req), cancel);
        tracing::debug!(model = self.model(req), role = %req.role, "anthropic request");
        let body = self.body(req, false);
        tracing::trace!(body = %body, "anthropic request body");
        let response = self.endpoint.send(self.request(&body)?, self.model(req), &attempt).await?;
        let value = self.endpoint.read_json(response, &attempt).await?;
        tracing::trace!(body = %value, "anthropic response body");
        let mut content = String::new();
        for block in value["content"].as_array().into_iter().flatten() {
            match block["type"].as_str() {
                Some("text") => content.push_str(block["text"].as_str().unwrap_or_default()),
                Some("tool_use") => content.push_str(&block["input"].to_string()),
                _ => {}
            }
        }
        Ok(LlmResponse {
            content,
            provider: self.endpoint.provider.into(),
            model: value["model"].as_str().unwrap_or(self.model(req)).to_owned(),
            usage: Usage {
                input_tokens: as_u32(&value["usage"]["input_tokens"]),
                output_tokens: as_u32(&value["usage"]["output_tokens"]),
                ..Usage::default()
            },
            finish_reason: value["stop_reason"].as_str().unwrap_or_default().to_owned(),
            latency_ms: http::elapsed_ms(attempt.started),
        })
    }

    async fn stream_inner(&self, req: &LlmRequest, cancel: &CancellationToken) -> Result<TextStream, LlmError> {
        let attempt = Attempt::new(self.endpoint.timeout(req), cancel);
        tracing::debug!(model = self.model(req), role = %req.role, "anthropic streamed request");
        let body = self.body(req, true);
        let response = self.endpoint.send(self.request(&body)?, self.model(req), &attempt).await?;
        let decoder = SseDecoder { provider: self.endpoint.provider, ..SseDecoder::default() };
        Ok(http::decode_stream(&self.endpoint, response, Framing::Sse, decoder, attempt))
    }
}

impl LlmClient for Anthropic {
    fn provider(&self) -> &str {
        self.endpoint.provider
    }

    fn default_model(&self) -> &str {
        &self.endpoint.default_model
    }

    fn complete<'a>(
        &'a self,
        req: &'a LlmRequest,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        self.complete_inner(req, cancel).map(|r| r.map_err(|e| self.endpoint.redact_error(e))).boxed()
    }

    fn stream<'a>(
        &'a self,
        req: &'a LlmRequest,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<TextStream, LlmError>> {
        // Errors inside the stream are redacted by `http::decode_stream`.
        self.stream_inner(req, cancel).map(|r| r.map_err(|e| self.endpoint.redact_error(e))).boxed()
    }
}

pub(crate) fn as_u32(v: &Value) -> u32 {
    v.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

/// The Messages streaming events: `message_start`, `content_block_*`, `message_delta`, `message_stop`,
/// `ping` and `error`.
#[derive(Default)]
struct SseDecoder {
    provider: &'static str,
    model: String,
    usage: Usage,
    stop_reason: String,
    done: bool,
}

impl Decoder for SseDecoder {
    fn frame(&mut self, frame: &Frame) -> Result<Option<String>, LlmError> {
        let data: Value = serde_json::from_str(&frame.data).map_err(|e| LlmError::InvalidResponse {
            provider: self.provider.into(),
            message: format!("bad SSE data for event '{}': {e}", frame.event),
        })?;
        match data["type"].as_str().unwrap_or(&frame.event) {
            "message_start" => {
                self.model = data["message"]["model"].as_str().unwrap_or_default().to_owned();
                self.usage.input_tokens = as_u32(&data["message"]["usage"]["input_tokens"]);
                self.usage.output_tokens = as_u32(&data["message"]["usage"]["output_tokens"]);
            }
            "content_block_delta" => {
                let delta = &data["delta"];
                let text = match delta["type"].as_str() {
                    Some("text_delta") => delta["text"].as_str(),
                    Some("input_json_delta") => delta["partial_json"].as_str(),
                    _ => None,
                };
                return Ok(text.map(str::to_owned));
            }
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    self.stop_reason = reason.to_owned();
                }
                if let Some(out) = data["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = u32::try_from(out).unwrap_or(u32::MAX);
                }
            }
            "message_stop" => self.done = true,
            "error" => {
                let kind = data["error"]["type"].as_str().unwrap_or_default();
                let message = data["error"]["message"].as_str().unwrap_or_default().to_owned();
                return Err(if kind == "overloaded_error" {
                    LlmError::Overloaded { provider: self.provider.into(), message }
                } else {
                    LlmError::InvalidResponse { provider: self.provider.into(), message: format!("{kind}: {message}") }
                });
            }
            _ => {}
        }
        Ok(None)
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn finish(&mut self) -> (String, Usage, String) {
        (std::mem::take(&mut self.model), std::mem::take(&mut self.usage), std::mem::take(&mut self.stop_reason))
    }
}
