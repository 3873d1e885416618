//! Editing through `didChange`: random incremental edits (many leaving the text broken for a
//! while) end in the same store rows as a cold index of the final text; a buffer that does not
//! parse keeps its last good chunks.

use serde_json::{Value, json};

use super::{Setup, TestServer, file_uri};
use crate::support::{Workspace, dump};

const PATH: &str = "pkg/shapes.py";

const SHAPES_PY: &str = r#""""Shapes — géométrie 😀."""

import math


class Shape:
    """A shape."""

    def area(self):
        return 0


def circle_area(r):
    return math.pi * r * r  # πr²


def label(name="héllo 😀"):
    return name
"#;

/// xorshift64: the same edits on every run, different ones per seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// LSP position (UTF-16) of byte `offset` in `text` (lines end in `\n` only here).
fn position(text: &str, offset: usize) -> Value {
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let character: usize = text[line_start..offset].chars().map(char::len_utf16).sum();
    json!({ "line": line, "character": character })
}

/// Line starts of top-level `def`/`class` statements, and the text's end.
fn top_level_starts(text: &str) -> Vec<usize> {
    let mut out: Vec<usize> = text
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .filter(|&i| text[i..].starts_with("def ") || text[i..].starts_with("class "))
        .collect();
    out.push(text.len());
    out
}

/// The byte range of the top-level block of `def added_…` / `def renamed_…` functions.
fn added_blocks(text: &str) -> Vec<(usize, usize)> {
    let starts = top_level_starts(text);
    starts
        .windows(2)
        .filter(|w| text[w[0]..].starts_with("def added_") || text[w[0]..].starts_with("def renamed_"))
        .map(|w| (w[0], w[1]))
        .collect()
}

/// One valid-to-valid change of the text: replace `start..end` by `with`.
struct Change {
    start: usize,
    end: usize,
    with: String,
}

fn pick_change(text: &str, rng: &mut Rng, serial: usize) -> Change {
    let insert = |at: usize, with: String| Change { start: at, end: at, with };
    loop {
        match rng.below(6) {
            0 => {
                let starts = top_level_starts(text);
                let at = starts[rng.below(starts.len())];
                return insert(at, format!("def added_{serial}(x):\n    return x + {serial}  # ñ 😀\n\n\n"));
            }
            1 => {
                let blocks = added_blocks(text);
                if blocks.is_empty() {
                    continue;
                }
                let (start, end) = blocks[rng.below(blocks.len())];
                return Change { start, end, with: String::new() };
            }
            2 => {
                let blocks = added_blocks(text);
                if blocks.is_empty() {
                    continue;
                }
                let (start, _) = blocks[rng.below(blocks.len())];
                let name_end = start + text[start..].find('(').expect("a def has parameters");
                return Change { start: start + 4, end: name_end, with: format!("renamed_{serial}") };
            }
            3 => {
                let lines: Vec<usize> =
                    std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
                return insert(lines[rng.below(lines.len())], "# ünïcode note 😀\n".to_owned());
            }
            4 => {
                let returns: Vec<usize> = text.match_indices("return x + ").map(|(i, _)| i + 11).collect();
                if returns.is_empty() {
                    continue;
                }
                let at = returns[rng.below(returns.len())];
                let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
                return Change { start: at, end: at + digits, with: rng.below(1000).to_string() };
            }
            _ => {
                let at = text.find("class Shape:\n").expect("the class stays") + "class Shape:\n".len();
                return insert(at, format!("    def m_{serial}(self):\n        return {serial}\n\n"));
            }
        }
    }
}

/// Splits `s` into up to `n` pieces at character boundaries.
fn pieces(s: &str, n: usize, rng: &mut Rng) -> Vec<String> {
    let mut cuts: Vec<usize> = (0..n.saturating_sub(1)).map(|_| rng.below(s.len() + 1)).collect();
    cuts.push(0);
    cuts.push(s.len());
    cuts.sort_unstable();
    cuts.dedup();
    let cuts: Vec<usize> = cuts
        .into_iter()
        .map(|mut c| {
            while !s.is_char_boundary(c) {
                c -= 1;
            }
            c
        })
        .collect();
    cuts.windows(2).filter(|w| w[0] < w[1]).map(|w| s[w[0]..w[1]].to_owned()).collect()
}

