//! Assess phase: scores a question's complexity before anything is retrieved (spec/soar.md §3).
//!
//! A pure port of the original's later keyword classifier: critical overrides, seven dimension
//! scores, a multiplier, thresholds and a confidence. The constants are pinned by the corpus test
//! (`tests/it/soar/assess_corpus.rs`), not configurable; entries that can never match are kept for
//! parity and a unit test documents that they never fire.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::soar::types::Complexity;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssessMethod {
    Keyword,
    Override,
    Directed,
}

/// Score of each dimension, the multiplier, and whether a critical keyword decided the level.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Breakdown {
    pub lexical: i32,
    pub keywords: i32,
    pub scope: i32,
    pub constraints: i32,
    pub structure: i32,
    pub domain: i32,
    pub question_type: i32,
    pub multiplier: f64,
    pub critical_override: bool,
}

impl Default for Breakdown {
    fn default() -> Breakdown {
        Breakdown {
            lexical: 0,
            keywords: 0,
            scope: 0,
            constraints: 0,
            structure: 0,
            domain: 0,
            question_type: 0,
            multiplier: 1.0,
            critical_override: false,
        }
    }
}

/// What the classifier saw, in dimension order; word lists hold the matched words.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    EmptyPrompt,
    CriticalKeyword,
    LongPrompt(u32),
    MultiSentence(u32),
    MultiQuestion(u32),
    HighCommaDensity(u32),
    FormalPunctuation(u32),
    SimpleVerbs(Vec<String>),
    VagueWords(Vec<String>),
    TrivialEdit,
    MediumVerbs(Vec<String>),
    AnalysisVerbs(Vec<String>),
    ComplexVerbs(Vec<String>),
    IntegrationPattern,
    ComplexNouns(Vec<String>),
    HowDoesWork,
    ComplexFeature,
    OpenEndedOptimization,
    StandardsCompliance,
    BoundedScope,
    VerboseSimple,
    ScopeExpansion(Vec<String>),
    MultiFileRef(u32),
    DirRefs(u32),
    Constraint(&'static str),
    Compound(&'static str),
    SequenceMarkers(u32),
    NegativeConstraints(u32),
    NumberedList(u32),
    BulletList(u32),
    CodeBlocks(u32),
    SuccessCriteria,
    Conditionals(u32),
    MultiDomain(Vec<String>),
    TechnicalDomain(String),
    Frameworks(Vec<String>),
    SimpleQuestion,
    ComplexQuestion,
    HowTo,
}

/// The result of phase 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Assessment {
    pub level: Complexity,
    /// Final integer score (critical override: 100).
    pub raw_score: i32,
    /// `min(raw_score / 50, 1)`; may be negative.
    pub score: f64,
    /// 0.5..=0.95 (1.0 for an empty query).
    pub confidence: f64,
    pub method: AssessMethod,
    pub signals: Vec<Signal>,
    pub breakdown: Breakdown,
    pub reasoning: String,
}

