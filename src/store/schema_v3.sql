-- Schema version 3: SOAR's tables (spec/soar.md §5.4, §12, §13.1). Never holds API keys; prompt texts
-- only when `soar.conversationLog.includePrompts` is set.

-- Verified plans only, keyed by the hash of (normalised query, level, context and agent fingerprints,
-- prompt version, model). Expired rows (created_at + TTL) are removed on lookup and on insert; the
-- least recently used go first when the table is over its bound.
CREATE TABLE decomposition_cache (
  key            TEXT PRIMARY KEY,
  plan_json      TEXT NOT NULL,
  created_at     INTEGER NOT NULL,
  last_used_at   INTEGER NOT NULL,
  hits           INTEGER NOT NULL DEFAULT 0,
  prompt_version INTEGER NOT NULL,
  model          TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX decomposition_cache_used ON decomposition_cache(last_used_at);

-- Recorded reasoning patterns: one per (normalised query, complexity), updated in place.
CREATE TABLE reasoning_chunks (
  id               TEXT PRIMARY KEY,
  pattern          TEXT NOT NULL,
  normalized_query TEXT NOT NULL,
  complexity       TEXT NOT NULL,
  goal             TEXT NOT NULL,
  plan_json        TEXT NOT NULL,
  agents_used      TEXT NOT NULL,
  success_score    REAL NOT NULL,
  pattern_marked   INTEGER NOT NULL,
  base_level       REAL NOT NULL,
  access_count     INTEGER NOT NULL,
  last_access      INTEGER NOT NULL,
  created_at       INTEGER NOT NULL,
  query_id         TEXT NOT NULL,
  prompt_versions  TEXT NOT NULL,
  models           TEXT NOT NULL,
  metadata         TEXT NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX reasoning_chunks_query ON reasoning_chunks(normalized_query, complexity);

-- One row per query, on every path (answers, failures, budget blocks, cancellations).
CREATE TABLE conversations (
  query_id        TEXT PRIMARY KEY,
  conversation_id TEXT NOT NULL,
  started_at      INTEGER NOT NULL,
  finished_at     INTEGER NOT NULL,
  query           TEXT NOT NULL,
  complexity      TEXT NOT NULL,
  outcome         TEXT NOT NULL,
  confidence      REAL NOT NULL,
  total_cost_usd  REAL NOT NULL,
  input_tokens    INTEGER NOT NULL,
  output_tokens   INTEGER NOT NULL,
  answer          TEXT NOT NULL,
  envelope_json   TEXT NOT NULL,
  calls_json      TEXT NOT NULL,
  prompts_json    TEXT
);
CREATE INDEX conversations_finished ON conversations(finished_at);
CREATE INDEX conversations_thread ON conversations(conversation_id, finished_at);
