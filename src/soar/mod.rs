//! SOAR: answers questions about the workspace and carries out code actions in nine phases
//! (spec/soar.md). `pipeline.rs` orchestrates; each phase lives in its own file and passes
//! immutable values from `types.rs` to the next.

pub mod assess;
pub mod error;
pub mod pipeline;
pub mod types;
pub mod workspace;

pub use error::SoarError;
pub use pipeline::Pipeline;
pub use types::{SoarEvent, SoarRequest, SoarResponse};
pub use workspace::{OpenDoc, OpenDocuments, Workspace};
