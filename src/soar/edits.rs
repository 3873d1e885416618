//! Model-proposed edits checked before anyone sees them (spec/soar.md §8.5): a safe path inside the
//! root, a range within the current text, a unified diff that applies exactly, a create that creates.
//! SOAR never writes a file; [`apply`] computes the new text for a front-end that will.

use std::path::{Component, Path};

use serde::Deserialize;

use crate::soar::types::EditChange;
use crate::soar::workspace::{Workspace, line_count};

/// An edit as an agent's JSON gives it (spec/soar.md §8.3); 1-based inclusive lines.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct RawEdit {
    pub kind: String,
    pub file: String,
    pub start_line: Option<i64>,
    pub end_line: Option<i64>,
    pub new_text: Option<String>,
    pub diff: Option<String>,
    pub description: Option<String>,
}

/// Why an edit was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditDrop {
    /// Absolute, escaping the root (`..`, a symlink), or under `.git/` or `.aurora/`.
    Path,
    /// Not `replace`, `diff` or `create`.
    Kind,
    /// The file does not exist, or a field the kind needs is missing.
    Missing,
    /// Lines outside the file, or start after end.
    Range,
    /// The diff does not parse, names another file, or does not apply exactly.
    Diff,
    /// `create` of a file that exists.
    Exists,
}

impl EditDrop {
    /// The key counted in `EditStats.dropped_by_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            EditDrop::Path => "path",
            EditDrop::Kind => "kind",
            EditDrop::Missing => "missing",
            EditDrop::Range => "range",
            EditDrop::Diff => "diff",
            EditDrop::Exists => "exists",
        }
    }
}

/// A validated edit (0-based inclusive lines).
#[derive(Clone, Debug, PartialEq)]
pub struct ValidEdit {
    pub file: String,
    pub change: EditChange,
    pub description: String,
    /// blake3 hex of the text the edit was validated against (`None` for a create).
    pub base_content_hash: Option<String>,
    pub base_version: Option<i32>,
}

/// blake3 hex of a text: the base an edit is pinned to.
pub fn content_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// Checks one edit against the workspace's current text (open documents first).
pub fn validate(ws: &Workspace, raw: &RawEdit) -> Result<ValidEdit, EditDrop> {
    let file = safe_rel_path(ws.root(), &raw.file)?;
    let description = raw.description.clone().unwrap_or_default().trim().to_owned();
    match raw.kind.trim().to_ascii_lowercase().as_str() {
        "replace" => {
            let current = ws.file_text(&file).ok_or(EditDrop::Missing)?;
            let new_text = raw.new_text.clone().ok_or(EditDrop::Missing)?;
            let (Some(s), Some(e)) = (raw.start_line, raw.end_line) else { return Err(EditDrop::Missing) };
            let n = i64::from(line_count(&current.text));
            if s < 1 || e < s || e > n {
                return Err(EditDrop::Range);
            }
            Ok(ValidEdit {
                file,
                change: EditChange::Replace { start_line: (s - 1) as u32, end_line: (e - 1) as u32, new_text },
                description,
                base_content_hash: Some(content_hash(&current.text)),
                base_version: current.version,
            })
        }
        "diff" => {
            let current = ws.file_text(&file).ok_or(EditDrop::Missing)?;
            let diff = raw.diff.clone().ok_or(EditDrop::Missing)?;
            apply_unified_diff(&current.text, &diff, &file).map_err(|e| {
                tracing::debug!(file, error = %e, "proposed diff dropped");
                EditDrop::Diff
            })?;
            Ok(ValidEdit {
                file,
                change: EditChange::Diff { unified: diff },
                description,
                base_content_hash: Some(content_hash(&current.text)),
                base_version: current.version,
            })
        }
        "create" => {
            if ws.exists(&file) {
                return Err(EditDrop::Exists);
            }
            let new_text = raw.new_text.clone().ok_or(EditDrop::Missing)?;
            Ok(ValidEdit {
                file,
                change: EditChange::Create { new_text },
                description,
                base_content_hash: None,
                base_version: None,
            })
        }
        _ => Err(EditDrop::Kind),
    }
}

/// A normalised relative path that stays inside `root`: no absolute path, no `..` escape, not under
/// `.git/` or `.aurora/`, and no symlink on the way that leads outside.
pub fn safe_rel_path(root: &Path, file: &str) -> Result<String, EditDrop> {
    let text = file.trim().replace('\\', "/");
    if text.is_empty() || text.starts_with('/') || Path::new(&text).is_absolute() || text.contains(':') {
        return Err(EditDrop::Path);
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(&text).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().ok_or(EditDrop::Path)?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop().ok_or(EditDrop::Path)?;
            }
            _ => return Err(EditDrop::Path),
        }
    }
    if parts.is_empty() || matches!(parts[0], ".git" | ".aurora") {
        return Err(EditDrop::Path);
    }
    // The deepest existing ancestor must resolve inside the root (a symlink may not lead out).
    let root_canon = root.canonicalize().map_err(|_| EditDrop::Path)?;
    let mut probe = root.to_path_buf();
    let mut deepest = root_canon.clone();
    for p in &parts {
        probe.push(p);
        match probe.canonicalize() {
            Ok(c) => deepest = c,
            Err(_) => break,
        }
    }
    if !deepest.starts_with(&root_canon) {
        return Err(EditDrop::Path);
    }
    Ok(parts.join("/"))
}

