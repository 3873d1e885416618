//! TEMPORARY stand-in (replaced by the soar-edits branch).
use crate::soar::types::EditChange;
use crate::soar::workspace::Workspace;
use std::path::Path;
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditDrop {
    Path,
    Kind,
    Missing,
    Range,
    Diff,
    Exists,
}
impl EditDrop {
    pub fn as_str(self) -> &'static str {
        "path"
    }
}
pub struct ValidEdit {
    pub file: String,
    pub change: EditChange,
    pub description: String,
    pub base_content_hash: Option<String>,
    pub base_version: Option<i32>,
}
pub fn validate(_ws: &Workspace, _raw: &RawEdit) -> Result<ValidEdit, EditDrop> {
    Err(EditDrop::Path)
}
pub fn safe_rel_path(_root: &Path, _file: &str) -> Result<String, EditDrop> {
    Err(EditDrop::Path)
}
