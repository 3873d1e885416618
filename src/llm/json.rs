//! Typed, validated parsing of model JSON (spec/soar.md §1.4): native structured output where the provider
//! has it, a lenient extractor otherwise, and one repair call that tells the model what was wrong.

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::llm::{JsonSchema, LlmClient, LlmError, LlmRequest, LlmResponse, Message, OutputKind};

/// A type a model may be asked to produce.
pub trait StructuredOutput: DeserializeOwned {
    /// The JSON Schema sent to providers with native structured output and quoted in repair prompts.
    fn schema() -> JsonSchema;

    /// Checks beyond the types (enums, ranges, indices). Each problem is one short sentence naming the field.
    fn validate(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A parsed reply with every call it took (one, or two after a repair), for usage accounting.
#[derive(Clone, Debug)]
pub struct JsonReply<T> {
    pub value: T,
    pub responses: Vec<LlmResponse>,
}

impl<T> JsonReply<T> {
    pub fn repaired(&self) -> bool {
        self.responses.len() > 1
    }

    pub fn cost_usd(&self) -> f64 {
        self.responses.iter().map(|r| r.usage.cost_usd).sum()
    }
}

/// Asks for `T`, parses and validates it; after a failure makes up to `repair_attempts` repair calls (same
/// role, `repair: true`, the previous reply and the errors), then gives up with
/// [`LlmError::InvalidModelOutput`].
pub async fn complete_json<T: StructuredOutput, C: LlmClient + ?Sized>(
    client: &C,
    mut req: LlmRequest,
    cancel: &CancellationToken,
    repair_attempts: u32,
) -> Result<JsonReply<T>, LlmError> {
    let schema = T::schema();
    req.output = OutputKind::Json(schema.clone());
    let mut responses = Vec::new();
    let mut attempt = 0;
    loop {
        let response = client.complete(&req, cancel).await?;
        let parsed = parse::<T>(&response.content);
        let reply = response.content.clone();
        responses.push(response);
        let errors = match parsed {
            Ok(value) => return Ok(JsonReply { value, responses }),
            Err(errors) => errors,
        };
        if attempt >= repair_attempts {
            return Err(LlmError::InvalidModelOutput { role: req.role.to_string(), errors });
        }
        attempt += 1;
        tracing::debug!(role = %req.role, errors = errors.len(), "model JSON rejected; asking for a repair");
        req.repair = true;
        req.messages.push(Message::assistant(reply));
        req.messages.push(Message::user(repair_prompt(&schema, &errors)));
    }
}

/// The follow-up that asks for corrected JSON.
pub fn repair_prompt(schema: &JsonSchema, errors: &[String]) -> String {
    let mut text = String::from("Your previous reply could not be used:\n");
    for e in errors {
        text.push_str("- ");
        text.push_str(e);
        text.push('\n');
    }
    text.push_str(
        "Reply again with the corrected JSON only: one object, no prose, no code fence, matching this JSON Schema:\n",
    );
    text.push_str(&schema.schema.to_string());
    text
}

/// Extracts, deserializes and validates `T` from a model's reply. Unknown keys are ignored.
pub fn parse<T: StructuredOutput>(text: &str) -> Result<T, Vec<String>> {
    let value = extract(text).map_err(|e| vec![e])?;
    let typed: T =
        serde_json::from_value(value).map_err(|e| vec![format!("the JSON does not match the schema: {e}")])?;
    let problems = typed.validate();
    if problems.is_empty() { Ok(typed) } else { Err(problems) }
}

/// The JSON value in a reply, tried in order: the whole text; each fenced block (optionally tagged
/// `json`); the first balanced top-level `{…}` or `[…]`. Each candidate is retried without trailing
/// commas.
pub fn extract(text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the reply is empty; expected a JSON object".into());
    }
    let mut candidates = vec![trimmed.to_owned()];
    candidates.extend(fenced_blocks(trimmed));
    candidates.extend(balanced(trimmed));
    let mut first_error = None;
    for candidate in &candidates {
        match serde_json::from_str::<Value>(candidate) {
            Ok(v) => return Ok(v),
            Err(e) => {
                if let Ok(v) = serde_json::from_str::<Value>(&strip_trailing_commas(candidate)) {
                    return Ok(v);
                }
                if first_error.is_none() && candidate.as_str() != trimmed {
                    first_error = Some(e.to_string());
                }
            }
        }
    }
    // A reply cut short (by `max_tokens`, or a broken stream) ends inside its JSON: say so, rather than "no
    // JSON" or a parser's "EOF", so that the repair call asks for the whole object.
    if first_error.as_deref().is_none_or(|e| e.contains("EOF"))
        && let Some(cut) = cut_off(trimmed)
    {
        return Err(cut);
    }
    Err(match first_error {
        Some(e) => format!("the reply's JSON does not parse: {e}"),
        None => "the reply contains no JSON object".into(),
    })
}

/// The repair hint for a reply whose JSON is still open where the text ends: an object or array that
/// starts like JSON (`{"`, `{}`, `[` then a value) and is never closed.
fn cut_off(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' || bytes[i] == b'[' {
            match scan(bytes, i) {
                Scan::Closed(end) => {
                    i = end + 1;
                    continue;
                }
                Scan::Open { depth, in_string } if starts_like_json(&text[i..]) => {
                    let brackets = if depth == 1 { "1 bracket".to_owned() } else { format!("{depth} brackets") };
                    let place = if in_string { "inside a string, with" } else { "with" };
                    return Some(format!(
                        "the JSON was cut off: the reply ends {place} {brackets} still open; send the complete JSON, shorter if need be"
                    ));
                }
                Scan::Open { .. } | Scan::Mismatched => {}
            }
        }
        i += 1;
    }
    None
}

