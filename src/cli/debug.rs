//! `aurora debug …`: measurement floors for the benchmarks (hidden from help).

use std::path::PathBuf;
use std::time::Instant;

use super::output;
use crate::config::IndexingConfig;
use crate::index::lang::python;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Bare tree-sitter parse of every source file under PATH, one thread: the floor of indexing.
    ParseFloor { path: PathBuf },
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::ParseFloor { path } => {
            let root = super::existing(&path)?;
            let cfg = IndexingConfig::default();
            let deny = crate::privacy::DenyList::new(&root, &[]);
            let walked = crate::workspace::walk::walk(&root, &root, &cfg, &deny);
            let texts: Vec<Vec<u8>> = walked.files.iter().filter_map(|f| std::fs::read(&f.abs).ok()).collect();
            let bytes: usize = texts.iter().map(Vec::len).sum();
            let mut parser = python::new_parser();
            let started = Instant::now();
            for t in &texts {
                let _ = parser.parse(t, None);
            }
            let parse_ms = started.elapsed().as_secs_f64() * 1000.0;
            output::json(&serde_json::json!({
                "files": texts.len(), "bytes": bytes, "parseMs": parse_ms,
                "mbPerSec": bytes as f64 / 1e6 / (parse_ms / 1000.0),
            }));
            Ok(())
        }
    }
}
