//! The workspace on disk: walking it under ignore rules and limits, and watching it for changes.

pub mod walk;
pub mod watch;
