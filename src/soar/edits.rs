//! Proposed edits: checks an agent's edits against the workspace (spec/soar.md §8.5) and computes the
//! text an accepted edit produces. Pure and synchronous; it reads files, so async callers run it in
//! `spawn_blocking`. It never writes a file.

use std::path::{Component, Path, PathBuf};

use crate::soar::types::EditChange;
use crate::soar::workspace::{Workspace, line_count};

/// Longest piece of a line quoted in an error message.
const SHOWN_CHARS: usize = 80;

/// An edit as an agent's JSON gives it (spec §8.3). 1-based inclusive lines.
#[derive(Clone, Debug, Default, serde::Deserialize, PartialEq)]
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

/// Why an edit was dropped. [`EditDrop::as_str`] is the key counted in `EditStats.dropped_by_reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EditDrop {
    /// Absolute, escapes the root (`..` or a symlink), or under `.git/` or `.aurora/`.
    Path,
    /// Not `replace`, `diff` or `create`.
    Kind,
    /// The file does not exist (replace, diff), or a field the kind needs is absent.
    Missing,
    /// Lines outside `1..=line count`, or start after end.
    Range,
    /// Does not parse, names another file, or does not apply exactly.
    Diff,
    /// A create of a file that exists.
    Exists,
}

impl EditDrop {
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

impl std::fmt::Display for EditDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An edit that passed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidEdit {
    /// Normalised, `/`-separated, relative to the root.
    pub file: String,
    /// 0-based inclusive lines.
    pub change: EditChange,
    /// The agent's description, trimmed (empty when it gave none).
    pub description: String,
    /// [`content_hash`] of the text the edit was validated against; `None` for a create.
    pub base_content_hash: Option<String>,
    /// The open document's version, when the text came from one.
    pub base_version: Option<i32>,
}

/// blake3 hex of `text`, the hash a front-end compares before applying an edit.
pub fn content_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// Checks one edit against the current text of the workspace (open documents win over disk).
/// The first rule broken decides the reason: kind, then a missing file name, then path, then the
/// kind's own rules.
pub fn validate(ws: &Workspace, raw: &RawEdit) -> Result<ValidEdit, EditDrop> {
    let kind = raw.kind.trim().to_ascii_lowercase();
    if !matches!(kind.as_str(), "replace" | "diff" | "create") {
        return Err(EditDrop::Kind);
    }
    if raw.file.trim().is_empty() {
        return Err(EditDrop::Missing);
    }
    let file = safe_rel_path(ws.root(), &raw.file)?;
    let description = raw.description.as_deref().unwrap_or_default().trim().to_owned();
    let valid = |change, base: Option<&crate::soar::workspace::FileText>| ValidEdit {
        file: file.clone(),
        change,
        description: description.clone(),
        base_content_hash: base.map(|b| content_hash(&b.text)),
        base_version: base.and_then(|b| b.version),
    };
    match kind.as_str() {
        "replace" => {
            let (Some(start), Some(end), Some(new_text)) = (raw.start_line, raw.end_line, raw.new_text.as_ref()) else {
                return Err(EditDrop::Missing);
            };
            let base = ws.file_text(&file).ok_or(EditDrop::Missing)?;
            let (start_line, end_line) = crate::soar::types::model_lines(start, end).ok_or(EditDrop::Range)?;
            if end_line >= line_count(&base.text) {
                return Err(EditDrop::Range);
            }
            Ok(valid(EditChange::Replace { start_line, end_line, new_text: new_text.clone() }, Some(&base)))
        }
        "diff" => {
            let Some(diff) = raw.diff.as_ref().filter(|d| !d.trim().is_empty()) else {
                return Err(EditDrop::Missing);
            };
            let base = ws.file_text(&file).ok_or(EditDrop::Missing)?;
            if let Err(e) = apply_unified_diff(&base.text, diff, &file) {
                tracing::debug!(file = %file, error = %e, "proposed diff dropped");
                return Err(EditDrop::Diff);
            }
            Ok(valid(EditChange::Diff { unified: diff.clone() }, Some(&base)))
        }
        _ => {
            let Some(new_text) = raw.new_text.as_ref() else {
                return Err(EditDrop::Missing);
            };
            if ws.exists(&file) {
                return Err(EditDrop::Exists);
            }
            Ok(valid(EditChange::Create { new_text: new_text.clone() }, None))
        }
    }
}

/// `file` as a normalised relative path inside `root` (`/`-separated, no `.` or `..` parts).
///
/// Rejects an empty or absolute path, a backslash, a `..` that leaves the root, any part named
/// `.git` or `.aurora`, and a path whose deepest existing ancestor (the path itself included, a
/// dangling symlink counting as existing) resolves outside the canonical root or into one of those
/// folders.
pub fn safe_rel_path(root: &Path, file: &str) -> Result<String, EditDrop> {
    let file = file.trim();
    if file.is_empty() || file.contains('\\') || file.contains('\0') || Path::new(file).is_absolute() {
        return Err(EditDrop::Path);
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in Path::new(file).components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop().ok_or(EditDrop::Path)?;
            }
            Component::Normal(p) => parts.push(p.to_str().ok_or(EditDrop::Path)?),
            Component::RootDir | Component::Prefix(_) => return Err(EditDrop::Path),
        }
    }
    if parts.is_empty() || parts.iter().copied().any(is_private_dir) {
        return Err(EditDrop::Path);
    }
    let canonical_root = root.canonicalize().map_err(|_| EditDrop::Path)?;
    let full: PathBuf = parts.iter().fold(root.to_path_buf(), |p, part| p.join(part));
    // The deepest ancestor that exists decides where the path really leads; what lies below it is
    // created by the edit and cannot be a link.
    let mut probe = full.as_path();
    loop {
        if probe.symlink_metadata().is_ok() {
            // A dangling link fails to canonicalize, and is refused: writing through it could land anywhere.
            let real = probe.canonicalize().map_err(|_| EditDrop::Path)?;
            let inside = real.strip_prefix(&canonical_root).map_err(|_| EditDrop::Path)?;
            if inside.components().any(|c| c.as_os_str().to_str().is_some_and(is_private_dir)) {
                return Err(EditDrop::Path);
            }
            break;
        }
        match probe.parent() {
            Some(parent) if probe != root => probe = parent,
            _ => return Err(EditDrop::Path),
        }
    }
    Ok(parts.join("/"))
}