const SIMPLE_VERBS: &[&str] = &[
    "what", "show", "list", "get", "find", "print", "check", "read", "open", "run", "where", "which", "display",
    "view", "see", "tell", "give", "name", "count", "who", "when", "is",
];
const VAGUE_WORDS: &[&str] = &[
    "something",
    "somehow",
    "maybe",
    "general",
    "generally",
    "overall",
    "around",
    "stuff",
    "things",
    "better",
    "faster",
    "slower",
    "worse",
    "some",
    "any",
    "whatever",
    "somewhere",
];
const MEDIUM_VERBS: &[&str] = &[
    "add",
    "update",
    "fix",
    "write",
    "change",
    "modify",
    "remove",
    "delete",
    "improve",
    "enhance",
    "extend",
    "convert",
    "rename",
    "move",
    "test",
    "configure",
    "setup",
    "set",
    "enable",
    "disable",
];
const ANALYSIS_VERBS: &[&str] = &[
    "explain",
    "compare",
    "analyze",
    "debug",
    "understand",
    "investigate",
    "describe",
    "clarify",
    "elaborate",
    "why",
    "difference",
    "mean",
    "interpret",
    "evaluate",
    "assess",
    "review",
    "examine",
    "diagnose",
    "trace",
    "audit",
];
const COMPLEX_VERBS: &[&str] = &[
    "implement",
    "design",
    "architect",
    "refactor",
    "integrate",
    "migrate",
    "build",
    "create",
    "develop",
    "construct",
    "engineer",
    "establish",
    "transform",
    "overhaul",
    "rewrite",
    "restructure",
    "optimize",
];
/// The three hyphenated entries can never match (word tokens have no hyphen); kept for parity.
const COMPLEX_NOUNS: &[&str] = &[
    "authentication",
    "authorization",
    "oauth",
    "jwt",
    "session",
    "sessions",
    "pipeline",
    "workflow",
    "notification",
    "notifications",
    "dashboard",
    "crud",
    "plugin",
    "framework",
    "websocket",
    "websockets",
    "realtime",
    "real-time",
    "rate-limit",
    "rate-limiting",
    "pagination",
    "search",
    "validation",
    "migration",
    "schema",
];
const SCOPE_KEYWORDS: &[&str] = &[
    "all",
    "every",
    "entire",
    "across",
    "comprehensive",
    "complete",
    "codebase",
    "project",
    "system",
    "application",
    "full",
    "whole",
    "everything",
    "throughout",
    "universal",
    "global",
];
const CONSTRAINT_PHRASES: [&str; 19] = [
    "without breaking",
    "without changing",
    "maintaining",
    "ensuring",
    "while also",
    "while keeping",
    "make sure",
    "must not",
    "should not",
    "backwards compatible",
    "backward compatible",
    "don't break",
    "keep existing",
    "preserve",
    "without affecting",
    "without modifying",
    "must work with",
    "keeping it",
    "while still",
];
const COMPOUND_MARKERS: [&str; 10] = [
    "and also",
    "as well as",
    "additionally",
    "furthermore",
    "moreover",
    "in addition",
    "along with",
    "together with",
    "plus",
    "not only",
];
const SEQUENCE_MARKERS: [&str; 13] = [
    "first",
    "then",
    "after that",
    "finally",
    "next",
    "afterwards",
    "subsequently",
    "step by step",
    "following that",
    "once done",
    "before",
    "prior to",
    "and then",
];
/// "ci/cd" can never match (word tokens have no slash); kept for parity.
const TECHNICAL_DOMAINS: &[&str] = &[
    "security",
    "performance",
    "scalability",
    "reliability",
    "testing",
    "authentication",
    "authorization",
    "caching",
    "logging",
    "monitoring",
    "database",
    "api",
    "frontend",
    "backend",
    "infrastructure",
    "deployment",
    "ci/cd",
    "docker",
    "kubernetes",
    "microservices",
    "distributed",
];

const TIER1: &[&str] = &[
    "emergency",
    "outage",
    "breach",
    "vulnerability",
    "exploit",
    "corruption",
    "data loss",
    "incident",
    "penetration",
];
const TIER2_SUBJECTS: &[&str] = &["security", "production", "authentication", "authorization"];
const TIER2_ACTIONS: &[&str] =
    &["fix", "patch", "investigate", "secure", "protect", "mitigate", "prevent", "respond", "handle"];
const TIER3: &[&str] = &["gdpr", "hipaa", "pci", "compliance", "regulation"];
const FINANCIAL_SUBJECTS: &[&str] = &["payment", "transaction", "billing", "financial"];
const FINANCIAL_ACTIONS: &[&str] = &["encrypt", "secure", "protect", "audit"];

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("classifier patterns are valid regexes")
}

/// `\b(?:k1|k2|…)\b` for a keyword list.
fn any_word(words: &[&str]) -> Regex {
    let alternatives: Vec<String> = words.iter().map(|w| regex::escape(w)).collect();
    re(&format!(r"\b(?:{})\b", alternatives.join("|")))
}

