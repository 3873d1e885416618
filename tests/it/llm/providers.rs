//! The same behaviours checked on each HTTP provider (Anthropic, OpenAI-compatible, Ollama) against its
//! fake server: replies, streams, structured JSON, repairs, retries, errors, timeouts, cuts and cancellation.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use aurora::llm::json::repair_prompt;
use aurora::llm::{LlmClient, LlmError, LlmRequest, RetryPolicy, StreamEvent, StructuredOutput};

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
    // The repair request carries the broken reply, then says exactly what was wrong: it was cut off.
    let messages = requests[1].body["messages"].as_array().expect("messages").clone();
    let [.., broken_reply, repair] = messages.as_slice() else { panic!("{messages:?}") };
    assert_eq!(broken_reply, &json!({"role": "assistant", "content": broken}));
    let cut =
        "the JSON was cut off: the reply ends with 2 brackets still open; send the complete JSON, shorter if need be";
    assert_eq!(repair, &json!({"role": "user", "content": repair_prompt(&Plan::schema(), &[cut.to_owned()])}));
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
}

pub async fn server_error_then_success(wire: Wire) {
    let server = FakeServer::start(vec![wire.error(500, "internal"), wire.error(503, "busy"), wire.text("ok")]).await;
    let response = client(wire, &server.url).complete(&request(), &CancellationToken::new()).await.expect("retried");
    assert_eq!(response.content, "ok");
    assert_eq!(server.count(), 3);
}

