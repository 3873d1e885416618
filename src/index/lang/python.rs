//! Python chunker: tree-sitter-python syntax tree → chunks (spec/memory.md §1).
//!
//! One pass over the tree with a `TreeCursor` and explicit stacks (never recursion on the Rust
//! stack): every node is owned by the innermost open chunk, which collects its words, calls,
//! imports and decision points as the cursor passes; a child definition is collapsed into its
//! parent's content the moment it opens, so building all contents is linear in the file size.
//! Names are resolved to dotted targets once the whole file has been seen (an import or a
//! definition may come after its use).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::{ControlFlow, Range};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tree_sitter::{Node, ParseOptions, ParseState, Parser, Tree, TreeCursor};

use crate::index::chunk::{Chunk, ChunkId, ChunkKind, ChunkWords, ChunkedFile, Language, Ref, RefKind, content_hash};

/// A module chunk keeps at most this many lines of one statement, then a `...` line, so a
/// 15,708-line dict literal becomes 21 lines (spec §1.1).
const MODULE_STATEMENT_LINES: usize = 20;
/// A module chunk's content stops at this many lines (spec §1.1).
const MODULE_CONTENT_LINES: usize = 200;
/// Signatures longer than this many characters are cut, ending in `…` (spec §1.4).
const SIGNATURE_CHARS: usize = 500;
/// Decorator texts longer than this many characters are cut, ending in `…` (spec §1.4).
const DECORATOR_CHARS: usize = 200;

/// How a file is chunked (config `indexing.*`).
#[derive(Clone, Debug)]
pub struct ChunkOptions {
    /// Definitions nested deeper than this (0 = module scope) are not chunks of their own; they
    /// stay in their ancestor's content.
    pub max_nesting: u16,
    /// Parsing budget in milliseconds; 0 means no limit.
    pub parse_timeout_ms: u64,
    /// When false, every chunk's `docstring` is `None` (the evaluation switch of §8).
    pub index_docstrings: bool,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions { max_nesting: 32, parse_timeout_ms: 5000, index_docstrings: true }
    }
}

/// Parsing exceeded `ChunkOptions::parse_timeout_ms`; the parser has been reset.
#[derive(Debug)]
pub struct ParseTimeout;

impl fmt::Display for ParseTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("parsing exceeded the time budget")
    }
}

impl std::error::Error for ParseTimeout {}

/// Dotted module name from a relative path: "django/middleware/csrf.py" -> "django.middleware.csrf",
/// "pkg/__init__.py" -> "pkg", ".pyi"/".pyw" too. A segment that is not an identifier is kept
/// as is; a top-level `__init__.py` is "__init__".
pub fn module_name(path: &str) -> String {
    let path = path.trim_start_matches("./");
    let stem = [".py", ".pyi", ".pyw"]
        .iter()
        .find_map(|ext| {
            let cut = path.len().checked_sub(ext.len())?;
            let suffix = path.get(cut..)?;
            suffix.eq_ignore_ascii_case(ext).then(|| &path[..cut])
        })
        .unwrap_or(path);
    let mut parts: Vec<&str> = stem.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    if parts.len() > 1 && parts.last() == Some(&"__init__") {
        parts.pop();
    }
    parts.join(".")
}

/// A parser set to the Python grammar (one per thread; callers keep it).
pub fn new_parser() -> Parser {
    let mut parser = Parser::new();
    parser
        .set_language(&grammar().language)
        .expect("tree-sitter-python's ABI is supported by this tree-sitter (a test loads it)");
    parser
}

/// Parses `source` (the whole file text, possibly starting with a BOM) and returns its chunks in
/// document order, parents before children.
pub fn chunk_file(
    parser: &mut Parser,
    path: &str,
    source: &str,
    opts: &ChunkOptions,
) -> Result<ChunkedFile, ParseTimeout> {
    let tree = parse(parser, source, None, opts.parse_timeout_ms)?;
    Ok(chunk_tree(&tree, path, source, opts))
}

/// Parses `source`, reusing `old` (a tree of the previous text, already given every edit through
/// `Tree::edit`) so that only the edited regions are parsed again (spec/lsp.md §2.2).
pub fn reparse(parser: &mut Parser, source: &str, old: Option<&Tree>, timeout_ms: u64) -> Result<Tree, ParseTimeout> {
    parse(parser, source, old, timeout_ms)
}

/// Same, from a tree already parsed from `source` (the LSP path reuses incremental trees).
pub fn chunk_tree(tree: &Tree, path: &str, source: &str, opts: &ChunkOptions) -> ChunkedFile {
    Walk::new(tree, path, source, opts).run()
}

fn parse(parser: &mut Parser, source: &str, old: Option<&Tree>, timeout_ms: u64) -> Result<Tree, ParseTimeout> {
    let bytes = source.as_bytes();
    let mut read = |offset: usize, _| bytes.get(offset..).unwrap_or_default();
    let tree = if timeout_ms == 0 {
        parser.parse_with_options(&mut read, old, None)
    } else {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let mut progress = |_: &ParseState| {
            if Instant::now() >= deadline { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        };
        let options = ParseOptions::new().progress_callback(&mut progress);
        parser.parse_with_options(&mut read, old, Some(options))
    };
    tree.ok_or_else(|| {
        // A cancelled parse would otherwise resume on the parser's next call.
        parser.reset();
        ParseTimeout
    })
}

/// FxHash (rustc's hasher): the walk's maps are keyed by short names from one trusted file, so
/// SipHash's DoS resistance buys nothing and costs a measurable share of the walk.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
type FxSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

/// What the walk does with a node kind; looked up by kind id, one table read per node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Other,
    Identifier,
    Comment,
    StringContent,
    ExpressionStatement,
    Call,
    Branch,
    FunctionDef,
    ClassDef,
    DecoratedDef,
    Import,
    ImportFrom,
    FutureImport,
    String,
    DottedChain,
    /// An expression container that is often free of calls, strings and decision points.
    Span,
}

/// Kind and field ids of the Python grammar, resolved once per process.
struct Grammar {
    language: tree_sitter::Language,
    roles: Vec<Role>,
    k_identifier: u16,
    k_attribute: u16,
    k_subscript: u16,
    k_class_definition: u16,
    k_expression_statement: u16,
    k_string: u16,
    k_concatenated_string: u16,
    k_string_start: u16,
    k_string_end: u16,
    k_decorator: u16,
    k_comment: u16,
    k_dotted_name: u16,
    k_aliased_import: u16,
    k_relative_import: u16,
    k_import_prefix: u16,
    k_wildcard_import: u16,
    k_keyword_argument: u16,
    k_list_splat: u16,
    k_dictionary_splat: u16,
    k_colon: u16,
    f_name: u16,
    f_parameters: u16,
    f_body: u16,
    f_definition: u16,
    f_object: u16,
    f_attribute: u16,
    f_superclasses: u16,
    f_module_name: u16,
    f_alias: u16,
    f_value: u16,
}

fn grammar() -> &'static Grammar {
    static GRAMMAR: OnceLock<Grammar> = OnceLock::new();
    GRAMMAR.get_or_init(Grammar::new)
}

impl Grammar {
    fn new() -> Grammar {
        let language: tree_sitter::Language = tree_sitter_python::LANGUAGE.into();
        let named = |kind: &str| language.id_for_node_kind(kind, true);
        let field = |name: &str| language.field_id_for_name(name).map_or(0, |id| id.get());
        let mut roles = vec![Role::Other; language.node_kind_count()];
        let mut assign = |kind: &str, role: Role| {
            if let Some(slot) = roles.get_mut(usize::from(named(kind))) {
                *slot = role;
            }
        };
        assign("identifier", Role::Identifier);
        assign("comment", Role::Comment);
        assign("string_content", Role::StringContent);
        assign("expression_statement", Role::ExpressionStatement);
        assign("call", Role::Call);
        assign("function_definition", Role::FunctionDef);
        assign("class_definition", Role::ClassDef);
        assign("decorated_definition", Role::DecoratedDef);
        assign("import_statement", Role::Import);
        assign("import_from_statement", Role::ImportFrom);
        assign("future_import_statement", Role::FutureImport);
        assign("string", Role::String);
        assign("attribute", Role::DottedChain);
        assign("dotted_name", Role::DottedChain);
        // Expressions and simple statements a lexer reads as well as the tree (`scan_span`).
        for kind in [
            "return_statement",
            "assignment",
            "augmented_assignment",
            "raise_statement",
            "assert_statement",
            "delete_statement",
            "argument_list",
            "parameters",
            "lambda_parameters",
            "default_parameter",
            "typed_parameter",
            "typed_default_parameter",
            "type",
            "boolean_operator",
            "comparison_operator",
            "not_operator",
            "binary_operator",
            "unary_operator",
            "conditional_expression",
            "subscript",
            "keyword_argument",
            "list",
            "tuple",
            "set",
            "dictionary",
            "pair",
            "expression_list",
            "pattern_list",
            "list_comprehension",
            "set_comprehension",
            "dictionary_comprehension",
            "generator_expression",
            "parenthesized_expression",
            "await",
            "lambda",
        ] {
            assign(kind, Role::Span);
        }
        // Decision points of spec §1.8; `with`, `try` and `match` are not among them.
        for kind in [
            "if_statement",
            "elif_clause",
            "for_statement",
            "while_statement",
            "except_clause",
            "case_clause",
            "boolean_operator",
            "conditional_expression",
            "for_in_clause",
            "if_clause",
        ] {
            assign(kind, Role::Branch);
        }
        Grammar {
            roles,
            k_identifier: named("identifier"),
            k_attribute: named("attribute"),
            k_subscript: named("subscript"),
            k_class_definition: named("class_definition"),
            k_expression_statement: named("expression_statement"),
            k_string: named("string"),
            k_concatenated_string: named("concatenated_string"),
            k_string_start: named("string_start"),
            k_string_end: named("string_end"),
            k_decorator: named("decorator"),
            k_comment: named("comment"),
            k_dotted_name: named("dotted_name"),
            k_aliased_import: named("aliased_import"),
            k_relative_import: named("relative_import"),
            k_import_prefix: named("import_prefix"),
            k_wildcard_import: named("wildcard_import"),
            k_keyword_argument: named("keyword_argument"),
            k_list_splat: named("list_splat"),
            k_dictionary_splat: named("dictionary_splat"),
            k_colon: language.id_for_node_kind(":", false),
            f_name: field("name"),
            f_parameters: field("parameters"),
            f_body: field("body"),
            f_definition: field("definition"),
            f_object: field("object"),
            f_attribute: field("attribute"),
            f_superclasses: field("superclasses"),
            f_module_name: field("module_name"),
            f_alias: field("alias"),
            f_value: field("value"),
            language,
        }
    }

