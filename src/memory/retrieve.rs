//! Hybrid retrieval (spec/memory.md §6): FTS5 and symbol candidates, re-ranked with ACT-R
//! activation, spreading and context boost; every score comes with its breakdown.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use rusqlite::Connection;

use crate::config::{ActivationConfig, MemoryConfig};
use crate::index::chunk::{ChunkId, ChunkKind};
use crate::memory::activation::{self, History};
use crate::memory::tokenize::Tokenizer;
use crate::store::StoreError;
use crate::store::read::{self, ChunkRow, Filter};

/// English function words that carry no meaning in a code query.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been", "before", "being",
    "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "done", "each", "for", "from", "get",
    "gets", "had", "has", "have", "how", "if", "in", "into", "is", "it", "its", "make", "may", "me", "my", "of", "on",
    "or", "other", "our", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "through", "to", "under", "up", "use", "used", "uses", "using", "via", "was",
    "way", "we", "were", "what", "when", "where", "which", "while", "who", "why", "will", "with", "would", "you",
    "your", "whether", "until", "over", "out", "just", "only", "not", "no", "more", "most", "own", "same", "very",
    "here", "too", "i", "am", "code", "function", "method", "class", "work", "works", "happen", "happens",
];
/// Terms shorter than 3 characters that still mean something in code.
const SHORT_TERMS: &[&str] = &["id", "db", "io", "os", "ui", "ip", "fs", "re", "ok", "pk"];
/// At most this many chunks may carry a plain word's name for it to count as a symbol match.
const PLAIN_SYMBOL_MAX: usize = 3;
/// A plain query word naming a symbol is taken as that symbol when at most this share of chunks
/// hold it (its document frequency).
const RARE_WORD_DF: f64 = 0.002;
const SYMBOL_LIMIT: usize = 20;
const CONTEXT_LIMIT: usize = 20;
const RECENT_LIMIT: usize = 20;
const RECENT_WINDOW_MS: i64 = 30 * 60 * 1000;
const ACTIVATION_LIMIT: usize = 30;
/// Spreading visits at most this many edges per query.
const MAX_EDGES: usize = 1000;
/// Edges lighter than this are not taken.
const MIN_EDGE_WEIGHT: f64 = 0.1;

/// Where the user is: seeds spreading activation and the `current_file` channel.
#[derive(Clone, Debug, Default)]
pub struct EditorContext {
    /// Relative path of the current file.
    pub file: String,
    /// 0-based cursor line (or selection start).
    pub line: u32,
    /// 0-based last selected line, when there is a selection.
    pub end_line: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct RetrieveRequest<'a> {
    pub query: &'a str,
    /// `None`: `memory.retrieval.limit`.
    pub limit: Option<usize>,
    pub editor: Option<&'a EditorContext>,
    pub kinds: Option<&'a [ChunkKind]>,
    pub path_prefix: Option<&'a str>,
    /// `None`: `memory.retrieval.maxPerFile`; `Some(0)`: no cap.
    pub max_per_file: Option<usize>,
    /// The clock (tests); `None`: now.
    pub now_ms: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Fts,
    Symbol,
    CurrentFile,
    Recent,
    Activation,
}

/// Why a chunk ranked where it did: every component of its score.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreBreakdown {
    pub channels: Vec<Channel>,
    pub bm25_raw: Option<f64>,
    pub lexical: f64,
    pub symbol_match: bool,
    pub matched_terms: Vec<String>,
    /// The retrieval probability `act` (§5.7).
    pub activation: f64,
    pub base_level: f64,
    pub spreading: f64,
    pub context_boost: f64,
    pub decay_penalty: f64,
    pub total_activation: f64,
    pub accesses: u64,
    pub weights: Weights,
    pub final_score: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Weights {
    pub bm25: f64,
    pub activation: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub chunk: ChunkRow,
    pub score: f64,
    pub breakdown: ScoreBreakdown,
}

