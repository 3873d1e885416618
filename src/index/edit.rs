//! Text edits for incremental reparsing: a byte-range replacement applied to a text and to the
//! tree-sitter tree of that text, with the points tree-sitter expects (rows counted by `\n`,
//! columns in bytes; spec/lsp.md §2.2).

use tree_sitter::{InputEdit, Point, Tree};

/// A text with the tree of its last parse, kept in step with every edit.
#[derive(Clone, Default)]
pub struct EditedText {
    text: String,
    /// The last parsed tree, edited by every change since; `None` until the first parse, or after
    /// a change that replaced the whole text.
    tree: Option<Tree>,
}

impl EditedText {
    pub fn new(text: String) -> EditedText {
        EditedText { text, tree: None }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn tree(&self) -> Option<&Tree> {
        self.tree.as_ref()
    }

    /// Replaces the whole text; the next parse starts from scratch.
    pub fn replace_all(&mut self, text: String) {
        self.text = text;
        self.tree = None;
    }

    /// Replaces bytes `start..old_end` by `new_text`, and edits the tree the same way.
    /// `start` and `old_end` must be character boundaries with `start <= old_end <= len`.
    pub fn replace(&mut self, start: usize, old_end: usize, new_text: &str) {
        let edit = input_edit(&self.text, start, old_end, new_text);
        self.text.replace_range(start..old_end, new_text);
        if let Some(tree) = &mut self.tree {
            tree.edit(&edit);
        }
    }

    /// Keeps `tree` as the parse of the current text.
    pub fn set_tree(&mut self, tree: Tree) {
        self.tree = Some(tree);
    }
}

/// The `InputEdit` for replacing `start..old_end` of `before` by `new_text`.
pub fn input_edit(before: &str, start: usize, old_end: usize, new_text: &str) -> InputEdit {
    let start_position = point_at(before, start);
    let old_end_position = advance(start_position, &before.as_bytes()[start..old_end]);
    let new_end_position = advance(start_position, new_text.as_bytes());
    InputEdit {
        start_byte: start,
        old_end_byte: old_end,
        new_end_byte: start + new_text.len(),
        start_position,
        old_end_position,
        new_end_position,
    }
}

/// The tree-sitter point of byte `offset` in `text`.
pub fn point_at(text: &str, offset: usize) -> Point {
    advance(Point { row: 0, column: 0 }, &text.as_bytes()[..offset])
}

fn advance(from: Point, bytes: &[u8]) -> Point {
    match bytes.iter().rposition(|&b| b == b'\n') {
        None => Point { row: from.row, column: from.column + bytes.len() },
        Some(last) => {
            let rows = bytes.iter().filter(|&&b| b == b'\n').count();
            Point { row: from.row + rows, column: bytes.len() - last - 1 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::lang::python;

    #[test]
    fn points_count_rows_by_newline_and_columns_in_bytes() {
        let text = "ab\ncé\r\nx";
        assert_eq!(point_at(text, 0), Point { row: 0, column: 0 });
        assert_eq!(point_at(text, 3), Point { row: 1, column: 0 });
        assert_eq!(point_at(text, 6), Point { row: 1, column: 3 }, "é is two bytes, \\r is a column");
        assert_eq!(point_at(text, text.len()), Point { row: 2, column: 1 });
        let edit = input_edit(text, 1, 4, "Z\n\nYY");
        assert_eq!(edit.old_end_position, Point { row: 1, column: 1 });
        assert_eq!(edit.new_end_position, Point { row: 2, column: 2 });
        assert_eq!(edit.new_end_byte, 1 + 5);
    }

    /// Incremental reparses after random edits give the same tree as parsing the final text.
    #[test]
    fn incremental_reparse_matches_a_fresh_parse() {
        let mut parser = python::new_parser();
        let mut doc = EditedText::new("def f(a):\n    return a\n\nclass C:\n    x = 1\n".to_owned());
        let pieces = ["def g():\n    pass\n", "(", ")", "é", "\n", "  ", "return 2", "class D:\n", "#c", ""];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for round in 0..300 {
            let len = doc.text().len();
            let mut a = next(len + 1);
            let mut b = (a + next(6)).min(len);
            while !doc.text().is_char_boundary(a) {
                a -= 1;
            }
            while !doc.text().is_char_boundary(b) {
                b += 1;
            }
            let piece = pieces[next(pieces.len())];
            doc.replace(a, b, piece);
            if round % 3 == 0 {
                let tree = python::reparse(&mut parser, doc.text(), doc.tree(), 0).expect("no budget");
                let fresh = python::reparse(&mut parser, doc.text(), None, 0).expect("no budget");
                assert_eq!(tree.root_node().to_sexp(), fresh.root_node().to_sexp(), "after round {round}");
                doc.set_tree(tree);
            }
        }
    }
}