struct Patterns {
    word: Regex,
    tier1: Regex,
    tier2_subjects: Regex,
    tier2_actions: Regex,
    tier3: Regex,
    financial_subjects: Regex,
    financial_actions: Regex,
    sentences: Regex,
    trivial: [Regex; 3],
    integrate_with: Regex,
    how_does_work: Regex,
    feature: [Regex; 2],
    optimization: Regex,
    bounded_target: Regex,
    standards: Regex,
    bounded_scope: Regex,
    verbose: [Regex; 2],
    file_ref: Regex,
    dir_ref: Regex,
    negation: Regex,
    numbered: Regex,
    bullet: Regex,
    code: Regex,
    success: Regex,
    conditional: Regex,
    framework: Regex,
    simple_question: [Regex; 7],
    complex_question: [Regex; 6],
    how_to: Regex,
}

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    word: re(r"\b\w+\b"),
    tier1: any_word(TIER1),
    tier2_subjects: any_word(TIER2_SUBJECTS),
    tier2_actions: any_word(TIER2_ACTIONS),
    tier3: any_word(TIER3),
    financial_subjects: any_word(FINANCIAL_SUBJECTS),
    financial_actions: any_word(FINANCIAL_ACTIONS),
    sentences: re(r"[.!?]+"),
    trivial: [
        re(r"\b(?:fix|add|remove|delete|rename|update)\b.*\b(?:typo|console\.?log|comment|variable|version|line)\b"),
        re(r"\b(?:fix|add|remove|delete)\s+(?:a|the|this)\s+\w+$"),
        re(r"\bwrite\s+(?:a|the)\s+function\s+(?:that|to|which)\b"),
    ],
    integrate_with: re(r"\bintegrate\b.*\bwith\b"),
    how_does_work: re(r"\bhow does\b.*\bwork\b"),
    feature: [
        re(r"\b(?:dark\s*mode|feature\s*flag|real-?time)\b"),
        re(r"\b(?:end-?to-?end|full-?stack|cross-?cutting)\b"),
    ],
    optimization: re(r"\b(?:improve|optimize)\s+(?:performance|speed|efficiency)\b"),
    bounded_target: re(r"\b(?:this|the)\s+(?:function|method|query|loop)\b"),
    standards: re(r"\bfollowing\s+\w+\s*(?:guidelines?|standards?|practices?|rules?)\b"),
    bounded_scope: re(r"\b(?:this|the|a)\s+(?:function|method|class|component|file)\b"),
    verbose: [
        re(r"\b(?:i would like|can you|could you|please)\b.*\b(?:tell|show|give|what|where)\b"),
        re(r"\b(?:tell|show|give) me\b.*\b(?:what|where|which|version)\b"),
    ],
    file_ref: re(r"[\w./]+\.\w{1,5}\b"),
    dir_ref: re(r"\b(?:src|lib|tests?|docs?|components?|modules?|packages?)/\w+"),
    negation: re(r"\b(?:don't|dont|do not|never|avoid|shouldn't|must not)\b"),
    numbered: re(r"(?:^|\n)\s*\d+[.)]\s"),
    bullet: re(r"(?:^|\n)\s*[-*]\s"),
    code: re(r"```[\s\S]*?```|`[^`]+`"),
    success: re(r"\b(?:should|must|needs? to|has to)\s+(?:result|return|output|produce|work|be)\b"),
    conditional: re(r"\bif\b.*\bthen\b|\bwhen\b.*\bshould\b|\bdepending on\b"),
    framework: re(r"\b(?:react|vue|angular|django|flask|fastapi|express|spring|rails)\b"),
    simple_question: [
        re(r"^what is\b"),
        re(r"^where is\b"),
        re(r"^which\b"),
        re(r"^who\b"),
        re(r"^is there\b"),
        re(r"^does it\b"),
        re(r"^can i\b"),
    ],
    complex_question: [
        re(r"\bhow (?:can|should|would) (?:we|i|you)\b.*(?:implement|design|build)"),
        re(r"\bwhat (?:is|are|'s) the best (?:way|approach|practice|architecture)"),
        re(r"\bhow to (?:properly|correctly|efficiently)\b"),
        re(r"\bbest\s+architecture\b"),
        re(r"\bdesign.*pattern\b"),
        re(r"\barchitecture\s+for\b"),
    ],
    how_to: re(r"^how (?:to|do i|can i)\b"),
});

/// The words of `list` present in `words`, in list order.
fn present(list: &[&str], words: &HashSet<&str>) -> Vec<String> {
    list.iter().filter(|w| words.contains(**w)).map(|w| (*w).to_owned()).collect()
}

fn count(re: &Regex, text: &str) -> u32 {
    re.find_iter(text).count() as u32
}