struct Hunk {
    old_start: usize,
    lines: Vec<(char, String)>,
}

fn parse_range(text: &str) -> Result<usize, String> {
    let start = text.split(',').next().unwrap_or_default();
    start.parse().map_err(|_| format!("bad hunk range {text:?}"))
}

fn strip_prefix(path: &str) -> &str {
    let path = path.split('\t').next().unwrap_or(path).trim();
    path.strip_prefix("a/").or_else(|| path.strip_prefix("b/")).unwrap_or(path)
}

/// Applies a unified diff of exactly `file` to `text`, with exact context and no fuzz.
pub fn apply_unified_diff(text: &str, diff: &str, file: &str) -> Result<String, String> {
    let mut hunks: Vec<Hunk> = Vec::new();
    let mut target = None;
    for line in diff.lines() {
        if let Some(rest) = line.strip_prefix("+++ ") {
            target = Some(strip_prefix(rest).to_owned());
        } else if line.starts_with("--- ") && hunks.is_empty() {
            continue;
        } else if let Some(rest) = line.strip_prefix("@@ ") {
            let ranges = rest.split("@@").next().unwrap_or_default().trim();
            let old = ranges.split_whitespace().next().unwrap_or_default();
            let old = old.strip_prefix('-').ok_or_else(|| format!("bad hunk header {line:?}"))?;
            hunks.push(Hunk { old_start: parse_range(old)?, lines: Vec::new() });
        } else if let Some(h) = hunks.last_mut() {
            if line.starts_with('\\') {
                continue; // "\ No newline at end of file"
            }
            let (tag, body) = match line.chars().next() {
                Some(c @ (' ' | '-' | '+')) => (c, line[1..].to_owned()),
                None => (' ', String::new()),
                Some(_) => return Err(format!("unexpected diff line {line:?}")),
            };
            h.lines.push((tag, body));
        }
    }
    if let Some(t) = &target
        && t != file
        && t != "/dev/null"
    {
        return Err(format!("the diff is for {t}, not {file}"));
    }
    if hunks.is_empty() {
        return Err("the diff has no hunks".into());
    }
    let old: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut pos = 0usize;
    for (i, h) in hunks.iter().enumerate() {
        let start = h.old_start.saturating_sub(1);
        let start = if h.old_start == 0 { 0 } else { start };
        if start < pos {
            return Err(format!("hunk {} starts at line {} before the previous hunk ended", i + 1, h.old_start));
        }
        if start > old.len() {
            return Err(format!("hunk {} starts at line {}, after the end of the file", i + 1, h.old_start));
        }
        out.extend(old[pos..start].iter().map(|l| (*l).to_owned()));
        let mut at = start;
        for (tag, body) in &h.lines {
            match tag {
                ' ' | '-' => {
                    let actual = old.get(at).ok_or_else(|| format!("hunk {} runs past the end of the file", i + 1))?;
                    if actual.trim_end_matches('\r') != body.trim_end_matches('\r') {
                        return Err(format!(
                            "hunk {} does not match line {}: expected {body:?}, found {actual:?}",
                            i + 1,
                            at + 1
                        ));
                    }
                    if *tag == ' ' {
                        out.push((*actual).to_owned());
                    }
                    at += 1;
                }
                _ => out.push(body.clone()),
            }
        }
        pos = at;
    }
    out.extend(old[pos..].iter().map(|l| (*l).to_owned()));
    let mut result = out.join("\n");
    if text.ends_with('\n') || (text.is_empty() && !result.is_empty()) {
        result.push('\n');
    }
    Ok(result)
}

