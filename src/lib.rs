//! Aurora: code memory for the editor. Indexes a workspace into chunks (tree-sitter), stores them in
//! SQLite, and ranks them with BM25 plus ACT-R activation. See `DESIGN.md` for the architecture.
//!
//! Layers reach downward only: `cli` → `memory` → `store`; `index` → `store`; `workspace` feeds
//! `index`; `lsp` sits on top of `memory`, `index` and `store`, and nothing below names it; `llm`
//! stands alone (it knows no chunk and no SQL). `config` is read by everyone. Positions inside the
//! library are byte offsets and 0-based lines; only `cli` prints 1-based lines and only `lsp`
//! converts to protocol positions.

#![deny(clippy::print_stdout, clippy::print_stderr, clippy::dbg_macro)]

pub mod cli;
pub mod config;
pub mod index;
pub mod llm;
pub mod logging;
pub mod lsp;
pub mod memory;
pub mod privacy;
pub mod soar;
pub mod store;
pub mod workspace;