fn starts_like_json(span: &str) -> bool {
    let mut chars = span.chars();
    let open = chars.next();
    let next = chars.find(|c| !c.is_whitespace());
    match (open, next) {
        (_, None) => true,
        (Some('{'), Some(c)) => c == '"' || c == '}',
        (Some('['), Some(c)) => matches!(c, '"' | '{' | '[' | ']' | '-' | '0'..='9' | 't' | 'f' | 'n'),
        _ => false,
    }
}

fn fenced_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let Some(newline) = after.find('\n') else { break };
        let tag = after[..newline].trim();
        let body = &after[newline + 1..];
        let Some(end) = body.find("```") else { break };
        if tag.is_empty() || tag.eq_ignore_ascii_case("json") || tag.eq_ignore_ascii_case("jsonc") {
            blocks.push(body[..end].trim().to_owned());
        }
        rest = &body[end + 3..];
    }
    blocks
}

/// Top-level balanced `{…}`/`[…]` spans, found by a scanner that knows strings and escapes; any depth. The
/// search stops at JSON that is still open where the text ends: what follows is inside it, and an inner
/// array of a cut-off object is not the answer.
fn balanced(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' || bytes[i] == b'[' {
            match scan(bytes, i) {
                Scan::Closed(end) => {
                    spans.push(text[i..=end].to_owned());
                    i = end + 1;
                    continue;
                }
                Scan::Open { .. } if starts_like_json(&text[i..]) => break,
                Scan::Open { .. } | Scan::Mismatched => {}
            }
        }
        i += 1;
    }
    // Objects first: a stray "[1]" in prose should not win over the answer.
    spans.sort_by_key(|s| !s.starts_with('{'));
    spans
}

/// How the brackets opened at `start` end.
enum Scan {
    /// Balanced, closing at this index.
    Closed(usize),
    /// A closing bracket of the wrong kind.
    Mismatched,
    /// The text ends first, with this many brackets open, possibly inside a string.
    Open { depth: usize, in_string: bool },
}

fn scan(bytes: &[u8], start: usize) -> Scan {
    let mut stack = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => stack.push(b'}'),
            b'[' => stack.push(b']'),
            b'}' | b']' => {
                if stack.pop() != Some(b) {
                    return Scan::Mismatched;
                }
                if stack.is_empty() {
                    return Scan::Closed(i);
                }
            }
            _ => {}
        }
    }
    Scan::Open { depth: stack.len(), in_string }
}

