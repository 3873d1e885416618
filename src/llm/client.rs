//! `Llm`, the client the rest of Aurora holds: a provider built from `llm.*` behind the budget gate,
//! transport retries, pricing and usage records; and `check`, the one-request probe behind `aurora doctor`.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::llm::anthropic::Anthropic;
use crate::llm::budget::{Budget, Reservation, UsageRecord};
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
/// sent if its estimate would pass a cap, counting calls still in flight; is retried on transient errors;
/// comes back priced, with [`Usage::budget_warning`] set past the soft limit; and is recorded in the budget's
/// usage log, failures, cancellations and dropped streams included.
pub struct Llm {
    inner: Arc<dyn LlmClient>,
    retry: RetryPolicy,
    prices: Arc<PriceTable>,
    budget: Option<Arc<Budget>>,
    /// The timeout of requests that set none; `None` leaves it to the provider.
    request_timeout: Option<Duration>,
}

impl Llm {
    /// Wraps `inner` with the default retry policy and prices, and no budget.
    pub fn new(inner: Arc<dyn LlmClient>) -> Llm {
        Llm {
            inner,
            retry: RetryPolicy::default(),
            prices: Arc::new(PriceTable::default()),
            budget: None,
            request_timeout: None,
        }
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

    /// The timeout of one attempt of a request that sets none.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Llm {
        self.request_timeout = Some(timeout);
        self
    }

    pub fn budget(&self) -> Option<&Arc<Budget>> {
        self.budget.as_ref()
    }

