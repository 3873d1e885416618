//! UTF-16/UTF-8 positions to byte offsets and back, and URIs to paths: the only code that knows
//! encodings. Everything inside the server is a byte offset, a 0-based line, or a `PathBuf`.

use std::path::{Path, PathBuf};

use crate::lsp::lsp;

/// The position encoding negotiated in `initialize`, fixed for the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16,
}

impl Encoding {
    /// `utf-8` when the client offers it, else the mandatory `utf-16` (spec/lsp.md §1.1).
    pub fn negotiate(offered: Option<&[lsp::PositionEncodingKind]>) -> Encoding {
        match offered {
            Some(kinds) if kinds.iter().any(|k| k.as_str() == "utf-8") => Encoding::Utf8,
            _ => Encoding::Utf16,
        }
    }

    pub fn kind(self) -> lsp::PositionEncodingKind {
        match self {
            Encoding::Utf8 => lsp::PositionEncodingKind::UTF8,
            Encoding::Utf16 => lsp::PositionEncodingKind::UTF16,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Utf16 => "utf-16",
        }
    }

    fn units(self, c: char) -> u32 {
        match self {
            Encoding::Utf8 => c.len_utf8() as u32,
            Encoding::Utf16 => c.len_utf16() as u32,
        }
    }
}

/// Line starts of a text, with the LSP line terminators `\n`, `\r\n` and `\r`.
#[derive(Clone, Debug)]
pub struct LineIndex {
    /// Byte offset of each line's first byte; `starts[0] == 0`.
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => starts.push(i + 1),
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    starts.push(i + 2);
                    i += 1;
                }
                b'\r' => starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        LineIndex { starts }
    }

    /// Number of lines (a text ending in a terminator has an empty last line).
    pub fn lines(&self) -> usize {
        self.starts.len()
    }

    /// Byte range of `line`'s content, without its terminator.
    fn line_span(&self, text: &str, line: usize) -> (usize, usize) {
        let start = self.starts[line];
        let mut end = self.starts.get(line + 1).copied().unwrap_or(text.len());
        let bytes = text.as_bytes();
        if end > start && bytes[end - 1] == b'\n' {
            end -= 1;
        }
        if end > start && bytes[end - 1] == b'\r' {
            end -= 1;
        }
        (start, end)
    }

    /// The 0-based line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).saturating_sub(1)
    }

    /// A position to a byte offset. A `character` past the line end clamps to the line end; a
    /// line past the last clamps to the end of the text; a position inside a multi-byte character
    /// (or surrogate pair) rounds down to the character's start.
    pub fn offset(&self, text: &str, pos: lsp::Position, enc: Encoding) -> usize {
        let line = pos.line as usize;
        if line >= self.lines() {
            return text.len();
        }
        let (start, end) = self.line_span(text, line);
        let mut units = 0u32;
        for (i, c) in text[start..end].char_indices() {
            let next = units + enc.units(c);
            if next > pos.character {
                return start + i;
            }
            units = next;
        }
        end
    }

    /// A byte offset to a position (an offset inside a character rounds down to its start).
    pub fn position(&self, text: &str, offset: usize, enc: Encoding) -> lsp::Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_of(offset);
        let (start, end) = self.line_span(text, line);
        let upto = offset.min(end).max(start);
        let character = text[start..upto].chars().map(|c| enc.units(c)).sum();
        lsp::Position { line: line as u32, character }
    }

    /// The position of the end of `line` (before its terminator); the text's end past the last.
    pub fn line_end(&self, text: &str, line: usize, enc: Encoding) -> lsp::Position {
        if line >= self.lines() {
            return self.position(text, text.len(), enc);
        }
        let (start, end) = self.line_span(text, line);
        let character = text[start..end].chars().map(|c| enc.units(c)).sum();
        lsp::Position { line: line as u32, character }
    }
}

/// The full range of a chunk (spec/lsp.md §4.1): column 0 of the line holding `start_byte` to the
/// end of the line holding the chunk's last byte.
pub fn chunk_range(text: &str, index: &LineIndex, start_byte: usize, end_byte: usize, enc: Encoding) -> lsp::Range {
    let start_line = index.line_of(start_byte.min(text.len()));
    let last = end_byte.saturating_sub(1).max(start_byte).min(text.len());
    let end_line = index.line_of(last);
    lsp::Range {
        start: lsp::Position { line: start_line as u32, character: 0 },
        end: index.line_end(text, end_line, enc),
    }
}

