//! `aurora doctor`: is the store readable, and does the configured LLM provider answer?

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::output;
use crate::llm::ProviderKind;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Workspace root (default: found from the current folder).
    #[arg(long)]
    root: Option<PathBuf>,
}

/// Prints one line per check; fails (exit 1) when the provider is configured but does not answer.
pub fn run(args: Args, db: Option<&Path>) -> anyhow::Result<()> {
    let (_, config, store) = super::workspace(args.root.as_deref(), db)?;
    match crate::store::open_reader(&store).and_then(|c| crate::store::read::counts(&c)) {
        Ok(c) => output::line(&format!("store   ok: {} ({} files, {} chunks)", store.db.display(), c.files, c.chunks)),
        Err(e) => output::line(&format!("store   {e}")),
    }
    if config.llm.provider == ProviderKind::None {
        output::line(
            "llm     not configured: set llm.provider (anthropic, openai, ollama or command) and llm.model in \
             ~/.config/aurora/config.toml; search works without it",
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let env = |name: &str| std::env::var(name).ok();
    let report = runtime
        .block_on(crate::llm::check(&config.llm, &env, &CancellationToken::new()))
        .map_err(|e| anyhow::anyhow!("llm: {e}"))?;
    let at = if report.base_url.is_empty() { String::new() } else { format!(" at {}", report.base_url) };
    output::line(&format!(
        "llm     ok: {} model {}{at} answered in {} ms ({:?})",
        report.provider, report.model, report.round_trip_ms, report.reply
    ));
    Ok(())
}
