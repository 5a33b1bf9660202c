//! Moving folders aside: a pruned version as the next staging's spare, and a folder staging
//! could not clean as a `.damaged-` folder for the next prune.

use std::path::Path;

use appstart_layout::{InstallDir, VersionName, fsutil};

use crate::error::Result;

/// Sets the folder of a version being pruned aside as `versions/.spare` (replacing an
/// older one) instead of deleting it. Returns whether it did; when not, the caller deletes
/// the folder as before.
///
/// Not a folder holding a mount point. Not a folder a process still runs from (its executable or its working folder is in it;
/// an old app that updates itself may outlive two updates): what it writes there would land
/// in the next version. Only on Linux, where that can be told ([`super::RECYCLES`]).
pub(crate) fn set_aside(install: &InstallDir, version_dir: &Path) -> bool {
    if !super::RECYCLES {
        return false;
    }
    if in_use(version_dir) {
        log::info!(
            "not setting {} aside: a process runs from it",
            version_dir.display()
        );
        return false;
    }
    // A mount point stays where the user made it (a rename would carry it along, away
    // from where the system mounts it again); the prune then leaves the folder, saying why.
    let why_not = match fsutil::mount_within(version_dir) {
        Ok(None) => None,
        Ok(Some(mount)) => Some(format!("{} is mounted in it", mount.display())),
        Err(err) => Some(err.to_string()),
    };
    if let Some(why_not) = why_not {
        log::info!("not setting {} aside: {why_not}", version_dir.display());
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

/// Whether a process of this user (the one that can write into `dir`) has its executable or
/// working folder inside `dir` (`/proc/<pid>/exe` and `cwd`). When the folder cannot be
/// resolved or `/proc` cannot be read, it counts as in use. A process whose links cannot be
/// read (not dumpable: a set-user-ID program, an agent that asked not to be, a sandbox's
/// init) is not an app run by the launcher and is passed over: counting it would turn
/// recycling off for good on machines that always run one.
#[cfg(target_os = "linux")]
fn in_use(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(dir), Ok(me), Ok(processes)) = (
        std::fs::canonicalize(dir),
        std::fs::metadata("/proc/self"),
        std::fs::read_dir("/proc"),
    ) else {
        return true;
    };
    processes.flatten().any(|process| {
        let ours = process
            .file_name()
            .to_str()
            .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()))
            && process.metadata().is_ok_and(|meta| meta.uid() == me.uid());
        // A link that cannot be read: gone since it was listed, a kernel thread (no
        // executable), not dumpable.
        ours && ["exe", "cwd"].iter().any(|link| {
            std::fs::read_link(process.path().join(link))
                .is_ok_and(|target| target.starts_with(&dir))
        })
    })
}

#[cfg(not(target_os = "linux"))]
fn in_use(_dir: &Path) -> bool {
    true
}

/// Renames `dir` to the first free `versions/.damaged-<version>-<n>`, which no launcher runs
/// and the next prune removes.
pub(super) fn move_damaged_aside(
    install: &InstallDir,
    dir: &Path,
    version: &VersionName,
) -> Result<()> {
    let aside = crate::switch::free_damaged_dir(install, version)?;
    fsutil::rename(dir, &aside)?;
    log::info!("moved {} aside to {}", dir.display(), aside.display());
    Ok(())
}
