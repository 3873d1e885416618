//! The code-aware tokenizer shared by indexing and queries (spec/memory.md §3.6).
//!
//! FTS5 only splits on the spaces we emit, so this is the one place that decides what a term is.

use rust_stemmers::{Algorithm, Stemmer};

use crate::config::Stemming;

/// Bumped whenever the output of [`Tokenizer`] changes for some input (forces a re-index).
pub const TOKENIZER_VERSION: u32 = 1;

/// Words longer than this emit their parts but not the whole word (hashes, base64 blobs).
const MAX_WHOLE_WORD: usize = 64;

/// Identifiers repeat endlessly (`self`, `value`, `request`), and stemming is the costly step:
/// each thread remembers the stems it has computed (English is the only stemmer, so one cache).
const STEM_CACHE_MAX: usize = 50_000;

thread_local! {
    static STEMS: std::cell::RefCell<std::collections::HashMap<String, String>> = Default::default();
}

pub struct Tokenizer {
    stemmer: Option<Stemmer>,
}

impl Tokenizer {
    pub fn new(stemming: Stemming) -> Tokenizer {
        let stemmer = match stemming {
            Stemming::English => Some(Stemmer::create(Algorithm::English)),
            Stemming::None => None,
        };
        Tokenizer { stemmer }
    }

    /// `tokenizer_version` as stored in the store's `meta` table: version plus stemming mode.
    pub fn version_tag(&self) -> String {
        let mode = if self.stemmer.is_some() { "english" } else { "none" };
        format!("{TOKENIZER_VERSION}-{mode}")
    }

    /// Every token of `text`, in order, duplicates kept.
    pub fn tokens(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.each_token(text, |t| out.push(t.to_owned()));
        out
    }

    /// Appends the tokens of `text` to `out`, space-separated (the FTS document form).
    pub fn push_document(&self, text: &str, out: &mut String) {
        self.each_token(text, |t| {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(t);
        });
    }

    /// Calls `emit` with each token of `text`, in order.
    pub fn each_token(&self, text: &str, mut emit: impl FnMut(&str)) {
        self.each_token_raw(text, |_, token| emit(token));
    }

    /// Calls `emit(unstemmed, token)` with each token of `text`: the lower-cased part before
    /// stemming (to test it against a word list) and the token itself.
    pub fn each_token_raw(&self, text: &str, mut emit: impl FnMut(&str, &str)) {
        let mut buf = String::new();
        let mut ranges = Vec::new();
        for word in words(text) {
            self.word_tokens(word, &mut buf, &mut ranges, &mut emit);
        }
    }

    fn word_tokens(
        &self,
        word: &str,
        buf: &mut String,
        ranges: &mut Vec<(usize, usize)>,
        emit: &mut impl FnMut(&str, &str),
    ) {
        let mut parts = 0usize;
        let mut first_part: Option<(usize, usize)> = None;
        parts_of(word, ranges);
        for &(start, end) in ranges.iter() {
            parts += 1;
            first_part.get_or_insert((start, end));
            let part = &word[start..end];
            if part.bytes().all(|b| b.is_ascii_digit()) && part.len() == 1 {
                continue; // one-digit numbers carry no meaning
            }
            buf.clear();
            lowercase_into(part, buf);
            match &self.stemmer {
                Some(stemmer) if buf.chars().count() >= 4 && buf.chars().all(char::is_alphabetic) => {
                    STEMS.with(|cache| {
                        let mut cache = cache.borrow_mut();
                        if let Some(stem) = cache.get(buf.as_str()) {
                            emit(buf, stem);
                        } else {
                            let stem = stemmer.stem(buf).into_owned();
                            emit(buf, &stem);
                            if cache.len() >= STEM_CACHE_MAX {
                                cache.clear();
                            }
                            cache.insert(buf.clone(), stem);
                        }
                    });
                }
                _ => emit(buf, buf),
            }
        }
        let trimmed_is_part = first_part.is_some_and(|(s, e)| word[s..e].len() == word.len());
        if (parts > 1 || (parts == 1 && !trimmed_is_part)) && word.chars().count() <= MAX_WHOLE_WORD {
            buf.clear();
            lowercase_into(word, buf);
            emit(buf, buf);
        }
    }
}

