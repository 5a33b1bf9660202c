//! Making deltas (the publisher's side): which encodings to try, when not to try at all, and
//! how long to try.
//!
//! [`encode_best`] is the entry point, called once per (base, target) file pair:
//!
//! 1. **Too small**: a target under [`EncodeOptions::min_target_size`] is skipped; its blob is
//!    a few bytes and no delta framing is smaller.
//! 2. **Unrelated**: a sampled estimate ([`super::similarity`]) of how much of the target
//!    occurs in the base, in one pass over each file. Under
//!    [`EncodeOptions::min_shared_per_mille`] there is nothing to gain (random, encrypted or
//!    freshly compressed data, or two different files), and the pair is skipped in
//!    milliseconds.
//! 3. **bsdiff-class search** ([`super::search`]) once, packed as `bsdiff-lzma`, and as plain
//!    `bsdiff` only for targets up to [`SMALL`] (its bzip2 framing wins only on small files and
//!    costs seconds on large ones).
//! 4. **zstd-patch**, only while base + target stay under
//!    [`EncodeOptions::max_zstd_patch_input`] (32 MiB by default: the client applies it with
//!    the whole base in memory): at the full level for targets up to [`SMALL`]; above, a level-12 probe
//!    (about 2 s for 36 MB) first, and the full level only if the probe, less 40 %, could still
//!    beat the bsdiff-lzma delta (level 19 is 26 % smaller than 12 on the uv binary, and takes
//!    36 s instead of 2). The probe itself stays a candidate.
//! 5. The smallest result is returned.
//!
//! **Time budget**: with [`EncodeOptions::time_budget`] set, the search and the compressors
//! look at the clock every few thousand steps or every megabyte. When it runs out the result
//! is [`Encoded::Skipped`] with [`Skip::OutOfTime`] (or the best delta already finished, if a
//! zstd-patch run was what ran out), and the publisher ships the file's whole blob, as for any
//! file without a delta. The budget bounds the work, not the exact time: the suffix array is
//! built in one call (about 3 s for 36 MB here) and is not interrupted.
//!
//! **Memory**: the larger of the search (base, target, 4 bytes of suffix array per base byte,
//! a filter of at most 64 MiB) and the packing (base, target, the diff and extra bytes: at
//! most the target's size) plus the compressors (LZMA2 with an 8 MiB dictionary, about
//! 100 MiB a thread; zstd at level 12 or 19 up to about 250 MiB for a 36 MB pair), which is
//! within 6 times the larger file plus 256 MiB. A base larger than [`EncodeOptions::window`]
//! (512 MiB by default) is indexed a window at a time, so the suffix array stays at 2 GiB
//! whatever the size; deltas of files over 2 GiB take that path and are `bsdiff-lzma` or
//! `bsdiff` only (zstd's window ends at 2 GiB).

use std::time::{Duration, Instant};

use super::search::{self, OutOfTime};
use super::similarity;
use super::streams::Streams;
use super::{Algorithm, MAX_DELTA_INPUT, bsdiff_lzma, window_log};
use crate::error::{Error, Result};

/// Largest target for which plain bsdiff and full-level zstd-patch are always tried.
pub const SMALL: usize = 1 << 20;

/// The level of the zstd-patch probe on targets over [`SMALL`].
const PROBE_LEVEL: i32 = 12;

/// Options for [`encode_best`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EncodeOptions {
    /// zstd level of the zstd-patch delta (the publisher uses 19).
    pub level: i32,
    /// Targets smaller than this get no delta.
    pub min_target_size: u64,
    /// A target of which less than this share (per mille) of sampled blocks occurs in the base
    /// gets no delta. Only applied when at least [`EncodeOptions::min_samples`] blocks were
    /// sampled (about 64 bytes a block).
    pub min_shared_per_mille: u64,
    /// Fewest sampled blocks for the similarity estimate to count.
    pub min_samples: usize,
    /// How long the delta search of this pair may take before it gives up; `None` for no
    /// limit.
    pub time_budget: Option<Duration>,
    /// Most base bytes one suffix array indexes; larger bases are searched a window at a time.
    pub window: usize,
    /// Threads the match search of one large target may use (parts of at least 4 MiB).
    pub threads: usize,
    /// Largest base + target for which a `zstd-patch` delta is tried. The client holds the
    /// whole base in memory to apply one (zstd's reference prefix), so this bounds what an
    /// update needs: the default, [`MAX_ZSTD_PATCH_INPUT`], keeps it within issue 14's
    /// 64 MiB; larger pairs get `bsdiff-lzma`, which the client streams from disk.
    pub max_zstd_patch_input: u64,
}

/// Default of [`EncodeOptions::max_zstd_patch_input`].
pub const MAX_ZSTD_PATCH_INPUT: u64 = 32 << 20;

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            level: 19,
            min_target_size: 64,
            min_shared_per_mille: 20,
            min_samples: 64,
            time_budget: None,
            window: 512 << 20,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            max_zstd_patch_input: MAX_ZSTD_PATCH_INPUT,
        }
    }
}

