//! What never leaves the machine (issue 7, spec/lsp.md §7.2): secrets are redacted from every text
//! before it goes to a model (`privacy.redactSecrets`), and files matching `privacy.denyGlobs` are
//! neither indexed nor sent.

use std::borrow::Cow;
use std::path::Path;
use std::sync::OnceLock;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// The `privacy.*` settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PrivacyConfig {
    /// Remove API keys, private keys, `.env`-style secrets and tokens in URLs from model input.
    pub redact_secrets: bool,
    /// gitignore-syntax globs relative to a folder root; configuration layers add to them.
    pub deny_globs: Vec<String>,
}

/// The globs every workspace denies (configuration adds to them, never replaces them).
pub const DEFAULT_DENY_GLOBS: [&str; 7] =
    ["**/.env", "**/.env.*", "**/*.pem", "**/*.key", "**/id_rsa*", "**/id_ed25519*", "**/secrets.*"];

impl Default for PrivacyConfig {
    fn default() -> PrivacyConfig {
        PrivacyConfig { redact_secrets: true, deny_globs: DEFAULT_DENY_GLOBS.iter().map(|g| (*g).to_owned()).collect() }
    }
}

/// The deny globs of one folder, compiled.
#[derive(Clone, Debug)]
pub struct DenyList {
    matcher: Gitignore,
}

impl DenyList {
    pub fn new(root: &Path, globs: &[String]) -> DenyList {
        let mut builder = GitignoreBuilder::new(root);
        for g in DEFAULT_DENY_GLOBS.iter().copied().chain(globs.iter().map(String::as_str)) {
            if let Err(e) = builder.add_line(None, g) {
                tracing::warn!("privacy.denyGlobs: pattern {g:?} ignored: {e}");
            }
        }
        DenyList { matcher: builder.build().unwrap_or_else(|_| Gitignore::empty()) }
    }

    /// Whether `rel` (relative to the root, `/`-separated) is denied.
    pub fn denies(&self, rel: &str) -> bool {
        self.matcher.matched_path_or_any_parents(rel, false).is_ignore()
    }
}

struct Rule {
    kind: &'static str,
    re: Regex,
    /// The capture group holding the secret (0: the whole match).
    group: usize,
}

fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let rule = |kind, re: &str, group| Rule { kind, re: Regex::new(re).expect("valid redaction regex"), group };
        vec![
            rule("private-key", r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)", 0),
            rule("api-key", r"\bsk-(?:ant-|proj-|live-)?[A-Za-z0-9_\-]{16,}", 0),
            rule("api-key", r"\b(?:sk|rk|pk)_live_[A-Za-z0-9]{16,}", 0),
            rule("api-key", r"\bAKIA[0-9A-Z]{16}\b", 0),
            rule("api-key", r"\bgh[pousr]_[A-Za-z0-9]{30,}\b", 0),
            rule("api-key", r"\bgithub_pat_[A-Za-z0-9_]{30,}\b", 0),
            rule("api-key", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}", 0),
            rule("api-key", r"\bAIza[0-9A-Za-z_\-]{35}\b", 0),
            rule("api-key", r"\bglpat-[A-Za-z0-9_\-]{20,}\b", 0),
            rule("token", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", 0),
            // user:password@ in URLs.
            rule("url-credentials", r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s/:@]+:([^\s/@]+)@", 1),
            // ?token=…, &api_key=…
            rule(
                "url-token",
                r"(?i)[?&](?:access_token|token|api_key|apikey|key|secret|password|sig|signature|auth)=([^&\s'\x22#]{6,})",
                1,
            ),
            // .env and shell: NAME_SECRET=value
            rule(
                "env-value",
                r"(?m)^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*(?:KEY|SECRET|TOKEN|PASSWORD|PASSWD|PWD|CREDENTIALS?)[A-Za-z0-9_]*\s*=\s*[\x22']?([^\s\x22'#]{6,})",
                1,
            ),
            // Code: api_key = "…", password: '…'
            rule(
                "assigned-secret",
                r#"(?i)\b[a-z0-9_]*(?:api_?key|secret|token|passwd|password|pwd)[a-z0-9_]*\s*[:=]\s*[rbuf]?["']([^"'\n]{6,})["']"#,
                1,
            ),
        ]
    })
}

/// `text` with every secret replaced by `[REDACTED:<kind>]`, and the number replaced.
pub fn redact(text: &str) -> (Cow<'_, str>, u32) {
    let mut out: Cow<'_, str> = Cow::Borrowed(text);
    let mut count = 0;
    for rule in rules() {
        if !rule.re.is_match(&out) {
            continue;
        }
        let mut n = 0;
        let replaced = rule
            .re
            .replace_all(&out, |caps: &regex::Captures<'_>| {
                let whole = caps.get(0).expect("group 0 always matches");
                let Some(secret) = caps.get(rule.group) else { return whole.as_str().to_owned() };
                if secret.as_str().starts_with("[REDACTED:") {
                    return whole.as_str().to_owned();
                }
                n += 1;
                let (start, end) = (secret.start() - whole.start(), secret.end() - whole.start());
                format!("{}[REDACTED:{}]{}", &whole.as_str()[..start], rule.kind, &whole.as_str()[end..])
            })
            .into_owned();
        if n > 0 {
            count += n;
            out = Cow::Owned(replaced);
        }
    }
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_secret_is_redacted() {
        let cases = [
            ("key = 'sk-ant-api03-abcdefghijklmnopqrstuv'", "sk-ant-api03-abcdefghijklmnopqrstuv"),
            ("AWS AKIAIOSFODNN7EXAMPLE in a comment", "AKIAIOSFODNN7EXAMPLE"),
            ("token ghp_0123456789abcdefghijklmnopqrstuvwxyzAB", "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"),
            ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "MIIEow"),
            ("DATABASE_PASSWORD=hunter2hunter2", "hunter2hunter2"),
            ("export STRIPE_SECRET_KEY=\"abc123def456\"", "abc123def456"),
            ("url = 'https://bob:s3cr3tpass@db.example.com/x'", "s3cr3tpass"),
            ("GET https://api.example.com/v1?access_token=zzzyyyxxx111&x=1", "zzzyyyxxx111"),
            ("self.api_key = \"plainsecretvalue\"", "plainsecretvalue"),
            ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", "dozjgNryP4J3jVmNHl0w5N"),
        ];
        for (text, secret) in cases {
            let (out, n) = redact(text);
            assert!(!out.contains(secret), "{text:?} → {out:?}");
            assert!(n >= 1, "{text:?}");
            assert!(out.contains("[REDACTED:"), "{out}");
        }
    }

    #[test]
    fn ordinary_code_is_left_alone() {
        let code = "def check_token(token, now=None):\n    return token.expires_at > now\n\nMAX_TOKENS = 4096\n";
        let (out, n) = redact(code);
        assert_eq!(n, 0);
        assert!(matches!(out, Cow::Borrowed(_)));
        let (_, n) = redact("password = os.environ['DB_PASSWORD']");
        assert_eq!(n, 0, "a lookup is not a secret");
    }

    #[test]
    fn deny_globs_include_the_defaults_and_add_up() {
        let d = DenyList::new(Path::new("/w"), &["private/**".to_owned()]);
        for p in [".env", "app/.env.local", "certs/server.pem", "keys/id_rsa.pub", "app/secrets.py", "private/a.py"] {
            assert!(d.denies(p), "{p}");
        }
        for p in ["app/settings.py", "app/secret_santa.py", "envs.py"] {
            assert!(!d.denies(p), "{p}");
        }
    }
}
