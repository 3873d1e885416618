//! The budget gate over real HTTP: calls that would pass a cap are refused before any request is sent, and
//! every call, failures included, is recorded with its cost.

use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use aurora::llm::{
    Budget, BudgetConfig, BudgetScope, Llm, LlmClient, LlmError, MemoryUsageLog, PriceTable, QueryId, StreamEvent,
    UsageLog, UsageRecord,
};

use super::server::{End, FakeServer, Step};
use super::wire::Wire;
use super::{client, drain, request};

/// A budget over a memory log that already holds `spent_usd` for this month.
fn budget(config: BudgetConfig, spent_usd: f64) -> (Arc<Budget>, Arc<MemoryUsageLog>) {
    let log = Arc::new(MemoryUsageLog::new());
    let budget = Arc::new(Budget::new(config, log.clone()));
    if spent_usd > 0.0 {
        let earlier = UsageRecord {
            at_ms: budget.now_ms(),
            query_id: None,
            phase: None,
            role: "earlier".into(),
            prompt_version: 1,
            provider: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
            input_tokens: 0,
            output_tokens: 0,
            estimated: false,
            cost_usd: spent_usd,
            price_known: true,
            duration_ms: 0,
            status: "ok".into(),
        };
        log.record(&earlier).expect("memory log");
    }
    (budget, log)
}

fn monthly(limit: f64) -> BudgetConfig {
    BudgetConfig { monthly_usd: limit, per_query_usd: 0.0, ..BudgetConfig::default() }
}