    fn role(&self, kind: u16) -> Role {
        self.roles.get(usize::from(kind)).copied().unwrap_or(Role::Other)
    }
}

/// What to do when the cursor leaves the node an entry was pushed for.
#[derive(Clone, Copy)]
enum Leave {
    CloseChunk,
    EndError,
    EndSuppress,
}

/// A reference before name resolution (which needs the whole file).
enum RawRef<'a> {
    Call(Cow<'a, str>),
    Inherit(Cow<'a, str>),
    /// Imports are resolved when seen: they depend only on the module name.
    Import(String),
}

/// A chunk being built; index 0 is always the module.
struct Build<'a> {
    kind: ChunkKind,
    name: &'a str,
    qualified_name: String,
    ordinal: u32,
    parent: Option<usize>,
    depth: u16,
    id: ChunkId,
    bytes: Range<usize>,
    start_line: u32,
    end_line: u32,
    def_line: u32,
    name_byte: usize,
    /// The `function_definition`/`class_definition` node (inside a `decorated_definition`).
    def_node: usize,
    signature: Option<String>,
    docstring: Option<String>,
    /// The docstring's statement, left out of the words.
    docstring_node: Option<usize>,
    decorators: Vec<String>,
    /// Content built so far when a child definition was collapsed; `content_from` is where the
    /// source copy resumes.
    content: String,
    content_from: usize,
    has_children: bool,
    body_words: String,
    text_words: String,
    own_branches: u32,
    total_branches: u32,
    raw_refs: Vec<RawRef<'a>>,
    /// Names bound by this chunk's own import statements → dotted targets (the module's are in
    /// `Walk::file_bindings`).
    bindings: Vec<(&'a str, String)>,
    parse_partial: bool,
}

struct Walk<'a> {
    g: &'static Grammar,
    tree: &'a Tree,
    src: &'a str,
    path: &'a str,
    opts: &'a ChunkOptions,
    module: String,
    /// Package of this module, the base of relative imports.
    package: Vec<&'a str>,
    eol: &'static str,
    tree_has_error: bool,
    builds: Vec<Build<'a>>,
    /// Open chunks (indices into `builds`); `stack[0]` is the module and is never popped.
    stack: Vec<usize>,
    /// Pending leave actions with the cursor depth of their node.
    leave: Vec<(u32, Leave)>,
    error_depth: u32,
    suppress_depth: u32,
    syntax_errors: u32,
    first_error_line: Option<u32>,
    /// Module-scope statements that are not chunks, in order (the module chunk's content).
    top_statements: Vec<Range<usize>>,
    /// Whole-line ranges of module-scope chunks nested in a compound module statement, cut
    /// from that statement in the module content.
    module_cuts: Vec<Range<usize>>,
    /// Names of module-scope chunks (rule 3 of §1.7).
    module_defs: FxSet<&'a str>,
    /// Names bound by module-scope imports → dotted targets.
    file_bindings: FxMap<&'a str, String>,
    /// Chunks seen so far per (parent, kind, name), for ordinals.
    child_counts: FxMap<(usize, ChunkKind, &'a str), u32>,
    /// Word window of the current module statement, so the module chunk's words match its
    /// (cut) content: rows at or beyond `word_rows` of the statement's kept lines are skipped.
    stmt_start_row: usize,
    stmt_rows: usize,
    stmt_cut_rows: usize,
    module_lines: usize,
    word_rows: usize,
    word_window_active: bool,
    scratch: TreeCursor<'a>,
    /// Reused buffers of `plain_span`.
    span: SpanScan<'a>,
}

impl<'a> Walk<'a> {
    fn new(tree: &'a Tree, path: &'a str, src: &'a str, opts: &'a ChunkOptions) -> Walk<'a> {
        let module = module_name(path);
        // The package of `pkg/mod.py` and of `pkg/__init__.py` alike is the directory, `pkg`.
        let mut package: Vec<&'a str> =
            path.trim_start_matches("./").split('/').filter(|s| !s.is_empty() && *s != ".").collect();
        package.pop();
        let eol = match src.find('\n') {
            Some(i) if i > 0 && src.as_bytes()[i - 1] == b'\r' => "\r\n",
            _ => "\n",
        };
        Walk {
            g: grammar(),
            tree,
            src,
            path,
            opts,
            module,
            package,
            eol,
            tree_has_error: false,
            builds: Vec::new(),
            stack: Vec::new(),
            leave: Vec::new(),
            error_depth: 0,
            suppress_depth: 0,
            syntax_errors: 0,
            first_error_line: None,
            top_statements: Vec::new(),
            module_cuts: Vec::new(),
            module_defs: FxSet::default(),
            file_bindings: FxMap::default(),
            child_counts: FxMap::default(),
            stmt_start_row: 0,
            stmt_rows: 0,
            stmt_cut_rows: 0,
            module_lines: 0,
            word_rows: usize::MAX,
            word_window_active: false,
            scratch: tree.walk(),
            span: SpanScan::default(),
        }
    }

    fn text(&self, node: Node) -> &'a str {
        self.src.get(node.byte_range()).unwrap_or_default()
    }

    fn run(mut self) -> ChunkedFile {
        let root = self.tree.root_node();
        self.tree_has_error = root.has_error();
        self.open_module(root);
        let mut cursor = root.walk();
        let mut depth: u32 = 0;
        'walk: loop {
            let node = cursor.node();
            if self.enter(node, depth) && cursor.goto_first_child() {
                depth += 1;
                continue;
            }
            loop {
                while let Some(&(at, action)) = self.leave.last() {
                    if at != depth {
                        break;
                    }
                    self.leave.pop();
                    self.leave_node(action);
                }
                if cursor.goto_next_sibling() {
                    continue 'walk;
                }
                if !cursor.goto_parent() {
                    break 'walk;
                }
                depth -= 1;
            }
        }
        self.finish()
    }

    /// Visits `node` (at cursor depth `depth`) on the way down; false = skip its subtree.
    fn enter(&mut self, node: Node<'a>, depth: u32) -> bool {
        if self.tree_has_error {
            if node.is_error() {
                if self.error_depth == 0 {
                    self.note_error(node);
                }
                self.error_depth += 1;
                self.leave.push((depth, Leave::EndError));
                if depth == 1 {
                    self.top_statement(node);
                }
                return true;
            }
            if self.error_depth == 0 && node.is_missing() {
                self.note_error(node);
            }
        }
        let role = self.g.role(node.kind_id());
        match role {
            Role::DecoratedDef => {
                let opened = match node.child_by_field_id(self.g.f_definition) {
                    Some(def) => self.open(node, def, depth),
                    None => false,
                };
                if !opened && depth == 1 {
                    self.top_statement(node);
                }
                return true;
            }
            Role::FunctionDef | Role::ClassDef => {
                if self.builds[self.top()].def_node == node.id() {
                    return true; // opened through its decorated_definition
                }
                if !self.open(node, node, depth) && depth == 1 {
                    self.top_statement(node);
                }
                return true;
            }
            _ => {}
        }
        if depth == 1 {
            if role == Role::Comment {
                return false; // module-scope comments are no statement (spec §1.1)
            }
            self.top_statement(node);
        }
        match role {
            Role::Identifier => {
                let word = self.text(node);
                self.push_word(node, word, false);
            }
            Role::Comment => {
                let word = self.text(node).trim_start_matches('#').trim();
                self.push_word(node, word, true);
            }
            Role::StringContent => {
                let word = self.text(node);
                self.push_word(node, word, true);
                return false;
            }
            Role::ExpressionStatement => {
                if self.builds[self.top()].docstring_node == Some(node.id()) {
                    return false;
                }
                return !self.plain_span(node);
            }
            Role::Span => return !self.plain_span(node),
            Role::Call => {
                if self.plain_span(node) {
                    return false;
                }
                self.call(node);
            }
            Role::Branch => {
                let top = self.top();
                self.builds[top].own_branches += 1;
            }
            Role::Import | Role::ImportFrom | Role::FutureImport => self.import(node, role),
            // The two most frequent subtrees are read from the source instead of walked: the
            // cursor's moves are most of the walk's cost (budget: parse + chunk within 1.3× a bare parse).
            Role::String => return !self.plain_string(node),
            Role::DottedChain => return !self.dotted_chain(node),
            _ => {}
        }
        true
    }

    /// Takes the words of a string without interpolations straight from the source; false
    /// (walk it) for an f- or t-string or a string with a syntax error inside.
    fn plain_string(&mut self, node: Node<'a>) -> bool {
        if self.tree_has_error && node.has_error() {
            return false;
        }
        let text = self.text(node);
        let prefix = text.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        if text[..prefix].bytes().any(|b| matches!(b.to_ascii_lowercase(), b'f' | b't')) {
            return false;
        }
        let body = &text[prefix..];
        let quote = match body.as_bytes() {
            [q, r, s, ..] if q == r && r == s => 3,
            _ => 1,
        };
        let inner = body.get(quote..body.len().saturating_sub(quote)).unwrap_or_default();
        self.push_word(node, inner, true);
        true
    }

    /// Reads an expression or simple statement with a lexer instead of walking it: its words,
    /// calls and decision points (`scan_span`). False (walk it) for what the lexer leaves to
    /// the tree: f-strings, syntax errors, very long spans, module lines past the word window.
    fn plain_span(&mut self, node: Node<'a>) -> bool {
        // Long spans are walked: the cap bounds the rescans of nested spans that fail.
        const MAX_SPAN_BYTES: usize = 2048;
        #[cfg(test)]
        if tests::WALK_ONLY.with(std::cell::Cell::get) {
            return false;
        }
        let text = self.text(node);
        if text.len() > MAX_SPAN_BYTES
            || (self.top() == 0 && self.word_window_active)
            || (self.tree_has_error && node.has_error())
        {
            return false;
        }
        let mut scan = std::mem::take(&mut self.span);
        scan.clear();
        let read = scan_span(text, &mut scan);
        if read {
            for &(word, is_text) in &scan.words {
                self.push_word(node, word, is_text);
            }
            let top = self.top();
            let build = &mut self.builds[top];
            build.own_branches += scan.branches;
            build.raw_refs.extend(scan.calls.drain(..).map(RawRef::Call));
        }
        self.span = scan;
        read
    }

    /// Takes the words of `a.b.c` (identifiers and dots only) straight from the source; false
    /// (walk it) for any other shape.
    fn dotted_chain(&mut self, node: Node<'a>) -> bool {
        if self.tree_has_error && node.has_error() {
            return false;
        }
        let text = self.text(node);
        if !is_plain_chain(text) {
            return false;
        }
        for word in text.split('.') {
            self.push_word(node, word, false);
        }
        true
    }

    fn leave_node(&mut self, action: Leave) {
        match action {
            Leave::CloseChunk => self.close(),
            Leave::EndError => self.error_depth -= 1,
            Leave::EndSuppress => self.suppress_depth -= 1,
        }
    }

    fn top(&self) -> usize {
        self.stack.last().copied().unwrap_or(0)
    }

    fn note_error(&mut self, node: Node) {
        self.syntax_errors += 1;
        if self.first_error_line.is_none() {
            self.first_error_line = Some(row(node.start_position().row));
        }
    }

    /// A module-scope statement that is not a chunk: part of the module content.
    fn top_statement(&mut self, node: Node<'a>) {
        // Account for the previous statement's kept lines (its cuts are all known now).
        if !self.top_statements.is_empty() {
            let kept = self.stmt_rows.saturating_sub(self.stmt_cut_rows);
            self.module_lines += kept.min(MODULE_STATEMENT_LINES + 1);
        }
        self.top_statements.push(node.byte_range());
        let start = node.start_position().row;
        self.stmt_start_row = start;
        self.stmt_rows = node.end_position().row - start + 1;
        self.stmt_cut_rows = 0;
        self.word_rows = MODULE_STATEMENT_LINES.min(MODULE_CONTENT_LINES.saturating_sub(self.module_lines));
        self.word_window_active = self.stmt_rows > self.word_rows;
    }

    fn push_word(&mut self, node: Node, word: &str, text: bool) {
        let top = self.top();
        // Module words come from the statement lines its content keeps (spec §1.1 cuts).
        if top == 0 && self.word_window_active {
            let offset = node.start_position().row.saturating_sub(self.stmt_start_row);
            if offset.saturating_sub(self.stmt_cut_rows) >= self.word_rows {
                return;
            }
        }
        if word.is_empty() {
            return;
        }
        let build = &mut self.builds[top];
        let words = if text { &mut build.text_words } else { &mut build.body_words };
        if !words.is_empty() {
            words.push(' ');
        }
        words.push_str(word);
    }

    fn open_module(&mut self, root: Node<'a>) {
        let src = self.src;
        let bom = if src.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 };
        let (docstring_node, docstring) = match self.docstring_statement(root) {
            Some(stmt) => (Some(stmt.id()), self.docstring(stmt)),
            None => (None, None),
        };
        let newlines = memchr_count(src.as_bytes(), b'\n');
        let end_line = if src.ends_with('\n') { newlines.saturating_sub(1) } else { newlines };
        let build = Build {
            kind: ChunkKind::Module,
            name: "",
            qualified_name: self.module.clone(),
            ordinal: 0,
            parent: None,
            depth: 0,
            id: ChunkId::new(self.path, ChunkKind::Module, &self.module, 0),
            bytes: bom..src.len(),
            start_line: 0,
            end_line: row(end_line),
            def_line: 0,
            name_byte: bom,
            def_node: root.id(),
            signature: None,
            docstring,
            docstring_node,
            decorators: Vec::new(),
            content: String::new(),
            content_from: bom,
            has_children: false,
            body_words: String::new(),
            text_words: String::new(),
            own_branches: 0,
            total_branches: 0,
            raw_refs: Vec::new(),
            bindings: Vec::new(),
            parse_partial: self.tree_has_error,
        };
        self.builds.push(build);
        self.stack.push(0);
    }

    /// Opens a chunk for `def` (wrapped in `outer` when decorated) if it is one; returns whether
    /// it did (spec §1.3, §1.9).
    fn open(&mut self, outer: Node<'a>, def: Node<'a>, depth: u32) -> bool {
        if self.error_depth > 0 || self.suppress_depth > 0 {
            return false;
        }
        let g = self.g;
        let is_class = def.kind_id() == g.k_class_definition;
        let name_node = def.child_by_field_id(g.f_name).filter(|n| !n.is_missing());
        let headed =
            name_node.is_some() && (is_class || def.child_by_field_id(g.f_parameters).is_some_and(|n| !n.is_missing()));
        let Some(name_node) = name_node.filter(|_| headed) else {
            // A definition without a name has no scope to offer its own nested definitions.
            self.suppress_depth += 1;
            self.leave.push((depth, Leave::EndSuppress));
            return false;
        };
        let chunk_depth = self.stack.len() - 1;
        if chunk_depth > usize::from(self.opts.max_nesting) {
            return false;
        }
        let parent = self.top();
        let name = self.text(name_node);
        let kind = if is_class {
            ChunkKind::Class
        } else if self.builds[parent].kind == ChunkKind::Class {
            ChunkKind::Method
        } else {
            ChunkKind::Function
        };
        let qualified_name =
            if parent == 0 { name.to_owned() } else { format!("{}.{}", self.builds[parent].qualified_name, name) };
        let ordinal = {
            let count = self.child_counts.entry((parent, kind, name)).or_insert(0);
            *count += 1;
            *count - 1
        };
        let body = def.child_by_field_id(g.f_body);
        let header_end = self.header_end(def, body);
        let signature = collapse(self.src.get(def.start_byte()..header_end).unwrap_or_default(), SIGNATURE_CHARS);
        let decorators = if outer.id() == def.id() { Vec::new() } else { self.decorators(outer) };
        let (docstring_node, docstring) = match body.and_then(|b| self.docstring_statement(b)) {
            Some(stmt) => (Some(stmt.id()), self.docstring(stmt)),
            None => (None, None),
        };
        let start = outer.start_position();
        let end = outer.end_position();
        let end_row = if end.column == 0 && end.row > start.row { end.row - 1 } else { end.row };

        // Collapse the child into its parent: decorators + header as written + an indented `...`.
        if parent == 0 {
            self.module_defs.insert(name);
            if depth > 1 {
                self.cut_from_module(outer, start.row, end_row);
            }
        } else {
            let indent = match body {
                Some(b) if b.start_position().row > def.start_position().row => {
                    Cow::Borrowed(self.indent_before(b.start_byte()))
                }
                _ => Cow::Owned(format!("{}    ", self.indent_before(outer.start_byte()))),
            };
            let src = self.src;
            let eol = self.eol;
            let p = &mut self.builds[parent];
            p.content.push_str(src.get(p.content_from..outer.start_byte()).unwrap_or_default());
            p.content.push_str(src.get(outer.start_byte()..header_end).unwrap_or_default().trim_end());
            p.content.push_str(eol);
            p.content.push_str(&indent);
            p.content.push_str("...");
            p.content_from = outer.end_byte();
            p.has_children = true;
            if !p.body_words.is_empty() {
                p.body_words.push(' ');
            }
            p.body_words.push_str(name);
        }

        let mut build = Build {
            kind,
            name,
            id: ChunkId::new(self.path, kind, &qualified_name, ordinal),
            qualified_name,
            ordinal,
            parent: Some(parent),
            depth: u16::try_from(chunk_depth).unwrap_or(u16::MAX),
            bytes: outer.byte_range(),
            start_line: row(start.row),
            end_line: row(end_row),
            def_line: row(def.start_position().row),
            name_byte: name_node.start_byte(),
            def_node: def.id(),
            signature: Some(signature),
            docstring,
            docstring_node,
            decorators,
            content: String::new(),
            content_from: outer.start_byte(),
            has_children: false,
            body_words: String::new(),
            text_words: String::new(),
            own_branches: 0,
            total_branches: 0,
            raw_refs: Vec::new(),
            bindings: Vec::new(),
            parse_partial: outer.has_error(),
        };
        if is_class && let Some(bases) = def.child_by_field_id(g.f_superclasses) {
            self.bases(bases, &mut build.raw_refs);
        }
        self.builds.push(build);
        self.stack.push(self.builds.len() - 1);
        self.leave.push((depth, Leave::CloseChunk));
        true
    }

    fn close(&mut self) {
        let Some(index) = self.stack.pop() else { return };
        let src = self.src;
        let b = &mut self.builds[index];
        if b.has_children {
            b.content.push_str(src.get(b.content_from..b.bytes.end).unwrap_or_default());
        } else {
            b.content = src.get(b.bytes.clone()).unwrap_or_default().to_owned();
        }
        b.total_branches += b.own_branches;
        let (total, parent) = (b.total_branches, b.parent);
        if let Some(p) = parent.filter(|&p| p != 0) {
            self.builds[p].total_branches += total;
        }
    }

    /// End of the header: the `:` before the body (a MISSING one is zero-width).
    fn header_end(&mut self, def: Node<'a>, body: Option<Node<'a>>) -> usize {
        let body_id = body.map(|b| b.id());
        let mut end = None;
        self.scratch.reset(def);
        if self.scratch.goto_first_child() {
            loop {
                let child = self.scratch.node();
                if Some(child.id()) == body_id {
                    break;
                }
                if child.kind_id() == self.g.k_colon {
                    end = Some(child.end_byte());
                }
                if !self.scratch.goto_next_sibling() {
                    break;
                }
            }
        }
        end.or(body.map(|b| b.start_byte())).unwrap_or(def.end_byte())
    }

    fn decorators(&mut self, outer: Node<'a>) -> Vec<String> {
        let mut decorators = Vec::new();
        self.scratch.reset(outer);
        if self.scratch.goto_first_child() {
            loop {
                let child = self.scratch.node();
                if child.kind_id() == self.g.k_decorator {
                    let text = self.text(child);
                    decorators.push(collapse(text.strip_prefix('@').unwrap_or(text), DECORATOR_CHARS));
                }
                if !self.scratch.goto_next_sibling() {
                    break;
                }
            }
        }
        decorators
    }

    /// The first statement of `block` (comments skipped) when it is a docstring (PEP 257).
    fn docstring_statement(&mut self, block: Node<'a>) -> Option<Node<'a>> {
        let g = self.g;
        self.scratch.reset(block);
        if !self.scratch.goto_first_child() {
            return None;
        }
        let mut first = self.scratch.node();
        while first.kind_id() == g.k_comment {
            if !self.scratch.goto_next_sibling() {
                return None;
            }
            first = self.scratch.node();
        }
        if first.kind_id() != g.k_expression_statement {
            return None;
        }
        let mut value = None;
        self.scratch.reset(first);
        if self.scratch.goto_first_child() {
            loop {
                let child = self.scratch.node();
                if child.is_named() && child.kind_id() != g.k_comment {
                    if value.is_some() {
                        return None;
                    }
                    value = Some(child);
                }
                if !self.scratch.goto_next_sibling() {
                    break;
                }
            }
        }
        let value = value?;
        if value.kind_id() != g.k_string && value.kind_id() != g.k_concatenated_string {
            return None;
        }
        let mut parts = Vec::new();
        self.string_parts(value, &mut parts);
        parts.iter().all(|p| p.is_some()).then_some(first)
    }

    /// The raw contents of a (concatenated) string's parts; `None` for an f-, t- or b-string part.
    fn string_parts(&mut self, value: Node<'a>, parts: &mut Vec<Option<&'a str>>) {
        let g = self.g;
        let mut strings = Vec::new();
        if value.kind_id() == g.k_string {
            strings.push(value);
        } else {
            self.scratch.reset(value);
            if self.scratch.goto_first_child() {
                loop {
                    let child = self.scratch.node();
                    if child.kind_id() == g.k_string {
                        strings.push(child);
                    }
                    if !self.scratch.goto_next_sibling() {
                        break;
                    }
                }
            }
        }
        for string in strings {
            let (mut from, mut to) = (string.start_byte(), string.end_byte());
            let mut plain = true;
            self.scratch.reset(string);
            if self.scratch.goto_first_child() {
                loop {
                    let child = self.scratch.node();
                    if child.kind_id() == g.k_string_start {
                        let opener = self.text(child);
                        plain = !opener
                            .bytes()
                            .take_while(|b| b.is_ascii_alphabetic())
                            .any(|b| matches!(b.to_ascii_lowercase(), b'f' | b'b' | b't'));
                        from = child.end_byte();
                    } else if child.kind_id() == g.k_string_end {
                        to = child.start_byte();
                    }
                    if !self.scratch.goto_next_sibling() {
                        break;
                    }
                }
            }
            parts.push(plain.then(|| self.src.get(from..to.max(from)).unwrap_or_default()));
        }
    }

    /// The cleaned docstring of a docstring statement (spec §1.4), unless docstrings are off.
    fn docstring(&mut self, stmt: Node<'a>) -> Option<String> {
        if !self.opts.index_docstrings {
            return None;
        }
        let value = stmt.named_child(0)?;
        let value = if value.kind_id() == self.g.k_comment { stmt.named_child(1)? } else { value };
        let mut parts = Vec::new();
        self.string_parts(value, &mut parts);
        let mut raw = String::new();
        for part in parts {
            raw.push_str(part?);
        }
        cleandoc(&raw.replace("\r\n", "\n"))
    }

    /// Leading spaces and tabs of the line, just before `at`.
    fn indent_before(&self, at: usize) -> &'a str {
        let bytes = self.src.as_bytes();
        let mut from = at.min(bytes.len());
        while from > 0 && matches!(bytes[from - 1], b' ' | b'\t') {
            from -= 1;
        }
        self.src.get(from..at).unwrap_or_default()
    }

    /// Records the whole lines of a module-scope chunk nested in a compound module statement,
    /// which the module content leaves out (spec §1.1).
    fn cut_from_module(&mut self, outer: Node<'a>, start_row: usize, end_row: usize) {
        let bytes = self.src.as_bytes();
        let mut from = outer.start_byte();
        let line_start = from - self.indent_before(from).len();
        if line_start == 0 || bytes.get(line_start - 1) == Some(&b'\n') {
            from = line_start;
        }
        let mut to = outer.end_byte();
        while to < bytes.len() && bytes[to] != b'\n' {
            to += 1;
        }
        to = (to + 1).min(bytes.len());
        self.module_cuts.push(from..to);
        self.stmt_cut_rows += end_row - start_row + 1;
    }

    fn call(&mut self, call: Node<'a>) {
        // The callee is a call's first child (field `function`).
        let Some(callee) = call.child(0) else { return };
        if let Some(name) = self.reference(callee) {
            let top = self.top();
            self.builds[top].raw_refs.push(RawRef::Call(name));
        }
    }

    /// A callee or base as a dotted name (identifier or attribute chain of identifiers), else its
    /// final attribute name, else nothing (spec §1.7).
    fn reference(&self, node: Node<'a>) -> Option<Cow<'a, str>> {
        let g = self.g;
        let is_splat = |n: Node| n.kind_id() == g.k_list_splat || n.kind_id() == g.k_dictionary_splat;
        let mut node = node;
        while is_splat(node) {
            // The grammar reads `[*range(5)]` as a call of `*range`: the callee is `range`.
            node = node.named_child(0)?;
        }
        let text = self.text(node);
        let kind = node.kind_id();
        if (kind == g.k_identifier || kind == g.k_attribute) && is_plain_chain(text) {
            return Some(Cow::Borrowed(text));
        }
        // Whitespace or comments inside the chain, or a base that is no name.
        let mut segments = Vec::new();
        let mut at = node;
        while at.kind_id() == g.k_attribute {
            segments.push(self.text(at.child_by_field_id(g.f_attribute)?));
            at = at.child_by_field_id(g.f_object)?;
        }
        while is_splat(at) {
            at = at.named_child(0)?; // `[*ts.order()]` is read as `(*ts).order()`
        }
        if at.kind_id() == g.k_identifier && !matches!(self.text(at), "True" | "False" | "None") {
            segments.push(self.text(at));
            segments.reverse();
            return Some(Cow::Owned(segments.join(".")));
        }
        segments.first().map(|last| Cow::Borrowed(*last))
    }

    fn bases(&mut self, bases: Node<'a>, refs: &mut Vec<RawRef<'a>>) {
        let g = self.g;
        let mut found = Vec::new();
        self.scratch.reset(bases);
        if self.scratch.goto_first_child() {
            loop {
                let child = self.scratch.node();
                let kind = child.kind_id();
                let positional = child.is_named()
                    && ![g.k_keyword_argument, g.k_list_splat, g.k_dictionary_splat, g.k_comment].contains(&kind);
                if positional {
                    found.push(child);
                }
                if !self.scratch.goto_next_sibling() {
                    break;
                }
            }
        }
        for base in found {
            // `Generic[T]` inherits from `Generic`.
            let base = if base.kind_id() == g.k_subscript {
                match base.child_by_field_id(g.f_value) {
                    Some(value) => value,
                    None => continue,
                }
            } else {
                base
            };
            if let Some(name) = self.reference(base) {
                refs.push(RawRef::Inherit(name));
            }
        }
    }

    /// One `imports` ref per imported name, and the names the statement binds (spec §1.7).
    fn import(&mut self, node: Node<'a>, role: Role) {
        let g = self.g;
        let base: Option<String> = match role {
            Role::Import => None,
            Role::FutureImport => Some("__future__".to_owned()),
            _ => {
                let Some(module) = node.child_by_field_id(g.f_module_name) else { return };
                Some(if module.kind_id() == g.k_relative_import {
                    self.relative_module(module)
                } else {
                    dotted(self.text(module)).into_owned()
                })
            }
        };
        let mut names = Vec::new();
        let mut wildcard = false;
        self.scratch.reset(node);
        if self.scratch.goto_first_child() {
            loop {
                let child = self.scratch.node();
                if self.scratch.field_id().map(|f| f.get()) == Some(g.f_name) {
                    names.push(child);
                } else if child.kind_id() == g.k_wildcard_import {
                    wildcard = true;
                }
                if !self.scratch.goto_next_sibling() {
                    break;
                }
            }
        }
        let top = self.top();
        let join = |base: &str, name: &str| {
            if base.is_empty() { name.to_owned() } else { format!("{base}.{name}") }
        };
        if wildcard && let Some(base) = &base {
            self.builds[top].raw_refs.push(RawRef::Import(join(base, "*")));
        }
        for name in names {
            let (target_node, alias) = if name.kind_id() == g.k_aliased_import {
                let Some(target) = name.child_by_field_id(g.f_name) else { continue };
                (target, name.child_by_field_id(g.f_alias).map(|a| self.text(a)))
            } else if name.kind_id() == g.k_dotted_name {
                (name, None)
            } else {
                continue;
            };
            let imported = dotted(self.text(target_node));
            let target = match &base {
                Some(base) => join(base, &imported),
                None => imported.clone().into_owned(),
            };
            // `import a.b` binds `a`; `from m import a` binds `a`; an alias binds the alias.
            let first = self.text(target_node).split('.').next().unwrap_or_default().trim();
            let (bound, bound_to) = match (alias, &base) {
                (Some(alias), _) => (alias, target.clone()),
                (None, Some(_)) => (first, target.clone()),
                (None, None) => (first, first.to_owned()),
            };
            self.builds[top].raw_refs.push(RawRef::Import(target));
            if bound.is_empty() {
                continue;
            }
            if top == 0 {
                self.file_bindings.insert(bound, bound_to);
            } else {
                self.builds[top].bindings.push((bound, bound_to));
            }
        }
    }

    /// `.base` → `<package>.base`; each further dot goes one package up.
    fn relative_module(&self, module: Node<'a>) -> String {
        let g = self.g;
        let mut dots = 0;
        let mut rest = "";
        for i in 0..module.child_count() {
            let Some(child) = module.child(i) else { continue };
            if child.kind_id() == g.k_import_prefix {
                dots = self.text(child).bytes().filter(|&b| b == b'.').count();
            } else if child.kind_id() == g.k_dotted_name {
                rest = self.text(child);
            }
        }
        let keep = self.package.len().saturating_sub(dots.saturating_sub(1));
        let mut target = self.package[..keep].join(".");
        if !rest.is_empty() {
            if !target.is_empty() {
                target.push('.');
            }
            target.push_str(&dotted(rest));
        }
        target
    }

    /// Resolves a callee or base written in chunk `index` (spec §1.7, rules 1–4).
    fn resolve(&self, index: usize, raw: &str) -> String {
        let (first, rest) = match raw.split_once('.') {
            Some((first, rest)) => (first, Some(rest)),
            None => (raw, None),
        };
        let build = &self.builds[index];
        if build.kind == ChunkKind::Method
            && (first == "self" || first == "cls")
            && let (Some(rest), Some(class)) = (rest, build.parent)
        {
            return self.in_module(&format!("{}.{rest}", self.builds[class].qualified_name));
        }
        let mut bound = None;
        let mut at = Some(index);
        while let Some(i) = at.filter(|&i| i != 0) {
            // The latest import of a name wins, as it would at run time.
            if let Some((_, target)) = self.builds[i].bindings.iter().rev().find(|(n, _)| *n == first) {
                bound = Some(target);
                break;
            }
            at = self.builds[i].parent;
        }
        if let Some(target) = bound.or_else(|| self.file_bindings.get(first)) {
            return match rest {
                Some(rest) => format!("{target}.{rest}"),
                None => target.clone(),
            };
        }
        if self.module_defs.contains(first) {
            return self.in_module(raw);
        }
        raw.to_owned()
    }

    fn in_module(&self, name: &str) -> String {
        if self.module.is_empty() { name.to_owned() } else { format!("{}.{name}", self.module) }
    }

    fn module_content(&self) -> String {
        let src = self.src;
        let mut out = String::new();
        let mut lines = 0;
        let mut cuts = self.module_cuts.iter().peekable();
        for statement in &self.top_statements {
            if lines >= MODULE_CONTENT_LINES {
                break;
            }
            if !out.is_empty() {
                out.push_str(self.eol);
            }
            if lines == MODULE_CONTENT_LINES - 1 {
                out.push_str("..."); // only the marker still fits
                break;
            }
            let mut text = String::new();
            let mut from = statement.start;
            while let Some(cut) = cuts.peek() {
                if cut.start >= statement.end {
                    break;
                }
                text.push_str(src.get(from..cut.start.max(from)).unwrap_or_default());
                from = cut.end.min(statement.end).max(from);
                cuts.next();
            }
            text.push_str(src.get(from..statement.end).unwrap_or_default());
            let text = text.trim_end_matches(['\r', '\n']);
            let room = MODULE_STATEMENT_LINES.min(MODULE_CONTENT_LINES - lines - 1);
            match nth_line_end(text, room) {
                Some(end) => {
                    out.push_str(&text[..end]);
                    out.push_str("...");
                    lines += room + 1;
                }
                None => {
                    out.push_str(text);
                    lines += text.split('\n').count();
                }
            }
        }
        out
    }

    fn finish(mut self) -> ChunkedFile {
        let has_module_chunk = !self.top_statements.is_empty();
        if has_module_chunk {
            let content = self.module_content();
            self.builds[0].content = content;
        }
        // Resolution reads qualified names and bindings of other chunks: resolve everything
        // before the builds are taken apart.
        let all_refs: Vec<Vec<Ref>> = (0..self.builds.len()).map(|i| self.refs(i)).collect();
        let mut chunks = Vec::with_capacity(self.builds.len());
        for (index, refs) in all_refs.into_iter().enumerate() {
            if index == 0 && !has_module_chunk {
                continue;
            }
            let parent = self.builds[index].parent.filter(|&p| p != 0).map(|p| self.builds[p].id);
            let b = &mut self.builds[index];
            let branches = if index == 0 { b.own_branches } else { b.total_branches };
            let name = if index == 0 {
                self.module.rsplit('.').next().unwrap_or_default().to_owned()
            } else {
                b.name.to_owned()
            };
            let content = std::mem::take(&mut b.content);
            chunks.push(Chunk {
                id: b.id,
                file: self.path.to_owned(),
                kind: b.kind,
                name,
                qualified_name: std::mem::take(&mut b.qualified_name),
                ordinal: b.ordinal,
                parent,
                depth: b.depth,
                signature: b.signature.take(),
                docstring: b.docstring.take(),
                decorators: std::mem::take(&mut b.decorators),
                bytes: b.bytes.clone(),
                start_line: b.start_line,
                end_line: b.end_line,
                def_line: b.def_line,
                name_byte: b.name_byte,
                content_hash: content_hash(&content),
                content,
                language: Language::Python,
                complexity: branches as f32 / (branches as f32 + 10.0),
                branches,
                refs,
                parse_partial: b.parse_partial,
                words: ChunkWords { body: std::mem::take(&mut b.body_words), text: std::mem::take(&mut b.text_words) },
            });
        }
        ChunkedFile { chunks, syntax_errors: self.syntax_errors, first_error_line: self.first_error_line }
    }

    /// Resolved refs of chunk `index`, merged by (kind, target) in first-occurrence order.
    fn refs(&self, index: usize) -> Vec<Ref> {
        let mut refs: Vec<Ref> = Vec::new();
        // Chunks have a few distinct refs; only a large one (a module) pays for a map.
        let mut seen: FxMap<(RefKind, String), usize> = FxMap::default();
        let big = self.builds[index].raw_refs.len() > 32;
        for raw in &self.builds[index].raw_refs {
            let (kind, target) = match raw {
                RawRef::Call(name) => (RefKind::Calls, self.resolve(index, name)),
                RawRef::Inherit(name) => (RefKind::Inherits, self.resolve(index, name)),
                RawRef::Import(target) => (RefKind::Imports, target.clone()),
            };
            let found = if big {
                seen.get(&(kind, target.clone())).copied()
            } else {
                refs.iter().position(|r| r.kind == kind && r.target == target)
            };
            match found {
                Some(i) => refs[i].count += 1,
                None => {
                    if big {
                        seen.insert((kind, target.clone()), refs.len());
                    }
                    refs.push(Ref { kind, target, count: 1 });
                }
            }
        }
        // One order whatever found them (tree walk or span lexer): by kind, then target.
        refs.sort_by(|a, b| (a.kind, &a.target).cmp(&(b.kind, &b.target)));
        refs
    }
}

