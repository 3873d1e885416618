//! Model replies on arbitrary text: the lenient JSON extractor, every SOAR schema's parser and
//! validator, the streamed-answer decoder and the unified-diff applier never panic.
#![no_main]

use aurora::llm::json::{extract, parse};
use aurora::soar::agents::AgentReply;
use aurora::soar::calls::partial_answer;
use aurora::soar::decompose::RawPlan;
use aurora::soar::edits::apply_unified_diff;
use aurora::soar::synthesize::{AnswerReply, RawAnswerReview};
use aurora::soar::verify::RawReview;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = extract(&text);
    if let Ok(plan) = parse::<RawPlan>(&text) {
        let plan = plan.into_plan(1, aurora::soar::types::PlanSource::Llm);
        let (_, waves) = aurora::soar::verify::structural(&plan, 6);
        if !waves.is_empty() {
            let mut seen: Vec<usize> = waves.concat();
            seen.sort_unstable();
            assert_eq!(seen, (0..plan.subgoals.len()).collect::<Vec<_>>());
        }
    }
    let _ = parse::<RawReview>(&text);
    let _ = parse::<AgentReply>(&text);
    let _ = parse::<AnswerReply>(&text);
    let _ = parse::<RawAnswerReview>(&text);
    if let Some(answer) = partial_answer(&text) {
        // The decoded prefix of a complete string is a prefix of the parsed string.
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(full) = v.get("answer").and_then(|a| a.as_str())
            && text.trim_start().starts_with("{\"answer\"")
        {
            assert!(full.starts_with(&answer) || answer.starts_with(full), "{answer:?} vs {full:?}");
        }
    }
    if let Some((a, b)) = text.split_once('\u{0}') {
        let _ = apply_unified_diff(a, b, "m.py");
    }
});
