//! Retrieval over a real store: ranking, symbol matches, filters, per-file cap, activation.

use aurora::index::chunk::{ChunkId, ChunkKind};
use aurora::memory::retrieve::{EditorContext, RetrieveRequest, Retriever};
use aurora::store::writer::{AccessKind, Op, Writer};

use crate::support::Workspace;

fn corpus() -> Workspace {
    Workspace::new(&[
        (
            "web/paginator.py",
            "class Paginator:\n    \"\"\"Split a list of objects into pages.\"\"\"\n\n    def validate_number(self, number):\n        \"\"\"Validate the given 1-based page number.\"\"\"\n        if number < 1:\n            raise EmptyPage('less than 1')\n        return number\n\n    def get_page(self, number):\n        return self.page(self.validate_number(number))\n\n    def page(self, number):\n        return number\n",
        ),
        (
            "web/text.py",
            "def slugify(value):\n    \"\"\"Convert spaces to hyphens and lowercase the value.\"\"\"\n    return value.lower().replace(' ', '-')\n\n\ndef get_user_data(user_id):\n    return {'id': user_id}\n",
        ),
        (
            "net/server.py",
            "class HTTPServer:\n    def serve_forever(self):\n        while True:\n            self.handle_request()\n\n    def handle_request(self):\n        return None\n",
        ),
        (
            "net/client.py",
            "def send_request(url):\n    \"\"\"Send an HTTP request and retry on failure.\"\"\"\n    return url\n",
        ),
    ])
}

fn search<'a>(ws: &Workspace, query: &'a str, f: impl FnOnce(&mut RetrieveRequest<'a>)) -> Vec<String> {
    let conn = aurora::store::open_reader(&ws.store()).unwrap();
    let mut r = Retriever::new(conn, &ws.config.memory);
    let mut req = RetrieveRequest { query, now_ms: Some(1_800_000_000_000), ..RetrieveRequest::default() };
    f(&mut req);
    r.retrieve(&req).unwrap().hits.iter().map(|h| format!("{} {}", h.chunk.file, h.chunk.qualified_name)).collect()
}

#[test]
fn identifiers_and_words_find_their_chunks() {
    let ws = corpus();
    ws.index();
    assert_eq!(search(&ws, "HTTPServer", |_| {})[0], "net/server.py HTTPServer");
    assert_eq!(search(&ws, "get_user_data", |_| {})[0], "web/text.py get_user_data");
    assert_eq!(
        search(&ws, "how is the page number validated?", |_| {})[0],
        "web/paginator.py Paginator.validate_number"
    );
    assert_eq!(search(&ws, "slugify", |_| {})[0], "web/text.py slugify");
    assert_eq!(search(&ws, "retry failed http requests", |_| {})[0], "net/client.py send_request");
}

#[test]
fn quotes_and_fts_syntax_in_queries_are_plain_text() {
    let ws = corpus();
    ws.index();
    for q in ["\"unterminated", "NEAR(a b)", "page*", "^slugify", "col:value", "a OR", "'; DROP TABLE chunks; --"] {
        let _ = search(&ws, q, |_| {});
    }
    assert_eq!(search(&ws, "`slugify`", |_| {})[0], "web/text.py slugify");
}

#[test]
fn at_most_two_results_per_file_by_default() {
    let ws = corpus();
    ws.index();
    let hits = search(&ws, "page number paginator validate", |r| r.limit = Some(10));
    assert!(hits.iter().filter(|h| h.starts_with("web/paginator.py")).count() <= 2, "{hits:?}");
    let uncapped = search(&ws, "page number paginator validate", |r| {
        r.limit = Some(10);
        r.max_per_file = Some(0);
    });
    assert!(uncapped.iter().filter(|h| h.starts_with("web/paginator.py")).count() >= 3, "{uncapped:?}");
}

#[test]
fn kind_and_path_filters_apply() {
    let ws = corpus();
    ws.index();
    let kinds = [ChunkKind::Class];
    let hits = search(&ws, "server request page", |r| r.kinds = Some(&kinds));
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h.ends_with("HTTPServer") || h.ends_with("Paginator")), "{hits:?}");
    let hits = search(&ws, "request", |r| r.path_prefix = Some("net"));
    assert!(hits.iter().all(|h| h.starts_with("net/")), "{hits:?}");
}

#[test]
fn recent_access_reranks_equal_lexical_matches() {
    let ws = corpus();
    ws.index();
    let now = 1_800_000_000_000;
    let before = search(&ws, "request", |r| r.max_per_file = Some(0));
    let target = ChunkId::new("net/server.py", ChunkKind::Method, "HTTPServer.handle_request", 0);
    let tok = aurora::memory::tokenize::Tokenizer::new(ws.config.memory.tokenizer.stemming);
    let writer = Writer::open(&ws.store(), &aurora::index::indexer::store_versions(&tok)).unwrap();
    writer
        .send(Op::Access { ids: vec![target], kind: AccessKind::Cited, at_ms: now - 60_000, max_history: 50 })
        .unwrap();
    writer.finish().unwrap();
    let after = search(&ws, "request", |r| r.max_per_file = Some(0));
    assert_eq!(after[0], "net/server.py HTTPServer.handle_request", "before: {before:?}");
}

#[test]
fn editor_context_spreads_to_callees() {
    let ws = corpus();
    ws.index();
    // The cursor in get_page, which calls validate_number and page.
    let ctx = EditorContext { file: "web/paginator.py".into(), line: 10, end_line: None };
    let conn = aurora::store::open_reader(&ws.store()).unwrap();
    let mut r = Retriever::new(conn, &ws.config.memory);
    let req =
        RetrieveRequest { query: "number", editor: Some(&ctx), max_per_file: Some(0), ..RetrieveRequest::default() };
    let found = r.retrieve(&req).unwrap();
    let validate = found.hits.iter().find(|h| h.chunk.qualified_name == "Paginator.validate_number").unwrap();
    assert!(validate.breakdown.spreading > 0.5, "{:?}", validate.breakdown);
}

#[test]
fn common_terms_are_pruned_but_identifiers_never() {
    let mut files: Vec<(String, String)> = (0..12)
        .map(|i| (format!("m{i}.py"), format!("def handler_{i}(request):\n    return request.user\n")))
        .collect();
    files.push(("special.py".into(), "def slugify_request(request):\n    return request.slug\n".into()));
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    let ws = Workspace::new(&refs);
    ws.index();
    let conn = aurora::store::open_reader(&ws.store()).unwrap();
    let mut r = Retriever::new(conn, &ws.config.memory);
    // "request" is in every chunk: pruned while a rarer term remains.
    let t = r.terms("request slug").unwrap();
    assert_eq!((t.kept.clone(), t.pruned.clone()), (vec!["slug".to_owned()], vec!["request".to_owned()]));
    // Only common terms: the two rarest are kept.
    let t = r.terms("request user").unwrap();
    assert_eq!(t.kept.len(), 2, "{t:?}");
    // The whole word of an identifier is never pruned, stopwords are dropped before stemming.
    let t = r.terms("does slugify_request").unwrap();
    assert!(t.kept.contains(&"slugify_request".to_owned()), "{t:?}");
    assert!(t.dropped.contains(&"doe".to_owned()) && !t.kept.contains(&"doe".to_owned()), "{t:?}");
}
