//! What a misbehaving server cannot make the client do: read an unbounded body or line, choke on SSE events
//! without data, or wait forever (or panic) on a strange `Retry-After`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use aurora::llm::http::{MAX_FRAME_BYTES, MAX_JSON_BODY_BYTES};
use aurora::llm::{LlmClient, LlmError, LlmResponse};

use super::server::{End, FakeServer, Step};
use super::wire::Wire;
use super::{client, drain, request};

const MIB: usize = 1024 * 1024;

fn too_large(result: Result<LlmResponse, LlmError>, what: &str, limit: usize) {
    match result {
        Err(LlmError::ResponseTooLarge { provider, what: said, limit_bytes }) => {
            assert_eq!((provider.as_str(), said, limit_bytes), ("anthropic", what, limit));
        }
        other => panic!("expected ResponseTooLarge for {what}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_body_declared_too_large_is_refused_unread() {
    let wire = Wire::Anthropic;
    let body = "x".repeat(MAX_JSON_BODY_BYTES + 1);
    let step = Step::Respond { status: 200, headers: Vec::new(), body, delay: Duration::ZERO };
    let server = FakeServer::start(vec![step]).await;
    let result = client(wire, &server.url).complete(&request(), &CancellationToken::new()).await;
    let message = result.as_ref().err().map(ToString::to_string).unwrap_or_default();
    too_large(result, "the response body", MAX_JSON_BODY_BYTES);
    assert_eq!(
        message,
        "anthropic: the response body is larger than the 16384 KiB allowed; is llm.baseUrl the provider's API?"
    );
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_limit() {
    // No Content-Length: the limit is enforced while reading.
    let chunk = "x".repeat(MIB);
    let chunks = vec![chunk; MAX_JSON_BODY_BYTES / MIB + 1];
    let step = Step::Stream { content_type: "application/json", chunks, end: End::Complete };
    let server = FakeServer::start(vec![step]).await;
    let result = client(Wire::Anthropic, &server.url).complete(&request(), &CancellationToken::new()).await;
    too_large(result, "the response body", MAX_JSON_BODY_BYTES);
}

#[tokio::test]
async fn an_endless_sse_line_ends_the_stream_and_the_connection() {
    let wire = Wire::Anthropic;
    let mut chunks = vec!["event: message_start\ndata: ".to_owned()];
    chunks.extend(std::iter::repeat_n("x".repeat(256 * 1024), MAX_FRAME_BYTES / (256 * 1024) + 1));
    let server =
        FakeServer::start(vec![Step::Stream { content_type: "text/event-stream", chunks, end: End::Hang }]).await;
    let llm = client(wire, &server.url);
    let stream = llm.stream(&request(), &CancellationToken::new()).await.expect("stream starts");
    let (deltas, end) = drain(stream).await;
    assert!(deltas.is_empty());
    too_large(end, "a line or event of the streamed response", MAX_FRAME_BYTES);
    assert!(server.closed_by_client().await, "the connection stayed open");
}

#[tokio::test]
async fn sse_events_without_data_are_skipped() {
    for wire in [Wire::Anthropic, Wire::OpenAi] {
        let mut step = wire.stream(&["Hel", "lo"], End::Complete);
        if let Step::Stream { chunks, .. } = &mut step {
            // Keep-alives as some servers and proxies send them: an event type alone, a comment, an id.
            for (at, extra) in [(1, "event: ping\n\n"), (2, ": keep-alive\n\n"), (3, "id: 3\nevent: keepalive\n\n")] {
                chunks.insert(at, extra.to_owned());
            }
        }
        let server = FakeServer::start(vec![step]).await;
        let llm = client(wire, &server.url);
        let (deltas, done) = drain(llm.stream(&request(), &CancellationToken::new()).await.expect("stream")).await;
        assert_eq!(deltas, vec!["Hel", "lo"], "{wire:?}");
        assert_eq!(done.expect("completes").content, "Hello");
    }
}

/// A 429 with `name: value`, then a reply: the result and how many requests the server saw.
async fn after_retry_after(name: &str, value: &str) -> (Result<LlmResponse, LlmError>, usize) {
    let wire = Wire::OpenAi;
    let server = FakeServer::start(vec![wire.error(429, "slow down").header(name, value), wire.text("ok")]).await;
    let result = client(wire, &server.url).complete(&request(), &CancellationToken::new()).await;
    (result, server.count())
}

#[tokio::test]
async fn a_retry_after_past_the_retry_budget_gives_up_at_once() {
    for (name, value) in [
        ("retry-after", "inf"),
        ("retry-after", "1e20"),
        ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ("retry-after-ms", "inf"),
        ("retry-after-ms", "1e300"),
    ] {
        let (result, requests) = after_retry_after(name, value).await;
        match result {
            Err(err @ LlmError::RateLimited { retry_after: Some(_), .. }) => {
                assert_eq!(err.to_string(), "openai: rate limited (429): slow down");
            }
            other => panic!("{name}: {value}: expected RateLimited, got {other:?}"),
        }
        assert_eq!(requests, 1, "{name}: {value}");
    }
}

#[tokio::test]
async fn a_meaningless_retry_after_falls_back_to_backoff() {
    for (name, value) in [
        ("retry-after", "-3"),
        ("retry-after", "NaN"),
        ("retry-after", "later"),
        ("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ("retry-after-ms", "-inf"),
    ] {
        let (result, requests) = after_retry_after(name, value).await;
        assert_eq!(result.map(|r| r.content).ok().as_deref(), Some("ok"), "{name}: {value}");
        assert_eq!(requests, 2, "{name}: {value}");
    }
}
