//! Work-done progress (`$/progress`): server-created tokens for indexing passes and jobs
//! (spec/lsp.md §6.1), or the token a request brought (`workDoneToken`).

use tower_lsp_server::Client;

use crate::lsp::lsp;

/// One server-created progress token; every method is a no-op when the client cannot show it.
pub(crate) struct WorkDone {
    client: Client,
    token: Option<lsp::ProgressToken>,
    last_message: String,
    last_percentage: u32,
    cancellable: bool,
}

impl WorkDone {
    /// Creates the token (`window/workDoneProgress/create`) and sends `begin`. Without client
    /// support, or when the client refuses the token, nothing is sent.
    pub async fn begin(client: &Client, supported: bool, id: &str, title: &str, message: String) -> WorkDone {
        let token = if supported { Self::create(client, id).await } else { None };
        Self::start(client, token, title, message, false).await
    }

    /// Asks the client for a server-created token; `None` if it refuses.
    pub async fn create(client: &Client, id: &str) -> Option<lsp::ProgressToken> {
        let t = lsp::ProgressToken::String(id.to_owned());
        match client.create_work_done_progress(t.clone()).await {
            Ok(()) => Some(t),
            Err(e) => {
                tracing::warn!("the client refused progress token {id}: {e}");
                None
            }
        }
    }

    /// Sends `begin` on `token` (a request's `workDoneToken` or a created one); no-op for `None`.
    pub async fn start(
        client: &Client,
        token: Option<lsp::ProgressToken>,
        title: &str,
        message: String,
        cancellable: bool,
    ) -> WorkDone {
        let this =
            WorkDone { client: client.clone(), token, last_message: message.clone(), last_percentage: 0, cancellable };
        this.send(lsp::WorkDoneProgress::Begin(lsp::WorkDoneProgressBegin {
            title: title.to_owned(),
            cancellable: Some(cancellable),
            message: Some(message),
            percentage: Some(0),
        }))
        .await;
        this
    }

    /// Sends `report` when the message changed; the percentage never decreases.
    pub async fn report(&mut self, message: String, percentage: u32) {
        if message == self.last_message {
            return;
        }
        self.last_percentage = self.last_percentage.max(percentage.min(100));
        self.last_message = message.clone();
        let percentage = Some(self.last_percentage);
        self.send(lsp::WorkDoneProgress::Report(lsp::WorkDoneProgressReport {
            cancellable: Some(self.cancellable),
            message: Some(message),
            percentage,
        }))
        .await;
    }

    pub async fn end(self, message: String) {
        self.send(lsp::WorkDoneProgress::End(lsp::WorkDoneProgressEnd { message: Some(message) })).await;
    }

    async fn send(&self, value: lsp::WorkDoneProgress) {
        let Some(token) = &self.token else { return };
        let params = lsp::ProgressParams { token: token.clone(), value: lsp::ProgressParamsValue::WorkDone(value) };
        self.client.send_notification::<lsp::notification::Progress>(params).await;
    }
}
