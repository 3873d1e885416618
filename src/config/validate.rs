//! Merging configuration layers key by key, with a named problem for every key that is rejected.

use serde_json::{Map, Value};

use super::Config;

/// One rejected or suspicious setting: `<source>: <key path>: <problem>; <consequence>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub source: String,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(f, "{}: {}: {}", self.source, self.key, self.message)
        }
    }
}

pub(super) struct Builder {
    defaults: Value,
    merged: Value,
    problems: Vec<Problem>,
}

/// Keys that could redirect code or secrets, or run a program (spec/lsp.md §7.1).
const RESTRICTED_KEYS: [&str; 5] =
    ["llm.baseUrl", "llm.apiKeyEnv", "llm.command", "logging.file", "soar.agents.external"];

/// Keys editor settings may not set either: they make Aurora run a program (spec/soar.md §8.4).
const CLIENT_RESTRICTED_KEYS: [&str; 1] = ["soar.agents.external"];

/// Key names that suggest a secret was written into a settings file.
const SECRET_WORDS: [&str; 4] = ["apikey", "token", "password", "secret"];

impl Builder {
    pub(super) fn new() -> Builder {
        let defaults = serde_json::to_value(Config::default()).expect("the default config serialises");
        Builder { merged: defaults.clone(), defaults, problems: Vec::new() }
    }

    /// Adds a TOML file. A folder's own file (`restricted`) may not set the keys that choose where
    /// code and keys are sent or what runs: a cloned repository must not redirect them.
    pub(super) fn add_toml(&mut self, source: &str, text: &str, restricted: bool) {
        match toml::from_str::<toml::Table>(text) {
            Ok(table) => match serde_json::to_value(table) {
                Ok(value) => self.add_layer(source, &value, restricted),
                Err(e) => self.problem(source, "", format!("{e}; file ignored")),
            },
            Err(e) => {
                let at = e
                    .span()
                    .map(|span| {
                        let line = text[..span.start].matches('\n').count() + 1;
                        let col = span.start - text[..span.start].rfind('\n').map_or(0, |i| i + 1) + 1;
                        format!(" at line {line}, column {col}")
                    })
                    .unwrap_or_default();
                let reason = e.message().to_owned();
                self.problem(source, "", format!("TOML syntax error{at}: {reason}; file ignored"));
            }
        }
    }

    /// Merges a layer of client (editor) settings: like [`Builder::add_layer`], but keys that would
    /// make Aurora run a program are ignored with a problem.
    pub(super) fn add_client_layer(&mut self, source: &str, layer: &Value) {
        self.add_layer_with(source, layer, &CLIENT_RESTRICTED_KEYS, "editor settings");
    }

    /// Merges one layer (a JSON object shaped like the settings tree) over the current value.
    pub(super) fn add_layer(&mut self, source: &str, layer: &Value, restricted: bool) {
        let keys: &[&str] = if restricted { &RESTRICTED_KEYS } else { &[] };
        self.add_layer_with(source, layer, keys, "a folder's");
    }

    /// `origin` completes "may only be set in your user configuration, not in …".
    fn add_layer_with(&mut self, source: &str, layer: &Value, restricted: &[&str], origin: &str) {
        let mut leaves = Vec::new();
        collect_leaves(layer, String::new(), &mut leaves);
        for (key, value) in leaves {
            if restricted.contains(&key.as_str()) {
                let message = format!("may only be set in your user configuration, not in {origin}; ignored");
                self.problem(source, &key, message);
                continue;
            }
            self.add_leaf(source, &key, value);
        }
    }

    fn add_leaf(&mut self, source: &str, key: &str, value: &Value) {
        if value.is_null() {
            return; // "not set in this layer"
        }
        let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
        // `llm.apiKeyEnv` names a variable and `maxTokens` counts them; anything else named like a
        // key holds one.
        if SECRET_WORDS.iter().any(|w| last.contains(w))
            && !last.ends_with("env")
            && !last.ends_with("tokens")
            && !last.starts_with("redact")
        {
            self.problem(
                source,
                key,
                "looks like a secret; put the key in an environment variable and name it in \
                 llm.apiKeyEnv; value discarded"
                    .into(),
            );
            return;
        }
        let Some(default) = lookup(&self.defaults, key) else {
            let hint = suggest(key, &self.defaults).map(|s| format!(" — did you mean `{s}`?")).unwrap_or_default();
            self.problem(source, key, format!("unknown key{hint}; ignored"));
            return;
        };
        let Some(value) = coerce(default, value) else {
            self.problem(
                source,
                key,
                format!("expected {}, found {}; using the previous value", kind(default), kind(value)),
            );
            return;
        };
        let previous = lookup(&self.merged, key).cloned();
        // `privacy.denyGlobs` layers add up: a folder or editor can deny more, never less.
        let value = match (key, &previous, &value) {
            ("privacy.denyGlobs", Some(Value::Array(before)), Value::Array(added)) => {
                let mut all = before.clone();
                all.extend(added.iter().filter(|g| !before.contains(g)).cloned());
                Value::Array(all)
            }
            _ => value,
        };
        set(&mut self.merged, key, value.clone());
        let checked = serde_json::from_value::<Config>(self.merged.clone())
            .map_err(|e| e.to_string())
            .and_then(|c| range_problem(&c, key).map_or(Ok(()), Err));
        if let Err(why) = checked {
            set(&mut self.merged, key, previous.unwrap_or(Value::Null));
            self.problem(source, key, format!("{why} (value {value}); using the previous value"));
        }
    }