/// The editor side: keeps its own copy of the text and sends each edit as an LSP range change.
struct Editor {
    uri: String,
    text: String,
    version: i32,
    pending: Vec<Value>,
    sent_edits: usize,
}

impl Editor {
    fn edit(&mut self, start: usize, end: usize, with: &str) {
        let range = json!({ "start": position(&self.text, start), "end": position(&self.text, end) });
        self.pending.push(json!({ "range": range, "text": with }));
        self.text.replace_range(start..end, with);
        self.sent_edits += 1;
    }

    fn send(&mut self, server: &TestServer) {
        if self.pending.is_empty() {
            return;
        }
        self.version += 1;
        let changes = std::mem::take(&mut self.pending);
        server.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": self.uri, "version": self.version }, "contentChanges": changes }),
        );
    }
}

/// Applies `change` as one edit or as several (typed in pieces, or new text first and the old
/// removed after), so that the text is often broken in between.
fn deliver(editor: &mut Editor, server: &mut TestServer, change: Change, rng: &mut Rng) {
    let Change { start, end, with } = change;
    let mid_flush = rng.below(4) == 0;
    match rng.below(3) {
        0 => editor.edit(start, end, &with),
        1 => {
            editor.edit(start, end, "");
            let mut at = start;
            for piece in pieces(&with, 1 + rng.below(4), rng) {
                editor.edit(at, at, &piece);
                at += piece.len();
                if rng.below(2) == 0 {
                    editor.send(server);
                }
                if mid_flush && rng.below(3) == 0 {
                    editor.send(server);
                    server.search("added");
                }
            }
        }
        _ => {
            editor.edit(start, start, &with);
            editor.send(server);
            if mid_flush {
                server.search("renamed");
            }
            let from = start + with.len();
            editor.edit(from, from + (end - start), "");
        }
    }
    if rng.below(2) == 0 {
        editor.send(server);
    }
}

/// Chunk rows that must agree between the live store and a cold index.
fn chunk_dump(ws: &Workspace) -> String {
    dump(
        &ws.conn(),
        &format!(
            "SELECT id || ' ' || kind || ' ' || qualified_name || '#' || ordinal || ' ' || start_line || '..' || \
             end_line || ' def ' || def_line || ' bytes ' || start_byte || '..' || end_byte || ' ' || \
             hex(content_hash) || ' stale=' || stale || ' partial=' || parse_partial || ' parent=' || \
             coalesce(parent_id, '-') FROM chunks WHERE file_path = '{PATH}' ORDER BY start_byte, depth"
        ),
    )
}

/// Chunk ids of the file that have an FTS row (the FTS table is contentless).
fn fts_ids(ws: &Workspace) -> String {
    dump(
        &ws.conn(),
        &format!(
            "SELECT CAST(rowid AS TEXT) FROM chunks_fts WHERE rowid IN \
             (SELECT id FROM chunks WHERE file_path = '{PATH}') ORDER BY rowid"
        ),
    )
}

