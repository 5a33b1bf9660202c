//! [`FileStat`] from `GetFileInformationByHandle`: volume serial number, file index, size and
//! last write time. std's `Metadata` has no stable file index, so the file is opened for no
//! access at all (which antivirus locks and read-only attributes do not refuse) to ask.

use std::fs::OpenOptions;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::AsRawHandle;
use std::path::Path;

use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT,
    FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, GetFileInformationByHandle,
};

use super::FileStat;

pub fn stat(path: &Path, meta: &std::fs::Metadata) -> FileStat {
    let unknown = FileStat {
        ino: 0,
        volume: 0,
        size: meta.len(),
        mtime_ns: 0,
    };
    let Ok(file) = OpenOptions::new()
        .access_mode(0)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
    else {
        return unknown;
    };
    // SAFETY: all zeros is a valid BY_HANDLE_FILE_INFORMATION (plain integers).
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: the handle is open for the duration of the call; `info` is writable.
    if unsafe { GetFileInformationByHandle(file.as_raw_handle(), &mut info) } == 0 {
        return unknown;
    }
    let high_low = |high: u32, low: u32| (u64::from(high) << 32) | u64::from(low);
    let write_time = high_low(
        info.ftLastWriteTime.dwHighDateTime,
        info.ftLastWriteTime.dwLowDateTime,
    );
    FileStat {
        ino: high_low(info.nFileIndexHigh, info.nFileIndexLow),
        volume: u64::from(info.dwVolumeSerialNumber),
        size: high_low(info.nFileSizeHigh, info.nFileSizeLow),
        // FILETIME counts 100 ns intervals since 1601.
        mtime_ns: i128::from(write_time) * 100,
    }
}
