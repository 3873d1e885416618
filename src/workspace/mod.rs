//! The workspace on disk: walking it under ignore rules and limits.

pub mod walk;
