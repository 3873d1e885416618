//! The same behaviours checked on each HTTP provider (Anthropic, OpenAI-compatible, Ollama) against its
//! fake server: replies, streams, structured JSON, repairs, retries, errors, timeouts, cuts and cancellation.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use aurora::llm::{LlmClient, LlmError, StreamEvent};

use super::server::{End, FakeServer};
use super::wire::{INPUT_TOKENS, OUTPUT_TOKENS, Wire};
use super::{Plan, client, drain, request};

fn plan_json() -> serde_json::Value {
    json!({"goal": "greet", "steps": ["say hello"]})
}

pub async fn plain_reply(wire: Wire) {
    let server = FakeServer::start(vec![wire.text("Hello!")]).await;
    let response = client(wire, &server.url).complete(&request(), &CancellationToken::new()).await.expect("reply");
    assert_eq!(response.content, "Hello!");
    assert_eq!((response.provider.as_str(), response.model.as_str()), (wire.provider(), wire.model()));
    assert_eq!((response.usage.input_tokens, response.usage.output_tokens), (INPUT_TOKENS, OUTPUT_TOKENS));
    assert!(!response.usage.estimated);
    assert!(!response.finish_reason.is_empty());
    assert_eq!(server.count(), 1);
    wire.check_request(&server.requests()[0], false, false);
}

pub async fn streamed_reply(wire: Wire) {
    let server = FakeServer::start(vec![wire.stream(&["Hel", "lo", " world"], End::Complete)]).await;
    let llm = client(wire, &server.url);
    let stream = llm.stream(&request(), &CancellationToken::new()).await.expect("stream starts");
    let (deltas, done) = drain(stream).await;
    assert_eq!(deltas, vec!["Hel", "lo", " world"]);
    let response = done.expect("stream completes");
    assert_eq!(response.content, "Hello world");
    assert_eq!(response.model, wire.model());
    assert_eq!((response.usage.input_tokens, response.usage.output_tokens), (INPUT_TOKENS, OUTPUT_TOKENS));
    wire.check_request(&server.requests()[0], true, false);
}

pub async fn structured_json_reply(wire: Wire) {
    let server = FakeServer::start(vec![wire.native_json(&plan_json())]).await;
    let llm = client(wire, &server.url);
    let reply = llm.json::<Plan>(request(), &CancellationToken::new()).await.expect("plan");
    assert_eq!(reply.value, Plan { goal: "greet".into(), steps: vec!["say hello".into()] });
    assert!(!reply.repaired());
    assert_eq!(reply.responses[0].usage.output_tokens, OUTPUT_TOKENS);
    wire.check_request(&server.requests()[0], false, true);
}

pub async fn json_wrapped_in_prose_and_fences(wire: Wire) {
    let text = format!("Sure! Here is the plan:\n```json\n{}\n```\nAnything else?", plan_json());
    let server = FakeServer::start(vec![wire.text(&text)]).await;
    let llm = client(wire, &server.url);
    let reply = llm.json::<Plan>(request(), &CancellationToken::new()).await.expect("plan");
    assert_eq!(reply.value.steps, vec!["say hello"]);
    assert_eq!(server.count(), 1);
}

pub async fn invalid_json_then_repaired(wire: Wire) {
    let broken = r#"{"goal": "greet", "steps": ["say hello""#;
    let server = FakeServer::start(vec![wire.text(broken), wire.native_json(&plan_json())]).await;
    let llm = client(wire, &server.url);
    let reply = llm.json::<Plan>(request(), &CancellationToken::new()).await.expect("repaired");
    assert!(reply.repaired());
    assert_eq!(reply.value.goal, "greet");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    // The repair request carries the broken reply and says what was wrong.
    let body = requests[1].body.to_string();
    assert!(body.contains("say hello"), "{body}");
    assert!(body.contains("could not be used"), "{body}");
    assert!(body.contains("EOF while parsing") || body.contains("contains no JSON"), "{body}");
}