#[test]
fn five_hundred_random_edits_end_equal_to_a_cold_index() {
    let ws = Workspace::new(&[(PATH, SHAPES_PY), ("pkg/__init__.py", "")]);
    let root = ws.root();
    let (mut server, _) = TestServer::start(Setup { root: Some(&root), ..Setup::default() });
    server.wait_indexed();
    let uri = file_uri(&ws.path(PATH));
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "python", "version": 1, "text": SHAPES_PY } }),
    );
    let mut editor = Editor { uri, text: SHAPES_PY.to_owned(), version: 1, pending: Vec::new(), sent_edits: 0 };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut serial = 0;
    while editor.sent_edits < 500 {
        serial += 1;
        let change = pick_change(&editor.text, &mut rng, serial);
        deliver(&mut editor, &mut server, change, &mut rng);
        if rng.below(8) == 0 {
            editor.send(&server);
            server.search("shape");
        }
    }
    editor.send(&server);
    // A search flushes every dirty buffer before it answers.
    server.search("circle_area");
    // The FTS rows follow the text: the last functions typed are found where they now are.
    let finals: Vec<(String, usize)> = added_blocks(&editor.text)
        .into_iter()
        .rev()
        .take(4)
        .map(|(start, _)| {
            let name = editor.text[start + 4..].split('(').next().expect("a name").to_owned();
            (name, editor.text[..start].matches('\n').count())
        })
        .collect();
    for (name, line) in &finals {
        let found = server.search(name);
        let item = found["results"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["qualifiedName"] == name.as_str()))
            .unwrap_or_else(|| panic!("{name} is found: {found}"));
        assert_eq!(item["location"]["range"]["start"]["line"], *line as u64, "{name}");
    }
    let live_chunks = chunk_dump(&ws);
    let live_fts = fts_ids(&ws);
    assert!(server.shutdown().success());

    let cold = Workspace::new(&[(PATH, &editor.text), ("pkg/__init__.py", "")]);
    cold.index();
    let status: String =
        cold.conn().query_row("SELECT status FROM files WHERE path = ?1", [PATH], |r| r.get(0)).expect("file row");
    assert_eq!(status, "ok", "the final text parses cleanly:\n{}", editor.text);
    assert!(live_chunks.lines().count() > 8, "the edits added chunks:\n{live_chunks}");
    assert_eq!(
        live_chunks,
        chunk_dump(&cold),
        "chunks after {} edits; final text:\n{}",
        editor.sent_edits,
        editor.text
    );
    assert_eq!(live_fts, fts_ids(&cold), "FTS rows after the edits");
    assert_eq!(live_fts.lines().count(), live_chunks.lines().count(), "one FTS row per chunk");
}

#[test]
fn a_buffer_that_does_not_parse_keeps_its_last_good_chunks() {
    let ws = Workspace::new(&[(PATH, SHAPES_PY)]);
    let root = ws.root();
    let (mut server, _) = TestServer::start(Setup { root: Some(&root), ..Setup::default() });
    server.wait_indexed();
    let uri = file_uri(&ws.path(PATH));
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "python", "version": 1, "text": SHAPES_PY } }),
    );
    let mut editor = Editor { uri, text: SHAPES_PY.to_owned(), version: 1, pending: Vec::new(), sent_edits: 0 };
    // Half-typed call in circle_area's body: `return math.pi * r * r  # πr²` loses its end.
    let at = editor.text.find("math.pi").expect("fixture");
    editor.edit(at, at + "math.pi * r * r".len(), "compute(r, (");
    editor.send(&server);
    let found = server.search("circle area");
    let names: Vec<&str> =
        found["results"].as_array().expect("results").iter().filter_map(|r| r["qualifiedName"].as_str()).collect();
    assert!(names.contains(&"pkg.shapes.circle_area") || names.contains(&"circle_area"), "kept: {found}");
    let rows = ws.chunk_rows();
    for name in ["class Shape#0", "Shape.area", "circle_area", "label"] {
        assert!(rows.contains(name), "{name} survives the broken buffer:\n{rows}");
    }
    let status: String =
        ws.conn().query_row("SELECT status FROM files WHERE path = ?1", [PATH], |r| r.get(0)).expect("file row");
    assert_eq!(status, "partial");

    // Fixed again: the stale flags go and the new body is stored.
    let at = editor.text.find("compute(r, (").expect("broken text");
    editor.edit(at, at + "compute(r, (".len(), "compute(r)");
    editor.send(&server);
    server.search("compute");
    let rows = ws.chunk_rows();
    assert!(!rows.contains("stale"), "no stale chunk once the text parses:\n{rows}");
    let body: String = ws
        .conn()
        .query_row("SELECT content FROM chunks WHERE qualified_name = 'circle_area'", [], |r| r.get(0))
        .expect("circle_area");
    assert!(body.contains("compute(r)"), "{body}");
    assert!(server.shutdown().success());
}
