//! Structured citations checked against the store, the open documents and what the models were shown
//! (spec/soar.md §11), and the `[cK]` markers rewritten to display numbers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use regex::Regex;
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::Value;

use crate::soar::retrieve::chunk_id;
use crate::soar::types::{Citation, CitationSource, CitationStats, ContextChunk, DropReason, hex, location};
use crate::soar::workspace::{Workspace, line_count};
use crate::store::StoreError;
use crate::store::read;

/// A citation as a model writes it: 1-based inclusive lines.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct RawCitation {
    pub id: Value,
    pub chunk_id: Option<String>,
    pub file: Option<String>,
    pub start_line: Option<i64>,
    pub end_line: Option<i64>,
}

impl RawCitation {
    /// The marker name, `c1` for `"c1"`, `"[c1]"` or `1`.
    pub fn marker(&self) -> Option<String> {
        match &self.id {
            Value::String(s) => {
                let s = s.trim().trim_start_matches('[').trim_end_matches(']').trim().to_lowercase();
                if s.is_empty() {
                    None
                } else if s.starts_with('c') {
                    Some(s)
                } else {
                    Some(format!("c{s}"))
                }
            }
            Value::Number(n) => Some(format!("c{n}")),
            _ => None,
        }
    }
}

/// A chunk some model was shown during this query.
#[derive(Clone, Debug)]
pub struct ShownChunk {
    pub file: String,
    pub start_line: u32,
    pub end_line: u32,
    pub content_hash: String,
    pub name: String,
}

/// Everything shown to a model during one query (phase 2 context, agents' retrievals, dependency
/// outputs). Citations outside it are dropped as `NotInContext`.
#[derive(Default)]
pub struct Shown {
    inner: Mutex<(HashMap<String, ShownChunk>, HashSet<String>)>,
}

impl Shown {
    pub fn add(&self, chunks: &[ContextChunk]) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for c in chunks {
            g.1.insert(c.file.clone());
            g.0.entry(c.chunk_id.clone()).or_insert_with(|| ShownChunk {
                file: c.file.clone(),
                start_line: c.start_line,
                end_line: c.end_line,
                content_hash: c.content_hash.clone(),
                name: c.qualified_name.clone(),
            });
        }
    }

    fn snapshot(&self) -> (HashMap<String, ShownChunk>, HashSet<String>) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A valid citation with the marker the model gave it.
#[derive(Clone, Debug)]
pub struct Checked {
    pub marker: Option<String>,
    pub citation: Citation,
}

/// Checks `raw` (rules 1–6 of spec/soar.md §11; the limit is applied by [`renumber`]).
pub async fn check(
    ws: &Arc<Workspace>,
    shown: &Arc<Shown>,
    raw: Vec<RawCitation>,
    source: CitationSource,
) -> Result<(Vec<Checked>, CitationStats), StoreError> {
    let (chunks, files) = shown.snapshot();
    let ws2 = Arc::clone(ws);
    ws.read(move |r| Ok(check_on(r.connection(), &ws2, &chunks, &files, raw, source))).await
}

fn drop_one(stats: &mut CitationStats, reason: DropReason) {
    stats.dropped += 1;
    *stats.dropped_by_reason.entry(reason).or_default() += 1;
}

