-- Schema version 1 (spec/memory.md §3.2). Applied once, in one transaction.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

CREATE TABLE files (
  path         TEXT PRIMARY KEY,
  language     TEXT,
  module       TEXT,
  size         INTEGER NOT NULL,
  mtime_ns     INTEGER NOT NULL,
  content_hash BLOB,
  origin       TEXT NOT NULL DEFAULT 'disk' CHECK (origin IN ('disk','buffer')),
  status       TEXT NOT NULL CHECK (status IN ('ok','partial','skipped')),
  reason       TEXT,
  error        TEXT,
  lossy        INTEGER NOT NULL DEFAULT 0,
  chunk_count  INTEGER NOT NULL DEFAULT 0,
  indexed_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX files_module ON files(module);

CREATE TABLE chunks (
  id             INTEGER PRIMARY KEY,
  file_path      TEXT NOT NULL REFERENCES files(path) ON DELETE CASCADE,
  kind           TEXT NOT NULL CHECK (kind IN ('module','class','function','method')),
  name           TEXT NOT NULL,
  qualified_name TEXT NOT NULL,
  ordinal        INTEGER NOT NULL DEFAULT 0,
  parent_id      INTEGER,
  depth          INTEGER NOT NULL,
  signature      TEXT,
  docstring      TEXT,
  decorators     TEXT,
  start_byte     INTEGER NOT NULL,
  end_byte       INTEGER NOT NULL,
  start_line     INTEGER NOT NULL,
  end_line       INTEGER NOT NULL,
  def_line       INTEGER NOT NULL,
  name_byte      INTEGER NOT NULL,
  content        TEXT NOT NULL,
  content_hash   BLOB NOT NULL,
  language       TEXT NOT NULL,
  complexity     REAL NOT NULL,
  branches       INTEGER NOT NULL,
  parse_partial  INTEGER NOT NULL DEFAULT 0,
  stale          INTEGER NOT NULL DEFAULT 0,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX chunks_key    ON chunks(file_path, kind, qualified_name, ordinal);
CREATE INDEX chunks_file_pos      ON chunks(file_path, start_byte);
CREATE INDEX chunks_name          ON chunks(name COLLATE NOCASE);
CREATE INDEX chunks_qualified     ON chunks(qualified_name COLLATE NOCASE);
CREATE INDEX chunks_parent        ON chunks(parent_id);

CREATE VIRTUAL TABLE chunks_fts USING fts5(
  name, path, signature, doc, body, text,
  content = '', contentless_delete = 1,
  tokenize = "unicode61 remove_diacritics 0 tokenchars '_'"
);
CREATE VIRTUAL TABLE chunks_fts_vocab USING fts5vocab(chunks_fts, 'row');

CREATE TABLE edges (
  src_chunk INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
  kind      TEXT NOT NULL CHECK (kind IN ('calls','imports','inherits')),
  dst_name  TEXT NOT NULL,
  dst_last  TEXT NOT NULL,
  count     INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (src_chunk, kind, dst_name)
) WITHOUT ROWID;
CREATE INDEX edges_dst ON edges(dst_last);

CREATE TABLE access_log (
  chunk_id INTEGER NOT NULL,
  at       INTEGER NOT NULL,
  kind     TEXT NOT NULL CHECK (kind IN ('cited','opened','edited')),
  PRIMARY KEY (chunk_id, at, kind)
) WITHOUT ROWID;

CREATE TABLE access_stats (
  chunk_id INTEGER PRIMARY KEY,
  count    INTEGER NOT NULL,
  first_at INTEGER NOT NULL,
  last_at  INTEGER NOT NULL
);
CREATE INDEX access_stats_last ON access_stats(last_at DESC);

CREATE TABLE embeddings (
  content_hash BLOB NOT NULL,
  model        TEXT NOT NULL,
  dim          INTEGER NOT NULL,
  vec          BLOB NOT NULL,
  PRIMARY KEY (content_hash, model)
) WITHOUT ROWID;
