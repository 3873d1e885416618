//! SOAR: answers questions about the workspace and carries out code actions in nine phases
//! (spec/soar.md). `pipeline.rs` orchestrates; each phase lives in its own file and passes
//! immutable values from `types.rs` to the next.

pub mod assess;
pub mod types;