fn row(row: usize) -> u32 {
    u32::try_from(row).unwrap_or(u32::MAX)
}

fn memchr_count(bytes: &[u8], needle: u8) -> usize {
    bytes.iter().filter(|&&b| b == needle).count()
}

/// Byte offset just past the `n`th line ending of `text`, when `text` has more than `n` lines.
fn nth_line_end(text: &str, n: usize) -> Option<usize> {
    let mut seen = 0;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            seen += 1;
            if seen == n {
                return Some(i + 1);
            }
        }
    }
    None
}

/// What a lexed span holds, in source order.
#[derive(Default)]
struct SpanScan<'a> {
    /// Identifiers (false) and comment or string contents (true).
    words: Vec<(&'a str, bool)>,
    /// Callees rendered as §1.7 says, before resolution.
    calls: Vec<Cow<'a, str>>,
    branches: u32,
}

impl SpanScan<'_> {
    fn clear(&mut self) {
        self.words.clear();
        self.calls.clear();
        self.branches = 0;
    }
}

/// Lexes an expression or simple statement (no definitions, blocks or imports inside) into what
/// the tree walk would have collected from it: identifiers, comment and string contents, calls
/// with their callees, and decision points (`if`, `for`, `and`, `or`, which in an expression are
/// always a `conditional_expression`/`if_clause`, a `for_in_clause` or a `boolean_operator`).
/// False when the span holds something only the tree reads right (an f-string, an unterminated
/// string, a statement keyword).
fn scan_span<'a>(text: &'a str, out: &mut SpanScan<'a>) -> bool {
    /// Keywords that are no `identifier` node and open no decision point.
    const KEYWORDS: [&str; 25] = [
        "False", "None", "True", "as", "assert", "async", "await", "break", "continue", "del", "else", "finally",
        "from", "global", "in", "is", "lambda", "nonlocal", "not", "pass", "raise", "return", "try", "with", "yield",
    ];
    /// Keywords of statements a span never holds; seeing one means the text is not what it seems.
    const STATEMENTS: [&str; 6] = ["elif", "while", "except", "def", "class", "import"];
    #[derive(Clone, Copy, PartialEq)]
    enum Prev {
        Other,
        /// An identifier that ends a chain started at the byte offset.
        Name(usize),
        /// A `.` continuing the chain started at the byte offset.
        Dot(usize),
        /// `)`, `]`, `}` or a string: what `.attr` or `(` may follow.
        Closer,
    }
    // An attribute of something that is not a name: the chain records its last name only.
    const AFTER_CLOSER: usize = usize::MAX;
    let bytes = text.as_bytes();
    let is_word = |b: u8| b == b'_' || b.is_ascii_alphanumeric() || b >= 0x80;
    let mut prev = Prev::Other;
    let mut at = 0;
    while at < bytes.len() {
        let c = bytes[at];
        match c {
            b'#' => {
                let end = text[at..].find('\n').map_or(bytes.len(), |n| at + n);
                out.words.push((text[at..end].trim_start_matches('#').trim(), true));
                at = end;
            }
            b'"' | b'\'' => {
                let Some(end) = string_end(bytes, at) else { return false };
                let quotes = if end - at >= 6 && bytes[at + 1] == c && bytes[at + 2] == c { 3 } else { 1 };
                out.words.push((&text[at + quotes..end - quotes], true));
                prev = Prev::Closer;
                at = end;
            }
            b'0'..=b'9' => {
                // `1.5e3`, `0x_ff`, `1.j`; in `1.0.real` the second dot is an attribute's.
                let mut dot = false;
                while at < bytes.len() {
                    let b = bytes[at];
                    let next = bytes.get(at + 1).copied().unwrap_or(b' ');
                    if is_word(b) {
                        at += 1;
                    } else if b == b'.'
                        && !dot
                        && !(next == b'_' || next.is_ascii_alphabetic() && !b"eEjJ".contains(&next))
                    {
                        dot = true;
                        at += 1;
                    } else {
                        break;
                    }
                }
                prev = Prev::Closer;
            }
            b'`' => return false, // a Python 2 backquote, which the grammar reads as a string
            _ if is_word(c) => {
                let start = at;
                while at < bytes.len() && is_word(bytes[at]) {
                    at += 1;
                }
                let word = &text[start..at];
                if matches!(bytes.get(at), Some(b'"' | b'\'')) {
                    // A string prefix: f- and t-strings hold expressions, the tree reads those.
                    if word.len() > 3 || !word.bytes().all(|b| b"rRbBuU".contains(&b)) {
                        return false;
                    }
                    continue;
                }
                if matches!(word, "if" | "for" | "and" | "or") {
                    out.branches += 1;
                    prev = Prev::Other;
                } else if STATEMENTS.contains(&word) {
                    return false;
                } else if KEYWORDS.contains(&word) {
                    prev = Prev::Other;
                } else {
                    out.words.push((word, false));
                    prev = Prev::Name(match prev {
                        Prev::Dot(chain) => chain,
                        _ => start,
                    });
                }
            }
            b'.' => {
                prev = match prev {
                    Prev::Name(chain) => Prev::Dot(chain),
                    Prev::Closer => Prev::Dot(AFTER_CLOSER),
                    _ => Prev::Other, // `...`
                };
                at += 1;
            }
            b'(' => {
                // A call when a name ends right before; a bare `(` groups or builds a tuple.
                if let Prev::Name(chain) = prev {
                    let callee = text[..at].trim_end_matches(|c: char| c.is_whitespace() || c == '\\');
                    if chain == AFTER_CLOSER {
                        // `make().send(`: only the final attribute name.
                        let last = callee.rsplit('.').next().unwrap_or(callee);
                        let last = last.trim_matches(|c: char| c.is_whitespace() || c == '\\');
                        out.calls.push(Cow::Borrowed(last));
                    } else {
                        out.calls.push(dotted(&text[chain..callee.len()]));
                    }
                }
                prev = Prev::Other;
                at += 1;
            }
            b')' | b']' | b'}' => {
                prev = Prev::Closer;
                at += 1;
            }
            b' ' | b'\t' | b'\r' | b'\n' | b'\\' | b'\x0c' => at += 1,
            _ => {
                prev = Prev::Other;
                at += 1;
            }
        }
    }
    true
}

