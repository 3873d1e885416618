//! `aurora index [PATH]`: reconcile a folder or file with the store, with a progress bar.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output;
use crate::index::indexer::{self, IndexRequest, IndexStats, Progress};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder or file to index (default: the current folder).
    path: Option<PathBuf>,
    /// Drop files, chunks and FTS rows first and index from scratch (access history is kept).
    #[arg(long)]
    rebuild: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, db: Option<&Path>) -> anyhow::Result<()> {
    let scope = super::existing(&args.path.unwrap_or_else(|| PathBuf::from(".")))?;
    let root = super::find_root(&scope);
    let config = super::load_config(&root)?;
    let store = super::store_path(&root, db);
    let progress = Arc::new(Progress::default());
    let done = Arc::new(AtomicBool::new(false));
    let ticker = spawn_ticker(progress.clone(), done.clone());
    let ticker_thread = ticker.thread().clone();
    let req = IndexRequest { root: &root, scope: &scope, store: &store, config: &config, rebuild: args.rebuild };
    let result = indexer::index(&req, &progress);
    done.store(true, Ordering::Relaxed);
    ticker_thread.unpark();
    let _ = ticker.join();
    let stats = result?;
    for w in &stats.warnings {
        output::warn(w);
    }
    if args.json {
        output::json(&stats);
    } else {
        print_summary(&stats);
    }
    Ok(())
}

fn spawn_ticker(progress: Arc<Progress>, done: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} Indexing {pos}/{len} files [{elapsed}] {wide_bar}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        while !done.load(Ordering::Relaxed) {
            let total = progress.total.load(Ordering::Relaxed);
            if total > 0 {
                bar.set_length(total);
                bar.set_position(progress.committed.load(Ordering::Relaxed).min(total));
            }
            // Woken at once when the run ends, so the bar never delays the exit.
            std::thread::park_timeout(Duration::from_millis(100));
        }
        bar.finish_and_clear();
    })
}

fn print_summary(s: &IndexStats) {
    let skipped: u64 = s.skipped.values().sum();
    output::line(&format!(
        "{} files: {} indexed, {} unchanged, {} touched, {} deleted, {} skipped{}",
        s.files_seen,
        s.indexed,
        s.unchanged,
        s.touched,
        s.deleted,
        skipped,
        if s.partial > 0 { format!(" ({} with syntax errors)", s.partial) } else { String::new() }
    ));
    for (reason, n) in &s.skipped {
        output::line(&format!("  skipped {n:>6}  {}", reason.as_str()));
    }
    let c = &s.chunks;
    output::line(&format!(
        "{} chunks: {} inserted, {} updated, {} moved, {} unchanged, {} deleted, {} stale",
        s.total_chunks, c.inserted, c.updated, c.moved, c.unchanged, c.deleted, c.stale
    ));
    let t = &s.timings_ms;
    output::line(&format!(
        "{:.0} ms (walk {:.0}, read {:.0}, parse {:.0} cpu-ms), store {:.1} MB",
        t.total,
        t.walk,
        t.read_hash,
        t.parse,
        s.store_bytes as f64 / 1e6
    ));
}
