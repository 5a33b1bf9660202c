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

/// Paths this long or longer get the `\\?\` prefix. The limit is `MAX_PATH` (260) less the
/// 12 characters `CreateDirectoryW` keeps for an 8.3 file name, as std uses for its own calls.
const LONG_PATH: usize = 248;

/// A NUL-terminated UTF-16 path for the wide Windows API. A long path (an install folder deep
/// in a profile, a release with deep folders) gets the verbatim prefix `\\?\` (`\\?\UNC\`
/// for a share), which lifts `MAX_PATH` for the wide file functions; std's own file
/// functions do the same, this is for the calls made here directly. Windows does not
/// normalize a verbatim path, so it is made absolute first (`GetFullPathNameW`, which also
/// turns `/` into `\` and resolves `.` and `..`).
pub fn wide_path(path: &Path) -> Vec<u16> {
    let units: Vec<u16> = path.as_os_str().encode_wide().collect();
    let mut wide = if units.len() < LONG_PATH || starts(&units, r"\\?\") || starts(&units, r"\\.\")
    {
        units
    } else {
        match std::path::absolute(path) {
            Ok(absolute) => verbatim(absolute.as_os_str().encode_wide().collect()),
            // Left as it is: the call then fails with an error naming the path.
            Err(_) => units,
        }
    };
    wide.push(0);
    wide
}

/// `C:\x` -> `\\?\C:\x`, `\\server\share\x` -> `\\?\UNC\server\share\x`, for an absolute path.
fn verbatim(absolute: Vec<u16>) -> Vec<u16> {
    if starts(&absolute, r"\\?\") {
        absolute
    } else if starts(&absolute, r"\\") {
        r"\\?\UNC\"
            .encode_utf16()
            .chain(absolute[2..].iter().copied())
            .collect()
    } else if absolute.get(1) == Some(&u16::from(b':')) {
        r"\\?\".encode_utf16().chain(absolute).collect()
    } else {
        absolute
    }
}

fn starts(units: &[u16], prefix: &str) -> bool {
    let prefix: Vec<u16> = prefix.encode_utf16().collect();
    units.starts_with(&prefix)
}

/// Renames `from` over `to` with `MoveFileExW(MOVEFILE_REPLACE_EXISTING |
/// MOVEFILE_WRITE_THROUGH)`: the replacement is atomic on NTFS, and write-through returns
/// only once the move is on disk (Windows cannot `fsync` a folder, see [`sync_dir`]).
pub fn rename_replacing(from: &Path, to: &Path) -> std::io::Result<()> {
    let (from, to) = (wide_path(from), wide_path(to));
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

/// Clears the read-only attribute of the regular file `path` (not of a link, nor through
/// one). Returns whether it was set and is now cleared.
pub fn clear_read_only_file(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() || !meta.permissions().readonly() {
        return false;
    }
    let mut permissions = meta.permissions();
    #[expect(
        clippy::permissions_set_readonly_false,
        reason = "this file is Windows-only: it clears FILE_ATTRIBUTE_READONLY; the lint's concern (world-writable on Unix) does not apply"
    )]
    permissions.set_readonly(false);
    std::fs::set_permissions(path, permissions).is_ok()
}

/// Clears the read-only attribute of every file below `path` (links are not followed), so
/// the tree can be deleted. Best effort: what cannot be changed makes the delete fail, and
/// that error names the path.
pub fn clear_read_only(path: &Path) {
    let mut stack = vec![path.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.permissions().readonly() {
                let mut permissions = meta.permissions();
                #[expect(
                    clippy::permissions_set_readonly_false,
                    reason = "this file is Windows-only: it clears FILE_ATTRIBUTE_READONLY; the lint's concern (world-writable on Unix) does not apply"
                )]
                permissions.set_readonly(false);
                let _ = std::fs::set_permissions(entry.path(), permissions);
            }
        }
    }
}