/// Query terms after stopwords and pruning.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct QueryTerms {
    pub kept: Vec<String>,
    /// Too common (df/N over `pruneDf`).
    pub pruned: Vec<String>,
    /// Stopwords, too short, or absent from the index.
    pub dropped: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Retrieved {
    pub hits: Vec<Hit>,
    pub terms: QueryTerms,
    pub elapsed_ms: f64,
}

/// A searcher over one store: a read connection plus the tokenizer and a document-frequency cache.
pub struct Retriever {
    conn: Connection,
    tokenizer: Tokenizer,
    cfg: MemoryConfig,
    df_cache: HashMap<String, u64>,
    chunk_total: Option<u64>,
}

#[derive(Default)]
struct Candidate {
    channels: Vec<Channel>,
    bm25: Option<f64>,
    symbol: bool,
}

impl Retriever {
    pub fn new(conn: Connection, cfg: &MemoryConfig) -> Retriever {
        Retriever {
            conn,
            tokenizer: Tokenizer::new(cfg.tokenizer.stemming),
            cfg: cfg.clone(),
            df_cache: HashMap::new(),
            chunk_total: None,
        }
    }

    /// The connection back, for reuse by a later retriever.
    pub fn into_connection(self) -> Connection {
        self.conn
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Forgets cached document frequencies (call after the store changed).
    pub fn invalidate(&mut self) {
        self.df_cache.clear();
        self.chunk_total = None;
    }

    fn df(&mut self, term: &str) -> Result<u64, StoreError> {
        if let Some(v) = self.df_cache.get(term) {
            return Ok(*v);
        }
        let v = read::document_frequency(&self.conn, term)?;
        if self.df_cache.len() >= 4096 {
            self.df_cache.clear();
        }
        self.df_cache.insert(term.to_owned(), v);
        Ok(v)
    }

    /// Query terms (§6.1): tokenise, drop stopwords and short terms, prune common ones.
    pub fn terms(&mut self, query: &str) -> Result<QueryTerms, StoreError> {
        let total = match self.chunk_total {
            Some(n) => n,
            None => *self.chunk_total.insert(read::chunk_count(&self.conn)?),
        };
        // The whole-word token of an identifier-shaped word (`get_user`, `HTTPServer`) is never pruned.
        let protected: HashSet<String> = query
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| is_identifier_shaped(w))
            .map(str::to_lowercase)
            .collect();
        let mut terms = QueryTerms::default();
        let mut candidates: Vec<(String, u64)> = Vec::new();
        let mut seen = HashSet::new();
        let mut tokens = Vec::new();
        // Stopwords are tested before stemming: "does" must not survive as "doe".
        self.tokenizer.each_token_raw(query, |raw, tok| {
            let short = raw.chars().count() < 3 && !SHORT_TERMS.contains(&raw);
            tokens.push((tok.to_owned(), STOPWORDS.contains(&raw) || short));
        });
        for (tok, drop) in tokens {
            if !seen.insert(tok.clone()) {
                continue;
            }
            if drop {
                terms.dropped.push(tok);
                continue;
            }
            let df = self.df(&tok)?;
            if df == 0 {
                terms.dropped.push(tok);
                continue;
            }
            candidates.push((tok, df));
        }
        let limit = self.cfg.retrieval.prune_df * total as f64;
        let rare_exists = candidates.iter().any(|(_, df)| *df as f64 <= limit);
        if !rare_exists {
            // Every term is common: keep the two rarest.
            candidates.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        }
        for (i, (term, df)) in candidates.into_iter().enumerate() {
            let keep = protected.contains(&term) || if rare_exists { df as f64 <= limit } else { i < 2 };
            if keep { terms.kept.push(term) } else { terms.pruned.push(term) }
        }
        Ok(terms)
    }

