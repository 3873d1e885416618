//! OpenAI Chat Completions (`POST {baseUrl}/chat/completions`), for OpenAI and any compatible server (vLLM,
//! llama.cpp's server, LM Studio, OpenRouter): plain, SSE-streamed, and JSON through `response_format`.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::llm::anthropic::as_u32;
use crate::llm::http::{self, Attempt, Decoder, Endpoint, Frame, Framing, KeyHeader};
use crate::llm::{LlmClient, LlmError, LlmRequest, LlmResponse, OutputKind, TextStream, Usage};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_KEY_ENV: &str = "OPENAI_API_KEY";

pub struct OpenAi {
    endpoint: Endpoint,
}

impl OpenAi {
    pub fn new(endpoint: Endpoint) -> OpenAi {
        OpenAi { endpoint }
    }

    fn model<'a>(&'a self, req: &'a LlmRequest) -> &'a str {
        req.model.as_deref().unwrap_or(&self.endpoint.default_model)
    }

    fn body(&self, req: &LlmRequest, stream: bool) -> Value {
        let mut messages = Vec::with_capacity(req.messages.len() + 1);
        if !req.system.is_empty() {
            messages.push(json!({"role": "system", "content": req.system}));
        }
        messages.extend(req.messages.iter().map(|m| json!({"role": m.speaker.wire(), "content": m.text})));
        let model = self.model(req);
        let mut body = json!({"model": model, "messages": messages});
        // OpenAI itself wants `max_completion_tokens` (its reasoning models reject `max_tokens`); compatible
        // servers (vLLM, llama.cpp, LM Studio, OpenRouter) all read `max_tokens`.
        let tokens_key =
            if self.endpoint.base_url.starts_with(DEFAULT_BASE_URL) { "max_completion_tokens" } else { "max_tokens" };
        body[tokens_key] = json!(req.max_tokens);
        // Reasoning models accept only their default temperature.
        if !is_reasoning_model(model) {
            body["temperature"] = json!(req.temperature);
        }
        if !req.stop.is_empty() {
            body["stop"] = json!(req.stop);
        }
        if stream {
            body["stream"] = json!(true);
            // Without this, streamed replies carry no token counts.
            body["stream_options"] = json!({"include_usage": true});
        }
        if let OutputKind::Json(schema) = &req.output {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": schema.name, "schema": schema.schema, "strict": false},
            });
        }
        body
    }

    fn request(&self, body: &Value) -> Result<reqwest::RequestBuilder, LlmError> {
        let builder = self.endpoint.client.post(self.endpoint.url("/chat/completions")).json(body);
        self.endpoint.with_key(builder, KeyHeader::Bearer)
    }

    async fn complete_inner(&self, req: &LlmRequest, cancel: &CancellationToken) -> Result<LlmResponse, LlmError> {
        let attempt = Attempt::new(self.endpoint.timeout(req), cancel);
        tracing::debug!(model = self.model(req), role = %req.role, "openai request");
        let body = self.body(req, false);
        tracing::trace!(body = %body, "openai request body");
        let response = self.endpoint.send(self.request(&body)?, self.model(req), &attempt).await?;
        let value = self.endpoint.read_json(response, &attempt).await?;
        tracing::trace!(body = %value, "openai response body");
        let choice = &value["choices"][0];
        let Some(content) = choice["message"]["content"].as_str() else {
            return Err(LlmError::InvalidResponse {
                provider: self.endpoint.provider.into(),
                message: "no choices[0].message.content in the response".into(),
            });
        };
        Ok(LlmResponse {
            content: content.to_owned(),
            provider: self.endpoint.provider.into(),
            model: value["model"].as_str().unwrap_or(self.model(req)).to_owned(),
            usage: Usage {
                input_tokens: as_u32(&value["usage"]["prompt_tokens"]),
                output_tokens: as_u32(&value["usage"]["completion_tokens"]),
                ..Usage::default()
            },
            finish_reason: choice["finish_reason"].as_str().unwrap_or_default().to_owned(),
            latency_ms: http::elapsed_ms(attempt.started),
        })
    }

    async fn stream_inner(&self, req: &LlmRequest, cancel: &CancellationToken) -> Result<TextStream, LlmError> {
        let attempt = Attempt::new(self.endpoint.timeout(req), cancel);
        tracing::debug!(model = self.model(req), role = %req.role, "openai streamed request");
        let body = self.body(req, true);
        let response = self.endpoint.send(self.request(&body)?, self.model(req), &attempt).await?;
        let decoder = ChunkDecoder { provider: self.endpoint.provider, ..ChunkDecoder::default() };
        Ok(http::decode_stream(&self.endpoint, response, Framing::Sse, decoder, attempt))
    }
}

impl LlmClient for OpenAi {
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

/// OpenAI's o-series and GPT-5 families, which take no `temperature`.
fn is_reasoning_model(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model);
    ["o1", "o3", "o4", "gpt-5"].iter().any(|p| name.starts_with(p))
}

/// `data: {chat.completion.chunk}` events, then `data: [DONE]`.
#[derive(Default)]
struct ChunkDecoder {
    provider: &'static str,
    model: String,
    usage: Usage,
    finish_reason: String,
    done: bool,
}

impl Decoder for ChunkDecoder {
    fn frame(&mut self, frame: &Frame) -> Result<Option<String>, LlmError> {
        if frame.data.trim() == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        let data: Value = serde_json::from_str(&frame.data).map_err(|e| LlmError::InvalidResponse {
            provider: self.provider.into(),
            message: format!("bad SSE chunk: {e}"),
        })?;
        if let Some(error) = data.get("error") {
            let message = error["message"].as_str().unwrap_or_default().to_owned();
            return Err(LlmError::InvalidResponse { provider: self.provider.into(), message });
        }
        if let Some(model) = data["model"].as_str() {
            self.model = model.to_owned();
        }
        if data["usage"].is_object() {
            self.usage.input_tokens = as_u32(&data["usage"]["prompt_tokens"]);
            self.usage.output_tokens = as_u32(&data["usage"]["completion_tokens"]);
        }
        let choice = &data["choices"][0];
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = reason.to_owned();
        }
        Ok(choice["delta"]["content"].as_str().map(str::to_owned))
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn finish(&mut self) -> (String, Usage, String) {
        (std::mem::take(&mut self.model), std::mem::take(&mut self.usage), std::mem::take(&mut self.finish_reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::http::build_client;
    use std::time::Duration;

    fn body_for(base_url: &str, model: &str) -> Value {
        let client = build_client(Duration::from_secs(1), Duration::from_secs(1)).expect("client");
        let endpoint = Endpoint {
            provider: "openai",
            base_url: base_url.into(),
            key: None,
            key_env: String::new(),
            default_model: model.into(),
            request_timeout: Duration::from_secs(1),
            client,
        };
        OpenAi::new(endpoint).body(&LlmRequest::new("r", "s", "u"), false)
    }

    #[test]
    fn openai_itself_gets_max_completion_tokens_and_reasoning_models_no_temperature() {
        let official = body_for(DEFAULT_BASE_URL, "gpt-5-mini");
        assert_eq!(official["max_completion_tokens"], 1024);
        assert_eq!(official["max_tokens"], Value::Null);
        assert_eq!(official["temperature"], Value::Null);
        let local = body_for("http://127.0.0.1:8080/v1", "qwen2.5-coder");
        assert_eq!(local["max_tokens"], 1024);
        assert!(local["temperature"].is_number());
        assert_eq!(body_for("https://openrouter.ai/api/v1", "openai/o4-mini")["temperature"], Value::Null);
    }
}
