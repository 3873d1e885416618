//! API keys never appear in logs or error messages: tracing output is captured at TRACE while calls succeed,
//! stream, retry and fail with servers that echo the key back.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::fmt::MakeWriter;

use aurora::llm::{LlmClient, LlmConfig, LlmError, ProviderKind};

use super::server::{End, FakeServer, Step};
use super::wire::Wire;
use super::{KEY, client, drain, env, request};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("capture lock")).into_owned()
    }
}

/// Runs every kind of call for `wire`; returns every error message and debug rendering produced.
async fn exercise(wire: Wire) -> Vec<String> {
    let echo = format!("invalid key {KEY}");
    let server = FakeServer::start(vec![
        wire.text("fine"),
        wire.stream(&["a", "b"], End::Complete),
        wire.error(500, &echo),
        wire.text("after retry"),
        wire.error(401, &echo),
        Step::json(400, &json!({"error": {"message": echo}})),
        wire.stream(&["cut"], End::Cut),
    ])
    .await;
    let llm = client(wire, &server.url);
    let cancel = CancellationToken::new();
    let mut texts = Vec::new();
    llm.complete(&request(), &cancel).await.expect("fine");
    drain(llm.stream(&request(), &cancel).await.expect("stream")).await.1.expect("done");
    llm.complete(&request(), &cancel).await.expect("retried");
    for _ in 0..2 {
        let err = llm.complete(&request(), &cancel).await.expect_err("refused");
        texts.push(err.to_string());
        texts.push(format!("{err:?}"));
    }
    let (_, cut) = drain(llm.stream(&request(), &cancel).await.expect("stream")).await;
    let err = cut.expect_err("cut");
    texts.push(err.to_string());
    texts.push(format!("{err:?}"));
    let cfg = wire.config(&server.url);
    texts.push(format!("{cfg:?}"));
    texts.push(serde_json::to_string(&cfg).expect("config serialises"));
    texts
}

#[tokio::test]
async fn api_keys_never_appear_in_logs_or_errors() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    // With a single registered subscriber, tracing caches a callsite's interest from whichever thread hits it
    // first: another test, running the same providers with no subscriber, would switch their logs off here.
    // A second registered subscriber makes every callsite ask all of them.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut texts = Vec::new();
    for wire in [Wire::Anthropic, Wire::OpenAi, Wire::Ollama] {
        texts.extend(exercise(wire).await);
    }
    let logs = captured.text();
    // The capture works: requests, bodies and retries were logged.
    assert!(logs.contains("anthropic request") && logs.contains("request body") && logs.contains("retrying"), "{logs}");
    assert!(!logs.contains(KEY), "the key leaked into the logs:\n{logs}");
    for text in &texts {
        assert!(!text.contains(KEY), "the key leaked into: {text}");
    }
    assert!(texts.iter().any(|t| t.contains("invalid key [redacted]")), "{texts:?}");
}

#[tokio::test]
async fn a_key_written_into_api_key_env_is_not_echoed() {
    let cfg = LlmConfig {
        provider: ProviderKind::Anthropic,
        model: "claude-sonnet-4-5".into(),
        api_key_env: KEY.into(),
        ..LlmConfig::default()
    };
    let problems: Vec<String> = cfg.validate().iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with("llm.apiKeyEnv: must be an environment variable name"), "{problems:?}");
    assert!(!problems[0].contains(KEY));
    let err = aurora::llm::check(&cfg, &env, &CancellationToken::new()).await.expect_err("invalid");
    assert!(!err.to_string().contains(KEY), "{err}");
}

#[tokio::test]
async fn errors_inside_a_stream_are_redacted() {
    for wire in [Wire::Anthropic, Wire::OpenAi, Wire::Ollama] {
        let echo = format!("upstream refused key {KEY}");
        let server = FakeServer::start(vec![wire.stream_error(&["partial"], &echo)]).await;
        let llm = client(wire, &server.url);
        let (deltas, end) = drain(llm.stream(&request(), &CancellationToken::new()).await.expect("stream")).await;
        assert_eq!(deltas, vec!["partial"], "{wire:?}");
        let err = end.expect_err("the error event ends the stream");
        assert!(matches!(err, LlmError::InvalidResponse { .. }), "{err:?}");
        let kind = if wire == Wire::Anthropic { "api_error: " } else { "" };
        assert_eq!(
            err.to_string(),
            format!("{}: unexpected response: {kind}upstream refused key [redacted]", wire.provider())
        );
        assert!(!format!("{err:?}").contains(KEY), "{err:?}");
    }
}

#[tokio::test]
async fn an_error_inside_a_successful_ollama_reply_is_redacted() {
    let echo = format!("proxy refused key {KEY}");
    let server = FakeServer::start(vec![Step::json(200, &json!({"error": echo}))]).await;
    let err =
        client(Wire::Ollama, &server.url).complete(&request(), &CancellationToken::new()).await.expect_err("error");
    assert_eq!(err.to_string(), "ollama: unexpected response: proxy refused key [redacted]");
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_the_key_never_leaves() {
    for (wire, status) in [(Wire::Anthropic, 307), (Wire::Anthropic, 301), (Wire::OpenAi, 308), (Wire::Ollama, 302)] {
        let elsewhere = FakeServer::start(vec![wire.text("stolen"), wire.text("stolen")]).await;
        let target = format!("{}{}", elsewhere.url, wire.path());
        let redirect = || Step::json(status, &json!({})).header("location", &target);
        let server = FakeServer::start(vec![redirect(), redirect()]).await;
        let llm = client(wire, &server.url);
        let expected = format!(
            "{}: the server answered {status} with a redirect to {target}; redirects are not followed, so the API key never goes to another address: set llm.baseUrl to the final URL",
            wire.provider()
        );
        let err = llm.complete(&request(), &CancellationToken::new()).await.expect_err("redirected");
        assert!(matches!(&err, LlmError::Redirected { location, .. } if *location == target), "{err:?}");
        assert_eq!(err.to_string(), expected);
        let err = llm.stream(&request(), &CancellationToken::new()).await.err().expect("redirected");
        assert_eq!(err.to_string(), expected);
        // The first server did get the key; a followed redirect would have carried it along.
        let sent = server.requests();
        assert_eq!(sent.len(), 2, "a redirect is not retried");
        assert!(sent.iter().all(|r| r.headers.iter().any(|(_, v)| v.contains(KEY))), "{wire:?}");
        assert_eq!(elsewhere.count(), 0, "{wire:?} {status}: the redirect was followed");
    }
}
