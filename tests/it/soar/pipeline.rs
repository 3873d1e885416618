//! The pipeline end to end with the scripted client over a real, indexed fixture workspace.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use aurora::config::Config;
use aurora::llm::{Budget, BudgetConfig, Failure, MemoryUsageLog, Reply, ScriptedLlm, UsageLog, UsageRecord};
use aurora::soar::types::{AgentStatus, Complexity, ConfidenceBasis, DropReason, Outcome, PhaseKey, PhaseStatus};
use aurora::soar::{SoarError, SoarEvent, SoarRequest};

use super::harness::*;

#[tokio::test]
async fn simple_path_makes_one_call_validates_citations_and_records_nothing() {
    let f = Fixture::new();
    let check = f.chunk("check_token");
    let reply = answer("Tokens are checked by `check_token` [c1].", &[("c1", &check)], &[]);
    let s = Arc::new(ScriptedLlm::new().on("soar.simpleAnswer", Reply::stream(pieces(&reply, 5))));
    let (r, events) = f.run_with(Some(Fixture::llm(&s)), SoarRequest::ask("where is check_token")).await;
    let r = r.unwrap();
    s.assert_all_consumed();
    assert_eq!(r.outcome, Outcome::AnsweredSimple);
    assert_eq!(r.complexity, Complexity::Simple);
    assert_eq!(r.answer, "Tokens are checked by `check_token` [1].");
    assert_eq!(r.citations.len(), 1);
    assert_eq!(r.citations[0].file, "app/auth.py");
    assert_eq!(r.citations[0].name, "check_token");
    assert!((r.confidence - 0.7).abs() < 1e-9, "unverified 0.7 × citation factor 1.0");
    assert_eq!(r.metadata.confidence_basis, ConfidenceBasis::Unverified);
    assert!(r.metadata.simple_path);
    for k in [PhaseKey::Decompose, PhaseKey::Verify, PhaseKey::Route, PhaseKey::Collect, PhaseKey::Record] {
        assert_eq!(r.metadata.phases[&k].status, PhaseStatus::Skipped, "{k:?}");
    }
    assert_eq!(r.metadata.phases.len(), 9);
    // The answer streamed, and progress only grew.
    let streamed: String = events
        .iter()
        .filter_map(|e| if let SoarEvent::AnswerDelta { text, .. } = e { Some(text.as_str()) } else { None })
        .collect();
    assert_eq!(streamed, "Tokens are checked by `check_token` [c1].");
    let pcts: Vec<u32> = events
        .iter()
        .filter_map(|e| if let SoarEvent::Progress { percentage, .. } = e { Some(*percentage) } else { None })
        .collect();
    assert!(pcts.windows(2).all(|w| w[0] <= w[1]), "{pcts:?}");
    assert_eq!(f.count("SELECT count(*) FROM reasoning_chunks"), 0);
    assert_eq!(f.count("SELECT count(*) FROM conversations WHERE outcome = 'answered_simple'"), 1);
    // The cited chunk was reinforced? No: SIMPLE answers record nothing but the conversation.
    let prompt = user_text(&s.requests()[0]);
    assert!(prompt.contains(&format!("[chunk {check}] app/auth.py:L5-L8")), "{prompt}");
}

fn medium_script(f: &Fixture, synth_score: f64) -> Arc<ScriptedLlm> {
    let refresh = f.chunk("refresh_token");
    Arc::new(
        ScriptedLlm::new()
            .on("soar.decompose", Reply::json(plan(vec![sg("Explain token refresh", "code-analyzer", true, &[])])))
            .on("soar.verify.self", Reply::json(review(0.85)))
            .on(
                "agent.code-analyzer",
                Reply::json(agent("refresh_token reissues expired tokens [c1]", &[("c1", &refresh)])),
            )
            .on(
                "soar.synthesize",
                Reply::json(answer("Expired tokens are reissued [c1].", &[("c1", &refresh)], &["sg-1"])),
            )
            .on("soar.verifySynthesis", Reply::json(synth_review(synth_score))),
    )
}

/// Classified MEDIUM by the keyword classifier; names code the fixture has.
const MEDIUM_Q: &str = "Implement user registration feature";
/// A question about the fixture's code, asked at a fixed level.
const AUTH_Q: &str = "how do check_token and refresh_token handle an expired token";

#[tokio::test]
async fn medium_happy_path_runs_every_phase_and_is_stored_for_learning() {
    let f = Fixture::new();
    let s = medium_script(&f, 0.7);
    let r = f.ask(&s, MEDIUM_Q).await;
    s.assert_all_consumed();
    assert_eq!(r.complexity, Complexity::Medium);
    assert_eq!(r.outcome, Outcome::Answered, "{}", r.answer);
    assert_eq!(
        roles(&s),
        ["soar.decompose", "soar.verify.self", "agent.code-analyzer", "soar.synthesize", "soar.verifySynthesis"]
    );
    assert_eq!(r.answer, "Expired tokens are reissued [1].");
    assert!((r.confidence - 0.7).abs() < 1e-9);
    assert_eq!(r.metadata.confidence_basis, ConfidenceBasis::Verified);
    assert!(r.metadata.cached);
    assert!(!r.metadata.pattern_marked);
    let base: f64 = f.ws.conn().query_row("SELECT base_level FROM reasoning_chunks", [], |r| r.get(0)).unwrap();
    assert!((base - 0.05).abs() < 1e-9);
    assert_eq!(f.count("SELECT count(*) FROM access_log WHERE kind = 'cited'"), 1);
    assert_eq!(r.reasoning_trace.traceability[0].subgoal_id, "sg-1");
    assert_eq!(r.metadata.usage.calls, 5);
    assert!(PhaseKey::ALL.iter().all(|k| r.metadata.phases[k].status == PhaseStatus::Ok), "{:?}", r.metadata.phases);
    // The agent saw the phase 2 context and the plan goal.
    let agent_prompt = user_text(&calls(&s, "agent.code-analyzer")[0]);
    assert!(agent_prompt.contains("Your subgoal [sg-1] (critical): Explain token refresh"));
}

