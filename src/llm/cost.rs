//! The price table: USD per million input and output tokens per provider and model; local providers are free.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::llm::Usage;

/// USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Price {
    pub const FREE: Price = Price { input_per_mtok: 0.0, output_per_mtok: 0.0 };

    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_per_mtok + output_tokens as f64 * self.output_per_mtok) / 1_000_000.0
    }
}

/// List prices (2026-11) by model-name prefix; the longest matching prefix wins, so dated snapshots
/// (`claude-sonnet-4-5-20250929`) find their family.
const PRICES: &[(&str, &str, Price)] = &[
    ("anthropic", "claude-opus-4-5", Price { input_per_mtok: 5.0, output_per_mtok: 25.0 }),
    ("anthropic", "claude-opus-4-6", Price { input_per_mtok: 5.0, output_per_mtok: 25.0 }),
    ("anthropic", "claude-opus-4", Price { input_per_mtok: 15.0, output_per_mtok: 75.0 }),
    ("anthropic", "claude-sonnet-4", Price { input_per_mtok: 3.0, output_per_mtok: 15.0 }),
    ("anthropic", "claude-3-7-sonnet", Price { input_per_mtok: 3.0, output_per_mtok: 15.0 }),
    ("anthropic", "claude-haiku-4", Price { input_per_mtok: 1.0, output_per_mtok: 5.0 }),
    ("anthropic", "claude-3-5-haiku", Price { input_per_mtok: 0.8, output_per_mtok: 4.0 }),
    ("openai", "gpt-5", Price { input_per_mtok: 1.25, output_per_mtok: 10.0 }),
    ("openai", "gpt-5-mini", Price { input_per_mtok: 0.25, output_per_mtok: 2.0 }),
    ("openai", "gpt-5-nano", Price { input_per_mtok: 0.05, output_per_mtok: 0.4 }),
    ("openai", "gpt-4.1", Price { input_per_mtok: 2.0, output_per_mtok: 8.0 }),
    ("openai", "gpt-4.1-mini", Price { input_per_mtok: 0.4, output_per_mtok: 1.6 }),
    ("openai", "gpt-4.1-nano", Price { input_per_mtok: 0.1, output_per_mtok: 0.4 }),
    ("openai", "gpt-4o", Price { input_per_mtok: 2.5, output_per_mtok: 10.0 }),
    ("openai", "gpt-4o-mini", Price { input_per_mtok: 0.15, output_per_mtok: 0.6 }),
    ("openai", "o3", Price { input_per_mtok: 2.0, output_per_mtok: 8.0 }),
    ("openai", "o4-mini", Price { input_per_mtok: 1.1, output_per_mtok: 4.4 }),
];

/// Prices for every call. Unknown models of paid providers cost `unknown` (zero by default, as issue 3
/// asks; `spec/soar.md` §15 would use 3/15) with `price_known = false` and one warning per model.
#[derive(Debug)]
pub struct PriceTable {
    entries: Vec<(String, String, Price)>,
    /// Providers whose calls are free: Ollama, the command provider, an OpenAI-compatible server on loopback.
    free: HashSet<String>,
    pub unknown: Price,
    warned: Mutex<HashSet<String>>,
}

impl Default for PriceTable {
    fn default() -> PriceTable {
        PriceTable {
            entries: PRICES.iter().map(|(p, m, price)| ((*p).to_owned(), (*m).to_owned(), *price)).collect(),
            free: ["ollama", "command"].into_iter().map(String::from).collect(),
            unknown: Price::FREE,
            warned: Mutex::new(HashSet::new()),
        }
    }
}

impl PriceTable {
    /// Adds or replaces a price (for tests and custom deployments).
    pub fn with_price(mut self, provider: &str, model_prefix: &str, price: Price) -> PriceTable {
        self.entries.retain(|(p, m, _)| !(p == provider && m == model_prefix));
        self.entries.push((provider.to_owned(), model_prefix.to_owned(), price));
        self
    }

    /// Marks a provider as free, e.g. `openai` pointed at a local llama.cpp server.
    pub fn with_free_provider(mut self, provider: &str) -> PriceTable {
        self.free.insert(provider.to_owned());
        self
    }

    /// The price of a model and whether it is known. Free providers are always known.
    pub fn price(&self, provider: &str, model: &str) -> (Price, bool) {
        if self.free.contains(provider) {
            return (Price::FREE, true);
        }
        let best = self
            .entries
            .iter()
            .filter(|(p, m, _)| p == provider && model.starts_with(m.as_str()))
            .max_by_key(|(_, m, _)| m.len());
        match best {
            Some((_, _, price)) => (*price, true),
            None => (self.unknown, false),
        }
    }

    /// Fills `usage.cost_usd` and `usage.price_known`, warning once per unknown model.
    pub fn apply(&self, provider: &str, model: &str, usage: &mut Usage) {
        let (price, known) = self.price(provider, model);
        usage.cost_usd = price.cost(u64::from(usage.input_tokens), u64::from(usage.output_tokens));
        usage.price_known = known;
        if !known {
            let mut warned = self.warned.lock().expect("the warned-models lock is never poisoned by a panic");
            if warned.insert(format!("{provider}/{model}")) {
                tracing::warn!(
                    provider,
                    model,
                    "no price known for this model; its calls are counted at the fallback price"
                );
            }
        }
    }

    /// Estimated cost of a call before it is made.
    pub fn estimate(&self, provider: &str, model: &str, input_tokens: u64, output_tokens: u64) -> f64 {
        self.price(provider, model).0.cost(input_tokens, output_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_local_is_free() {
        let table = PriceTable::default();
        assert_eq!(table.price("anthropic", "claude-opus-4-5-20251101").0.input_per_mtok, 5.0);
        assert_eq!(table.price("anthropic", "claude-opus-4-1-20250805").0.input_per_mtok, 15.0);
        assert_eq!(table.price("openai", "gpt-4o-mini-2024-07-18").0.output_per_mtok, 0.6);
        assert_eq!(table.price("ollama", "llama3.2"), (Price::FREE, true));
    }

    #[test]
    fn unknown_models_are_flagged() {
        let mut usage = Usage { input_tokens: 1000, output_tokens: 1000, ..Usage::default() };
        PriceTable::default().apply("openai", "my-finetune", &mut usage);
        assert!(!usage.price_known);
        assert_eq!(usage.cost_usd, 0.0);
    }

    #[test]
    fn cost_is_per_million_tokens() {
        let mut usage = Usage { input_tokens: 1_000_000, output_tokens: 100_000, ..Usage::default() };
        PriceTable::default().apply("anthropic", "claude-sonnet-4-5", &mut usage);
        assert!((usage.cost_usd - 4.5).abs() < 1e-9);
        assert!(usage.price_known);
    }
}
