//! The adversarial fixtures of `tests/adversarial/` (see its README.md) fed to every decoder
//! of untrusted bytes: each must end in an error, never a panic, and stay within
//! [`MEMORY_BOUND`] of heap whatever the input claims.
//!
//! Regression tests for the mirror attack where a crafted 136-byte bsdiff patch aborted
//! `appupdate update` inside qbsdiff, and a 74-byte one made it reserve 256 MiB.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use super::{Algorithm, apply};
use crate::manifest::Expected;
use crate::test_alloc::peak_during;

/// Most heap a decoder may use on hostile input (output goes to a sink, so this is all
/// working memory: three bzip2 decoders at most, and fixed buffers).
const MEMORY_BOUND: usize = 16 << 20;

/// The base the delta fixtures are made against (same bytes as `generate.py`).
const BASE: &[u8] = b"hello world, this is the base file of the adversarial delta fixtures\n";

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../../tests/adversarial/", $name)).as_slice()
    };
}

fn hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Applies `delta` to [`BASE`] expecting `size` bytes hashing to `blake3`; returns the error
/// text (or `None` on success) and the peak heap use. Fails the test on a panic.
fn run_delta(
    algorithm: Algorithm,
    delta: &[u8],
    size: u64,
    blake3: &str,
) -> (Option<String>, usize) {
    let expected = Expected {
        name: "f",
        size,
        blake3,
    };
    let (outcome, peak) = peak_during(|| {
        catch_unwind(AssertUnwindSafe(|| {
            apply(
                algorithm,
                &mut Cursor::new(BASE),
                delta,
                &mut std::io::sink(),
                &expected,
                "fixture",
                Path::new("out"),
            )
        }))
    });
    let result = outcome.unwrap_or_else(|_| panic!("{algorithm:?} panicked on a fixture"));
    (result.err().map(|e| e.to_string()), peak)
}

fn assert_refused(algorithm: Algorithm, delta: &[u8], size: u64, blake3: &str) -> String {
    let (error, peak) = run_delta(algorithm, delta, size, blake3);
    assert!(peak < MEMORY_BOUND, "{algorithm:?}: {peak} bytes of heap");
    error.unwrap_or_else(|| panic!("{algorithm:?}: a hostile delta was accepted"))
}

#[test]
fn valid_fixtures_apply() {
    // The hostile fixtures are made by the same generator; these prove it writes real deltas.
    let target = b"helloXYZ";
    for (algorithm, delta) in [
        (Algorithm::Bsdiff, fixture!("bsdiff-valid.bsdiff")),
        (Algorithm::BsdiffLzma, fixture!("bsdiff-lzma-valid.bsdl")),
    ] {
        let (error, _) = run_delta(algorithm, delta, 8, &hex(target));
        assert_eq!(error, None, "{algorithm:?}");
    }
}

#[test]
fn bsdiff_with_wrapping_lengths_is_an_error_not_a_panic() {
    // qbsdiff 1.4.4 panicked here: 32 + ctrl_len + diff_len wrapped past its bounds check.
    let error = assert_refused(
        Algorithm::Bsdiff,
        fixture!("bsdiff-wrapping-lengths.bsdiff"),
        100,
        &hex(b""),
    );
    assert!(error.contains("cannot apply"), "{error}");
}

#[test]
fn bsdiff_declaring_a_huge_output_allocates_nothing_up_front() {
    // The size matches the (signed) expected size, so only a streaming applier stays small.
    let size = 256 << 20;
    assert_refused(
        Algorithm::Bsdiff,
        fixture!("bsdiff-huge-output.bsdiff"),
        size,
        &hex(b""),
    );
}

#[test]
fn bsdiff_with_bad_triples_or_truncation_is_refused() {
    let target = hex(b"helloXYZ");
    for (name, delta, size) in [
        ("negative add", fixture!("bsdiff-negative-add.bsdiff"), 8),
        (
            "read past the base",
            fixture!("bsdiff-reads-past-base.bsdiff"),
            BASE.len() as u64 + 1,
        ),
        ("truncated", fixture!("bsdiff-truncated.bsdiff"), 8),
    ] {
        let error = assert_refused(Algorithm::Bsdiff, delta, size, &target);
        assert!(!error.is_empty(), "{name}");
    }
}

