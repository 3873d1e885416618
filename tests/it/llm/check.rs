//! `check`, behind `aurora doctor`/`llm-check`: who answered, with which model, how fast; or exactly what
//! is wrong.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use aurora::llm::{LlmConfig, ProviderKind, check};

use super::env;
use super::server::FakeServer;
use super::wire::Wire;

#[tokio::test]
async fn a_working_provider_reports_model_and_round_trip() {
    let wire = Wire::Ollama;
    let server = FakeServer::start(vec![wire.text("ok").delayed(Duration::from_millis(120))]).await;
    let report = check(&wire.config(&server.url), &env, &CancellationToken::new()).await.expect("answers");
    assert_eq!((report.provider.as_str(), report.model.as_str()), ("ollama", "llama3.2"));
    assert_eq!((report.base_url.as_str(), report.reply.as_str()), (server.url.as_str(), "ok"));
    // The round trip includes the server's delay.
    assert!(report.round_trip_ms >= 120, "{}", report.round_trip_ms);
    let sent = &server.requests()[0].body;
    assert_eq!(sent["options"]["num_predict"], 16);
}

#[tokio::test]
async fn a_missing_key_is_named() {
    let cfg = LlmConfig {
        provider: ProviderKind::Anthropic,
        model: "claude-sonnet-4-5".into(),
        api_key_env: "AURORA_TEST_UNSET_KEY".into(),
        ..LlmConfig::default()
    };
    let err = check(&cfg, &env, &CancellationToken::new()).await.expect_err("no key");
    assert_eq!(
        err.to_string(),
        "llm.apiKeyEnv names AURORA_TEST_UNSET_KEY, which is not set; set it or use provider \"ollama\""
    );
}

#[tokio::test]
async fn an_unknown_model_and_an_unreachable_server_are_named() {
    let wire = Wire::Ollama;
    let server = FakeServer::start(vec![wire.error(404, "model \"llama3.2\" not found, try pulling it first")]).await;
    let err = check(&wire.config(&server.url), &env, &CancellationToken::new()).await.expect_err("404");
    assert_eq!(
        err.to_string(),
        format!(
            "model 'llama3.2' not found at {}: model \"llama3.2\" not found, try pulling it first; check llm.model",
            server.url
        )
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let err = check(&wire.config(&url), &env, &CancellationToken::new()).await.expect_err("refused");
    assert!(err.to_string().starts_with(&format!("cannot reach ollama at {url}: ")), "{err}");
    assert!(err.to_string().ends_with("is the server running and llm.baseUrl right?"), "{err}");
}

#[tokio::test]
async fn no_provider_says_how_to_configure_one() {
    let err = check(&LlmConfig::default(), &env, &CancellationToken::new()).await.expect_err("none");
    assert_eq!(
        err.to_string(),
        "no LLM provider is configured; set llm.provider to anthropic, openai, ollama or command"
    );
}

#[tokio::test]
async fn https_goes_through_rustls() {
    // A server that answers the TLS ClientHello with plain text: the handshake fails, proving that a TLS
    // stack (rustls with ring) is linked and used for https URLs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        if let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let mut cfg = Wire::Ollama.config(&url);
    cfg.max_retries = 0;
    let err = check(&cfg, &env, &CancellationToken::new()).await.expect_err("not TLS");
    let message = err.to_string();
    assert!(message.starts_with(&format!("cannot reach ollama at {url}: ")), "{message}");
    assert!(message.contains("received corrupt message"), "rustls should reject the reply: {message}");
}
