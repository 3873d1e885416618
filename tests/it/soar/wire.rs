//! The pipeline through the real OpenAI-compatible client over HTTP against a fake server: every call on
//! the wire, the synthesis streamed as SSE, usage priced from the server's counts.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use aurora::llm::Llm;
use aurora::soar::types::{Complexity, Outcome, PhaseKey};
use aurora::soar::{SoarEvent, SoarRequest};

use super::harness::*;
use crate::llm::server::{End, FakeServer};
use crate::llm::wire::Wire;
use crate::llm::{env, fast_retry};

#[tokio::test]
async fn a_medium_question_runs_every_call_over_the_openai_wire() {
    let f = Fixture::new();
    let refresh = f.chunk("refresh_token");
    let synth = answer("Expired tokens are reissued by `refresh_token` [c1].", &[("c1", &refresh)], &["sg-1"]);
    let synth_text = synth.to_string();
    let (a, b) = synth_text.split_at(synth_text.len() / 3);
    let (b, c) = b.split_at(b.len() / 2);
    let server = FakeServer::start(vec![
        Wire::OpenAi.text(&plan(vec![sg("Explain refresh_token", "code-analyzer", true, &[])]).to_string()),
        Wire::OpenAi.text(&review(0.9).to_string()),
        Wire::OpenAi.text(&agent("refresh_token reissues the token [c1]", &[("c1", &refresh)]).to_string()),
        Wire::OpenAi.stream(&[a, b, c], End::Complete),
        Wire::OpenAi.text(&synth_review(0.9).to_string()),
    ])
    .await;
    let llm = Llm::from_config(&Wire::OpenAi.config(&server.url), &env).unwrap().with_retry(fast_retry());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let req = SoarRequest { complexity_override: Some(Complexity::Medium), ..SoarRequest::ask(AUTH_QUESTION) };
    let r = f.pipeline(Some(llm)).run(req, tx, CancellationToken::new()).await.unwrap();
    assert_eq!(r.outcome, Outcome::Answered, "{}", r.answer);
    assert_eq!(r.answer, "Expired tokens are reissued by `refresh_token` [1].");
    assert_eq!(r.citations[0].name, "refresh_token");
    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    let system = |i: usize| requests[i].body["messages"][0]["content"].as_str().unwrap_or_default().to_owned();
    for (i, role) in
        ["soar.decompose", "soar.verify.self", "agent.code-analyzer", "soar.synthesize", "soar.verifySynthesis"]
            .iter()
            .enumerate()
    {
        assert!(system(i).contains(&format!("Role: {role}")), "request {i}: {}", system(i));
        assert_eq!(requests[i].path, "/v1/chat/completions");
    }
    assert_eq!(requests[3].body["stream"], true, "synthesis streams");
    assert_eq!(requests[0].body["model"], "gpt-4o-mini");
    // Usage came from the server's counts, per call.
    assert_eq!(r.metadata.usage.calls, 5);
    assert_eq!(r.metadata.usage.input_tokens, 5 * 12);
    assert!(!r.metadata.usage.estimated);
    assert_eq!(r.metadata.usage_by_phase[&PhaseKey::Synthesize].calls, 2);
    let mut streamed = String::new();
    while let Ok(e) = rx.try_recv() {
        if let SoarEvent::AnswerDelta { text, .. } = e {
            streamed.push_str(&text);
        }
    }
    assert_eq!(streamed, "Expired tokens are reissued by `refresh_token` [c1].");
}

#[tokio::test]
async fn cancelling_closes_the_connection_to_the_provider() {
    let f = Fixture::new();
    let server = FakeServer::start(vec![Wire::OpenAi.stream(&["{\"answer\": \"Tok"], End::Hang)]).await;
    let llm = Llm::from_config(&Wire::OpenAi.config(&server.url), &env).unwrap().with_retry(fast_retry());
    let (tx, _rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let pipeline = f.pipeline(Some(llm));
    let run = pipeline.run(SoarRequest::ask("where is check_token"), tx, cancel.clone());
    let stop = async {
        assert!(server.received(1).await);
        cancel.cancel();
    };
    let (r, ()) = tokio::join!(run, stop);
    assert!(matches!(r, Err(aurora::soar::SoarError::Cancelled)), "{r:?}");
    assert!(server.closed_by_client().await, "the provider saw the connection close");
}

const AUTH_QUESTION: &str = "how do check_token and refresh_token handle an expired token";

#[tokio::test]
async fn planted_secrets_never_reach_the_provider() {
    use crate::support::Workspace as Files;
    let secrets: [&str; 6] = [
        "sk-ant-api03-PLANTEDplantedPLANTED0001",
        "AKIAPLANTED000000001",
        "hunter2-planted-db-password",
        "planted-url-pass-42",
        "plantedquerytoken99",
        "MIIEplantedPRIVATEkeyMATERIAL",
    ];
    let code = format!(
        r#"ANTHROPIC_KEY = "{}"
AWS_ID = "{}"


def connect():
    """Open the database (planted secrets for the redaction test)."""
    password = "{}"
    url = "postgres://admin:{}@db.internal/app"
    hook = "https://hooks.example.com/x?token={}"
    return url, password, hook


PEM = """-----BEGIN RSA PRIVATE KEY-----
{}
-----END RSA PRIVATE KEY-----"""
"#,
        secrets[0], secrets[1], secrets[2], secrets[3], secrets[4], secrets[5]
    );
    let files = Files::new(&[("app/db.py", &code), ("app/secrets.py", "TOKEN = 'planted-denied-file-token'\n")]);
    files.index();
    let denied: String = crate::support::dump(
        &files.conn(),
        "SELECT path || ' ' || coalesce(reason, '') FROM files WHERE status = 'skipped'",
    );
    assert_eq!(denied, "app/secrets.py denied\n");
    let tokenizer = aurora::memory::tokenize::Tokenizer::new(files.config.memory.tokenizer.stemming);
    let writer = std::sync::Arc::new(
        aurora::store::writer::Writer::open(&files.store(), &aurora::index::indexer::store_versions(&tokenizer))
            .unwrap(),
    );
    let f = Fixture { ws: files, writer: Some(writer), config: aurora::config::Config::default() };
    let server = FakeServer::start(vec![Wire::OpenAi.stream(&["{\"answer\": \"It connects.\"}"], End::Complete)]).await;
    let llm = Llm::from_config(&Wire::OpenAi.config(&server.url), &env).unwrap().with_retry(fast_retry());
    let (tx, _rx) = mpsc::unbounded_channel();
    let r = f
        .pipeline(Some(llm))
        .run(SoarRequest::ask("where are connect, PEM, ANTHROPIC_KEY and AWS_ID"), tx, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(server.count(), 1);
    let body = server.requests()[0].body.to_string();
    assert!(body.contains("def connect"), "the code itself was sent");
    assert!(body.contains("[REDACTED:private-key]"), "the module chunk was sent too: {body}");
    for s in secrets.iter().chain(["planted-denied-file-token"].iter()) {
        assert!(!body.contains(s), "{s} reached the provider");
    }
    let w = r.metadata.warnings.iter().find(|w| w.code == "secretsRedacted").expect("a redaction warning");
    assert!(w.message.starts_with("6 secret(s)"), "{}", w.message);
}