/// Classifies `query` (phase 1). Pure; never fails.
#[allow(
    clippy::field_reassign_with_default,
    reason = "the dimensions are scored one after another, as the spec lists them"
)]
pub fn assess(query: &str) -> Assessment {
    let p = query.trim();
    if p.is_empty() {
        return Assessment {
            level: Complexity::Simple,
            raw_score: 0,
            score: 0.0,
            confidence: 1.0,
            method: AssessMethod::Keyword,
            signals: vec![Signal::EmptyPrompt],
            breakdown: Breakdown::default(),
            reasoning: reasoning(Complexity::Simple),
        };
    }
    let pat = &*PATTERNS;
    let q = p.to_lowercase();
    if is_critical(&q) {
        return Assessment {
            level: Complexity::Critical,
            raw_score: 100,
            score: 1.0,
            confidence: 0.95,
            method: AssessMethod::Keyword,
            signals: vec![Signal::CriticalKeyword],
            breakdown: Breakdown { critical_override: true, ..Breakdown::default() },
            reasoning: reasoning(Complexity::Critical),
        };
    }
    let words: HashSet<&str> = pat.word.find_iter(&q).map(|m| m.as_str()).collect();
    let wc = p.split_whitespace().count();
    let mut signals = Vec::new();
    let mut b = Breakdown::default();

    // 1. Lexical, on the prompt as written.
    b.lexical = match wc {
        0..=5 => 0,
        6..=10 => 5,
        11..=20 => 10,
        21..=40 => 15,
        41..=60 => 20,
        _ => {
            signals.push(Signal::LongPrompt(wc as u32));
            25
        }
    };
    let sentences = count(&pat.sentences, p).max(1);
    if sentences > 2 {
        b.lexical += 5 * (sentences as i32 - 2);
        signals.push(Signal::MultiSentence(sentences));
    }
    let questions = p.matches('?').count() as i32;
    if questions > 1 {
        b.lexical += 8 * (questions - 1);
        signals.push(Signal::MultiQuestion(questions as u32));
    }
    let commas = p.matches(',').count() as i32;
    if commas > 3 {
        b.lexical += (3 * (commas - 3)).min(15);
        signals.push(Signal::HighCommaDensity(commas as u32));
    }
    let formal = p.chars().filter(|c| *c == ';' || *c == ':').count() as i32;
    if formal > 0 {
        b.lexical += 4 * formal;
        signals.push(Signal::FormalPunctuation(formal as u32));
    }

    // 2. Keywords.
    let simple = present(SIMPLE_VERBS, &words);
    if !simple.is_empty() {
        b.keywords -= (3 * simple.len() as i32).min(10);
        signals.push(Signal::SimpleVerbs(simple));
    }
    let vague = present(VAGUE_WORDS, &words);
    if !vague.is_empty() {
        b.keywords -= (5 * vague.len() as i32).min(15);
        signals.push(Signal::VagueWords(vague));
    }
    let medium = present(MEDIUM_VERBS, &words);
    if wc <= 8 && pat.trivial.iter().any(|r| r.is_match(&q)) {
        signals.push(Signal::TrivialEdit);
    } else if !medium.is_empty() {
        b.keywords += 12 * medium.len() as i32;
        signals.push(Signal::MediumVerbs(medium.clone()));
    }
    let analysis = present(ANALYSIS_VERBS, &words);
    if !analysis.is_empty() {
        b.keywords += (15 * analysis.len() as i32).min(20);
        signals.push(Signal::AnalysisVerbs(analysis));
    }
    let complex = present(COMPLEX_VERBS, &words);
    if !complex.is_empty() {
        b.keywords += 25 * complex.len() as i32;
        signals.push(Signal::ComplexVerbs(complex.clone()));
    }
    if pat.integrate_with.is_match(&q) {
        b.keywords += 15;
        signals.push(Signal::IntegrationPattern);
    }
    let nouns = present(COMPLEX_NOUNS, &words);
    if !nouns.is_empty() {
        // The MEDIUM_VERB test applies even when a trivial edit suppressed their score.
        if !medium.is_empty() || !complex.is_empty() {
            b.keywords += 10 * nouns.len() as i32;
            signals.push(Signal::ComplexNouns(nouns));
        } else {
            b.keywords += 5 * nouns.len() as i32;
        }
    }
    if pat.how_does_work.is_match(&q) {
        b.keywords += 10;
        signals.push(Signal::HowDoesWork);
    }
    if pat.feature.iter().any(|r| r.is_match(&q)) {
        b.keywords += 12;
        signals.push(Signal::ComplexFeature);
    }
    if pat.optimization.is_match(&q) && !pat.bounded_target.is_match(&q) {
        b.keywords += 15;
        signals.push(Signal::OpenEndedOptimization);
    }
    if pat.standards.is_match(&q) {
        b.keywords += 10;
        signals.push(Signal::StandardsCompliance);
    }
    if !complex.is_empty() && pat.bounded_scope.is_match(&q) && wc <= 8 {
        b.keywords -= 10;
        signals.push(Signal::BoundedScope);
    }

    // 3. Scope.
    let verbose = pat.verbose.iter().any(|r| r.is_match(&q));
    let scope = present(SCOPE_KEYWORDS, &words);
    if !scope.is_empty() {
        if verbose {
            b.scope += 4 * scope.len() as i32;
            signals.push(Signal::VerboseSimple);
        } else {
            b.scope += 12 * scope.len() as i32;
        }
        signals.push(Signal::ScopeExpansion(scope));
    }
    let files = count(&pat.file_ref, &q);
    if files > 1 {
        b.scope += 8 * (files as i32 - 1);
        signals.push(Signal::MultiFileRef(files));
    }
    let dirs = count(&pat.dir_ref, &q);
    if dirs > 0 {
        b.scope += 5 * dirs as i32;
        signals.push(Signal::DirRefs(dirs));
    }

    // 4. Constraints: plain substrings, on purpose ("then" matches inside "authentication").
    for phrase in CONSTRAINT_PHRASES {
        if q.contains(phrase) {
            b.constraints += 12;
            signals.push(Signal::Constraint(phrase));
        }
    }
    for marker in COMPOUND_MARKERS {
        if q.contains(marker) {
            b.constraints += 10;
            signals.push(Signal::Compound(marker));
        }
    }
    let sequence = SEQUENCE_MARKERS.iter().filter(|m| q.contains(**m)).count() as i32;
    if sequence > 0 {
        b.constraints += 8 * sequence;
        signals.push(Signal::SequenceMarkers(sequence as u32));
    }
    let negations = count(&pat.negation, &q);
    if negations > 0 {
        b.constraints += 6 * negations as i32;
        signals.push(Signal::NegativeConstraints(negations));
    }

    // 5. Structure.
    let numbered = count(&pat.numbered, p);
    if numbered > 0 {
        b.structure += 10 * numbered as i32;
        signals.push(Signal::NumberedList(numbered));
    }
    let bullets = count(&pat.bullet, p);
    if bullets > 0 {
        b.structure += 8 * bullets as i32;
        signals.push(Signal::BulletList(bullets));
    }
    let code = count(&pat.code, p);
    if code > 0 {
        b.structure += 5 * code as i32;
        signals.push(Signal::CodeBlocks(code));
    }
    if pat.success.is_match(&q) {
        b.structure += 8;
        signals.push(Signal::SuccessCriteria);
    }
    let conditionals = count(&pat.conditional, &q);
    if conditionals > 0 {
        b.structure += 10 * conditionals as i32;
        signals.push(Signal::Conditionals(conditionals));
    }

    // 6. Domain.
    let domains = present(TECHNICAL_DOMAINS, &words);
    match domains.len() {
        0 => {}
        1 => {
            b.domain += 5;
            signals.push(Signal::TechnicalDomain(domains[0].clone()));
        }
        n => {
            b.domain += 8 * n as i32;
            signals.push(Signal::MultiDomain(domains));
        }
    }
    let mut frameworks: Vec<String> = pat.framework.find_iter(&q).map(|m| m.as_str().to_owned()).collect();
    frameworks.sort();
    frameworks.dedup();
    if !frameworks.is_empty() {
        b.domain += 5 * frameworks.len() as i32;
        signals.push(Signal::Frameworks(frameworks));
    }

    // 7. Question type.
    if pat.simple_question.iter().any(|r| r.is_match(&q)) {
        b.question_type -= 8;
        signals.push(Signal::SimpleQuestion);
    }
    if pat.complex_question.iter().any(|r| r.is_match(&q)) {
        b.question_type += 15;
        signals.push(Signal::ComplexQuestion);
    }
    if pat.how_to.is_match(&q) && !COMPLEX_VERBS.iter().any(|v| q.contains(v)) {
        b.question_type += 8;
        signals.push(Signal::HowTo);
    }

    let total = b.lexical + b.keywords + b.scope + b.constraints + b.structure + b.domain + b.question_type;
    b.multiplier = multiplier(&signals);
    let raw_score = (f64::from(total) * b.multiplier).trunc() as i32;
    let level = level_of(raw_score);
    let confidence = confidence(level, total, &signals);
    Assessment {
        level,
        raw_score,
        score: (f64::from(raw_score) / 50.0).min(1.0),
        confidence,
        method: AssessMethod::Keyword,
        signals,
        breakdown: b,
        reasoning: reasoning(level),
    }
}

