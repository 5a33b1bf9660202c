//! Shortcuts on Windows: shell links (`.lnk`), written by the `mslnk` crate (pure Rust, no
//! COM, so no apartment to initialise and nothing the launcher links).
//!
//! Desktop: `%USERPROFILE%\Desktop`. Start menu: `%APPDATA%\Microsoft\Windows\Start
//! Menu\Programs`. Off-spec: these are the default places of the shell's known folders
//! `FOLDERID_Desktop` and `FOLDERID_Programs`; a desktop redirected elsewhere (OneDrive,
//! group policy) is not followed. Reading the environment keeps tests able to redirect them.

use std::path::{Path, PathBuf};

use appstart_layout::fsutil;

use super::ShortcutLocation;
use crate::error::{Error, Result};

/// The shortcut file's extension.
pub const EXTENSION: &str = "lnk";

/// The folder of `location`, from `USERPROFILE` and `APPDATA`.
pub fn folder(location: ShortcutLocation) -> Result<PathBuf> {
    match location {
        ShortcutLocation::Desktop => Ok(variable("USERPROFILE")?.join("Desktop")),
        ShortcutLocation::StartMenu => Ok(variable("APPDATA")?
            .join("Microsoft")
            .join("Windows")
            .join("Start Menu")
            .join("Programs")),
    }
}

fn variable(name: &str) -> Result<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "%{name}% is not set to an absolute path: set it to make desktop or start-menu shortcuts"
            ))
        })
}

/// Writes a shell link at `path` to `launcher` (working folder: the install folder),
/// atomically: a temporary file beside it, renamed over.
pub fn write(path: &Path, launcher: &Path, _app: &str) -> Result<()> {
    // mslnk panics on a path that is not UTF-8 or has no parent: refuse those first.
    if launcher.to_str().is_none() || launcher.parent().is_none() {
        return Err(Error::Invalid(format!(
            "{}: a shortcut needs a launcher path in Unicode inside a folder",
            launcher.display()
        )));
    }
    let link = mslnk::ShellLink::new(launcher).map_err(|e| lnk_error(launcher, e))?;
    let folder = fsutil::parent_of(path);
    let temp = folder.join(fsutil::temp_name("shortcut.lnk"));
    let result = link
        .create_lnk(&temp)
        .map_err(|e| lnk_error(&temp, e))
        .and_then(|()| fsutil::rename(&temp, path).map_err(Error::from));
    if result.is_err() {
        // Best effort: the temporary file is ours and useless now.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn lnk_error(path: &Path, error: mslnk::MSLinkError) -> Error {
    Error::Invalid(format!("writing shortcut {}: {error}", path.display()))
}
