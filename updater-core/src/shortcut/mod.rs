//! Desktop and start-menu shortcuts to an install's launcher (`appupdate install --shortcut`).
//!
//! A shortcut points at `DIR/appstart` (`DIR\appstart.exe`), the path that never changes
//! across updates. What a shortcut is and where it goes differ by platform; behaviour is
//! written once here, and only the locations and the file format live in `unix.rs`
//! (freedesktop `.desktop` files) and `windows.rs` (`.lnk` shell links).
//!
//! Steps of [`create`], for each location:
//! 1. resolve the folder (from `HOME`/`XDG_DATA_HOME`, `USERPROFILE`/`APPDATA`, so tests can
//!    redirect it) and refuse a shortcut that exists already: it is not ours to replace;
//! 2. record its path in `state/shortcuts.toml` *before* writing it, so a crash in between
//!    leaves at worst a record of a file that does not exist, never a file nobody removes;
//! 3. write the shortcut atomically.
//!
//! [`remove_recorded`] removes every recorded shortcut (those already gone are skipped), as
//! `appupdate uninstall` does before it removes the folder.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use appstart_layout::{InstallDir, fsutil};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[cfg(all(unix, not(target_os = "macos")))]
#[path = "unix.rs"]
mod sys;
#[cfg(windows)]
#[path = "windows.rs"]
mod sys;
#[cfg(target_os = "macos")]
#[path = "macos.rs"]
mod sys;

/// Where a shortcut goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ShortcutLocation {
    /// The user's desktop: `~/Desktop`; `%USERPROFILE%\Desktop` on Windows.
    Desktop,
    /// The applications menu: `$XDG_DATA_HOME/applications` (default
    /// `~/.local/share/applications`); `%APPDATA%\Microsoft\Windows\Start Menu\Programs` on
    /// Windows.
    StartMenu,
}

impl ShortcutLocation {
    /// The names `--shortcut` accepts.
    pub const NAMES: [&'static str; 2] = ["desktop", "start-menu"];

    /// The folder shortcuts for this location go into, on this machine.
    pub fn folder(self) -> Result<PathBuf> {
        sys::folder(self)
    }
}

impl fmt::Display for ShortcutLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShortcutLocation::Desktop => "desktop",
            ShortcutLocation::StartMenu => "start-menu",
        })
    }
}

impl FromStr for ShortcutLocation {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "desktop" => Ok(ShortcutLocation::Desktop),
            "start-menu" => Ok(ShortcutLocation::StartMenu),
            other => Err(Error::Invalid(format!(
                "{other:?} is not a shortcut location: use desktop or start-menu"
            ))),
        }
    }
}

/// A shortcut an install made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Shortcut {
    /// Where it is.
    pub location: ShortcutLocation,
    /// The shortcut file.
    pub path: PathBuf,
}

/// `state/shortcuts.toml`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShortcutsFile {
    #[serde(default, rename = "shortcut")]
    shortcuts: Vec<Shortcut>,
}

/// The largest `state/shortcuts.toml` we read: two shortcuts need a few hundred bytes.
const MAX_RECORD_SIZE: u64 = 64 * 1024;

/// The shortcuts recorded in `install`'s `state/shortcuts.toml` (none without the file).
pub fn recorded(install: &InstallDir) -> Result<Vec<Shortcut>> {
    let path = install.shortcuts_path();
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = fsutil::read_to_string_capped(&path, MAX_RECORD_SIZE)?;
    let file: ShortcutsFile = toml::from_str(&text).map_err(|e| Error::Format {
        what: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(file.shortcuts)
}

fn save_record(install: &InstallDir, shortcuts: &[Shortcut]) -> Result<()> {
    let file = ShortcutsFile {
        shortcuts: shortcuts.to_vec(),
    };
    let text = toml::to_string(&file).map_err(|e| Error::Format {
        what: install.shortcuts_path().display().to_string(),
        message: e.to_string(),
    })?;
    fsutil::write_atomic(&install.shortcuts_path(), text.as_bytes())?;
    Ok(())
}

/// Creates a shortcut named after `app` to `install`'s launcher in each of `locations`
/// (each once), recording them in `state/shortcuts.toml` (module docs, steps 1-3).
pub fn create(
    install: &InstallDir,
    app: &str,
    locations: &[ShortcutLocation],
) -> Result<Vec<Shortcut>> {
    let launcher = std::path::absolute(install.launcher_path())
        .map_err(|e| Error::io("resolving", install.launcher_path(), e))?;
    let name = file_stem(app)?;
    let mut made = recorded(install)?;
    for &location in locations {
        if made.iter().any(|s| s.location == location) {
            continue;
        }
        // Step 1.
        let folder = location.folder()?;
        let path = folder.join(format!("{name}.{}", sys::EXTENSION));
        if path.exists() {
            return Err(Error::Invalid(format!(
                "{} exists already: remove it (or uninstall the install it belongs to) and install again",
                path.display()
            )));
        }
        // Step 2.
        made.push(Shortcut {
            location,
            path: path.clone(),
        });
        save_record(install, &made)?;
        // Step 3.
        fsutil::create_dir_all(&folder)?;
        sys::write(&path, &launcher, app)?;
    }
    Ok(made)
}

/// Removes every shortcut recorded for `install`; returns the files removed.
pub fn remove_recorded(install: &InstallDir) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for shortcut in recorded(install)? {
        if shortcut.path.exists() {
            fsutil::remove_file_if_exists(&shortcut.path)?;
            removed.push(shortcut.path);
        }
    }
    Ok(removed)
}

/// The shortcut's file name without extension: the app name, which must be a plain file name.
fn file_stem(app: &str) -> Result<&str> {
    let plain = !app.is_empty()
        && !app.starts_with('.')
        && app
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '));
    if plain {
        Ok(app)
    } else {
        Err(Error::Invalid(format!(
            "app {app:?} cannot name a shortcut file: use letters, digits, '-', '_', '.' and spaces"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_round_trip_through_their_names() {
        for name in ShortcutLocation::NAMES {
            let location: ShortcutLocation = name.parse().expect("a location");
            assert_eq!(location.to_string(), name);
        }
        assert!("startmenu".parse::<ShortcutLocation>().is_err());
    }

    #[test]
    fn app_names_that_are_not_plain_file_names_are_refused() {
        assert_eq!(file_stem("sample app").ok(), Some("sample app"));
        for bad in ["", ".hidden", "a/b", "a\\b", "a\nb"] {
            assert!(file_stem(bad).is_err(), "{bad:?}");
        }
    }
}
