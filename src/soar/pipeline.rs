//! The orchestrator (spec/soar.md §1.1): runs the phases in order over immutable values, owns the
//! budget gate, deadlines, cancellation, progress events and timings.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::llm::Llm;
use crate::soar::error::SoarError;
use crate::soar::types::{SoarEvent, SoarRequest, SoarResponse};
use crate::soar::workspace::Workspace;

/// One configured pipeline over one workspace. Cheap to build per request.
pub struct Pipeline {
    config: Arc<Config>,
    ws: Arc<Workspace>,
    llm: Option<Arc<Llm>>,
}

impl Pipeline {
    /// `llm` is `None` when no provider is configured: runs then answer with locations (`no_llm`).
    pub fn new(config: Arc<Config>, ws: Arc<Workspace>, llm: Option<Arc<Llm>>) -> Pipeline {
        Pipeline { config, ws, llm }
    }

    /// Runs one request to its envelope. `events` receives progress and streamed answer text (a closed
    /// receiver is fine); cancelling `cancel` stops every phase, in-flight calls and agent processes.
    pub async fn run(
        &self,
        req: SoarRequest,
        events: UnboundedSender<SoarEvent>,
        cancel: CancellationToken,
    ) -> Result<SoarResponse, SoarError> {
        let _ = (&self.config, &self.ws, &self.llm, req, events, cancel);
        Err(SoarError::InvalidRequest("the SOAR pipeline is being built".into()))
    }
}