/// Folders an edit may never touch: version control and Aurora's own store.
fn is_private_dir(part: &str) -> bool {
    part.eq_ignore_ascii_case(".git") || part.eq_ignore_ascii_case(".aurora")
}

/// The full text after `change`. `Replace` puts `new_text` (its final newline optional) in place of
/// lines `start_line..=end_line` (0-based), converted to the file's line ending and terminated like
/// the last replaced line, so the end of the file keeps its newline or its lack of one; an empty
/// `new_text` deletes the lines. `Diff` applies the diff without checking the file it names (that is
/// [`validate`]'s job). `Create` is `new_text`.
pub fn apply(text: &str, change: &EditChange) -> Result<String, String> {
    match change {
        EditChange::Replace { start_line, end_line, new_text } => {
            replace_lines(text, *start_line as usize, *end_line as usize, new_text)
        }
        EditChange::Diff { unified } => apply_hunks(text, &parse_diff(unified)?.hunks),
        EditChange::Create { new_text } => Ok(new_text.clone()),
    }
}

/// Applies a unified diff of `file` to `text`: exact context, at exactly the lines the hunk headers
/// name (no fuzz, no offset), hunks in order and not overlapping. The diff must carry a `---`/`+++`
/// header naming `file` (an `a/` or `b/` prefix is allowed); lines before the first header (`diff
/// --git`, `index`, prose) are ignored. The `+l,s` start of a hunk is not checked; its counts are.
/// Added lines take the file's dominant line ending; context is compared without line endings.
pub fn apply_unified_diff(text: &str, diff: &str, file: &str) -> Result<String, String> {
    let parsed = parse_diff(diff)?;
    let file = file.trim().trim_start_matches("./");
    match (&parsed.old_path, &parsed.new_path) {
        (_, None) => return Err(format!("the diff deletes the file instead of changing {file}")),
        (None, _) => {
            return Err(format!("the diff creates its file (`--- /dev/null`); {file} must be changed in place"));
        }
        (Some(old), Some(new)) => {
            for named in [old, new] {
                if !names(named, file) {
                    return Err(format!("the diff is of {named}, not {file}"));
                }
            }
        }
    }
    apply_hunks(text, &parsed.hunks)
}

