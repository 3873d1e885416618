//! Integration tests: real SQLite files in temp dirs, the real binary where a process matters.

mod cli;
mod index;
mod llm;
mod lsp;
mod scripts;
mod search;
mod soar;
mod support;
