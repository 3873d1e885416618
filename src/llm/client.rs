//! `Llm`, the client the rest of Aurora holds: a provider built from `llm.*` behind the budget gate,
//! transport retries, pricing and usage records; and `check`, the one-request probe behind `aurora doctor`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::llm::anthropic::Anthropic;
use crate::llm::budget::{Budget, UsageRecord};
use crate::llm::http::{Endpoint, build_client, elapsed_ms};
use crate::llm::json::{self, JsonReply, StructuredOutput};
use crate::llm::ollama::Ollama;
use crate::llm::openai::OpenAi;
use crate::llm::pipe::Pipe;
use crate::llm::{
    LlmClient, LlmConfig, LlmError, LlmRequest, LlmResponse, PriceTable, ProviderKind, RetryPolicy, SecretKey,
    StreamEvent, TextStream, Usage,
};

/// The façade over one provider. Every call: is refused with [`LlmError::BudgetExceeded`] before anything is
/// sent if its estimate would pass a cap; is retried on transient errors; comes back priced; and is recorded
/// in the budget's usage log, failures included.
pub struct Llm {
    inner: Arc<dyn LlmClient>,
    retry: RetryPolicy,
    prices: Arc<PriceTable>,
    budget: Option<Arc<Budget>>,
}

impl Llm {
    /// Wraps `inner` with the default retry policy and prices, and no budget.
    pub fn new(inner: Arc<dyn LlmClient>) -> Llm {
        Llm { inner, retry: RetryPolicy::default(), prices: Arc::new(PriceTable::default()), budget: None }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Llm {
        self.retry = retry;
        self
    }

    pub fn with_prices(mut self, prices: PriceTable) -> Llm {
        self.prices = Arc::new(prices);
        self
    }

    pub fn with_budget(mut self, budget: Arc<Budget>) -> Llm {
        self.budget = Some(budget);
        self
    }

    pub fn budget(&self) -> Option<&Arc<Budget>> {
        self.budget.as_ref()
    }

    /// The configured provider with `llm.maxRetries`, and local servers priced as free. `env` reads an
    /// environment variable (injected so tests never touch the process environment).
    pub fn from_config(cfg: &LlmConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Llm, LlmError> {
        let inner = provider_from_config(cfg, env)?;
        let mut prices = PriceTable::default();
        if cfg.provider == ProviderKind::Openai && is_loopback(&cfg.base_url()) {
            prices = prices.with_free_provider("openai");
        }
        let retry = RetryPolicy { max_retries: cfg.max_retries, ..RetryPolicy::default() };
        Ok(Llm::new(inner).with_retry(retry).with_prices(prices))
    }

    /// A typed, validated JSON reply with one repair call (see [`crate::llm::json::complete_json`]).
    pub async fn json<T: StructuredOutput>(
        &self,
        req: LlmRequest,
        cancel: &CancellationToken,
    ) -> Result<JsonReply<T>, LlmError> {
        json::complete_json(self, req, cancel, 1).await
    }

    /// Cost estimate of a call before it is made: about four characters per input token, and half of
    /// `max_tokens` out (spec/soar.md §15).
    pub fn estimate_usd(&self, req: &LlmRequest) -> f64 {
        let model = req.model.as_deref().unwrap_or(self.inner.default_model());
        let input = (req.prompt_chars() as u64).div_ceil(4);
        self.prices.estimate(self.inner.provider(), model, input, u64::from(req.max_tokens / 2))
    }

    fn gate(&self, req: &LlmRequest) -> Result<(), LlmError> {
        if let Some(budget) = &self.budget {
            budget.check(req.query_id.as_ref(), self.estimate_usd(req))?;
        }
        Ok(())
    }

    async fn complete_inner(&self, req: &LlmRequest, cancel: &CancellationToken) -> Result<LlmResponse, LlmError> {
        self.gate(req)?;
        let started = Instant::now();
        let result = self.retry.run(cancel, |_| self.inner.complete(req, cancel)).await;
        let recorder = Recorder::new(self, req);
        match result {
            Ok(mut response) => {
                self.prices.apply(&response.provider, &response.model, &mut response.usage);
                recorder.record(Ok(&response), started);
                Ok(response)
            }
            Err(e) => {
                recorder.record(Err(&e), started);
                Err(e)
            }
        }
    }

    async fn stream_inner(&self, req: &LlmRequest, cancel: &CancellationToken) -> Result<TextStream, LlmError> {
        self.gate(req)?;
        let started = Instant::now();
        let recorder = Recorder::new(self, req);
        let stream = match self.retry.run(cancel, |_| self.inner.stream(req, cancel)).await {
            Ok(stream) => stream,
            Err(e) => {
                recorder.record(Err(&e), started);
                return Err(e);
            }
        };
        let prices = Arc::clone(&self.prices);
        Ok(stream
            .map(move |event| {
                match &event {
                    Ok(StreamEvent::Done(response)) => {
                        let mut response = response.clone();
                        prices.apply(&response.provider, &response.model, &mut response.usage);
                        recorder.record(Ok(&response), started);
                        return Ok(StreamEvent::Done(response));
                    }
                    Err(e) => recorder.record(Err(e), started),
                    Ok(StreamEvent::Delta(_)) => {}
                }
                event
            })
            .boxed())
    }
}

impl LlmClient for Llm {
    fn provider(&self) -> &str {
        self.inner.provider()
    }

    fn default_model(&self) -> &str {
        self.inner.default_model()
    }

    fn complete<'a>(
        &'a self,
        req: &'a LlmRequest,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        self.complete_inner(req, cancel).boxed()
    }

    fn stream<'a>(
        &'a self,
        req: &'a LlmRequest,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<TextStream, LlmError>> {
        self.stream_inner(req, cancel).boxed()
    }
}

