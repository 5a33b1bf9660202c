//! Content-addressed, zstd-compressed file contents.
//!
//! A blob is stored once per repository at `blobs/<first two hex digits>/<blake3>.zst`, where
//! the BLAKE3 is that of the *uncompressed* content, so identical files are shared across
//! releases and apps. Blobs are trusted only through a signed manifest: decompression checks
//! the output against the listed size (refusing more mid-stream: a decompression bomb stops
//! at size + 1 bytes) and BLAKE3 before the file is used, and the decoder's window is capped
//! at [`BLOB_WINDOW_LOG`], the window every blob is written with.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::manifest::Expected;

/// zstd level used when publishing (slow to encode, fast to decode; publish time is cheap).
pub const DEFAULT_LEVEL: i32 = 12;

/// The zstd window (log2) every blob is compressed with, and the largest a client accepts:
/// 8 MiB. The encoder streams without knowing the size, so a frame declares its level's
/// window whatever the content (22 at level 12, 23 at level 19, 27 at 22, measured with
/// zstd 1.5.7); fixing it here keeps the decoder's memory at 8 MiB for every level, and a
/// crafted blob declaring a larger window is refused before anything is allocated.
pub const BLOB_WINDOW_LOG: u32 = 23;

/// The repository-relative path of the blob for `blake3`.
pub fn blob_path(blake3: &str) -> String {
    format!("blobs/{}/{blake3}.zst", &blake3[..2.min(blake3.len())])
}

/// Reads `source`, compressing it into `compressed_out` and hashing it in one pass. Returns
/// the BLAKE3 (hex) and the uncompressed size.
pub fn compress(source: &Path, compressed_out: &mut File, level: i32) -> Result<(String, u64)> {
    let mut input = File::open(source).map_err(|e| Error::io("opening", source, e))?;
    compress_reader(&mut input, source, compressed_out, level)
}

/// [`compress`] for any reader; `source` names it in errors.
pub fn compress_reader(
    input: &mut dyn Read,
    source: &Path,
    compressed_out: &mut File,
    level: i32,
) -> Result<(String, u64)> {
    let mut encoder = zstd::stream::write::Encoder::new(compressed_out, level)
        .map_err(|e| Error::io("starting compression of", source, e))?;
    encoder
        .window_log(BLOB_WINDOW_LOG)
        .map_err(|e| Error::io("starting compression of", source, e))?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = input
            .read(&mut buffer)
            .map_err(|e| Error::io("reading", source, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        encoder
            .write_all(&buffer[..n])
            .map_err(|e| Error::io("compressing", source, e))?;
        size += n as u64;
    }
    let file = encoder
        .finish()
        .map_err(|e| Error::io("compressing", source, e))?;
    file.sync_all()
        .map_err(|e| Error::io("syncing blob of", source, e))?;
    Ok((hasher.finalize().to_hex().to_string(), size))
}

/// BLAKE3 (hex) and size of a file on disk.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut hasher = blake3::Hasher::new();
    let size = std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io("reading", path, e))?;
    Ok((hasher.finalize().to_hex().to_string(), size))
}

/// Decompresses `blob` into a new file at `dest`, verifying size and BLAKE3 against
/// `expected` while streaming, and `fsync`s it. On any mismatch `dest` is removed.
pub fn decompress_verified(blob: &Path, dest: &Path, expected: &Expected<'_>) -> Result<()> {
    let output = decompress_to_file(blob, dest, expected)?;
    output.sync_all().map_err(|e| Error::io("syncing", dest, e))
}

