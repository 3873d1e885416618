//! Language chunkers, one file per language, and the registry that picks one for a path.

pub mod python;

use crate::index::chunk::Language;

/// The language of a source file, from its suffix (case-insensitive), or `None` when out of scope.
pub fn language_for(path: &str) -> Option<Language> {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    match ext.as_str() {
        "py" | "pyi" | "pyw" => Some(Language::Python),
        _ => None,
    }
}