impl EncodeOptions {
    /// These options with the zstd level `level`.
    pub fn with_level(mut self, level: i32) -> Self {
        self.level = level;
        self
    }

    /// These options with a time budget per file pair.
    pub fn with_time_budget(mut self, budget: Option<Duration>) -> Self {
        self.time_budget = budget;
        self
    }

    /// These options with at most `threads` search threads per file pair.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// These options with a search window of `window` base bytes.
    pub fn with_window(mut self, window: usize) -> Self {
        self.window = window;
        self
    }
}

/// What [`encode_best`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encoded {
    /// The smallest delta found.
    Delta {
        /// Its encoding.
        algorithm: Algorithm,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// No delta was made: ship the blob.
    Skipped(Skip),
}

impl Encoded {
    /// The delta, if one was made.
    pub fn into_delta(self) -> Option<(Algorithm, Vec<u8>)> {
        match self {
            Encoded::Delta { algorithm, bytes } => Some((algorithm, bytes)),
            Encoded::Skipped(_) => None,
        }
    }
}

/// Why no delta was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skip {
    /// The target is under [`EncodeOptions::min_target_size`] or the base is empty.
    TooSmall,
    /// Too little of the target occurs in the base.
    Unrelated {
        /// The share of sampled blocks found in the base, per mille.
        shared_per_mille: u64,
    },
    /// The time budget ran out.
    OutOfTime,
}

