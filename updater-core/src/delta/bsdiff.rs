//! Applying plain bsdiff 4 (`BSDIFF40`) patches, streamed, with our own decoder.
//!
//! We used to apply these with `qbsdiff::Bspatch`, which trusts the header: a 136-byte patch
//! whose control and diff lengths wrap `32 + ctrl_len + diff_len` past a bounds check made it
//! panic (and release builds abort on panic), and a patch declaring a 256 MiB output made the
//! updater reserve 256 MiB before reading a byte. Encoding is ours too (`delta/search.rs`,
//! `delta/streams.rs`); a unit test still applies a patch made by qbsdiff. Layout (bsdiff's
//! sign-magnitude little-endian 64-bit integers):
//!
//! ```text
//! magic     8 bytes "BSDIFF40"
//! ctrl_len  compressed length of the control stream
//! diff_len  compressed length of the diff stream
//! new_size  size of the output
//! control   bzip2: triples of 3 × 8 bytes (add, copy, seek)
//! diff      bzip2: bytes added to the base
//! extra     bzip2: bytes copied as they are (the rest of the patch)
//! ```
//!
//! Applying:
//! 1. [`parse`] checks the magic, refuses negative lengths and sizes, and finds the three
//!    streams with checked arithmetic; nothing is decompressed yet.
//! 2. The caller compares `new_size` with the signed size and stops on a mismatch.
//! 3. [`apply`] reads the three bzip2 streams in step through the shared triple loop
//!    ([`super::control`]), reading the base through `Read + Seek` (it stays on disk) and
//!    writing output as it is produced. Memory is the three bzip2 decoders (under 4 MiB
//!    each at the largest block size) and fixed buffers.

use std::io::{self, Read, Seek, Write};

use bzip2::read::BzDecoder;

use super::control::{Triple, TripleSource, apply_triples};

const MAGIC: &[u8; 8] = b"BSDIFF40";
const HEADER: usize = 32;

/// A patch whose header has been checked; the streams are still compressed.
#[derive(Debug, Clone, Copy)]
pub struct Patch<'a> {
    /// The output size the patch declares.
    pub new_size: u64,
    control: &'a [u8],
    diff: &'a [u8],
    extra: &'a [u8],
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// Checks the header of `patch` and locates its streams (step 1).
pub fn parse(patch: &[u8]) -> io::Result<Patch<'_>> {
    let header = patch
        .get(..HEADER)
        .filter(|h| h.starts_with(MAGIC))
        .ok_or_else(|| invalid("not a bsdiff 4 patch (bad magic or shorter than its header)"))?;
    let field = |at: usize, name: &str| -> io::Result<u64> {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&header[at..at + 8]);
        u64::try_from(offtin(bytes))
            .map_err(|_| invalid(&format!("negative {name} in the bsdiff header")))
    };
    let ctrl_len = field(8, "control length")?;
    let diff_len = field(16, "diff length")?;
    let new_size = field(24, "output size")?;
    let ctrl_end = (HEADER as u64)
        .checked_add(ctrl_len)
        .filter(|&end| end <= patch.len() as u64)
        .ok_or_else(|| invalid("the control stream runs past the end of the patch"))?;
    let diff_end = ctrl_end
        .checked_add(diff_len)
        .filter(|&end| end <= patch.len() as u64)
        .ok_or_else(|| invalid("the diff stream runs past the end of the patch"))?;
    // Both ends are at most patch.len(), so they fit in usize.
    let (ctrl_end, diff_end) = (ctrl_end as usize, diff_end as usize);
    Ok(Patch {
        new_size,
        control: &patch[HEADER..ctrl_end],
        diff: &patch[ctrl_end..diff_end],
        extra: &patch[diff_end..],
    })
}

/// Control triples from the bzip2 control stream, 24 bytes each.
struct ControlStream<R>(R);

impl<R: Read> TripleSource for ControlStream<R> {
    fn next_triple(&mut self) -> io::Result<Option<Triple>> {
        let mut bytes = [0u8; 24];
        let mut filled = 0;
        while filled < bytes.len() {
            match self.0.read(&mut bytes[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        match filled {
            0 => return Ok(None),
            24 => {}
            _ => return Err(invalid("the control stream ends inside a triple")),
        }
        let value = |i: usize| {
            let mut field = [0u8; 8];
            field.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            offtin(field)
        };
        let add = u64::try_from(value(0))
            .map_err(|_| invalid("negative add length in a control triple"))?;
        let copy = u64::try_from(value(1))
            .map_err(|_| invalid("negative copy length in a control triple"))?;
        Ok(Some(Triple {
            add,
            copy,
            seek: value(2),
        }))
    }
}

/// Applies a parsed patch to `base`, writing exactly `patch.new_size` bytes to `output` as
/// they are produced (step 3). Returns the number of bytes written.
pub fn apply(
    patch: &Patch<'_>,
    base: &mut (impl Read + Seek),
    output: &mut impl Write,
) -> io::Result<u64> {
    let mut control = ControlStream(io::BufReader::new(BzDecoder::new(patch.control)));
    let mut diff = io::BufReader::new(BzDecoder::new(patch.diff));
    let mut extra = io::BufReader::new(BzDecoder::new(patch.extra));
    apply_triples(
        &mut control,
        &mut diff,
        &mut extra,
        base,
        patch.new_size,
        output,
    )
}

/// bsdiff's sign-magnitude 64-bit integer ("negative zero" reads as zero).
pub(crate) fn offtin(bytes: [u8; 8]) -> i64 {
    let raw = u64::from_le_bytes(bytes);
    // The mask leaves 63 bits, which always fit in an i64.
    let magnitude = (raw & (u64::MAX >> 1)) as i64;
    if raw >> 63 == 1 {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ctrl_len: u64, diff_len: u64, new_size: u64) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for v in [ctrl_len, diff_len, new_size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    #[test]
    fn parse_refuses_bad_headers() {
        assert!(parse(b"BSDIFF4").is_err());
        assert!(parse(&[0u8; 32]).is_err());
        // Lengths that wrap 32 + ctrl + diff (qbsdiff panicked on these).
        let mut wrap = header(u64::MAX, u64::MAX, 0);
        wrap.resize(136, 0);
        assert!(parse(&wrap).is_err());
        // Negative output size.
        assert!(parse(&header(0, 0, 1 | 1 << 63)).is_err());
        // A control stream past the end.
        assert!(parse(&header(1, 0, 0)).is_err());
        let empty = header(0, 0, 7);
        assert_eq!(parse(&empty).unwrap().new_size, 7);
    }

    #[test]
    fn round_trips_with_qbsdiff_encoding() {
        let base: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut target = base.clone();
        target[100..200].fill(3);
        target.extend_from_slice(b"tail");
        let mut patch = Vec::new();
        qbsdiff::Bsdiff::new(&base, &target)
            .compare(io::Cursor::new(&mut patch))
            .unwrap();
        let parsed = parse(&patch).unwrap();
        assert_eq!(parsed.new_size, target.len() as u64);
        let mut out = Vec::new();
        apply(&parsed, &mut io::Cursor::new(&base), &mut out).unwrap();
        assert_eq!(out, target);
    }

    #[test]
    fn offtin_reads_sign_magnitude() {
        assert_eq!(offtin(5u64.to_le_bytes()), 5);
        assert_eq!(offtin((5u64 | 1 << 63).to_le_bytes()), -5);
        assert_eq!(offtin((1u64 << 63).to_le_bytes()), 0);
        assert_eq!(offtin(u64::MAX.to_le_bytes()), -i64::MAX);
    }
}