/// Writes the usage record of one call to the budget, if there is one.
struct Recorder {
    budget: Option<Arc<Budget>>,
    template: UsageRecord,
}

impl Recorder {
    fn new(llm: &Llm, req: &LlmRequest) -> Recorder {
        let template = UsageRecord {
            at_ms: 0,
            query_id: req.query_id.as_ref().map(|q| q.0.clone()),
            phase: req.phase.clone(),
            role: req.role.to_string(),
            prompt_version: req.prompt_version,
            provider: llm.inner.provider().to_owned(),
            model: req.model.clone().unwrap_or_else(|| llm.inner.default_model().to_owned()),
            input_tokens: 0,
            output_tokens: 0,
            estimated: false,
            cost_usd: 0.0,
            price_known: true,
            duration_ms: 0,
            status: String::new(),
        };
        Recorder { budget: llm.budget.clone(), template }
    }

    fn record(&self, outcome: Result<&LlmResponse, &LlmError>, started: Instant) {
        let Some(budget) = &self.budget else { return };
        let mut record = self.template.clone();
        record.at_ms = budget.now_ms();
        record.duration_ms = elapsed_ms(started);
        match outcome {
            Ok(response) => {
                let Usage { input_tokens, output_tokens, estimated, cost_usd, price_known } = response.usage.clone();
                record.model = response.model.clone();
                record.input_tokens = input_tokens;
                record.output_tokens = output_tokens;
                record.estimated = estimated;
                record.cost_usd = cost_usd;
                record.price_known = price_known;
                record.status = "ok".into();
            }
            Err(e) => record.status = e.status_name().into(),
        }
        budget.record(&record);
    }
}