    /// Runs one query. Never writes: being shown is not an access.
    pub fn retrieve(&mut self, req: &RetrieveRequest<'_>) -> Result<Retrieved, StoreError> {
        let started = Instant::now();
        let now = req.now_ms.unwrap_or_else(crate::store::now_ms);
        let limit = req.limit.unwrap_or(self.cfg.retrieval.limit).max(1);
        let max_per_file = req.max_per_file.unwrap_or(self.cfg.retrieval.max_per_file);
        let filter = Filter { kinds: req.kinds, path_prefix: req.path_prefix };
        let terms = self.terms(req.query)?;
        let mut cands: HashMap<ChunkId, Candidate> = HashMap::new();

        // a. FTS over the kept terms.
        if !terms.kept.is_empty() {
            let expr = match_expression(&terms);
            let cw = &self.cfg.retrieval.column_weights;
            let weights = [cw.name, cw.path, cw.signature, cw.doc, cw.body, cw.text];
            for (id, bm25) in read::fts_candidates(&self.conn, &expr, weights, &filter, self.cfg.retrieval.fts_top_n)? {
                let c = cands.entry(id).or_default();
                c.channels.push(Channel::Fts);
                c.bm25 = Some(-bm25);
            }
        }
        // b. Exact symbol names. Identifier-shaped words count as a full lexical match; a plain
        // word naming a rare symbol only brings the chunk in as a candidate.
        let (exact, plain) = self.symbol_matches(req.query, &filter)?;
        for (ids, exact) in [(exact, true), (plain, false)] {
            for id in ids {
                let c = cands.entry(id).or_default();
                c.channels.push(Channel::Symbol);
                c.symbol |= exact;
            }
        }
        // c. The editor context.
        let mut sources = Vec::new();
        if let Some(editor) = req.editor {
            let (context, nearby) = self.context_chunks(editor, &filter)?;
            sources = context;
            for id in sources.iter().chain(&nearby) {
                cands.entry(*id).or_default().channels.push(Channel::CurrentFile);
            }
        }
        // d. Recently edited or opened.
        for id in read::accessed_since(&self.conn, now - RECENT_WINDOW_MS, &["edited", "opened"], RECENT_LIMIT)? {
            if self.passes(id, &filter)? {
                cands.entry(id).or_default().channels.push(Channel::Recent);
            }
        }
        // e. Activation: spreading from the context, and chunks whose own activation clears τ.
        let spreading = spread(&self.conn, &sources, &self.cfg.activation)?;
        let mut by_spread: Vec<(&ChunkId, &f64)> = spreading.iter().collect();
        by_spread.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        let mut activation_ids: Vec<ChunkId> = by_spread.into_iter().map(|(id, _)| *id).collect();
        let used = read::recently_used(&self.conn, ACTIVATION_LIMIT * 4)?;
        let used_hist = read::histories(&self.conn, &used)?;
        for id in used {
            let h = used_hist.get(&id).cloned().unwrap_or_default();
            let a = activation::activation(&h, 0.0, 0.0, now, &self.cfg.activation);
            if a.total >= self.cfg.activation.threshold {
                activation_ids.push(id);
            }
        }
        let mut n_act = 0;
        for id in activation_ids {
            if n_act >= ACTIVATION_LIMIT {
                break;
            }
            if self.passes(id, &filter)? {
                let c = cands.entry(id).or_default();
                if !c.channels.contains(&Channel::Activation) {
                    c.channels.push(Channel::Activation);
                    n_act += 1;
                }
            }
        }

        // Features.
        let ids: Vec<ChunkId> = cands.keys().copied().collect();
        let rows = read::chunk_rows(&self.conn, &ids)?;
        let histories = read::histories(&self.conn, &ids)?;
        let max_bm25 = cands.values().filter_map(|c| c.bm25).fold(0.0_f64, f64::max);
        let query_set: HashSet<&str> = terms.kept.iter().chain(&terms.pruned).map(String::as_str).collect();
        let w = &self.cfg.retrieval.weights_no_embeddings;
        let weights = Weights { bm25: w.bm25, activation: w.activation };
        let mut hits = Vec::with_capacity(rows.len());
        for row in rows {
            let cand = cands.remove(&row.id).unwrap_or_default();
            let lexical = if cand.symbol {
                1.0
            } else {
                match cand.bm25 {
                    Some(b) if max_bm25 > 0.0 => b / max_bm25,
                    _ => 0.0,
                }
            };
            let content = if query_set.is_empty() { None } else { read::chunk_content(&self.conn, row.id)? };
            let matched = self.matched_terms(&row, content.as_deref(), &query_set);
            let c_boost = activation::context_boost(matched.len(), query_set.len(), &self.cfg.activation);
            let history = histories.get(&row.id).cloned().unwrap_or_else(History::default);
            let s = spreading.get(&row.id).copied().unwrap_or(0.0);
            let act = activation::activation(&history, s, c_boost, now, &self.cfg.activation);
            let score = weights.bm25 * lexical + weights.activation * act.probability;
            let mut channels = cand.channels;
            channels.sort();
            channels.dedup();
            hits.push(Hit {
                breakdown: ScoreBreakdown {
                    channels,
                    bm25_raw: cand.bm25,
                    lexical,
                    symbol_match: cand.symbol,
                    matched_terms: matched,
                    activation: act.probability,
                    base_level: act.base_level,
                    spreading: act.spreading,
                    context_boost: act.context_boost,
                    decay_penalty: act.decay_penalty,
                    total_activation: act.total,
                    accesses: history.count,
                    weights,
                    final_score: score,
                },
                chunk: row,
                score,
            });
        }
        let hits = shape(hits, limit, max_per_file);
        Ok(Retrieved { hits, terms, elapsed_ms: started.elapsed().as_secs_f64() * 1000.0 })
    }

