//! The Python chunker on arbitrary bytes: never panics, and every chunk is a well-formed slice of
//! the text (ranges inside it, lines ordered, content equal to the bytes it claims).
#![no_main]

use aurora::index::lang::python;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parser = python::new_parser();
    let opts = python::ChunkOptions::default();
    let Ok(file) = python::chunk_file(&mut parser, "pkg/mod.py", &text, &opts) else { return };
    for c in &file.chunks {
        assert!(c.bytes.start <= c.bytes.end && c.bytes.end <= text.len(), "{:?}", c.bytes);
        assert!(c.start_line <= c.def_line && c.def_line <= c.end_line, "{c:?}");
        // Content never invents text: nested definitions become `...` (class skeletons, functions
        // with inner defs, error recovery, where a definition starting mid-line joins the text around
        // it on one line), and every other word is a word of the chunk's range.
        let region = &text[c.bytes.clone()];
        for word in c.content.split_whitespace() {
            let w = word.trim_matches('\u{feff}');
            assert!(w.is_empty() || w.contains("...") || region.contains(w), "{w:?} not in {region:?}");
        }
    }
});
