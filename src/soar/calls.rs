//! Every model call of a run goes through [`Calls`]: role parameters and models, the per-request cost
//! cap, typed JSON with one repair, streamed answers, and the usage, call log and prompt versions the
//! envelope reports (spec/soar.md §1.3–1.4, §15).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, RoleParams};
use crate::llm::json::{parse, repair_prompt};
use crate::llm::{
    BudgetScope, Llm, LlmClient, LlmError, LlmRequest, LlmResponse, Message, OutputKind, QueryId, StreamEvent,
    StructuredOutput,
};
use crate::soar::prompts::Prompt;
use crate::soar::types::{PhaseKey, PhaseUsage, SoarEvent, Usage};

/// Which model a role uses (spec/soar.md §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelRole {
    Reasoning,
    Solving,
    Review,
    Agents,
}

/// One call as recorded in the conversation log.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallLog {
    pub phase: PhaseKey,
    pub role: String,
    pub prompt_version: u32,
    pub attempt: u8,
    pub repair: bool,
    pub model: String,
    pub temperature: f64,
    pub max_tokens: u32,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cost_usd: f64,
    pub duration_ms: u64,
    pub status: String,
}

/// A prompt and reply kept when `soar.conversationLog.includePrompts` is set.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PromptLog {
    pub role: String,
    pub system: String,
    pub user: String,
    pub reply: String,
}

#[derive(Default)]
struct State {
    usage: Usage,
    by_phase: BTreeMap<PhaseKey, PhaseUsage>,
    log: Vec<CallLog>,
    prompts: Vec<PromptLog>,
    prompt_versions: BTreeMap<String, u32>,
    models: BTreeMap<String, String>,
    budget_warning: Option<String>,
    /// Secrets removed from prompts (`privacy.redactSecrets`).
    redacted: u32,
}

impl State {
    /// Counts one call's usage in the run's total and its phase's.
    fn add(&mut self, phase: PhaseKey, u: &Usage) {
        self.usage.add(u);
        let p = self.by_phase.entry(phase).or_default();
        p.calls += u.calls;
        p.input_tokens += u.input_tokens;
        p.output_tokens += u.output_tokens;
        p.cost_usd += u.cost_usd;
    }
}

/// What one call is.
pub struct CallSpec {
    pub phase: PhaseKey,
    /// Role id, e.g. `soar.decompose` or `agent.code-analyzer`.
    pub role: String,
    pub prompt: Prompt,
    pub model: ModelRole,
    pub params: RoleParams,
    pub system: String,
    pub user: String,
    pub attempt: u8,
}

/// The model calls of one run.
pub struct Calls {
    /// `None` when no provider is configured: every call fails with [`LlmError::NotConfigured`].
    llm: Option<Arc<Llm>>,
    config: Arc<Config>,
    query_id: QueryId,
    events: UnboundedSender<SoarEvent>,
    /// The request's own cap (`max_cost_usd`), which may only lower the configured one.
    cap_usd: Option<f64>,
    state: Mutex<State>,
}