    /// Query terms found in a chunk's name, signature, docstring or body.
    fn matched_terms(&self, row: &ChunkRow, content: Option<&str>, query: &HashSet<&str>) -> Vec<String> {
        let mut found = HashSet::new();
        let texts = [Some(row.qualified_name.as_str()), row.signature.as_deref(), row.docstring.as_deref(), content];
        for text in texts.into_iter().flatten() {
            if found.len() == query.len() {
                break; // every term is already matched: the rest cannot add any
            }
            self.tokenizer.each_token(text, |t| {
                if query.contains(t) && !found.contains(t) {
                    found.insert(t.to_owned());
                }
            });
        }
        let mut out: Vec<String> = found.into_iter().collect();
        out.sort();
        out
    }

    fn passes(&self, id: ChunkId, filter: &Filter<'_>) -> Result<bool, StoreError> {
        if filter.kinds.is_none() && filter.path_prefix.is_none() {
            return Ok(true);
        }
        let Some(row) = read::chunk_rows(&self.conn, &[id])?.pop() else { return Ok(false) };
        let kind_ok = filter.kinds.is_none_or(|k| k.is_empty() || k.contains(&row.kind));
        let path_ok = filter
            .path_prefix
            .map(|p| p.trim_end_matches('/'))
            .is_none_or(|p| p.is_empty() || row.file == p || row.file.starts_with(&format!("{p}/")));
        Ok(kind_ok && path_ok)
    }