/// The bare provider for `cfg`, without retries or budget.
pub fn provider_from_config(
    cfg: &LlmConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn LlmClient>, LlmError> {
    let problems = cfg.validate();
    if !problems.is_empty() {
        return Err(LlmError::InvalidConfig { problems: problems.iter().map(ToString::to_string).collect() });
    }
    let provider = cfg.provider.name();
    let endpoint = |key: Option<SecretKey>, key_env: String| -> Result<Endpoint, LlmError> {
        let timeouts = &cfg.timeouts;
        Ok(Endpoint {
            provider,
            base_url: cfg.base_url(),
            key,
            key_env,
            default_model: cfg.solving_model().to_owned(),
            client: build_client(Duration::from_millis(timeouts.connect_ms), Duration::from_millis(timeouts.idle_ms))?,
        })
    };
    let key = |required: bool| -> Result<(Option<SecretKey>, String), LlmError> {
        let Some(name) = cfg.api_key_env() else { return Ok((None, String::new())) };
        match env(&name).filter(|k| !k.trim().is_empty()) {
            Some(key) => Ok((Some(SecretKey::new(key.trim().to_owned())), name)),
            None if required || !cfg.api_key_env.is_empty() => {
                Err(LlmError::MissingApiKey { provider: provider.to_owned(), env: name })
            }
            None => Ok((None, name)),
        }
    };
    Ok(match cfg.provider {
        ProviderKind::None => return Err(LlmError::NotConfigured),
        ProviderKind::Anthropic => {
            let (key, env) = key(true)?;
            Arc::new(Anthropic::new(endpoint(key, env)?))
        }
        ProviderKind::Openai => {
            // Local OpenAI-compatible servers (llama.cpp, vLLM, LM Studio) usually need no key.
            let (key, env) = key(!is_loopback(&cfg.base_url()))?;
            Arc::new(OpenAi::new(endpoint(key, env)?))
        }
        ProviderKind::Ollama => {
            let (key, env) = key(false)?;
            Arc::new(Ollama::new(endpoint(key, env)?))
        }
        ProviderKind::Command => Arc::new(Pipe::new(cfg.command.clone(), cfg.solving_model())?),
    })
}

/// True for `localhost`, `127.x.y.z` and `[::1]` URLs.
pub fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next().map(|h| h.trim_start_matches('[')).unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost") || host.starts_with("127.") || host == "::1"
}

/// What `aurora doctor`/`llm-check` shows when the provider answered.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckReport {
    pub provider: String,
    pub model: String,
    /// Empty for the command provider.
    pub base_url: String,
    pub round_trip_ms: u64,
    /// The start of the model's reply.
    pub reply: String,
}

/// Sends one small request (no retry, no budget) and reports who answered and how fast, or the error a
/// user can act on (missing key, unknown model, unreachable server, bad settings).
pub async fn check(
    cfg: &LlmConfig,
    env: &dyn Fn(&str) -> Option<String>,
    cancel: &CancellationToken,
) -> Result<CheckReport, LlmError> {
    let client = provider_from_config(cfg, env)?;
    let req = LlmRequest::new("llm.check", "", "Reply with the single word: ok")
        .with_max_tokens(16)
        .with_temperature(0.0)
        .with_timeout(Duration::from_millis(cfg.timeouts.request_ms));
    let started = Instant::now();
    let response = client.complete(&req, cancel).await?;
    Ok(CheckReport {
        provider: response.provider,
        model: response.model,
        base_url: if cfg.provider == ProviderKind::Command { String::new() } else { cfg.base_url() },
        round_trip_ms: elapsed_ms(started),
        reply: response.content.trim().chars().take(80).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for url in ["http://localhost:8080/v1", "http://127.0.0.1:11434", "http://[::1]:9000/", "http://u:p@localhost"]
        {
            assert!(is_loopback(url), "{url}");
        }
        for url in ["https://api.openai.com/v1", "http://10.0.0.2:8000", "http://localhost.example.com"] {
            assert!(!is_loopback(url), "{url}");
        }
    }

    #[test]
    fn missing_keys_and_missing_settings_are_named() {
        let no_env = |_: &str| None;
        let cfg =
            LlmConfig { provider: ProviderKind::Anthropic, model: "claude-sonnet-4-5".into(), ..LlmConfig::default() };
        let err = provider_from_config(&cfg, &no_env).err().expect("no key");
        assert_eq!(
            err.to_string(),
            "llm.apiKeyEnv names ANTHROPIC_API_KEY, which is not set; set it or use provider \"ollama\""
        );
        let cfg = LlmConfig { provider: ProviderKind::Openai, ..LlmConfig::default() };
        let err = provider_from_config(&cfg, &no_env).err().expect("no model");
        assert!(err.to_string().contains("llm.model: provider \"openai\" needs a model"), "{err}");
        let err = provider_from_config(&LlmConfig::default(), &no_env).err().expect("none");
        assert!(matches!(err, LlmError::NotConfigured));
        let local = LlmConfig {
            provider: ProviderKind::Openai,
            model: "qwen".into(),
            base_url: "http://127.0.0.1:8080/v1".into(),
            ..LlmConfig::default()
        };
        assert!(provider_from_config(&local, &no_env).is_ok());
    }
}
