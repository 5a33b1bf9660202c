//! File systems mounted inside a folder that is about to be removed.
//!
//! `std::fs::remove_dir_all` does not follow symbolic links, but on Unix it does enter a
//! file system mounted inside the folder (a user's data bound into an old version's folder,
//! a network share, a tmpfs) and deletes what is there. So before a tree is removed, the
//! mounts under it are looked up in the system's mount table: Linux's
//! `/proc/self/mountinfo`, macOS's `getfsstat`. The table, not device numbers seen while
//! walking, because a bind mount of the same file system has the same device; where the
//! table cannot be read, the walk is the fallback. Unix only: on Windows a volume mounted in
//! a folder is a reparse point, which `remove_dir_all` removes without entering.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The first mount point at or below the folder `path`, if any. `None` when `path` does not
/// exist or is not a folder itself (a link to a folder is removed, not entered).
pub fn mount_within(path: &Path) -> Result<Option<PathBuf>> {
    Ok(mount_points_within(path)?.into_iter().next())
}

/// Every mount point at or below the folder `path` (`path` itself first, if it is one),
/// spelled as `path` resolves (links followed). Empty when `path` does not exist or is not a
/// folder itself.
pub fn mount_points_within(path: &Path) -> Result<Vec<PathBuf>> {
    if !std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir()) {
        return Ok(Vec::new());
    }
    let folder = match std::fs::canonicalize(path) {
        Ok(folder) => folder,
        // Gone since: nothing to remove.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("resolving", path, e)),
    };
    match mount_points() {
        Ok(points) => {
            let mut within: Vec<PathBuf> = points
                .into_iter()
                .filter(|point| point.starts_with(&folder))
                .collect();
            // Shallowest first; a point mounted on twice is listed once.
            within.sort_by(|a, b| {
                (a.components().count(), a.as_path()).cmp(&(b.components().count(), b.as_path()))
            });
            within.dedup();
            Ok(within)
        }
        Err(err) => {
            log::debug!(
                "{err}; looking for mount points under {} by device",
                path.display()
            );
            other_devices_within(&folder)
        }
    }
}

/// Every mount point of this process's mount table.
#[cfg(target_os = "linux")]
fn mount_points() -> Result<Vec<PathBuf>> {
    // A container with thousands of mounts has a table of a few hundred KiB.
    const LIMIT: u64 = 64 << 20;
    let path = Path::new("/proc/self/mountinfo");
    let table = crate::fsutil::read_capped(path, LIMIT)?;
    Ok(parse_mountinfo(&table))
}

/// The mount points of a `/proc/self/mountinfo` table: the fifth field of each line, with
/// the kernel's octal escapes (`\040` for a space) undone.
#[cfg(target_os = "linux")]
fn parse_mountinfo(table: &[u8]) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    table
        .split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(4))
        .map(|field| PathBuf::from(std::ffi::OsStr::from_bytes(&unescape(field))))
        .collect()
}

#[cfg(target_os = "linux")]
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut rest = field;
    while let Some((&first, tail)) = rest.split_first() {
        let octal = tail
            .get(..3)
            .filter(|digits| first == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match octal {
            Some(digits) => {
                let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                rest = &tail[3..];
            }
            None => {
                out.push(first);
                rest = tail;
            }
        }
    }
    out
}

/// Every mounted file system's mount point (`getfsstat`, which unlike `getmntinfo` fills a
/// buffer of ours and so is safe on any thread).
#[cfg(target_os = "macos")]
fn mount_points() -> Result<Vec<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let failed = |what| Error::io(what, "the mount table", std::io::Error::last_os_error());
    // SAFETY: a null buffer of size 0 asks only for the number of mounted file systems.
    let count = unsafe { libc::getfsstat(std::ptr::null_mut(), 0, libc::MNT_NOWAIT) };
    if count < 0 {
        return Err(failed("counting"));
    }
    // Room for a few mounted meanwhile; asked again with more if it came back full.
    let mut room = count as usize + 8;
    loop {
        // SAFETY: `statfs` is plain data, for which all zeroes is a valid value.
        let mut table: Vec<libc::statfs> = vec![unsafe { std::mem::zeroed() }; room];
        let bytes = (room * std::mem::size_of::<libc::statfs>()) as libc::c_int;
        // SAFETY: the buffer holds `room` entries, `bytes` long in all.
        let filled = unsafe { libc::getfsstat(table.as_mut_ptr(), bytes, libc::MNT_NOWAIT) };
        if filled < 0 {
            return Err(failed("reading"));
        }
        if filled as usize == room && room < 1 << 16 {
            room *= 2;
            continue;
        }
        table.truncate(filled as usize);
        let mut points = Vec::with_capacity(table.len());
        for fs in &table {
            // SAFETY: `f_mntonname` is a NUL-terminated string inside the struct.
            let name = unsafe { std::ffi::CStr::from_ptr(fs.f_mntonname.as_ptr()) };
            let point = PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes()));
            // Since macOS 10.15 the user's files are on the data volume, which firm links
            // make appear at `/`: a mount there may be listed under either spelling.
            if let Ok(rest) = point.strip_prefix("/System/Volumes/Data") {
                points.push(Path::new("/").join(rest));
            }
            points.push(point);
        }
        return Ok(points);
    }
}

/// Other Unix systems: no table read here; the device walk finds what is mounted.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn mount_points() -> Result<Vec<PathBuf>> {
    Err(Error::io(
        "reading",
        "the mount table",
        std::io::Error::from(std::io::ErrorKind::Unsupported),
    ))
}