fn check_on(
    conn: &Connection,
    ws: &Workspace,
    chunks: &HashMap<String, ShownChunk>,
    files: &HashSet<String>,
    raw: Vec<RawCitation>,
    source: CitationSource,
) -> (Vec<Checked>, CitationStats) {
    let mut stats = CitationStats { given: raw.len() as u32, ..CitationStats::default() };
    let mut out: Vec<Checked> = Vec::new();
    for c in raw {
        match check_one(conn, ws, chunks, files, &c, source) {
            Ok(citation) => {
                // Rule 6: the same chunk with overlapping lines is one citation.
                let same = out.iter().position(|p| {
                    p.citation.file == citation.file
                        && p.citation.chunk_id == citation.chunk_id
                        && p.citation.start_line <= citation.end_line
                        && citation.start_line <= p.citation.end_line
                });
                if let Some(i) = same {
                    let start = out[i].citation.start_line.min(citation.start_line);
                    let end = out[i].citation.end_line.max(citation.end_line);
                    for p in out
                        .iter_mut()
                        .filter(|p| p.citation.file == citation.file && p.citation.chunk_id == citation.chunk_id)
                    {
                        p.citation.start_line = start;
                        p.citation.end_line = end;
                    }
                    if out[i].marker.is_none() {
                        out[i].marker = c.marker();
                    } else if let Some(m) = c.marker() {
                        // Both markers point at the merged citation.
                        let merged = out[i].citation.clone();
                        out.push(Checked { marker: Some(m), citation: merged });
                    }
                    continue;
                }
                stats.valid += 1;
                stats.stale += u32::from(citation.stale);
                out.push(Checked { marker: c.marker(), citation });
            }
            Err(reason) => drop_one(&mut stats, reason),
        }
    }
    (out, stats)
}

fn lines_of(c: &RawCitation) -> Result<Option<(u32, u32)>, DropReason> {
    match (c.start_line, c.end_line) {
        (None, None) => Ok(None),
        (Some(s), None) => crate::soar::types::model_lines(s, s).map(Some).ok_or(DropReason::Malformed),
        (Some(s), Some(e)) => crate::soar::types::model_lines(s, e).map(Some).ok_or(DropReason::Malformed),
        (None, Some(_)) => Err(DropReason::Malformed),
    }
}

fn clamp(given: Option<(u32, u32)>, start: u32, end: u32) -> Result<(u32, u32), DropReason> {
    match given {
        None => Ok((start, end)),
        Some((s, e)) if s <= end && e >= start => Ok((s.max(start), e.min(end))),
        Some(_) => Err(DropReason::OutOfRange),
    }
}

fn check_one(
    conn: &Connection,
    ws: &Workspace,
    shown: &HashMap<String, ShownChunk>,
    files: &HashSet<String>,
    c: &RawCitation,
    source: CitationSource,
) -> Result<Citation, DropReason> {
    let lines = lines_of(c)?;
    let file = c.file.as_deref().map(|f| f.trim().trim_start_matches("./").to_owned()).filter(|f| !f.is_empty());
    let id = c.chunk_id.as_deref().map(str::trim).filter(|s| !s.is_empty() && *s != "null");
    if let Some(id) = id {
        if id.starts_with("buffer:") {
            let s = shown.get(id).ok_or(DropReason::UnknownChunk)?;
            if file.as_ref().is_some_and(|f| *f != s.file) {
                return Err(DropReason::FileMismatch);
            }
            let (start, end) = clamp(lines, s.start_line, s.end_line)?;
            return Ok(citation(
                None,
                &s.file,
                start,
                end,
                s.name.clone(),
                Some(s.content_hash.clone()),
                false,
                source,
            ));
        }
        let cid = chunk_id(id).ok_or(DropReason::UnknownChunk)?;
        let row = read::chunk_rows(conn, &[cid]).ok().and_then(|mut v| v.pop()).ok_or(DropReason::UnknownChunk)?;
        if file.as_ref().is_some_and(|f| *f != row.file) {
            return Err(DropReason::FileMismatch);
        }
        let (start, end) = clamp(lines, row.start_line, row.end_line)?;
        let key = row.id.to_string();
        let Some(seen) = shown.get(&key) else {
            return Err(DropReason::NotInContext);
        };
        let hash = hex(&row.content_hash);
        let stale = seen.content_hash != hash;
        return Ok(citation(Some(key), &row.file, start, end, row.qualified_name.clone(), Some(hash), stale, source));
    }
    let (Some(file), Some((start, end))) = (file, lines) else {
        return Err(DropReason::Malformed);
    };
    let open = ws.document(&file).is_some();
    let indexed = read::file(conn, &file).ok().flatten().is_some_and(|f| f.status == "ok" || f.status == "partial");
    if !open && !indexed {
        return Err(DropReason::UnknownChunk);
    }
    let n = ws.file_text(&file).map(|t| line_count(&t.text)).ok_or(DropReason::UnknownChunk)?;
    if end >= n {
        return Err(DropReason::OutOfRange);
    }
    if !files.contains(&file) {
        return Err(DropReason::NotInContext);
    }
    let covering = read::chunks_of_file(conn, &file)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.start_line <= start && r.end_line >= end)
        .min_by_key(|r| r.end_line - r.start_line);
    let name = covering
        .as_ref()
        .map_or_else(|| file.rsplit('/').next().unwrap_or(&file).to_owned(), |r| r.qualified_name.clone());
    Ok(citation(
        covering.as_ref().map(|r| r.id.to_string()),
        &file,
        start,
        end,
        name,
        covering.as_ref().map(|r| hex(&r.content_hash)),
        false,
        source,
    ))
}