#[tokio::test]
async fn a_call_that_would_pass_the_monthly_cap_is_refused_before_any_request() {
    let wire = Wire::Anthropic;
    let server = FakeServer::start(vec![wire.text("never")]).await;
    let (budget, _) = budget(monthly(1.0), 0.9995);
    let llm = client(wire, &server.url).with_budget(budget);
    let err = llm.complete(&request(), &CancellationToken::new()).await.expect_err("over the cap");
    match &err {
        LlmError::BudgetExceeded { scope, consumed_usd, limit_usd, estimated_usd } => {
            assert_eq!(*scope, BudgetScope::Monthly);
            assert!((consumed_usd - 0.9995).abs() < 1e-9);
            assert_eq!(*limit_usd, 1.0);
            assert!(*estimated_usd > 0.0005);
        }
        other => panic!("expected BudgetExceeded, got {other}"),
    }
    assert!(err.to_string().starts_with("monthly budget (budget.monthlyUsd) exceeded: spent 0.9995 USD of 1.00 USD"));
    assert!(llm.stream(&request(), &CancellationToken::new()).await.is_err());
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn the_per_query_cap_counts_what_the_query_already_spent() {
    let wire = Wire::Anthropic;
    // 4000 output tokens of claude-sonnet-4-5 cost 0.06 USD.
    let costly = Step::json(
        200,
        &json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": wire.model(),
            "content": [{"type": "text", "text": "long answer"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 4000},
        }),
    );
    let server = FakeServer::start(vec![costly, wire.text("other query")]).await;
    let (budget, _) = budget(BudgetConfig { per_query_usd: 0.05, monthly_usd: 0.0, ..BudgetConfig::default() }, 0.0);
    let llm = client(wire, &server.url).with_budget(budget.clone());
    let q1 = request().with_query(QueryId("q1".into()), "decompose");
    let first = llm.complete(&q1, &CancellationToken::new()).await.expect("first call fits");
    assert!((first.usage.cost_usd - (10.0 * 3.0 + 4000.0 * 15.0) / 1e6).abs() < 1e-12);
    let err = llm.complete(&q1, &CancellationToken::new()).await.expect_err("the query is over its cap");
    assert!(matches!(err, LlmError::BudgetExceeded { scope: BudgetScope::Query, .. }), "{err}");
    assert_eq!(server.count(), 1);
    let q2 = request().with_query(QueryId("q2".into()), "decompose");
    llm.complete(&q2, &CancellationToken::new()).await.expect("another query has its own cap");
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn every_call_is_recorded_with_its_cost_and_status() {
    let wire = Wire::Anthropic;
    let server = FakeServer::start(vec![wire.text("ok"), wire.error(401, "bad key")]).await;
    let (budget, log) = budget(monthly(10.0), 0.0);
    let llm = client(wire, &server.url).with_budget(budget.clone());
    let req = request().with_query(QueryId("q7".into()), "synthesize");
    llm.complete(&req, &CancellationToken::new()).await.expect("ok");
    llm.complete(&req, &CancellationToken::new()).await.expect_err("401");
    let records = log.records();
    assert_eq!(records.len(), 2);
    let ok = &records[0];
    assert_eq!(
        (ok.role.as_str(), ok.query_id.as_deref(), ok.phase.as_deref()),
        ("test.hello", Some("q7"), Some("synthesize"))
    );
    assert_eq!((ok.provider.as_str(), ok.model.as_str(), ok.status.as_str()), ("anthropic", "claude-sonnet-4-5", "ok"));
    assert_eq!((ok.input_tokens, ok.output_tokens, ok.estimated, ok.price_known), (12, 7, false, true));
    assert!((ok.cost_usd - (12.0 * 3.0 + 7.0 * 15.0) / 1e6).abs() < 1e-12);
    assert_eq!((records[1].status.as_str(), records[1].cost_usd), ("auth", 0.0));
    let status = budget.status().expect("status");
    assert_eq!(status.total_entries, 2);
    assert!((status.consumed_usd - ok.cost_usd).abs() < 1e-12);
    assert!(!status.at_soft_limit);
}

/// A record of `cost_usd` spent now, outside any query.
fn spent(budget: &Budget, cost_usd: f64) -> UsageRecord {
    UsageRecord {
        at_ms: budget.now_ms(),
        query_id: None,
        phase: None,
        role: "elsewhere".into(),
        prompt_version: 1,
        provider: "anthropic".into(),
        model: "claude-sonnet-4-5".into(),
        input_tokens: 0,
        output_tokens: 0,
        estimated: false,
        cost_usd,
        price_known: true,
        duration_ms: 0,
        status: "ok".into(),
    }
}

#[tokio::test]
async fn the_soft_limit_warns_on_the_response_but_lets_the_call_through() {
    let wire = Wire::Anthropic;
    let server =
        FakeServer::start(vec![wire.text("under"), wire.text("over"), wire.stream(&["streamed"], End::Complete)]).await;
    let (budget, log) = budget(monthly(1.0), 0.5);
    let llm = client(wire, &server.url).with_budget(budget.clone());
    let under = llm.complete(&request(), &CancellationToken::new()).await.expect("under the soft limit");
    assert_eq!(under.usage.budget_warning, None);
    // Spend elsewhere takes the month past 80%.
    log.record(&spent(&budget, 0.3)).expect("memory log");
    let over = llm.complete(&request(), &CancellationToken::new()).await.expect("under the hard limit");
    assert_eq!(over.content, "over");
    let warning = over.usage.budget_warning.clone().expect("a warning past the soft limit");
    assert_eq!((warning.limit_usd, warning.soft_limit_pct), (1.0, 80));
    assert_eq!(warning.period, budget.status().expect("status").period);
    // Recorded so far, plus this call's estimate.
    let projected = 0.8 + under.usage.cost_usd + llm.estimate_usd(&request());
    assert!((warning.projected_usd - projected).abs() < 1e-9, "{warning:?}, expected {projected}");
    let (_, done) = drain(llm.stream(&request(), &CancellationToken::new()).await.expect("stream")).await;
    assert!(done.expect("streamed").usage.budget_warning.is_some());
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn calls_started_together_cannot_pass_the_cap_together() {
    let wire = Wire::Anthropic;
    let server = FakeServer::start((0..5).map(|_| wire.text("ok")).collect()).await;
    let estimate = client(wire, &server.url).estimate_usd(&request());
    assert!(estimate > 0.0);
    // Room for two calls at their estimate, not three.
    let (budget, log) = budget(monthly(2.5 * estimate), 0.0);
    let llm = client(wire, &server.url).with_budget(budget.clone());
    let req = request();
    let cancel = CancellationToken::new();
    let results = futures_util::future::join_all((0..5).map(|_| llm.complete(&req, &cancel))).await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(LlmError::BudgetExceeded { scope: BudgetScope::Monthly, .. })))
        .count();
    assert_eq!((admitted, refused), (2, 3), "{results:?}");
    assert_eq!(server.count(), 2);
    assert_eq!(log.records().len(), 2);
    assert_eq!(budget.in_flight_usd(), 0.0, "every hold was released");
}

