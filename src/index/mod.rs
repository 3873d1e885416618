//! Indexing: source files → chunks (one chunker per language) → the store, incrementally.

pub mod chunk;
pub mod edit;
pub mod indexer;
pub mod lang;