/// Whether a path from a diff header names `file`, allowing git's `a/` and `b/` prefixes.
fn names(header_path: &str, file: &str) -> bool {
    let path = header_path.trim_start_matches("./");
    path == file || ["a/", "b/"].iter().any(|p| path.strip_prefix(p).is_some_and(|rest| rest == file))
}

/// One line of a text and its terminator (`""`, `"\n"` or `"\r\n"`).
struct Line<'a> {
    body: &'a str,
    eol: &'a str,
}

/// Lines as [`line_count`] counts them.
fn split_lines(text: &str) -> Vec<Line<'_>> {
    text.split_inclusive('\n')
        .map(|l| match l.strip_suffix("\r\n") {
            Some(body) => Line { body, eol: "\r\n" },
            None => match l.strip_suffix('\n') {
                Some(body) => Line { body, eol: "\n" },
                None => Line { body: l, eol: "" },
            },
        })
        .collect()
}

/// `"\r\n"` when most terminated lines use it, else `"\n"`.
fn dominant_eol(lines: &[Line<'_>]) -> &'static str {
    let crlf = lines.iter().filter(|l| l.eol == "\r\n").count();
    let lf = lines.iter().filter(|l| l.eol == "\n").count();
    if crlf > lf { "\r\n" } else { "\n" }
}

fn replace_lines(text: &str, start: usize, end: usize, new_text: &str) -> Result<String, String> {
    let lines = split_lines(text);
    if start > end || end >= lines.len() {
        return Err(format!("lines {}-{} are outside the text's {} lines", start + 1, end + 1, lines.len()));
    }
    let eol = dominant_eol(&lines);
    let mut out = String::with_capacity(text.len() + new_text.len());
    for l in &lines[..start] {
        out.push_str(l.body);
        out.push_str(l.eol);
    }
    if !new_text.is_empty() {
        let unix = new_text.replace("\r\n", "\n");
        let body = unix.strip_suffix('\n').unwrap_or(&unix);
        if eol == "\r\n" {
            out.push_str(&body.replace('\n', "\r\n"));
        } else {
            out.push_str(body);
        }
        out.push_str(lines[end].eol);
    }
    for l in &lines[end + 1..] {
        out.push_str(l.body);
        out.push_str(l.eol);
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Context,
    Remove,
    Add,
}

struct HunkLine<'a> {
    op: Op,
    text: &'a str,
    /// Followed by `\ No newline at end of file`.
    no_newline: bool,
}

struct Hunk<'a> {
    /// 1-based, for messages.
    number: usize,
    old_start: usize,
    old_count: usize,
    lines: Vec<HunkLine<'a>>,
}

struct ParsedDiff<'a> {
    /// `None` for `/dev/null`.
    old_path: Option<String>,
    new_path: Option<String>,
    hunks: Vec<Hunk<'a>>,
}

/// The path of a `---`/`+++` header line's rest, without a timestamp or quotes; `None` for `/dev/null`.
fn header_path(rest: &str) -> Option<String> {
    let path = rest.split('\t').next().unwrap_or_default().trim();
    let path = path.strip_prefix('"').and_then(|p| p.strip_suffix('"')).unwrap_or(path);
    (path != "/dev/null").then(|| path.to_owned())
}

fn parse_diff(diff: &str) -> Result<ParsedDiff<'_>, String> {
    let mut lines = diff.lines().peekable();
    let mut parsed = ParsedDiff { old_path: None, new_path: None, hunks: Vec::new() };
    let mut header_seen = false;
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("--- ") {
            let Some(new) = lines.next().and_then(|l| l.strip_prefix("+++ ")) else {
                return Err(format!("`{}` is not followed by a `+++` line", shown(line)));
            };
            let (old, new) = (header_path(rest), header_path(new));
            if header_seen && (old != parsed.old_path || new != parsed.new_path) {
                return Err("the diff names more than one file".into());
            }
            parsed.old_path = old;
            parsed.new_path = new;
            header_seen = true;
        } else if line.starts_with("@@") {
            let number = parsed.hunks.len() + 1;
            if !header_seen {
                return Err(format!("hunk {number} comes before the `--- a/<file>` / `+++ b/<file>` header"));
            }
            parsed.hunks.push(parse_hunk(number, line, &mut lines)?);
        } else if !header_seen || line.trim().is_empty() || line.starts_with("```") {
            // Preamble (`diff --git`, `index`, prose), blank lines between hunks, a Markdown fence.
        } else if ["diff ", "index ", "old mode ", "new mode "].iter().any(|p| line.starts_with(p)) {
            // Git's extended header of a repeated section; its `---`/`+++` lines are checked above.
        } else {
            let after = parsed.hunks.len();
            return Err(format!("unexpected line after hunk {after}: `{}`", shown(line)));
        }
    }
    if parsed.hunks.is_empty() {
        return Err(if header_seen { "the diff has no hunks".into() } else { "no `---`/`+++` diff header".into() });
    }
    Ok(parsed)
}