/// The range of `len` bytes at `start_byte`.
pub fn byte_range(text: &str, index: &LineIndex, start_byte: usize, len: usize, enc: Encoding) -> lsp::Range {
    lsp::Range { start: index.position(text, start_byte, enc), end: index.position(text, start_byte + len, enc) }
}

/// The local path of a `file:` URI, percent-decoded; `None` for other schemes.
pub fn uri_to_path(uri: &lsp::Uri) -> Option<PathBuf> {
    let text = uri.as_str();
    let rest = text.strip_prefix("file://").or_else(|| text.strip_prefix("FILE://"))?;
    // `file:///p`, `file://localhost/p`; a query or fragment is not part of the path.
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    if !rest.starts_with('/') {
        return None;
    }
    let bytes = percent_decode(rest)?;
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
    }
    #[cfg(not(unix))]
    {
        let text = String::from_utf8(bytes).ok()?;
        Some(PathBuf::from(text.trim_start_matches('/')))
    }
}

/// A `file:` URI for an absolute path.
pub fn path_to_uri(path: &Path) -> Option<lsp::Uri> {
    let text = path.to_str()?.replace('\\', "/");
    let text = if text.starts_with('/') { text } else { format!("/{text}") };
    format!("file://{}", percent_encode(&text)).parse().ok()
}

/// `folder_uri` (as the client gave it) joined with a `/`-separated relative path.
pub fn join_uri(folder_uri: &str, rel: &str) -> Option<lsp::Uri> {
    format!("{}/{}", folder_uri.trim_end_matches('/'), percent_encode(rel)).parse().ok()
}

fn percent_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, character: u32) -> lsp::Position {
        lsp::Position { line, character }
    }

    #[test]
    fn the_spec_example_in_both_encodings() {
        let text = "s = \"é😀x\"\n";
        let index = LineIndex::new(text);
        let x = text.find('x').unwrap();
        assert_eq!(index.position(text, x, Encoding::Utf8), pos(0, 11));
        assert_eq!(index.position(text, x, Encoding::Utf16), pos(0, 8));
        assert_eq!(index.offset(text, pos(0, 11), Encoding::Utf8), x);
        assert_eq!(index.offset(text, pos(0, 8), Encoding::Utf16), x);
    }

    #[test]
    fn positions_inside_a_character_round_down_and_past_the_end_clamp() {
        let text = "a😀b\r\nsecond\rthird";
        let index = LineIndex::new(text);
        assert_eq!(index.lines(), 3);
        // Inside the surrogate pair (utf-16 unit 2) and inside the 4 UTF-8 bytes.
        assert_eq!(index.offset(text, pos(0, 2), Encoding::Utf16), 1);
        assert_eq!(index.offset(text, pos(0, 3), Encoding::Utf8), 1);
        assert_eq!(index.offset(text, pos(0, 99), Encoding::Utf16), 6);
        assert_eq!(index.offset(text, pos(1, 3), Encoding::Utf16), 11);
        assert_eq!(index.offset(text, pos(2, 0), Encoding::Utf16), 15);
        assert_eq!(index.offset(text, pos(9, 0), Encoding::Utf16), text.len());
        assert_eq!(index.position(text, 2, Encoding::Utf8), pos(0, 1));
        assert_eq!(index.line_end(text, 0, Encoding::Utf16), pos(0, 4));
    }

    #[test]
    fn chunk_ranges_span_whole_lines() {
        let text = "x = 1\n@dec\ndef f():\n    return 1\n";
        let index = LineIndex::new(text);
        let start = text.find('@').unwrap();
        let end = text.len() - 1;
        let range = chunk_range(text, &index, start, end, Encoding::Utf16);
        assert_eq!((range.start, range.end), (pos(1, 0), pos(3, 12)));
    }

    #[test]
    fn file_uris_round_trip_with_percent_encoding() {
        let path = Path::new("/tmp/my proj/é.py");
        let uri = path_to_uri(path).unwrap();
        assert_eq!(uri.as_str(), "file:///tmp/my%20proj/%C3%A9.py");
        assert_eq!(uri_to_path(&uri).unwrap(), path);
        assert_eq!(join_uri("file:///tmp/my%20proj/", "a b.py").unwrap().as_str(), "file:///tmp/my%20proj/a%20b.py");
        assert_eq!(uri_to_path(&"untitled:Untitled-1".parse().unwrap()), None);
    }
}
