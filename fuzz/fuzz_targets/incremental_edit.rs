//! The language server's keystroke path: random edit sequences on random text, each applied with
//! `Tree::edit` and an incremental reparse, must chunk exactly like a parse from scratch.
#![no_main]

use aurora::index::edit::input_edit;
use aurora::index::lang::python;
use libfuzzer_sys::fuzz_target;

const ALPHABET: &[&str] = &[
    "def ", "class ", "(", ")", ":", "\n", "    ", "x", "y = 1", "\"\"\"doc\"\"\"", "return", "@d\n", "#", "'", "é", "\t",
];

fn shape(file: &aurora::index::chunk::ChunkedFile) -> Vec<(String, String, std::ops::Range<usize>, u32, u32, bool)> {
    file.chunks
        .iter()
        .map(|c| (c.kind.as_str().to_owned(), c.qualified_name.clone(), c.bytes.clone(), c.start_line, c.end_line, c.parse_partial))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let split = (n as usize).min(rest.len());
    let mut text = String::from_utf8_lossy(&rest[..split]).into_owned();
    let mut parser = python::new_parser();
    let Some(mut tree) = parser.parse(&text, None) else { return };
    let opts = python::ChunkOptions::default();
    for op in rest[split..].chunks(4) {
        if op.len() < 4 {
            break;
        }
        // Positions on char boundaries.
        let at = |b: u8| {
            let mut i = (b as usize * text.len()) / 255;
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let start = at(op[0]);
        let mut end = (start + (op[1] as usize % 8)).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let insert: String = (0..(op[2] % 3)).map(|k| ALPHABET[(op[3] as usize + k as usize) % ALPHABET.len()]).collect();
        let edit = input_edit(&text, start, end, &insert);
        text.replace_range(start..end, &insert);
        tree.edit(&edit);
        let Some(next) = parser.parse(&text, Some(&tree)) else { return };
        tree = next;
    }
    let incremental = python::chunk_tree(&tree, "pkg/mod.py", &text, &opts);
    let mut cold_parser = python::new_parser();
    // Error recovery may build a different tree incrementally than from scratch (tree-sitter does not
    // promise the same recovery), which is why a buffer that does not parse keeps its last good
    // chunks in the store. For text that parses, the two must agree exactly.
    if cold_parser.parse(&text, None).is_none_or(|t| t.root_node().has_error()) {
        return;
    }
    let Ok(cold) = python::chunk_file(&mut cold_parser, "pkg/mod.py", &text, &opts) else { return };
    assert_eq!(shape(&incremental), shape(&cold), "text: {text:?}");
});
