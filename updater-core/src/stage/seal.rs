//! Making a file of a version folder read-only once it is written: a version folder is
//! immutable, and its files may be shared with other versions through hard links.

use std::fs::File;
use std::path::Path;

use super::FileStat;
use crate::error::{Error, Result};

/// Finishes a file just written: makes it read-only ([`set_read_only`]), flushes it where
/// staging flushes file by file ([`super::durable::file_written`]: after the mode change, so
/// that the mode is durable too) and closes it. Returns its stat where it can be read from
/// the open file (Unix: through the handle, with no second look-up of its path).
pub(super) fn seal(file: File, path: &Path, executable: bool) -> Result<Option<FileStat>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if executable { 0o555 } else { 0o444 };
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("setting permissions of", path, e))?;
        super::durable::file_written(&file, path)?;
        Ok(FileStat::of_open(&file))
    }
    #[cfg(not(unix))]
    {
        // Windows: the read-only attribute is set by path once the file is closed (the file's
        // data is flushed first; the attribute change is written through by NTFS).
        super::durable::file_written(&file, path)?;
        drop(file);
        set_read_only(path, executable)?;
        Ok(None)
    }
}

/// Makes the file at `path` read-only (and executable or not, on Unix).
pub(super) fn set_read_only(path: &Path, executable: bool) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if executable { 0o555 } else { 0o444 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("setting permissions of", path, e))
    }
    #[cfg(windows)]
    {
        let _ = executable; // No execute bit: any file can be started.
        let mut permissions = std::fs::metadata(path)
            .map_err(|e| Error::io("reading", path, e))?
            .permissions();
        permissions.set_readonly(true);
        std::fs::set_permissions(path, permissions)
            .map_err(|e| Error::io("setting permissions of", path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stat read through the handle is the one the file keeps once closed and made
    /// read-only: what later runs compare against `lstat`.
    #[test]
    fn a_sealed_file_is_read_only_and_its_stat_is_final() {
        let dir = tempfile::tempdir().unwrap();
        for executable in [false, true] {
            let path = dir.path().join(format!("file-{executable}"));
            let mut file = File::create(&path).unwrap();
            std::io::Write::write_all(&mut file, b"content").unwrap();
            let stat = seal(file, &path, executable).unwrap();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(meta.permissions().readonly());
            assert_eq!(
                appstart_layout::fsutil::is_executable(&meta),
                executable || cfg!(not(unix))
            );
            if cfg!(unix) {
                assert_eq!(stat, Some(FileStat::of(&path, &meta)));
            } else {
                assert_eq!(stat, None);
            }
        }
    }
}
