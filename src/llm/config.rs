//! The `llm.*` and `budget.*` settings (spec/lsp.md §7.2): typed, with defaults, and validation whose
//! problems name the key path. The main `Config` embeds them as its `llm` and `budget` fields.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::llm::{anthropic, ollama, openai};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Anthropic,
    Openai,
    Ollama,
    Command,
    #[default]
    None,
}

impl ProviderKind {
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Openai => "openai",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Command => "command",
            ProviderKind::None => "none",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `llm.timeouts`, each 100..=600000 ms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LlmTimeouts {
    /// Establishing the connection.
    pub connect_ms: u64,
    /// One attempt of one call, streaming included, for every request that sets no timeout of its own.
    pub request_ms: u64,
    /// No byte received for this long ends the attempt.
    pub idle_ms: u64,
}

impl Default for LlmTimeouts {
    fn default() -> LlmTimeouts {
        LlmTimeouts { connect_ms: 10_000, request_ms: 120_000, idle_ms: 30_000 }
    }
}

/// `llm.temperature`: per SOAR model role, each 0..=2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoleTemperatures {
    /// Decomposition and review.
    pub reasoning: f64,
    /// Answers, agents and synthesis.
    pub solving: f64,
}

impl Default for RoleTemperatures {
    fn default() -> RoleTemperatures {
        RoleTemperatures { reasoning: 0.2, solving: 0.3 }
    }
}

/// `llm.*`. Keys that could redirect code or secrets (`baseUrl`, `apiKeyEnv`, `command`) must not be taken
/// from a repository's own config file; the main config loader enforces that.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LlmConfig {
    pub provider: ProviderKind,
    /// Required for anthropic, openai and ollama; a label for command. Empty means not set (string keys
    /// default to "" rather than null so that layered config merging sees their type).
    pub model: String,
    /// Model for SOAR's reasoning role; empty means `model`.
    pub reasoning_model: String,
    /// Empty means the provider's default; http(s) only.
    pub base_url: String,
    /// The name of the environment variable holding the key, never the key; empty means the provider's
    /// default (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`, none for Ollama).
    pub api_key_env: String,
    /// argv of the `command` provider; the prompt goes to its stdin.
    pub command: Vec<String>,
    pub timeouts: LlmTimeouts,
    pub max_tokens: u32,
    /// Transient errors only.
    pub max_retries: u32,
    pub temperature: RoleTemperatures,
}

impl Default for LlmConfig {
    fn default() -> LlmConfig {
        LlmConfig {
            provider: ProviderKind::None,
            model: String::new(),
            reasoning_model: String::new(),
            base_url: String::new(),
            api_key_env: String::new(),
            command: Vec::new(),
            timeouts: LlmTimeouts::default(),
            max_tokens: 4096,
            max_retries: 3,
            temperature: RoleTemperatures::default(),
        }
    }
}

impl LlmConfig {
    /// `llm.baseUrl` or the provider's default, without a trailing slash.
    pub fn base_url(&self) -> String {
        let url = match self.provider {
            _ if !self.base_url.is_empty() => self.base_url.as_str(),
            ProviderKind::Anthropic => anthropic::DEFAULT_BASE_URL,
            ProviderKind::Openai => openai::DEFAULT_BASE_URL,
            ProviderKind::Ollama => ollama::DEFAULT_BASE_URL,
            _ => "",
        };
        url.trim_end_matches('/').to_owned()
    }

    /// `llm.apiKeyEnv` or the provider's default variable; `None` for providers that need no key.
    pub fn api_key_env(&self) -> Option<String> {
        match self.provider {
            _ if !self.api_key_env.is_empty() => Some(self.api_key_env.clone()),
            ProviderKind::Anthropic => Some(anthropic::DEFAULT_KEY_ENV.to_owned()),
            ProviderKind::Openai => Some(openai::DEFAULT_KEY_ENV.to_owned()),
            _ => None,
        }
    }

    /// The model of SOAR's solving role (and of every call that names none).
    pub fn solving_model(&self) -> &str {
        match self.provider {
            _ if !self.model.is_empty() => &self.model,
            ProviderKind::Command => "command",
            _ => "",
        }
    }

    /// The model of SOAR's reasoning role.
    pub fn reasoning_model(&self) -> &str {
        if self.reasoning_model.is_empty() { self.solving_model() } else { &self.reasoning_model }
    }

