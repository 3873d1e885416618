//! A fixture workspace indexed into a real store, a pipeline over it with the scripted client, and
//! builders for the models' JSON replies.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use aurora::config::Config;
use aurora::index::indexer::store_versions;
use aurora::llm::{Llm, LlmClient, LlmRequest, RetryPolicy, ScriptedLlm};
use aurora::memory::tokenize::Tokenizer;
use aurora::soar::types::Complexity;
use aurora::soar::{Pipeline, SoarError, SoarEvent, SoarRequest, SoarResponse, Workspace};
use aurora::store::writer::Writer;

use crate::support;

pub const CONFIG_PY: &str = r#""""Configuration loading."""
import tomllib


class Settings:
    """Typed settings of the shop."""

    def __init__(self, data):
        self.data = data
        self.currency = data.get("currency", "EUR")


def load_config(path):
    """Read the TOML file at path and return Settings."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    return Settings(data)
"#;

pub const AUTH_PY: &str = r#""""Session tokens."""
import time


def check_token(token, now=None):
    """Return True when the token has not expired."""
    now = now or time.time()
    return token.expires_at > now


def refresh_token(session):
    """Issue a new token for the session when the old one expired."""
    if not check_token(session.token):
        session.token = session.issue()
    return session.token
"#;

pub const ORDERS_PY: &str = r#""""Orders."""
from app.auth import check_token


def create_order(user, items):
    """Create an order for an authenticated user."""
    if not check_token(user.token):
        raise PermissionError("expired token")
    total = sum(item.price for item in items)
    return {"user": user.id, "total": total}
"#;

/// An indexed workspace with the writer open, as the language server holds it.
pub struct Fixture {
    pub ws: support::Workspace,
    pub writer: Option<Arc<Writer>>,
    pub config: Config,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Fixture {
        let mut ws = support::Workspace::new(&[
            ("app/config.py", CONFIG_PY),
            ("app/auth.py", AUTH_PY),
            ("app/orders.py", ORDERS_PY),
        ]);
        ws.config = config.clone();
        ws.index();
        let tokenizer = Tokenizer::new(config.memory.tokenizer.stemming);
        let writer = Arc::new(Writer::open(&ws.store(), &store_versions(&tokenizer)).expect("writer opens"));
        Fixture { ws, writer: Some(writer), config }
    }

    /// Re-indexes from disk: the writer is closed for the indexer and opened again.
    pub fn reindex(&mut self) {
        let tokenizer = Tokenizer::new(self.config.memory.tokenizer.stemming);
        let writer = self.writer.take().expect("the fixture holds the writer");
        Arc::try_unwrap(writer).ok().expect("no run holds the writer").finish().expect("writer finishes");
        self.ws.index();
        self.writer =
            Some(Arc::new(Writer::open(&self.ws.store(), &store_versions(&tokenizer)).expect("writer opens")));
    }

    pub fn workspace(&self) -> Arc<Workspace> {
        Arc::new(Workspace::new(self.ws.root(), self.ws.store(), self.writer.clone(), &self.config.memory))
    }

    /// The 16-hex id of the chunk named `qualified_name`.
    pub fn chunk(&self, qualified_name: &str) -> String {
        let id: i64 = self
            .ws
            .conn()
            .query_row("SELECT id FROM chunks WHERE qualified_name = ?1", [qualified_name], |r| r.get(0))
            .unwrap_or_else(|e| panic!("no chunk {qualified_name}: {e}"));
        format!("{id:016x}")
    }

    pub fn llm(scripted: &Arc<ScriptedLlm>) -> Llm {
        let client: Arc<dyn LlmClient> = scripted.clone();
        Llm::new(client).with_retry(RetryPolicy { max_retries: 0, ..RetryPolicy::default() })
    }

    pub fn pipeline(&self, llm: Option<Llm>) -> Pipeline {
        Pipeline::new(Arc::new(self.config.clone()), self.workspace(), llm.map(Arc::new))
    }