#[tokio::test]
async fn a_dropped_or_cancelled_stream_is_recorded_at_an_estimate() {
    let wire = Wire::Anthropic;
    let server = FakeServer::start(vec![wire.stream(&["first"], End::Hang), wire.stream(&["first"], End::Hang)]).await;
    let (budget, log) = budget(monthly(10.0), 0.0);
    let llm = client(wire, &server.url).with_budget(budget.clone());
    let mut stream = llm.stream(&request(), &CancellationToken::new()).await.expect("stream starts");
    assert_eq!(stream.next().await.expect("event").expect("delta"), StreamEvent::Delta("first".into()));
    assert!(budget.in_flight_usd() > 0.0);
    drop(stream);
    let cancel = CancellationToken::new();
    let mut stream = llm.stream(&request(), &cancel).await.expect("stream starts");
    stream.next().await.expect("event").expect("delta");
    cancel.cancel();
    assert!(matches!(stream.next().await, Some(Err(LlmError::Cancelled))));
    let records = log.records();
    let statuses: Vec<&str> = records.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, vec!["dropped", "cancelled"]);
    // "You are terse." and "Say hello" are 23 characters sent (6 tokens), "first" 5 received (2 tokens).
    for r in &records {
        assert_eq!((r.input_tokens, r.output_tokens, r.estimated, r.price_known), (6, 2, true, true), "{r:?}");
        assert!((r.cost_usd - (6.0 * 3.0 + 2.0 * 15.0) / 1e6).abs() < 1e-12, "{r:?}");
    }
    assert_eq!(budget.in_flight_usd(), 0.0);
}

#[tokio::test]
async fn local_models_are_never_blocked() {
    let wire = Wire::Ollama;
    let server = FakeServer::start(vec![wire.text("free")]).await;
    let (budget, log) = budget(monthly(1.0), 5.0);
    let llm = client(wire, &server.url).with_budget(budget);
    let response = llm.complete(&request(), &CancellationToken::new()).await.expect("local is free");
    assert_eq!((response.usage.cost_usd, response.usage.price_known), (0.0, true));
    assert_eq!(log.records().len(), 2);
}

#[tokio::test]
async fn unknown_models_are_flagged_in_the_record() {
    let reply = Step::json(
        200,
        &json!({
            "id": "c1", "object": "chat.completion", "model": "my-finetune",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7},
        }),
    );
    let server = FakeServer::start(vec![reply]).await;
    let (budget, log) = budget(monthly(10.0), 0.0);
    // The default table, not the one `from_config` builds, which treats a server on loopback as free.
    let llm: Llm = client(Wire::OpenAi, &server.url).with_prices(PriceTable::default()).with_budget(budget);
    let req = request().with_model("my-finetune");
    assert_eq!(llm.estimate_usd(&req), 0.0);
    let response = llm.complete(&req, &CancellationToken::new()).await.expect("ok");
    assert!(!response.usage.price_known);
    let record = &log.records()[0];
    assert_eq!((record.model.as_str(), record.price_known, record.cost_usd), ("my-finetune", false, 0.0));
}

#[tokio::test]
async fn unknown_models_are_refused_once_the_month_is_spent() {
    let server = FakeServer::start(vec![Wire::OpenAi.text("never")]).await;
    let (budget, _) = budget(monthly(10.0), 10.0);
    let llm: Llm = client(Wire::OpenAi, &server.url).with_prices(PriceTable::default()).with_budget(budget);
    let req = request().with_model("my-finetune");
    assert_eq!(llm.estimate_usd(&req), 0.0);
    let err = llm.complete(&req, &CancellationToken::new()).await.expect_err("the month is spent");
    assert!(matches!(err, LlmError::BudgetExceeded { scope: BudgetScope::Monthly, .. }), "{err}");
    assert_eq!(server.count(), 0);
}
