//! The bytes a plan will download: the total of the download phase's progress.
//!
//! Each content the plan takes from the network counts once (two files with the same
//! content download it once), at the size of its smallest usable delta or else its blob,
//! less what the download cache already holds: a complete cached download costs nothing,
//! a `.partial` one only its missing bytes (it is resumed). Bridged pack gaps and retried
//! bytes are not in it: the meter stops counting at this total.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::Path;

use super::{LocalFiles, Route, usable_deltas};
use crate::manifest::{Content, Manifest};

/// The bytes `routes` (the plan for `manifest`) will receive; `cache` is `state/cache`.
pub(super) fn download_size(
    manifest: &Manifest,
    routes: &[Route],
    local: &LocalFiles,
    cache: &Path,
) -> u64 {
    // One listing of the cache, not two `stat`s per content (10,000 on a fresh install).
    let cached: HashSet<OsString> = std::fs::read_dir(cache)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect()
        })
        .unwrap_or_default();
    let length = |name: &str| {
        if cached.contains(OsStr::new(name)) {
            std::fs::metadata(cache.join(name)).map_or(0, |m| m.len())
        } else {
            0
        }
    };
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut add = |content: &dyn Content| {
        if seen.insert(content.expected().blake3.to_string()) {
            total = total.saturating_add(missing_bytes(content, local, &length));
        }
    };
    for (entry, route) in manifest.files.iter().zip(routes) {
        match route {
            Route::Local => {}
            Route::Whole => add(entry),
            Route::Archive => {
                if let Some(archive) = &entry.archive {
                    super::archive::parts_to_make(archive, local).for_each(&mut add);
                }
            }
        }
    }
    total
}

/// The bytes still to receive for `content`: its delta or blob, less what is cached.
/// `length`: the length of a file in the cache, 0 if it is not there.
fn missing_bytes(content: &dyn Content, local: &LocalFiles, length: &dyn Fn(&str) -> u64) -> u64 {
    let blake3 = content.expected().blake3;
    if local.has(blake3) {
        return 0;
    }
    let (name, size) = match usable_deltas(content, local).first() {
        Some(delta) => (
            format!("{}-{blake3}.{}", delta.base, delta.algorithm.extension()),
            delta.size,
        ),
        None => (format!("{blake3}.zst"), content.blob_size()),
    };
    if length(&name) == size {
        return 0;
    }
    size.saturating_sub(length(&format!("{name}.partial")).min(size))
}