/// [`decompress_verified`] without the `fsync`: returns the written file, for a caller that
/// makes many files durable at once. On any mismatch `dest` is removed.
pub fn decompress_to_file(blob: &Path, dest: &Path, expected: &Expected<'_>) -> Result<File> {
    let result = (|| {
        let input = File::open(blob).map_err(|e| Error::io("opening", blob, e))?;
        let mut decoder = zstd::stream::read::Decoder::new(input)
            .map_err(|e| Error::io("starting decompression of", blob, e))?;
        decoder
            .window_log_max(BLOB_WINDOW_LOG)
            .map_err(|e| Error::io("starting decompression of", blob, e))?;
        let mut output = File::create(dest).map_err(|e| Error::io("creating", dest, e))?;
        copy_verified(
            decoder,
            &mut output,
            expected,
            &blob.display().to_string(),
            dest,
        )?;
        Ok(output)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    result
}

/// Outputs up to this size are decoded in one call into a reused buffer; larger ones stream.
const DECODE_IN_MEMORY: u64 = 4 << 20;

/// Decodes authenticated blobs held in memory into new files, reusing one decoder context
/// and one output buffer across calls (a fresh context per small file cost more than the
/// decoding). Memory: the buffer, at most `DECODE_IN_MEMORY`.
#[derive(Default)]
pub struct MemoryDecoder {
    context: Option<zstd::bulk::Decompressor<'static>>,
    output: Vec<u8>,
}

impl std::fmt::Debug for MemoryDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDecoder").finish_non_exhaustive()
    }
}

impl MemoryDecoder {
    /// Decodes `blob` (already authenticated against its signed BLAKE3; `what` names it in
    /// errors) into the new file `dest`, checking the output's size and BLAKE3 against
    /// `expected` before writing a byte. Returns the file, written but not flushed (see
    /// `stage/durable.rs`). On any failure `dest` does not exist afterwards.
    pub fn decode_to_file(
        &mut self,
        blob: &[u8],
        what: &str,
        dest: &Path,
        expected: &Expected<'_>,
    ) -> Result<File> {
        if expected.size > DECODE_IN_MEMORY {
            let result = (|| {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(blob)
                    .map_err(|e| Error::io("starting decompression for", dest, e))?;
                decoder
                    .window_log_max(BLOB_WINDOW_LOG)
                    .map_err(|e| Error::io("starting decompression for", dest, e))?;
                let mut output = File::create(dest).map_err(|e| Error::io("creating", dest, e))?;
                copy_verified(decoder, &mut output, expected, what, dest)?;
                Ok(output)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(dest);
            }
            return result;
        }
        let context = match &mut self.context {
            Some(context) => context,
            empty => empty.insert(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| Error::io("starting decompression for", dest, e))?,
            ),
        };
        self.output.clear();
        // Bounded by the signed size (at most DECODE_IN_MEMORY): a frame that would produce
        // more fails for want of room, whatever size it declares.
        self.output
            .reserve_exact(usize::try_from(expected.size).unwrap_or(usize::MAX));
        let mismatch = |actual: String| Error::Mismatch {
            what: format!("{what} (for {})", expected.name),
            kind: "size",
            expected: expected.size.to_string(),
            actual,
        };
        context
            .decompress_to_buffer(blob, &mut self.output)
            .map_err(|e| {
                Error::format(
                    what,
                    format!("cannot decode content for {}: {e}", expected.name),
                )
            })?;
        if self.output.len() as u64 != expected.size {
            return Err(mismatch(self.output.len().to_string()));
        }
        let actual = blake3::hash(&self.output).to_hex();
        if actual.as_str() != expected.blake3 {
            return Err(Error::Mismatch {
                what: format!("{what} (for {})", expected.name),
                kind: "blake3",
                expected: expected.blake3.to_string(),
                actual: actual.to_string(),
            });
        }
        let result = (|| {
            let mut output = File::create(dest).map_err(|e| Error::io("creating", dest, e))?;
            output
                .write_all(&self.output)
                .map_err(|e| Error::io("writing", dest, e))?;
            Ok(output)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        result
    }
}

/// Copies `input` to `output` (the file `dest`), refusing more than `expected.size` bytes and
/// checking the size and BLAKE3 at the end. `what` names the source in errors.
pub fn copy_verified(
    input: impl Read,
    output: &mut impl Write,
    expected: &Expected<'_>,
    what: &str,
    dest: &Path,
) -> Result<()> {
    // Saturating: a size of u64::MAX (from a hostile or broken manifest) must not overflow.
    let mut limited = input.take(expected.size.saturating_add(1));
    let mut verifier = VerifyingWriter::new(output, expected, what, dest);
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = match limited.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::format(
                    what,
                    format!("cannot decode content for {}: {e}", expected.name),
                ));
            }
        };
        verifier.write_checked(&buffer[..n])?;
    }
    verifier.finish()
}