fn lowercase_into(s: &str, out: &mut String) {
    if s.is_ascii() {
        out.extend(s.bytes().map(|b| b.to_ascii_lowercase() as char));
    } else {
        out.extend(s.chars().flat_map(char::to_lowercase));
    }
}

fn is_word_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Maximal runs of letters, digits and `_` (rule 1). Combining marks end a word, so `unicode61`
/// never sees a character it would split on.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_word_char(c)).filter(|w| !w.is_empty())
}

#[derive(Clone, Copy, PartialEq)]
enum Class {
    Lower,
    Upper,
    Digit,
    Other,
}

fn class(c: char) -> Class {
    if c.is_numeric() {
        Class::Digit
    } else if c.is_uppercase() {
        Class::Upper
    } else if c.is_alphabetic() {
        Class::Lower
    } else {
        Class::Other
    }
}

/// Byte ranges of the parts of `word` (rule 2): split on `_`, lower→upper, upper→upper+lower, and
/// letter↔digit boundaries. Written into `out` (cleared first) to spare an allocation per word.
fn parts_of(word: &str, out: &mut Vec<(usize, usize)>) {
    out.clear();
    for (seg_start, seg) in split_underscores(word) {
        let mut chars = seg.char_indices().map(|(i, c)| (i, class(c))).peekable();
        let Some((_, mut prev)) = chars.next() else { continue };
        let mut start = 0usize;
        while let Some((i, cur)) = chars.next() {
            let boundary = match (prev, cur) {
                (Class::Lower, Class::Upper) => true,
                (Class::Upper, Class::Upper) => chars.peek().is_some_and(|(_, next)| *next == Class::Lower),
                (Class::Digit, Class::Lower | Class::Upper) | (Class::Lower | Class::Upper, Class::Digit) => true,
                _ => false,
            };
            if boundary {
                out.push((seg_start + start, seg_start + i));
                start = i;
            }
            prev = cur;
        }
        out.push((seg_start + start, seg_start + seg.len()));
    }
}

fn split_underscores(word: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = 0;
    word.split('_').filter_map(move |seg| {
        let start = offset;
        offset += seg.len() + 1;
        (!seg.is_empty()).then_some((start, seg))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        let t = Tokenizer::new(Stemming::English);
        assert_eq!(t.tokens(input).join(", "), expected, "tokens of {input:?}");
    }

    #[test]
    fn spec_table() {
        check("getUserData", "get, user, data, getuserdata");
        check("HTTPServer", "http, server, httpserver");
        check("XMLHttpRequest", "xml, http, request, xmlhttprequest");
        check("get_xframe_options_value", "get, xframe, option, valu, get_xframe_options_value");
        check("parseJSON2Data", "pars, json, data, parsejson2data");
        check("__init__", "init, __init__");
        check("sha256", "sha, 256, sha256");
        check("passwords", "password");
        check("ÄnderungsZähler", "änderung, zähler, änderungszähler");
    }

    #[test]
    fn separators_digits_and_long_words() {
        check("os.path.join", "os, path, join");
        check("x-1 v2", "x, v, v2");
        check("snake_case_name", "snake, case, name, snake_case_name");
        let long = "a".repeat(70);
        assert_eq!(Tokenizer::new(Stemming::English).tokens(&long), vec![long.clone()]);
        let long_parts = format!("{}_{}", "a".repeat(40), "b".repeat(40));
        assert_eq!(Tokenizer::new(Stemming::None).tokens(&long_parts), vec!["a".repeat(40), "b".repeat(40)]);
    }

    #[test]
    fn stemming_off_keeps_words() {
        let t = Tokenizer::new(Stemming::None);
        assert_eq!(t.tokens("passwords getValues"), ["passwords", "get", "values", "getvalues"]);
        assert_ne!(t.version_tag(), Tokenizer::new(Stemming::English).version_tag());
    }

    #[test]
    fn document_form_is_space_separated() {
        let mut doc = String::new();
        let t = Tokenizer::new(Stemming::English);
        t.push_document("load_config(path)", &mut doc);
        t.push_document("\"quoted\" NEAR*", &mut doc);
        assert_eq!(doc, "load config load_config path quot near");
    }
}