fn is_critical(q: &str) -> bool {
    let pat = &*PATTERNS;
    pat.tier1.is_match(q)
        || (pat.tier2_subjects.is_match(q) && pat.tier2_actions.is_match(q))
        || pat.tier3.is_match(q)
        || (pat.financial_subjects.is_match(q) && pat.financial_actions.is_match(q))
}

fn complex_indicators(signals: &[Signal]) -> usize {
    signals
        .iter()
        .filter(|s| {
            matches!(
                s,
                Signal::ComplexVerbs(_)
                    | Signal::ScopeExpansion(_)
                    | Signal::Constraint(_)
                    | Signal::NegativeConstraints(_)
                    | Signal::MultiDomain(_)
                    | Signal::SequenceMarkers(_)
                    | Signal::Compound(_)
                    | Signal::NumberedList(_)
            )
        })
        .count()
}

fn simple_indicators(signals: &[Signal]) -> usize {
    signals.iter().filter(|s| matches!(s, Signal::SimpleVerbs(_) | Signal::SimpleQuestion)).count()
}

/// The score multiplier, by these exact additions in `f64`.
fn multiplier(signals: &[Signal]) -> f64 {
    let complex = complex_indicators(signals);
    let simple = simple_indicators(signals);
    let mut mult = 1.0;
    if complex >= 3 {
        mult += 0.2;
    }
    if complex >= 5 {
        mult += 0.2;
    }
    if simple > 0 && complex == 0 {
        mult -= 0.1;
    }
    f64::clamp(mult, 0.7, 1.5)
}

