//! protox's errors as protoc prints them: `path:line:column: message`, with
//! the path as the user wrote it (a `compile` argument, or an include
//! directory joined with the import's name) and, when a file was not found,
//! the include path that was searched.

use std::path::{Path, PathBuf};

use miette::Diagnostic as _;

use crate::error::Error;

/// Translates a protox error for a build of `protos` through `includes`.
pub(crate) fn protox_error(
    error: &protox::Error,
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> Error {
    let message = error.to_string();
    let mut text = match error.file() {
        Some(name) => {
            let path = written_path(name, protos, includes);
            match location(error, &path) {
                Some((line, column)) => format!("{}:{line}:{column}: {message}", path.display()),
                None if message.contains(name) => message,
                None => format!("{}: {message}", path.display()),
            }
        }
        None => message,
    };
    if error.is_file_not_found() {
        let searched: Vec<String> = includes
            .iter()
            .map(|dir| dir.as_ref().display().to_string())
            .collect();
        text.push_str(&format!(" (include path: {})", searched.join(", ")));
    }
    Error::input(text)
}

/// The path of the file protox calls `name` (relative to an include
/// directory), as the user would write it: the `compile` argument that names
/// it, else the first include directory that holds it, else `name`.
fn written_path(name: &str, protos: &[impl AsRef<Path>], includes: &[impl AsRef<Path>]) -> PathBuf {
    if let Some(proto) = protos.iter().find(|p| p.as_ref().ends_with(name)) {
        return proto.as_ref().to_path_buf();
    }
    includes
        .iter()
        .map(|dir| dir.as_ref().join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The 1-based line and column of the error's first label: counted in the
/// file on disk (columns in characters, as protoc counts them), else as
/// miette counts them in the source protox kept.
fn location(error: &protox::Error, path: &Path) -> Option<(usize, usize)> {
    let label = error.labels()?.next()?;
    if let Ok(text) = std::fs::read_to_string(path) {
        if let Some(found) = line_column(&text, label.offset()) {
            return Some(found);
        }
    }
    let contents = error.source_code()?.read_span(label.inner(), 0, 0).ok()?;
    Some((contents.line() + 1, contents.column() + 1))
}

/// The 1-based line and column (in characters) of byte `offset` in `text`;
/// `None` past the end or inside a character.
fn line_column(text: &str, offset: usize) -> Option<(usize, usize)> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    Some((line, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one_in_characters() {
        let text = "ab\ncdé f\n";
        assert_eq!(line_column(text, 0), Some((1, 1)));
        assert_eq!(line_column(text, 3), Some((2, 1)));
        // `é` is two bytes but one column.
        assert_eq!(line_column(text, 7), Some((2, 4)));
        assert_eq!(line_column(text, 6), None);
        assert_eq!(line_column(text, 100), None);
    }
}