/// A writer that passes bytes on to `inner` while counting and hashing them, refusing more
/// than the expected size as soon as it is exceeded; [`VerifyingWriter::finish`] checks the
/// size and BLAKE3. For producers that push bytes (delta appliers, archive builders).
pub struct VerifyingWriter<'a, W: Write> {
    inner: &'a mut W,
    expected: &'a Expected<'a>,
    what: &'a str,
    dest: &'a Path,
    hasher: blake3::Hasher,
    written: u64,
    /// The first error, kept so that `finish` reports it rather than an I/O wrapper.
    error: Option<Error>,
}

impl<'a, W: Write> VerifyingWriter<'a, W> {
    /// Wraps `inner` (the file `dest`); `what` names the source in errors.
    pub fn new(
        inner: &'a mut W,
        expected: &'a Expected<'a>,
        what: &'a str,
        dest: &'a Path,
    ) -> Self {
        VerifyingWriter {
            inner,
            expected,
            what,
            dest,
            hasher: blake3::Hasher::new(),
            written: 0,
            error: None,
        }
    }

    /// Writes `bytes`, with our error type.
    pub fn write_checked(&mut self, bytes: &[u8]) -> Result<()> {
        self.written = self.written.saturating_add(bytes.len() as u64);
        if self.written > self.expected.size {
            return Err(Error::Mismatch {
                what: format!("{} (for {})", self.what, self.expected.name),
                kind: "decompressed size",
                expected: self.expected.size.to_string(),
                actual: format!("more than {}", self.expected.size),
            });
        }
        self.hasher.update(bytes);
        self.inner
            .write_all(bytes)
            .map_err(|e| Error::io("writing", self.dest, e))
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Checks the size and BLAKE3 of everything written.
    pub fn finish(mut self) -> Result<()> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        if self.written != self.expected.size {
            return Err(Error::Mismatch {
                what: format!("{} (for {})", self.what, self.expected.name),
                kind: "size",
                expected: self.expected.size.to_string(),
                actual: self.written.to_string(),
            });
        }
        let actual = self.hasher.finalize().to_hex().to_string();
        if actual != self.expected.blake3 {
            return Err(Error::Mismatch {
                what: format!("{} (for {})", self.what, self.expected.name),
                kind: "blake3",
                expected: self.expected.blake3.to_string(),
                actual,
            });
        }
        Ok(())
    }
}

