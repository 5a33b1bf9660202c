//! Fetching the blobs a plan needs from the release's pack, by runs of neighbouring slices
//! (gaps under [`PACK_GAP`] are fetched rather than split, the smallest first, while the gap
//! bytes stay within the needed bytes / [`PACK_WASTE_DIVISOR`] + [`PACK_WASTE_FLOOR`]: issue
//! 14 wants an update's wire bytes within 1.1x its content): many runs to a request where the
//! server answers several ranges in parts ([`multi`]), else one range request per run
//! ([`single`]).
//!
//! Each slice is authenticated by its blob's signed BLAKE3 before anything decodes it. A
//! small slice (up to [`SLICE_IN_MEMORY`]) is read into memory, checked, and handed to the
//! caller's sink, which decodes it straight into the files that need it: a fresh install of
//! many small files then writes each file once, with no round trip through `state/cache`.
//! Slices the sink does not take (archive parts) and large slices go to the cache, where the
//! per-file step finds them ([`slices`]). Best effort: a range that fails is fetched blob by
//! blob afterwards; only an error of the sink (a file that cannot be written) stops staging.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use appstart_layout::fsutil;

use super::{
    LocalFiles, Made, PACK_GAP, PACK_MIN_BLOBS, PACK_WASTE_DIVISOR, PACK_WASTE_FLOOR, Route, Slice,
    Stager,
};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, PackRef};
use crate::transport::join_url;

mod multi;
mod single;
mod slices;

/// Slices up to this size are held in memory and handed to the sink; larger ones are cached.
/// Memory stays bounded: one slice at a time.
pub const SLICE_IN_MEMORY: u64 = 4 << 20;

/// Takes an authenticated slice (`slice`'s signed BLAKE3 matched `bytes`): returns whether it
/// used it (else it is cached for the per-file step).
pub(super) type Sink<'s> = dyn FnMut(&Slice<'_>, &[u8]) -> Result<bool> + Send + 's;

/// A pack response already open at `position`: a fresh install read the compressed manifest
/// from the pack's first bytes (`manifest_in_pack`) and hands the rest of the same response
/// to the stager, so manifest and content cost one request.
pub struct OpenedPack {
    /// The rest of the response body.
    pub body: Box<dyn Read + Send>,
    /// The pack offset of the body's next byte.
    pub position: u64,
}

impl std::fmt::Debug for OpenedPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedPack")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// Range requests to the pack in flight at once: an update of 1 % of a 10,000-file app
/// needs about 90 runs (the waste budget keeps unneeded bytes out), which one request at a
/// time would cost 90 round trips of latency on a server that answers one range per request.
pub const MAX_RANGE_REQUESTS: usize = 4;

/// Why a range stopped.
enum Stop {
    /// The network or the server: the rest is fetched blob by blob.
    Transport(Error),
    /// The sink or the cache failed: staging fails.
    Fatal(Error),
}

impl Stager<'_> {
    /// Fetches the blobs in `planned` from the release's pack, if it has one, and writes the
    /// files routed [`Route::Whole`] with no usable delta straight from their slices
    /// ([`super::writers`]). Returns, per manifest file, whether it was written (with its
    /// stat where known), and the bytes received and requests made.
    pub(super) fn write_from_pack(
        &self,
        manifest: &Manifest,
        routes: &[Route],
        planned: Vec<Slice<'_>>,
        local: &LocalFiles,
        staging: &Path,
    ) -> Result<(Vec<Made>, u64, usize)> {
        let Some(pack) = &manifest.pack else {
            return Ok((vec![Made::Not; manifest.files.len()], 0, 0));
        };
        // The files each blob makes, for those the plan takes from their blob.
        let mut wanted: HashMap<&str, Vec<usize>> = HashMap::new();
        for (index, (entry, route)) in manifest.files.iter().zip(routes).enumerate() {
            if *route == Route::Whole
                && !local.has(&entry.blake3)
                && super::usable_deltas(entry, local).is_empty()
            {
                wanted.entry(entry.blake3.as_str()).or_default().push(index);
            }
        }
        // Each authenticated slice goes to the writer threads, which decode it into the
        // files made from it.
        let ((received, requests), written) =
            super::writers::write_from_slices(manifest, staging, |send| {
                let mut sink = |slice: &Slice<'_>, bytes: &[u8]| -> Result<bool> {
                    let Some(indexes) = wanted.remove(slice.content) else {
                        return Ok(false);
                    };
                    send(indexes, bytes)?;
                    Ok(true)
                };
                self.prefetch_from_pack(pack, planned, &mut sink)
            })?;
        Ok((written, received, requests))
    }

    /// Fetches `planned` from `pack` (see the module docs). Returns the bytes received and the
    /// requests made.
    pub(super) fn prefetch_from_pack(
        &self,
        pack: &PackRef,
        planned: Vec<Slice<'_>>,
        sink: &mut Sink<'_>,
    ) -> Result<(u64, usize)> {
        let cache = self.install.cache_dir();
        // One listing of the cache, not a `stat` per slice (10,000 of them on a fresh install).
        let cached: std::collections::HashSet<std::ffi::OsString> = std::fs::read_dir(&cache)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.file_name()))
                    .collect()
            })
            .unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        let mut needed: Vec<Slice<'_>> = planned
            .into_iter()
            .filter(|slice| {
                let name = format!("{}.zst", slice.content);
                seen.insert(slice.content)
                    && !(cached.contains(std::ffi::OsStr::new(&name))
                        && std::fs::metadata(cache.join(&name))
                            .is_ok_and(|m| m.len() == slice.size))
            })
            .collect();
        let opened = self.opened_pack.lock().ok().and_then(|mut o| o.take());
        // A pack response already open is used whatever the count: its request is made.
        if (opened.is_none() && needed.len() < PACK_MIN_BLOBS)
            || fsutil::create_dir_all(&cache).is_err()
        {
            return Ok((0, 0));
        }
        needed.sort();
        // The manifest was validated (slices inside the pack, not overlapping), and one
        // slice per blob was kept above: offsets now strictly increase.
        let url = join_url(self.repo_url, pack.path.as_str());
        let mut received = 0;
        let mut requests = 0;
        if let Some(opened) = opened {
            // The response the manifest came from: every slice from it, in one pass.
            let end = self.pack_data_start.saturating_add(pack.size);
            let body = opened.body.take(end.saturating_sub(opened.position));
            let mut reader = slices::SliceReader::new(&url, &cache, opened.position);
            let result = reader.read_all(body, &needed, sink);
            match result {
                Ok(()) => return Ok((reader.received, 1)),
                Err(Stop::Transport(err)) if err.ends_operation() => return Err(err),
                Err(Stop::Transport(err)) => {
                    received += reader.received;
                    requests += 1;
                    // What was read stays read: the rest in ranges.
                    needed.drain(..reader.handled);
                    log::warn!(
                        "reading {url} failed, fetching the rest in ranges: {}",
                        crate::error::chain(&err)
                    );
                }
                Err(Stop::Fatal(err)) => return Err(err),
            }
        }
        // The runs: neighbours whose gap is bridged.
        let joined = bridged_gaps(&needed);
        let mut runs = Vec::new();
        let mut start_index = 0;
        while start_index < needed.len() {
            let mut end_index = start_index + 1;
            while joined.get(end_index).copied().unwrap_or(false) {
                end_index += 1;
            }
            runs.push((start_index, end_index));
            start_index = end_index;
        }
        let (bytes, made) = self.fetch_runs(&url, pack.size, &needed, &runs, &cache, sink)?;
        Ok((received + bytes, requests + made))
    }
}

