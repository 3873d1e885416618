//! Micro-benchmarks of code memory (spec/memory.md §7), each beside the floor it is measured
//! against: a bare tree-sitter parse of the same bytes, a bare SQLite insert of the same rows.
//!
//! Run: `cargo bench --bench memory` (release). Figures go to BENCHMARKS.md.

use std::hint::black_box;
use std::path::Path;

use aurora::config::{ActivationConfig, Config};
use aurora::index::indexer::{self, IndexRequest, Progress, fts_document, store_versions};
use aurora::index::lang::python;
use aurora::memory::activation::{self, History};
use aurora::memory::retrieve::{RetrieveRequest, Retriever};
use aurora::memory::tokenize::Tokenizer;
use aurora::store::StorePath;
use aurora::store::writer::{ChunkWrite, FileRow, FileStatus, Op, Origin, Writer};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

/// Python source of about `lines` lines, shaped like real library code: classes with docstrings,
/// methods with branches, calls and comments.
fn python_source(lines: usize) -> String {
    let mut out = String::from("\"\"\"A generated module.\"\"\"\nimport os\nfrom collections import OrderedDict\n\n");
    let mut i = 0;
    while out.lines().count() < lines {
        out.push_str(&format!(
            "\n\nclass Handler{i}(BaseHandler):\n    \"\"\"Handle requests of kind {i}.\"\"\"\n\n    timeout = {i}\n\n\
             \x20   def process_request(self, request, *args, **kwargs):\n        # Look the user up first.\n\
             \x20       user = self.get_user(request.user_id)\n        if user is None or not user.is_active:\n\
             \x20           raise PermissionDenied(\"inactive user {i}\")\n        for key, value in kwargs.items():\n\
             \x20           request.meta[key] = os.path.join(str(value), 'x')\n        return self.render(request, user)\n\n\
             \x20   def render(self, request, user):\n        data = OrderedDict(name=user.name, id={i})\n\
             \x20       return [v for v in data.values() if v]\n"
        ));
        i += 1;
    }
    out
}

fn chunking(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_chunk");
    let opts = python::ChunkOptions::default();
    for lines in [100, 1000, 5000] {
        let src = python_source(lines);
        let mut parser = python::new_parser();
        group.bench_function(format!("bare_parse_{lines}_lines"), |b| b.iter(|| black_box(parser.parse(&src, None))));
        group.bench_function(format!("parse_chunk_{lines}_lines"), |b| {
            b.iter(|| black_box(python::chunk_file(&mut parser, "pkg/mod.py", &src, &opts).map(|f| f.chunks.len())))
        });
        let tok = Tokenizer::new(aurora::config::Stemming::English);
        group.bench_function(format!("parse_chunk_tokenize_{lines}_lines"), |b| {
            b.iter(|| {
                let file = python::chunk_file(&mut parser, "pkg/mod.py", &src, &opts).expect("no timeout");
                let docs: Vec<ChunkWrite> =
                    file.chunks.into_iter().map(|c| fts_document(&tok, c, "pkg mod", &opts)).collect();
                black_box(docs.len())
            })
        });
    }
    group.finish();
}

/// `n` chunk writes spread over files of 50 chunks, ready for the writer.
fn chunk_ops(n: usize, tag: &str) -> Vec<Op> {
    let tok = Tokenizer::new(aurora::config::Stemming::English);
    let opts = python::ChunkOptions::default();
    let mut parser = python::new_parser();
    let src = python_source(400);
    let mut ops = Vec::new();
    let mut made = 0;
    let mut f = 0;
    while made < n {
        let path = format!("{tag}/mod_{f}.py");
        let file = python::chunk_file(&mut parser, &path, &src, &opts).expect("no timeout");
        let chunks: Vec<ChunkWrite> =
            file.chunks.into_iter().take(n - made).map(|c| fts_document(&tok, c, "pkg mod", &opts)).collect();
        made += chunks.len();
        ops.push(Op::File { row: file_row(&path), chunks, syntax_errors: false });
        f += 1;
    }
    ops
}

fn file_row(path: &str) -> FileRow {
    FileRow {
        path: path.to_owned(),
        language: Some("python"),
        module: Some(python::module_name(path)),
        size: 1,
        mtime_ns: 1,
        content_hash: Some([7; 32]),
        origin: Origin::Disk,
        status: FileStatus::Ok,
        reason: None,
        error: None,
        lossy: false,
    }
}

fn open_writer(dir: &Path) -> Writer {
    let tok = Tokenizer::new(aurora::config::Stemming::English);
    Writer::open(&StorePath::for_root(dir), &store_versions(&tok)).expect("store opens")
}