#[test]
fn millions_of_empty_triples_are_refused() {
    // Each empty triple used to cost a seek; both formats share the loop that now stops them.
    let target = hex(b"helloXYZ");
    for (algorithm, delta) in [
        (
            Algorithm::BsdiffLzma,
            fixture!("bsdiff-lzma-empty-triples.bsdl"),
        ),
        (Algorithm::Bsdiff, fixture!("bsdiff-empty-triples.bsdiff")),
    ] {
        let error = assert_refused(algorithm, delta, 8, &target);
        assert!(error.contains("produce nothing"), "{algorithm:?}: {error}");
    }
}

#[test]
fn bsdiff_lzma_truncated_or_overflowing_is_refused() {
    let target = hex(b"helloXYZ");
    assert_refused(
        Algorithm::BsdiffLzma,
        fixture!("bsdiff-lzma-truncated.bsdl"),
        8,
        &target,
    );
    assert_refused(
        Algorithm::BsdiffLzma,
        fixture!("bsdiff-lzma-copy-overflow.bsdl"),
        u64::MAX,
        &target,
    );
}

#[test]
fn zstd_patch_declaring_a_2_gib_window_is_refused() {
    // Decoding this needs a 2 GiB window (zstd's malloc, not seen by the heap counter); the
    // encoder never uses more than base + target, so the decoder refuses before allocating.
    let error = assert_refused(
        Algorithm::ZstdPatch,
        fixture!("zstd-patch-2gib-window.zst-patch"),
        1,
        &hex(b"x"),
    );
    assert!(error.contains("too much memory"), "{error}");
}

#[test]
fn garbage_is_refused_by_every_delta_decoder() {
    for algorithm in super::ALGORITHMS {
        for size in [0, 8, 1 << 30] {
            assert_refused(algorithm, fixture!("garbage.bin"), size, &hex(b"helloXYZ"));
        }
    }
}

/// Runs `decompress_verified` on `blob` expecting `size` bytes hashing to `blake3`.
fn run_blob(blob: &[u8], size: u64, blake3: &str) -> (Option<String>, usize) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let path = dir.path().join("blob");
    std::fs::write(&path, blob).unwrap_or_else(|e| panic!("writing the blob: {e}"));
    let expected = Expected {
        name: "f",
        size,
        blake3,
    };
    let dest = dir.path().join("out");
    let (outcome, peak) = peak_during(|| {
        catch_unwind(AssertUnwindSafe(|| {
            crate::blob::decompress_verified(&path, &dest, &expected)
        }))
    });
    let result = outcome.unwrap_or_else(|_| panic!("blob decompression panicked"));
    (result.err().map(|e| e.to_string()), peak)
}

#[test]
fn blob_bomb_stops_at_the_signed_size() {
    let (error, peak) = run_blob(fixture!("blob-bomb.zst"), 1000, &hex(b""));
    assert!(peak < MEMORY_BOUND, "{peak}");
    let error = error.unwrap_or_else(|| panic!("the bomb was accepted"));
    assert!(error.contains("decompressed size"), "{error}");
}

#[test]
fn blob_declaring_a_larger_window_than_we_write_is_refused() {
    // One byte of content in a frame asking for a 32 MiB window: the encoder writes 8 MiB.
    let (error, peak) = run_blob(fixture!("blob-32mib-window.zst"), 1, &hex(b"x"));
    assert!(peak < MEMORY_BOUND, "{peak}");
    assert!(error.is_some(), "a 32 MiB window was accepted");
}

#[test]
fn garbage_blob_is_refused() {
    let (error, peak) = run_blob(fixture!("garbage.bin"), 256, &hex(b""));
    assert!(peak < MEMORY_BOUND, "{peak}");
    assert!(error.is_some());
}
