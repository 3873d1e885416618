//! The three HTTP wire formats as the fake server speaks them: replies, SSE/NDJSON streams and errors, and
//! the checks every request must pass (auth and version headers, body fields).

use serde_json::{Value, json};

use aurora::llm::{LlmConfig, LlmTimeouts, ProviderKind};

use super::server::{End, Recorded, Step};
use super::{KEY, KEY_ENV};

/// Tokens every fake reply reports.
pub const INPUT_TOKENS: u32 = 12;
pub const OUTPUT_TOKENS: u32 = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    Anthropic,
    OpenAi,
    Ollama,
}

impl Wire {
    pub fn model(self) -> &'static str {
        match self {
            Wire::Anthropic => "claude-sonnet-4-5",
            Wire::OpenAi => "gpt-4o-mini",
            Wire::Ollama => "llama3.2",
        }
    }

    pub fn provider(self) -> &'static str {
        match self {
            Wire::Anthropic => "anthropic",
            Wire::OpenAi => "openai",
            Wire::Ollama => "ollama",
        }
    }

    /// Settings pointing at the fake server, with the test key's variable and short timeouts.
    pub fn config(self, url: &str) -> LlmConfig {
        let (provider, base_url) = match self {
            Wire::Anthropic => (ProviderKind::Anthropic, url.to_owned()),
            Wire::OpenAi => (ProviderKind::Openai, format!("{url}/v1")),
            Wire::Ollama => (ProviderKind::Ollama, url.to_owned()),
        };
        LlmConfig {
            provider,
            model: self.model().into(),
            base_url,
            api_key_env: KEY_ENV.into(),
            timeouts: LlmTimeouts { connect_ms: 1000, request_ms: 5000, idle_ms: 2000 },
            ..LlmConfig::default()
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Wire::Anthropic => "/v1/messages",
            Wire::OpenAi => "/v1/chat/completions",
            Wire::Ollama => "/api/chat",
        }
    }

    /// A complete, non-streamed text reply.
    pub fn text(self, text: &str) -> Step {
        Step::json(
            200,
            &match self {
                Wire::Anthropic => json!({
                    "id": "msg_1", "type": "message", "role": "assistant", "model": self.model(),
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn", "stop_sequence": null,
                    "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS},
                }),
                Wire::OpenAi => json!({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": self.model(),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS, "total_tokens": 19},
                }),
                Wire::Ollama => json!({
                    "model": self.model(), "created_at": "2026-11-28T12:00:00Z",
                    "message": {"role": "assistant", "content": text},
                    "done": true, "done_reason": "stop", "prompt_eval_count": INPUT_TOKENS, "eval_count": OUTPUT_TOKENS,
                }),
            },
        )
    }

    /// Structured output as the provider returns it natively (Anthropic: the forced tool's input).
    pub fn native_json(self, value: &Value) -> Step {
        match self {
            Wire::Anthropic => Step::json(
                200,
                &json!({
                    "id": "msg_1", "type": "message", "role": "assistant", "model": self.model(),
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "plan", "input": value}],
                    "stop_reason": "tool_use",
                    "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS},
                }),
            ),
            _ => self.text(&value.to_string()),
        }
    }

    /// A streamed reply of these deltas; only `End::Complete` sends the provider's end events.
    pub fn stream(self, deltas: &[&str], end: End) -> Step {
        let sse = |event: &str, data: Value| format!("event: {event}\ndata: {data}\n\n");
        let mut chunks = Vec::new();
        match self {
            Wire::Anthropic => {
                chunks.push(sse(
                    "message_start",
                    json!({"type": "message_start", "message": {
                    "id": "msg_1", "type": "message", "role": "assistant", "model": self.model(), "content": [],
                    "stop_reason": null, "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1}}}),
                ));
                chunks.push(sse(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
                ));
                chunks.push(sse("ping", json!({"type": "ping"})));
                for d in deltas {
                    chunks.push(sse(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": d}}),
                    ));
                }
                if end == End::Complete {
                    chunks.push(sse("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
                    chunks.push(sse("message_delta", json!({"type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": OUTPUT_TOKENS}})));
                    chunks.push(sse("message_stop", json!({"type": "message_stop"})));
                }
            }
            Wire::OpenAi => {
                let chunk = |delta: Value, finish: Value| {
                    format!(
                        "data: {}\n\n",
                        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                        "model": self.model(), "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                    )
                };
                chunks.push(chunk(json!({"role": "assistant", "content": ""}), Value::Null));
                for d in deltas {
                    chunks.push(chunk(json!({"content": d}), Value::Null));
                }
                if end == End::Complete {
                    chunks.push(chunk(json!({}), json!("stop")));
                    chunks.push(format!(
                        "data: {}\n\n",
                        json!({"id": "c1", "object": "chat.completion.chunk",
                        "model": self.model(), "choices": [],
                        "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS}})
                    ));
                    chunks.push("data: [DONE]\n\n".into());
                }
            }
            Wire::Ollama => {
                for d in deltas {
                    chunks.push(format!(
                        "{}\n",
                        json!({"model": self.model(), "created_at": "2026-11-28T12:00:00Z",
                        "message": {"role": "assistant", "content": d}, "done": false})
                    ));
                }
                if end == End::Complete {
                    chunks.push(format!(
                        "{}\n",
                        json!({"model": self.model(), "created_at": "2026-11-28T12:00:01Z",
                        "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop",
                        "prompt_eval_count": INPUT_TOKENS, "eval_count": OUTPUT_TOKENS})
                    ));
                }
            }
        }
        let content_type = if self == Wire::Ollama { "application/x-ndjson" } else { "text/event-stream" };
        Step::Stream { content_type, chunks, end }
    }

    /// A stream that sends `deltas`, then the provider's in-stream error event carrying `message`.
    pub fn stream_error(self, deltas: &[&str], message: &str) -> Step {
        let event = match self {
            Wire::Anthropic => format!(
                "event: error\ndata: {}\n\n",
                json!({"type": "error", "error": {"type": "api_error", "message": message}})
            ),
            Wire::OpenAi => format!("data: {}\n\n", json!({"error": {"message": message, "type": "server_error"}})),
            Wire::Ollama => format!("{}\n", json!({"error": message})),
        };
        let mut step = self.stream(deltas, End::Cut);
        if let Step::Stream { chunks, end, .. } = &mut step {
            chunks.push(event);
            *end = End::Complete;
        }
        step
    }

    /// An error status with the provider's error body.
    pub fn error(self, status: u16, message: &str) -> Step {
        Step::json(
            status,
            &match self {
                Wire::Anthropic => {
                    let kind = match status {
                        401 => "authentication_error",
                        404 => "not_found_error",
                        429 => "rate_limit_error",
                        529 => "overloaded_error",
                        _ => "api_error",
                    };
                    json!({"type": "error", "error": {"type": kind, "message": message}})
                }
                Wire::OpenAi => json!({"error": {"message": message, "type": "invalid_request_error", "code": null}}),
                Wire::Ollama => json!({"error": message}),
            },
        )
    }

    /// Asserts the request has the provider's path, auth and version headers and body fields.
    pub fn check_request(self, r: &Recorded, stream: bool, json_output: bool) {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", self.path()));
        assert!(r.header("content-type").is_some_and(|v| v.starts_with("application/json")), "{:?}", r.headers);
        let b = &r.body;
        assert_eq!(b["model"], self.model());
        let bearer = format!("Bearer {KEY}");
        match self {
            Wire::Anthropic => {
                assert_eq!(r.header("x-api-key"), Some(KEY));
                assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
                assert_eq!(r.header("authorization"), None);
                assert_eq!(b["system"], "You are terse.");
                assert_eq!(b["messages"][0], json!({"role": "user", "content": "Say hello"}));
                assert_eq!(b["max_tokens"], 100);
                assert_eq!(b["stream"], if stream { json!(true) } else { Value::Null });
                if json_output {
                    assert_eq!(b["tools"][0]["name"], "plan");
                    assert_eq!(b["tools"][0]["input_schema"]["type"], "object");
                    assert_eq!(b["tool_choice"], json!({"type": "tool", "name": "plan"}));
                } else {
                    assert_eq!(b["tools"], Value::Null);
                }
            }
            Wire::OpenAi => {
                assert_eq!(r.header("authorization"), Some(bearer.as_str()));
                assert_eq!(b["messages"][0], json!({"role": "system", "content": "You are terse."}));
                assert_eq!(b["messages"][1], json!({"role": "user", "content": "Say hello"}));
                assert_eq!(b["max_tokens"], 100);
                assert_eq!(b["stream"], if stream { json!(true) } else { Value::Null });
                if stream {
                    assert_eq!(b["stream_options"], json!({"include_usage": true}));
                }
                if json_output {
                    assert_eq!(b["response_format"]["type"], "json_schema");
                    assert_eq!(b["response_format"]["json_schema"]["name"], "plan");
                    assert_eq!(b["response_format"]["json_schema"]["schema"]["type"], "object");
                } else {
                    assert_eq!(b["response_format"], Value::Null);
                }
            }
            Wire::Ollama => {
                assert_eq!(r.header("authorization"), Some(bearer.as_str()));
                assert_eq!(b["messages"][0], json!({"role": "system", "content": "You are terse."}));
                assert_eq!(b["messages"][1], json!({"role": "user", "content": "Say hello"}));
                assert_eq!(b["stream"], json!(stream));
                assert_eq!(b["options"]["num_predict"], 100);
                if json_output {
                    assert_eq!(b["format"]["type"], "object");
                } else {
                    assert_eq!(b["format"], Value::Null);
                }
            }
        }
        let temperature = b["temperature"].as_f64().or(b["options"]["temperature"].as_f64());
        assert_eq!(temperature, Some(0.2));
    }
}
