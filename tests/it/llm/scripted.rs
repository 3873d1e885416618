//! The scripted client: replies by role id in FIFO order, targeted repairs, recorded usage, latency and
//! failure injection, and loud failure on anything unscripted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use aurora::llm::{
    Budget, BudgetConfig, Failure, Llm, LlmClient, LlmError, LlmRequest, MemoryUsageLog, Reply, ScriptedLlm,
};

use super::{Plan, drain, fast_retry};

fn ask(role: &'static str) -> LlmRequest {
    // The same prompt for every role: dispatch must not look at it.
    LlmRequest::new(role, "system", "the same prompt")
}

async fn text(llm: &dyn LlmClient, role: &'static str) -> Result<String, LlmError> {
    llm.complete(&ask(role), &CancellationToken::new()).await.map(|r| r.content)
}

#[tokio::test]
async fn replies_are_chosen_by_role_in_order() {
    let llm = ScriptedLlm::new()
        .on("soar.decompose", Reply::text("plan A"))
        .on("soar.verify.self", Reply::json(json!({"verdict": "RETRY"})))
        .on("soar.decompose", Reply::text("plan B"));
    assert_eq!(text(&llm, "soar.verify.self").await.expect("scripted"), r#"{"verdict":"RETRY"}"#);
    assert_eq!(text(&llm, "soar.decompose").await.expect("scripted"), "plan A");
    assert_eq!(text(&llm, "soar.decompose").await.expect("scripted"), "plan B");
    let roles: Vec<String> = llm.requests().iter().map(|r| r.role.to_string()).collect();
    assert_eq!(roles, vec!["soar.verify.self", "soar.decompose", "soar.decompose"]);
    llm.assert_all_consumed();
}

#[tokio::test]
async fn repairs_can_be_targeted() {
    let llm = ScriptedLlm::new()
        .on("agent.code-analyzer", Reply::text("not json"))
        .on_repair("agent.code-analyzer", Reply::json(json!({"goal": "g", "steps": ["s"]})));
    let reply = (&llm as &dyn LlmClient).json::<Plan>(ask("agent.code-analyzer"), &CancellationToken::new()).await;
    assert_eq!(reply.expect("repaired").value.steps, vec!["s"]);
    let requests = llm.requests();
    assert!(!requests[0].repair && requests[1].repair);
    assert!(requests[1].messages[2].text.contains("contains no JSON object"));
    llm.assert_all_consumed();
}

#[tokio::test]
async fn usage_is_reported_priced_and_recorded() {
    let scripted = ScriptedLlm::new()
        .posing_as("anthropic", "claude-sonnet-4-5")
        .on("soar.decompose", Reply::json(json!({"goal": "g", "steps": ["s"]})).usage(900, 300))
        .on("soar.synthesize", Reply::text("estimated"));
    let log = Arc::new(MemoryUsageLog::new());
    let budget = Arc::new(Budget::new(BudgetConfig::default(), log.clone()));
    let llm = Llm::new(Arc::new(scripted)).with_budget(budget);
    let first = llm.complete(&ask("soar.decompose"), &CancellationToken::new()).await.expect("scripted");
    assert_eq!((first.usage.input_tokens, first.usage.output_tokens, first.usage.estimated), (900, 300, false));
    assert!((first.usage.cost_usd - (900.0 * 3.0 + 300.0 * 15.0) / 1e6).abs() < 1e-12);
    let second = llm.complete(&ask("soar.synthesize"), &CancellationToken::new()).await.expect("scripted");
    assert!(second.usage.estimated);
    let records = log.records();
    assert_eq!(records.len(), 2);
    assert_eq!((records[0].role.as_str(), records[0].input_tokens), ("soar.decompose", 900));
}

#[tokio::test]
async fn latency_is_injected() {
    let llm = ScriptedLlm::new().on("r", Reply::text("slow").delay(Duration::from_millis(60)));
    let started = Instant::now();
    let response = llm.complete(&ask("r"), &CancellationToken::new()).await.expect("scripted");
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert!(response.latency_ms >= 60);
}

#[tokio::test]
async fn failures_are_injected_and_retried_like_real_ones() {
    let scripted = Arc::new(
        ScriptedLlm::new()
            .on("r", Reply::error(Failure::RateLimited))
            .on("r", Reply::error(Failure::Server))
            .on("r", Reply::text("third time"))
            .on("auth", Reply::error(Failure::Auth)),
    );
    let llm = Llm::new(scripted.clone()).with_retry(fast_retry());
    assert_eq!(text(&llm, "r").await.expect("retried"), "third time");
    assert!(matches!(text(&llm, "auth").await, Err(LlmError::Auth { .. })));
    assert_eq!(scripted.requests().len(), 4);
    scripted.assert_all_consumed();
}

#[tokio::test]
async fn hang_ends_on_cancel_and_cuts_end_streams() {
    let llm = ScriptedLlm::new()
        .on("hang", Reply::hang())
        .on("cut", Reply::cut_after(vec!["par".into(), "tial".into()]))
        .on("stream", Reply::stream(vec!["a".into(), "b".into()]));
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        canceller.cancel();
    });
    let req = ask("hang");
    assert!(matches!(llm.complete(&req, &cancel).await, Err(LlmError::Cancelled)));
    let (deltas, end) = drain(llm.stream(&ask("cut"), &CancellationToken::new()).await.expect("stream")).await;
    assert_eq!(deltas, vec!["par", "tial"]);
    assert!(matches!(end, Err(LlmError::StreamInterrupted { received_chars: 7, .. })));
    let (deltas, end) = drain(llm.stream(&ask("stream"), &CancellationToken::new()).await.expect("stream")).await;
    assert_eq!((deltas.concat(), end.expect("done").content), ("ab".into(), "ab".into()));
}

#[tokio::test]
async fn a_timeout_failure_is_typed() {
    let llm = ScriptedLlm::new().on("r", Reply::error(Failure::Timeout));
    assert!(matches!(text(&llm, "r").await, Err(LlmError::Timeout { .. })));
}

#[tokio::test]
#[should_panic(expected = "unscripted LLM calls: [\"soar.decompose (attempt 1)\"]")]
async fn an_unscripted_call_fails_the_test() {
    let llm = ScriptedLlm::new();
    let err = text(&llm, "soar.decompose").await.expect_err("nothing scripted");
    assert_eq!(err.to_string(), "scripted LLM: no scripted reply for soar.decompose (attempt 1)");
    llm.assert_all_consumed();
}

#[tokio::test]
#[should_panic(expected = "scripted replies never used")]
async fn unused_replies_fail_the_test() {
    ScriptedLlm::new().on("r", Reply::text("never asked")).assert_all_consumed();
}
