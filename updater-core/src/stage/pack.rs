//! Fetching the blobs a plan needs from the release's pack: one `Range` request per run of
//! neighbouring slices (gaps under [`PACK_GAP`] are fetched rather than split, the smallest
//! first, while the gap bytes stay within the needed bytes / [`PACK_WASTE_DIVISOR`] +
//! [`PACK_WASTE_FLOOR`]: issue 14 wants an update's wire bytes within 1.1x its content).
//!
//! Each slice is authenticated by its blob's signed BLAKE3 before anything decodes it. A
//! small slice (up to [`SLICE_IN_MEMORY`]) is read into memory, checked, and handed to the
//! caller's sink, which decodes it straight into the files that need it: a fresh install of
//! many small files then writes each file once, with no round trip through `state/cache`.
//! Slices the sink does not take (archive parts) and large slices go to the cache, where the
//! per-file step finds them. Best effort: a range that fails is fetched blob by blob
//! afterwards; only an error of the sink (a file that cannot be written) stops staging.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use appstart_layout::fsutil;

use super::{
    LocalFiles, Made, PACK_GAP, PACK_MIN_BLOBS, PACK_WASTE_DIVISOR, PACK_WASTE_FLOOR, Route, Slice,
    Stager,
};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, PackRef};
use crate::transport::join_url;

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
/// makes about 90 of them (the waste budget keeps unneeded bytes out), which one at a time
/// cost 90 round trips of latency on a real network.
pub const MAX_RANGE_REQUESTS: usize = 4;

