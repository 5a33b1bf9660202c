//! Content-addressed, zstd-compressed file contents.
//!
//! A blob is stored once per repository at `blobs/<first two hex digits>/<blake3>.zst`, where
//! the BLAKE3 is that of the *uncompressed* content, so identical files are shared across
//! releases and apps. Blobs are trusted only through a signed manifest: decompression checks
//! the output against the listed size (refusing more mid-stream: a decompression bomb stops
//! at size + 1 bytes) and BLAKE3 before the file is used.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::manifest::FileEntry;

/// zstd level used when publishing (slow to encode, fast to decode; publish time is cheap).
pub const DEFAULT_LEVEL: i32 = 12;

/// The repository-relative path of the blob for `blake3`.
pub fn blob_path(blake3: &str) -> String {
    format!("blobs/{}/{blake3}.zst", &blake3[..2.min(blake3.len())])
}

/// Reads `source`, compressing it into `compressed_out` and hashing it in one pass. Returns
/// the BLAKE3 (hex) and the uncompressed size.
pub fn compress(source: &Path, compressed_out: &mut File, level: i32) -> Result<(String, u64)> {
    let mut input = File::open(source).map_err(|e| Error::io("opening", source, e))?;
    let mut encoder = zstd::stream::write::Encoder::new(compressed_out, level)
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

/// Decompresses `blob` into a new file at `dest`, verifying size and BLAKE3 against `entry`
/// while streaming, and `fsync`s it. On any mismatch `dest` is removed.
pub fn decompress_verified(blob: &Path, dest: &Path, entry: &FileEntry) -> Result<()> {
    let result = (|| {
        let input = File::open(blob).map_err(|e| Error::io("opening", blob, e))?;
        let decoder = zstd::stream::read::Decoder::new(input)
            .map_err(|e| Error::io("starting decompression of", blob, e))?;
        let mut output = File::create(dest).map_err(|e| Error::io("creating", dest, e))?;
        copy_verified(
            decoder,
            &mut output,
            entry,
            &blob.display().to_string(),
            dest,
        )?;
        output.sync_all().map_err(|e| Error::io("syncing", dest, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    result
}

/// Copies `input` to `output` (the file `dest`), refusing more than `entry.size` bytes and
/// checking the size and BLAKE3 at the end. `what` names the source in errors.
pub fn copy_verified(
    input: impl Read,
    output: &mut impl Write,
    entry: &FileEntry,
    what: &str,
    dest: &Path,
) -> Result<()> {
    let mut limited = input.take(entry.size + 1);
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut written = 0u64;
    loop {
        let n = match limited.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::format(
                    what,
                    format!("cannot decode content for {}: {e}", entry.path),
                ));
            }
        };
        written += n as u64;
        if written > entry.size {
            return Err(Error::Mismatch {
                what: format!("{what} (for {})", entry.path),
                kind: "decompressed size",
                expected: entry.size.to_string(),
                actual: format!("more than {}", entry.size),
            });
        }
        hasher.update(&buffer[..n]);
        output
            .write_all(&buffer[..n])
            .map_err(|e| Error::io("writing", dest, e))?;
    }
    if written != entry.size {
        return Err(Error::Mismatch {
            what: format!("{what} (for {})", entry.path),
            kind: "size",
            expected: entry.size.to_string(),
            actual: written.to_string(),
        });
    }
    let actual = hasher.finalize().to_hex().to_string();
    if actual != entry.blake3 {
        return Err(Error::Mismatch {
            what: format!("{what} (for {})", entry.path),
            kind: "blake3",
            expected: entry.blake3.clone(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use appstart_layout::RelativePath;

    fn entry_for(data: &[u8], blob_size: u64) -> FileEntry {
        FileEntry {
            path: RelativePath::parse("f").unwrap(),
            size: data.len() as u64,
            executable: false,
            blake3: blake3::hash(data).to_hex().to_string(),
            blob_size,
            deltas: Vec::new(),
            pack_offset: None,
        }
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
        decompress_verified(&blob, &dir.path().join("out"), &entry).unwrap();
        assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), data);

        // The same blob declared as 1,000 bytes: decompression stops at 1,001 and refuses.
        let small = FileEntry {
            size: 1000,
            ..entry
        };
        let err = decompress_verified(&blob, &dir.path().join("bomb"), &small).unwrap_err();
        assert!(err.to_string().contains("decompressed size"), "{err}");
        assert!(!dir.path().join("bomb").exists());
    }

    #[test]
    fn wrong_hash_is_refused() {
        let data = b"hello";
        let mut entry = entry_for(data, 0);
        entry.blake3 = blake3::hash(b"other").to_hex().to_string();
        let err =
            copy_verified(&data[..], &mut Vec::new(), &entry, "x", Path::new("out")).unwrap_err();
        assert!(err.to_string().contains("blake3 mismatch"), "{err}");
    }
}
