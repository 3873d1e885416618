//! `aurora/conversations` (snapshot, spec/lsp.md §4.6): the newest conversations of the first
//! folder's store, one SQL query, no LLM.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower_lsp_server::jsonrpc;

use crate::lsp::protocol::invalid_params;
use crate::lsp::session::Session;

const METHOD: &str = "aurora/conversations";
/// A conversation's title is its first question, cut to this many characters.
const TITLE_CHARS: usize = 80;

#[derive(Default, Deserialize)]
struct Params {
    #[serde(default)]
    limit: Option<Value>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    pub conversation_id: String,
    pub title: String,
    pub turns: u64,
    pub updated_at: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConversationsResult {
    pub conversations: Vec<Conversation>,
}

pub(crate) async fn conversations(session: &Arc<Session>, params: Value) -> jsonrpc::Result<ConversationsResult> {
    let params: Params = match params {
        Value::Array(ref a) if a.is_empty() => Params::default(),
        p => serde_json::from_value(p).map_err(|e| invalid_params(format!("{METHOD}: malformed params: {e}")))?,
    };
    let limit = match params.limit {
        None | Some(Value::Null) => 20,
        Some(v) => match v.as_f64() {
            Some(n) if n.fract() == 0.0 && (1.0..=100.0).contains(&n) => n as i64,
            _ => return Err(invalid_params(format!("{METHOD}: `limit` must be between 1 and 100."))),
        },
    };
    let Some(folder) = session.folders().into_iter().next() else {
        return Ok(ConversationsResult { conversations: Vec::new() });
    };
    super::blocking(METHOD, move || {
        let Ok(conn) = crate::store::open_reader(&folder.store) else {
            return Ok(ConversationsResult { conversations: Vec::new() });
        };
        let rows = conn
            .prepare(
                "SELECT c.conversation_id, \
                   (SELECT f.query FROM conversations f WHERE f.conversation_id = c.conversation_id \
                    ORDER BY f.started_at LIMIT 1), \
                   count(*), max(c.finished_at) \
                 FROM conversations c GROUP BY c.conversation_id ORDER BY max(c.finished_at) DESC LIMIT ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_map([limit], |r| {
                    let title: String = r.get(1)?;
                    Ok(Conversation {
                        conversation_id: r.get(0)?,
                        title: title.chars().take(TITLE_CHARS).collect(),
                        turns: r.get::<_, i64>(2)? as u64,
                        updated_at: iso8601(r.get(3)?),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            });
        match rows {
            Ok(conversations) => Ok(ConversationsResult { conversations }),
            Err(e) => {
                // A store from before SOAR has no table yet: no conversations.
                tracing::debug!("{METHOD}: {e}");
                Ok(ConversationsResult { conversations: Vec::new() })
            }
        }
    })
    .await
}

/// `2026-11-28T17:42:00Z` from Unix milliseconds (UTC; proleptic Gregorian).
pub(crate) fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = crate::llm::budget::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_of_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_795_887_720_123), "2026-11-28T17:42:00Z");
    }
}