/// What comes after one range request.
enum RangeOutcome {
    /// The next range.
    Next,
    /// Nothing: the server sent the whole pack, every slice is done.
    Done,
    /// No more ranges: the rest is fetched blob by blob.
    Stop,
}

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
        let joined = bridged_gaps(&needed);
        let url = join_url(self.repo_url, pack.path.as_str());
        let mut received = 0;
        let mut requests = 0;
        if let Some(opened) = opened {
            // The response the manifest came from: every slice from it, in one pass.
            let end = self.pack_data_start.saturating_add(pack.size);
            let body = opened.body.take(end.saturating_sub(opened.position));
            let mut bytes = 0;
            let result = self.read_slices(
                &url,
                body,
                opened.position,
                &needed,
                &cache,
                sink,
                &mut bytes,
            );
            match result {
                Ok(()) => return Ok((bytes, 1)),
                Err(Stop::Transport(err)) if err.ends_operation() => return Err(err),
                Err(Stop::Transport(err)) => {
                    received += bytes;
                    requests += 1;
                    log::warn!(
                        "reading {url} failed, fetching the rest in ranges: {}",
                        crate::error::chain(&err)
                    );
                }
                Err(Stop::Fatal(err)) => return Err(err),
            }
        }
        // The runs: neighbours whose gap is bridged, one range request each.
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

    /// Fetches each run (`start..end` of `needed`) with one range request: the first alone
    /// (a server that ignores ranges sends the whole pack, which then serves every slice),
    /// the rest up to [`MAX_RANGE_REQUESTS`] at a time. Returns the bytes received and the
    /// requests made. A range that fails for a reason of the network stops the fetching of
    /// further ranges (their blobs are fetched one by one afterwards); a cancel, a stall or a
    /// failure of the sink or the cache is returned.
    fn fetch_runs(
        &self,
        url: &str,
        pack_size: u64,
        needed: &[Slice<'_>],
        runs: &[(usize, usize)],
        cache: &Path,
        sink: &mut Sink<'_>,
    ) -> Result<(u64, usize)> {
        let Some((&(first_start, first_end), rest)) = runs.split_first() else {
            return Ok((0, 0));
        };
        let mut received = 0;
        let run = (&needed[first_start..], first_end - first_start);
        let result = self.fetch_pack_range(url, pack_size, run, cache, sink, &mut received);
        match Self::after_range(url, result)? {
            RangeOutcome::Next => {}
            RangeOutcome::Done | RangeOutcome::Stop => return Ok((received, 1)),
        }
        let received = AtomicU64::new(received);
        let requests = AtomicUsize::new(1);
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        let shared_sink = Mutex::new(sink);
        let fetch = || {
            // Each request hands its slices to the one sink (the writers' queue), in turn.
            let mut sink = |slice: &Slice<'_>, bytes: &[u8]| -> Result<bool> {
                match shared_sink.lock() {
                    Ok(mut sink) => sink(slice, bytes),
                    Err(_) => Err(Error::Invalid("a pack reader panicked".into())),
                }
            };
            while !stop.load(Ordering::Relaxed) {
                let Some(&(start, end)) = rest.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                requests.fetch_add(1, Ordering::Relaxed);
                let mut bytes = 0;
                let run = (&needed[start..], end - start);
                let result =
                    self.fetch_pack_range(url, pack_size, run, cache, &mut sink, &mut bytes);
                received.fetch_add(bytes, Ordering::Relaxed);
                match Self::after_range(url, result) {
                    Ok(RangeOutcome::Next) => {}
                    Ok(RangeOutcome::Done | RangeOutcome::Stop) => {
                        stop.store(true, Ordering::Relaxed)
                    }
                    Err(err) => {
                        stop.store(true, Ordering::Relaxed);
                        if let Ok(mut failure) = failure.lock() {
                            failure.get_or_insert(err);
                        }
                    }
                }
            }
        };
        let threads = MAX_RANGE_REQUESTS.min(rest.len());
        if threads <= 1 {
            fetch();
        } else {
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(fetch);
                }
            });
        }
        let failure = match failure.into_inner() {
            Ok(failure) => failure,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(err) = failure {
            return Err(err);
        }
        Ok((received.into_inner(), requests.into_inner()))
    }

    /// What to do after one range: go on, stop (done or failed over to blob by blob), or end
    /// staging with the error.
    fn after_range(url: &str, result: std::result::Result<bool, Stop>) -> Result<RangeOutcome> {
        match result {
            // The server sent the whole pack: every slice is done.
            Ok(true) => Ok(RangeOutcome::Done),
            Ok(false) => Ok(RangeOutcome::Next),
            Err(Stop::Transport(err)) if err.ends_operation() => Err(err),
            Err(Stop::Transport(err)) => {
                log::warn!(
                    "pack range of {url} failed, fetching blobs one by one: {}",
                    crate::error::chain(&err)
                );
                Ok(RangeOutcome::Stop)
            }
            Err(Stop::Fatal(err)) => Err(err),
        }
    }

    /// Fetches one run of slices from the pack, counting the bytes received in `received`.
    /// `rest` is the needed slices not fetched yet, of which the run is the first `run_len`.
    /// Returns whether the server ignored the range and sent the whole pack (then every
    /// slice of `rest` was taken from it). A slice that
    /// does not match its signed BLAKE3 is dropped (its blob is fetched on its own later).
    fn fetch_pack_range(
        &self,
        url: &str,
        pack_size: u64,
        (rest, run_len): (&[Slice<'_>], usize),
        cache: &Path,
        sink: &mut Sink<'_>,
        received: &mut u64,
    ) -> std::result::Result<bool, Stop> {
        let run = rest.get(..run_len).unwrap_or(rest);
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return Ok(false);
        };
        let (first, last) = (first.offset, last.offset.saturating_add(last.size));
        let request = crate::transport::Request {
            range_start: Some(first),
            range_end: Some(last.saturating_sub(1)),
            if_none_match: None,
        };
        let response = self.transport.get(url, &request).map_err(Stop::Transport)?;
        let (position, whole) = match response.status {
            crate::transport::Status::Partial if response.range_start == Some(first) => {
                (first, false)
            }
            crate::transport::Status::Full => (0, true),
            _ => {
                return Err(Stop::Transport(Error::format(
                    url,
                    "the server answered a range request with a range we did not ask for",
                )));
            }
        };
        let limit = if whole {
            self.pack_data_start.saturating_add(pack_size)
        } else {
            last - first
        };
        let body = response.body.take(limit);
        self.read_slices(
            url,
            body,
            position,
            if whole { rest } else { run },
            cache,
            sink,
            received,
        )?;
        Ok(whole)
    }

    /// Reads `slices` (sorted, from `position` on) from `body`, a part of the pack that
    /// starts at `position`: authenticates each and hands it to `sink` or the cache.
    #[allow(clippy::too_many_arguments)]
    fn read_slices(
        &self,
        url: &str,
        mut body: impl Read,
        mut position: u64,
        slices: &[Slice<'_>],
        cache: &Path,
        sink: &mut Sink<'_>,
        received: &mut u64,
    ) -> std::result::Result<(), Stop> {
        let broken = |message: String| {
            Stop::Transport(Error::Transport {
                url: url.to_string(),
                message,
                retryable: true,
                retry_after: None,
            })
        };
        let mut buffer = Vec::new();
        for slice in slices {
            // Skip the gap before this slice.
            let gap = slice.offset.checked_sub(position).ok_or_else(|| {
                Stop::Transport(Error::format(
                    url,
                    "pack slices out of order (the manifest was not validated)",
                ))
            })?;
            let skipped =
                std::io::copy(&mut (&mut body).take(gap), &mut std::io::sink()).map_err(|e| {
                    let err = crate::watched::read_error(e, |e| Error::Transport {
                        url: url.to_string(),
                        message: e.to_string(),
                        retryable: true,
                        retry_after: None,
                    });
                    Stop::Transport(err)
                })?;
            *received += skipped;
            position = slice.offset + slice.size;
            let in_memory = slice.size <= SLICE_IN_MEMORY;
            let partial = cache.join(format!("{}.zst.partial", slice.content));
            let mut hashing = HashingWriter {
                inner: if in_memory {
                    buffer.clear();
                    Target::Memory(&mut buffer)
                } else {
                    Target::File(
                        File::create(&partial)
                            .map_err(|e| Stop::Fatal(Error::io("creating", &partial, e)))?,
                    )
                },
                hasher: blake3::Hasher::new(),
            };
            let copied = crate::download::read_capped(
                (&mut body).take(slice.size),
                &mut hashing,
                slice.size,
                url,
            )
            .map_err(Stop::Transport)?;
            *received += copied;
            let actual = hashing.hasher.finalize().to_hex();
            drop(hashing.inner);
            if copied != slice.size || actual.as_str() != slice.blob_blake3 {
                let _ = fsutil::remove_file_if_exists(&partial);
                if copied != slice.size {
                    return Err(broken(format!(
                        "the pack ended {copied} bytes into a {}-byte slice",
                        slice.size
                    )));
                }
                log::warn!(
                    "{url}: the slice at {}+{} does not match its signed blake3 {} (got {actual}); fetching that blob on its own",
                    slice.offset,
                    slice.size,
                    slice.blob_blake3
                );
                continue;
            }
            let cached = cache.join(format!("{}.zst", slice.content));
            if in_memory {
                // Authenticated above: only now may the sink decode it.
                if sink(slice, &buffer).map_err(Stop::Fatal)? {
                    continue;
                }
                // No `fsync`: cached blobs are authenticated again before each use.
                std::fs::write(&partial, &buffer)
                    .map_err(|e| Stop::Fatal(Error::io("writing", &partial, e)))?;
            }
            fsutil::rename(&partial, &cached).map_err(|e| Stop::Fatal(e.into()))?;
        }
        Ok(())
    }
}

/// Where a slice goes while it is hashed.
enum Target<'b> {
    Memory(&'b mut Vec<u8>),
    File(File),
}

/// A writer that hashes what passes through it.
struct HashingWriter<'b> {
    inner: Target<'b>,
    hasher: blake3::Hasher,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.inner {
            Target::Memory(buffer) => buffer.write(bytes)?,
            Target::File(file) => file.write(bytes)?,
        };
        self.hasher.update(&bytes[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.inner {
            Target::Memory(_) => Ok(()),
            Target::File(file) => file.flush(),
        }
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
mod tests {
    use super::{PACK_GAP, Slice, bridged_gaps};

    fn slices(count: u64, size: u64, gap: u64) -> Vec<Slice<'static>> {
        (0..count)
            .map(|i| Slice {
                offset: i * (size + gap),
                size,
                blob_blake3: "",
                content: "",
            })
            .collect()
    }

    #[test]
    fn small_gaps_are_bridged_within_the_waste_budget() {
        // Neighbours with small gaps: one range.
        assert!(
            bridged_gaps(&slices(10, 1000, 100))
                .iter()
                .skip(1)
                .all(|j| *j)
        );
        // 100 slices of 2,000 bytes, 2,000 apart: 200,000 needed, so at most 20,000 + 16 KiB
        // of gaps are fetched (18 gaps), not 198,000.
        let joined = bridged_gaps(&slices(100, 2000, 2000));
        assert_eq!(joined.iter().filter(|j| **j).count(), 18);
        assert!(!joined[0]);
        // A gap over PACK_GAP is never bridged, whatever the budget.
        let far = bridged_gaps(&slices(4, 10 << 20, PACK_GAP + 1));
        assert!(far.iter().all(|j| !*j));
    }
}
