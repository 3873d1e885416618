//! Golden traces (spec/soar.md §19.2): the request, the ordered model calls, the progress messages and
//! the envelope, with volatile fields replaced by placeholders. Regenerate with
//! `AURORA_UPDATE_GOLDEN=1 cargo test --test it soar::golden` and review the diff like code.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use aurora::llm::{Reply, ScriptedLlm};
use aurora::soar::types::Complexity;
use aurora::soar::{SoarEvent, SoarRequest, SoarResponse};

use super::harness::*;

const VOLATILE: &[&str] = &[
    "queryId",
    "conversationId",
    "timestamp",
    "durationMs",
    "duration_ms",
    "totalDurationMs",
    "total_duration_ms",
    "reasoningChunkId",
    "reasoning_chunk_id",
    "cache_key",
    "elapsedMs",
];

fn normalise(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let is_chunk = map.contains_key("chunkId");
            for (k, x) in map.iter_mut() {
                if VOLATILE.contains(&k.as_str()) || (is_chunk && k == "score") {
                    *x = json!(format!("<{k}>"));
                } else {
                    normalise(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalise),
        Value::Number(n) => {
            // Float noise of sums is not a behaviour change.
            if let Some(f) = n.as_f64().filter(|_| !n.is_i64() && !n.is_u64()) {
                *v = json!((f * 1e6).round() / 1e6);
            }
        }
        _ => {}
    }
}

fn trace(req: &SoarRequest, s: &ScriptedLlm, events: &[SoarEvent], r: &SoarResponse) -> Value {
    let calls: Vec<Value> = s
        .requests()
        .iter()
        .map(|c| {
            json!({"role": c.role.as_str(), "promptVersion": c.prompt_version, "attempt": c.attempt,
                   "repair": c.repair, "model": c.model, "temperature": c.temperature, "maxTokens": c.max_tokens})
        })
        .collect();
    let progress: Vec<Value> = events
        .iter()
        .filter_map(|e| match e {
            SoarEvent::Progress { message, percentage, .. } => Some(json!(format!("{percentage:>3}% {message}"))),
            _ => None,
        })
        .collect();
    let mut envelope = serde_json::to_value(r).unwrap();
    normalise(&mut envelope);
    json!({"request": {"query": req.query, "complexityOverride": req.complexity_override},
           "calls": calls, "progress": progress, "response": envelope})
}

fn check(name: &str, actual: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/soar").join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("AURORA_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run with AURORA_UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == text,
        "{name} differs from {} (rerun with AURORA_UPDATE_GOLDEN=1 and review):\n{text}",
        path.display()
    );
}

async fn golden(name: &str, f: &Fixture, s: Arc<ScriptedLlm>, req: SoarRequest) {
    let (r, events) = f.run_with(Some(Fixture::llm(&s)), req.clone()).await;
    let r = r.unwrap();
    s.assert_all_consumed();
    check(name, &trace(&req, &s, &events, &r));
}

#[tokio::test]
async fn golden_simple() {
    let f = Fixture::new();
    let check_id = f.chunk("check_token");
    let reply = answer("`check_token` compares the expiry with now [c1].", &[("c1", &check_id)], &[]);
    let s = Arc::new(ScriptedLlm::new().on("soar.simpleAnswer", Reply::stream(pieces(&reply, 3)).usage(800, 60)));
    golden("simple", &f, s, SoarRequest::ask("where is check_token")).await;
}

#[tokio::test]
async fn golden_medium_retry_then_pass() {
    let f = Fixture::new();
    let refresh = f.chunk("refresh_token");
    let check_id = f.chunk("check_token");
    let s = Arc::new(
        ScriptedLlm::new()
            .on(
                "soar.decompose",
                Reply::json(plan(vec![sg("Look around", "code-reviewer", true, &[])])).usage(1200, 150),
            )
            .on("soar.verify.self", Reply::json(review(0.62)).usage(700, 90))
            .on(
                "soar.decompose",
                Reply::json(plan(vec![
                    sg("Explain check_token expiry", "code-analyzer", true, &[]),
                    sg("Explain refresh_token reissue", "code-analyzer", false, &[0]),
                ]))
                .usage(1300, 170),
            )
            .on("soar.verify.self", Reply::json(review(0.86)).usage(720, 80))
            .on(
                "agent.code-analyzer",
                Reply::json(agent("compares expires_at [c1]", &[("c1", &check_id)])).usage(900, 120),
            )
            .on("agent.code-analyzer", Reply::json(agent("reissues [c1]", &[("c1", &refresh)])).usage(950, 110))
            .on(
                "soar.synthesize",
                Reply::json(answer(
                    "`check_token` compares expiry [c1]; `refresh_token` reissues [c2].",
                    &[("c1", &check_id), ("c2", &refresh)],
                    &["sg-1", "sg-2"],
                ))
                .usage(1500, 200),
            )
            .on("soar.verifySynthesis", Reply::json(synth_review(0.84)).usage(800, 70)),
    );
    let req = SoarRequest {
        complexity_override: Some(Complexity::Medium),
        ..SoarRequest::ask("how do check_token and refresh_token handle an expired token")
    };
    golden("medium_retry_then_pass", &f, s, req).await;
}