#[allow(clippy::too_many_arguments)]
fn citation(
    chunk_id: Option<String>,
    file: &str,
    start_line: u32,
    end_line: u32,
    name: String,
    content_hash: Option<String>,
    stale: bool,
    source: CitationSource,
) -> Citation {
    Citation { n: 0, chunk_id, file: file.to_owned(), start_line, end_line, name, content_hash, stale, source }
}

fn marker_re() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\[\s*[cC](\d+)\s*\]").expect("valid regex"))
}

/// Rewrites `[cK]` markers of valid citations to `[n]` in order of first appearance, removes markers of
/// dropped or unknown ones, keeps unreferenced valid citations after the referenced ones, and applies
/// the limit (`OverLimit`).
pub fn renumber(text: &str, checked: Vec<Checked>, max: usize, stats: &mut CitationStats) -> (String, Vec<Citation>) {
    let by_marker: BTreeMap<String, usize> =
        checked.iter().enumerate().filter_map(|(i, c)| Some((c.marker.clone()?, i))).collect();
    let mut order: Vec<usize> = Vec::new();
    let mut number_of: HashMap<usize, u32> = HashMap::new();
    let mut citations: Vec<Citation> = Vec::new();
    // Merged duplicates share one citation: key by location.
    let mut by_location: HashMap<(String, Option<String>, u32, u32), u32> = HashMap::new();
    let mut assign = |i: usize, citations: &mut Vec<Citation>| -> Option<u32> {
        if let Some(n) = number_of.get(&i) {
            return Some(*n);
        }
        let c = &checked[i].citation;
        let key = (c.file.clone(), c.chunk_id.clone(), c.start_line, c.end_line);
        if let Some(n) = by_location.get(&key) {
            number_of.insert(i, *n);
            return Some(*n);
        }
        if citations.len() >= max {
            return None;
        }
        let n = citations.len() as u32 + 1;
        let mut c = c.clone();
        c.n = n;
        citations.push(c);
        by_location.insert(key, n);
        number_of.insert(i, n);
        order.push(i);
        Some(n)
    };
    let rewritten = marker_re()
        .replace_all(text, |caps: &regex::Captures<'_>| {
            let marker = format!("c{}", &caps[1]);
            match by_marker.get(&marker).and_then(|i| assign(*i, &mut citations)) {
                Some(n) => format!("[{n}]"),
                None => String::new(),
            }
        })
        .into_owned();
    let referenced = citations.len();
    for i in 0..checked.len() {
        let _ = assign(i, &mut citations);
    }
    let distinct: HashSet<(String, Option<String>, u32, u32)> = checked
        .iter()
        .map(|c| (c.citation.file.clone(), c.citation.chunk_id.clone(), c.citation.start_line, c.citation.end_line))
        .collect();
    let over = distinct.len().saturating_sub(citations.len()) as u32;
    if over > 0 {
        stats.valid = stats.valid.saturating_sub(over);
        stats.dropped += over;
        *stats.dropped_by_reason.entry(DropReason::OverLimit).or_default() += over;
    }
    stats.unreferenced = (citations.len() - referenced) as u32;
    (tidy(&rewritten), citations)
}