/// End (exclusive) of the string literal whose opening quote is at `start`; `None` when it is
/// not closed in `bytes`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let quote = bytes[start];
    let triple = bytes.get(start + 1) == Some(&quote) && bytes.get(start + 2) == Some(&quote);
    if !triple && bytes.get(start + 1) == Some(&quote) {
        return Some(start + 2); // ''
    }
    let mut at = start + if triple { 3 } else { 1 };
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'\n' if !triple => return None,
            b if b == quote => {
                if !triple {
                    return Some(at + 1);
                }
                if bytes.get(at + 1) == Some(&quote) && bytes.get(at + 2) == Some(&quote) {
                    return Some(at + 3);
                }
                at += 1;
            }
            _ => at += 1,
        }
    }
    None
}

/// `a`, `a.b.c`: identifier characters and dots only, starting with an identifier (not a digit,
/// a dot or `True`/`False`/`None`, whose attributes are no chain of names).
fn is_plain_chain(text: &str) -> bool {
    let first = text.split('.').next().unwrap_or_default();
    !first.is_empty()
        && !first.starts_with(|c: char| c.is_ascii_digit())
        && !matches!(first, "True" | "False" | "None")
        && text.bytes().all(|b| b == b'.' || b == b'_' || b.is_ascii_alphanumeric() || b >= 0x80)
}

