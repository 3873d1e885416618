//! The command line: argument parsing and one file per subcommand; only `output.rs` prints.

mod ask;
mod debug;
mod doctor;
mod index;
mod output;
mod search;
mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::store::StorePath;

#[derive(Parser, Debug)]
#[command(name = "aurora", version, about = "Code memory for your editor: index a Python workspace and search it")]
pub struct Cli {
    /// Use this store file instead of <root>/.aurora/memory.db.
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Index a folder (default: the workspace root) or one file into the store.
    Index(index::Args),
    /// Search the index: `path:line  kind  qualified_name  score`.
    Search(search::Args),
    /// Ask a question about the workspace (needs an LLM provider; without one, prints the relevant locations).
    Ask(ask::Args),
    /// Show what the store holds.
    Status(status::Args),
    /// Check the store and whether the configured LLM provider answers (model, round-trip time).
    #[command(alias = "llm-check")]
    Doctor(doctor::Args),
    /// Serve the Language Server Protocol on stdin/stdout (started by an editor).
    Lsp,
    /// Developer tools (measurement floors).
    #[command(hide = true, subcommand)]
    Debug(debug::Command),
}

/// Entry point of the binary: runs the command and turns an error into one line and exit 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Lsp) {
        crate::logging::init("info");
        return crate::lsp::run();
    }
    crate::logging::init("warn");
    let result = match cli.command {
        Command::Lsp => unreachable!("served above"),
        Command::Index(args) => index::run(args, cli.db.as_deref()),
        Command::Search(args) => search::run(args, cli.db.as_deref()),
        Command::Ask(args) => ask::run(args, cli.db.as_deref()),
        Command::Status(args) => status::run(args, cli.db.as_deref()),
        Command::Doctor(args) => doctor::run(args, cli.db.as_deref()),
        Command::Debug(cmd) => debug::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// The workspace root for `path`: the nearest folder at or above it holding `.aurora/`, else the
/// folder itself (or a file's folder).
pub fn find_root(path: &Path) -> PathBuf {
    let start = if path.is_file() { path.parent().unwrap_or(path) } else { path };
    start
        .ancestors()
        .find(|dir| dir.join(".aurora").is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| start.to_path_buf())
}

/// An existing path, made absolute, or a clear error.
fn existing(path: &Path) -> anyhow::Result<PathBuf> {
    if !path.exists() {
        bail!("{}: no such file or folder", path.display());
    }
    path.canonicalize().with_context(|| format!("resolving {}", path.display()))
}

/// The configuration of `root`, with its problems reported as warnings.
fn load_config(root: &Path) -> anyhow::Result<Config> {
    let loaded = Config::load(Some(root))?;
    for p in &loaded.problems {
        output::warn(&p.to_string());
    }
    Ok(loaded.config)
}

/// The workspace a command works on: `--root` or the current folder's root, its configuration
/// (problems shown as warnings) and its store (or `--db`).
fn workspace(root: Option<&Path>, db: Option<&Path>) -> anyhow::Result<(PathBuf, Config, StorePath)> {
    let start = match root {
        Some(r) => existing(r)?,
        None => std::env::current_dir().context("reading the current folder")?,
    };
    let root = find_root(&start);
    let config = load_config(&root)?;
    let store = store_path(&root, db);
    Ok((root, config, store))
}

fn store_path(root: &Path, db: Option<&Path>) -> StorePath {
    match db {
        Some(db) => StorePath { db: db.to_path_buf() },
        None => StorePath::for_root(root),
    }
}