#[tokio::test]
async fn record_thresholds_decide_storage_and_the_activation_delta() {
    for (score, stored, marked, delta) in
        [(0.49, false, false, 0.0), (0.50, true, false, 0.05), (0.79, true, false, 0.05), (0.80, true, true, 0.2)]
    {
        let mut config = Config::default();
        config.soar.synthesis.pass_threshold = 0.4;
        let f = Fixture::with_config(config);
        let s = medium_script(&f, score);
        let r = f.ask_at(&s, AUTH_Q, Complexity::Medium).await;
        assert!((r.confidence - score).abs() < 1e-9);
        assert_eq!(r.metadata.cached, stored, "s = {score}");
        assert_eq!(r.metadata.pattern_marked, marked, "s = {score}");
        let rows = f.count("SELECT count(*) FROM reasoning_chunks");
        assert_eq!(rows, i64::from(stored));
        if stored {
            let base: f64 = f.ws.conn().query_row("SELECT base_level FROM reasoning_chunks", [], |r| r.get(0)).unwrap();
            assert!((base - delta).abs() < 1e-9, "s = {score}: {base}");
        }
    }
}

#[tokio::test]
async fn retry_then_pass_executes_the_revised_three_subgoal_plan() {
    let f = Fixture::new();
    let check = f.chunk("check_token");
    let s = Arc::new(
        ScriptedLlm::new()
            .on("soar.decompose", Reply::json(plan(vec![sg("Look at auth", "code-analyzer", true, &[])])))
            .on("soar.verify.adversarial", Reply::json(adversarial(0.62, &[])))
            .on(
                "soar.decompose",
                Reply::json(plan(vec![
                    sg("Trace check_token", "code-analyzer", true, &[]),
                    sg("Find callers of check_token", "dependency-tracker", false, &[]),
                    sg("Assess expiry handling risks", "security-scanner", false, &[0]),
                ])),
            )
            .on("soar.verify.adversarial", Reply::json(adversarial(0.81, &[])))
            .on("agent.code-analyzer", Reply::json(agent("check_token compares expiry [c1]", &[("c1", &check)])))
            .on("agent.dependency-tracker", Reply::json(agent("create_order calls it", &[])))
            .on("agent.security-scanner", Reply::json(agent("no clock skew margin", &[])))
            .on(
                "soar.synthesize",
                Reply::json(answer("Expiry is compared [c1].", &[("c1", &check)], &["sg-1", "sg-2", "sg-3"])),
            )
            .on("soar.verifySynthesis", Reply::json(synth_review(0.9))),
    );
    let r = f.ask_at(&s, AUTH_Q, Complexity::Complex).await;
    s.assert_all_consumed();
    assert_eq!(r.complexity, Complexity::Complex);
    assert_eq!(r.outcome, Outcome::Answered);
    assert_eq!(r.reasoning_trace.traceability.len(), 3, "the revised plan ran");
    let decomposes = calls(&s, "soar.decompose");
    assert_eq!(decomposes[1].attempt, 2);
    let second = user_text(&decomposes[1]);
    assert!(second.contains("was rejected: score 0.62, RETRY"), "{second}");
    assert!(second.contains("[EDGE CASE] empty cart"), "{second}");
    assert!(second.contains(&format!("[chunk {check}]")), "the retry keeps the context: {second}");
    let verify = &r.metadata.phases[&PhaseKey::Verify].detail;
    assert_eq!(verify["retry_count"], 1);
    assert_eq!(verify["attempts"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_adversarial_critical_issue_caps_pass_at_retry_and_retries_run_out() {
    let f = Fixture::new();
    let mut s = ScriptedLlm::new();
    for _ in 0..3 {
        s = s
            .on("soar.decompose", Reply::json(plan(vec![sg("Look at auth", "code-analyzer", true, &[])])))
            .on("soar.verify.adversarial", Reply::json(adversarial(0.75, &["ignores expired sessions"])));
    }
    let s = Arc::new(s);
    let r = f.ask_at(&s, AUTH_Q, Complexity::Complex).await;
    s.assert_all_consumed();
    assert_eq!(r.outcome, Outcome::VerificationFailed);
    assert_eq!(r.confidence, 0.0);
    assert!(
        r.answer.starts_with("Could not build a reliable plan for this question (score 0.75, RETRY)"),
        "{}",
        r.answer
    );
    assert!(r.answer.contains("[CRITICAL] ignores expired sessions"));
    assert!(!r.related.is_empty());
    let attempts = r.metadata.phases[&PhaseKey::Verify].detail["attempts"].as_array().unwrap().clone();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["review"]["verdict_corrected"], true);
    for k in [PhaseKey::Route, PhaseKey::Collect, PhaseKey::Synthesize, PhaseKey::Record] {
        assert_eq!(r.metadata.phases[&k].status, PhaseStatus::Skipped);
    }
}

#[tokio::test]
async fn a_failing_review_stops_without_retry() {
    let f = Fixture::new();
    let s = Arc::new(
        ScriptedLlm::new()
            .on("soar.decompose", Reply::json(plan(vec![sg("x", "code-analyzer", true, &[])])))
            .on("soar.verify.self", Reply::json(review(0.3))),
    );
    let r = f.ask_at(&s, AUTH_Q, Complexity::Medium).await;
    s.assert_all_consumed();
    assert_eq!(r.outcome, Outcome::VerificationFailed);
    assert!(r.answer.contains("(score 0.30, FAIL)"));
}

#[tokio::test]
async fn structural_failures_give_feedback_without_a_review_call() {
    let f = Fixture::new();
    let refresh = f.chunk("refresh_token");
    let s = Arc::new(
        ScriptedLlm::new()
            .on(
                "soar.decompose",
                Reply::json(plan(vec![sg("a", "code-analyzer", true, &[1]), sg("b", "code-analyzer", false, &[0])])),
            )
            .on("soar.decompose", Reply::json(plan(vec![sg("a", "code-analyzer", true, &[])])))
            .on("soar.verify.self", Reply::json(review(0.9)))
            .on("agent.code-analyzer", Reply::json(agent("ok [c1]", &[("c1", &refresh)])))
            .on("soar.synthesize", Reply::json(answer("fine [c1]", &[("c1", &refresh)], &["sg-1"])))
            .on("soar.verifySynthesis", Reply::json(synth_review(0.9))),
    );
    let r = f.ask_at(&s, AUTH_Q, Complexity::Medium).await;
    s.assert_all_consumed();
    assert_eq!(r.outcome, Outcome::Answered);
    assert_eq!(calls(&s, "soar.verify.self").len(), 1, "the cyclic plan got no review");
    let second = user_text(&calls(&s, "soar.decompose")[1]);
    assert!(second.contains("dependency cycle among sg-1, sg-2"), "{second}");
}

#[tokio::test]
async fn depends_on_drives_the_waves_and_outputs_flow_to_dependents() {
    let f = Fixture::new();
    let check = f.chunk("check_token");
    let mut p = plan(vec![
        sg("Trace check_token", "code-analyzer", true, &[]),
        sg("Who calls it", "dependency-tracker", false, &[0]),
        sg("Risks", "security-scanner", false, &[0]),
    ]);
    p["execution_order"] = json!([[0], [1]]);
    let s = Arc::new(
        ScriptedLlm::new()
            .on("soar.decompose", Reply::json(p))
            .on("soar.verify.adversarial", Reply::json(adversarial(0.9, &[])))
            .on(
                "agent.code-analyzer",
                Reply::json(agent("SUMMARY-ONE compares expires_at [c1]", &[("c1", &check)])).delay(SHORT),
            )
            .on("agent.dependency-tracker", Reply::json(agent("called by create_order", &[])))
            .on("agent.security-scanner", Reply::json(agent("fine", &[])))
            .on("soar.synthesize", Reply::json(answer("done [c1]", &[("c1", &check)], &["sg-1", "sg-2", "sg-3"])))
            .on("soar.verifySynthesis", Reply::json(synth_review(0.9))),
    );
    let r = f.ask_at(&s, AUTH_Q, Complexity::Complex).await;
    s.assert_all_consumed();
    let order = roles(&s);
    let first_agent = order.iter().position(|r| r.starts_with("agent.")).unwrap();
    assert_eq!(order[first_agent], "agent.code-analyzer", "{order:?}");
    let collect = &r.metadata.phases[&PhaseKey::Collect].detail;
    assert_eq!(collect["waves"][0]["subgoals"], json!([0]));
    assert_eq!(collect["waves"][1]["subgoals"], json!([1, 2]));
    for role in ["agent.dependency-tracker", "agent.security-scanner"] {
        let prompt = user_text(&calls(&s, role)[0]);
        assert!(
            prompt.contains("✓ [sg-1] code-analyzer: SUMMARY-ONE compares expires_at (app/auth.py:L5-L8)"),
            "{prompt}"
        );
    }
    assert!(r.metadata.warnings.iter().any(|w| w.code == "executionOrderIgnored"));
    assert_eq!(r.reasoning_trace.traceability.iter().map(|t| t.subgoal_index).collect::<Vec<_>>(), [0, 1, 2]);
}

#[tokio::test]
async fn completion_order_does_not_move_outputs_between_subgoals() {
    let f = Fixture::new();
    let check = f.chunk("check_token");
    let s = Arc::new(
        ScriptedLlm::new()
            .on(
                "soar.decompose",
                Reply::json(plan(vec![
                    sg("slow analysis of check_token", "code-analyzer", false, &[]),
                    sg("fast scan", "security-scanner", false, &[]),
                ])),
            )
            .on("soar.verify.adversarial", Reply::json(adversarial(0.9, &[])))
            .on(
                "agent.code-analyzer",
                Reply::json(agent("SLOW [c1]", &[("c1", &check)])).delay(Duration::from_millis(200)),
            )
            .on("agent.security-scanner", Reply::json(agent("FAST", &[])))
            .on("soar.synthesize", Reply::json(answer("both [c1]", &[("c1", &check)], &["sg-2", "sg-1"])))
            .on("soar.verifySynthesis", Reply::json(synth_review(0.9))),
    );
    let r = f.ask_at(&s, AUTH_Q, Complexity::Complex).await;
    let collect = &r.metadata.phases[&PhaseKey::Collect].detail;
    assert_eq!(collect["completion_order"], json!([1, 0]));
    assert_eq!(collect["outputs"][0]["summary"], "SLOW [c1]");
    assert_eq!(collect["outputs"][1]["summary"], "FAST");
    let t = &r.reasoning_trace.traceability;
    assert_eq!((t[0].subgoal_index, t[0].description.as_str()), (1, "fast scan"));
    assert_eq!((t[1].subgoal_index, t[1].description.as_str()), (0, "slow analysis of check_token"));
}

#[tokio::test]
async fn a_non_critical_failure_is_partial_and_dependents_see_it() {
    let f = Fixture::new();
    let check = f.chunk("check_token");
    let s = Arc::new(
        ScriptedLlm::new()
            .on(
                "soar.decompose",
                Reply::json(plan(vec![
                    sg("scan", "security-scanner", false, &[]),
                    sg("Explain check_token expiry", "code-analyzer", true, &[0]),
                ])),
            )
            .on("soar.verify.adversarial", Reply::json(adversarial(0.9, &[])))
            .on("agent.security-scanner", Reply::error(Failure::Auth))
            .on("agent.code-analyzer", Reply::json(agent("explained [c1]", &[("c1", &check)])))
            .on("soar.synthesize", Reply::json(answer("partial [c1]", &[("c1", &check)], &["sg-2"])))
            .on("soar.verifySynthesis", Reply::json(synth_review(0.9))),
    );
    let r = f.ask_at(&s, AUTH_Q, Complexity::Complex).await;
    s.assert_all_consumed();
    assert_eq!(r.outcome, Outcome::Partial);
    assert!((r.confidence - 0.45).abs() < 1e-9, "0.9 × 1/2 × 1.0 = {}", r.confidence);
    let prompt = user_text(&calls(&s, "agent.code-analyzer")[0]);
    assert!(prompt.contains("✗ [sg-1] security-scanner: FAILED"), "{prompt}");
    assert!(prompt.contains("WARNING: 1/1 dependencies failed."));
}

#[tokio::test]
async fn a_critical_failure_skips_later_waves_caps_confidence_and_stores_nothing() {
    let f = Fixture::new();
    let check = f.chunk("check_token");
    let s = Arc::new(
        ScriptedLlm::new()
            .on(
                "soar.decompose",
                Reply::json(plan(vec![
                    sg("Explain check_token expiry", "code-analyzer", false, &[]),
                    sg("scan", "security-scanner", true, &[]),
                    sg("callers", "dependency-tracker", false, &[1]),
                ])),
            )
            .on("soar.verify.adversarial", Reply::json(adversarial(0.9, &[])))
            .on("agent.code-analyzer", Reply::json(agent("explained [c1]", &[("c1", &check)])))
            .on("agent.security-scanner", Reply::error(Failure::Auth))
            .on("soar.synthesize", Reply::json(answer("what we know [c1]", &[("c1", &check)], &["sg-1"])))
            .on("soar.verifySynthesis", Reply::json(synth_review(0.95))),
    );
    let r = f.ask_at(&s, AUTH_Q, Complexity::Complex).await;
    s.assert_all_consumed();
    assert_eq!(r.outcome, Outcome::Partial);
    assert!(r.confidence <= 0.49);
    let collect = &r.metadata.phases[&PhaseKey::Collect].detail;
    assert_eq!(collect["critical_failure"], 1);
    assert_eq!(collect["outputs"][2]["status"], "skipped");
    assert_eq!(collect["outputs"][2]["error"], "critical subgoal sg-2 failed");
    assert_eq!(f.count("SELECT count(*) FROM reasoning_chunks"), 0);
}

#[tokio::test]
async fn all_agents_failing_skips_synthesis_and_penalises_the_patterns_used() {
    let f = Fixture::new();
    // A stored pattern similar to the query, to be used as an example.
    let good = medium_script(&f, 0.9);
    let first = f.ask_at(&good, AUTH_Q, Complexity::Medium).await;
    assert!(first.metadata.cached);
    let before: f64 = f.ws.conn().query_row("SELECT base_level FROM reasoning_chunks", [], |r| r.get(0)).unwrap();
    let s = Arc::new(
        ScriptedLlm::new()
            .on("soar.decompose", Reply::json(plan(vec![sg("x", "code-analyzer", true, &[])])))
            .on("soar.verify.self", Reply::json(review(0.9)))
            .on("agent.code-analyzer", Reply::error(Failure::Auth)),
    );
    let (r, _) = f
        .run_with(
            Some(Fixture::llm(&s)),
            SoarRequest { no_cache: true, complexity_override: Some(Complexity::Medium), ..SoarRequest::ask(AUTH_Q) },
        )
        .await;
    let r = r.unwrap();
    s.assert_all_consumed();
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.answer.contains("No subgoal could be completed"), "{}", r.answer);
    assert_eq!(r.metadata.phases[&PhaseKey::Synthesize].status, PhaseStatus::Skipped);
    assert_eq!(r.metadata.phases[&PhaseKey::Collect].status, PhaseStatus::Failed);
    let prompt = user_text(&calls(&s, "soar.decompose")[0]);
    assert!(
        prompt.contains(
            "Examples of good plans:\nQuestion: how do check_token and refresh_token handle an expired token"
        ),
        "{prompt}"
    );
    let after: f64 = f.ws.conn().query_row("SELECT base_level FROM reasoning_chunks", [], |r| r.get(0)).unwrap();
    assert!((after - (before - 0.1)).abs() < 1e-9, "{before} → {after}");
}

#[tokio::test]
async fn invalid_citations_are_dropped_counted_and_markers_renumbered() {
    let f = Fixture::new();
    let check = f.chunk("check_token");
    let refresh = f.chunk("refresh_token");
    let settings = f.chunk("Settings");
    let s = Arc::new(
        ScriptedLlm::new()
            .on(
                "soar.decompose",
                Reply::json(plan(vec![sg("Explain check_token and refresh_token", "code-analyzer", true, &[])])),
            )
            .on("soar.verify.self", Reply::json(review(0.9)))
            .on("agent.code-analyzer", Reply::json(agent("ok [c1] [c2]", &[("c1", &check), ("c2", &refresh)])))
            .on(
                "soar.synthesize",
                Reply::json(json!({
                    "answer": "A [c5] B [c1] C [c2] D [c3] E [c4] F [c6].",
                    "citations": [
                        {"id": "c1", "chunk_id": check},
                        {"id": "c2", "chunk_id": "00000000deadbeef"},
                        {"id": "c3", "chunk_id": refresh, "file": "app/orders.py"},
                        {"id": "c4", "chunk_id": refresh, "start_line": 90, "end_line": 95},
                        {"id": "c5", "file": "app/auth.py", "start_line": 11, "end_line": 12},
                        {"id": "c6", "chunk_id": settings}
                    ],
                    "used_subgoals": ["sg-1", "sg-7"]
                })),
            )
            .on("soar.verifySynthesis", Reply::json(synth_review(0.9))),
    );
    let mut config = Config::default();
    config.soar.retrieval.budget.medium = 1;
    let f2 = Fixture { config, ..f };
    let r = f2.ask_at(&s, AUTH_Q, Complexity::Medium).await;
    let stats = &r.metadata.citations;
    assert_eq!(stats.given, 6);
    assert_eq!(stats.valid, 2, "{stats:?}");
    assert_eq!(stats.dropped_by_reason.get(&DropReason::UnknownChunk), Some(&1));
    assert_eq!(stats.dropped_by_reason.get(&DropReason::FileMismatch), Some(&1));
    assert_eq!(stats.dropped_by_reason.get(&DropReason::OutOfRange), Some(&1));
    assert_eq!(stats.dropped_by_reason.get(&DropReason::NotInContext), Some(&1), "Settings was never shown");
    assert_eq!(r.answer, "A [1] B [2] C D E F.");
    assert_eq!(r.citations[0].file, "app/auth.py");
    assert_eq!((r.citations[0].start_line, r.citations[0].end_line), (10, 11));
    // 0.9 × 1 × 2/6
    assert!((r.confidence - 0.3).abs() < 1e-9, "{}", r.confidence);
    assert!(r.metadata.warnings.iter().any(|w| w.message.contains("sg-7")));
}

#[tokio::test]
async fn cancellation_during_collect_stops_the_agent_and_logs_cancelled() {
    let f = Fixture::new();
    let s = Arc::new(
        ScriptedLlm::new()
            .on(
                "soar.decompose",
                Reply::json(plan(vec![sg("Explain check_token and refresh_token", "code-analyzer", true, &[])])),
            )
            .on("soar.verify.self", Reply::json(review(0.9)))
            .on("agent.code-analyzer", Reply::hang()),
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let pipeline = f.pipeline(Some(Fixture::llm(&s)));
    let run = pipeline.run(
        SoarRequest { complexity_override: Some(Complexity::Medium), ..SoarRequest::ask(AUTH_Q) },
        tx,
        cancel.clone(),
    );
    let watcher = async {
        while let Some(e) = rx.recv().await {
            if let SoarEvent::Progress { phase: PhaseKey::Collect, .. } = e {
                tokio::time::sleep(SHORT).await;
                cancel.cancel();
                break;
            }
        }
    };
    let started = std::time::Instant::now();
    let (result, ()) = tokio::join!(run, watcher);
    assert!(matches!(result, Err(SoarError::Cancelled)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(f.count("SELECT count(*) FROM conversations WHERE outcome = 'cancelled'"), 1);
    assert_eq!(f.count("SELECT count(*) FROM reasoning_chunks"), 0);
}

#[tokio::test]
async fn the_overall_deadline_gives_a_timed_out_envelope() {
    let mut config = Config::default();
    config.soar.timeouts.overall_secs = 1;
    let f = Fixture::with_config(config);
    let s = Arc::new(
        ScriptedLlm::new()
            .on(
                "soar.decompose",
                Reply::json(plan(vec![
                    sg("Explain check_token and refresh_token", "code-analyzer", true, &[]),
                    sg("Scan check_token", "security-scanner", false, &[]),
                ])),
            )
            .on("soar.verify.self", Reply::json(review(0.9)))
            .on("agent.code-analyzer", Reply::hang())
            .on("agent.security-scanner", Reply::json(agent("SCANNED: no issue", &[]))),
    );
    let r = f.ask_at(&s, AUTH_Q, Complexity::Medium).await;
    assert_eq!(r.outcome, Outcome::TimedOut);
    assert!(r.answer.contains("ran out of time"));
    assert!(r.answer.contains("not synthesised") && r.answer.contains("SCANNED: no issue"), "{}", r.answer);
    assert_eq!(f.count("SELECT count(*) FROM conversations WHERE outcome = 'timed_out'"), 1);
}

/// A usage log whose month already holds `spent` USD.
fn spent_log(spent: f64) -> Arc<dyn UsageLog> {
    let log = MemoryUsageLog::new();
    log.record(&UsageRecord { cost_usd: spent, at_ms: aurora::store::now_ms(), ..UsageRecord::default() }).unwrap();
    Arc::new(log)
}

#[tokio::test]
async fn an_exhausted_budget_refuses_before_the_first_call() {
    let f = Fixture::new();
    let s = Arc::new(ScriptedLlm::new().posing_as("anthropic", "claude-sonnet-4-5"));
    let budget = Arc::new(Budget::new(BudgetConfig { monthly_usd: 10.0, ..BudgetConfig::default() }, spent_log(10.0)));
    let llm = Fixture::llm(&s).with_budget(budget);
    let (r, _) = f.run_with(Some(llm), SoarRequest::ask("where is check_token")).await;
    assert!(matches!(r, Err(SoarError::BudgetExceeded { .. })), "{r:?}");
    assert!(s.requests().is_empty(), "nothing was sent");
    assert_eq!(f.count("SELECT count(*) FROM conversations WHERE outcome = 'budget_exceeded'"), 1);
}

#[tokio::test]
async fn a_request_cap_below_the_estimate_refuses_before_the_first_call() {
    let f = Fixture::new();
    let s = Arc::new(ScriptedLlm::new().posing_as("anthropic", "claude-sonnet-4-5"));
    let req = SoarRequest {
        max_cost_usd: Some(0.000_01),
        complexity_override: Some(Complexity::Medium),
        ..SoarRequest::ask(AUTH_Q)
    };
    let (r, _) = f.run_with(Some(Fixture::llm(&s)), req).await;
    assert!(matches!(r, Err(SoarError::BudgetExceeded { .. })), "{r:?}");
    assert!(s.requests().is_empty());
}

#[tokio::test]
async fn malformed_json_is_repaired_once_then_reported() {
    let f = Fixture::new();
    let refresh = f.chunk("refresh_token");
    let s = Arc::new(
        ScriptedLlm::new()
            .on("soar.decompose", Reply::text("Here is my plan: goal is to explain"))
            .on_repair(
                "soar.decompose",
                Reply::json(plan(vec![sg("Explain check_token and refresh_token", "code-analyzer", true, &[])])),
            )
            .on("soar.verify.self", Reply::json(review(0.9)))
            .on("agent.code-analyzer", Reply::json(agent("ok [c1]", &[("c1", &refresh)])))
            .on("soar.synthesize", Reply::json(answer("fine [c1]", &[("c1", &refresh)], &["sg-1"])))
            .on("soar.verifySynthesis", Reply::json(synth_review(0.9))),
    );
    let r = f.ask_at(&s, AUTH_Q, Complexity::Medium).await;
    s.assert_all_consumed();
    assert_eq!(r.outcome, Outcome::Answered);
    assert!(calls(&s, "soar.decompose")[1].repair);

    let s = Arc::new(
        ScriptedLlm::new()
            .on("soar.decompose", Reply::text("no json"))
            .on_repair("soar.decompose", Reply::json(json!({"goal": "", "subgoals": []}))),
    );
    let r = f.ask_at(&s, "how is an order created", Complexity::Medium).await;
    s.assert_all_consumed();
    assert_eq!(r.outcome, Outcome::Failed);
    let failure = r.metadata.llm_failure.as_ref().unwrap();
    assert_eq!(failure.role, "soar.decompose");
    assert_eq!(r.metadata.phases[&PhaseKey::Decompose].status, PhaseStatus::Failed);
}

#[tokio::test]
async fn the_second_identical_query_uses_the_cached_plan_until_the_code_changes() {
    let mut f = Fixture::new();
    let s = medium_script(&f, 0.9);
    let r = f.ask_at(&s, AUTH_Q, Complexity::Medium).await;
    assert!(!r.metadata.decomposition_cache_hit);
    assert_eq!(f.count("SELECT count(*) FROM decomposition_cache"), 1);
    let refresh = f.chunk("refresh_token");
    let s2 = Arc::new(
        ScriptedLlm::new()
            .on("agent.code-analyzer", Reply::json(agent("again [c1]", &[("c1", &refresh)])))
            .on("soar.synthesize", Reply::json(answer("same [c1]", &[("c1", &refresh)], &["sg-1"])))
            .on("soar.verifySynthesis", Reply::json(synth_review(0.9))),
    );
    let r =
        f.ask_at(&s2, "  How do CHECK_TOKEN and refresh_token   handle an expired token ", Complexity::Medium).await;
    s2.assert_all_consumed();
    assert!(r.metadata.decomposition_cache_hit);
    assert_eq!(r.metadata.phases[&PhaseKey::Verify].detail["method"], "cached");
    // A change to shown code invalidates the key.
    f.ws.write("app/auth.py", &AUTH_PY.replace("expires_at > now", "expires_at >= now"));
    f.reindex();
    let s3 = medium_script(&f, 0.9);
    let r = f.ask_at(&s3, AUTH_Q, Complexity::Medium).await;
    s3.assert_all_consumed();
    assert!(!r.metadata.decomposition_cache_hit);
}

#[tokio::test]
async fn without_a_provider_the_answer_lists_locations() {
    let f = Fixture::new();
    let (r, _) = f.run_with(None, SoarRequest::ask("where is the token checked")).await;
    let r = r.unwrap();
    assert_eq!(r.outcome, Outcome::NoLlm);
    assert_eq!(r.confidence, 0.0);
    assert_eq!(r.metadata.confidence_basis, ConfidenceBasis::None);
    assert!(r.answer.contains("No language model is configured"));
    assert!(r.answer.contains("`app/auth.py:L5-L8` function `check_token`"), "{}", r.answer);
    assert!(r.related.iter().any(|c| c.name == "check_token"));
    for k in [
        PhaseKey::Decompose,
        PhaseKey::Verify,
        PhaseKey::Route,
        PhaseKey::Collect,
        PhaseKey::Synthesize,
        PhaseKey::Record,
    ] {
        assert_eq!(r.metadata.phases[&k].status, PhaseStatus::Skipped);
    }
}

#[tokio::test]
async fn agent_statuses_are_reported_by_index() {
    let f = Fixture::new();
    let s = Arc::new(
        ScriptedLlm::new()
            .on(
                "soar.decompose",
                Reply::json(plan(vec![sg("Explain check_token and refresh_token", "code-analyzer", true, &[])])),
            )
            .on("soar.verify.self", Reply::json(review(0.9)))
            .on("agent.code-analyzer", Reply::json(json!({"summary": ""})))
            .on_repair("agent.code-analyzer", Reply::json(json!({"summary": "  "}))),
    );
    let r = f.ask_at(&s, AUTH_Q, Complexity::Medium).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.reasoning_trace.traceability[0].status, AgentStatus::Failed);
}

fn with_external(command: &[&str], timeout_secs: u64) -> Config {
    let mut config = Config::default();
    config.soar.agents.external = vec![aurora::config::ExternalAgentConfig {
        id: "ext-reviewer".into(),
        name: "External reviewer".into(),
        description: "Reviews a change".into(),
        capabilities: vec!["review".into()],
        command: command.iter().map(|c| (*c).to_owned()).collect(),
        timeout_secs,
        ..Default::default()
    }];
    config
}

#[tokio::test]
async fn an_external_agent_that_times_out_falls_back_to_the_llm_executor() {
    let f = Fixture::with_config(with_external(&["sh", "-c", "sleep 30"], 1));
    let check = f.chunk("check_token");
    let s = Arc::new(
        ScriptedLlm::new()
            .on("soar.decompose", Reply::json(plan(vec![sg("Review check_token", "ext-reviewer", true, &[])])))
            .on("soar.verify.self", Reply::json(review(0.9)))
            .on("agent.llm-executor", Reply::json(agent("reviewed check_token [c1]", &[("c1", &check)])))
            .on("soar.synthesize", Reply::json(answer("ok [c1]", &[("c1", &check)], &["sg-1"])))
            .on("soar.verifySynthesis", Reply::json(synth_review(0.9))),
    );
    let started = std::time::Instant::now();
    let r = f.ask_at(&s, AUTH_Q, Complexity::Medium).await;
    s.assert_all_consumed();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(r.outcome, Outcome::Answered);
    let out = &r.metadata.phases[&PhaseKey::Collect].detail["outputs"][0];
    assert_eq!(out["fallbackUsed"], true);
    assert_eq!(out["agentId"], "llm-executor");
    let prompt = user_text(&calls(&s, "agent.llm-executor")[0]);
    assert!(prompt.contains("Act as: External reviewer"), "{prompt}");
}

#[tokio::test]
async fn an_external_agent_answers_with_json_on_stdout() {
    let reply = r#"{"summary": "looks fine", "citations": [], "edits": []}"#;
    let script = format!("cat > /dev/null; echo '{reply}'");
    let f = Fixture::with_config(with_external(&["sh", "-c", &script], 10));
    let check = f.chunk("check_token");
    let s = Arc::new(
        ScriptedLlm::new()
            .on("soar.decompose", Reply::json(plan(vec![sg("Review check_token", "@EXT-Reviewer", true, &[])])))
            .on("soar.verify.self", Reply::json(review(0.9)))
            .on("soar.synthesize", Reply::json(answer("fine [c1]", &[("c1", &check)], &["sg-1"])))
            .on("soar.verifySynthesis", Reply::json(synth_review(0.9))),
    );
    let r = f.ask_at(&s, AUTH_Q, Complexity::Medium).await;
    s.assert_all_consumed();
    let out = &r.metadata.phases[&PhaseKey::Collect].detail["outputs"][0];
    assert_eq!(out["agentId"], "ext-reviewer");
    assert_eq!(out["summary"], "looks fine");
    assert_eq!(out["structured"], true);
    assert!(r.metadata.usage.estimated, "external usage is estimated");
}

#[tokio::test]
async fn a_directed_refactor_returns_checked_edits_and_writes_nothing() {
    let f = Fixture::new();
    let before = std::fs::read_to_string(f.ws.path("app/auth.py")).unwrap();
    let check = f.chunk("check_token");
    let edits = json!({
        "summary": "Extracted the clock [c1].",
        "citations": [{"id": "c1", "chunk_id": check}],
        "edits": [
            {"kind": "replace", "file": "app/auth.py", "start_line": 5, "end_line": 8,
             "new_text": "def check_token(token, now=None):\n    \"\"\"Return True when the token has not expired.\"\"\"\n    return token.expires_at > (now or time.time())\n",
             "description": "inline the clock"},
            {"kind": "diff", "file": "app/auth.py",
             "diff": "--- a/app/auth.py\n+++ b/app/auth.py\n@@ -1,2 +1,2 @@\n-\"\"\"Session tokens.\"\"\"\n+\"\"\"Session tokens and their expiry.\"\"\"\n import time\n",
             "description": "docstring"},
            {"kind": "replace", "file": "../outside.py", "start_line": 1, "end_line": 1, "new_text": "x", "description": "escape"},
            {"kind": "create", "file": "app/auth.py", "new_text": "x", "description": "clobber"}
        ]
    });
    let s = Arc::new(ScriptedLlm::new().on("agent.refactoring-engine", Reply::json(edits)));
    let editor = aurora::soar::types::EditorContext {
        path: "app/auth.py".into(),
        version: Some(7),
        selection: Some(aurora::soar::types::LineRange { start_line: 4, end_line: 7 }),
        ..Default::default()
    };
    let req = SoarRequest::directed(aurora::soar::types::DirectedKind::Refactor, None, editor);
    let (r, _) = f.run_with(Some(Fixture::llm(&s)), req).await;
    let r = r.unwrap();
    s.assert_all_consumed();
    assert_eq!(roles(&s), ["agent.refactoring-engine"]);
    assert_eq!(r.outcome, Outcome::Directed);
    assert_eq!(r.answer, "Extracted the clock [1].");
    assert_eq!(r.proposed_edits.len(), 2);
    assert_eq!(r.proposed_edits[0].id, "e1");
    assert!(matches!(
        r.proposed_edits[0].change,
        aurora::soar::types::EditChange::Replace { start_line: 4, end_line: 7, .. }
    ));
    assert!(r.proposed_edits[0].base_content_hash.is_some());
    assert_eq!(r.metadata.edits.dropped_by_reason.get("path"), Some(&1));
    assert_eq!(r.metadata.edits.dropped_by_reason.get("exists"), Some(&1));
    assert_eq!(std::fs::read_to_string(f.ws.path("app/auth.py")).unwrap(), before, "SOAR writes no file");
    assert!(!f.ws.path("outside.py").exists());
    assert_eq!(r.metadata.phases[&PhaseKey::Decompose].status, PhaseStatus::Skipped);
    assert_eq!(r.metadata.phases[&PhaseKey::Synthesize].status, PhaseStatus::Skipped);
    let prompt = user_text(&s.requests()[0]);
    assert!(prompt.contains("Target: app/auth.py:L5-L8 (the selected code)."), "{prompt}");
    assert!(prompt.contains("[chunk"), "the selection is pinned: {prompt}");
}

#[tokio::test]
async fn edits_from_an_agent_that_may_not_edit_are_dropped() {
    let f = Fixture::new();
    let check = f.chunk("check_token");
    let mut reply = agent("analysed [c1]", &[("c1", &check)]);
    reply["edits"] = json!([{"kind": "create", "file": "new.py", "new_text": "x"}]);
    let s = Arc::new(
        ScriptedLlm::new()
            .on("soar.decompose", Reply::json(plan(vec![sg("Explain check_token expiry", "code-analyzer", true, &[])])))
            .on("soar.verify.self", Reply::json(review(0.9)))
            .on("agent.code-analyzer", Reply::json(reply))
            .on("soar.synthesize", Reply::json(answer("ok [c1]", &[("c1", &check)], &["sg-1"])))
            .on("soar.verifySynthesis", Reply::json(synth_review(0.9))),
    );
    let r = f.ask_at(&s, AUTH_Q, Complexity::Medium).await;
    assert!(r.proposed_edits.is_empty());
    assert_eq!(r.metadata.edits.dropped_by_reason.get("notAllowed"), Some(&1));
    assert!(r.metadata.warnings.iter().any(|w| w.code == "editsDropped"));
}

#[tokio::test]
async fn critical_questions_take_up_to_six_subgoals_under_adversarial_review() {
    let f = Fixture::new();
    let check = f.chunk("check_token");
    let five: Vec<serde_json::Value> =
        (0..5).map(|i| sg(&format!("Audit check_token part {i}"), "security-scanner", i == 0, &[])).collect();
    let mut s = ScriptedLlm::new()
        .on("soar.decompose", Reply::json(plan(five)))
        .on("soar.verify.adversarial", Reply::json(adversarial(0.9, &[])));
    for i in 0..5 {
        s = s.on(
            "agent.security-scanner",
            Reply::json(agent(&format!("finding {i} [c1]"), &[("c1", &check)])).delay(SHORT),
        );
    }
    let s = Arc::new(
        s.on("soar.synthesize", Reply::json(answer("no exploit [c1]", &[("c1", &check)], &["sg-1"])))
            .on("soar.verifySynthesis", Reply::json(synth_review(0.9))),
    );
    let r = f.ask(&s, "Fix security vulnerability in authentication endpoint").await;
    s.assert_all_consumed();
    assert_eq!(r.complexity, Complexity::Critical);
    assert_eq!(r.outcome, Outcome::Answered);
    let decompose = user_text(&calls(&s, "soar.decompose")[0]);
    assert!(decompose.contains("Maximum number of subgoals: 6"), "{decompose}");
    assert!(decompose.contains("Execution preference: parallel where possible"));
    let collect = &r.metadata.phases[&PhaseKey::Collect].detail;
    assert_eq!(collect["waves"][0]["subgoals"], json!([0, 1, 2, 3, 4]));
    assert_eq!(collect["stats"]["maxParallel"], 4, "soar.agents.maxConcurrent caps a wave");
}

#[tokio::test]
async fn a_follow_up_sees_the_earlier_turns_and_an_unknown_conversation_starts_anew() {
    let f = Fixture::new();
    let check = f.chunk("check_token");
    let first = answer("Tokens are checked by `check_token` [c1].", &[("c1", &check)], &[]);
    let s = Arc::new(ScriptedLlm::new().on("soar.simpleAnswer", Reply::json(first)));
    let r1 = f.ask(&s, "where is check_token").await;
    let conversation = r1.metadata.conversation_id.clone();
    let follow = answer("It compares `expires_at` [c1].", &[("c1", &check)], &[]);
    let s = Arc::new(ScriptedLlm::new().on("soar.simpleAnswer", Reply::json(follow)));
    let req = SoarRequest {
        conversation_id: Some(conversation.clone()),
        ..SoarRequest::ask("what does check_token compare")
    };
    let (r2, _) = f.run_with(Some(Fixture::llm(&s)), req).await;
    let r2 = r2.unwrap();
    assert_eq!(r2.metadata.conversation_id, conversation);
    let prompt = user_text(&s.requests()[0]);
    assert!(
        prompt.starts_with(
            "Earlier in this conversation (oldest first):\nQ: where is check_token\nA: Tokens are checked"
        ),
        "{prompt}"
    );
    let s = Arc::new(ScriptedLlm::new().on("soar.simpleAnswer", Reply::json(answer("x", &[], &[]))));
    let req = SoarRequest { conversation_id: Some("conv-unknown".into()), ..SoarRequest::ask("where is check_token") };
    let (r3, _) = f.run_with(Some(Fixture::llm(&s)), req).await;
    let r3 = r3.unwrap();
    assert_ne!(r3.metadata.conversation_id, "conv-unknown");
    assert!(r3.metadata.warnings.iter().any(|w| w.code == "conversationNotFound"));
    assert!(!user_text(&s.requests()[0]).contains("Earlier in this conversation"));
}
