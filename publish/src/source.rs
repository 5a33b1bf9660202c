//! Reading the folder to publish: its files, their modes, and which are executables.

use super::PublishRequest;
use std::path::Path;

use appstart_layout::RelativePath;

use updater_core::{Error, Result};

/// Whether a release's platform is Windows (`windows-x86_64`, `windows-aarch64`, ...).
pub fn is_windows_platform(platform: &str) -> bool {
    platform == "windows" || platform.starts_with("windows-")
}

/// Whether the manifest marks `path` executable. Windows has no execute bit: for a Windows
/// release, and on a Windows publisher (whose files carry no bit), the executable files are
/// exactly the ones named by `--exe` and `--launcher`. So a `windows-x86_64` release
/// cross-published from Linux, whose files have no `x` bit, is accepted. Otherwise the
/// source file's execute bit decides.
pub(super) fn marks_executable(
    request: &PublishRequest,
    path: &RelativePath,
    execute_bit: Option<bool>,
) -> bool {
    match execute_bit {
        Some(bit) if !is_windows_platform(&request.platform) => bit,
        _ => {
            *path == request.executable
                || request.launcher.as_ref() == Some(path)
                || request.hooks.iter().any(|(_, hook)| hook.path == *path)
        }
    }
}

/// Each hook of `request` names a file of the release (`files`, as scanned) that will be
/// executable once installed; on Windows releases, one Windows can run directly (`.exe`,
/// `.com`) or through `cmd.exe` (`.bat`, `.cmd`).
pub(super) fn check_hooks(
    request: &PublishRequest,
    files: &[(RelativePath, Option<bool>)],
) -> Result<()> {
    request.hooks.check().map_err(Error::Invalid)?;
    for (kind, hook) in request.hooks.iter() {
        let Some((path, bit)) = files.iter().find(|(path, _)| *path == hook.path) else {
            return Err(Error::Invalid(format!(
                "--hook {kind}={}: {} is not a file of the release in {}; name a file inside the folder, relative to it",
                hook.path,
                hook.path.join_to(&request.source).display(),
                request.source.display()
            )));
        };
        if is_windows_platform(&request.platform) {
            let extension = path
                .as_str()
                .rsplit_once('.')
                .map(|(_, ext)| ext.to_ascii_lowercase());
            if !matches!(extension.as_deref(), Some("exe" | "com" | "bat" | "cmd")) {
                return Err(Error::Invalid(format!(
                    "--hook {kind}={path}: a Windows release's hook must be an .exe, .com, .bat or .cmd file (hooks run with no shell)"
                )));
            }
        } else if !marks_executable(request, path, *bit) {
            return Err(Error::Invalid(format!(
                "--hook {kind}={path}: {} is not executable; hooks run with no shell: make it executable (chmod +x) and start scripts with a #! line",
                path.join_to(&request.source).display()
            )));
        }
    }
    Ok(())
}

/// Regular files (with their execute bit, `None` on Windows) and empty folders of a source
/// folder.
type SourceTree = (Vec<(RelativePath, Option<bool>)>, Vec<RelativePath>);

/// Lists the regular files (with execute bit) and empty folders below `source`, sorted.
/// Symlinks and special files are refused: a release is plain files, so it installs the same
/// everywhere and cannot point outside its folder.
pub(super) fn scan_source(source: &Path) -> Result<SourceTree> {
    let meta = std::fs::metadata(source).map_err(|e| Error::io("reading", source, e))?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "{} is not a folder",
            source.display()
        )));
    }
    let mut files = Vec::new();
    let mut empty_dirs = Vec::new();
    let mut stack = vec![source.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut count = 0;
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
            count += 1;
            let path = entry.path();
            let file_type = entry
                .file_type()
                .map_err(|e| Error::io("reading", &path, e))?;
            let relative = path.strip_prefix(source).unwrap_or(&path);
            if file_type.is_symlink() {
                return Err(Error::Invalid(format!(
                    "{} is a symbolic link; releases hold regular files only (copy the target in instead)",
                    path.display()
                )));
            } else if file_type.is_dir() {
                stack.push(path);
            } else if file_type.is_file() {
                let relative = RelativePath::from_path(relative)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
                files.push((relative, execute_bit(&path)?));
            } else {
                return Err(Error::Invalid(format!(
                    "{} is not a regular file or folder",
                    path.display()
                )));
            }
        }
        if count == 0 && dir != source {
            let relative = dir.strip_prefix(source).unwrap_or(&dir);
            empty_dirs.push(
                RelativePath::from_path(relative)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", dir.display())))?,
            );
        }
    }
    if files.is_empty() {
        return Err(Error::Invalid(format!(
            "{} has no files: there is nothing to publish (is it the build output folder?)",
            source.display()
        )));
    }
    files.sort();
    empty_dirs.sort();
    Ok((files, empty_dirs))
}

/// The execute bit of a source file; `None` on Windows, which has no such bit.
pub(super) fn execute_bit(path: &Path) -> Result<Option<bool>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| Error::io("reading", path, e))?
            .permissions()
            .mode();
        Ok(Some(mode & 0o111 != 0))
    }
    #[cfg(windows)]
    {
        let _ = path;
        Ok(None)
    }
}
