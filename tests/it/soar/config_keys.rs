//! `soar.*` settings are read (spec/soar.md §18): changing each of these changes what a run does.

use std::sync::Arc;

use aurora::config::Config;
use aurora::llm::{Reply, ScriptedLlm};
use aurora::soar::types::{Complexity, Outcome, PhaseKey};

use super::harness::*;

const Q: &str = "how do check_token and refresh_token handle an expired token";

/// A MEDIUM run's happy-path script with a one-subgoal plan.
fn happy(f: &Fixture) -> ScriptedLlm {
    let check = f.chunk("check_token");
    ScriptedLlm::new()
        .on("soar.decompose", Reply::json(plan(vec![sg("Explain check_token expiry", "code-analyzer", true, &[])])))
        .on("soar.verify.self", Reply::json(review(0.9)))
        .on("agent.code-analyzer", Reply::json(agent("compares expiry [c1]", &[("c1", &check)])))
        .on("soar.synthesize", Reply::json(answer("It compares expiry [c1].", &[("c1", &check)], &["sg-1"])))
        .on("soar.verifySynthesis", Reply::json(synth_review(0.9)))
}

fn fixture(change: impl FnOnce(&mut Config)) -> Fixture {
    let mut config = Config::default();
    change(&mut config);
    Fixture::with_config(config)
}

#[tokio::test]
async fn retrieval_budget_and_context_lines_are_read() {
    let f = fixture(|c| {
        c.soar.retrieval.budget.simple = 1;
        c.soar.context.max_chunk_lines = 2;
    });
    let s = Arc::new(ScriptedLlm::new().on("soar.simpleAnswer", Reply::json(answer("x", &[], &[]))));
    let r = f.ask_at(&s, Q, Complexity::Simple).await;
    assert_eq!(r.metadata.phases[&PhaseKey::Retrieve].detail["budget"], 1);
    let prompt = user_text(&s.requests()[0]);
    assert_eq!(prompt.matches("[chunk ").count(), 1, "{prompt}");
    assert!(prompt.contains("more lines)"), "bodies are cut at 2 lines: {prompt}");
}

#[tokio::test]
async fn without_llm_review_only_structural_checks_run() {
    let f = fixture(|c| c.soar.verify.llm_review = false);
    let check = f.chunk("check_token");
    let s = Arc::new(
        ScriptedLlm::new()
            .on("soar.decompose", Reply::json(plan(vec![sg("Explain check_token expiry", "code-analyzer", true, &[])])))
            .on("agent.code-analyzer", Reply::json(agent("compares expiry [c1]", &[("c1", &check)])))
            .on("soar.synthesize", Reply::json(answer("It compares expiry [c1].", &[("c1", &check)], &["sg-1"])))
            .on("soar.verifySynthesis", Reply::json(synth_review(0.9))),
    );
    let r = f.ask_at(&s, Q, Complexity::Medium).await;
    s.assert_all_consumed();
    assert_eq!(r.metadata.phases[&PhaseKey::Verify].detail["method"], "structural");
}

#[tokio::test]
async fn max_subgoals_and_max_retries_bound_the_plan() {
    let f = fixture(|c| {
        c.soar.decompose.max_subgoals.medium = 1;
        c.soar.verify.max_retries = 0;
    });
    let two =
        plan(vec![sg("a check_token", "code-analyzer", true, &[]), sg("b refresh_token", "code-analyzer", false, &[])]);
    let s = Arc::new(ScriptedLlm::new().on("soar.decompose", Reply::json(two)));
    let r = f.ask_at(&s, Q, Complexity::Medium).await;
    s.assert_all_consumed();
    assert_eq!(r.outcome, Outcome::VerificationFailed, "two subgoals over a limit of one, and no retry");
    assert!(r.answer.contains("at most 1 are allowed"), "{}", r.answer);
    assert!(user_text(&s.requests()[0]).contains("Maximum number of subgoals: 1"));
}

#[tokio::test]
async fn verify_thresholds_and_weights_decide_the_verdict() {
    let f = fixture(|c| {
        c.soar.verify.pass_threshold = 0.95;
        c.soar.verify.retry_threshold = 0.95;
        c.soar.verify.max_retries = 0;
    });
    let s = Arc::new(
        ScriptedLlm::new()
            .on("soar.decompose", Reply::json(plan(vec![sg("Explain check_token expiry", "code-analyzer", true, &[])])))
            .on("soar.verify.self", Reply::json(review(0.9))),
    );
    let r = f.ask_at(&s, Q, Complexity::Medium).await;
    assert_eq!(r.outcome, Outcome::VerificationFailed);
    assert!(r.answer.contains("(score 0.90, FAIL)"), "{}", r.answer);
}