    /// The configured provider with `llm.maxRetries`, `llm.timeouts.requestMs` for requests that set no
    /// timeout, and local servers priced as free. `env` reads an environment variable (injected so tests
    /// never touch the process environment).
    pub fn from_config(cfg: &LlmConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Llm, LlmError> {
        let inner = provider_from_config(cfg, env)?;
        let mut prices = PriceTable::default();
        if cfg.provider == ProviderKind::Openai && is_loopback(&cfg.base_url()) {
            prices = prices.with_free_provider("openai");
        }
        let retry = RetryPolicy { max_retries: cfg.max_retries, ..RetryPolicy::default() };
        Ok(Llm::new(inner)
            .with_retry(retry)
            .with_prices(prices)
            .with_request_timeout(Duration::from_millis(cfg.timeouts.request_ms)))
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
        self.estimate(req).0
    }

    /// The estimate and whether the model's price is known.
    fn estimate(&self, req: &LlmRequest) -> (f64, bool) {
        let model = req.model.as_deref().unwrap_or(self.inner.default_model());
        let (price, known) = self.prices.price(self.inner.provider(), model);
        let input = (req.prompt_chars() as u64).div_ceil(4);
        (price.cost(input, u64::from(req.max_tokens / 2)), known)
    }

    /// `req` with the default timeout filled in, if it set none and this client has one.
    fn resolve<'r>(&self, req: &'r LlmRequest) -> Cow<'r, LlmRequest> {
        match self.request_timeout {
            Some(timeout) if req.timeout.is_zero() => Cow::Owned(req.clone().with_timeout(timeout)),
            _ => Cow::Borrowed(req),
        }
    }

    async fn complete_inner(&self, req: &LlmRequest, cancel: &CancellationToken) -> Result<LlmResponse, LlmError> {
        let req = self.resolve(req);
        let mut call = Call::start(self, &req)?;
        match self.retry.run(cancel, |_| self.inner.complete(&req, cancel)).await {
            Ok(mut response) => {
                call.succeeded(&mut response);
                Ok(response)
            }
            Err(e) => {
                call.failed(&e);
                Err(e)
            }
        }
    }

    async fn stream_inner(&self, req: &LlmRequest, cancel: &CancellationToken) -> Result<TextStream, LlmError> {
        let req = self.resolve(req);
        let mut call = Call::start(self, &req)?;
        let stream = match self.retry.run(cancel, |_| self.inner.stream(&req, cancel)).await {
            Ok(stream) => stream,
            Err(e) => {
                call.failed(&e);
                return Err(e);
            }
        };
        // From here the provider is generating: whatever ends the stream, including the caller dropping it,
        // is recorded by `call`, which the stream owns.
        call.accepted = true;
        Ok(stream
            .map(move |event| match event {
                Ok(StreamEvent::Delta(delta)) => {
                    call.received_bytes += delta.len();
                    Ok(StreamEvent::Delta(delta))
                }
                Ok(StreamEvent::Done(mut response)) => {
                    call.succeeded(&mut response);
                    Ok(StreamEvent::Done(response))
                }
                Err(e) => {
                    call.failed(&e);
                    Err(e)
                }
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

/// One call through [`Llm`]: its budget reservation and its usage record, written exactly once — when it
/// succeeds, fails, or is dropped unfinished (a dropped `complete` future or stream).
struct Call {
    budget: Option<Arc<Budget>>,
    reservation: Option<Reservation>,
    prices: Arc<PriceTable>,
    template: UsageRecord,
    started: Instant,
    prompt_bytes: usize,
    /// Reply text received so far on a stream, for an estimate if the stream does not finish.
    received_bytes: usize,
    /// True once a stream was accepted, so that the provider has started to generate.
    accepted: bool,
    finished: bool,
}

impl Call {
    /// Admits the call against the budget (holding its estimate) and prepares its usage record.
    fn start(llm: &Llm, req: &LlmRequest) -> Result<Call, LlmError> {
        let reservation = match &llm.budget {
            Some(budget) => {
                let (estimate, price_known) = llm.estimate(req);
                Some(budget.reserve(req.query_id.as_ref(), estimate, price_known)?)
            }
            None => None,
        };
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
        Ok(Call {
            budget: llm.budget.clone(),
            reservation,
            prices: Arc::clone(&llm.prices),
            template,
            started: Instant::now(),
            prompt_bytes: req.prompt_chars(),
            received_bytes: 0,
            accepted: false,
            finished: false,
        })
    }

    /// Prices `response`, sets its budget warning, and records it.
    fn succeeded(&mut self, response: &mut LlmResponse) {
        self.prices.apply(&response.provider, &response.model, &mut response.usage);
        response.usage.budget_warning = self.reservation.as_ref().and_then(|r| r.warning().cloned());
        self.template.model = response.model.clone();
        self.finish("ok", &response.usage);
    }

    /// Records a failure. One that may have cost tokens (a cancelled, timed-out or broken call, or any
    /// failure of an accepted stream) is recorded at a price estimated from the text sent and received.
    fn failed(&mut self, e: &LlmError) {
        let usage = if self.accepted || may_have_consumed(e) { self.estimated_usage() } else { Usage::default() };
        self.finish(e.status_name(), &usage);
    }

    fn estimated_usage(&self) -> Usage {
        let mut usage = Usage::estimate(self.prompt_bytes, self.received_bytes);
        self.prices.apply(&self.template.provider, &self.template.model, &mut usage);
        usage
    }

    fn finish(&mut self, status: &str, usage: &Usage) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let reservation = self.reservation.take();
        let Some(budget) = &self.budget else { return };
        let mut record = self.template.clone();
        record.at_ms = budget.now_ms();
        record.duration_ms = elapsed_ms(self.started);
        record.input_tokens = usage.input_tokens;
        record.output_tokens = usage.output_tokens;
        record.estimated = usage.estimated;
        record.cost_usd = usage.cost_usd;
        record.price_known = usage.price_known;
        record.status = status.to_owned();
        match reservation {
            Some(reservation) => reservation.settle(&record),
            None => budget.record(&record),
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            let usage = self.estimated_usage();
            self.finish("dropped", &usage);
        }
    }
}

/// Whether a failed call may still have been billed: it was cut short after the request went out.
fn may_have_consumed(e: &LlmError) -> bool {
    match e {
        LlmError::Cancelled | LlmError::Timeout { .. } | LlmError::StreamInterrupted { .. } => true,
        LlmError::RetriesExhausted { last, .. } => may_have_consumed(last),
        _ => false,
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
            request_timeout: Duration::from_millis(timeouts.request_ms),
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
        ProviderKind::Command => Arc::new(
            Pipe::new(cfg.command.clone(), cfg.solving_model())?
                .with_request_timeout(Duration::from_millis(cfg.timeouts.request_ms)),
        ),
    })
}

/// True when `url` names this machine: the host `localhost`, or an IP address in 127.0.0.0/8 or `::1` (also
/// IPv4-mapped). The host is taken from the parsed URL, so `http://127.evil.com` or `http://localhost.evil.com`
/// are not loopback; neither is anything that does not parse.
pub fn is_loopback(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else { return false };
    let Some(host) = url.host_str() else { return false };
    if host.eq_ignore_ascii_case("localhost") || host.eq_ignore_ascii_case("localhost.") {
        return true;
    }
    // IPv6 hosts come bracketed; the URL parser has already normalised IPv4 forms such as `127.1` or `0x7f.1`.
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Err(_) => false,
    }
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
        for url in [
            "http://localhost:8080/v1",
            "http://LOCALHOST",
            "http://localhost./v1",
            "http://127.0.0.1:11434",
            "http://127.255.3.4",
            "http://127.1:8080",
            "http://0x7f.0.0.1/",
            "http://[::1]:9000/",
            "http://[::ffff:127.0.0.1]/",
            "http://u:p@localhost",
            "http://evil.com@127.0.0.1/",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://api.openai.com/v1",
            "http://10.0.0.2:8000",
            "http://localhost.example.com",
            "http://127.evil.com",
            "http://127.0.0.1.nip.io:8080",
            "http://127.0.0.1@evil.com/",
            "http://localhost@evil.com",
            "http://[::2]/",
            "http://0.0.0.0:8080",
            "127.0.0.1:8080",
            "localhost",
            "not a url",
            "",
        ] {
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