/// Removes commas directly before `}` or `]`, outside strings.
fn strip_trailing_commas(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            out.push(c);
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        if c == ',' && chars[i + 1..].iter().find(|c| !c.is_whitespace()).is_some_and(|&n| n == '}' || n == ']') {
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Plan {
        goal: String,
        steps: Vec<String>,
    }

    impl StructuredOutput for Plan {
        fn schema() -> JsonSchema {
            JsonSchema { name: "plan".into(), schema: json!({"type": "object", "required": ["goal", "steps"]}) }
        }

        fn validate(&self) -> Vec<String> {
            if self.steps.is_empty() { vec!["steps: must not be empty".into()] } else { Vec::new() }
        }
    }

    fn check(text: &str) -> Result<Plan, Vec<String>> {
        parse::<Plan>(text)
    }

    fn plan(steps: &[&str]) -> Plan {
        Plan { goal: "g".into(), steps: steps.iter().map(|s| (*s).to_owned()).collect() }
    }

    #[test]
    fn whole_text_fences_prose_and_trailing_commas() {
        assert_eq!(check(r#"{"goal":"g","steps":["a"]}"#), Ok(plan(&["a"])));
        assert_eq!(check("Sure!\n```json\n{\"goal\":\"g\",\"steps\":[\"a\"]}\n```\nDone."), Ok(plan(&["a"])));
        assert_eq!(check("Here is the plan: {\"goal\":\"g\",\"steps\":[\"a\",],} hope it helps"), Ok(plan(&["a"])));
        assert_eq!(check("```\n{\"goal\":\"g\",\"steps\":[\"b\"]}\n```"), Ok(plan(&["b"])));
    }

    #[test]
    fn nested_braces_and_braces_in_strings() {
        let text = r#"note [1] then {"goal":"g {not a brace}","steps":["x}"],"meta":{"a":{"b":{"c":[{}]}}}} end"#;
        assert_eq!(check(text).expect("parses").steps, vec!["x}".to_owned()]);
        let stray = r#"a { stray brace, then {"goal":"g","steps":["a"]}"#;
        assert_eq!(check(stray), Ok(plan(&["a"])));
    }

    #[test]
    fn failures_say_what_is_wrong() {
        assert_eq!(check(""), Err(vec!["the reply is empty; expected a JSON object".into()]));
        assert_eq!(check("no json here"), Err(vec!["the reply contains no JSON object".into()]));
        let wrong_type = check(r#"{"goal": 3, "steps": []}"#).expect_err("goal is a number");
        assert!(wrong_type[0].starts_with("the JSON does not match the schema: invalid type"), "{wrong_type:?}");
        assert_eq!(check(r#"{"goal":"g","steps":[],"extra":1}"#), Err(vec!["steps: must not be empty".into()]));
    }

    #[test]
    fn a_reply_cut_off_inside_its_json_says_so() {
        let cut = |detail: &str| {
            Err(vec![format!(
                "the JSON was cut off: the reply ends {detail} still open; send the complete JSON, shorter if need be"
            )])
        };
        assert_eq!(check(r#"{"goal": "greet", "steps": ["say hello""#), cut("with 2 brackets"));
        assert_eq!(
            check(r#"Here you go: {"goal": "greet", "steps": ["say hel"#),
            cut("inside a string, with 2 brackets")
        );
        assert_eq!(check("```json\n{\"goal\": \"g\",\n  \"steps\": []"), cut("with 1 bracket"));
        assert_eq!(check("Sure: {"), cut("with 1 bracket"));
        assert_eq!(check("```json\n{\"goal\": \"g\"\n```"), cut("with 1 bracket"));
        // Prose with a stray bracket is not a cut-off answer.
        assert_eq!(check("use the {placeholder here"), Err(vec!["the reply contains no JSON object".into()]));
        assert_eq!(check("a list [like this"), Err(vec!["the reply contains no JSON object".into()]));
    }

    #[test]
    fn the_repair_prompt_carries_the_cut_off_hint() {
        let errors = check(r#"{"goal": "g", "steps": ["#).expect_err("cut off");
        let prompt = repair_prompt(&Plan::schema(), &errors);
        assert!(prompt.starts_with("Your previous reply could not be used:\n- the JSON was cut off: "), "{prompt}");
    }
}