/// `@@ -l[,s] +l[,s] @@` into (old start, old count, new count).
fn parse_hunk_header(header: &str) -> Option<(usize, usize, usize)> {
    let ranges = header.strip_prefix("@@ ")?.split(" @@").next()?;
    let mut parts = ranges.split_whitespace();
    let range = |part: Option<&str>, sign: char| -> Option<(usize, usize)> {
        let part = part?.strip_prefix(sign)?;
        match part.split_once(',') {
            Some((start, count)) => Some((start.parse().ok()?, count.parse().ok()?)),
            None => Some((part.parse().ok()?, 1)),
        }
    };
    let (old_start, old_count) = range(parts.next(), '-')?;
    let (_, new_count) = range(parts.next(), '+')?;
    parts.next().is_none().then_some((old_start, old_count, new_count))
}

fn parse_hunk<'a>(
    number: usize,
    header: &str,
    lines: &mut std::iter::Peekable<std::str::Lines<'a>>,
) -> Result<Hunk<'a>, String> {
    let (old_start, old_count, new_count) =
        parse_hunk_header(header).ok_or_else(|| format!("hunk {number}: bad header `{}`", shown(header)))?;
    let mut hunk = Hunk { number, old_start, old_count, lines: Vec::new() };
    let (mut old_seen, mut new_seen) = (0, 0);
    let promised = format!("-{old_start},{old_count} +…,{new_count}");
    while old_seen < old_count || new_seen < new_count {
        let Some(line) = lines.next() else {
            return Err(format!(
                "hunk {number} ends early: its header ({promised}) promises {old_count} old and {new_count} new \
                 lines, the diff has {old_seen} and {new_seen}"
            ));
        };
        if line.starts_with('\\') {
            hunk.lines.last_mut().ok_or_else(|| format!("hunk {number} opens with `\\`"))?.no_newline = true;
            continue;
        }
        // A blank line is an empty context line whose leading space an editor or a model trimmed.
        let (op, text) = match line.split_at_checked(1) {
            None => (Op::Context, ""),
            Some((" ", rest)) => (Op::Context, rest),
            Some(("-", rest)) => (Op::Remove, rest),
            Some(("+", rest)) => (Op::Add, rest),
            Some(_) => {
                return Err(format!(
                    "hunk {number}: `{}` does not start with ' ', '-' or '+' (the header ({promised}) promises \
                     more lines)",
                    shown(line)
                ));
            }
        };
        let (old, new) = match op {
            Op::Context => (1, 1),
            Op::Remove => (1, 0),
            Op::Add => (0, 1),
        };
        old_seen += old;
        new_seen += new;
        if old_seen > old_count || new_seen > new_count {
            return Err(format!("hunk {number} has more lines than its header ({promised}) says"));
        }
        hunk.lines.push(HunkLine { op, text, no_newline: false });
    }
    if lines.peek().is_some_and(|l| l.starts_with('\\')) {
        lines.next();
        if let Some(last) = hunk.lines.last_mut() {
            last.no_newline = true;
        }
    }
    Ok(hunk)
}