    pub(super) fn finish(self) -> super::Loaded {
        let mut config: Config =
            serde_json::from_value(self.merged).expect("every merged key was checked on the way in");
        normalise(&mut config);
        super::Loaded { config, problems: self.problems }
    }

    fn problem(&mut self, source: &str, key: &str, message: String) {
        self.problems.push(Problem { source: source.to_owned(), key: key.to_owned(), message });
    }
}

/// Range checks of the keys that have one; `None` when `key`'s value is acceptable.
fn range_problem(c: &Config, key: &str) -> Option<String> {
    let a = &c.memory.activation;
    let r = &c.memory.retrieval;
    let i = &c.indexing;
    let bad = match key {
        "indexing.maxFileSizeKb" => !(1..=65536).contains(&i.max_file_size_kb),
        "indexing.maxFiles" => i.max_files == 0,
        "indexing.parseTimeoutMs" => !(10..=600_000).contains(&i.parse_timeout_ms),
        "indexing.maxNesting" => !(1..=1000).contains(&i.max_nesting),
        "memory.activation.decay" => !(a.decay > 0.0 && a.decay < 1.0),
        "memory.activation.noise" => a.noise <= 0.0,
        "memory.activation.spreadFactor" => !(0.0..=1.0).contains(&a.spread_factor),
        "memory.activation.maxHops" => a.max_hops > 10,
        "memory.activation.maxHistory" => !(1..=10_000).contains(&a.max_history),
        "memory.retrieval.limit" => !(1..=1000).contains(&r.limit),
        "memory.retrieval.ftsTopN" => !(1..=10_000).contains(&r.fts_top_n),
        "memory.retrieval.pruneDf" => !(r.prune_df > 0.0 && r.prune_df <= 1.0),
        k if k.starts_with("memory.retrieval.columnWeights.") || k.starts_with("memory.retrieval.weights") => {
            let w = &r.weights_no_embeddings;
            let cw = &r.column_weights;
            [w.bm25, w.activation, cw.name, cw.path, cw.signature, cw.doc, cw.body, cw.text]
                .iter()
                .any(|v| *v < 0.0 || !v.is_finite())
                || w.bm25 + w.activation <= 0.0
        }
        k if k.starts_with("llm.") => return c.llm.validate().into_iter().find(|p| p.key == k).map(|p| p.message),
        k if k.starts_with("budget.") => {
            return c.budget.validate().into_iter().find(|p| p.key == k).map(|p| p.message);
        }
        k if k.starts_with("soar.") => return super::soar::range_problem(&c.soar, k),
        _ => false,
    };
    bad.then(|| "out of range".to_owned())
}

fn normalise(c: &mut Config) {
    let w = &mut c.memory.retrieval.weights_no_embeddings;
    let sum = w.bm25 + w.activation;
    w.bm25 /= sum;
    w.activation /= sum;
}

fn collect_leaves<'a>(value: &'a Value, prefix: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                // An empty object (Neovim's `{}` or `[]`) sets nothing.
                collect_leaves(v, key, out);
            }
        }
        Value::Array(items) if items.is_empty() && !prefix.is_empty() => out.push((prefix, value)),
        _ if !prefix.is_empty() => out.push((prefix, value)),
        _ => {}
    }
}

fn lookup<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(value, |v, k| v.as_object()?.get(k))
}

