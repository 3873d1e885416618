//! Position-encoding conversions on arbitrary text and positions: offsets stay on char boundaries
//! inside the text, and a position made from an offset maps back to that offset, in UTF-8 and UTF-16.
#![no_main]

use aurora::lsp::convert::{Encoding, LineIndex};
use libfuzzer_sys::fuzz_target;
use tower_lsp_server::ls_types::Position;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (pos, body) = data.split_at(4);
    let text = String::from_utf8_lossy(body);
    let index = LineIndex::new(&text);
    for enc in [Encoding::Utf8, Encoding::Utf16] {
        let p = Position { line: u32::from(pos[0] % 16), character: u32::from(u16::from_le_bytes([pos[1], pos[2]])) };
        let offset = index.offset(&text, p, enc);
        assert!(offset <= text.len() && text.is_char_boundary(offset), "{p:?} → {offset}");
        let mut o = (pos[3] as usize * text.len()) / 255;
        while !text.is_char_boundary(o) {
            o -= 1;
        }
        let back = index.position(&text, o, enc);
        // No position addresses the point between `\r` and `\n`: it maps to the line's end.
        let bytes = text.as_bytes();
        let expected = if o > 0 && bytes[o - 1] == b'\r' && bytes.get(o) == Some(&b'\n') { o - 1 } else { o };
        assert_eq!(index.offset(&text, back, enc), expected, "{enc:?}: {o} → {back:?}");
    }
});