fn apply_hunks(text: &str, hunks: &[Hunk<'_>]) -> Result<String, String> {
    let lines = split_lines(text);
    let eol = dominant_eol(&lines);
    let mut out = String::with_capacity(text.len());
    // Index of the next line of `text` not yet copied or consumed by a hunk.
    let mut pos = 0;
    // The output ended on a line without a newline: nothing may follow it.
    let mut closed = false;
    for h in hunks {
        let n = h.number;
        let start = match (h.old_count, h.old_start) {
            (0, at) => at,
            (_, 0) => return Err(format!("hunk {n}: line 0 cannot hold {} lines", h.old_count)),
            (_, at) => at - 1,
        };
        if start < pos {
            return Err(format!(
                "hunk {n} starts at line {}, before the end of hunk {} (line {pos}); hunks must be in order and \
                 must not overlap",
                h.old_start,
                n - 1
            ));
        }
        if start + h.old_count > lines.len() {
            return Err(format!(
                "hunk {n}: lines {}-{} are past the end of the file ({} lines)",
                start + 1,
                start + h.old_count,
                lines.len()
            ));
        }
        if closed && (start > pos || h.lines.iter().any(|l| l.op != Op::Remove)) {
            return Err(format!("hunk {n}: text follows a line marked `\\ No newline at end of file`"));
        }
        for l in &lines[pos..start] {
            out.push_str(l.body);
            out.push_str(l.eol);
        }
        let mut at = start;
        for hl in &h.lines {
            if closed && hl.op != Op::Remove {
                return Err(format!("hunk {n}: text follows a line marked `\\ No newline at end of file`"));
            }
            match hl.op {
                Op::Context | Op::Remove => {
                    let line = &lines[at];
                    if line.body != hl.text {
                        return Err(format!(
                            "hunk {n}: line {} should be `{}` but is `{}`",
                            at + 1,
                            shown(hl.text),
                            shown(line.body)
                        ));
                    }
                    if hl.no_newline != line.eol.is_empty() {
                        return Err(if hl.no_newline {
                            format!("hunk {n}: line {} is marked `\\ No newline at end of file` but is not", at + 1)
                        } else {
                            format!(
                                "hunk {n}: line {} has no newline at end of file, and the diff does not mark it \
                                 with `\\ No newline at end of file`",
                                at + 1
                            )
                        });
                    }
                    if hl.op == Op::Context {
                        out.push_str(line.body);
                        out.push_str(line.eol);
                        closed = line.eol.is_empty();
                    }
                    at += 1;
                }
                Op::Add => {
                    out.push_str(hl.text);
                    if hl.no_newline {
                        closed = true;
                    } else {
                        out.push_str(eol);
                    }
                }
            }
        }
        pos = at;
    }
    if closed && pos < lines.len() {
        return Err("the file goes on after a line marked `\\ No newline at end of file`".into());
    }
    for l in &lines[pos..] {
        out.push_str(l.body);
        out.push_str(l.eol);
    }
    Ok(out)
}

/// A line for an error message, cut to [`SHOWN_CHARS`].
fn shown(line: &str) -> String {
    match line.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::MemoryConfig;
    use crate::soar::workspace::{OpenDoc, OpenDocuments};
    use crate::store::StorePath;

    /// A workspace over a temp dir holding `files`.
    fn workspace(files: &[(&str, &str)]) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("files are under the root")).expect("mkdir");
            std::fs::write(full, text).expect("write fixture");
        }
        let root = dir.path().to_path_buf();
        let ws = Workspace::new(root.clone(), StorePath::for_root(&root), None, &MemoryConfig::default());
        (dir, ws)
    }

    fn replace(file: &str, start: i64, end: i64, new_text: &str) -> RawEdit {
        RawEdit {
            kind: "replace".into(),
            file: file.into(),
            start_line: Some(start),
            end_line: Some(end),
            new_text: Some(new_text.into()),
            ..RawEdit::default()
        }
    }

    fn diff_edit(file: &str, diff: &str) -> RawEdit {
        RawEdit { kind: "diff".into(), file: file.into(), diff: Some(diff.into()), ..RawEdit::default() }
    }

    fn create(file: &str, new_text: &str) -> RawEdit {
        RawEdit { kind: "create".into(), file: file.into(), new_text: Some(new_text.into()), ..RawEdit::default() }
    }

    const APP: &str = "def f():\n    return 1\n\n\ndef g():\n    return 2\n";

    #[test]
    fn relative_paths_are_normalised() {
        let (dir, _) = workspace(&[("pkg/a.py", "")]);
        let root = dir.path();
        assert_eq!(safe_rel_path(root, "./pkg/a.py"), Ok("pkg/a.py".into()));
        assert_eq!(safe_rel_path(root, "pkg//./a.py"), Ok("pkg/a.py".into()));
        assert_eq!(safe_rel_path(root, "pkg/../b.py"), Ok("b.py".into()));
        assert_eq!(safe_rel_path(root, "new/dir/c.py"), Ok("new/dir/c.py".into()));
    }

    #[test]
    fn paths_that_leave_the_root_or_touch_private_folders_are_refused() {
        let (dir, _) = workspace(&[("pkg/a.py", ""), (".git/config", "")]);
        let root = dir.path();
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "pkg/../../x",
            ".git/config",
            "sub/.git/hooks/pre-commit",
            ".aurora/memory.db",
            ".GIT/config",
            "pkg\\a.py",
            ".",
            "pkg/..",
        ] {
            assert_eq!(safe_rel_path(root, bad), Err(EditDrop::Path), "{bad:?}");
        }
    }

    #[test]
    fn symlinks_that_lead_outside_the_root_are_refused() {
        let outside = tempfile::tempdir().expect("temp dir");
        std::fs::write(outside.path().join("secret.txt"), "x").expect("write");
        let (dir, _) = workspace(&[("pkg/a.py", ""), (".git/config", "")]);
        let root = dir.path();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).expect("symlink");
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("secret.txt")).expect("symlink");
        std::os::unix::fs::symlink(outside.path().join("gone"), root.join("dangling")).expect("symlink");
        std::os::unix::fs::symlink(root.join(".git"), root.join("vcs")).expect("symlink");
        std::os::unix::fs::symlink(root.join("pkg"), root.join("alias")).expect("symlink");
        for bad in ["out/secret.txt", "out/new/file.py", "secret.txt", "dangling", "vcs/config"] {
            assert_eq!(safe_rel_path(root, bad), Err(EditDrop::Path), "{bad:?}");
        }
        // A link that stays inside the root is fine.
        assert_eq!(safe_rel_path(root, "alias/a.py"), Ok("alias/a.py".into()));
    }

    #[test]
    fn replace_records_its_base_and_converts_lines() {
        let (_dir, ws) = workspace(&[("app.py", APP)]);
        let edit = validate(&ws, &replace("./app.py", 2, 2, "    return 10")).expect("valid");
        assert_eq!(edit.file, "app.py");
        assert_eq!(edit.change, EditChange::Replace { start_line: 1, end_line: 1, new_text: "    return 10".into() });
        assert_eq!(edit.base_content_hash, Some(content_hash(APP)));
        assert_eq!(edit.base_version, None);
        assert_eq!(edit.description, "");
    }

    #[test]
    fn replace_ranges_must_lie_in_the_file() {
        let (_dir, ws) = workspace(&[("app.py", APP), ("empty.py", "")]);
        // APP has 6 lines.
        assert!(validate(&ws, &replace("app.py", 1, 6, "x")).is_ok());
        for (start, end) in [(0, 1), (3, 2), (1, 7), (7, 7), (-1, 2)] {
            assert_eq!(validate(&ws, &replace("app.py", start, end, "x")), Err(EditDrop::Range), "{start}-{end}");
        }
        assert_eq!(validate(&ws, &replace("empty.py", 1, 1, "x")), Err(EditDrop::Range));
    }

    #[test]
    fn missing_files_fields_and_unknown_kinds_are_dropped() {
        let (_dir, ws) = workspace(&[("app.py", APP)]);
        assert_eq!(validate(&ws, &replace("nope.py", 1, 1, "x")), Err(EditDrop::Missing));
        let no_end = RawEdit { end_line: None, ..replace("app.py", 1, 1, "x") };
        assert_eq!(validate(&ws, &no_end), Err(EditDrop::Missing));
        assert_eq!(validate(&ws, &diff_edit("nope.py", "--- a/nope.py\n+++ b/nope.py\n")), Err(EditDrop::Missing));
        assert_eq!(validate(&ws, &RawEdit { new_text: None, ..create("new.py", "") }), Err(EditDrop::Missing));
        assert_eq!(validate(&ws, &replace("", 1, 1, "x")), Err(EditDrop::Missing));
        assert_eq!(
            validate(&ws, &RawEdit { kind: "delete".into(), ..replace("app.py", 1, 1, "") }),
            Err(EditDrop::Kind)
        );
        assert_eq!(validate(&ws, &replace("../app.py", 1, 1, "x")), Err(EditDrop::Path));
        // The kind is read leniently.
        assert!(validate(&ws, &RawEdit { kind: " Replace ".into(), ..replace("app.py", 1, 1, "x") }).is_ok());
    }

    #[test]
    fn open_documents_win_over_disk_and_give_the_version() {
        struct Docs;
        impl OpenDocuments for Docs {
            fn get(&self, rel: &str) -> Option<OpenDoc> {
                (rel == "app.py")
                    .then(|| OpenDoc { text: Arc::from("one\ntwo\nthree\nfour\nfive\nsix\nseven\n"), version: Some(7) })
            }
        }
        let (_dir, ws) = workspace(&[("app.py", APP)]);
        let ws = ws.with_documents(Arc::new(Docs));
        let edit = validate(&ws, &replace("app.py", 7, 7, "SEVEN")).expect("the buffer has 7 lines");
        assert_eq!(edit.base_version, Some(7));
        assert_eq!(edit.base_content_hash, Some(content_hash("one\ntwo\nthree\nfour\nfive\nsix\nseven\n")));
    }

    #[test]
    fn create_needs_a_new_file() {
        let (_dir, ws) = workspace(&[("app.py", APP)]);
        assert_eq!(validate(&ws, &create("app.py", "x\n")), Err(EditDrop::Exists));
        let edit =
            validate(&ws, &RawEdit { description: Some(" tests ".into()), ..create("tests/test_app.py", "x\n") })
                .expect("valid");
        assert_eq!(edit.change, EditChange::Create { new_text: "x\n".into() });
        assert_eq!(edit.base_content_hash, None);
        assert_eq!(edit.description, "tests");
        assert_eq!(validate(&ws, &create(".aurora/x", "x")), Err(EditDrop::Path));
    }

    const APP_DIFF: &str = "\
diff --git a/app.py b/app.py
index 123..456 100644
--- a/app.py
+++ b/app.py
@@ -1,2 +1,3 @@
 def f():