    /// Runs `req` to its end, with the events it sent.
    pub async fn run_with(
        &self,
        llm: Option<Llm>,
        req: SoarRequest,
    ) -> (Result<SoarResponse, SoarError>, Vec<SoarEvent>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let result = self.pipeline(llm).run(req, tx, CancellationToken::new()).await;
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        (result, events)
    }

    pub async fn ask(&self, scripted: &Arc<ScriptedLlm>, query: &str) -> SoarResponse {
        let (r, _) = self.run_with(Some(Fixture::llm(scripted)), SoarRequest::ask(query)).await;
        r.expect("the run ends with an envelope")
    }

    /// Asks at a fixed level (the keyword classifier is tested on its own).
    pub async fn ask_at(&self, scripted: &Arc<ScriptedLlm>, query: &str, level: Complexity) -> SoarResponse {
        let req = SoarRequest { complexity_override: Some(level), ..SoarRequest::ask(query) };
        let (r, _) = self.run_with(Some(Fixture::llm(scripted)), req).await;
        r.expect("the run ends with an envelope")
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.ws.conn().query_row(sql, [], |r| r.get(0)).expect("count query")
    }
}

/// Requests the scripted client received for `role`.
pub fn calls(scripted: &ScriptedLlm, role: &str) -> Vec<LlmRequest> {
    scripted.requests().into_iter().filter(|r| r.role.as_str() == role).collect()
}

pub fn roles(scripted: &ScriptedLlm) -> Vec<String> {
    scripted.requests().iter().map(|r| r.role.to_string()).collect()
}

pub fn user_text(req: &LlmRequest) -> String {
    req.messages.iter().map(|m| m.text.as_str()).collect::<Vec<_>>().join("\n")
}

/// A subgoal: description, agent, critical, depends_on.
pub fn sg(description: &str, agent: &str, critical: bool, deps: &[usize]) -> Value {
    json!({"description": description, "suggested_agent": agent, "specialist_hint": null,
           "is_critical": critical, "depends_on": deps})
}

pub fn plan(subgoals: Vec<Value>) -> Value {
    json!({"goal": "answer the question", "subgoals": subgoals, "expected_tools": []})
}

pub fn review(score: f64) -> Value {
    json!({"completeness": score, "consistency": score, "groundedness": score, "routability": score,
           "overall_score": score, "verdict": if score >= 0.7 { "PASS" } else if score >= 0.5 { "RETRY" } else { "FAIL" },
           "issues": ["sg-1 misses how tokens expire"], "suggestions": ["add the expiry path"]})
}

pub fn adversarial(score: f64, critical: &[&str]) -> Value {
    json!({"completeness": score, "consistency": score, "groundedness": score, "routability": score,
           "overall_score": score, "verdict": "PASS", "critical_issues": critical, "minor_issues": [],
           "edge_cases": ["empty cart"], "suggestions": []})
}

/// An agent reply citing `(marker, chunk id)` pairs.
pub fn agent(summary: &str, cites: &[(&str, &str)]) -> Value {
    json!({"summary": summary,
           "citations": cites.iter().map(|(m, id)| json!({"id": m, "chunk_id": id})).collect::<Vec<_>>(),
           "edits": [], "confidence": 0.8, "open_questions": []})
}

pub fn answer(text: &str, cites: &[(&str, &str)], used: &[&str]) -> Value {
    json!({"answer": text,
           "citations": cites.iter().map(|(m, id)| json!({"id": m, "chunk_id": id})).collect::<Vec<_>>(),
           "used_subgoals": used, "confidence": 0.9, "uncertainties": []})
}

pub fn synth_review(score: f64) -> Value {
    json!({"coherence": score, "completeness": score, "factuality": score, "overall_score": score,
           "issues": ["too terse"], "suggestions": ["name the function"]})
}

/// The JSON text of `v` cut into `n` streamed pieces.
pub fn pieces(v: &Value, n: usize) -> Vec<String> {
    let text = v.to_string();
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(n);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

pub const SHORT: Duration = Duration::from_millis(50);
