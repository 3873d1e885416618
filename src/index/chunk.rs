//! Chunk types: the unit of code memory, produced by a language chunker and stored by `store/`.

use std::fmt;
use std::ops::Range;

/// A stable chunk id (spec/memory.md §1.6): 24 bits from the path, 39 from the whole key.
/// Never contains a line number, byte offset, absolute path or content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ChunkId(pub i64);

impl ChunkId {
    /// The id of the chunk `kind qualified_name #ordinal` in file `path` (relative, `/`-separated).
    pub fn new(path: &str, kind: ChunkKind, qualified_name: &str, ordinal: u32) -> ChunkId {
        let path_hash = blake3::hash(path.as_bytes());
        let mut key = blake3::Hasher::new();
        key.update(path.as_bytes());
        key.update(&[0]);
        key.update(kind.as_str().as_bytes());
        key.update(&[0]);
        key.update(qualified_name.as_bytes());
        key.update(&[0]);
        key.update(ordinal.to_string().as_bytes());
        let key_hash = key.finalize();
        let path_bits = u64::from_le_bytes(path_hash.as_bytes()[..8].try_into().expect("8 bytes"));
        let key_bits = u64::from_le_bytes(key_hash.as_bytes()[..8].try_into().expect("8 bytes"));
        ChunkId((((path_bits >> 40) << 39) | (key_bits & ((1 << 39) - 1))) as i64)
    }

    /// Parses the 16-hex-digit form written by `Display`.
    pub fn parse(text: &str) -> Option<ChunkId> {
        if text.len() != 16 {
            return None;
        }
        i64::from_str_radix(text, 16).ok().filter(|v| *v >= 0).map(ChunkId)
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum ChunkKind {
    Module,
    Class,
    Function,
    Method,
}

impl ChunkKind {
    pub const ALL: [ChunkKind; 4] = [ChunkKind::Module, ChunkKind::Class, ChunkKind::Function, ChunkKind::Method];

    pub fn as_str(self) -> &'static str {
        match self {
            ChunkKind::Module => "module",
            ChunkKind::Class => "class",
            ChunkKind::Function => "function",
            ChunkKind::Method => "method",
        }
    }

    pub fn parse(text: &str) -> Option<ChunkKind> {
        ChunkKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for ChunkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Language {
    Python,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum RefKind {
    Calls,
    Imports,
    Inherits,
}

impl RefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefKind::Calls => "calls",
            RefKind::Imports => "imports",
            RefKind::Inherits => "inherits",
        }
    }
}

/// A reference from a chunk's own code to a (resolved, dotted) name (spec/memory.md §1.7).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Ref {
    pub kind: RefKind,
    pub target: String,
    pub count: u32,
}

/// One chunk of a source file. Positions are byte offsets (end exclusive) and 0-based lines
/// (end inclusive) into the file as read (a UTF-8 BOM counts in the offsets but is in no chunk).
#[derive(Clone, PartialEq, Debug)]
pub struct Chunk {
    pub id: ChunkId,
    pub file: String,
    pub kind: ChunkKind,
    pub name: String,
    pub qualified_name: String,
    pub ordinal: u32,
    pub parent: Option<ChunkId>,
    pub depth: u16,
    pub signature: Option<String>,
    pub docstring: Option<String>,
    pub decorators: Vec<String>,
    pub bytes: Range<usize>,
    pub start_line: u32,
    pub end_line: u32,
    pub def_line: u32,
    pub name_byte: usize,
    pub content: String,
    pub content_hash: [u8; 16],
    pub language: Language,
    pub complexity: f32,
    pub branches: u32,
    pub refs: Vec<Ref>,
    pub parse_partial: bool,
    /// Raw words for the FTS `body` and `text` columns, before tokenisation (spec/memory.md §3.6).
    pub words: ChunkWords,
}

/// The raw text behind a chunk's FTS document; tokenised by `memory::tokenize` in the indexer.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct ChunkWords {
    /// Identifiers of the chunk's own code (names, attributes, keyword arguments, imported names,
    /// child definitions' names), docstring excluded, space-separated.
    pub body: String,
    /// Words of comments and of string literals other than the docstring, space-separated.
    pub text: String,
}

/// `first 16 bytes of blake3(content)`.
pub fn content_hash(content: &str) -> [u8; 16] {
    blake3::hash(content.as_bytes()).as_bytes()[..16].try_into().expect("16 bytes")
}

/// The outcome of chunking one file.
#[derive(Clone, Debug, Default)]
pub struct ChunkedFile {
    /// In document order (parents before children).
    pub chunks: Vec<Chunk>,
    /// Syntax errors (ERROR and MISSING nodes) in the tree; 0 for a clean parse.
    pub syntax_errors: u32,
    /// 0-based line of the first syntax error.
    pub first_error_line: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_non_negative_and_keeps_file_chunks_together() {
        let a = ChunkId::new("pkg/mod.py", ChunkKind::Function, "f", 0);
        let b = ChunkId::new("pkg/mod.py", ChunkKind::Class, "C", 0);
        let c = ChunkId::new("pkg/other.py", ChunkKind::Function, "f", 0);
        assert!(a.0 >= 0 && b.0 >= 0 && c.0 >= 0);
        assert_eq!(a.0 >> 39, b.0 >> 39, "same file shares the path bits");
        assert_ne!(a, c);
        assert_ne!(a, ChunkId::new("pkg/mod.py", ChunkKind::Function, "f", 1));
        assert_eq!(ChunkId::parse(&a.to_string()), Some(a));
    }
}