/// Spaces left before punctuation by removed markers.
fn tidy(text: &str) -> String {
    text.replace(" .", ".").replace(" ,", ",").replace("  ", " ")
}

/// Markers replaced by their resolved location, `(path:L10-L24)`, for text passed to another model.
pub fn resolve_markers(text: &str, checked: &[Checked]) -> String {
    marker_re()
        .replace_all(text, |caps: &regex::Captures<'_>| {
            let marker = format!("c{}", &caps[1]);
            checked
                .iter()
                .find(|c| c.marker.as_deref() == Some(marker.as_str()))
                .map(|c| format!("({})", location(&c.citation.file, c.citation.start_line, c.citation.end_line)))
                .unwrap_or_default()
        })
        .into_owned()
}

/// `valid / (valid + dropped)` when the answer cited anything, 0.6 when it cited nothing although its
/// prompt held source chunks, 1.0 when it had none (spec/soar.md §10).
pub fn citation_factor(stats: &CitationStats, had_sources: bool) -> f64 {
    if stats.given > 0 {
        let total = stats.valid + stats.dropped;
        if total == 0 { 1.0 } else { f64::from(stats.valid) / f64::from(total) }
    } else if had_sources {
        0.6
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(marker: &str, file: &str, start: u32) -> Checked {
        Checked {
            marker: Some(marker.into()),
            citation: citation(
                Some(format!("{start:016x}")),
                file,
                start,
                start + 2,
                "f".into(),
                None,
                false,
                CitationSource::Synthesis,
            ),
        }
    }

    #[test]
    fn markers_are_renumbered_in_order_of_appearance() {
        let mut stats = CitationStats { given: 3, valid: 3, ..Default::default() };
        let (text, cites) = renumber(
            "B is in [c2], A in [c1] and again [c2]; [c9] is gone.",
            vec![checked("c1", "a.py", 1), checked("c2", "b.py", 5), checked("c3", "c.py", 9)],
            20,
            &mut stats,
        );
        assert_eq!(text, "B is in [1], A in [2] and again [1]; is gone.");
        assert_eq!(
            cites.iter().map(|c| (c.n, c.file.as_str())).collect::<Vec<_>>(),
            vec![(1, "b.py"), (2, "a.py"), (3, "c.py")]
        );
        assert_eq!(stats.unreferenced, 1);
    }

    #[test]
    fn the_limit_drops_the_rest() {
        let mut stats = CitationStats { given: 3, valid: 3, ..Default::default() };
        let (text, cites) = renumber(
            "[c1] [c2] [c3]",
            vec![checked("c1", "a.py", 1), checked("c2", "b.py", 5), checked("c3", "c.py", 9)],
            2,
            &mut stats,
        );
        assert_eq!(cites.len(), 2);
        assert_eq!(text.trim(), "[1] [2]");
        assert_eq!(stats.dropped_by_reason.get(&DropReason::OverLimit), Some(&1));
        assert_eq!(stats.valid, 2);
    }

    #[test]
    fn resolved_markers_name_locations() {
        let text = resolve_markers("see [c1]", &[checked("c1", "a.py", 9)]);
        assert_eq!(text, "see (a.py:L10-L12)");
    }

    #[test]
    fn citation_factor_follows_the_spec() {
        let s = CitationStats { given: 4, valid: 3, dropped: 1, ..Default::default() };
        assert!((citation_factor(&s, true) - 0.75).abs() < 1e-9);
        assert!((citation_factor(&CitationStats::default(), true) - 0.6).abs() < 1e-9);
        assert!((citation_factor(&CitationStats::default(), false) - 1.0).abs() < 1e-9);
    }
}