    /// Channel b: identifier-shaped query words matched against names exactly, and plain words
    /// that name at most three chunks.
    fn symbol_matches(&mut self, query: &str, filter: &Filter<'_>) -> Result<(Vec<ChunkId>, Vec<ChunkId>), StoreError> {
        let total = self.chunk_total.unwrap_or(0).max(1) as f64;
        let mut rare_words = HashSet::new();
        for word in identifier_words(query) {
            let lower = word.trim_matches(|c| c == '`' || c == '"' || c == '\'').to_lowercase();
            let mut rare = true;
            for tok in self.tokenizer.tokens(&lower) {
                rare &= self.df(&tok)? as f64 / total <= RARE_WORD_DF;
            }
            if rare {
                rare_words.insert(lower);
            }
        }
        let mut out = Vec::new();
        let mut plain = Vec::new();
        for word in identifier_words(query) {
            let quoted = word.starts_with(['`', '"', '\'']);
            let word = word.trim_matches(|c| c == '`' || c == '"' || c == '\'');
            if word.is_empty() {
                continue;
            }
            if quoted || is_identifier_shaped(word) {
                if word.contains('.') {
                    out.extend(read::chunks_named(&self.conn, word, true, filter, SYMBOL_LIMIT)?);
                    // `module.qualified_name` by suffix: try each split point.
                    for (i, _) in word.match_indices('.') {
                        let (module, qn) = (&word[..i], &word[i + 1..]);
                        out.extend(read::chunks_by_module_path(&self.conn, module, qn, SYMBOL_LIMIT)?);
                    }
                } else {
                    out.extend(read::chunks_named(&self.conn, word, false, filter, SYMBOL_LIMIT)?);
                    out.extend(read::chunks_named(&self.conn, word, true, filter, SYMBOL_LIMIT)?);
                }
            } else if word.chars().count() >= 4 && !STOPWORDS.contains(&word.to_lowercase().as_str()) {
                let named = read::chunks_named(&self.conn, word, false, filter, PLAIN_SYMBOL_MAX + 1)?;
                if named.len() <= PLAIN_SYMBOL_MAX {
                    // A word that is rare in the index and names a rare symbol (`slugify`) is meant as
                    // that symbol; a common word that happens to name one (`data`) only adds a candidate.
                    if rare_words.contains(&word.to_lowercase()) { out.extend(named) } else { plain.extend(named) }
                }
            }
        }
        for list in [&mut out, &mut plain] {
            list.sort();
            list.dedup();
            list.truncate(SYMBOL_LIMIT);
        }
        plain.retain(|id| !out.contains(id));
        Ok((out, plain))
    }

    /// The chunks at the cursor or selection (innermost first), and others of the file nearest it.
    fn context_chunks(
        &self,
        editor: &EditorContext,
        filter: &Filter<'_>,
    ) -> Result<(Vec<ChunkId>, Vec<ChunkId>), StoreError> {
        let rows = read::chunks_of_file(&self.conn, &editor.file)?;
        let (lo, hi) = (editor.line, editor.end_line.unwrap_or(editor.line));
        let mut context: Vec<&ChunkRow> = rows.iter().filter(|r| r.start_line <= hi && r.end_line >= lo).collect();
        if editor.end_line.is_none() {
            // The cursor: only the innermost chunk containing it.
            context.sort_by_key(|r| r.end_line - r.start_line);
            context.truncate(1);
        } else {
            context.retain(|r| r.kind != ChunkKind::Module);
        }
        let context_ids: Vec<ChunkId> = context.iter().map(|r| r.id).collect();
        let mut nearby: Vec<&ChunkRow> = rows
            .iter()
            .filter(|r| !context_ids.contains(&r.id))
            .filter(|r| filter.kinds.is_none_or(|k| k.is_empty() || k.contains(&r.kind)))
            .collect();
        nearby.sort_by_key(|r| {
            let d = if r.end_line < lo { lo - r.end_line } else { r.start_line.saturating_sub(hi) };
            (d, r.start_line)
        });
        let nearby = nearby.into_iter().take(CONTEXT_LIMIT.saturating_sub(context_ids.len())).map(|r| r.id).collect();
        Ok((context_ids, nearby))
    }
}

/// The MATCH expression: the kept terms joined with OR, plus — when two or more common terms were
/// pruned — those terms joined with AND. Rows holding every common word of the question still
/// come in, while FTS5 only scores the (small) intersection of their long posting lists; every
/// phrase of the expression counts in `bm25()` of every matched row.
fn match_expression(terms: &QueryTerms) -> String {
    let quote = |t: &String| format!("\"{t}\"");
    let mut expr = terms.kept.iter().map(quote).collect::<Vec<_>>().join(" OR ");
    if terms.pruned.len() >= 2 {
        let all = terms.pruned.iter().map(quote).collect::<Vec<_>>().join(" AND ");
        expr = format!("{expr} OR ({all})");
    }
    expr
}

