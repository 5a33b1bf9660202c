//! Binary deltas between two versions of a file.
//!
//! Two encoders, chosen by measurement (docs/benchmarks.md): no single one wins everywhere.
//! - `zstd-patch`: zstd with the old file as reference prefix and long-distance matching
//!   (what `zstd --patch-from` does). Fast to decode; memory is the old file plus the window.
//! - `bsdiff`: bsdiff 4 (qbsdiff), often smaller on executables whose code moved.
//!
//! The publisher computes both and keeps the smaller, and only if it is smaller than the
//! file's blob. A delta is identified by (base BLAKE3, target BLAKE3) and stored at
//! `deltas/<xx>/<base>-<target>.<algorithm>`; the signed manifest lists it with its size.
//! Applying one never trusts the delta: the output is capped at the signed size and must have
//! the signed BLAKE3, else the client falls back to the blob.
//!
//! Deltas are made only when old and new file together are below [`MAX_DELTA_INPUT`] (the
//! zstd window limit); larger files are updated through their blob, streamed.

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::FileEntry;

/// Largest base + target size a delta is made for (2 GiB, zstd's largest window).
pub const MAX_DELTA_INPUT: u64 = 1 << 31;

/// A delta encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// zstd with the base as reference prefix.
    #[serde(rename = "zstd-patch")]
    ZstdPatch,
    /// bsdiff 4 format.
    #[serde(rename = "bsdiff")]
    Bsdiff,
}

impl Algorithm {
    /// File extension in the repository.
    pub fn extension(self) -> &'static str {
        match self {
            Algorithm::ZstdPatch => "zst-patch",
            Algorithm::Bsdiff => "bsdiff",
        }
    }
}

/// The repository path of the delta from `base` to `target` (BLAKE3 hex each).
pub fn delta_path(base: &str, target: &str, algorithm: Algorithm) -> String {
    format!(
        "deltas/{}/{base}-{target}.{}",
        &target[..2.min(target.len())],
        algorithm.extension()
    )
}

/// Encodes `target` against `base` with every algorithm and returns the smallest result.
pub fn encode_smallest(
    base: &[u8],
    target: &[u8],
    level: i32,
) -> Result<Option<(Algorithm, Vec<u8>)>> {
    if (base.len() + target.len()) as u64 >= MAX_DELTA_INPUT {
        return Ok(None);
    }
    let zstd = encode(Algorithm::ZstdPatch, base, target, level)?;
    let bsdiff = encode(Algorithm::Bsdiff, base, target, level)?;
    Ok(Some(if bsdiff.len() < zstd.len() {
        (Algorithm::Bsdiff, bsdiff)
    } else {
        (Algorithm::ZstdPatch, zstd)
    }))
}

/// Encodes `target` against `base` with `algorithm`.
pub fn encode(algorithm: Algorithm, base: &[u8], target: &[u8], level: i32) -> Result<Vec<u8>> {
    let failed =
        |e: std::io::Error| Error::Invalid(format!("computing a {algorithm:?} delta: {e}"));
    match algorithm {
        Algorithm::ZstdPatch => {
            let mut out = Vec::new();
            let mut encoder = zstd::stream::write::Encoder::with_ref_prefix(&mut out, level, base)
                .map_err(failed)?;
            encoder
                .window_log(window_log(base.len() + target.len()))
                .map_err(failed)?;
            encoder.long_distance_matching(true).map_err(failed)?;
            encoder.include_contentsize(true).map_err(failed)?;
            encoder
                .set_pledged_src_size(Some(target.len() as u64))
                .map_err(failed)?;
            encoder.write_all(target).map_err(failed)?;
            encoder.finish().map_err(failed)?;
            Ok(out)
        }
        Algorithm::Bsdiff => {
            let mut out = Vec::new();
            qbsdiff::Bsdiff::new(base, target)
                .compression_level(9)
                .compare(std::io::Cursor::new(&mut out))
                .map_err(failed)?;
            Ok(out)
        }
    }
}

/// The zstd window (log2) that covers `len` bytes, within zstd's limits.
fn window_log(len: usize) -> u32 {
    let bits = usize::BITS - len.max(1).leading_zeros();
    bits.clamp(10, 31)
}

/// Applies `delta` (already downloaded, at most its signed size) to `base`, writing the
/// result to `output` (the file `dest`), capped at `entry.size` and checked against
/// `entry.blake3`. `what` names the delta in errors.
pub fn apply(
    algorithm: Algorithm,
    base: &[u8],
    delta: &[u8],
    output: &mut impl Write,
    entry: &FileEntry,
    what: &str,
    dest: &Path,
) -> Result<()> {
    let invalid = |e: std::io::Error| Error::format(what, format!("cannot apply the delta: {e}"));
    match algorithm {
        Algorithm::ZstdPatch => {
            let mut decoder =
                zstd::stream::read::Decoder::with_ref_prefix(delta, base).map_err(invalid)?;
            decoder.window_log_max(31).map_err(invalid)?;
            crate::blob::copy_verified(decoder, output, entry, what, dest)
        }
        Algorithm::Bsdiff => {
            let patch = qbsdiff::Bspatch::new(delta).map_err(invalid)?;
            if patch.hint_target_size() != entry.size {
                return Err(Error::Mismatch {
                    what: what.to_string(),
                    kind: "patched size",
                    expected: entry.size.to_string(),
                    actual: patch.hint_target_size().to_string(),
                });
            }
            // The patch declares its output size and it matched; the verified copy below
            // still caps and hashes what it produces.
            let mut produced = Vec::with_capacity(entry.size as usize);
            patch.apply(base, &mut produced).map_err(invalid)?;
            crate::blob::copy_verified(produced.as_slice(), output, entry, what, dest)
        }
    }
}

/// Reads at most `limit` bytes of `input` into memory.
pub fn read_limited(input: impl Read, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    input
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading", what, e))?;
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge {
            url: what.to_string(),
            limit,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use appstart_layout::RelativePath;

    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn both_algorithms_round_trip_and_a_small_edit_gives_a_small_delta() {
        let base = noise(1, 300_000);
        let mut target = base.clone();
        target[1000..1100].copy_from_slice(&noise(2, 100));
        target.extend_from_slice(&noise(3, 5000));
        let entry = FileEntry {
            path: RelativePath::parse("f").unwrap(),
            size: target.len() as u64,
            executable: false,
            blake3: blake3::hash(&target).to_hex().to_string(),
            blob_size: 0,
            deltas: Vec::new(),
            pack_offset: None,
        };
        for algorithm in [Algorithm::ZstdPatch, Algorithm::Bsdiff] {
            let delta = encode(algorithm, &base, &target, 19).unwrap();
            assert!(delta.len() < 10_000, "{algorithm:?}: {} bytes", delta.len());
            let mut out = Vec::new();
            apply(
                algorithm,
                &base,
                &delta,
                &mut out,
                &entry,
                "d",
                Path::new("f"),
            )
            .unwrap();
            assert_eq!(out, target);
            // Against the wrong base the output is refused.
            let other = noise(9, 300_000);
            let mut out = Vec::new();
            assert!(
                apply(
                    algorithm,
                    &other,
                    &delta,
                    &mut out,
                    &entry,
                    "d",
                    Path::new("f")
                )
                .is_err()
            );
        }
        let (_, best) = encode_smallest(&base, &target, 19).unwrap().unwrap();
        assert!(best.len() < 10_000);
    }

    #[test]
    fn window_log_covers_the_input() {
        assert_eq!(window_log(1), 10);
        assert_eq!(window_log(1 << 20), 21);
        assert_eq!(window_log(usize::MAX), 31);
    }
}
