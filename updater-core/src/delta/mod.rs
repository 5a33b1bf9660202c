//! Binary deltas between two versions of a file.
//!
//! Three encodings, chosen by measurement (docs/benchmarks.md): no single one wins everywhere.
//! - `zstd-patch`: zstd with the old file as reference prefix and long-distance matching
//!   (what `zstd --patch-from` does). Fast to decode; memory is the old file plus the window.
//!   Best on data files with long unchanged runs.
//! - `bsdiff-lzma` ([`bsdiff_lzma`]): bsdiff's matching, its streams re-packed with LZMA2.
//!   Best on executables, whose code moves and whose addresses all shift a little. Applied
//!   as a stream from the base on disk.
//! - `bsdiff` ([`bsdiff`]): plain bsdiff 4 (bzip2 streams), kept for the rare small file
//!   where its framing is smaller. Applied as a stream from the base on disk by our own
//!   decoder, which never trusts the patch's header.
//!
//! Both bsdiff formats are packed (`streams.rs`) from one match search of our own
//! (`search.rs`: libdivsufsort's suffix array and a bsdiff scan whose work per byte is
//! bounded); [`encode_best`] decides what to try and when to give up (`encode.rs`: a
//! similarity estimate first, a time budget, windows for large files).
//!
//! Every decoder here must be safe on *any* input, even though deltas are also listed with
//! a signed hash: it writes through one size-capped hashing sink
//! ([`crate::blob::VerifyingWriter`]) that stops at the signed size, returns an error rather
//! than panicking, and uses fixed buffers or memory bounded by the signed sizes it was
//! given. The two bsdiff formats share one control-triple loop ([`control`]).
//!
//! The publisher keeps the smallest delta [`encode_best`] returns, and only if it is smaller
//! than the file's blob. A delta is identified by (base BLAKE3, target BLAKE3) and stored at
//! `deltas/<xx>/<base>-<target>.<algorithm>`; the signed manifest lists it with its size.
//! Applying one never trusts the delta: the output is capped at the signed size and must have
//! the signed BLAKE3, else the client falls back to the blob.
//!
//! The encoder handles files of any size (bsdiff formats only, windowed, beyond
//! [`MAX_DELTA_INPUT`]); the publisher, which holds both files in memory, still makes deltas
//! only when old and new file together are below [`MAX_DELTA_INPUT`] (the zstd window limit),
//! and larger files are updated through their blob, streamed.

#[cfg(test)]
mod adversarial;
pub mod bsdiff;
pub mod bsdiff_lzma;
pub mod control;
mod encode;
mod search;
mod similarity;
mod streams;

pub use encode::{
    EncodeOptions, Encoded, MAX_ZSTD_PATCH_INPUT, SMALL, Skip, encode, encode_best, encode_smallest,
};

use std::io::{Read, Seek, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::Expected;

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
    /// bsdiff's streams, column-split and LZMA2-compressed ([`bsdiff_lzma`]).
    #[serde(rename = "bsdiff-lzma")]
    BsdiffLzma,
}

/// Every algorithm, in the order the publisher tries them.
pub const ALGORITHMS: [Algorithm; 3] = [
    Algorithm::ZstdPatch,
    Algorithm::BsdiffLzma,
    Algorithm::Bsdiff,
];

