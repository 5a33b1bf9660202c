//! Moving folders aside: a pruned version as the next staging's spare, and a folder staging
//! could not clean as a `.damaged-` folder for the next prune.

use std::path::Path;

use appstart_layout::{InstallDir, VersionName, fsutil};

use crate::error::{Error, Result};

/// Sets the folder of a version being pruned aside as `versions/.spare` (replacing an
/// older one) instead of deleting it. Returns whether it did; when not, the caller deletes
/// the folder as before.
///
/// Not a folder a process still runs from (Linux: its executable or its working folder is
/// in it; an old app that updates itself may outlive two updates): what it writes there
/// would land in the next staging, which its check then refuses.
pub(crate) fn set_aside(install: &InstallDir, version_dir: &Path) -> bool {
    if cfg!(windows) {
        // Never used there (see `start_from`).
        return false;
    }
    if in_use(version_dir) {
        log::info!(
            "not setting {} aside: a process runs from it",
            version_dir.display()
        );
        return false;
    }
    let spare = install.spare_dir();
    if let Err(err) = fsutil::remove_dir_all_if_exists(&spare) {
        log::info!("{err}; deleting the pruned version instead of setting it aside");
        return false;
    }
    match std::fs::rename(version_dir, &spare) {
        Ok(()) => true,
        Err(err) => {
            log::info!(
                "not setting {} aside: {err}; deleting it instead",
                version_dir.display()
            );
            false
        }
    }
}

/// Whether a process's executable or working folder is inside `dir`, as far as this user
/// can see (`/proc/<pid>/exe` and `cwd`); a folder that cannot be resolved counts as in use.
#[cfg(target_os = "linux")]
fn in_use(dir: &Path) -> bool {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return true;
    };
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return false;
    };
    processes.flatten().any(|process| {
        let is_pid = process
            .file_name()
            .to_str()
            .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()));
        is_pid
            && ["exe", "cwd"].iter().any(|link| {
                std::fs::read_link(process.path().join(link))
                    .is_ok_and(|target| target.starts_with(&dir))
            })
    })
}

/// Elsewhere the folder is set aside whatever runs from it: what such a process writes is
/// still refused by the check of the next staging.
#[cfg(not(target_os = "linux"))]
fn in_use(_dir: &Path) -> bool {
    false
}

/// Renames `dir` to the first free `versions/.damaged-<version>-<n>`, which no launcher runs
/// and the next prune removes.
pub(super) fn move_damaged_aside(
    install: &InstallDir,
    dir: &Path,
    version: &VersionName,
) -> Result<()> {
    let aside = (0..1000)
        .map(|n| install.damaged_dir(version, n))
        .find(|path| std::fs::symlink_metadata(path).is_err())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{} holds 1000 damaged folders of {version}; remove them",
                install.versions_dir().display()
            ))
        })?;
    fsutil::rename(dir, &aside)?;
    log::info!("moved {} aside to {}", dir.display(), aside.display());
    Ok(())
}
