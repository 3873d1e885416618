//! `aurora search QUERY`: hybrid search over the store, as lines, JSON, or with the breakdown.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

use super::output;
use crate::index::chunk::ChunkKind;
use crate::memory::retrieve::{EditorContext, Hit, RetrieveRequest, Retrieved, Retriever, ScoreBreakdown};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to look for: words, identifiers (`get_response`, `QuerySet.filter`) or a question.
    query: Option<String>,
    /// Number of results (default: memory.retrieval.limit).
    #[arg(long, short = 'n')]
    limit: Option<usize>,
    /// At most this many results per file; 0 = no cap (default: memory.retrieval.maxPerFile).
    #[arg(long)]
    max_per_file: Option<usize>,
    /// Only chunks of these kinds (module, class, function, method).
    #[arg(long = "kind", value_parser = parse_kind)]
    kinds: Vec<ChunkKind>,
    /// Only chunks under this folder or file (relative to the root).
    #[arg(long)]
    path: Option<String>,
    /// Editor context `path:line` (1-based): seeds spreading activation and nearby chunks.
    #[arg(long, value_name = "PATH:LINE")]
    context: Option<String>,
    /// Workspace root (default: found from the current folder).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Run every line of FILE as a query (one JSON object per line with --json).
    #[arg(long, value_name = "FILE", conflicts_with = "query")]
    batch: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Show the score breakdown of each result.
    #[arg(long)]
    explain: bool,
}

fn parse_kind(text: &str) -> Result<ChunkKind, String> {
    ChunkKind::parse(text).ok_or_else(|| format!("unknown kind {text:?}: use module, class, function or method"))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonHit<'a> {
    path: &'a str,
    kind: &'a str,
    name: &'a str,
    qualified_name: &'a str,
    signature: Option<&'a str>,
    /// 1-based, decorators included.
    start_line: u32,
    end_line: u32,
    /// 1-based line of the `def`/`class` keyword.
    def_line: u32,
    score: f64,
    chunk_id: String,
    stale: bool,
    parse_partial: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    breakdown: Option<&'a ScoreBreakdown>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonResult<'a> {
    query: &'a str,
    results: Vec<JsonHit<'a>>,
    terms: &'a crate::memory::retrieve::QueryTerms,
    partial: bool,
    took_ms: f64,
}

pub fn run(args: Args, db: Option<&Path>) -> anyhow::Result<()> {
    let (_, config, store) = super::workspace(args.root.as_deref(), db)?;
    let conn = crate::store::open_reader(&store)?;
    let mut retriever = Retriever::new(conn, &config.memory);
    let editor = args.context.as_deref().map(parse_context).transpose()?;
    let queries: Vec<String> = match (&args.batch, &args.query) {
        (Some(file), _) => std::fs::read_to_string(file)
            .with_context(|| format!("reading {}", file.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        (None, Some(q)) if !q.trim().is_empty() => vec![q.clone()],
        _ => bail!("give a query, e.g. `aurora search \"load config\"`, or --batch FILE"),
    };
    for query in &queries {
        let req = RetrieveRequest {
            query,
            limit: args.limit,
            editor: editor.as_ref(),
            kinds: (!args.kinds.is_empty()).then_some(&args.kinds[..]),
            path_prefix: args.path.as_deref(),
            max_per_file: args.max_per_file,
            now_ms: None,
        };
        let found = retriever.retrieve(&req)?;
        if args.json {
            print_json(query, &found, args.explain);
        } else {
            print_lines(query, &found, args.explain, queries.len() > 1);
        }
    }
    Ok(())
}

fn parse_context(text: &str) -> anyhow::Result<EditorContext> {
    let (file, line) = text.rsplit_once(':').context("--context takes PATH:LINE, e.g. app/config.py:12")?;
    let line: u32 = line.parse().with_context(|| format!("--context: {line:?} is not a line number"))?;
    Ok(EditorContext { file: file.trim_start_matches("./").to_owned(), line: line.saturating_sub(1), end_line: None })
}

fn json_hit(hit: &Hit, explain: bool) -> JsonHit<'_> {
    let c = &hit.chunk;
    JsonHit {
        path: &c.file,
        kind: c.kind.as_str(),
        name: &c.name,
        qualified_name: &c.qualified_name,
        signature: c.signature.as_deref(),
        start_line: c.start_line + 1,
        end_line: c.end_line + 1,
        def_line: c.def_line + 1,
        score: hit.score,
        chunk_id: c.id.to_string(),
        stale: c.stale,
        parse_partial: c.parse_partial,
        breakdown: explain.then_some(&hit.breakdown),
    }
}

fn print_json(query: &str, found: &Retrieved, explain: bool) {
    output::json(&JsonResult {
        query,
        results: found.hits.iter().map(|h| json_hit(h, explain)).collect(),
        terms: &found.terms,
        partial: false,
        took_ms: found.elapsed_ms,
    });
}

fn print_lines(query: &str, found: &Retrieved, explain: bool, header: bool) {
    if header {
        output::line(&format!("# {query}"));
    }
    if found.hits.is_empty() {
        output::line("no results");
    }
    for hit in &found.hits {
        let c = &hit.chunk;
        let flags = match (c.stale, c.parse_partial) {
            (true, _) => "  [stale]",
            (false, true) => "  [partial]",
            _ => "",
        };
        output::line(&format!(
            "{}:{}  {}  {}  {:.3}{flags}",
            c.file,
            c.def_line + 1,
            c.kind,
            c.qualified_name,
            hit.score
        ));
        if explain {
            let b = &hit.breakdown;
            let channels: Vec<String> =
                b.channels.iter().map(|ch| serde_json::to_string(ch).unwrap_or_default().replace('"', "")).collect();
            output::line(&format!(
                "    lexical {:.3} (bm25 {}{}) × {:.2} + activation {:.4} × {:.2}  via {}",
                b.lexical,
                b.bm25_raw.map_or("-".to_owned(), |v| format!("{v:.2}")),
                if b.symbol_match { ", symbol match" } else { "" },
                b.weights.bm25,
                b.activation,
                b.weights.activation,
                channels.join(",")
            ));
            output::line(&format!(
                "    A = {:.3}: base {:.3} − decay {:.3} + spreading {:.3} + context {:.3} ({} accesses); terms [{}]",
                b.total_activation,
                b.base_level,
                b.decay_penalty,
                b.spreading,
                b.context_boost,
                b.accesses,
                b.matched_terms.join(", ")
            ));
        }
    }
    if explain {
        let t = &found.terms;
        output::line(&format!(
            "terms kept [{}], pruned [{}], dropped [{}]; {:.1} ms",
            t.kept.join(", "),
            t.pruned.join(", "),
            t.dropped.join(", "),
            found.elapsed_ms
        ));
    }
}
