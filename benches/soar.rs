//! SOAR pipeline overhead (issue 4): a full run against a zero-latency model on a 10k-chunk store,
//! SIMPLE (retrieve + one answer) and COMPLEX (decompose, adversarial review, two agents in two waves,
//! synthesis, review, record, conversation log). Everything but the model is real: the store is an
//! SQLite file in WAL mode with its writer thread, retrieval is the hybrid ranking.
//!
//! Run: `cargo bench --bench soar` (release). Goals: SIMPLE ≤ 2 ms, COMPLEX ≤ 20 ms per query.

use std::path::Path;
use std::sync::Arc;

use aurora::config::Config;
use aurora::index::indexer::{self, IndexRequest, Progress, store_versions};
use aurora::llm::{Llm, LlmClient, LlmError, LlmRequest, LlmResponse, RetryPolicy, StreamEvent, TextStream, Usage};
use aurora::memory::tokenize::Tokenizer;
use aurora::soar::types::Complexity;
use aurora::soar::{Pipeline, SoarRequest, Workspace};
use aurora::store::StorePath;
use aurora::store::writer::Writer;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const TOPICS: [&str; 25] = [
    "invoice", "cart", "payment", "session", "ledger", "refund", "coupon", "shipment", "catalog", "review", "account",
    "profile", "report", "export", "import", "schedule", "alarm", "queue", "worker", "cache", "index", "search",
    "upload", "avatar", "billing",
];

/// 500 modules × 10 classes × (1 class + 2 methods), about 15k chunks, each module about its own topic
/// (`invoice17`, `cart42`, …) as real code is, so a question matches a few places, not all of them.
fn write_corpus(root: &Path) {
    for m in 0..500 {
        let topic = format!("{}{m}", TOPICS[m % TOPICS.len()]);
        let mut src = format!("\"\"\"The {topic} module.\"\"\"\nimport os\n");
        for c in 0..10 {
            src.push_str(&format!(
                "\n\nclass {Topic}Handler{c}:\n    \"\"\"Handle {topic} requests of kind {c}.\"\"\"\n\n\
                 \x20   def process_{topic}_{c}(self, request):\n        user = self.get_user(request.user_id)\n\
                 \x20       if user is None:\n            raise PermissionError(\"inactive\")\n        return self.render_{topic}_{c}(request, user)\n\n\
                 \x20   def render_{topic}_{c}(self, request, user):\n        return [user.name, os.path.join('{topic}', str({c}))]\n",
                Topic = topic[..1].to_uppercase() + &topic[1..],
            ));
        }
        let dir = root.join(format!("pkg{}", m / 50));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{topic}.py")), src).unwrap();
    }
}

/// Replies at once, by role, with one chunk id cited.
struct Instant {
    chunk: String,
}

impl Instant {
    fn reply(&self, role: &str) -> String {
        let cite = json!([{"id": "c1", "chunk_id": self.chunk}]);
        match role {
            "soar.decompose" => json!({"goal": "g", "subgoals": [
                {"description": "Explain process_invoice17_4 of Invoice17Handler4", "suggested_agent": "code-analyzer", "is_critical": true, "depends_on": []},
                {"description": "Find callers of render_invoice17_4", "suggested_agent": "dependency-tracker", "is_critical": false, "depends_on": [0]}
            ]}),
            "soar.verify.adversarial" | "soar.verify.self" => json!({"completeness": 0.9, "consistency": 0.9,
                "groundedness": 0.9, "routability": 0.9, "critical_issues": []}),
            "soar.verifySynthesis" => json!({"coherence": 0.9, "completeness": 0.9, "factuality": 0.9}),
            r if r.starts_with("agent.") => json!({"summary": "It renders the user [c1].", "citations": cite}),
            _ => json!({"answer": "It renders the user [c1].", "citations": cite, "used_subgoals": ["sg-1", "sg-2"]}),
        }
        .to_string()
    }

    fn response(&self, req: &LlmRequest) -> LlmResponse {
        LlmResponse {
            content: self.reply(req.role.as_str()),
            provider: "local".into(),
            model: "instant".into(),
            usage: Usage { input_tokens: 100, output_tokens: 20, ..Usage::default() },
            finish_reason: "stop".into(),
            latency_ms: 0,
        }
    }
}

