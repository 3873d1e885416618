//! `aurora ask QUESTION`: runs SOAR over the workspace and prints the answer with its citations.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::output;
use crate::index::indexer::store_versions;
use crate::llm::{Budget, Llm, MemoryUsageLog, ProviderKind, UsageLog};
use crate::memory::tokenize::Tokenizer;
use crate::soar::types::{EditChange, EditorContext, LineRange, Outcome, Position, SoarEvent, SoarRequest};
use crate::soar::{Pipeline, SoarError, SoarResponse, Workspace};
use crate::store::StoreError;
use crate::store::usage::StoreUsageLog;
use crate::store::writer::Writer;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The question, e.g. "where is the config loaded?"
    question: String,
    /// The file you are asking about (relative to the root): its chunks are pinned to the context.
    #[arg(long)]
    file: Option<PathBuf>,
    /// 1-based line in --file (the cursor); with --end-line, a selection.
    #[arg(long, requires = "file")]
    line: Option<u32>,
    /// 1-based last line of a selection starting at --line.
    #[arg(long, requires = "line")]
    end_line: Option<u32>,
    /// Bypass the plan cache.
    #[arg(long)]
    no_cache: bool,
    /// The most this question may cost, in USD (lowers budget.perQueryUsd).
    #[arg(long, value_name = "USD")]
    max_cost: Option<f64>,
    /// Workspace root (default: found from the current folder).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Print the whole response envelope as JSON.
    #[arg(long)]
    json: bool,
    /// Also print phases, timings, usage and cost.
    #[arg(long, short)]
    verbose: bool,
    /// One line: `✓ Score: 0.82 | <start of the answer>`.
    #[arg(long, short, conflicts_with_all = ["json", "verbose"])]
    quiet: bool,
}

pub fn run(args: Args, db: Option<&Path>) -> anyhow::Result<()> {
    let (root, config, store) = super::workspace(args.root.as_deref(), db)?;
    if !store.db.exists() {
        bail!("no index at {}; run `aurora index` first", store.db.display());
    }
    let tokenizer = Tokenizer::new(config.memory.tokenizer.stemming);
    let writer = match Writer::open(&store, &store_versions(&tokenizer)) {
        Ok(w) => Some(Arc::new(w)),
        Err(StoreError::Locked { .. }) => {
            output::warn("another Aurora process owns the store: answering without recording the conversation");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let editor = editor_context(&args, &root)?;
    let llm = if config.llm.provider == ProviderKind::None {
        None
    } else {
        let env = |name: &str| std::env::var(name).ok();
        let log: Arc<dyn UsageLog> = match &writer {
            Some(w) => Arc::new(StoreUsageLog::new(Arc::clone(w), crate::store::open_reader(&store)?)),
            None => Arc::new(MemoryUsageLog::new()),
        };
        let budget = Arc::new(Budget::new(config.budget.clone(), log));
        Some(Arc::new(
            Llm::from_config(&config.llm, &env).map_err(|e| anyhow::anyhow!("llm: {e}"))?.with_budget(budget),
        ))
    };
    let ws = Arc::new(Workspace::new(root.clone(), store, writer.clone(), &config.memory));
    let pipeline = Pipeline::new(Arc::new(config), ws, llm);
    let req = SoarRequest {
        editor,
        no_cache: args.no_cache,
        max_cost_usd: args.max_cost,
        ..SoarRequest::ask(args.question.clone())
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting tokio")?;
    let result = runtime.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let bar = (!args.json && !args.quiet).then(spinner);
        let show = async {
            while let Some(e) = rx.recv().await {
                match e {
                    SoarEvent::Progress { message, .. } => {
                        if let Some(bar) = &bar {
                            bar.set_message(message);
                        }
                    }
                    SoarEvent::BudgetWarning { message } => output::warn(&message),
                    SoarEvent::AnswerDelta { .. } | SoarEvent::AnswerReset { .. } => {}
                }
            }
        };
        let ctrl_c = {
            let cancel = cancel.clone();
            async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    cancel.cancel();
                }
            }
        };
        let run = async {
            let r = pipeline.run(req, tx, cancel.clone()).await;
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            r
        };
        tokio::select! {
            (r, ()) = async { tokio::join!(run, show) } => r,
            () = ctrl_c => Err(SoarError::Cancelled),
        }
    });
    drop(pipeline);
    if let Some(w) = writer.and_then(|w| Arc::try_unwrap(w).ok()) {
        w.finish()?;
    }
    let response = match result {
        Ok(r) => r,
        Err(SoarError::BudgetExceeded { scope, consumed_usd, limit_usd, estimated_usd }) => bail!(
            "{scope} would be exceeded: {consumed_usd:.4} of {limit_usd:.2} USD spent, this question needs about \
             {estimated_usd:.4} USD; raise the limit or pass --max-cost"
        ),
        Err(e) => bail!("{e}"),
    };
    print(&args, &response);
    if response.outcome == Outcome::Failed {
        bail!(
            "{}",
            response.metadata.llm_failure.as_ref().map_or("the question could not be answered", |f| f.message.as_str())
        );
    }
    Ok(())
}