pub async fn invalid_json_twice_is_a_typed_error(wire: Wire) {
    let empty_steps = json!({"goal": "greet", "steps": []});
    let server = FakeServer::start(vec![wire.text("no json at all"), wire.native_json(&empty_steps)]).await;
    let llm = client(wire, &server.url);
    let err = llm.json::<Plan>(request(), &CancellationToken::new()).await.expect_err("bad");
    match err {
        LlmError::InvalidModelOutput { role, errors } => {
            assert_eq!(role, "test.hello");
            assert_eq!(errors, vec!["steps: must list at least one step"]);
        }
        other => panic!("expected InvalidModelOutput, got {other}"),
    }
    assert_eq!(server.count(), 2);
}

pub async fn rate_limited_retry_after_is_honoured(wire: Wire) {
    // Anthropic's header is whole seconds; OpenAI also sends retry-after-ms, used for the others.
    let (header, value, wait) = match wire {
        Wire::Anthropic => ("retry-after", "1", Duration::from_secs(1)),
        _ => ("retry-after-ms", "300", Duration::from_millis(300)),
    };
    let limited = wire.error(429, "slow down").header(header, value);
    let server = FakeServer::start(vec![limited, wire.text("ok")]).await;
    let response = client(wire, &server.url).complete(&request(), &CancellationToken::new()).await.expect("retried");
    assert_eq!(response.content, "ok");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= wait, "retried after {gap:?}, server asked for {wait:?}");
    assert!(gap < wait + Duration::from_millis(500), "waited {gap:?}");
}

pub async fn server_error_then_success(wire: Wire) {
    let server = FakeServer::start(vec![wire.error(500, "internal"), wire.error(503, "busy"), wire.text("ok")]).await;
    let response = client(wire, &server.url).complete(&request(), &CancellationToken::new()).await.expect("retried");
    assert_eq!(response.content, "ok");
    assert_eq!(server.count(), 3);
}

pub async fn persistent_rate_limit_says_how_often_it_retried(wire: Wire) {
    let steps = (0..4).map(|_| wire.error(429, "slow down")).collect();
    let server = FakeServer::start(steps).await;
    let err = client(wire, &server.url).complete(&request(), &CancellationToken::new()).await.expect_err("limited");
    let message = err.to_string();
    assert!(message.contains("rate limited (429): slow down; retried 3 times over 0 s"), "{message}");
    assert_eq!(server.count(), 4);
}

pub async fn unauthorized_is_not_retried(wire: Wire) {
    let server = FakeServer::start(vec![wire.error(401, "invalid api key"), wire.text("never sent")]).await;
    let err = client(wire, &server.url).complete(&request(), &CancellationToken::new()).await.expect_err("401");
    assert!(matches!(err, LlmError::Auth { status: 401, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} rejected the API key (401): invalid api key; check the key in $AURORA_TEST_LLM_KEY",
            wire.provider()
        )
    );
    assert_eq!(server.count(), 1);
}

pub async fn unknown_model_names_model_and_server(wire: Wire) {
    let server = FakeServer::start(vec![wire.error(404, "model not found, try pulling it first")]).await;
    let err = client(wire, &server.url).complete(&request(), &CancellationToken::new()).await.expect_err("404");
    let message = err.to_string();
    assert!(message.starts_with(&format!("model '{}' not found at {}", wire.model(), server.url)), "{message}");
    assert_eq!(server.count(), 1);
}