    /// Every problem, each naming its key path (`llm.model`). An empty list means the section is usable.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| problems.push(ConfigProblem { key: key.to_owned(), message });
        let needs_model =
            matches!(self.provider, ProviderKind::Anthropic | ProviderKind::Openai | ProviderKind::Ollama);
        if needs_model && self.model.trim().is_empty() {
            problem(
                "llm.model",
                format!("provider \"{}\" needs a model; the LLM counts as not configured", self.provider),
            );
        }
        if self.provider == ProviderKind::Command && self.command.first().is_none_or(|p| p.trim().is_empty()) {
            problem(
                "llm.command",
                "provider \"command\" needs the program and its arguments, e.g. [\"claude\", \"-p\"]; the LLM counts as not configured"
                    .into(),
            );
        }
        let url = &self.base_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            problem("llm.baseUrl", format!("\"{url}\" is not an http(s) URL; using the provider's default"));
        }
        let env = &self.api_key_env;
        if !env.is_empty() && !is_env_name(env) {
            let hint = if env.len() > 20 {
                " (it looks like a key: put the key in an environment variable and set llm.apiKeyEnv to its name)"
            } else {
                ""
            };
            problem("llm.apiKeyEnv", format!("must be an environment variable name like ANTHROPIC_API_KEY{hint}"));
        }
        for (key, value) in [
            ("llm.timeouts.connectMs", self.timeouts.connect_ms),
            ("llm.timeouts.requestMs", self.timeouts.request_ms),
            ("llm.timeouts.idleMs", self.timeouts.idle_ms),
        ] {
            if !(100..=600_000).contains(&value) {
                problem(key, format!("{value} is outside 100..600000"));
            }
        }
        if !(1..=200_000).contains(&self.max_tokens) {
            problem("llm.maxTokens", format!("{} is outside 1..200000", self.max_tokens));
        }
        if self.max_retries > 10 {
            problem("llm.maxRetries", format!("{} is outside 0..10", self.max_retries));
        }
        for (key, value) in [
            ("llm.temperature.reasoning", self.temperature.reasoning),
            ("llm.temperature.solving", self.temperature.solving),
        ] {
            if !(0.0..=2.0).contains(&value) {
                problem(key, format!("{value} is outside 0..2"));
            }
        }
        problems
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `budget.*`. A limit of 0 means no limit (spec/lsp.md §7.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BudgetConfig {
    pub per_query_usd: f64,
    pub monthly_usd: f64,
    /// Percent of `monthlyUsd` at which a warning is given.
    pub soft_limit_pct: u32,
    /// Percent of `monthlyUsd` at which calls are refused.
    pub hard_limit_pct: u32,
}

impl Default for BudgetConfig {
    fn default() -> BudgetConfig {
        BudgetConfig { per_query_usd: 0.50, monthly_usd: 10.0, soft_limit_pct: 80, hard_limit_pct: 100 }
    }
}

impl BudgetConfig {
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        for (key, value) in [("budget.perQueryUsd", self.per_query_usd), ("budget.monthlyUsd", self.monthly_usd)] {
            if !value.is_finite() || value < 0.0 {
                problems.push(ConfigProblem { key: key.into(), message: format!("{value} must be a number ≥ 0") });
            }
        }
        if self.soft_limit_pct > self.hard_limit_pct {
            problems.push(ConfigProblem {
                key: "budget.softLimitPct".into(),
                message: format!(
                    "{} must not exceed budget.hardLimitPct ({})",
                    self.soft_limit_pct, self.hard_limit_pct
                ),
            });
        }
        if !(1..=1000).contains(&self.hard_limit_pct) {
            problems.push(ConfigProblem {
                key: "budget.hardLimitPct".into(),
                message: format!("{} is outside 1..1000", self.hard_limit_pct),
            });
        }
        problems
    }
}

/// One rejected setting; the main config adds the source (`<source>: <key>: <message>`).
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Vec<String> {
        let cfg: LlmConfig = serde_json::from_str(json).expect("valid JSON for LlmConfig");
        cfg.validate().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_match_the_settings_tree() {
        let cfg = LlmConfig::default();
        assert_eq!(cfg.provider, ProviderKind::None);
        assert_eq!(cfg.timeouts, LlmTimeouts { connect_ms: 10_000, request_ms: 120_000, idle_ms: 30_000 });
        assert_eq!((cfg.max_tokens, cfg.max_retries), (4096, 3));
        assert!(cfg.validate().is_empty());
        assert_eq!(BudgetConfig::default().monthly_usd, 10.0);
        assert!(BudgetConfig::default().validate().is_empty());
    }

    #[test]
    fn keys_are_camel_case_and_defaults_fill_gaps() {
        let cfg: LlmConfig = serde_json::from_str(
            r#"{"provider":"ollama","model":"llama3.2","reasoningModel":"qwen3","timeouts":{"idleMs":500}}"#,
        )
        .expect("valid");
        assert_eq!(cfg.reasoning_model(), "qwen3");
        assert_eq!(cfg.timeouts.idle_ms, 500);
        assert_eq!(cfg.timeouts.connect_ms, 10_000);
        assert_eq!(cfg.base_url(), "http://localhost:11434");
        assert_eq!(cfg.api_key_env(), None);
    }

    #[test]
    fn problems_name_the_key_path() {
        assert_eq!(
            check(r#"{"provider":"anthropic"}"#),
            vec!["llm.model: provider \"anthropic\" needs a model; the LLM counts as not configured"]
        );
        let problems = check(
            r#"{"provider":"command","baseUrl":"ftp://x","apiKeyEnv":"sk-ant-0123456789abcdefghijkl","timeouts":{"requestMs":5},"maxTokens":0,"temperature":{"solving":3}}"#,
        );
        let keys: Vec<&str> = problems.iter().map(|p| p.split(':').next().unwrap_or_default()).collect();
        assert_eq!(
            keys,
            vec![
                "llm.command",
                "llm.baseUrl",
                "llm.apiKeyEnv",
                "llm.timeouts.requestMs",
                "llm.maxTokens",
                "llm.temperature.solving"
            ]
        );
        assert!(problems[2].contains("looks like a key"), "{}", problems[2]);
    }

    #[test]
    fn budget_problems_name_the_key_path() {
        let cfg = BudgetConfig { per_query_usd: -1.0, soft_limit_pct: 120, ..BudgetConfig::default() };
        let keys: Vec<String> = cfg.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, vec!["budget.perQueryUsd", "budget.softLimitPct"]);
    }
}