#[tokio::test]
async fn synthesis_retries_and_threshold_are_read() {
    let f = fixture(|c| {
        c.soar.synthesis.pass_threshold = 0.95;
        c.soar.synthesis.max_retries = 0;
    });
    let s = Arc::new(happy(&f));
    let r = f.ask_at(&s, Q, Complexity::Medium).await;
    s.assert_all_consumed();
    assert_eq!(r.metadata.quality_warning.as_deref(), Some("synthesis score 0.90 below 0.95"));
}

#[tokio::test]
async fn the_citation_limit_is_read() {
    let f = fixture(|c| c.soar.citations.max = 0);
    let s = Arc::new(happy(&f));
    let r = f.ask_at(&s, Q, Complexity::Medium).await;
    assert!(r.citations.is_empty());
    assert_eq!(r.answer, "It compares expiry.");
}

#[tokio::test]
async fn cache_log_and_record_switches_are_read() {
    let f = fixture(|c| {
        c.soar.cache.enabled = false;
        c.soar.conversation_log.enabled = false;
        c.soar.record.min_score = 0.95;
        c.soar.record.pattern_score = 0.95;
    });
    let r = f.ask_at(&Arc::new(happy(&f)), Q, Complexity::Medium).await;
    assert_eq!(r.outcome, Outcome::Answered);
    assert_eq!(f.count("SELECT count(*) FROM decomposition_cache"), 0);
    assert_eq!(f.count("SELECT count(*) FROM conversations"), 0);
    assert_eq!(f.count("SELECT count(*) FROM reasoning_chunks"), 0, "0.9 is below minScore 0.95");
}

#[tokio::test]
async fn disabled_agents_are_not_routed_to() {
    let f = fixture(|c| c.soar.agents.disabled = vec!["code-analyzer".into()]);
    let check = f.chunk("check_token");
    let s = Arc::new(
        ScriptedLlm::new()
            .on("soar.decompose", Reply::json(plan(vec![sg("Explain check_token expiry", "code-analyzer", true, &[])])))
            .on("soar.verify.self", Reply::json(review(0.9)))
            // By capability: the first agent that lists "code" is refactoring-engine.
            .on("agent.refactoring-engine", Reply::json(agent("compares expiry [c1]", &[("c1", &check)])))
            .on("soar.synthesize", Reply::json(answer("It compares expiry [c1].", &[("c1", &check)], &["sg-1"])))
            .on("soar.verifySynthesis", Reply::json(synth_review(0.9))),
    );
    let r = f.ask_at(&s, Q, Complexity::Medium).await;
    s.assert_all_consumed();
    assert!(!user_text(&calls(&s, "soar.decompose")[0]).contains("- code-analyzer:"));
    assert_eq!(r.reasoning_trace.traceability[0].agent_id, "refactoring-engine");
}

#[tokio::test]
async fn simple_verify_and_role_parameters_are_read() {
    let f = fixture(|c| {
        c.soar.simple.verify = true;
        c.soar.llm_params.simple_answer.temperature = 0.05;
        c.soar.llm_params.simple_answer.max_tokens = 333;
        c.soar.models.solving = "solver-model".into();
    });
    let check = f.chunk("check_token");
    let s = Arc::new(
        ScriptedLlm::new()
            .on("soar.simpleAnswer", Reply::json(answer("`check_token` [c1].", &[("c1", &check)], &[])))
            .on("soar.verifySynthesis", Reply::json(synth_review(0.8))),
    );
    let r = f.ask_at(&s, "where is check_token", Complexity::Simple).await;
    s.assert_all_consumed();
    let first = &s.requests()[0];
    assert_eq!((first.temperature, first.max_tokens), (0.05, 333));
    assert_eq!(first.model.as_deref(), Some("solver-model"));
    assert!((r.confidence - 0.8).abs() < 1e-9, "verified: review × citation factor");
}

#[tokio::test]
async fn json_repair_attempts_are_read() {
    let f = fixture(|c| c.soar.json_repair_attempts = 0);
    let s = Arc::new(ScriptedLlm::new().on("soar.decompose", Reply::text("not json")));
    let r = f.ask_at(&s, Q, Complexity::Medium).await;
    s.assert_all_consumed();
    assert_eq!(r.outcome, Outcome::Failed, "no repair call was made");
}