pub async fn timeout_ends_the_call(wire: Wire) {
    let server = FakeServer::start(vec![wire.text("late").delayed(Duration::from_secs(3))]).await;
    let llm = client(wire, &server.url).with_retry(aurora::llm::RetryPolicy::none());
    let started = Instant::now();
    let req = request().with_timeout(Duration::from_millis(200));
    let err = llm.complete(&req, &CancellationToken::new()).await.expect_err("too slow");
    assert!(matches!(err, LlmError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert!(err.to_string().contains("no complete answer within 200 ms"), "{err}");
}

pub async fn stream_cut_in_the_middle(wire: Wire) {
    let server = FakeServer::start(vec![wire.stream(&["partial ", "answer"], End::Cut)]).await;
    let llm = client(wire, &server.url);
    let stream = llm.stream(&request(), &CancellationToken::new()).await.expect("stream starts");
    let (deltas, done) = drain(stream).await;
    assert_eq!(deltas.concat(), "partial answer");
    match done {
        Err(LlmError::StreamInterrupted { received_chars, .. }) => assert_eq!(received_chars, 14),
        other => panic!("expected StreamInterrupted, got {other:?}"),
    }
}

pub async fn cancellation_mid_stream_closes_the_connection(wire: Wire) {
    let server = FakeServer::start(vec![wire.stream(&["first"], End::Hang)]).await;
    let llm = client(wire, &server.url);
    let cancel = CancellationToken::new();
    let mut stream = llm.stream(&request(), &cancel).await.expect("stream starts");
    let first = stream.next().await.expect("an event").expect("a delta");
    assert_eq!(first, StreamEvent::Delta("first".into()));
    let cancelled_at = Instant::now();
    cancel.cancel();
    let next = stream.next().await.expect("an event");
    assert!(matches!(next, Err(LlmError::Cancelled)), "{next:?}");
    assert!(stream.next().await.is_none());
    drop(stream);
    let closed = server.closed_at().await.expect("the server saw the connection close");
    let after = closed.saturating_duration_since(cancelled_at);
    assert!(after < Duration::from_millis(100), "closed {after:?} after the cancel");
}

pub async fn dropping_the_stream_closes_the_connection(wire: Wire) {
    let server = FakeServer::start(vec![wire.stream(&["first"], End::Hang)]).await;
    let llm = client(wire, &server.url);
    let mut stream = llm.stream(&request(), &CancellationToken::new()).await.expect("stream starts");
    stream.next().await.expect("an event").expect("a delta");
    let dropped_at = Instant::now();
    drop(stream);
    let closed = server.closed_at().await.expect("the server saw the connection close");
    assert!(closed.saturating_duration_since(dropped_at) < Duration::from_millis(100));
}

pub async fn cancelling_a_call_closes_the_connection(wire: Wire) {
    let server = FakeServer::start(vec![wire.text("late").delayed(Duration::from_secs(3))]).await;
    let llm = client(wire, &server.url);
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    let cancelled_at = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        canceller.cancel();
        Instant::now()
    });
    let err = llm.complete(&request(), &cancel).await.expect_err("cancelled");
    assert!(matches!(err, LlmError::Cancelled), "{err:?}");
    let cancelled_at = cancelled_at.await.expect("canceller ran");
    let closed = server.closed_at().await.expect("the server saw the connection close");
    let after = closed.saturating_duration_since(cancelled_at);
    assert!(after < Duration::from_millis(100), "closed {after:?} after the cancel");
    assert_eq!(server.count(), 1);
}

pub async fn an_idle_stream_times_out(wire: Wire) {
    let server = FakeServer::start(vec![wire.stream(&["first"], End::Hang)]).await;
    let mut cfg = wire.config(&server.url);
    cfg.timeouts.idle_ms = 300;
    let llm = aurora::llm::Llm::from_config(&cfg, &super::env).expect("valid");
    let mut stream = llm.stream(&request(), &CancellationToken::new()).await.expect("stream starts");
    stream.next().await.expect("an event").expect("a delta");
    let waiting = Instant::now();
    let next = stream.next().await.expect("an event");
    assert!(matches!(next, Err(LlmError::Timeout { .. })), "{next:?}");
    let waited = waiting.elapsed();
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_millis(1500), "{waited:?}");
}

