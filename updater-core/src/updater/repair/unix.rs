//! The atomic exchange of two folders on Unix: `renameat2(RENAME_EXCHANGE)` on Linux,
//! `renamex_np(RENAME_SWAP)` on macOS. Other Unix systems, and file systems that refuse the
//! flag, answer `false`: the caller then uses two renames.

use std::path::Path;

/// Exchanges `a` and `b` (both folders) in one step. `Ok(false)` when the system or the file
/// system cannot.
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub(super) fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let invalid = |_| std::io::Error::from(std::io::ErrorKind::InvalidInput);
    let a = CString::new(a.as_os_str().as_bytes()).map_err(invalid)?;
    let b = CString::new(b.as_os_str().as_bytes()).map_err(invalid)?;
    // SAFETY: both are valid NUL-terminated paths that live across the call.
    #[cfg(target_os = "linux")]
    let result = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    // SAFETY: as above.
    #[cfg(target_os = "macos")]
    let result = unsafe { libc::renamex_np(a.as_ptr(), b.as_ptr(), libc::RENAME_SWAP) };
    if result == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP) => Ok(false),
        _ => Err(err),
    }
}

/// No atomic exchange here: the caller uses two renames.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(super) fn exchange(_a: &Path, _b: &Path) -> std::io::Result<bool> {
    Ok(false)
}

/// Renaming a running version's folder is allowed on Unix (open files and the running
/// program keep their inodes), so there is nothing to explain.
pub(super) fn explain_rename_failure(err: crate::Error) -> crate::Error {
    err
}