impl LlmClient for Instant {
    fn provider(&self) -> &str {
        "local"
    }

    fn default_model(&self) -> &str {
        "instant"
    }

    fn complete<'a>(
        &'a self,
        req: &'a LlmRequest,
        _: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        async move { Ok(self.response(req)) }.boxed()
    }

    fn stream<'a>(
        &'a self,
        req: &'a LlmRequest,
        _: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<TextStream, LlmError>> {
        let response = self.response(req);
        async move {
            let events: Vec<Result<StreamEvent, LlmError>> =
                vec![Ok(StreamEvent::Delta(response.content.clone())), Ok(StreamEvent::Done(response))];
            Ok(futures_util::StreamExt::boxed(futures_util::stream::iter(events)))
        }
        .boxed()
    }
}

const QUERY: &str = "how does process_invoice17_4 render the invoice17 user";

fn pipeline_overhead(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    write_corpus(&root);
    let mut config = Config::default();
    config.soar.cache.enabled = false;
    let store = StorePath::for_root(&root);
    let req = IndexRequest { root: &root, scope: &root, store: &store, config: &config, rebuild: false };
    indexer::index(&req, &Progress::default()).unwrap();
    let conn = rusqlite::Connection::open(&store.db).unwrap();
    let chunks: i64 = conn.query_row("SELECT count(*) FROM chunks", [], |r| r.get(0)).unwrap();
    // The model cites the top hit, which every path shows it.
    let mut retriever = aurora::memory::retrieve::Retriever::new(conn, &config.memory);
    let top = retriever
        .retrieve(&aurora::memory::retrieve::RetrieveRequest { query: QUERY, limit: Some(1), ..Default::default() })
        .unwrap();
    let id = top.hits[0].chunk.id.0;
    eprintln!("store: {chunks} chunks");
    let tokenizer = Tokenizer::new(config.memory.tokenizer.stemming);
    let writer = Arc::new(Writer::open(&store, &store_versions(&tokenizer)).unwrap());
    let ws = Arc::new(Workspace::new(root.clone(), store, Some(writer), &config.memory));
    let client: Arc<dyn LlmClient> = Arc::new(Instant { chunk: format!("{id:016x}") });
    let llm = Arc::new(Llm::new(client).with_retry(RetryPolicy { max_retries: 0, ..RetryPolicy::default() }));
    let pipeline = Pipeline::new(Arc::new(config), ws, Some(llm));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // One run of each, with its phase timings, for the record.
    for level in [Complexity::Simple, Complexity::Complex] {
        let r = rt.block_on(async {
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            let req = SoarRequest { complexity_override: Some(level), ..SoarRequest::ask(QUERY) };
            pipeline.run(req, tx, CancellationToken::new()).await.unwrap()
        });
        let phases: Vec<String> = r.timings().iter().map(|(k, ms)| format!("{} {ms:.2}", k.name())).collect();
        eprintln!("{level}: {:.2} ms total; {}", r.metadata.total_duration_ms, phases.join(", "));
    }
    let mut group = c.benchmark_group("soar_pipeline");
    // The floor: one hybrid retrieval of the same question (SIMPLE does one, COMPLEX three).
    let mut floor = aurora::memory::retrieve::Retriever::new(
        aurora::store::open_reader(&StorePath::for_root(&root)).unwrap(),
        &Config::default().memory,
    );
    group.bench_function("retrieve_floor", |b| {
        b.iter(|| {
            let req = aurora::memory::retrieve::RetrieveRequest { query: QUERY, limit: Some(5), ..Default::default() };
            std::hint::black_box(floor.retrieve(&req).unwrap().hits.len())
        })
    });
    for (name, level) in [("simple", Complexity::Simple), ("complex", Complexity::Complex)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
                    let req = SoarRequest { complexity_override: Some(level), ..SoarRequest::ask(QUERY) };
                    let r = pipeline.run(req, tx, CancellationToken::new()).await.unwrap();
                    assert!(r.confidence > 0.0, "{:?} {}", r.outcome, r.answer);
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(8));
    targets = pipeline_overhead
}
criterion_main!(benches);