impl<W: Write> std::fmt::Debug for VerifyingWriter<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingWriter")
            .field("expected", self.expected)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Write for VerifyingWriter<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self.write_checked(bytes) {
            Ok(()) => Ok(bytes.len()),
            Err(error) => {
                let message = error.to_string();
                self.error.get_or_insert(error);
                Err(std::io::Error::other(message))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Content, FileEntry};
    use appstart_layout::RelativePath;

    fn entry_for(data: &[u8], blob_size: u64) -> FileEntry {
        FileEntry {
            path: RelativePath::parse("f").unwrap(),
            size: data.len() as u64,
            executable: false,
            blake3: blake3::hash(data).to_hex().to_string(),
            blob_size,
            blob_blake3: String::new(),
            deltas: Vec::new(),
            pack_offset: None,
            archive: None,
        }
    }

    /// The in-memory decoder (pack slices): round trips small and streamed sizes with one
    /// reused context, and refuses a bomb, a wrong size or a wrong hash without leaving a file.
    #[test]
    fn memory_decoder_round_trips_and_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let mut decoder = MemoryDecoder::default();
        let compressed = |data: &[u8]| zstd::bulk::compress(data, 3).unwrap();
        for (name, data) in [
            ("small", b"hello".to_vec()),
            ("empty", Vec::new()),
            ("streamed", vec![5u8; (DECODE_IN_MEMORY + 1) as usize]),
            ("again", b"hello again".to_vec()),
        ] {
            let dest = dir.path().join(name);
            let entry = entry_for(&data, 0);
            decoder
                .decode_to_file(&compressed(&data), name, &dest, &entry.expected())
                .unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), data, "{name}");
        }
        let data = vec![9u8; 100_000];
        let blob = compressed(&data);
        let cases = [
            // Declared smaller than it decodes to: refused, whatever the frame says.
            (
                "bomb",
                FileEntry {
                    size: 1000,
                    ..entry_for(&data, 0)
                },
            ),
            (
                "hash",
                FileEntry {
                    blake3: entry_for(b"other", 0).blake3,
                    ..entry_for(&data, 0)
                },
            ),
            (
                "short",
                FileEntry {
                    size: 200_000,
                    ..entry_for(&data, 0)
                },
            ),
        ];
        for (name, entry) in cases {
            let dest = dir.path().join(name);
            let err = decoder
                .decode_to_file(&blob, name, &dest, &entry.expected())
                .unwrap_err();
            assert!(
                matches!(err, Error::Mismatch { .. } | Error::Format { .. }),
                "{name}: {err}"
            );
            assert!(!dest.exists(), "{name}: no file is left");
        }
        let garbage = dir.path().join("garbage");
        let entry = entry_for(&data, 0);
        decoder
            .decode_to_file(b"not zstd at all", "garbage", &garbage, &entry.expected())
            .unwrap_err();
        assert!(!garbage.exists());
    }

    #[test]
    fn round_trip_and_bomb() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        let data = vec![7u8; 1_000_000];
        std::fs::write(&source, &data).unwrap();
        let blob = dir.path().join("blob");
        let mut out = File::create(&blob).unwrap();
        let (hash, size) = compress(&source, &mut out, 3).unwrap();
        assert_eq!(size, data.len() as u64);
        let entry = entry_for(&data, 0);
        assert_eq!(hash, entry.blake3);
        decompress_verified(&blob, &dir.path().join("out"), &entry.expected()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), data);

        // The same blob declared as 1,000 bytes: decompression stops at 1,001 and refuses.
        let small = FileEntry {
            size: 1000,
            ..entry
        };
        let err =
            decompress_verified(&blob, &dir.path().join("bomb"), &small.expected()).unwrap_err();
        assert!(err.to_string().contains("decompressed size"), "{err}");
        assert!(!dir.path().join("bomb").exists());
    }

    #[test]
    fn round_trips_at_every_size_and_level_within_the_window_cap() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        for (size, level) in [
            (0usize, DEFAULT_LEVEL),
            (1, DEFAULT_LEVEL),
            (1000, 1),
            (300_000, 19),
            (100_000, 22),
            (9 << 20, DEFAULT_LEVEL),
            (9 << 20, 22),
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 253) as u8).collect();
            std::fs::write(&source, &data).unwrap();
            let blob = dir.path().join("blob");
            let mut out = File::create(&blob).unwrap();
            compress(&source, &mut out, level).unwrap();
            let entry = entry_for(&data, 0);
            let dest = dir.path().join("out");
            decompress_verified(&blob, &dest, &entry.expected()).unwrap();
            assert_eq!(
                std::fs::read(&dest).unwrap(),
                data,
                "{size} bytes, level {level}"
            );
        }
    }

    #[test]
    fn a_size_of_u64_max_is_an_error_not_an_overflow() {
        // Found by the delta property tests: `size + 1` overflowed (a panic in debug builds).
        let expected = Expected {
            name: "f",
            size: u64::MAX,
            blake3: "00",
        };
        let err = copy_verified(&b"abc"[..], &mut Vec::new(), &expected, "x", Path::new("o"))
            .unwrap_err();
        assert!(err.to_string().contains("size mismatch"), "{err}");
    }

    #[test]
    fn wrong_hash_is_refused() {
        let data = b"hello";
        let mut entry = entry_for(data, 0);
        entry.blake3 = blake3::hash(b"other").to_hex().to_string();
        let err = copy_verified(
            &data[..],
            &mut Vec::new(),
            &entry.expected(),
            "x",
            Path::new("out"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("blake3 mismatch"), "{err}");
    }
}
