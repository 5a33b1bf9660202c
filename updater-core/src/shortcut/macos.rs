//! Shortcuts on macOS: not implemented. An app there is started from its `.app` bundle, which
//! appstart does not make yet; `--shortcut` fails with this message rather than writing a
//! file the Finder would not run.

use std::path::{Path, PathBuf};

use super::ShortcutLocation;
use crate::error::{Error, Result};

/// The shortcut file's extension.
pub const EXTENSION: &str = "app";

fn unsupported() -> Error {
    Error::Invalid("shortcuts are not supported on macOS yet: install without --shortcut".into())
}

/// Always fails: see the module docs.
pub fn folder(_location: ShortcutLocation) -> Result<PathBuf> {
    Err(unsupported())
}

/// Always fails: see the module docs.
pub fn write(_path: &Path, _launcher: &Path, _app: &str) -> Result<()> {
    Err(unsupported())
}
