//! The classifier against the original's 112-prompt corpus (spec/soar.md §19.3): every prompt's level
//! and raw score equal the original's, confidence within 0.006, and accuracy exactly 106/112.

use std::collections::BTreeMap;

use aurora::soar::assess::assess;
use serde_json::Value;

fn corpus() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/complexity-corpus.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("corpus is in the repository")).expect("corpus parses")
}

#[test]
fn classifier_reproduces_the_original_on_every_prompt() {
    let corpus = corpus();
    let prompts = corpus["prompts"].as_array().expect("prompts");
    assert_eq!(prompts.len(), 112);
    let mut per_level: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut mismatches = Vec::new();
    let mut misses = Vec::new();
    for p in prompts {
        let prompt = p["prompt"].as_str().expect("prompt");
        let expected = p["expected"].as_str().expect("expected");
        let original = &p["original"];
        let a = assess(prompt);
        let level = a.level.as_str().to_lowercase();
        if level != original["level"].as_str().expect("level")
            || i64::from(a.raw_score) != original["score"].as_i64().expect("score")
            || (a.confidence - original["confidence"].as_f64().expect("confidence")).abs() > 0.006
        {
            mismatches
                .push(format!("{prompt:?}: ours {level} {} {:.3}, original {original}", a.raw_score, a.confidence));
        }
        let entry = per_level.entry(expected.to_owned()).or_default();
        entry.1 += 1;
        if level == expected {
            entry.0 += 1;
        } else {
            misses.push(format!("{prompt:?}: {expected} → {level}"));
        }
    }
    assert!(mismatches.is_empty(), "differs from the original:\n{}", mismatches.join("\n"));
    let correct: u32 = per_level.values().map(|(c, _)| c).sum();
    let counts: Vec<(String, u32, u32)> = per_level.into_iter().map(|(k, (c, n))| (k, c, n)).collect();
    assert_eq!(
        counts,
        vec![
            ("complex".to_owned(), 39, 41),
            ("critical".to_owned(), 11, 11),
            ("medium".to_owned(), 27, 31),
            ("simple".to_owned(), 29, 29),
        ],
        "misses:\n{}",
        misses.join("\n")
    );
    assert_eq!(correct, 106, "accuracy 106/112 = 94.6%");
    assert!(f64::from(correct) / 112.0 >= 0.94);
}