fn set(root: &mut Value, key: &str, value: Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().expect("keys are non-empty");
    let mut node = root;
    for p in parts {
        let map = node.as_object_mut().expect("parents of known keys are objects");
        node = map.entry(p).or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(map) = node.as_object_mut() {
        map.insert(last.to_owned(), value);
    }
}

/// The value converted to the default's JSON type, when the conversion is lossless.
fn coerce(default: &Value, value: &Value) -> Option<Value> {
    match (default, value) {
        (Value::Bool(_), Value::Bool(_)) | (Value::String(_), Value::String(_)) => Some(value.clone()),
        (Value::Array(_), Value::Array(_)) => Some(value.clone()),
        (Value::Number(d), Value::Number(v)) => {
            if d.is_f64() {
                v.as_f64().map(Value::from)
            } else if let Some(i) = v.as_i64() {
                Some(Value::from(i))
            } else {
                // An integral float (`10.0`) is accepted for an integer.
                v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| Value::from(f as i64))
            }
        }
        _ => None,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// The known key closest to `key` (edit distance ≤ 3 on the last segment, same parent preferred).
fn suggest(key: &str, defaults: &Value) -> Option<String> {
    let mut known = Vec::new();
    collect_leaves(defaults, String::new(), &mut known);
    let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    known
        .iter()
        .map(|(k, _)| {
            let d = edit_distance(&last, &k.rsplit('.').next().unwrap_or(k).to_ascii_lowercase());
            let parent_differs = key.rsplit_once('.').map(|p| p.0) != k.rsplit_once('.').map(|p| p.0);
            (d * 2 + usize::from(parent_differs), k)
        })
        .filter(|(score, _)| *score <= 7)
        .min()
        .map(|(_, k)| k.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(cur) };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::super::{Config, InvalidUtf8};

    fn load(text: &str) -> (Config, Vec<String>) {
        let loaded = Config::from_toml("config.toml", text, false);
        (loaded.config, loaded.problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults_without_layers() {
        let (c, problems) = load("");
        assert_eq!(c, Config::default());
        assert!(problems.is_empty());
    }

    #[test]
    fn valid_keys_apply_and_integral_floats_are_integers() {
        let (c, problems) = load("[indexing]\nmaxFileSizeKb = 10.0\ninvalidUtf8 = \"skip\"\nexclude = [\"gen/\"]\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(c.indexing.max_file_size_kb, 10);
        assert_eq!(c.indexing.invalid_utf8, InvalidUtf8::Skip);
        assert_eq!(c.indexing.exclude, vec!["gen/".to_owned()]);
    }

    #[test]
    fn unknown_key_gets_a_suggestion_and_the_rest_still_applies() {
        let (c, problems) = load("[indexing]\nmaxFileSizeKB = 5\nmaxFiles = 7\n");
        assert_eq!(c.indexing.max_files, 7);
        assert_eq!(
            problems,
            ["config.toml: indexing.maxFileSizeKB: unknown key — did you mean `indexing.maxFileSizeKb`?; ignored"]
        );
    }

    #[test]
    fn wrong_type_enum_and_range_fall_back_with_the_key_named() {
        let (c, problems) =
            load("[indexing]\nmaxFileSizeKb = \"big\"\ninvalidUtf8 = \"drop\"\n[memory.activation]\ndecay = 1.5\n");
        assert_eq!(c, Config::default());
        assert_eq!(problems.len(), 3, "{problems:?}");
        // Keys of one table come in name order.
        assert!(problems[0].starts_with("config.toml: indexing.invalidUtf8: unknown variant `drop`"));
        assert!(problems[1].starts_with("config.toml: indexing.maxFileSizeKb: expected a number, found a string"));
        assert!(problems[2].starts_with("config.toml: memory.activation.decay: out of range (value 1.5)"));
    }

    #[test]
    fn syntax_error_names_line_and_column_and_secrets_are_discarded() {
        let (_, problems) = load("[indexing\n");
        assert!(problems[0].starts_with("config.toml: TOML syntax error at line 1"), "{problems:?}");
        let (_, problems) = load("[memory]\napiKey = \"sk-123\"\n");
        assert!(problems[0].contains("memory.apiKey: looks like a secret"));
        assert!(!problems[0].contains("sk-123"));
    }

    #[test]
    fn llm_keys_validate_and_a_folder_file_cannot_redirect_them() {
        let (c, problems) = load("[llm]\nprovider = \"ollama\"\nmodel = \"llama3\"\napiKeyEnv = \"MY_KEY\"\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(c.llm.api_key_env, "MY_KEY");
        let loaded =
            Config::from_toml(".aurora/config.toml", "[llm]\nbaseUrl = \"http://evil.example\"\nmodel = \"m\"\n", true);
        assert_eq!(loaded.config.llm.base_url, "");
        assert_eq!(loaded.config.llm.model, "m");
        assert_eq!(
            loaded.problems[0].to_string(),
            ".aurora/config.toml: llm.baseUrl: may only be set in your user configuration, not in a folder's; ignored"
        );
        let (c, problems) = load("[budget]\nmonthlyUsd = -1.0\n");
        assert_eq!(c.budget.monthly_usd, 10.0);
        assert!(problems[0].starts_with("config.toml: budget.monthlyUsd: "), "{problems:?}");
    }

    #[test]
    fn weights_are_renormalised() {
        let (c, problems) = load("[memory.retrieval.weightsNoEmbeddings]\nbm25 = 3\nactivation = 1\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert!((c.memory.retrieval.weights_no_embeddings.bm25 - 0.75).abs() < 1e-9);
    }
}
