//! Shortcuts on Linux and the BSDs: freedesktop Desktop Entry files (`.desktop`).
//!
//! Desktop: `$HOME/Desktop`. Start menu: `$XDG_DATA_HOME/applications`, where
//! `XDG_DATA_HOME` defaults to `$HOME/.local/share` (XDG Base Directory spec). The file is
//! executable, which desktops such as GNOME require before they trust a launcher on the
//! desktop.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use appstart_layout::fsutil;

use super::ShortcutLocation;
use crate::error::{Error, Result};

/// The shortcut file's extension.
pub const EXTENSION: &str = "desktop";

/// The folder of `location`, from `HOME` and `XDG_DATA_HOME`.
pub fn folder(location: ShortcutLocation) -> Result<PathBuf> {
    match location {
        ShortcutLocation::Desktop => Ok(home()?.join("Desktop")),
        ShortcutLocation::StartMenu => {
            // The spec: a relative XDG_DATA_HOME is invalid and is ignored.
            let data_home = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute());
            let data_home = match data_home {
                Some(path) => path,
                None => home()?.join(".local/share"),
            };
            Ok(data_home.join("applications"))
        }
    }
}

fn home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .ok_or_else(|| {
            Error::Invalid(
                "HOME is not set to an absolute path: set it to make desktop or start-menu shortcuts"
                    .into(),
            )
        })
}

/// Writes a Desktop Entry at `path` that runs `launcher`, named `app`, mode 0755.
pub fn write(path: &Path, launcher: &Path, app: &str) -> Result<()> {
    let entry = desktop_entry(launcher, app)?;
    fsutil::write_atomic(path, entry.as_bytes())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io("making executable", path, e))
}

/// The Desktop Entry text.
fn desktop_entry(launcher: &Path, app: &str) -> Result<String> {
    Ok(format!(
        "[Desktop Entry]\nType=Application\nVersion=1.5\nName={}\nExec={}\nTerminal=false\n",
        escape_string(app),
        exec_value(launcher)?
    ))
}

/// `launcher` as the `Exec` key's value: one quoted argument (Desktop Entry spec, "The Exec
/// key"): inside double quotes, `"`, `` ` ``, `$` and `\` take a backslash, `%` is doubled;
/// then the value as a whole is escaped as a string value, which doubles each backslash again.
fn exec_value(launcher: &Path) -> Result<String> {
    let text = launcher.to_str().ok_or_else(|| {
        Error::Invalid(format!(
            "{}: a Desktop Entry holds UTF-8 only; install into a folder whose path is UTF-8",
            launcher.display()
        ))
    })?;
    if text.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "{text:?}: a control character in the path cannot be written to a Desktop Entry"
        )));
    }
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '`' | '$' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '%' => quoted.push_str("%%"),
            _ => quoted.push(c),
        }
    }
    quoted.push('"');
    Ok(escape_string(&quoted))
}

/// A string value's escapes (Desktop Entry spec, "Possible value types").
fn escape_string(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\t' => escaped.push_str("\\t"),
            '\r' => escaped.push_str("\\r"),
            _ => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_quotes_the_launcher_path_per_the_spec() {
        let exec = |p: &str| exec_value(Path::new(p)).expect("valid");
        assert_eq!(exec("/opt/app/appstart"), r#""/opt/app/appstart""#);
        assert_eq!(exec("/home/a b/appstart"), r#""/home/a b/appstart""#);
        assert_eq!(exec("/x/100%/appstart"), r#""/x/100%%/appstart""#);
        assert_eq!(exec("/x/$HOME/appstart"), r#""/x/\\$HOME/appstart""#);
        assert_eq!(exec("/x/\"q\"/appstart"), r#""/x/\\"q\\"/appstart""#);
        assert_eq!(exec("/x/`c`/appstart"), r#""/x/\\`c\\`/appstart""#);
        assert_eq!(exec("/x/b\\s/appstart"), r#""/x/b\\\\s/appstart""#);
        assert!(exec_value(Path::new("/x/new\nline")).is_err());
    }
}
