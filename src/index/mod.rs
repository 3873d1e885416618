//! Indexing: source files → chunks (one chunker per language) → the store, incrementally.

pub mod chunk;
pub mod indexer;
pub mod lang;