fn level_of(raw: i32) -> Complexity {
    if raw <= 11 {
        Complexity::Simple
    } else if raw <= 28 {
        Complexity::Medium
    } else {
        Complexity::Complex
    }
}

/// Confidence from the pre-multiplier `total`; a negative distance is allowed.
fn confidence(level: Complexity, total: i32, signals: &[Signal]) -> f64 {
    let t = f64::from(total);
    let (d, scale) = match level {
        Complexity::Simple => (11.0 - t, 11.0),
        Complexity::Medium => ((t - 11.0).min(28.0 - t), 8.5),
        _ => (t - 28.0, 30.0),
    };
    let mut conf = (0.5 + 0.4 * d / scale).min(0.9);
    let complexish = signals
        .iter()
        .filter(|s| {
            matches!(
                s,
                Signal::ComplexVerbs(_)
                    | Signal::ComplexNouns(_)
                    | Signal::ComplexFeature
                    | Signal::ComplexQuestion
                    | Signal::ScopeExpansion(_)
                    | Signal::BoundedScope
            )
        })
        .count();
    let simpleish = signals
        .iter()
        .filter(|s| matches!(s, Signal::SimpleVerbs(_) | Signal::SimpleQuestion | Signal::VerboseSimple))
        .count();
    if (level == Complexity::Complex && complexish > simpleish)
        || (level == Complexity::Simple && simpleish > complexish)
    {
        conf += 0.05;
    }
    conf.clamp(0.5, 0.95)
}

fn reasoning(level: Complexity) -> String {
    format!("Multi-dimensional keyword analysis: {} complexity", level.as_str().to_lowercase())
}