-    return 1
+    # one
+    return 1
@@ -5,2 +6,2 @@ def g():
 def g():
-    return 2
+    return 3
";

    #[test]
    fn diffs_apply_with_exact_context() {
        let out = apply_unified_diff(APP, APP_DIFF, "app.py").expect("applies");
        assert_eq!(out, "def f():\n    # one\n    return 1\n\n\ndef g():\n    return 3\n");
        let (_dir, ws) = workspace(&[("app.py", APP)]);
        let edit = validate(&ws, &diff_edit("app.py", APP_DIFF)).expect("valid");
        assert_eq!(apply(APP, &edit.change), Ok(out));
    }

    #[test]
    fn diffs_that_do_not_apply_say_why() {
        let wrong_context = APP_DIFF.replace(" def g():\n-", " def h():\n-");
        let err = apply_unified_diff(APP, &wrong_context, "app.py").expect_err("wrong context");
        assert_eq!(err, "hunk 2: line 5 should be `def h():` but is `def g():`");

        let out_of_order = "--- a/app.py\n+++ b/app.py\n@@ -5,1 +5,1 @@\n-def g():\n+def h():\n@@ -1,1 +1,1 @@\n-def f():\n+def e():\n";
        let err = apply_unified_diff(APP, out_of_order, "app.py").expect_err("out of order");
        assert!(err.starts_with("hunk 2 starts at line 1, before the end of hunk 1"), "{err}");

        let err = apply_unified_diff(APP, APP_DIFF, "other.py").expect_err("wrong file");
        assert_eq!(err, "the diff is of a/app.py, not other.py");

        let short = "--- a/app.py\n+++ b/app.py\n@@ -1,3 +1,3 @@\n def f():\n";
        let err = apply_unified_diff(APP, short, "app.py").expect_err("ends early");
        assert!(err.starts_with("hunk 1 ends early"), "{err}");

        let past_end = "--- a/app.py\n+++ b/app.py\n@@ -6,2 +6,2 @@\n     return 2\n-x\n+y\n";
        let err = apply_unified_diff(APP, past_end, "app.py").expect_err("past end");
        assert_eq!(err, "hunk 1: lines 6-7 are past the end of the file (6 lines)");

        for (bad, why) in [
            ("@@ -1 +1 @@\n-def f():\n+def e():\n", "no header"),
            ("--- a/app.py\n+++ b/app.py\n", "no hunks"),
            ("--- a/app.py\n+++ /dev/null\n@@ -1,6 +0,0 @@\n", "deletion"),
            ("--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n*def f():\n", "bad line"),
            ("--- a/app.py\n+++ b/app.py\n@@ one @@\n", "bad header"),
            ("--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-def f():\n+def e():\n+extra\n", "too many lines"),
        ] {
            assert!(apply_unified_diff(APP, bad, "app.py").is_err(), "{why}");
        }

        let (_dir, ws) = workspace(&[("app.py", APP)]);
        assert_eq!(validate(&ws, &diff_edit("app.py", &wrong_context)), Err(EditDrop::Diff));
        assert_eq!(validate(&ws, &diff_edit("app.py", &APP_DIFF.replace("app.py", "b.py"))), Err(EditDrop::Diff));
    }

    #[test]
    fn no_newline_markers_are_honoured_on_both_sides() {
        let text = "a\nb";
        let add_newline = "--- a/f\n+++ b/f\n@@ -2 +2 @@\n-b\n\\ No newline at end of file\n+b\n";
        assert_eq!(apply_unified_diff(text, add_newline, "f"), Ok("a\nb\n".into()));
        let drop_newline = "--- a/f\n+++ b/f\n@@ -2 +2 @@\n-b\n+b\n\\ No newline at end of file\n";
        assert_eq!(apply_unified_diff("a\nb\n", drop_newline, "f"), Ok("a\nb".into()));
        let context = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-a\n+A\n b\n\\ No newline at end of file\n";
        assert_eq!(apply_unified_diff(text, context, "f"), Ok("A\nb".into()));
        // The file lacks the final newline but the diff does not say so, and the other way round.
        let unmarked = "--- a/f\n+++ b/f\n@@ -2 +2 @@\n-b\n+c\n";
        let err = apply_unified_diff(text, unmarked, "f").expect_err("unmarked");
        assert!(err.contains("does not mark it"), "{err}");
        assert!(apply_unified_diff("a\nb\n", add_newline, "f").is_err());
    }

    #[test]
    fn diffs_insert_at_line_zero_and_keep_crlf() {
        let insert = "--- a/f\n+++ b/f\n@@ -0,0 +1 @@\n+first\n";
        assert_eq!(apply_unified_diff("a\r\nb\r\n", insert, "f"), Ok("first\r\na\r\nb\r\n".into()));
        let append = "--- f\n+++ f\n@@ -2,0 +3 @@\n+c\n";
        assert_eq!(apply_unified_diff("a\nb\n", append, "./f"), Ok("a\nb\nc\n".into()));
        // A blank context line whose space was trimmed.
        let blank = "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n\n-c\n+C\n";
        assert_eq!(apply_unified_diff("a\n\nc\n", blank, "f"), Ok("a\n\nC\n".into()));
    }

    #[test]
    fn apply_replace_keeps_line_endings_and_the_end_of_file() {
        let replace = |text: &str, start, end, new_text: &str| {
            apply(text, &EditChange::Replace { start_line: start, end_line: end, new_text: new_text.into() })
        };
        assert_eq!(replace("a\nb\nc\n", 1, 1, "B"), Ok("a\nB\nc\n".into()));
        assert_eq!(replace("a\nb\nc\n", 1, 1, "B\n"), Ok("a\nB\nc\n".into()));
        assert_eq!(replace("a\nb\nc\n", 0, 1, "x\ny\nz"), Ok("x\ny\nz\nc\n".into()));
        assert_eq!(replace("a\nb\nc\n", 1, 1, ""), Ok("a\nc\n".into()));
        assert_eq!(replace("a\r\nb\r\n", 1, 1, "B\nC"), Ok("a\r\nB\r\nC\r\n".into()));
        assert_eq!(replace("a\nb", 1, 1, "B\n"), Ok("a\nB".into()));
        assert!(replace("a\n", 1, 1, "x").is_err());
        assert!(replace("a\nb\n", 1, 0, "x").is_err());
    }

    #[test]
    fn apply_create_and_diff() {
        assert_eq!(apply("", &EditChange::Create { new_text: "new\n".into() }), Ok("new\n".into()));
        let unified = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n".to_owned();
        assert_eq!(apply("a\n", &EditChange::Diff { unified: unified.clone() }), Ok("b\n".into()));
        assert!(apply("x\n", &EditChange::Diff { unified }).is_err());
    }
}
