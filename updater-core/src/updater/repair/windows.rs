//! Windows has no atomic exchange of two folders, and refuses to rename a folder holding a
//! running program or an open file: the repair then fails, asking to close the app.

use std::path::Path;

/// Never possible on Windows: the caller uses two renames.
pub(super) fn exchange(_a: &Path, _b: &Path) -> std::io::Result<bool> {
    Ok(false)
}

/// Turns the refusal to rename a folder in use into a message a user can act on.
pub(super) fn explain_rename_failure(err: crate::Error) -> crate::Error {
    crate::Error::Invalid(format!(
        "{}; the damaged version is probably running: close the app and run `appupdate verify --repair` again",
        crate::error::chain(&err)
    ))
}