/// The whole new text after `change` is applied to `text`.
pub fn apply(text: &str, change: &EditChange) -> Result<String, String> {
    match change {
        EditChange::Create { new_text } => Ok(new_text.clone()),
        EditChange::Diff { unified } => {
            let target = unified
                .lines()
                .find_map(|l| l.strip_prefix("+++ "))
                .map(|t| strip_prefix(t).to_owned())
                .unwrap_or_default();
            apply_unified_diff(text, unified, &target)
        }
        EditChange::Replace { start_line, end_line, new_text } => {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let (s, e) = (*start_line as usize, *end_line as usize);
            if s > e || e >= lines.len() {
                return Err(format!("lines {}-{} are outside the text ({} lines)", s + 1, e + 1, lines.len()));
            }
            let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
            let mut out: String = lines[..s].concat();
            out.push_str(new_text);
            let replaced_had_eol = lines[e].ends_with('\n');
            if replaced_had_eol && !new_text.is_empty() && !new_text.ends_with('\n') {
                out.push_str(eol);
            }
            out.push_str(&lines[e + 1..].concat());
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MemoryConfig;
    use crate::store::StorePath;

    fn ws(files: &[(&str, &str)]) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        for (p, t) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, t).unwrap();
        }
        let root = dir.path().canonicalize().unwrap();
        let w = Workspace::new(root.clone(), StorePath::for_root(&root), None, &MemoryConfig::default());
        (dir, w)
    }

    #[test]
    fn paths_must_stay_inside_the_root() {
        let (dir, _) = ws(&[("a/b.py", "x\n")]);
        let root = dir.path();
        assert_eq!(safe_rel_path(root, "./a/b.py"), Ok("a/b.py".into()));
        assert_eq!(safe_rel_path(root, "a/../a/b.py"), Ok("a/b.py".into()));
        for bad in ["/etc/passwd", "../x.py", "a/../../x.py", ".git/config", ".aurora/memory.db", "", "C:/x.py"] {
            assert_eq!(safe_rel_path(root, bad), Err(EditDrop::Path), "{bad}");
        }
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        assert_eq!(safe_rel_path(root, "link/evil.py"), Err(EditDrop::Path));
    }

    fn raw(kind: &str, file: &str) -> RawEdit {
        RawEdit { kind: kind.into(), file: file.into(), ..RawEdit::default() }
    }

    #[test]
    fn replace_needs_an_existing_file_and_a_range_inside_it() {
        let (_d, w) = ws(&[("m.py", "a\nb\nc\n")]);
        let ok =
            RawEdit { start_line: Some(2), end_line: Some(3), new_text: Some("B\n".into()), ..raw("replace", "m.py") };
        let v = validate(&w, &ok).unwrap();
        assert_eq!(v.change, EditChange::Replace { start_line: 1, end_line: 2, new_text: "B\n".into() });
        assert_eq!(v.base_content_hash, Some(content_hash("a\nb\nc\n")));
        let past = RawEdit { end_line: Some(4), ..ok.clone() };
        assert_eq!(validate(&w, &past), Err(EditDrop::Range));
        let gone = RawEdit { file: "n.py".into(), ..ok.clone() };
        assert_eq!(validate(&w, &gone), Err(EditDrop::Missing));
        assert_eq!(validate(&w, &raw("rewrite", "m.py")), Err(EditDrop::Kind));
        let create = RawEdit { new_text: Some("x".into()), ..raw("create", "m.py") };
        assert_eq!(validate(&w, &create), Err(EditDrop::Exists));
        let create = RawEdit { new_text: Some("x".into()), ..raw("create", "tests/test_m.py") };
        assert!(matches!(validate(&w, &create).unwrap().change, EditChange::Create { .. }));
    }

    #[test]
    fn diffs_apply_exactly_or_not_at_all() {
        let text = "def f():\n    return 1\n\n\ndef g():\n    return 2\n";
        let diff = "--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,3 @@\n def f():\n+    \"\"\"One.\"\"\"\n     return 1\n@@ -5,2 +6,2 @@\n def g():\n-    return 2\n+    return 3\n";
        assert_eq!(
            apply_unified_diff(text, diff, "m.py").unwrap(),
            "def f():\n    \"\"\"One.\"\"\"\n    return 1\n\n\ndef g():\n    return 3\n"
        );
        assert!(apply_unified_diff(text, diff, "other.py").unwrap_err().contains("not other.py"));
        let wrong = diff.replace(" def g():", " def h():");
        assert!(apply_unified_diff(text, &wrong, "m.py").unwrap_err().contains("does not match line 5"));
        let backwards = "+++ b/m.py\n@@ -5,1 +5,1 @@\n def g():\n@@ -1,1 +1,1 @@\n def f():\n";
        assert!(apply_unified_diff(text, backwards, "m.py").unwrap_err().contains("before the previous hunk"));
        let no_eol = "+++ b/m.py\n@@ -6 +6 @@\n-    return 2\n+    return 4\n\\ No newline at end of file\n";
        assert!(apply_unified_diff(text, no_eol, "m.py").unwrap().ends_with("    return 4\n"));
        assert!(apply_unified_diff(text, "not a diff", "m.py").is_err());
    }

    #[test]
    fn apply_gives_the_whole_new_text() {
        let text = "a\nb\nc\n";
        let r = EditChange::Replace { start_line: 1, end_line: 1, new_text: "B1\nB2".into() };
        assert_eq!(apply(text, &r).unwrap(), "a\nB1\nB2\nc\n");
        let d = EditChange::Diff { unified: "+++ b/x.py\n@@ -3 +3 @@\n-c\n+C\n".into() };
        assert_eq!(apply(text, &d).unwrap(), "a\nb\nC\n");
        assert_eq!(apply("", &EditChange::Create { new_text: "n\n".into() }).unwrap(), "n\n");
        let crlf = EditChange::Replace { start_line: 0, end_line: 0, new_text: "A".into() };
        assert_eq!(apply("a\r\nb\r\n", &crlf).unwrap(), "A\r\nb\r\n");
        assert!(apply(text, &EditChange::Replace { start_line: 5, end_line: 6, new_text: String::new() }).is_err());
    }
}