/// A dotted name without the whitespace a line continuation may have put inside it.
fn dotted(text: &str) -> Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_whitespace() || b == b'\\') {
        Cow::Owned(text.chars().filter(|c| !c.is_whitespace() && *c != '\\').collect())
    } else {
        Cow::Borrowed(text)
    }
}

/// Header or decorator text on one line: comments dropped, whitespace runs collapsed to one
/// space (none just inside brackets), string literals kept as written, cut to `max_chars`
/// characters ending in `…`.
fn collapse(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
                space = true;
            }
            '\\' if matches!(chars.peek(), Some('\n' | '\r')) => space = true,
            c if c.is_whitespace() => space = true,
            _ => {
                if space && !out.is_empty() && !out.ends_with(['(', '[', '{']) && !matches!(c, ')' | ']' | '}') {
                    out.push(' ');
                }
                space = false;
                out.push(c);
                if c == '"' || c == '\'' {
                    copy_string(c, &mut chars, &mut out);
                }
            }
        }
    }
    if out.chars().count() > max_chars {
        let cut = out.char_indices().nth(max_chars - 1).map_or(out.len(), |(i, _)| i);
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// Copies a string literal whose opening quote `quote` was just copied, through its closing
/// quote(s).
fn copy_string(quote: char, chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    let mut triple = false;
    if chars.peek() == Some(&quote) {
        out.push(quote);
        chars.next();
        if chars.peek() != Some(&quote) {
            return; // an empty string
        }
        out.push(quote);
        chars.next();
        triple = true;
    }
    let mut run = 0;
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '\\' {
            if let Some(escaped) = chars.next() {
                out.push(escaped);
            }
            run = 0;
        } else if c == quote {
            run += 1;
            if !triple || run == 3 {
                return;
            }
        } else {
            run = 0;
        }
    }
}