/// The folders at or below `path` on another device than the folder holding them (mount
/// points), found by walking the tree without following links; `path` itself counts when it
/// is on another device than its parent. Misses a bind mount of the same file system, which
/// only the mount table shows.
fn other_devices_within(path: &Path) -> Result<Vec<PathBuf>> {
    use std::os::unix::fs::MetadataExt;
    let device_of = |path: &Path| {
        std::fs::symlink_metadata(path)
            .map(|meta| meta.dev())
            .map_err(|e| Error::io("reading", path, e))
    };
    let device = device_of(path)?;
    let mut found = Vec::new();
    if let Some(parent) = path.parent()
        && device_of(parent)? != device
    {
        found.push(path.to_path_buf());
    }
    let mut stack = vec![(path.to_path_buf(), device)];
    while let Some((dir, device)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
            if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            let inner = device_of(&entry.path())?;
            if inner != device {
                found.push(entry.path());
            }
            stack.push((entry.path(), inner));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn mountinfo_fields_are_read_and_unescaped() {
        let table = b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
            36 22 0:31 / /home/a\\040b/versions/1.0.0/data rw - tmpfs tmpfs rw\n\
            37 22 0:32 / /x\\134y\\011z rw - tmpfs tmpfs rw\n\
            \n";
        assert_eq!(
            parse_mountinfo(table),
            [
                PathBuf::from("/"),
                PathBuf::from("/home/a b/versions/1.0.0/data"),
                PathBuf::from("/x\\y\tz"),
            ]
        );
        // A backslash not followed by three octal digits is kept as it is.
        assert_eq!(unescape(b"a\\9b\\04"), b"a\\9b\\04");
    }

    #[test]
    fn a_missing_path_or_a_file_holds_no_mount() {
        let dir = std::env::temp_dir().join(super::super::temp_name("mounts-test"));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(mount_within(&dir.join("missing")).unwrap(), None);
        std::fs::write(dir.join("file"), b"x").unwrap();
        assert_eq!(mount_within(&dir.join("file")).unwrap(), None);
        assert_eq!(mount_within(&dir).unwrap(), None);
        assert_eq!(other_devices_within(&dir).unwrap(), Vec::<PathBuf>::new());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Mounts a small tmpfs at `at`, or says why it cannot (not root). In CI, which runs as
    /// root, not being able to is a failure: the check must not pass there without running.
    #[cfg(target_os = "linux")]
    fn mount(args: &[&str], at: &Path) -> bool {
        let mounted = std::process::Command::new("mount")
            .args(args)
            .arg(at)
            .output();
        if mounted.as_ref().is_ok_and(|o| o.status.success()) {
            return true;
        }
        let reason = mounted
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount at {} ({reason}); CI must run as root",
            at.display()
        );
        eprintln!("SKIPPED: cannot mount here ({reason}; run as root) - mount points not checked");
        false
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_tree_holding_a_mount_point_is_not_removed() {
        let dir = std::env::temp_dir().join(super::super::temp_name("mounts-root"));
        let version = dir.join("versions").join("1.0.0");
        let data = version.join("data");
        let bound = dir.join("user data");
        for folder in [&data, &bound] {
            std::fs::create_dir_all(folder).unwrap();
        }
        std::fs::write(bound.join("precious"), b"keep me").unwrap();
        std::fs::write(version.join("app"), b"app").unwrap();
        // A bind mount of the same file system: same device, only the table shows it.
        if !mount(&["--bind", bound.to_str().unwrap()], &data) {
            return;
        }
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(&self.0).status();
            }
        }
        let unmount = Unmount(data.clone());
        assert_eq!(
            other_devices_within(&dir).unwrap(),
            Vec::<PathBuf>::new(),
            "one device"
        );
        assert_eq!(mount_within(&dir).unwrap(), Some(data.clone()));
        assert_eq!(mount_within(&data).unwrap(), Some(data.clone()), "itself");
        let err = crate::fsutil::remove_dir_all_if_exists(&dir).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(dir.to_str().unwrap()) && message.contains(data.to_str().unwrap()),
            "{message}"
        );
        assert_eq!(std::fs::read(data.join("precious")).unwrap(), b"keep me");
        assert_eq!(
            std::fs::read(version.join("app")).unwrap(),
            b"app",
            "nothing removed"
        );
        // A folder beside the mount, not holding it, is removed as always.
        let beside = dir.join("versions").join("0.9.0");
        std::fs::create_dir_all(beside.join("bin")).unwrap();
        crate::fsutil::remove_dir_all_if_exists(&beside).unwrap();
        assert!(!beside.exists());
        // A tmpfs is another device: the walk that stands in for the table finds it too.
        let tmpfs = version.join("scratch");
        std::fs::create_dir_all(&tmpfs).unwrap();
        if mount(&["-t", "tmpfs", "-o", "size=1m", "tmpfs"], &tmpfs) {
            let _tmpfs = Unmount(tmpfs.clone());
            assert_eq!(other_devices_within(&version).unwrap(), vec![tmpfs.clone()]);
            assert_eq!(
                other_devices_within(&tmpfs).unwrap(),
                vec![tmpfs.clone()],
                "itself"
            );
            assert_eq!(
                mount_points_within(&version).unwrap(),
                [data.clone(), tmpfs.clone()]
            );
        }
        drop(unmount);
        crate::fsutil::remove_dir_all_if_exists(&dir.join("versions")).unwrap();
        assert_eq!(std::fs::read(bound.join("precious")).unwrap(), b"keep me");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