impl Algorithm {
    /// File extension in the repository.
    pub fn extension(self) -> &'static str {
        match self {
            Algorithm::ZstdPatch => "zst-patch",
            Algorithm::Bsdiff => "bsdiff",
            Algorithm::BsdiffLzma => "bsdl",
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

/// The zstd window (log2) that covers `len` bytes, within zstd's limits.
fn window_log(len: usize) -> u32 {
    let bits = usize::BITS - len.max(1).leading_zeros();
    bits.clamp(10, 31)
}

/// Applies `delta` (already downloaded, at most its signed size) to `base` (a verified file), writing the result to `output` (the file `dest`), capped at
/// `expected.size` and checked against `expected.blake3`. `what` names the delta in errors.
pub fn apply(
    algorithm: Algorithm,
    base: &mut (impl Read + Seek),
    delta: &[u8],
    output: &mut impl Write,
    expected: &Expected<'_>,
    what: &str,
    dest: &Path,
) -> Result<()> {
    let invalid = |e: std::io::Error| Error::format(what, format!("cannot apply the delta: {e}"));
    let base_in_memory = |base: &mut dyn Read| -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        base.read_to_end(&mut bytes)
            .map_err(|e| Error::io("reading the base of", what, e))?;
        Ok(bytes)
    };
    match algorithm {
        Algorithm::BsdiffLzma => {
            let declared = bsdiff_lzma::target_size(delta).map_err(invalid)?;
            if declared != expected.size {
                return Err(Error::Mismatch {
                    what: what.to_string(),
                    kind: "patched size",
                    expected: expected.size.to_string(),
                    actual: declared.to_string(),
                });
            }
            let mut verifier = crate::blob::VerifyingWriter::new(output, expected, what, dest);
            bsdiff_lzma::apply(delta, base, &mut verifier).map_err(invalid)?;
            verifier.finish()
        }
        Algorithm::ZstdPatch => {
            let base = base_in_memory(base)?;
            let mut decoder =
                zstd::stream::read::Decoder::with_ref_prefix(delta, &base).map_err(invalid)?;
            // The encoder's window covers base + target and no more (see `encode`); a frame
            // asking for more was not made by us, and must not make us reserve up to 2 GiB.
            let covered = u64::try_from(base.len())
                .unwrap_or(u64::MAX)
                .saturating_add(expected.size);
            let window = window_log(usize::try_from(covered).unwrap_or(usize::MAX));
            decoder.window_log_max(window).map_err(invalid)?;
            crate::blob::copy_verified(decoder, output, expected, what, dest)
        }
        Algorithm::Bsdiff => {
            let patch = bsdiff::parse(delta).map_err(invalid)?;
            if patch.new_size != expected.size {
                return Err(Error::Mismatch {
                    what: what.to_string(),
                    kind: "patched size",
                    expected: expected.size.to_string(),
                    actual: patch.new_size.to_string(),
                });
            }
            let mut verifier = crate::blob::VerifyingWriter::new(output, expected, what, dest);
            bsdiff::apply(&patch, base, &mut verifier).map_err(invalid)?;
            verifier.finish()
        }
    }
}

/// [`apply`] with the delta in the file `path` (already authenticated against its signed
/// `size`). A `bsdiff-lzma` delta, the kind large files get, is streamed from the file, so
/// applying it holds no more than its decoders whatever its size; the others are read into
/// memory, capped at `size` (the publisher makes them only for small files: see
/// [`EncodeOptions::max_zstd_patch_input`] and [`SMALL`]).
#[allow(clippy::too_many_arguments)]
pub fn apply_file(
    algorithm: Algorithm,
    base: &mut (impl Read + Seek),
    path: &Path,
    size: u64,
    output: &mut impl Write,
    expected: &Expected<'_>,
    what: &str,
    dest: &Path,
) -> Result<()> {
    let open = || std::fs::File::open(path).map_err(|e| Error::io("opening", path, e));
    if algorithm != Algorithm::BsdiffLzma {
        let bytes = read_limited(open()?, size, &path.display().to_string())?;
        return apply(algorithm, base, &bytes, output, expected, what, dest);
    }
    let invalid = |e: std::io::Error| Error::format(what, format!("cannot apply the delta: {e}"));
    let header = read_limited(
        open()?.take(bsdiff_lzma::HEADER as u64),
        bsdiff_lzma::HEADER as u64,
        &path.display().to_string(),
    )?;
    let declared = bsdiff_lzma::target_size(&header).map_err(invalid)?;
    if declared != expected.size {
        return Err(Error::Mismatch {
            what: what.to_string(),
            kind: "patched size",
            expected: expected.size.to_string(),
            actual: declared.to_string(),
        });
    }
    let mut verifier = crate::blob::VerifyingWriter::new(output, expected, what, dest);
    bsdiff_lzma::apply_file(path, size, base, &mut verifier).map_err(invalid)?;
    verifier.finish()
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
pub(crate) mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes (xorshift).
    pub(crate) fn noise(seed: u64, len: usize) -> Vec<u8> {
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
    fn every_algorithm_round_trips_and_a_small_edit_gives_a_small_delta() {
        let base = noise(1, 300_000);
        let mut target = base.clone();
        target[1000..1100].copy_from_slice(&noise(2, 100));
        target.extend_from_slice(&noise(3, 5000));
        let hash = blake3::hash(&target).to_hex().to_string();
        let expected = Expected {
            name: "f",
            size: target.len() as u64,
            blake3: &hash,
        };
        for algorithm in ALGORITHMS {
            let delta = encode(algorithm, &base, &target, 19).unwrap();
            assert!(delta.len() < 10_000, "{algorithm:?}: {} bytes", delta.len());
            let mut out = Vec::new();
            let mut cursor = std::io::Cursor::new(&base);
            apply(
                algorithm,
                &mut cursor,
                &delta,
                &mut out,
                &expected,
                "d",
                Path::new("f"),
            )
            .unwrap();
            assert_eq!(out, target, "{algorithm:?}");
            // Against the wrong base the output is refused.
            let other = noise(9, 300_000);
            let mut cursor = std::io::Cursor::new(&other);
            let mut out = Vec::new();
            assert!(
                apply(
                    algorithm,
                    &mut cursor,
                    &delta,
                    &mut out,
                    &expected,
                    "d",
                    Path::new("f")
                )
                .is_err(),
                "{algorithm:?}"
            );
        }
        let (_, best) = encode_smallest(&base, &target, 19).unwrap().unwrap();
        assert!(best.len() < 10_000);
    }

    #[test]
    fn bsdiff_lzma_streams_from_a_base_file_and_refuses_a_corrupt_delta() {
        // Code-like data where every "address" moves by a constant.
        let mut base = Vec::new();
        let mut target = Vec::new();
        let words = noise(5, 400_000);
        for (i, chunk) in words.chunks(8).enumerate() {
            base.extend_from_slice(chunk);
            base.extend_from_slice(&(i as u32 * 16).to_le_bytes());
            target.extend_from_slice(chunk);
            target.extend_from_slice(&(i as u32 * 16 + 64).to_le_bytes());
        }
        let lzma = encode(Algorithm::BsdiffLzma, &base, &target, 19).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let base_path = dir.path().join("base");
        std::fs::write(&base_path, &base).unwrap();
        let hash = blake3::hash(&target).to_hex().to_string();
        let expected = Expected {
            name: "f",
            size: target.len() as u64,
            blake3: &hash,
        };
        let mut file = std::fs::File::open(&base_path).unwrap();
        let mut out = Vec::new();
        apply(
            Algorithm::BsdiffLzma,
            &mut file,
            &lzma,
            &mut out,
            &expected,
            "d",
            Path::new("f"),
        )
        .unwrap();
        assert_eq!(out, target);
        // A flipped byte in the delta never yields a wrong file.
        let mut corrupt = lzma.clone();
        let middle = corrupt.len() / 2;
        corrupt[middle] ^= 0x55;
        let mut file = std::fs::File::open(&base_path).unwrap();
        let mut out = Vec::new();
        assert!(
            apply(
                Algorithm::BsdiffLzma,
                &mut file,
                &corrupt,
                &mut out,
                &expected,
                "d",
                Path::new("f")
            )
            .is_err()
        );
    }

    #[test]
    fn window_log_covers_the_input() {
        assert_eq!(window_log(1), 10);
        assert_eq!(window_log(1 << 20), 21);
        assert_eq!(window_log(usize::MAX), 31);
    }
}
