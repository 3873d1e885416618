//! SOAR: answers questions about the workspace and carries out code actions in nine phases
//! (spec/soar.md). `pipeline.rs` orchestrates; each phase lives in its own file and passes
//! immutable values from `types.rs` to the next.

pub mod agents;
pub mod assess;
pub mod calls;
pub mod citations;
pub mod collect;
pub mod decompose;
pub mod edits;
pub mod error;
pub mod external;
pub mod pipeline;
pub mod prompts;
pub mod record;
pub mod respond;
pub mod retrieve;
pub mod route;
pub mod synthesize;
pub mod types;
pub mod verify;
pub mod workspace;

pub use error::SoarError;
pub use pipeline::Pipeline;
pub use types::{SoarEvent, SoarRequest, SoarResponse};
pub use workspace::{OpenDoc, OpenDocuments, Workspace};
