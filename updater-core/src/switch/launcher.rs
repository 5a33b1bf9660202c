//! Step 7, and step 9 for launchers: replacing `DIR/appstart` with the one a release ships,
//! and removing the launchers a Windows update renamed aside once they no longer run.

use std::path::Path;

use appstart_layout::{InstallDir, fsutil};

use crate::error::{Error, Result};

/// Replaces `DIR/appstart` with `source`: copy beside it, `fsync`, rename over, `fsync`. On
/// Windows the running launcher is renamed aside first (`move_launcher_aside`).
pub fn replace_launcher(install: &InstallDir, source: &Path) -> Result<()> {
    let target = install.launcher_path();
    let temp = install.root().join(fsutil::temp_name("appstart"));
    let result = (|| {
        // Copied through a new file, not `fs::copy`: on Windows that would carry over the
        // installed file's read-only attribute, and flushing needs a handle opened for
        // writing (`FlushFileBuffers`).
        let mut input = std::fs::File::open(source).map_err(|e| Error::io("opening", source, e))?;
        let mut output =
            std::fs::File::create(&temp).map_err(|e| Error::io("creating", &temp, e))?;
        std::io::copy(&mut input, &mut output)
            .map_err(|e| Error::io("copying the launcher to", &temp, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            output
                .set_permissions(std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io("setting permissions of", &temp, e))?;
        }
        output
            .sync_all()
            .map_err(|e| Error::io("syncing", &temp, e))?;
        drop(output);
        #[cfg(windows)]
        let aside = move_launcher_aside(install)?;
        let renamed = fsutil::rename(&temp, &target);
        #[cfg(windows)]
        if let (Err(_), Some(aside)) = (&renamed, &aside) {
            // Put the old one back: an install must never be left without a launcher.
            fsutil::rename(aside, &target)?;
        }
        renamed?;
        fsutil::sync_dir(install.root())?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// The file name prefix of launchers renamed aside, e.g. `appstart.exe.old-`.
pub(super) fn launcher_aside_prefix(install: &InstallDir) -> String {
    let launcher = install.launcher_path();
    let name = launcher
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{name}.old-")
}

/// Windows: renames the (possibly running) launcher aside; `None` when there is none. A
/// running `.exe` can be renamed but not replaced or deleted.
#[cfg(windows)]
fn move_launcher_aside(install: &InstallDir) -> Result<Option<std::path::PathBuf>> {
    let target = install.launcher_path();
    if !target.exists() {
        return Ok(None);
    }
    // `DIR/appstart.exe.old-<n>`, n unique (pid and clock, as in temporary names).
    let unique = fsutil::temp_name("launcher").replace(fsutil::TEMP_PREFIX, "");
    let aside = install
        .root()
        .join(format!("{}{unique}", launcher_aside_prefix(install)));
    fsutil::rename(&target, &aside)?;
    Ok(Some(aside))
}

/// Step 9 for launchers renamed aside: deletes them, leaving any still running for the next
/// prune. Restores the newest one first if a crash between the two renames of
/// [`replace_launcher`] left the install without a launcher.
pub(super) fn remove_launchers_aside(install: &InstallDir) {
    let prefix = launcher_aside_prefix(install);
    let Ok(entries) = std::fs::read_dir(install.root()) else {
        return;
    };
    let mut aside: Vec<_> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    if aside.is_empty() {
        return;
    }
    let launcher = install.launcher_path();
    if !launcher.exists() {
        aside.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        if let Some(newest) = aside.pop() {
            match fsutil::rename(&newest, &launcher) {
                Ok(()) => log::warn!(
                    "restored the launcher {} from {}",
                    launcher.display(),
                    newest.display()
                ),
                Err(err) => log::warn!("the launcher {} is missing: {err}", launcher.display()),
            }
        }
    }
    for path in aside {
        if let Err(err) = fsutil::remove_file_if_exists(&path) {
            log::warn!("{err}; it is removed at the next update once it no longer runs");
        }
    }
}