fn spinner() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn editor_context(args: &Args, root: &Path) -> anyhow::Result<Option<EditorContext>> {
    let Some(file) = &args.file else { return Ok(None) };
    let abs = if file.is_absolute() { file.clone() } else { std::env::current_dir()?.join(file) };
    let abs = abs.canonicalize().with_context(|| format!("{}: no such file", file.display()))?;
    let rel = abs
        .strip_prefix(root)
        .with_context(|| format!("{} is outside the workspace {}", abs.display(), root.display()))?
        .to_string_lossy()
        .replace('\\', "/");
    let line = args.line.map(|l| l.saturating_sub(1));
    let selection = match (line, args.end_line) {
        (Some(start), Some(end)) if end > start => Some(LineRange { start_line: start, end_line: end - 1 }),
        _ => None,
    };
    Ok(Some(EditorContext {
        path: rel,
        cursor: line.map(|l| Position { line: l, character: 0 }),
        selection,
        ..EditorContext::default()
    }))
}

fn print(args: &Args, r: &SoarResponse) {
    if args.json {
        output::json(r);
        return;
    }
    if args.quiet {
        let mark = if r.confidence >= 0.7 {
            "✓"
        } else if r.confidence >= 0.5 {
            "⚠"
        } else {
            "✗"
        };
        let head: String = r.answer.chars().take(100).collect();
        output::line(&format!("{mark} Score: {:.2} | {}", r.confidence, head.replace('\n', " ")));
        return;
    }
    output::line(&r.answer);
    if !r.citations.is_empty() {
        output::line("");
        output::line("Citations:");
        for c in &r.citations {
            let stale = if c.stale { "  (changed since)" } else { "" };
            output::line(&format!("  [{}] {}:{}-{}  {}{stale}", c.n, c.file, c.start_line + 1, c.end_line + 1, c.name));
        }
    }
    for e in &r.proposed_edits {
        output::line("");
        output::line(&format!("Proposed edit {} ({}): {}", e.id, e.agent_id, e.description));
        match &e.change {
            EditChange::Diff { unified } => output::line(unified),
            EditChange::Replace { start_line, end_line, new_text } => {
                output::line(&format!(
                    "--- a/{0}\n+++ b/{0}\n@@ replace lines {1}-{2} @@",
                    e.file,
                    start_line + 1,
                    end_line + 1
                ));
                for l in new_text.lines() {
                    output::line(&format!("+{l}"));
                }
            }
            EditChange::Create { new_text } => {
                output::line(&format!("--- /dev/null\n+++ b/{}", e.file));
                for l in new_text.lines() {
                    output::line(&format!("+{l}"));
                }
            }
        }
    }
    for w in &r.metadata.warnings {
        output::warn(&w.message);
    }
    if let Some(q) = &r.metadata.quality_warning {
        output::warn(q);
    }
    if args.verbose {
        let m = &r.metadata;
        output::line("");
        output::line(&format!(
            "{} · {} · confidence {:.2} ({:?}) · {:.0} ms · {} calls · {} + {} tokens · ${:.4}",
            r.complexity,
            r.outcome.as_str(),
            r.confidence,
            m.confidence_basis,
            m.total_duration_ms,
            m.usage.calls,
            m.usage.input_tokens,
            m.usage.output_tokens,
            m.total_cost_usd
        ));
        for (k, ms) in r.timings() {
            output::line(&format!("  {:<18} {ms:>8.1} ms", k.key()));
        }
        if let Some(b) = &m.budget_status {
            output::line(&format!("  budget {}: {:.2} of {:.2} USD", b.period, b.consumed_usd, b.limit_usd));
        }
    }
}