/// `inspect.cleandoc`: tabs expanded to 8, first line stripped, the common indentation of the
/// later lines removed, leading and trailing blank lines dropped; `None` when nothing is left.
fn cleandoc(doc: &str) -> Option<String> {
    let mut lines: Vec<String> = doc.split('\n').map(expand_tabs).collect();
    let margin = lines
        .iter()
        .skip(1)
        .filter_map(|line| {
            let content = line.trim_start().chars().count();
            (content > 0).then(|| line.chars().count() - content)
        })
        .min();
    if let Some(first) = lines.first_mut() {
        *first = first.trim_start().to_owned();
    }
    if let Some(margin) = margin {
        for line in lines.iter_mut().skip(1) {
            let cut = line.char_indices().nth(margin).map_or(line.len(), |(i, _)| i);
            line.drain(..cut);
        }
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let leading = lines.iter().take_while(|l| l.is_empty()).count();
    let text = lines[leading..].join("\n");
    (!text.is_empty()).then_some(text)
}

fn expand_tabs(line: &str) -> String {
    if !line.contains('\t') {
        return line.to_owned();
    }
    let mut out = String::with_capacity(line.len() + 8);
    let mut column = 0;
    for c in line.chars() {
        match c {
            '\t' => {
                let pad = 8 - column % 8;
                out.extend(std::iter::repeat_n(' ', pad));
                column += pad;
            }
            '\r' => {
                out.push(c);
                column = 0;
            }
            _ => {
                out.push(c);
                column += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    thread_local! {
        /// Turns the span lexer off, so a test can compare it with the plain tree walk.
        pub(super) static WALK_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    fn chunks_of(path: &str, source: &str, opts: &ChunkOptions) -> ChunkedFile {
        let mut parser = new_parser();
        chunk_file(&mut parser, path, source, opts).expect("no timeout in tests")
    }

    fn chunks(source: &str) -> ChunkedFile {
        chunks_of("pkg/mod.py", source, &ChunkOptions::default())
    }

    /// One line per chunk: kind, qualified name, #ordinal, lines, def line, decorators, partial
    /// flag, signature, docstring summary.
    fn render(file: &ChunkedFile) -> String {
        let mut out = String::new();
        for c in &file.chunks {
            let mut line = format!("{:<8} {}", c.kind.as_str(), c.qualified_name);
            if c.ordinal > 0 {
                line.push_str(&format!(" #{}", c.ordinal));
            }
            line.push_str(&format!(" lines {}..={}", c.start_line, c.end_line));
            if c.def_line != c.start_line {
                line.push_str(&format!(" def {}", c.def_line));
            }
            if !c.decorators.is_empty() {
                line.push_str(&format!(" decorators={:?}", c.decorators));
            }
            if c.parse_partial {
                line.push_str(" partial");
            }
            if let Some(sig) = &c.signature {
                line.push_str(&format!(" sig={sig:?}"));
            }
            if let Some(doc) = &c.docstring {
                line.push_str(&format!(" doc={:?}", doc.lines().next().unwrap_or_default()));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if file.syntax_errors > 0 {
            out.push_str(&format!("errors={} first_line={:?}\n", file.syntax_errors, file.first_error_line));
        }
        out
    }

    fn check_chunks(source: &str, expect: Expect) {
        expect.assert_eq(&render(&chunks(source)));
    }

    fn find<'c>(file: &'c ChunkedFile, qualified_name: &str) -> &'c Chunk {
        file.chunks
            .iter()
            .find(|c| c.qualified_name == qualified_name)
            .unwrap_or_else(|| panic!("no chunk {qualified_name}"))
    }

    fn refs(chunk: &Chunk) -> String {
        chunk.refs.iter().map(|r| format!("{} {} x{}\n", r.kind.as_str(), r.target, r.count)).collect()
    }

    #[test]
    fn grammar_loads_and_parses() {
        let mut parser = new_parser();
        let tree = parser.parse("x = 1\n", None).expect("a language is set");
        assert!(!tree.root_node().has_error());
        let g = grammar();
        for id in [g.k_identifier, g.k_attribute, g.k_decorator, g.k_colon, g.k_string_start] {
            assert_ne!(id, 0, "a node kind the chunker needs is missing from the grammar");
        }
        assert_ne!(g.f_superclasses, 0);
    }

    #[test]
    fn module_names_from_paths() {
        assert_eq!(module_name("django/middleware/csrf.py"), "django.middleware.csrf");
        assert_eq!(module_name("pkg/__init__.py"), "pkg");
        assert_eq!(module_name("pkg/stubs.pyi"), "pkg.stubs");
        assert_eq!(module_name("tools/run.pyw"), "tools.run");
        assert_eq!(module_name("setup.py"), "setup");
        assert_eq!(module_name("my-scripts/do it.py"), "my-scripts.do it");
    }

    #[test]
    fn decorators_are_in_the_range_and_recorded() {
        check_chunks(
            r#"@app.route("/", methods=["POST"])
def index():
    return "ok"

@decorator(
    a=1,  # the a
    b=2,
)
@staticmethod
def multi(): ...
"#,
            expect![[r#"
                function index lines 0..=2 def 1 decorators=["app.route(\"/\", methods=[\"POST\"])"] sig="def index():"
                function multi lines 4..=9 def 9 decorators=["decorator(a=1, b=2,)", "staticmethod"] sig="def multi():"
            "#]],
        );
    }

    #[test]
    fn nested_classes_emit_each_definition_once() {
        check_chunks(
            r#"class Outer(Base, metaclass=M):
    class Inner:
        def deep(self):
            pass
    def method(self):
        class Local:
            pass
"#,
            expect![[r#"
                class    Outer lines 0..=6 sig="class Outer(Base, metaclass=M):"
                class    Outer.Inner lines 1..=3 sig="class Inner:"
                method   Outer.Inner.deep lines 2..=3 sig="def deep(self):"
                method   Outer.method lines 4..=6 sig="def method(self):"
                class    Outer.method.Local lines 5..=6 sig="class Local:"
            "#]],
        );
    }

    #[test]
    fn functions_nested_in_methods_and_functions_are_functions() {
        check_chunks(
            r#"class Svc:
    def load(self):
        def helper():
            return 1
        return helper()

def outer():
    def inner():
        pass
    return inner
"#,
            expect![[r#"
                class    Svc lines 0..=4 sig="class Svc:"
                method   Svc.load lines 1..=4 sig="def load(self):"
                function Svc.load.helper lines 2..=3 sig="def helper():"
                function outer lines 6..=9 sig="def outer():"
                function outer.inner lines 7..=8 sig="def inner():"
            "#]],
        );
    }

    #[test]
    fn async_def_signature_keeps_async_and_return_annotation() {
        check_chunks(
            r#"class Job:
    async def run(
        self,
        x: int = 1,  # how many
    ) -> Result:
        await go(x)
"#,
            expect![[r#"
                class    Job lines 0..=5 sig="class Job:"
                method   Job.run lines 1..=5 sig="async def run(self, x: int = 1,) -> Result:"
            "#]],
        );
    }

    #[test]
    fn lambdas_and_comprehensions_are_not_chunks() {
        check_chunks(
            r#"square = lambda x: x * x
def f(items):
    key = lambda item: item[0]
    return [i for i in items if i], {k: v for k, v in items}
"#,
            expect![[r#"
                module   pkg.mod lines 0..=3
                function f lines 1..=3 sig="def f(items):"
            "#]],
        );
    }

    #[test]
    fn blocks_add_no_prefix() {
        check_chunks(
            r#"from typing import TYPE_CHECKING
if TYPE_CHECKING:
    def f(): ...
try:
    import json
except ImportError:
    def loads(s): ...
class C:
    if sys.version_info >= (3, 8):
        def m(self): ...
    else:
        with suppress(Exception):
            def n(self): ...
    for _ in range(1):
        while True:
            match x:
                case 1:
                    def o(self): ...
"#,
            expect![[r#"
                module   pkg.mod lines 0..=17
                function f lines 2..=2 sig="def f():"
                function loads lines 6..=6 sig="def loads(s):"
                class    C lines 7..=17 sig="class C:"
                method   C.m lines 9..=9 sig="def m(self):"
                method   C.n lines 12..=12 sig="def n(self):"
                method   C.o lines 17..=17 sig="def o(self):"
            "#]],
        );
    }

    #[test]
    fn overloads_and_property_setters_get_ordinals() {
        check_chunks(
            r#"from typing import overload
@overload
def f(x: int) -> int: ...
@overload
def f(x: str) -> str: ...
def f(x):
    return x

class C:
    @property
    def x(self):
        return self._x

    @x.setter
    def x(self, value):
        self._x = value
"#,
            expect![[r#"
                module   pkg.mod lines 0..=15
                function f lines 1..=2 def 2 decorators=["overload"] sig="def f(x: int) -> int:"
                function f #1 lines 3..=4 def 4 decorators=["overload"] sig="def f(x: str) -> str:"
                function f #2 lines 5..=6 sig="def f(x):"
                class    C lines 8..=15 sig="class C:"
                method   C.x lines 9..=11 def 10 decorators=["property"] sig="def x(self):"
                method   C.x #1 lines 13..=15 def 14 decorators=["x.setter"] sig="def x(self, value):"
            "#]],
        );
    }

    #[test]
    fn class_header_missing_colon_does_not_promote_its_method() {
        check_chunks(
            r#"def before():
    return 1

class Broken
    def method(self):
        pass
"#,
            expect![[r#"
                function before lines 0..=1 sig="def before():"
                class    Broken lines 3..=5 partial sig="class Broken def method(self):"
                errors=1 first_line=Some(4)
            "#]],
        );
    }

    #[test]
    fn broken_function_keeps_earlier_clean_chunks() {
        check_chunks(
            r#"def good():
    return 1

class Fine:
    def ok(self):
        return 2

def bad(x):
    return (x +
"#,
            expect![[r#"
                function good lines 0..=1 sig="def good():"
                class    Fine lines 3..=5 sig="class Fine:"
                method   Fine.ok lines 4..=5 sig="def ok(self):"
                function bad lines 7..=8 partial sig="def bad(x):"
                errors=1 first_line=Some(8)
            "#]],
        );
    }

    #[test]
    fn unclosed_parameter_list_yields_nothing_for_that_definition() {
        let source = "def good():\n    pass\n\ndef broken(a, b:\n    pass\n";
        check_chunks(
            source,
            expect![[r#"
            module   pkg.mod lines 0..=4 partial
            function good lines 0..=1 sig="def good():"
            errors=1 first_line=Some(3)
        "#]],
        );
        let file = chunks(source);
        assert!(!find(&file, "good").parse_partial);
        assert!(file.chunks.iter().all(|c| c.name != "broken"));
    }

    #[test]
    fn unicode_identifiers_have_byte_offsets() {
        let source = "# ünïcode\ndef größe(länge):\n    return länge\n";
        let file = chunks(source);
        let c = find(&file, "größe");
        assert_eq!(&source[c.name_byte..c.name_byte + "größe".len()], "größe");
        assert_eq!(&source[c.bytes.clone()], c.content);
        assert_eq!(c.words.body, "größe länge länge");
        assert_eq!(c.signature.as_deref(), Some("def größe(länge):"));
        assert_eq!((c.start_line, c.end_line), (1, 2));
    }

    #[test]
    fn crlf_is_kept_in_content() {
        let source = "import os\r\nclass A:\r\n    def m(self):\r\n        return 1\r\n";
        let file = chunks(source);
        let a = find(&file, "A");
        assert_eq!(a.content, "class A:\r\n    def m(self):\r\n        ...");
        assert_eq!((a.start_line, a.end_line), (1, 3));
        let m = find(&file, "A.m");
        assert_eq!(m.content, "def m(self):\r\n        return 1");
        assert_eq!((m.start_line, m.end_line, m.def_line), (2, 3, 2));
        assert_eq!(find(&file, "pkg.mod").end_line, 3);
    }

    #[test]
    fn tab_indentation() {
        let source = "class A:\n\tdef m(self):\n\t\treturn 1\n\tdef n(self):\n\t\tpass\n";
        let file = chunks(source);
        assert_eq!(find(&file, "A").content, "class A:\n\tdef m(self):\n\t\t...\n\tdef n(self):\n\t\t...");
        check_chunks(
            source,
            expect![[r#"
                class    A lines 0..=4 sig="class A:"
                method   A.m lines 1..=2 sig="def m(self):"
                method   A.n lines 3..=4 sig="def n(self):"
            "#]],
        );
    }

    #[test]
    fn bom_is_in_no_chunk() {
        let source = "\u{feff}\"\"\"Doc.\"\"\"\ndef f():\n    pass\n";
        let file = chunks(source);
        let module = &file.chunks[0];
        assert_eq!(module.bytes, 3..source.len());
        assert_eq!(module.content, "\"\"\"Doc.\"\"\"");
        assert_eq!(module.docstring.as_deref(), Some("Doc."));
        let f = find(&file, "f");
        assert_eq!(f.bytes.start, source.find("def").unwrap());
        assert_eq!(file.syntax_errors, 0);
        let bom_then_def = chunks("\u{feff}def f():\n    pass\n");
        assert_eq!(bom_then_def.chunks.len(), 1);
        assert_eq!(bom_then_def.chunks[0].content, "def f():\n    pass");
    }

    #[test]
    fn empty_and_definition_only_files_have_no_module_chunk() {
        check_chunks("", expect![[r#""#]]);
        check_chunks("\n\n# just a comment\n", expect![[r#""#]]);
        check_chunks(
            "def f():\n    pass\n",
            expect![[r#"
            function f lines 0..=1 sig="def f():"
        "#]],
        );
    }

    #[test]
    fn module_content_keeps_docstring_imports_and_constants() {
        let mut source = String::from("\"\"\"Module doc.\"\"\"\nimport os\n\ndef f():\n    pass\n\nX = 1\n");
        source.push_str("TABLE = {\n");
        for i in 0..30 {
            source.push_str(&format!("    'k{i}': {i},\n"));
        }
        source.push_str("}\nif TYPE_CHECKING:\n    from a import B\n    def g(): ...\nelse:\n    B = None\n");
        source.push_str("if __name__ == \"__main__\":\n    f()\n");
        let file = chunks(&source);
        let module = &file.chunks[0];
        expect![[r#"
            """Module doc."""
            import os
            X = 1
            TABLE = {
                'k0': 0,
                'k1': 1,
                'k2': 2,
                'k3': 3,
                'k4': 4,
                'k5': 5,
                'k6': 6,
                'k7': 7,
                'k8': 8,
                'k9': 9,
                'k10': 10,
                'k11': 11,
                'k12': 12,
                'k13': 13,
                'k14': 14,
                'k15': 15,
                'k16': 16,
                'k17': 17,
                'k18': 18,
            ...
            if TYPE_CHECKING:
                from a import B
            else:
                B = None
            if __name__ == "__main__":
                f()"#]]
        .assert_eq(&module.content);
        assert_eq!((module.start_line, module.end_line), (0, 45));
        // Words come from the kept lines only, and never from the definitions left out.
        assert!(module.words.text.contains("k18") && !module.words.text.contains("k19"));
        let body: Vec<&str> = module.words.body.split(' ').collect();
        assert!(body.contains(&"TYPE_CHECKING") && body.contains(&"f") && !body.contains(&"g"));
    }

    #[test]
    fn module_content_stops_at_200_lines() {
        let source: String = (0..300).map(|i| format!("X{i} = {i}\n")).collect();
        let module = &chunks(&source).chunks[0];
        let lines: Vec<&str> = module.content.split('\n').collect();
        assert_eq!(lines.len(), MODULE_CONTENT_LINES);
        assert_eq!(lines[198], "X198 = 198");
        assert_eq!(lines[199], "...");
    }

    #[test]
    fn docstring_edge_cases() {
        check_chunks(
            r#"def raw():
    r"""Raw \d docstring."""

def concatenated():
    "first " 'second'

def fstring():
    f"""Not {a} docstring."""

def bytes_():
    b"not a docstring"

def after_statement(): y = 1; "s"

def after_comment():
    # a comment first
    """Still the docstring."""

def empty():
    """   """

def one_line(): "Short."
"#,
            expect![[r#"
                function raw lines 0..=1 sig="def raw():" doc="Raw \\d docstring."
                function concatenated lines 3..=4 sig="def concatenated():" doc="first second"
                function fstring lines 6..=7 sig="def fstring():"
                function bytes_ lines 9..=10 sig="def bytes_():"
                function after_statement lines 12..=12 sig="def after_statement():"
                function after_comment lines 14..=16 sig="def after_comment():" doc="Still the docstring."
                function empty lines 18..=19 sig="def empty():"
                function one_line lines 21..=21 sig="def one_line():" doc="Short."
            "#]],
        );
        let file =
            chunks("def f():\n    \"\"\"Summary.\n\n\tTabbed.\n        Indented more.\n      Less.\n    \"\"\"\n");
        assert_eq!(file.chunks[0].docstring.as_deref(), Some("Summary.\n\n  Tabbed.\n  Indented more.\nLess."));
        let crlf = chunks("class C:\r\n    \"\"\"\r\n    Line one.\r\n    Line two.\r\n    \"\"\"\r\n");
        assert_eq!(crlf.chunks[0].docstring.as_deref(), Some("Line one.\nLine two."));
    }

    #[test]
    fn docstrings_can_be_switched_off() {
        let opts = ChunkOptions { index_docstrings: false, ..ChunkOptions::default() };
        let file = chunks_of("m.py", "def f():\n    \"\"\"Doc words.\"\"\"\n    return 'lit'\n", &opts);
        assert_eq!(file.chunks[0].docstring, None);
        assert_eq!(file.chunks[0].words.text, "lit");
    }

    #[test]
    fn child_definitions_are_collapsed_in_content() {
        let source = r#"class Paginator:
    """Split a list of objects into pages."""
    ELLIPSIS = "…"
    def __init__(self, object_list, per_page,
                 orphans=0):  # trailing
        self.object_list = object_list
        def local():
            pass

    @cached_property
    def count(self): return len(self.object_list)
    # done
"#;
        let file = chunks(source);
        expect![[r#"
            class Paginator:
                """Split a list of objects into pages."""
                ELLIPSIS = "…"
                def __init__(self, object_list, per_page,
                             orphans=0):
                    ...

                @cached_property
                def count(self):
                    ...
                # done"#]]
        .assert_eq(&file.chunks[0].content);
        let init = find(&file, "Paginator.__init__");
        expect![[r#"
            def __init__(self, object_list, per_page,
                             orphans=0):  # trailing
                    self.object_list = object_list
                    def local():
                        ..."#]]
        .assert_eq(&init.content);
        let count = find(&file, "Paginator.count");
        assert_eq!(count.content, &source[count.bytes.clone()]);
    }

    #[test]
    fn words_split_own_code_from_children_and_docstring() {
        let file = chunks(
            r#"class A(Base):
    """Doc words."""
    # class comment
    LIMIT = settings.get("limit", default=3)
    def m(self, arg):
        # method comment
        return f"x {arg} y"
"#,
        );
        let a = find(&file, "A");
        assert_eq!(a.words.body, "A Base LIMIT settings get default m");
        assert_eq!(a.words.text, "class comment limit");
        let m = find(&file, "A.m");
        assert_eq!(m.words.body, "m self arg arg");
        assert_eq!(m.words.text, "method comment x   y");
    }

    #[test]
    fn refs_resolve_self_imports_and_module_definitions() {
        let file = chunks_of(
            "pkg/sub/query.py",
            r#"import numpy as np
import os.path
from .base import Model
from .. import utils
from x import *
from __future__ import annotations

def helper():
    return np.array([1]) + np.array([2])

class Query(Model, Generic[T], mixins.Mixin, metaclass=Meta):
    def run(self):
        import json as js
        self.m()
        cls.build()
        helper()
        super().save()
        make().send()
        js.dumps(os.path.join("a", "b"))
        utils.go()
        Query.other()
        len([])
        (lambda: 1)()
"#,
            &ChunkOptions::default(),
        );
        expect![[r#"
            imports __future__.annotations x1
            imports numpy x1
            imports os.path x1
            imports pkg.sub.base.Model x1
            imports pkg.utils x1
            imports x.* x1
        "#]]
        .assert_eq(&refs(&file.chunks[0]));
        expect![[r#"
            inherits Generic x1
            inherits mixins.Mixin x1
            inherits pkg.sub.base.Model x1
        "#]]
        .assert_eq(&refs(find(&file, "Query")));
        expect![[r#"
            calls json.dumps x1
            calls len x1
            calls make x1
            calls os.path.join x1
            calls pkg.sub.query.Query.build x1
            calls pkg.sub.query.Query.m x1
            calls pkg.sub.query.Query.other x1
            calls pkg.sub.query.helper x1
            calls pkg.utils.go x1
            calls save x1
            calls send x1
            calls super x1
            imports json x1
        "#]]
        .assert_eq(&refs(find(&file, "Query.run")));
        expect![[r#"
            calls numpy.array x2
        "#]]
        .assert_eq(&refs(find(&file, "helper")));
    }

    #[test]
    fn relative_imports_in_a_package_init() {
        let file = chunks_of("pkg/__init__.py", "from .base import Model\nfrom . import y\n", &ChunkOptions::default());
        expect![[r#"
            imports pkg.base.Model x1
            imports pkg.y x1
        "#]]
        .assert_eq(&refs(&file.chunks[0]));
    }

    #[test]
    fn complexity_counts_decision_points() {
        let file = chunks(
            r#"if DEBUG:
    LEVEL = 1
def f(xs):
    if a and b or c:
        pass
    elif d:
        pass
    else:
        pass
    for x in xs:
        while x:
            try:
                pass
            except E:
                pass
    with ctx:
        y = [i for i in xs if i]
        z = 1 if y else 2
    match y:
        case 1:
            pass
        case _:
            pass
    def inner():
        if q:
            pass
"#,
        );
        let module = &file.chunks[0];
        assert_eq!(module.branches, 1);
        let f = find(&file, "f");
        // if, 2 boolean_operator, elif, for, while, except, for_in, if_clause, conditional,
        // 2 case, and the nested function's if.
        assert_eq!(f.branches, 13);
        assert!((f.complexity - 13.0 / 23.0).abs() < 1e-6);
        assert_eq!(find(&file, "f.inner").branches, 1);
    }

    #[test]
    fn ids_are_stable_across_line_inserts_and_body_edits() {
        let before = chunks("def f():\n    return 1\n\nclass C:\n    def m(self): pass\n");
        let after = chunks("import os\n\n\ndef f():\n    return 2 + 2\n\nclass C:\n    def m(self): pass\n");
        for name in ["f", "C", "C.m"] {
            let (a, b) = (find(&before, name), find(&after, name));
            assert_eq!(a.id, b.id, "{name}");
        }
        assert_ne!(find(&before, "f").content_hash, find(&after, "f").content_hash);
        assert_eq!(find(&before, "C.m").content_hash, find(&after, "C.m").content_hash);
        let m = find(&after, "C.m");
        assert_eq!(m.id, ChunkId::new("pkg/mod.py", ChunkKind::Method, "C.m", 0));
        assert_eq!(m.parent, Some(find(&after, "C").id));
        assert_eq!(m.depth, 1);
    }

    #[test]
    fn ten_thousand_nested_blocks_do_not_overflow() {
        let mut source = String::new();
        for depth in 0..10_000 {
            source.push_str(&"\t".repeat(depth));
            source.push_str("if x:\n");
        }
        source.push_str(&"\t".repeat(10_000));
        source.push_str("def deep(): pass\n");
        let opts = ChunkOptions { parse_timeout_ms: 0, ..ChunkOptions::default() };
        let file = chunks_of("deep.py", &source, &opts);
        assert!(!file.chunks.is_empty());
        let nested: String = (0..10_000).map(|_| "f(").chain((0..10_000).map(|_| ")")).collect();
        let file = chunks_of("calls.py", &format!("x = {nested}\n"), &opts);
        assert_eq!(file.chunks[0].refs[0].count, 10_000);
    }

    #[test]
    fn definitions_deeper_than_max_nesting_stay_in_their_ancestor() {
        let opts = ChunkOptions { max_nesting: 1, ..ChunkOptions::default() };
        let file = chunks_of("m.py", "def a():\n    def b():\n        def c():\n            return 1\n", &opts);
        let names: Vec<&str> = file.chunks.iter().map(|c| c.qualified_name.as_str()).collect();
        assert_eq!(names, ["a", "a.b"]);
        assert_eq!(file.chunks[1].content, "def b():\n        def c():\n            return 1");
        assert_eq!(file.chunks[1].words.body, "b c");
    }

    #[test]
    fn tiny_timeout_on_large_input_times_out() {
        let source: String = (0..200_000).map(|i| format!("def f{i}(a, b):\n    return a + b * {i}\n")).collect();
        let mut parser = new_parser();
        let opts = ChunkOptions { parse_timeout_ms: 1, ..ChunkOptions::default() };
        assert!(chunk_file(&mut parser, "big.py", &source, &opts).is_err());
        // The parser is reset: the next parse starts afresh.
        let file = chunk_file(&mut parser, "small.py", "x = 1\n", &ChunkOptions::default()).expect("parses");
        assert_eq!(file.chunks[0].content, "x = 1");
    }

    #[test]
    fn long_signatures_and_decorators_are_cut() {
        let params: Vec<String> = (0..200).map(|i| format!("p{i}")).collect();
        let source = format!("@d({})\ndef f({}):\n    pass\n", "x".repeat(300), params.join(", "));
        let f = &chunks(&source).chunks[0];
        let sig = f.signature.as_deref().unwrap_or_default();
        assert_eq!(sig.chars().count(), 500);
        assert!(sig.starts_with("def f(p0, p1,") && sig.ends_with('…'));
        assert_eq!(f.decorators[0].chars().count(), 200);
        assert!(f.decorators[0].ends_with('…'));
    }

    #[test]
    fn span_lexer_agrees_with_the_tree_walk() {
        let source = r#"import os
X = [*range(5)] + [i for i in range(3) if i and not i or i > 2]
def f(a, b=os.getcwd(), *args, c: "Ann" = None, **kw) -> dict[str, int]:
    # a comment
    y = a if b else "s" 'implicit' b"bytes" r'raw\d'
    z = "sep".join(x for x in args) + 1.0.hex() + f"{a!r}" + super().g(a)[0](b)
    w = os.path.\
        join(kw["k"], *kw.values())
    del y; assert z, "msg"
    return lambda q=1: q.real, {**kw, "k": (yield a)}, True.__index__(), x.y(
        1, # inside
        2,
    )
"#;
        let with_spans = chunks(source);
        WALK_ONLY.with(|walk_only| walk_only.set(true));
        let walk_only = chunks(source);
        WALK_ONLY.with(|walk_only| walk_only.set(false));
        for (a, b) in with_spans.chunks.iter().zip(&walk_only.chunks) {
            assert_eq!(a.words, b.words, "{}", a.qualified_name);
            assert_eq!(a.refs, b.refs, "{}", a.qualified_name);
            assert_eq!(a.branches, b.branches, "{}", a.qualified_name);
        }
        expect![[r#"
            calls __index__ x1
            calls g x1
            calls hex x1
            calls join x1
            calls kw.values x1
            calls os.getcwd x1
            calls os.path.join x1
            calls super x1
            calls x.y x1
        "#]]
        .assert_eq(&refs(find(&with_spans, "f")));
    }
}