pub async fn persistent_rate_limit_says_how_often_and_how_long_it_retried(wire: Wire) {
    let steps = (0..4).map(|_| wire.error(429, "slow down").header("retry-after-ms", "50")).collect();
    let server = FakeServer::start(steps).await;
    let err = client(wire, &server.url).complete(&request(), &CancellationToken::new()).await.expect_err("limited");
    let LlmError::RetriesExhausted { retries, elapsed, last } = &err else { panic!("{err:?}") };
    assert_eq!(*retries, 3);
    // Three waits of the 50 ms the server asked for.
    assert!(*elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(matches!(**last, LlmError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_millis(50)));
    let secs = format!("{:.1}", elapsed.as_secs_f64());
    assert_eq!(
        err.to_string(),
        format!("{}: rate limited (429): slow down; retried 3 times over {secs} s", wire.provider())
    );
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

/// A reply the server holds back far longer than any test waits.
const NEVER: Duration = Duration::from_secs(600);

pub async fn timeout_ends_the_call(wire: Wire) {
    let server = FakeServer::start(vec![wire.text("late").delayed(NEVER)]).await;
    let llm = client(wire, &server.url).with_retry(RetryPolicy::none());
    let req = request().with_timeout(Duration::from_millis(200));
    let err = llm.complete(&req, &CancellationToken::new()).await.expect_err("too slow");
    assert!(matches!(err, LlmError::Timeout { after, .. } if after == Duration::from_millis(200)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("{}: no complete answer within 200 ms; raise llm.timeouts or retry later", wire.provider())
    );
    assert!(server.closed_by_client().await, "the timed-out request's connection stayed open");
}

pub async fn a_request_without_timeout_gets_request_ms(wire: Wire) {
    let server = FakeServer::start(vec![wire.text("late").delayed(NEVER), wire.text("late").delayed(NEVER)]).await;
    let mut cfg = wire.config(&server.url);
    cfg.timeouts.request_ms = 300;
    cfg.max_retries = 0;
    let llm = aurora::llm::Llm::from_config(&cfg, &super::env).expect("valid");
    let bare = LlmRequest::new("test.hello", "You are terse.", "Say hello");
    assert_eq!(bare.timeout, Duration::ZERO, "the request sets no timeout of its own");
    let err = llm.complete(&bare, &CancellationToken::new()).await.expect_err("too slow");
    assert!(matches!(err, LlmError::Timeout { after, .. } if after == Duration::from_millis(300)), "{err:?}");
    // A timeout the request sets wins over the default.
    let own = bare.with_timeout(Duration::from_millis(250));
    let err = llm.complete(&own, &CancellationToken::new()).await.expect_err("too slow");
    assert!(matches!(err, LlmError::Timeout { after, .. } if after == Duration::from_millis(250)), "{err:?}");
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
    cancel.cancel();
    let next = stream.next().await.expect("an event");
    assert!(matches!(next, Err(LlmError::Cancelled)), "{next:?}");
    // The connection closes with the error, while the caller still holds the stream.
    assert!(server.closed_by_client().await, "the server never saw the connection close");
    assert!(stream.next().await.is_none());
}

pub async fn a_broken_stream_closes_the_connection_at_once(wire: Wire) {
    // A frame the decoder rejects ends the stream in an error; the server is still holding the connection.
    let mut step = wire.stream(&["first"], End::Hang);
    if let super::server::Step::Stream { chunks, .. } = &mut step {
        chunks.push(if wire == Wire::Ollama { "not json\n".into() } else { "data: not json\n\n".into() });
    }
    let server = FakeServer::start(vec![step]).await;
    let llm = client(wire, &server.url);
    let (deltas, end) = {
        let mut stream = llm.stream(&request(), &CancellationToken::new()).await.expect("stream starts");
        let first = stream.next().await.expect("an event").expect("a delta");
        let end = stream.next().await.expect("an event");
        assert!(server.closed_by_client().await, "the server never saw the connection close");
        (first, end)
    };
    assert_eq!(deltas, StreamEvent::Delta("first".into()));
    assert!(matches!(end, Err(LlmError::InvalidResponse { .. })), "{end:?}");
}

pub async fn dropping_the_stream_closes_the_connection(wire: Wire) {
    let server = FakeServer::start(vec![wire.stream(&["first"], End::Hang)]).await;
    let llm = client(wire, &server.url);
    let mut stream = llm.stream(&request(), &CancellationToken::new()).await.expect("stream starts");
    stream.next().await.expect("an event").expect("a delta");
    assert_eq!(server.closed_count(), 0);
    drop(stream);
    assert!(server.closed_by_client().await, "the server never saw the connection close");
}

pub async fn cancelling_a_call_closes_the_connection(wire: Wire) {
    let server = FakeServer::start(vec![wire.text("late").delayed(NEVER)]).await;
    let llm = client(wire, &server.url);
    let cancel = CancellationToken::new();
    let req = request();
    let call = llm.complete(&req, &cancel);
    let canceller = async {
        assert!(server.received(1).await, "the request never arrived");
        cancel.cancel();
    };
    let (result, ()) = tokio::join!(call, canceller);
    assert!(matches!(result, Err(LlmError::Cancelled)), "{result:?}");
    assert!(server.closed_by_client().await, "the server never saw the connection close");
    assert_eq!(server.count(), 1);
}

pub async fn an_idle_stream_times_out(wire: Wire) {
    let server = FakeServer::start(vec![wire.stream(&["first"], End::Hang)]).await;
    let mut cfg = wire.config(&server.url);
    cfg.timeouts.idle_ms = 300;
    let llm = aurora::llm::Llm::from_config(&cfg, &super::env).expect("valid");
    // Only the idle timeout can end this wait: the request's own is far longer than the test waits.
    let req = request().with_timeout(NEVER);
    let mut stream = llm.stream(&req, &CancellationToken::new()).await.expect("stream starts");
    stream.next().await.expect("an event").expect("a delta");
    let next = tokio::time::timeout(Duration::from_secs(30), stream.next()).await.expect("the idle timeout fired");
    assert!(matches!(next, Some(Err(LlmError::Timeout { .. }))), "{next:?}");
    assert!(server.closed_by_client().await, "the server never saw the connection close");
}

pub async fn unreachable_server_is_named(wire: Wire) {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let llm = client(wire, &url).with_retry(RetryPolicy::none());
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
        async fn persistent_rate_limit_says_how_often_and_how_long_it_retried() {
            super::persistent_rate_limit_says_how_often_and_how_long_it_retried($wire).await
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
        async fn a_request_without_timeout_gets_request_ms() {
            super::a_request_without_timeout_gets_request_ms($wire).await
        }
        #[tokio::test]
        async fn a_broken_stream_closes_the_connection_at_once() {
            super::a_broken_stream_closes_the_connection_at_once($wire).await
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
