-- Schema version 2: LLM usage, one row per model call (cost, tokens, outcome). Never holds prompts,
-- replies or keys.
CREATE TABLE llm_usage (
  id             INTEGER PRIMARY KEY,
  at_ms          INTEGER NOT NULL,
  query_id       TEXT,
  phase          TEXT,
  role           TEXT NOT NULL,
  prompt_version INTEGER NOT NULL,
  provider       TEXT NOT NULL,
  model          TEXT NOT NULL,
  input_tokens   INTEGER NOT NULL,
  output_tokens  INTEGER NOT NULL,
  estimated      INTEGER NOT NULL,
  cost_usd       REAL NOT NULL,
  price_known    INTEGER NOT NULL,
  duration_ms    INTEGER NOT NULL,
  status         TEXT NOT NULL
);
CREATE INDEX llm_usage_at ON llm_usage(at_ms);