/// Encodes `target` against `base` and returns the smallest delta, or why there is none (see
/// the module docs for the steps, the time budget and the memory).
pub fn encode_best(base: &[u8], target: &[u8], options: &EncodeOptions) -> Result<Encoded> {
    if (target.len() as u64) < options.min_target_size || base.is_empty() {
        return Ok(Encoded::Skipped(Skip::TooSmall));
    }
    let similarity = similarity::estimate(base, target);
    if similarity.sampled >= options.min_samples
        && similarity.per_mille() < options.min_shared_per_mille
    {
        return Ok(Encoded::Skipped(Skip::Unrelated {
            shared_per_mille: similarity.per_mille(),
        }));
    }
    let deadline = options.time_budget.map(|budget| Instant::now() + budget);
    let Ok(segments) = search::search(base, target, options.window, options.threads, deadline)
    else {
        return Ok(Encoded::Skipped(Skip::OutOfTime));
    };
    let streams = Streams::new(base, target, &segments);
    drop(segments);
    let mut candidates = Vec::new();
    match bsdiff_lzma::pack(&streams, options.threads, deadline) {
        Ok(bytes) => candidates.push((Algorithm::BsdiffLzma, bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            return Ok(Encoded::Skipped(Skip::OutOfTime));
        }
        Err(e) => return Err(failed(Algorithm::BsdiffLzma, e)),
    }
    if target.len() <= SMALL {
        let bytes = streams
            .to_bsdiff4()
            .map_err(|e| failed(Algorithm::Bsdiff, e))?;
        candidates.push((Algorithm::Bsdiff, bytes));
    }
    drop(streams);
    if ((base.len() + target.len()) as u64) < options.max_zstd_patch_input.min(MAX_DELTA_INPUT) {
        let best = candidates.iter().map(|(_, b)| b.len()).min().unwrap_or(0);
        let full = if target.len() <= SMALL || options.level <= PROBE_LEVEL {
            true
        } else {
            match zstd_patch(base, target, PROBE_LEVEL, deadline)? {
                Some(probe) => {
                    let promising = probe.len() / 10 * 6 < best;
                    candidates.push((Algorithm::ZstdPatch, probe));
                    promising
                }
                None => false,
            }
        };
        if full && let Some(bytes) = zstd_patch(base, target, options.level, deadline)? {
            candidates.push((Algorithm::ZstdPatch, bytes));
        }
    }
    Ok(candidates
        .into_iter()
        .min_by_key(|(_, bytes)| bytes.len())
        .map_or(Encoded::Skipped(Skip::OutOfTime), |(algorithm, bytes)| {
            Encoded::Delta { algorithm, bytes }
        }))
}

/// Encodes `target` against `base` with every algorithm and returns the smallest result
/// ([`encode_best`] with the default options at zstd level `level`).
pub fn encode_smallest(
    base: &[u8],
    target: &[u8],
    level: i32,
) -> Result<Option<(Algorithm, Vec<u8>)>> {
    if (base.len() + target.len()) as u64 >= MAX_DELTA_INPUT {
        return Ok(None);
    }
    Ok(encode_best(base, target, &EncodeOptions::default().with_level(level))?.into_delta())
}

/// Encodes `target` against `base` with `algorithm`, whatever its size or similarity.
pub fn encode(algorithm: Algorithm, base: &[u8], target: &[u8], level: i32) -> Result<Vec<u8>> {
    match algorithm {
        Algorithm::ZstdPatch => zstd_patch(base, target, level, None)?
            .ok_or_else(|| failed(algorithm, std::io::ErrorKind::TimedOut.into())),
        Algorithm::Bsdiff | Algorithm::BsdiffLzma => {
            let options = EncodeOptions::default();
            let segments = search::search(base, target, options.window, options.threads, None)
                .map_err(|OutOfTime| failed(algorithm, std::io::ErrorKind::TimedOut.into()))?;
            let streams = Streams::new(base, target, &segments);
            match algorithm {
                Algorithm::Bsdiff => streams.to_bsdiff4(),
                _ => bsdiff_lzma::pack(&streams, options.threads, None),
            }
            .map_err(|e| failed(algorithm, e))
        }
    }
}

fn failed(algorithm: Algorithm, e: std::io::Error) -> Error {
    Error::Invalid(format!("computing a {algorithm:?} delta: {e}"))
}

/// zstd with `base` as reference prefix, or `None` if `deadline` passed first (checked between
/// megabytes of the target).
fn zstd_patch(
    base: &[u8],
    target: &[u8],
    level: i32,
    deadline: Option<Instant>,
) -> Result<Option<Vec<u8>>> {
    use std::io::Write;
    let fail = |e| failed(Algorithm::ZstdPatch, e);
    let mut out = Vec::new();
    let mut encoder =
        zstd::stream::write::Encoder::with_ref_prefix(&mut out, level, base).map_err(fail)?;
    encoder
        .window_log(window_log(base.len() + target.len()))
        .map_err(fail)?;
    encoder.long_distance_matching(true).map_err(fail)?;
    encoder.include_contentsize(true).map_err(fail)?;
    encoder
        .set_pledged_src_size(Some(target.len() as u64))
        .map_err(fail)?;
    for piece in target.chunks(1 << 20) {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        encoder.write_all(piece).map_err(fail)?;
    }
    encoder.finish().map_err(fail)?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::tests::noise;
    use crate::manifest::Expected;

    /// Applies `encoded` to `base` and checks the output is `target`.
    fn assert_applies(encoded: Encoded, base: &[u8], target: &[u8]) -> usize {
        let Some((algorithm, bytes)) = encoded.into_delta() else {
            panic!("no delta");
        };
        let hash = blake3::hash(target).to_hex().to_string();
        let expected = Expected {
            name: "f",
            size: target.len() as u64,
            blake3: &hash,
        };
        let mut out = Vec::new();
        crate::delta::apply(
            algorithm,
            &mut std::io::Cursor::new(base),
            &bytes,
            &mut out,
            &expected,
            "d",
            std::path::Path::new("f"),
        )
        .unwrap();
        assert_eq!(out, target, "{algorithm:?}");
        bytes.len()
    }

    /// A base and a target with moved blocks, edits and new bytes.
    fn pair(len: usize) -> (Vec<u8>, Vec<u8>) {
        let base = noise(11, len);
        let mut target = base[len / 3..].to_vec();
        target.extend_from_slice(&noise(12, 3000));
        target.extend_from_slice(&base[..len / 3]);
        for at in (1000..target.len()).step_by(50_000) {
            target[at] ^= 0x40;
        }
        (base, target)
    }

    #[test]
    fn the_best_delta_round_trips_and_is_small() {
        let (base, target) = pair(600_000);
        let encoded = encode_best(&base, &target, &EncodeOptions::default()).unwrap();
        let size = assert_applies(encoded, &base, &target);
        assert!(size < 10_000, "{size} bytes");
    }

    #[test]
    fn unrelated_or_tiny_content_gets_no_delta() {
        // Random bytes against other random bytes: nothing to gain, turned down by the
        // estimate (before any search).
        let base = noise(21, 2_000_000);
        let target = noise(22, 2_000_000);
        let encoded = encode_best(&base, &target, &EncodeOptions::default()).unwrap();
        assert_eq!(
            encoded,
            Encoded::Skipped(Skip::Unrelated {
                shared_per_mille: 0
            })
        );
        let encoded = encode_best(&base, &base[..10], &EncodeOptions::default()).unwrap();
        assert_eq!(encoded, Encoded::Skipped(Skip::TooSmall));
    }

    #[test]
    fn an_exhausted_time_budget_ships_the_blob() {
        let (base, target) = pair(300_000);
        let options = EncodeOptions::default().with_time_budget(Some(Duration::ZERO));
        let encoded = encode_best(&base, &target, &options).unwrap();
        assert_eq!(encoded, Encoded::Skipped(Skip::OutOfTime));
    }

    #[test]
    fn a_base_larger_than_the_window_is_searched_window_by_window() {
        // 1 MB against a 64 KiB window: sixteen windows, each chunk matched near its place.
        let base = noise(31, 1_000_000);
        let mut target = base.clone();
        for at in (5000..target.len()).step_by(40_000) {
            target[at..at + 20].fill(0);
        }
        target.splice(500_000..500_000, noise(32, 2000));
        for threads in [1, 2] {
            let options = EncodeOptions::default()
                .with_window(64 << 10)
                .with_threads(threads);
            let encoded = encode_best(&base, &target, &options).unwrap();
            let size = assert_applies(encoded, &base, &target);
            assert!(size < 20_000, "{threads} threads: {size} bytes");
        }
    }
}
