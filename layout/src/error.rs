//! Errors of the layout crate: each names the file at fault.

use std::path::PathBuf;

/// `err` followed by its causes, `: `-separated (errors here do not repeat their source in
/// their own message, so this is how to print one whole).
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong reading or writing the install folder's files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed on `path`.
    #[error("{action} {path}")]
    Io {
        /// What we were doing ("reading", "renaming to", ...).
        action: &'static str,
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is larger than anything this project writes there.
    #[error("{path} is larger than {limit} bytes; it is not a file appstart wrote")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap.
        limit: u64,
    },
    /// A TOML file is not valid TOML or does not match the expected shape.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong, as the parser says it (names unknown keys).
        message: String,
    },
    /// A value has the right type but is not acceptable.
    #[error("{path}: field `{field}`: {message}")]
    InvalidField {
        /// The file.
        path: PathBuf,
        /// The key at fault.
        field: String,
        /// Why it is refused.
        message: String,
    },
    /// A folder to remove holds a mounted file system; nothing was removed.
    #[error(
        "not removing {path}: a file system is mounted inside it at {mount}, and removing the folder would delete what is on it; unmount it, then try again"
    )]
    MountedInside {
        /// The folder that was to be removed.
        path: PathBuf,
        /// The mount point at or below it.
        mount: PathBuf,
    },
    /// A name (version, relative path) failed validation.
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidName {
        /// "version name" or "relative path".
        kind: &'static str,
        /// The rejected input.
        value: String,
        /// Why.
        reason: &'static str,
    },
}

impl Error {
    /// Wraps an I/O error with the action and path it happened on.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Converts a `toml` parse error into [`Error::Parse`] with 1-based line and column.
    pub fn from_toml(path: impl Into<PathBuf>, text: &str, err: &toml::de::Error) -> Self {
        let (line, column) = match err.span() {
            Some(span) => line_column(text, span.start),
            None => (1, 1),
        };
        Error::Parse {
            path: path.into(),
            line,
            column,
            message: err.message().trim().to_string(),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("a\nbc", 3), (2, 2));
        assert_eq!(line_column("a\n\nxyz", 4), (3, 2));
    }
}
