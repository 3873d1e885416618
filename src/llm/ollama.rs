//! Ollama's `POST /api/chat`: plain, NDJSON-streamed, and JSON through `format` with the schema. Local, so
//! free, and needs no key.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::llm::anthropic::as_u32;
use crate::llm::http::{self, Attempt, Decoder, Endpoint, Frame, Framing, KeyHeader};
use crate::llm::{LlmClient, LlmError, LlmRequest, LlmResponse, OutputKind, TextStream, Usage};

pub const DEFAULT_BASE_URL: &str = "http://localhost:11434";

pub struct Ollama {
    endpoint: Endpoint,
}

impl Ollama {
    pub fn new(endpoint: Endpoint) -> Ollama {
        Ollama { endpoint }
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
        let mut options = json!({"temperature": req.temperature, "num_predict": req.max_tokens});
        if !req.stop.is_empty() {
            options["stop"] = json!(req.stop);
        }
        // Ollama streams unless told otherwise, so `stream` is always sent.
        let mut body = json!({"model": self.model(req), "messages": messages, "stream": stream, "options": options});
        if let OutputKind::Json(schema) = &req.output {
            body["format"] = schema.schema.clone();
        }
        body
    }

    fn request(&self, body: &Value) -> Result<reqwest::RequestBuilder, LlmError> {
        let builder = self.endpoint.client.post(self.endpoint.url("/api/chat")).json(body);
        // The key is sent only when one is configured, e.g. for an Ollama behind an authenticating proxy.
        self.endpoint.with_key(builder, KeyHeader::Bearer)
    }

    async fn complete_inner(&self, req: &LlmRequest, cancel: &CancellationToken) -> Result<LlmResponse, LlmError> {
        let attempt = Attempt::new(self.endpoint.timeout(req), cancel);
        tracing::debug!(model = self.model(req), role = %req.role, "ollama request");
        let body = self.body(req, false);
        tracing::trace!(body = %body, "ollama request body");
        let response = self.endpoint.send(self.request(&body)?, self.model(req), &attempt).await?;
        let value = self.endpoint.read_json(response, &attempt).await?;
        tracing::trace!(body = %value, "ollama response body");
        if let Some(error) = value["error"].as_str() {
            return Err(LlmError::InvalidResponse {
                provider: self.endpoint.provider.into(),
                message: error.to_owned(),
            });
        }
        Ok(LlmResponse {
            content: value["message"]["content"].as_str().unwrap_or_default().to_owned(),
            provider: self.endpoint.provider.into(),
            model: value["model"].as_str().unwrap_or(self.model(req)).to_owned(),
            usage: Usage {
                input_tokens: as_u32(&value["prompt_eval_count"]),
                output_tokens: as_u32(&value["eval_count"]),
                ..Usage::default()
            },
            finish_reason: value["done_reason"].as_str().unwrap_or_default().to_owned(),
            latency_ms: http::elapsed_ms(attempt.started),
        })
    }

    async fn stream_inner(&self, req: &LlmRequest, cancel: &CancellationToken) -> Result<TextStream, LlmError> {
        let attempt = Attempt::new(self.endpoint.timeout(req), cancel);
        tracing::debug!(model = self.model(req), role = %req.role, "ollama streamed request");
        let body = self.body(req, true);
        let response = self.endpoint.send(self.request(&body)?, self.model(req), &attempt).await?;
        let decoder = LineDecoder { provider: self.endpoint.provider, ..LineDecoder::default() };
        Ok(http::decode_stream(&self.endpoint, response, Framing::Ndjson, decoder, attempt))
    }
}

impl LlmClient for Ollama {
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

/// One JSON object per line; the last has `done: true` and the token counts.
#[derive(Default)]
struct LineDecoder {
    provider: &'static str,
    model: String,
    usage: Usage,
    done_reason: String,
    done: bool,
}

impl Decoder for LineDecoder {
    fn frame(&mut self, frame: &Frame) -> Result<Option<String>, LlmError> {
        let data: Value = serde_json::from_str(&frame.data).map_err(|e| LlmError::InvalidResponse {
            provider: self.provider.into(),
            message: format!("bad NDJSON line: {e}"),
        })?;
        if let Some(error) = data["error"].as_str() {
            return Err(LlmError::InvalidResponse { provider: self.provider.into(), message: error.to_owned() });
        }
        if let Some(model) = data["model"].as_str() {
            self.model = model.to_owned();
        }
        if data["done"].as_bool() == Some(true) {
            self.done = true;
            self.usage.input_tokens = as_u32(&data["prompt_eval_count"]);
            self.usage.output_tokens = as_u32(&data["eval_count"]);
            self.done_reason = data["done_reason"].as_str().unwrap_or("stop").to_owned();
        }
        Ok(data["message"]["content"].as_str().map(str::to_owned))
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn finish(&mut self) -> (String, Usage, String) {
        (std::mem::take(&mut self.model), std::mem::take(&mut self.usage), std::mem::take(&mut self.done_reason))
    }
}