impl Calls {
    pub fn new(
        llm: Option<Arc<Llm>>,
        config: Arc<Config>,
        query_id: QueryId,
        events: UnboundedSender<SoarEvent>,
        cap_usd: Option<f64>,
    ) -> Calls {
        Calls { llm, config, query_id, events, cap_usd, state: Mutex::new(State::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn llm(&self) -> Option<&Arc<Llm>> {
        self.llm.as_ref()
    }

    fn client(&self) -> Result<&Arc<Llm>, LlmError> {
        self.llm.as_ref().ok_or(LlmError::NotConfigured)
    }

    /// The configured model of a role; `None` leaves it to the provider's default.
    pub fn model(&self, role: ModelRole) -> Option<String> {
        let m = &self.config.soar.models;
        let reasoning =
            [m.reasoning.as_str(), self.config.llm.reasoning_model.as_str(), self.config.llm.model.as_str()]
                .into_iter()
                .find(|s| !s.is_empty());
        let solving = Some(m.solving.as_str()).filter(|s| !s.is_empty()).or(reasoning);
        let pick = match role {
            ModelRole::Reasoning => reasoning,
            ModelRole::Solving => solving,
            ModelRole::Review => Some(m.review.as_str()).filter(|s| !s.is_empty()).or(reasoning),
            ModelRole::Agents => Some(m.agents.as_str()).filter(|s| !s.is_empty()).or(solving),
        };
        pick.map(str::to_owned)
    }

    /// `text` without secrets when `privacy.redactSecrets` is on; the count is kept for the warning.
    pub fn redact(&self, text: &str) -> String {
        if !self.config.privacy.redact_secrets {
            return text.to_owned();
        }
        let (clean, n) = crate::privacy::redact(text);
        if n > 0 {
            self.state().redacted += n;
        }
        clean.into_owned()
    }

    /// Secrets removed from this run's prompts so far.
    pub fn redacted(&self) -> u32 {
        self.state().redacted
    }

    /// The request for `spec`, before output kind and streaming. Workspace text in it is redacted.
    pub fn request(&self, spec: &CallSpec) -> LlmRequest {
        let mut req = LlmRequest::new(spec.role.clone(), self.redact(&spec.system), self.redact(&spec.user))
            .with_temperature(spec.params.temperature)
            .with_max_tokens(spec.params.max_tokens)
            .with_timeout(Duration::from_secs(self.config.soar.timeouts.llm_call_secs))
            .with_query(self.query_id.clone(), spec.phase.key());
        req.prompt_version = spec.prompt.version;
        req.attempt = spec.attempt;
        if let Some(model) = self.model(spec.model) {
            req = req.with_model(model);
        }
        req
    }

    /// A cost estimate of `req` (the LLM layer's).
    pub fn estimate(&self, req: &LlmRequest) -> f64 {
        self.llm.as_ref().map_or(0.0, |l| l.estimate_usd(req))
    }

    /// Spend of this run so far.
    pub fn spent_usd(&self) -> f64 {
        self.state().usage.cost_usd
    }

    /// Refuses a call that would pass the request's own cap.
    fn check_cap(&self, req: &LlmRequest) -> Result<(), LlmError> {
        let Some(cap) = self.cap_usd else { return Ok(()) };
        let spent = self.spent_usd();
        let est = self.estimate(req);
        if est > 0.0 && spent + est > cap {
            return Err(LlmError::BudgetExceeded {
                scope: BudgetScope::Query,
                consumed_usd: spent,
                limit_usd: cap,
                estimated_usd: est,
            });
        }
        Ok(())
    }

    fn record(&self, phase: PhaseKey, req: &LlmRequest, started: Instant, result: Result<&LlmResponse, &LlmError>) {
        let mut st = self.state();
        let (model, usage, status) = match result {
            Ok(r) => (r.model.clone(), r.usage.clone(), "ok".to_owned()),
            Err(e) => (req.model.clone().unwrap_or_default(), Default::default(), error_status(e)),
        };
        if let Some(w) = &usage.budget_warning
            && st.budget_warning.is_none()
        {
            let text = format!(
                "Budget at {:.0}% of the monthly limit ({:.2} of {:.2} USD in {})",
                w.projected_usd / w.limit_usd.max(f64::EPSILON) * 100.0,
                w.projected_usd,
                w.limit_usd,
                w.period
            );
            st.budget_warning = Some(text.clone());
            let _ = self.events.send(SoarEvent::BudgetWarning { message: text });
        }
        st.add(phase, &Usage::of_call(&usage));
        st.prompt_versions.insert(prompt_key(req.role.as_str()), req.prompt_version);
        if !model.is_empty() {
            st.models.insert(req.role.to_string(), model.clone());
        }
        st.log.push(CallLog {
            phase,
            role: req.role.to_string(),
            prompt_version: req.prompt_version,
            attempt: req.attempt,
            repair: req.repair,
            model,
            temperature: req.temperature,
            max_tokens: req.max_tokens,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_usd: usage.cost_usd,
            duration_ms: started.elapsed().as_millis() as u64,
            status,
        });
        if self.config.soar.conversation_log.include_prompts {
            let reply = result.map(|r| r.content.clone()).unwrap_or_default();
            let user = req.messages.iter().map(|m| m.text.as_str()).collect::<Vec<_>>().join("\n---\n");
            st.prompts.push(PromptLog { role: req.role.to_string(), system: req.system.clone(), user, reply });
        }
    }

    async fn complete(
        &self,
        phase: PhaseKey,
        req: &LlmRequest,
        cancel: &CancellationToken,
    ) -> Result<LlmResponse, LlmError> {
        self.check_cap(req)?;
        let started = Instant::now();
        let result = self.client()?.complete(req, cancel).await;
        self.record(phase, req, started, result.as_ref());
        result
    }

    /// A streamed call: text deltas of the JSON's `answer` go out as [`SoarEvent::AnswerDelta`].
    async fn stream(
        &self,
        phase: PhaseKey,
        req: &LlmRequest,
        cancel: &CancellationToken,
    ) -> Result<LlmResponse, LlmError> {
        self.check_cap(req)?;
        let started = Instant::now();
        let result = async {
            let client = self.client()?;
            let mut stream = client.stream(req, cancel).await?;
            let mut text = String::new();
            let mut sent = 0usize;
            while let Some(event) = stream.next().await {
                match event? {
                    StreamEvent::Delta(d) => {
                        text.push_str(&d);
                        if let Some(answer) = partial_answer(&text)
                            && answer.len() > sent
                        {
                            let _ = self
                                .events
                                .send(SoarEvent::AnswerDelta { attempt: req.attempt, text: answer[sent..].to_owned() });
                            sent = answer.len();
                        }
                    }
                    StreamEvent::Done(resp) => return Ok(resp),
                }
            }
            Err(LlmError::StreamInterrupted {
                provider: client.provider().to_owned(),
                received_chars: text.len(),
                message: "the stream ended without its final event".into(),
            })
        }
        .await;
        self.record(phase, req, started, result.as_ref());
        result
    }

    /// A typed, validated JSON reply; a reply that does not parse or validate gets up to
    /// `soar.jsonRepairAttempts` repair calls, then [`LlmError::InvalidModelOutput`].
    pub async fn json<T: StructuredOutput>(
        &self,
        spec: &CallSpec,
        stream: bool,
        cancel: &CancellationToken,
    ) -> Result<T, LlmError> {
        let schema = T::schema();
        let mut req = self.request(spec).with_output(OutputKind::Json(schema.clone()));
        let mut repairs = 0;
        loop {
            let response = if stream && !req.repair {
                self.stream(spec.phase, &req, cancel).await?
            } else {
                self.complete(spec.phase, &req, cancel).await?
            };
            let errors = match parse::<T>(&response.content) {
                Ok(v) => return Ok(v),
                Err(errors) => errors,
            };
            if repairs >= self.config.soar.json_repair_attempts {
                return Err(LlmError::InvalidModelOutput { role: spec.role.clone(), errors });
            }
            repairs += 1;
            tracing::debug!(role = %spec.role, errors = ?errors, "model JSON rejected; asking for a repair");
            req.repair = true;
            req.messages.push(Message::assistant(response.content));
            req.messages.push(Message::user(repair_prompt(&schema, &errors)));
        }
    }

    /// Records an external agent's run: token counts estimated from its input and output, its
    /// configured cost estimate, price unknown.
    pub fn record_external(
        &self,
        phase: PhaseKey,
        agent_id: &str,
        input_chars: usize,
        output_chars: usize,
        cost_usd: f64,
    ) {
        let mut st = self.state();
        let est = crate::llm::Usage::estimate(input_chars, output_chars);
        let u = Usage {
            input_tokens: u64::from(est.input_tokens),
            output_tokens: u64::from(est.output_tokens),
            estimated: true,
            cost_usd,
            price_known: false,
            calls: 1,
        };
        st.add(phase, &u);
        st.log.push(CallLog {
            phase,
            role: format!("agent.{agent_id}"),
            prompt_version: crate::soar::prompts::AGENT.version,
            attempt: 1,
            repair: false,
            model: "external".into(),
            temperature: 0.0,
            max_tokens: 0,
            input_tokens: est.input_tokens,
            output_tokens: est.output_tokens,
            cost_usd,
            duration_ms: 0,
            status: "external".into(),
        });
    }

    pub fn usage(&self) -> Usage {
        self.state().usage.clone()
    }

    pub fn usage_by_phase(&self) -> BTreeMap<PhaseKey, PhaseUsage> {
        self.state().by_phase.clone()
    }

    pub fn log(&self) -> Vec<CallLog> {
        self.state().log.clone()
    }

    pub fn prompts(&self) -> Vec<PromptLog> {
        self.state().prompts.clone()
    }

    pub fn prompt_versions(&self) -> BTreeMap<String, u32> {
        self.state().prompt_versions.clone()
    }

    pub fn models(&self) -> BTreeMap<String, String> {
        self.state().models.clone()
    }

    pub fn budget_warning(&self) -> Option<String> {
        self.state().budget_warning.clone()
    }
}

/// `agent.<id>` roles share one prompt file.
fn prompt_key(role: &str) -> String {
    if role.starts_with("agent.") { "agent".to_owned() } else { role.to_owned() }
}

fn error_status(e: &LlmError) -> String {
    match e {
        LlmError::Cancelled => "cancelled".into(),
        LlmError::BudgetExceeded { .. } => "budget_exceeded".into(),
        LlmError::Timeout { .. } => "timeout".into(),
        LlmError::InvalidModelOutput { .. } => "invalid_output".into(),
        _ => "error".into(),
    }
}

/// The decoded value of the `answer` string of a JSON object still being written, as far as it goes.
pub fn partial_answer(text: &str) -> Option<String> {
    let key = text.find("\"answer\"")?;
    let rest = text[key + 8..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let body = rest.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => {
                let Some(e) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        if hex.len() < 4 {
                            break;
                        }
                        let Ok(code) = u32::from_str_radix(&hex, 16) else { break };
                        if (0xD800..0xDC00).contains(&code) {
                            // A surrogate pair: wait for its second half.
                            let tail: String = chars.by_ref().take(6).collect();
                            let low = tail.strip_prefix("\\u").and_then(|h| u32::from_str_radix(h, 16).ok());
                            match low {
                                Some(low) if tail.len() == 6 => {
                                    let c = 0x10000 + ((code - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF);
                                    out.extend(char::from_u32(c));
                                }
                                _ => break,
                            }
                        } else {
                            out.extend(char::from_u32(code));
                        }
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::partial_answer;

    #[test]
    fn partial_answer_decodes_as_far_as_the_text_goes() {
        assert_eq!(partial_answer("{\"ans"), None);
        assert_eq!(partial_answer("{\"answer\": \"Conf"), Some("Conf".into()));
        assert_eq!(partial_answer("{\"answer\":\"a\\nb \\\"q\\\" \\u00e9"), Some("a\nb \"q\" é".into()));
        assert_eq!(partial_answer("{\"answer\":\"done\", \"citations\": []}"), Some("done".into()));
        // An escape cut in half waits for the rest.
        assert_eq!(partial_answer("{\"answer\":\"x\\u00"), Some("x".into()));
    }
}