/// Words of a query as written, with `.` kept inside dotted names and quotes attached.
fn identifier_words(query: &str) -> Vec<String> {
    query
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '`' | '"' | '\'')))
        .map(|w| w.trim_matches('.').trim_end_matches(['?', '!', ',']))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Contains `_` or `.`, has an upper-case letter after its first character (camelCase, not an
/// all-capitals acronym such as `CSRF` or `POST`, which prose uses as a word), or mixes letters and
/// digits.
fn is_identifier_shaped(word: &str) -> bool {
    let has_alpha = word.chars().any(char::is_alphabetic);
    let has_digit = word.chars().any(|c| c.is_ascii_digit());
    let camel = word.chars().skip(1).any(char::is_uppercase) && word.chars().any(char::is_lowercase);
    word.contains('_') || word.contains('.') || camel || (has_alpha && has_digit)
}

/// Spreading activation (§5.4) from `sources` over call, import and inheritance edges in both
/// directions. Sources receive nothing; each edge is taken once.
fn spread(conn: &Connection, sources: &[ChunkId], cfg: &ActivationConfig) -> Result<HashMap<ChunkId, f64>, StoreError> {
    let graph = StoreGraph { conn };
    spread_over(&graph, sources, cfg)
}

/// The neighbours of a chunk in the reference graph, with edge weights `1/k`.
pub trait Graph {
    fn neighbours(&self, id: ChunkId) -> Result<Vec<(ChunkId, f64)>, StoreError>;
}

struct StoreGraph<'a> {
    conn: &'a Connection,
}

impl StoreGraph<'_> {
    /// Chunks a dotted target resolves to (module suffix + qualified name, else by last name).
    fn resolve(&self, dst_name: &str, dst_last: &str) -> Result<Vec<ChunkId>, StoreError> {
        for (i, _) in dst_name.match_indices('.') {
            let found = read::chunks_by_module_path(self.conn, &dst_name[..i], &dst_name[i + 1..], 10)?;
            if !found.is_empty() {
                return Ok(found);
            }
        }
        read::chunks_named(self.conn, dst_last, false, &Filter::default(), 11)
    }
}

impl Graph for StoreGraph<'_> {
    fn neighbours(&self, id: ChunkId) -> Result<Vec<(ChunkId, f64)>, StoreError> {
        let mut out = Vec::new();
        for (dst_name, dst_last) in read::edges_from(self.conn, id)? {
            let targets = self.resolve(&dst_name, &dst_last)?;
            let w = 1.0 / targets.len().max(1) as f64;
            out.extend(targets.into_iter().map(|t| (t, w)));
        }
        // Callers: edges whose target resolves to this chunk.
        if let Some(row) = read::chunk_rows(self.conn, &[id])?.pop() {
            for (src, dst_name) in read::edges_to_last(self.conn, &row.name)? {
                let targets = self.resolve(&dst_name, &row.name)?;
                if targets.contains(&id) {
                    out.push((src, 1.0 / targets.len() as f64));
                }
            }
        }
        Ok(out)
    }
}

/// Breadth-first spreading over any graph (pure apart from the graph's reads).
pub fn spread_over(
    graph: &impl Graph,
    sources: &[ChunkId],
    cfg: &ActivationConfig,
) -> Result<HashMap<ChunkId, f64>, StoreError> {
    let mut out: HashMap<ChunkId, f64> = HashMap::new();
    let source_set: HashSet<ChunkId> = sources.iter().copied().collect();
    let mut taken: HashSet<(ChunkId, ChunkId)> = HashSet::new();
    let mut visited: HashSet<ChunkId> = source_set.clone();
    let mut frontier: Vec<ChunkId> = sources.to_vec();
    let mut edges = 0usize;
    for hop in 0..cfg.max_hops {
        let mut next = Vec::new();
        for node in frontier {
            for (target, w) in graph.neighbours(node)? {
                if w < MIN_EDGE_WEIGHT || target == node || !taken.insert((node, target)) {
                    continue;
                }
                edges += 1;
                if edges > MAX_EDGES {
                    return Ok(out);
                }
                if !source_set.contains(&target) {
                    *out.entry(target).or_default() += w * cfg.spread_factor.powi(hop as i32 + 1);
                }
                if visited.insert(target) {
                    next.push(target);
                }
            }
        }
        frontier = next;
    }
    Ok(out)
}

