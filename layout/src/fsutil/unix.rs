//! The Unix side of [`super`]: rename, folder `fsync`, the executable bit.

use std::fs::{File, Metadata};
use std::path::Path;

/// Renames `from` over `to` (atomic on one file system). `to` is made durable by
/// [`sync_dir`] on its folder.
pub fn rename_replacing(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)
}

/// Whether a failed rename may succeed when retried.
pub fn is_transient(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::PermissionDenied
            | std::io::ErrorKind::ResourceBusy
            | std::io::ErrorKind::Interrupted
    )
}

/// `fsync`s a folder so that renames and new entries in it are durable.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

/// Whether the current user may execute a regular file: an `x` bit is set.
pub fn is_executable(metadata: &Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}