pub async fn unreachable_server_is_named(wire: Wire) {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let llm = client(wire, &url).with_retry(aurora::llm::RetryPolicy::none());
    let err = llm.complete(&request(), &CancellationToken::new()).await.expect_err("refused");
    assert!(matches!(err, LlmError::Connect { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("cannot reach {} at {url}", wire.provider())), "{err}");
}

macro_rules! provider_suite {
    ($wire:expr) => {
        #[tokio::test]
        async fn plain_reply() {
            super::plain_reply($wire).await
        }
        #[tokio::test]
        async fn streamed_reply() {
            super::streamed_reply($wire).await
        }
        #[tokio::test]
        async fn structured_json_reply() {
            super::structured_json_reply($wire).await
        }
        #[tokio::test]
        async fn json_wrapped_in_prose_and_fences() {
            super::json_wrapped_in_prose_and_fences($wire).await
        }
        #[tokio::test]
        async fn invalid_json_then_repaired() {
            super::invalid_json_then_repaired($wire).await
        }
        #[tokio::test]
        async fn invalid_json_twice_is_a_typed_error() {
            super::invalid_json_twice_is_a_typed_error($wire).await
        }
        #[tokio::test]
        async fn rate_limited_retry_after_is_honoured() {
            super::rate_limited_retry_after_is_honoured($wire).await
        }
        #[tokio::test]
        async fn server_error_then_success() {
            super::server_error_then_success($wire).await
        }
        #[tokio::test]
        async fn persistent_rate_limit_says_how_often_it_retried() {
            super::persistent_rate_limit_says_how_often_it_retried($wire).await
        }
        #[tokio::test]
        async fn unauthorized_is_not_retried() {
            super::unauthorized_is_not_retried($wire).await
        }
        #[tokio::test]
        async fn unknown_model_names_model_and_server() {
            super::unknown_model_names_model_and_server($wire).await
        }
        #[tokio::test]
        async fn timeout_ends_the_call() {
            super::timeout_ends_the_call($wire).await
        }
        #[tokio::test]
        async fn stream_cut_in_the_middle() {
            super::stream_cut_in_the_middle($wire).await
        }
        #[tokio::test]
        async fn cancellation_mid_stream_closes_the_connection() {
            super::cancellation_mid_stream_closes_the_connection($wire).await
        }
        #[tokio::test]
        async fn dropping_the_stream_closes_the_connection() {
            super::dropping_the_stream_closes_the_connection($wire).await
        }
        #[tokio::test]
        async fn cancelling_a_call_closes_the_connection() {
            super::cancelling_a_call_closes_the_connection($wire).await
        }
        #[tokio::test]
        async fn an_idle_stream_times_out() {
            super::an_idle_stream_times_out($wire).await
        }
        #[tokio::test]
        async fn unreachable_server_is_named() {
            super::unreachable_server_is_named($wire).await
        }
    };
}

mod anthropic {
    use super::{End, FakeServer, Wire, client, drain, request};
    use aurora::llm::{LlmClient, OutputKind, StructuredOutput};
    use serde_json::json;
    use tokio_util::sync::CancellationToken;
    provider_suite!(Wire::Anthropic);

    #[tokio::test]
    async fn overloaded_is_retried() {
        let wire = Wire::Anthropic;
        let server = FakeServer::start(vec![wire.error(529, "Overloaded"), wire.text("ok")]).await;
        let llm = client(wire, &server.url);
        let response = llm.complete(&request(), &CancellationToken::new()).await.expect("retried");
        assert_eq!(response.content, "ok");
        assert_eq!(server.count(), 2);
    }

    #[tokio::test]
    async fn streamed_tool_input_is_the_json_content() {
        let sse = |event: &str, data: serde_json::Value| format!("event: {event}\ndata: {data}\n\n");
        let chunks = vec![
            sse(
                "message_start",
                json!({"type": "message_start", "message": {"model": "claude-sonnet-4-5",
                "usage": {"input_tokens": 30, "output_tokens": 1}}}),
            ),
            sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "plan", "input": {}}}),
            ),
            sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": "{\"goal\": \"g\", "}}),
            ),
            sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": "\"steps\": [\"a\"]}"}}),
            ),
            sse("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            sse(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 9}}),
            ),
            sse("message_stop", json!({"type": "message_stop"})),
        ];
        let step = super::super::server::Step::Stream { content_type: "text/event-stream", chunks, end: End::Complete };
        let server = FakeServer::start(vec![step]).await;
        let llm = client(Wire::Anthropic, &server.url);
        let req = request().with_output(OutputKind::Json(super::Plan::schema()));
        let (_, done) = drain(llm.stream(&req, &CancellationToken::new()).await.expect("stream")).await;
        let response = done.expect("done");
        assert_eq!(response.content, r#"{"goal": "g", "steps": ["a"]}"#);
        assert_eq!((response.usage.input_tokens, response.usage.output_tokens), (30, 9));
        assert_eq!(response.finish_reason, "tool_use");
        assert_eq!(server.requests()[0].body["tool_choice"]["name"], "plan");
    }
}

mod openai {
    use super::Wire;
    provider_suite!(Wire::OpenAi);
}

mod ollama {
    use super::Wire;
    provider_suite!(Wire::Ollama);
}