/// Runs `job(index, sink)` for each index below `count`, up to [`MAX_RANGE_REQUESTS`] at a
/// time, each handing its slices to the one `sink` in turn (the writers' queue). A job
/// returns whether to go on: after `false` or an error no further job starts. Returns how
/// many jobs started, or the first error.
fn in_parallel(
    count: usize,
    sink: &mut Sink<'_>,
    job: &(dyn Fn(usize, &mut Sink<'_>) -> Result<bool> + Sync),
) -> Result<usize> {
    let next = AtomicUsize::new(0);
    let started = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let shared_sink = Mutex::new(sink);
    let work = || {
        let mut sink = |slice: &Slice<'_>, bytes: &[u8]| -> Result<bool> {
            match shared_sink.lock() {
                Ok(mut sink) => sink(slice, bytes),
                Err(_) => Err(Error::Invalid("a pack reader panicked".into())),
            }
        };
        while !stop.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= count {
                break;
            }
            started.fetch_add(1, Ordering::Relaxed);
            match job(index, &mut sink) {
                Ok(true) => {}
                Ok(false) => stop.store(true, Ordering::Relaxed),
                Err(err) => {
                    stop.store(true, Ordering::Relaxed);
                    if let Ok(mut failure) = failure.lock() {
                        failure.get_or_insert(err);
                    }
                }
            }
        }
    };
    let threads = MAX_RANGE_REQUESTS.min(count);
    if threads <= 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(work);
            }
        });
    }
    let failure = match failure.into_inner() {
        Ok(failure) => failure,
        Err(poisoned) => poisoned.into_inner(),
    };
    match failure {
        Some(err) => Err(err),
        None => Ok(started.into_inner()),
    }
}

/// For slices sorted by offset, whether each is fetched in one range with the one before
/// (`joined[i]`: the gap between slice `i - 1` and `i` is fetched rather than split). Gaps
/// over [`PACK_GAP`] are never bridged; the others smallest first, while the bridged bytes
/// stay within the needed bytes / [`PACK_WASTE_DIVISOR`] + [`PACK_WASTE_FLOOR`].
fn bridged_gaps(sorted: &[Slice<'_>]) -> Vec<bool> {
    let needed: u64 = sorted.iter().map(|s| s.size).sum();
    let budget = needed / PACK_WASTE_DIVISOR + PACK_WASTE_FLOOR;
    let mut gaps: Vec<(u64, usize)> = sorted
        .windows(2)
        .enumerate()
        .map(|(i, pair)| {
            let end = pair[0].offset.saturating_add(pair[0].size);
            (pair[1].offset.saturating_sub(end), i + 1)
        })
        .filter(|(gap, _)| *gap <= PACK_GAP)
        .collect();
    gaps.sort_unstable();
    let mut joined = vec![false; sorted.len()];
    let mut spent = 0u64;
    for (gap, index) in gaps {
        spent = spent.saturating_add(gap);
        if spent > budget {
            break;
        }
        joined[index] = true;
    }
    joined
}

#[cfg(test)]
mod tests;
