//! Minimal line edits from an old text to a new one: unchanged lines are never touched, so an
//! editor keeps its cursor, folds and marks on them (spec/lsp.md §5.4).

use crate::lsp::convert::{Encoding, LineIndex};
use crate::lsp::lsp;

/// Above this many cells (old × new changed lines) the diff is one replacement: the table would
/// cost more memory than the edit is worth (2000 × 2000 lines is 16 MB of `u32`).
const MAX_CELLS: usize = 4_000_000;

/// Edits that turn `old` into `new`, each replacing whole lines, in document order.
pub(crate) fn line_edits(old: &str, new: &str, enc: Encoding) -> Vec<lsp::TextEdit> {
    let index = LineIndex::new(old);
    hunks(old, new)
        .into_iter()
        .map(|h| lsp::TextEdit {
            range: lsp::Range {
                start: index.position(old, h.old_start, enc),
                end: index.position(old, h.old_end, enc),
            },
            new_text: h.new_text,
        })
        .collect()
}

/// Bytes `old_start..old_end` of the old text become `new_text`.
#[derive(Debug, PartialEq)]
struct Hunk {
    old_start: usize,
    old_end: usize,
    new_text: String,
}

/// Lines with their terminators, and each line's byte offset.
fn lines(text: &str) -> (Vec<&str>, Vec<usize>) {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut offsets = Vec::with_capacity(lines.len() + 1);
    let mut at = 0;
    for l in &lines {
        offsets.push(at);
        at += l.len();
    }
    offsets.push(at);
    (lines, offsets)
}

fn hunks(old: &str, new: &str) -> Vec<Hunk> {
    let (a, a_at) = lines(old);
    let (b, _) = lines(new);
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..].iter().rev().zip(b[prefix..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (a_mid, b_mid) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    // Pairs of equal lines (old index, new index) in the middle, by longest common subsequence.
    let mut common: Vec<(usize, usize)> = Vec::new();
    if !a_mid.is_empty() && !b_mid.is_empty() && (a_mid.len() + 1) * (b_mid.len() + 1) <= MAX_CELLS {
        let (n, m) = (a_mid.len(), b_mid.len());
        let mut table = vec![0u32; (n + 1) * (m + 1)];
        let at = |i: usize, j: usize| i * (m + 1) + j;
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                table[at(i, j)] = if a_mid[i] == b_mid[j] {
                    table[at(i + 1, j + 1)] + 1
                } else {
                    table[at(i + 1, j)].max(table[at(i, j + 1)])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n && j < m {
            if a_mid[i] == b_mid[j] {
                common.push((i, j));
                i += 1;
                j += 1;
            } else if table[at(i + 1, j)] >= table[at(i, j + 1)] {
                i += 1;
            } else {
                j += 1;
            }
        }
    }
    common.push((a_mid.len(), b_mid.len()));
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    for (ci, cj) in common {
        if ci > i || cj > j {
            out.push(Hunk { old_start: a_at[prefix + i], old_end: a_at[prefix + ci], new_text: b_mid[j..cj].concat() });
        }
        i = ci + 1;
        j = cj + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies hunks back to front and checks the result, returning `(start, end, text)` triples.
    fn check(old: &str, new: &str) -> Vec<(usize, usize, String)> {
        let hs = hunks(old, new);
        let mut text = old.to_owned();
        for h in hs.iter().rev() {
            text.replace_range(h.old_start..h.old_end, &h.new_text);
        }
        assert_eq!(text, new);
        hs.into_iter().map(|h| (h.old_start, h.old_end, h.new_text)).collect()
    }

    #[test]
    fn an_inserted_docstring_is_one_insertion() {
        let old = "def f(x):\n    return x\n";
        let new = "def f(x):\n    \"\"\"Return x.\"\"\"\n    return x\n";
        assert_eq!(check(old, new), [(10, 10, "    \"\"\"Return x.\"\"\"\n".to_owned())]);
    }

    #[test]
    fn unchanged_lines_between_changes_are_not_touched() {
        let old = "a\nb\nc\nd\ne\n";
        let new = "a\nB\nc\nd\nE\n";
        assert_eq!(check(old, new), [(2, 4, "B\n".to_owned()), (8, 10, "E\n".to_owned())]);
    }

    #[test]
    fn identical_texts_need_no_edit_and_odd_endings_round_trip() {
        assert!(check("a\nb", "a\nb").is_empty());
        check("a\nb", "a\nb\nc");
        check("", "x\n");
        check("x\ny\n", "");
        check("a\r\nb\r\n", "a\r\nc\r\n");
    }

    #[test]
    fn edits_come_as_positions_in_the_old_text() {
        let edits = line_edits("é = 1\nx = 2\n", "é = 1\ny = 2\n", Encoding::Utf16);
        assert_eq!(edits.len(), 1);
        assert_eq!(edits[0].range.start, lsp::Position { line: 1, character: 0 });
        assert_eq!(edits[0].range.end, lsp::Position { line: 2, character: 0 });
        assert_eq!(edits[0].new_text, "y = 2\n");
    }
}
