//! The Windows side of [`super`]: rename with write-through, no folder `fsync`, no mode bits.

use std::fs::Metadata;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_LOCK_VIOLATION, ERROR_SHARING_VIOLATION,
};
use windows_sys::Win32::Storage::FileSystem::{
    MOVEFILE_REPLACE_EXISTING, MOVEFILE_WRITE_THROUGH, MoveFileExW,
};

/// A NUL-terminated UTF-16 path for the wide Windows API.
fn wide(path: &Path) -> Vec<u16> {
    path.as_os_str().encode_wide().chain(Some(0)).collect()
}

/// Renames `from` over `to` with `MoveFileExW(MOVEFILE_REPLACE_EXISTING |
/// MOVEFILE_WRITE_THROUGH)`: the replacement is atomic on NTFS, and write-through returns
/// only once the move is on disk (Windows cannot `fsync` a folder, see [`sync_dir`]).
pub fn rename_replacing(from: &Path, to: &Path) -> std::io::Result<()> {
    let (from, to) = (wide(from), wide(to));
    // SAFETY: both buffers are NUL-terminated UTF-16 strings that outlive the call.
    let moved = unsafe {
        MoveFileExW(
            from.as_ptr(),
            to.as_ptr(),
            MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH,
        )
    };
    if moved == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether a failed rename may succeed when retried: antivirus scanners, the search indexer
/// and backup tools open files briefly without `FILE_SHARE_DELETE`, which makes a rename
/// fail with "access denied" or a sharing violation until they let go.
pub fn is_transient(err: &std::io::Error) -> bool {
    let code = err.raw_os_error().and_then(|c| u32::try_from(c).ok());
    matches!(
        code,
        Some(ERROR_ACCESS_DENIED | ERROR_SHARING_VIOLATION | ERROR_LOCK_VIOLATION)
    ) || err.kind() == std::io::ErrorKind::Interrupted
}

/// Does nothing: Windows cannot open a folder as a file to flush it. NTFS journals its
/// metadata, and renames here use `MOVEFILE_WRITE_THROUGH` (see [`rename_replacing`]).
pub fn sync_dir(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Windows has no execute bit: any regular file can be started (`CreateProcess` reads the
/// PE header, not the name or a mode).
pub fn is_executable(_metadata: &Metadata) -> bool {
    true
}
