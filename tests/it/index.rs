//! Indexing: change detection, exact rows after edits, skip reasons, scope, history, partial parses.

use std::os::unix::ffi::OsStrExt;

use aurora::config::InvalidUtf8;
use aurora::index::chunk::ChunkId;
use aurora::store::writer::{AccessKind, Op, Writer};
use aurora::workspace::walk::SkipReason;
use expect_test::expect;

use crate::support::Workspace;

const APP: &str = "\
import os


def load_config(path):
    return open(path).read()


class Server:
    def serve(self):
        return load_config('x')
";

#[test]
fn reindex_after_edit_rename_and_delete_gives_exact_rows() {
    let ws = Workspace::new(&[("app.py", APP), ("util/text.py", "def slugify(value):\n    return value\n")]);
    let first = ws.index();
    assert_eq!((first.indexed, first.unchanged), (2, 0));
    let before = ws.chunk_rows();
    expect![[r#"
        app.py module app#0 lines 1..=10
        app.py function load_config#0 lines 4..=5
        app.py class Server#0 lines 8..=10
        app.py method Server.serve#0 lines 9..=10
        util/text.py function slugify#0 lines 1..=2
    "#]]
    .assert_eq(&before);

    // Edit: a function added above, one renamed.
    ws.write(
        "app.py",
        &APP.replace("def load_config", "def first():\n    pass\n\n\ndef read_config")
            .replace("load_config('x')", "read_config('x')"),
    );
    let edit = ws.index();
    assert_eq!((edit.indexed, edit.unchanged), (1, 1));
    expect![[r#"
        app.py module app#0 lines 1..=14
        app.py function first#0 lines 4..=5
        app.py function read_config#0 lines 8..=9
        app.py class Server#0 lines 12..=14
        app.py method Server.serve#0 lines 13..=14
        util/text.py function slugify#0 lines 1..=2
    "#]]
    .assert_eq(&ws.chunk_rows());
    assert_eq!(edit.chunks.inserted, 2, "first and read_config are new");
    assert_eq!(edit.chunks.deleted, 1, "load_config vanished");

    // Rename a file, delete another.
    ws.rename("util/text.py", "util/strings.py");
    ws.remove("app.py");
    let moved = ws.index();
    assert_eq!(moved.deleted, 2, "app.py and util/text.py are gone");
    expect![[r#"
        util/strings.py function slugify#0 lines 1..=2
    "#]]
    .assert_eq(&ws.chunk_rows());
    expect![[r#"
        util/strings.py ok chunks=1
    "#]]
    .assert_eq(&ws.file_rows());
}

#[test]
fn nothing_changed_reads_nothing_and_same_content_is_only_touched() {
    let ws = Workspace::new(&[("a.py", "def f():\n    pass\n"), ("b.py", "def g():\n    pass\n")]);
    ws.index();
    let again = ws.index();
    assert_eq!((again.indexed, again.unchanged, again.touched), (0, 2, 0));
    // Rewrite b.py with the same bytes: new mtime, same hash.
    ws.write("b.py", "def g():\n    pass\n");
    let touched = ws.index();
    assert_eq!((touched.indexed, touched.unchanged, touched.touched), (0, 1, 1));
    assert_eq!(touched.chunks, Default::default(), "no chunk is rewritten");
}

#[test]
fn access_history_survives_edits_and_reindex() {
    let ws = Workspace::new(&[("app.py", APP)]);
    ws.index();
    let id = ChunkId::new("app.py", aurora::index::chunk::ChunkKind::Method, "Server.serve", 0);
    record_access(&ws, id, 1_700_000_000_000);
    record_access(&ws, id, 1_700_000_100_000);
    // Lines inserted above and the body changed: same id, history kept.
    ws.write("app.py", &format!("X = 1\nY = 2\n{}", APP.replace("return load_config('x')", "return load_config('y')")));
    let stats = ws.index();
    assert_eq!(stats.chunks.updated, 2, "module and serve changed content");
    let conn = ws.conn();
    let (count, log): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count FROM access_stats WHERE chunk_id = ?1), (SELECT count(*) FROM access_log WHERE chunk_id = ?1)",
            [id.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((count, log), (2, 2));
    let exists: i64 = conn.query_row("SELECT count(*) FROM chunks WHERE id = ?1", [id.0], |r| r.get(0)).unwrap();
    assert_eq!(exists, 1);
}

fn record_access(ws: &Workspace, id: ChunkId, at_ms: i64) {
    let tok = aurora::memory::tokenize::Tokenizer::new(ws.config.memory.tokenizer.stemming);
    let writer = Writer::open(&ws.store(), &aurora::index::indexer::store_versions(&tok)).unwrap();
    writer.send(Op::Access { ids: vec![id], kind: AccessKind::Cited, at_ms, max_history: 50 }).unwrap();
    writer.finish().unwrap();
}

#[test]
fn access_history_is_bounded_and_deduplicated() {
    let ws = Workspace::new(&[("a.py", "def f():\n    pass\n")]);
    ws.index();
    let id = ChunkId::new("a.py", aurora::index::chunk::ChunkKind::Function, "f", 0);
    let tok = aurora::memory::tokenize::Tokenizer::new(ws.config.memory.tokenizer.stemming);
    let writer = Writer::open(&ws.store(), &aurora::index::indexer::store_versions(&tok)).unwrap();
    for i in 0..8 {
        writer
            .send(Op::Access {
                ids: vec![id],
                kind: AccessKind::Opened,
                at_ms: 1_000_000 + i * 120_000,
                max_history: 5,
            })
            .unwrap();
    }
    // Within a minute of the last one: counts once.
    writer
        .send(Op::Access {
            ids: vec![id],
            kind: AccessKind::Opened,
            at_ms: 1_000_000 + 7 * 120_000 + 1000,
            max_history: 5,
        })
        .unwrap();
    writer.finish().unwrap();
    let conn = ws.conn();
    let (count, log): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count FROM access_stats WHERE chunk_id = ?1), (SELECT count(*) FROM access_log WHERE chunk_id = ?1)",
            [id.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((count, log), (8, 5));
}

#[test]
fn indexing_a_subfolder_never_touches_chunks_outside_it() {
    let ws = Workspace::new(&[
        ("src/a.py", "def a():\n    pass\n"),
        ("src0.py", "def sibling():\n    pass\n"),
        ("lib/b.py", "def b():\n    pass\n"),
    ]);
    ws.index();
    ws.remove("lib/b.py");
    ws.remove("src/a.py");
    ws.write("src/new.py", "def n():\n    pass\n");
    let stats = ws.index_scope("src");
    assert_eq!((stats.indexed, stats.deleted), (1, 1));
    expect![[r#"
        lib/b.py function b#0 lines 1..=2
        src/new.py function n#0 lines 1..=2
        src0.py function sibling#0 lines 1..=2
    "#]]
    .assert_eq(&ws.chunk_rows());
    // A single-file run touches only that file.
    ws.write("src0.py", "def sibling2():\n    pass\n");
    let one = ws.index_scope("src0.py");
    assert_eq!((one.indexed, one.deleted), (1, 0));
    assert!(ws.chunk_rows().contains("lib/b.py"), "lib/b.py is only removed by a run that covers it");
}

#[test]
fn every_skip_reason_is_recorded_and_counted() {
    let mut ws = Workspace::new(&[
        ("ok.py", "def fine():\n    pass\n"),
        ("big.py", &"# padding\n".repeat(220_000)),
        ("gen.py", &format!("X = [{}]\n", "1, ".repeat(200))),
        ("stub.py", "def s():\n    pass\n"),
        ("stub.pyi", "def s() -> None: ...\n"),
        ("lone.pyi", "def only() -> int: ...\n"),
        ("slow.py", &"value = compute(first, second)\n".repeat(25_000)),
    ]);
    ws.write_bytes("bin.py", b"import os\n\0\0\0binary");
    ws.write_bytes("latin1.py", b"# -*- coding: latin-1 -*-\nNAME = '\xe9t\xe9'\ndef f():\n    pass\n");
    std::os::unix::fs::symlink(ws.path("ok.py"), ws.path("link.py")).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"bad\xffname.py");
    std::fs::write(ws.root().join(name), "def x(): pass\n").unwrap();
    ws.config.indexing.invalid_utf8 = InvalidUtf8::Skip;
    // Far below what parsing slow.py takes; the validated minimum for users is 10 ms.
    ws.config.indexing.parse_timeout_ms = 1;
    let stats = ws.index();
    let reasons: Vec<(SkipReason, u64)> = stats.skipped.iter().map(|(r, n)| (*r, *n)).collect();
    assert_eq!(
        reasons,
        [
            (SkipReason::TooLarge, 1),
            (SkipReason::Binary, 1),
            (SkipReason::Generated, 1),
            (SkipReason::InvalidUtf8, 1),
            (SkipReason::Symlink, 1),
            (SkipReason::ParseTimeout, 1),
            (SkipReason::StubShadowed, 1),
            (SkipReason::PathNotUtf8, 1),
        ]
    );
    expect![[r#"
        big.py skipped too_large chunks=0
        bin.py skipped binary chunks=0
        gen.py skipped generated chunks=0
        latin1.py skipped invalid_utf8 chunks=0
        link.py skipped symlink chunks=0
        lone.pyi ok chunks=1
        ok.py ok chunks=1
        slow.py skipped parse_timeout chunks=0
        stub.py ok chunks=1
        stub.pyi skipped stub_shadowed chunks=0
    "#]]
    .assert_eq(&ws.file_rows());
    // Skipped files with the same stat stay skipped without being read again.
    let again = ws.index();
    assert_eq!(again.skipped, stats.skipped);
    assert_eq!(again.indexed, 0);
}

#[test]
fn invalid_utf8_is_indexed_lossily_by_default() {
    let ws = Workspace::new(&[]);
    ws.write_bytes("latin1.py", b"NAME = '\xe9t\xe9'\n\n\ndef after_bad_bytes():\n    pass\n");
    let stats = ws.index();
    assert_eq!((stats.indexed, stats.lossy), (1, 1));
    assert!(ws.chunk_rows().contains("latin1.py function after_bad_bytes#0 lines 4..=5"));
    let lossy: i64 = ws.conn().query_row("SELECT lossy FROM files", [], |r| r.get(0)).unwrap();
    assert_eq!(lossy, 1);
}

#[test]
fn links_loops_targets_outside_and_dangling_links_when_following() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.py"), "def secret(): pass\n").unwrap();
    let mut ws = Workspace::new(&[("pkg/real.py", "def real():\n    pass\n")]);
    std::os::unix::fs::symlink(ws.path("pkg"), ws.path("pkg/loop")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.py"), ws.path("out.py")).unwrap();
    std::os::unix::fs::symlink(ws.path("missing.py"), ws.path("dangling.py")).unwrap();
    ws.config.indexing.follow_symlinks = true;
    let stats = ws.index();
    assert_eq!(stats.skipped.get(&SkipReason::SymlinkLoop), Some(&1), "{:?}", stats.skipped);
    assert_eq!(stats.skipped.get(&SkipReason::OutsideRoot), Some(&1), "{:?}", stats.skipped);
    assert_eq!(stats.skipped.get(&SkipReason::Unreadable), Some(&1), "{:?}", stats.skipped);
    let rows = ws.chunk_rows();
    assert!(rows.contains("pkg/real.py function real"));
    assert!(!rows.contains("secret"), "nothing outside the workspace is read");
}

#[test]
fn ignore_files_and_default_exclusions() {
    let ws = Workspace::new(&[
        ("app/main.py", "def main():\n    pass\n"),
        ("app/.gitignore", "generated/\n"),
        ("app/generated/api.py", "def api():\n    pass\n"),
        ("app/generated/other.py", "def other():\n    pass\n"),
        ("app/.auroraignore", "!generated/\ngenerated/*\n!generated/api.py\n"),
        ("venv/pyvenv.cfg", "home = /usr\n"),
        ("venv/lib/mod.py", "def in_venv():\n    pass\n"),
        ("myenv/pyvenv.cfg", "home = /usr\n"),
        ("myenv/x.py", "def in_myenv():\n    pass\n"),
        ("build/out.py", "def built():\n    pass\n"),
        ("tools/build/__init__.py", "def real_build_package():\n    pass\n"),
        ("node_modules/n.py", "def in_node_modules():\n    pass\n"),
        ("pkg.egg-info/x.py", "def egg():\n    pass\n"),
        (".hidden/h.py", "def hidden():\n    pass\n"),
        ("notes.txt", "not python\n"),
    ]);
    let stats = ws.index();
    assert_eq!(stats.other_files, 1, "notes.txt (ignore files are hidden)");
    expect![[r#"
        app/generated/api.py function api#0 lines 1..=2
        app/main.py function main#0 lines 1..=2
        tools/build/__init__.py function real_build_package#0 lines 1..=2
    "#]]
    .assert_eq(&ws.chunk_rows());
}

#[test]
fn a_project_under_an_excluded_name_still_indexes() {
    let ws = Workspace::new(&[("build/env/proj/app.py", "def app():\n    pass\n")]);
    let root = ws.path("build/env/proj");
    let store = aurora::store::StorePath::for_root(&root);
    let req = aurora::index::indexer::IndexRequest {
        root: &root,
        scope: &root,
        store: &store,
        config: &ws.config,
        rebuild: false,
    };
    let stats = aurora::index::indexer::index(&req, &Default::default()).unwrap();
    assert_eq!(stats.indexed, 1);
}

#[test]
fn syntax_errors_keep_the_last_good_chunks_stale_until_a_clean_parse() {
    let good = "def a():\n    return 1\n\n\ndef b():\n    return 2\n";
    let ws = Workspace::new(&[("m.py", good)]);
    ws.index();
    ws.write("m.py", "def a(:\n    return 1\n\n\ndef b():\n    return 2\n");
    let broken = ws.index();
    assert_eq!(broken.partial, 1);
    assert!(ws.file_rows().starts_with("m.py partial syntax_error"), "{}", ws.file_rows());
    let rows = ws.chunk_rows();
    assert!(rows.contains("m.py function a#0") && rows.contains("stale"), "a is kept, stale:\n{rows}");
    assert!(rows.contains("m.py function b#0 lines 5..=6\n"), "b is clean:\n{rows}");
    ws.write("m.py", good);
    ws.index();
    expect![[r#"
        m.py function a#0 lines 1..=2
        m.py function b#0 lines 5..=6
    "#]]
    .assert_eq(&ws.chunk_rows());
    assert_eq!(ws.file_rows(), "m.py ok chunks=2\n");
}

#[test]
fn rebuild_starts_over_but_keeps_access_history() {
    let ws = Workspace::new(&[("a.py", "def f():\n    pass\n")]);
    ws.index();
    let id = ChunkId::new("a.py", aurora::index::chunk::ChunkKind::Function, "f", 0);
    record_access(&ws, id, 1_700_000_000_000);
    let root = ws.root();
    let req = aurora::index::indexer::IndexRequest {
        root: &root,
        scope: &root,
        store: &ws.store(),
        config: &ws.config,
        rebuild: true,
    };
    let stats = aurora::index::indexer::index(&req, &Default::default()).unwrap();
    assert_eq!((stats.indexed, stats.unchanged, stats.chunks.inserted), (1, 0, 1));
    let n: i64 = ws.conn().query_row("SELECT count(*) FROM access_log", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_renamed_file_carries_its_access_history() {
    let ws = Workspace::new(&[("old/name.py", APP)]);
    ws.index();
    let old = ChunkId::new("old/name.py", aurora::index::chunk::ChunkKind::Function, "load_config", 0);
    record_access(&ws, old, 1_700_000_000_000);
    ws.rename("old/name.py", "new_name.py");
    ws.index();
    let new = ChunkId::new("new_name.py", aurora::index::chunk::ChunkKind::Function, "load_config", 0);
    let n: i64 =
        ws.conn().query_row("SELECT count FROM access_stats WHERE chunk_id = ?1", [new.0], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
}