/// Phase 1 with an override: the level comes from `level`, the keyword result is kept for the log.
pub fn with_override(query: &str, level: Complexity, method: AssessMethod) -> (Assessment, Assessment) {
    let keyword = assess(query);
    let mut a = keyword.clone();
    a.level = level;
    a.method = method;
    (a, keyword)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, level: Complexity, raw: i32, conf: f64) {
        let a = assess(query);
        assert_eq!((a.level, a.raw_score), (level, raw), "{query:?}: {a:#?}");
        assert!((a.confidence - conf).abs() < 0.006, "{query:?}: confidence {} != {conf}", a.confidence);
    }

    #[test]
    fn spec_test_vectors() {
        use Complexity::*;
        check("What is OAuth2?", Simple, -12, 0.95);
        check("Define RESTful API", Simple, 5, 0.72);
        check("What does the main function do?", Simple, 1, 0.88);
        check("Refactor the authentication module to improve readability", Complex, 65, 0.95);
        check("Fix security vulnerability in authentication endpoint", Critical, 100, 0.95);
        check("Emergency fix for production payment processing outage", Critical, 100, 0.95);
        check("Implement user registration feature", Medium, 25, 0.64);
        check("explain how the authentication works", Complex, 33, 0.57);
        check("implement oauth", Complex, 35, 0.64);
        check("run the tests", Simple, -2, 0.95);
        check("migrate the database from mysql to postgres", Complex, 35, 0.64);
        check("xyz abc def", Simple, 0, 0.90);
        check("", Simple, 0, 1.0);
        check("   ", Simple, 0, 1.0);
    }

    #[test]
    fn worked_example_breakdown() {
        let a = assess("explain how the authentication works");
        let b = &a.breakdown;
        assert_eq!((b.lexical, b.keywords, b.constraints, b.domain, b.scope), (0, 20, 8, 5, 0));
        assert_eq!(
            a.signals,
            vec![
                Signal::AnalysisVerbs(vec!["explain".into()]),
                Signal::SequenceMarkers(1),
                Signal::TechnicalDomain("authentication".into()),
            ]
        );
        assert_eq!(a.reasoning, "Multi-dimensional keyword analysis: complex complexity");
    }

    #[test]
    fn critical_tiers() {
        for q in [
            "there was a data loss last night",
            "secure the production servers",
            "are we gdpr ready",
            "audit the billing code",
            "check the penetration test report",
        ] {
            let a = assess(q);
            assert_eq!(a.level, Complexity::Critical, "{q}");
            assert_eq!(a.signals, vec![Signal::CriticalKeyword]);
            assert!(a.breakdown.critical_override);
            assert_eq!(a.score, 1.0);
        }
        // A subject without an action (or the reverse) is not critical.
        assert_ne!(assess("explain the security model").level, Complexity::Critical);
        assert_ne!(assess("billing summary page").level, Complexity::Critical);
    }

    fn signals(q: &str) -> Vec<Signal> {
        assess(q).signals
    }

    #[test]
    fn one_test_per_signal() {
        let long = vec!["word"; 61].join(" ");
        assert!(signals(&long).contains(&Signal::LongPrompt(61)));
        assert!(signals("a. b. c. d").contains(&Signal::MultiSentence(3)));
        assert!(signals("why? how? when?").contains(&Signal::MultiQuestion(3)));
        assert!(signals("a, b, c, d, e").contains(&Signal::HighCommaDensity(4)));
        assert!(signals("note: this; that").contains(&Signal::FormalPunctuation(2)));
        assert!(signals("maybe some stuff").contains(&Signal::VagueWords(vec![
            "maybe".into(),
            "stuff".into(),
            "some".into()
        ])));
        assert!(signals("fix the typo").contains(&Signal::TrivialEdit));
        assert!(signals("write a function that adds numbers").contains(&Signal::TrivialEdit));
        assert!(signals("change the retry count").contains(&Signal::MediumVerbs(vec!["change".into()])));
        assert!(signals("integrate stripe with the shop").contains(&Signal::IntegrationPattern));
        assert!(signals("build a search page").contains(&Signal::ComplexNouns(vec!["search".into()])));
        assert!(signals("how does caching work here").contains(&Signal::HowDoesWork));
        assert!(signals("add dark mode").contains(&Signal::ComplexFeature));
        assert!(signals("improve performance of imports").contains(&Signal::OpenEndedOptimization));
        assert!(!signals("improve performance of the loop").contains(&Signal::OpenEndedOptimization));
        assert!(signals("format code following pep8 guidelines").contains(&Signal::StandardsCompliance));
        assert!(signals("refactor this function").contains(&Signal::BoundedScope));
        let verbose = signals("can you tell me all the versions");
        assert!(verbose.contains(&Signal::VerboseSimple));
        assert!(verbose.contains(&Signal::ScopeExpansion(vec!["all".into()])));
        assert!(signals("merge a.py and b.py").contains(&Signal::MultiFileRef(2)));
        assert!(signals("look in src/app and tests/unit").contains(&Signal::DirRefs(2)));
        assert!(signals("do it without breaking anything").contains(&Signal::Constraint("without breaking")));
        assert!(signals("docs as well as tests").contains(&Signal::Compound("as well as")));
        assert!(signals("first read, then write").contains(&Signal::SequenceMarkers(2)));
        assert!(signals("never do that, avoid this").contains(&Signal::NegativeConstraints(2)));
        assert!(signals("1. one\n2. two").contains(&Signal::NumberedList(2)));
        assert!(signals("- one\n- two").contains(&Signal::BulletList(2)));
        assert!(signals("call `f` and `g`").contains(&Signal::CodeBlocks(2)));
        assert!(signals("it should return a list").contains(&Signal::SuccessCriteria));
        assert!(signals("if it fails then retry").contains(&Signal::Conditionals(1)));
        assert!(signals("database and api").contains(&Signal::MultiDomain(vec!["database".into(), "api".into()])));
        assert!(signals("django or flask").contains(&Signal::Frameworks(vec!["django".into(), "flask".into()])));
        assert!(signals("where is the config").contains(&Signal::SimpleQuestion));
        assert!(signals("what is the best way to cache").contains(&Signal::ComplexQuestion));
        assert!(signals("how to install it").contains(&Signal::HowTo));
        // "rebuild" holds "build" as a substring: no HowTo.
        assert!(!signals("how to rebuild it").contains(&Signal::HowTo));
    }

    #[test]
    fn dead_entries_never_fire() {
        // Word tokens carry no hyphen or slash, so these list entries can never be found.
        for q in ["real-time rate-limit rate-limiting", "set up ci/cd"] {
            for s in signals(q) {
                if let Signal::ComplexNouns(words) | Signal::MultiDomain(words) = &s {
                    assert!(words.iter().all(|w| !w.contains('-') && !w.contains('/')), "{s:?}");
                }
                if let Signal::TechnicalDomain(word) = &s {
                    assert_ne!(word, "ci/cd");
                }
            }
        }
        // "real-time" scores only through the ComplexFeature regex, as "real" and "time" are words.
        let a = assess("real-time");
        assert_eq!(a.breakdown.keywords, 12);
    }

    #[test]
    fn multiplier_steps_and_truncation_toward_zero() {
        assert_eq!(multiplier(&[]), 1.0);
        assert_eq!(multiplier(&[Signal::SimpleQuestion]), 0.9);
        let three = [Signal::Constraint("x"), Signal::Compound("y"), Signal::NumberedList(1)];
        assert!((multiplier(&three) - 1.2).abs() < 1e-12);
        let five = [
            Signal::Constraint("x"),
            Signal::Compound("y"),
            Signal::NumberedList(1),
            Signal::SequenceMarkers(1),
            Signal::NegativeConstraints(1),
        ];
        assert!((multiplier(&five) - 1.4).abs() < 1e-12);
        // -14 × 0.9 = -12.6 truncates to -12 ("What is OAuth2?").
        let a = assess("What is OAuth2?");
        assert_eq!(a.raw_score, -12);
        assert!(a.score < 0.0);
    }

    #[test]
    fn override_keeps_the_keyword_result() {
        let (a, keyword) = with_override("run the tests", Complexity::Complex, AssessMethod::Override);
        assert_eq!(a.level, Complexity::Complex);
        assert_eq!(a.method, AssessMethod::Override);
        assert_eq!(keyword.level, Complexity::Simple);
    }
}