fn store(c: &mut Criterion) {
    let mut group = c.benchmark_group("store");
    group.sample_size(20);
    // Bulk write of 1,000 chunks with their FTS rows and edges, one transaction.
    group.bench_function("bulk_write_1000_chunks", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let writer = open_writer(dir.path());
                (dir, writer, chunk_ops(1000, "bulk"))
            },
            |(dir, writer, ops)| {
                for op in ops {
                    writer.send_bulk(op).expect("writer runs");
                }
                writer.sync().expect("commits");
                (dir, writer)
            },
            BatchSize::PerIteration,
        )
    });
    // Floor: the same rows' columns with plain INSERTs into a table without FTS, one transaction.
    group.bench_function("floor_bare_sqlite_insert_1000_rows", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let conn = rusqlite::Connection::open(dir.path().join("bare.db")).expect("open");
                conn.execute_batch(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE t (id INTEGER PRIMARY KEY, \
                     path TEXT, name TEXT, qn TEXT, sig TEXT, doc TEXT, content TEXT, hash BLOB, a INT, b INT, c INT, d INT);",
                )
                .expect("schema");
                let rows: Vec<aurora::index::chunk::Chunk> = chunk_ops(1000, "bare")
                    .into_iter()
                    .flat_map(|op| match op {
                        Op::File { chunks, .. } => chunks.into_iter().map(|c| c.chunk).collect::<Vec<_>>(),
                        _ => Vec::new(),
                    })
                    .collect();
                (dir, conn, rows)
            },
            |(dir, mut conn, rows)| {
                let tx = conn.transaction().expect("tx");
                {
                    let mut stmt = tx
                        .prepare_cached("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")
                        .expect("prepare");
                    for c in &rows {
                        stmt.execute(rusqlite::params![
                            c.id.0,
                            c.file,
                            c.name,
                            c.qualified_name,
                            c.signature,
                            c.docstring,
                            c.content,
                            &c.content_hash[..],
                            c.bytes.start as i64,
                            c.bytes.end as i64,
                            c.start_line,
                            c.end_line
                        ])
                        .expect("insert");
                    }
                }
                tx.commit().expect("commit");
                (dir, conn)
            },
            BatchSize::PerIteration,
        )
    });
    // One chunk (its file row, FTS row and edges) written and committed in its own transaction.
    let dir = tempfile::tempdir().expect("temp dir");
    let writer = open_writer(dir.path());
    let mut ops = chunk_ops(1, "one").into_iter();
    let Some(Op::File { row, chunks, .. }) = ops.next() else { unreachable!("one file op") };
    let mut n = 0u64;
    group.bench_function("write_one_chunk_own_transaction", |b| {
        b.iter(|| {
            // Alternate the content so every write is a real update of row, FTS and edges.
            n += 1;
            let mut chunk = chunks[0].clone();
            chunk.chunk.content.push_str(&format!("\n# {n}"));
            chunk.chunk.content_hash = aurora::index::chunk::content_hash(&chunk.chunk.content);
            writer.send(Op::File { row: row.clone(), chunks: vec![chunk], syntax_errors: false }).expect("send");
            writer.sync().expect("commit")
        })
    });
    drop(writer);
    // Read one chunk by id through a read-only connection.
    let conn = aurora::store::open_reader(&StorePath::for_root(dir.path())).expect("reader");
    let id = chunks[0].chunk.id;
    group.bench_function("read_one_chunk_by_id", |b| {
        b.iter(|| black_box(aurora::store::read::chunk_rows(&conn, &[id]).expect("read")))
    });
    group.finish();
}

fn activation_bench(c: &mut Criterion) {
    let cfg = ActivationConfig::default();
    let now = 1_800_000_000_000i64;
    let hist = History {
        kept_ms: (0..100).map(|i| now - i * 3_600_000).collect(),
        count: 100,
        first_ms: now - 99 * 3_600_000,
    };
    c.bench_function("activation_100_accesses", |b| {
        b.iter(|| black_box(activation::activation(black_box(&hist), 0.2, 0.1, now, &cfg)))
    });
}

/// A store of about 10k chunks from real code: the machine's CPython standard library (its top
/// level and a few packages), copied into a temp dir.
fn search_store() -> Option<(tempfile::TempDir, usize)> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"])
        .output()
        .ok()?;
    let stdlib = std::path::PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    let dir = tempfile::tempdir().ok()?;
    copy_py(&stdlib, dir.path(), false)?;
    for package in ["email", "asyncio", "json", "http", "logging", "xml"] {
        copy_py(&stdlib.join(package), &dir.path().join(package), true)?;
    }
    let root = dir.path().to_path_buf();
    let config = Config::default();
    let store = StorePath::for_root(&root);
    let req = IndexRequest { root: &root, scope: &root, store: &store, config: &config, rebuild: false };
    let stats = indexer::index(&req, &Progress::default()).ok()?;
    Some((dir, stats.total_chunks as usize))
}

/// Copies the `.py` files of `from` into `to` (and of its folders, with `recursive`).
fn copy_py(from: &Path, to: &Path, recursive: bool) -> Option<()> {
    std::fs::create_dir_all(to).ok()?;
    for entry in std::fs::read_dir(from).ok()?.filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.is_dir() && recursive {
            copy_py(&path, &to.join(entry.file_name()), true)?;
        } else if path.extension().is_some_and(|e| e == "py") {
            std::fs::copy(&path, to.join(entry.file_name())).ok()?;
        }
    }
    Some(())
}

const QUERIES: &[&str] = &[
    "parse command line arguments",
    "HTTPServer",
    "read a zip file",
    "format a date as string",
    "quote_plus",
    "thread pool executor submit",
    "json decode error",
    "temporary directory cleanup",
    "deep copy of a dictionary",
    "compile regular expression",
];

fn search(c: &mut Criterion) {
    let Some((dir, chunks)) = search_store() else {
        eprintln!("python3 stdlib not found: search bench skipped");
        return;
    };
    eprintln!("search bench store: {chunks} chunks");
    let conn = aurora::store::open_reader(&StorePath::for_root(dir.path())).expect("reader");
    let mut retriever = Retriever::new(conn, &Config::default().memory);
    let mut i = 0;
    c.bench_function(&format!("search_{}k_chunks", chunks / 1000), |b| {
        b.iter(|| {
            i = (i + 1) % QUERIES.len();
            let req = RetrieveRequest { query: QUERIES[i], ..RetrieveRequest::default() };
            black_box(retriever.retrieve(&req).expect("search").hits.len())
        })
    });
}

criterion_group!(benches, chunking, store, activation_bench, search);
criterion_main!(benches);
