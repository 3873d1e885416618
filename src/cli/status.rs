//! `aurora status`: what the store holds.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::output;
use crate::store::read::{self, StoreCounts};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Workspace root (default: found from the current folder).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    root: String,
    store: String,
    store_bytes: u64,
    schema: u32,
    #[serde(flatten)]
    counts: StoreCounts,
}

pub fn run(args: Args, db: Option<&Path>) -> anyhow::Result<()> {
    let start = match &args.root {
        Some(r) => super::existing(r)?,
        None => std::env::current_dir().context("reading the current folder")?,
    };
    let root = super::find_root(&start);
    let store = super::store_path(&root, db);
    let conn = crate::store::open_reader(&store)?;
    let status = Status {
        root: root.display().to_string(),
        store: store.db.display().to_string(),
        store_bytes: store.size_bytes(),
        schema: crate::store::SCHEMA_VERSION,
        counts: read::counts(&conn)?,
    };
    if args.json {
        output::json(&status);
        return Ok(());
    }
    let c = &status.counts;
    output::line(&format!("root    {}", status.root));
    output::line(&format!(
        "store   {} ({:.1} MB, schema {})",
        status.store,
        status.store_bytes as f64 / 1e6,
        status.schema
    ));
    output::line(&format!(
        "files   {} ({} ok, {} with syntax errors, {} skipped)",
        c.files, c.files_ok, c.files_partial, c.files_skipped
    ));
    for (reason, n) in &c.skipped_by_reason {
        output::line(&format!("        {n:>6} skipped: {reason}"));
    }
    output::line(&format!(
        "chunks  {} ({} stale), {} edges, {} with access history",
        c.chunks, c.stale_chunks, c.edges, c.accessed_chunks
    ));
    if let Some(at) = c.last_indexed_at {
        let ago = (crate::store::now_ms() - at).max(0) / 1000;
        output::line(&format!("indexed {ago} s ago"));
    }
    Ok(())
}