/// Sorts, caps per file and fills at most a quarter of the slots with no-evidence hits (§6.5).
fn shape(mut hits: Vec<Hit>, limit: usize, max_per_file: usize) -> Vec<Hit> {
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.breakdown.lexical.total_cmp(&a.breakdown.lexical))
            // Among equal scores (several exact symbol matches), the stronger text match first.
            .then(b.breakdown.bm25_raw.unwrap_or(0.0).total_cmp(&a.breakdown.bm25_raw.unwrap_or(0.0)))
            .then_with(|| a.chunk.file.cmp(&b.chunk.file))
            .then(a.chunk.start_byte.cmp(&b.chunk.start_byte))
            .then(a.chunk.id.cmp(&b.chunk.id))
    });
    let mut per_file: HashMap<String, usize> = HashMap::new();
    let mut no_evidence = 0usize;
    let mut out = Vec::with_capacity(limit);
    for hit in hits {
        if out.len() >= limit {
            break;
        }
        let n = per_file.entry(hit.chunk.file.clone()).or_default();
        if max_per_file > 0 && *n >= max_per_file {
            continue;
        }
        if hit.breakdown.lexical == 0.0 {
            if no_evidence >= limit / 4 {
                continue;
            }
            no_evidence += 1;
        }
        *n += 1;
        out.push(hit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(HashMap<i64, Vec<(i64, f64)>>);

    impl Graph for Fixed {
        fn neighbours(&self, id: ChunkId) -> Result<Vec<(ChunkId, f64)>, StoreError> {
            Ok(self.0.get(&id.0).map(|v| v.iter().map(|(t, w)| (ChunkId(*t), *w)).collect()).unwrap_or_default())
        }
    }

    #[test]
    fn spreading_matches_the_spec_examples() {
        let cfg = ActivationConfig::default();
        // A→B (1.0), B→C (0.8): S_B = 0.7, S_C = 0.7 × 0.8 × 0.7 = 0.392.
        let g = Fixed(HashMap::from([(1, vec![(2, 1.0)]), (2, vec![(3, 0.8)])]));
        let s = spread_over(&g, &[ChunkId(1)], &cfg).unwrap();
        assert!((s[&ChunkId(2)] - 0.7).abs() < 1e-9);
        assert!((s[&ChunkId(3)] - 0.392).abs() < 1e-9);
        assert!(!s.contains_key(&ChunkId(1)), "sources receive nothing");
        // Two paths to D (hops 1 and 2): 0.7 + 0.49 = 1.19.
        let g = Fixed(HashMap::from([(1, vec![(4, 1.0), (2, 1.0)]), (2, vec![(4, 1.0)])]));
        let s = spread_over(&g, &[ChunkId(1)], &cfg).unwrap();
        assert!((s[&ChunkId(4)] - 1.19).abs() < 1e-9);
        // Light edges are not taken.
        let g = Fixed(HashMap::from([(1, vec![(2, 0.05)])]));
        assert!(spread_over(&g, &[ChunkId(1)], &cfg).unwrap().is_empty());
    }

    #[test]
    fn identifier_shapes() {
        for w in ["get_user", "HTTPServer", "os.path", "sha256", "getUser"] {
            assert!(is_identifier_shaped(w), "{w}");
        }
        for w in ["paginator", "Paginator", "user", "CSRF", "POST"] {
            assert!(!is_identifier_shaped(w), "{w}");
        }
        assert_eq!(
            identifier_words("Where is `QuerySet.filter` defined?"),
            ["Where", "is", "`QuerySet.filter`", "defined"]
        );
    }
}
