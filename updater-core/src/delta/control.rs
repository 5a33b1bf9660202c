//! The bsdiff control-triple loop, shared by `bsdiff` ([`super::bsdiff`]) and `bsdiff-lzma`
//! ([`super::bsdiff_lzma`]).
//!
//! Both formats describe the target as triples `(add, copy, seek)` read in step with a "diff"
//! and an "extra" stream; they differ only in how the three streams are packed. The loop that
//! turns triples into output is the part an attacker steers, so it exists once and is
//! defensive about every number it reads (the delta is not trusted, only the base and the
//! signed output size are):
//!
//! 1. Every triple is checked with checked arithmetic before any byte is produced: the output
//!    never grows past the declared size, the base is never read outside `0..base_len`, and
//!    the base position never goes below zero or wraps (it may rest past the end, as in
//!    bsdiff, as long as nothing is read there).
//! 2. The base is seeked lazily, only before a read and only when the position moved, so a
//!    run of triples costs no system call unless it produces bytes.
//! 3. Triples that produce nothing (`add = 0`, `copy = 0`) are allowed up to
//!    [`MAX_EMPTY_TRIPLES`] in all: an encoder emits at most a handful, and without a limit a
//!    few kilobytes of compressed zeros would keep the client busy for minutes. Every other
//!    triple produces at least one byte, so the work is bounded by the signed output size.
//! 4. Memory is two fixed 64 KiB buffers, whatever the input.

use std::io::{self, Read, Seek, SeekFrom, Write};

/// Most triples that produce no output a delta may contain.
pub const MAX_EMPTY_TRIPLES: u64 = 1024;

/// Size of each of the two working buffers.
const BUFFER: usize = 64 * 1024;

/// One bsdiff instruction: `add` bytes of base plus diff, `copy` bytes of extra, then move the
/// base position by `seek`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triple {
    /// Bytes taken from the base and the diff stream, added bytewise.
    pub add: u64,
    /// Bytes copied from the extra stream.
    pub copy: u64,
    /// Signed move of the base position after the add.
    pub seek: i64,
}

/// Where triples come from, one at a time.
pub trait TripleSource {
    /// The next triple, or `None` at a clean end of the control data.
    fn next_triple(&mut self) -> io::Result<Option<Triple>>;
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Runs `triples` against `base`, reading `diff` and `extra` in step and writing exactly
/// `target` bytes to `output` as they are produced (see the module docs for the checks).
/// Returns the number of bytes written.
pub fn apply_triples(
    triples: &mut impl TripleSource,
    diff: &mut impl Read,
    extra: &mut impl Read,
    base: &mut (impl Read + Seek),
    target: u64,
    output: &mut impl Write,
) -> io::Result<u64> {
    let base_len = base.seek(SeekFrom::End(0))?;
    // Where the base reader actually is; `None` until the first read needs a seek.
    let mut base_cursor: Option<u64> = None;
    let mut base_pos: u64 = 0;
    let mut written: u64 = 0;
    let mut empty_triples: u64 = 0;
    let mut diff_buf = vec![0u8; BUFFER];
    let mut base_buf = vec![0u8; BUFFER];
    while let Some(Triple { add, copy, seek }) = triples.next_triple()? {
        if written
            .checked_add(add)
            .and_then(|w| w.checked_add(copy))
            .is_none_or(|w| w > target)
        {
            return Err(invalid(format!(
                "the delta produces more than its declared {target} bytes"
            )));
        }
        if base_pos.checked_add(add).is_none_or(|end| end > base_len) {
            return Err(invalid(format!(
                "the delta reads past the end of the {base_len}-byte base"
            )));
        }
        if add == 0 && copy == 0 {
            empty_triples += 1;
            if empty_triples > MAX_EMPTY_TRIPLES {
                return Err(invalid(format!(
                    "the delta has more than {MAX_EMPTY_TRIPLES} control entries that produce nothing"
                )));
            }
        }
        if add > 0 && base_cursor != Some(base_pos) {
            base.seek(SeekFrom::Start(base_pos))?;
        }
        let mut left = add;
        while left > 0 {
            // Bounded by BUFFER, so the cast cannot truncate.
            let n = left.min(BUFFER as u64) as usize;
            diff.read_exact(&mut diff_buf[..n])
                .map_err(|e| eof_means(e, "the diff stream ended early"))?;
            base.read_exact(&mut base_buf[..n])?;
            for (d, b) in diff_buf[..n].iter_mut().zip(&base_buf[..n]) {
                *d = d.wrapping_add(*b);
            }
            output.write_all(&diff_buf[..n])?;
            left -= n as u64;
        }
        if add > 0 {
            base_cursor = Some(base_pos + add);
        }
        let mut left = copy;
        while left > 0 {
            let n = left.min(BUFFER as u64) as usize;
            extra
                .read_exact(&mut diff_buf[..n])
                .map_err(|e| eof_means(e, "the extra stream ended early"))?;
            output.write_all(&diff_buf[..n])?;
            left -= n as u64;
        }
        // Checked above: written + add + copy <= target.
        written += add + copy;
        base_pos = base_pos
            .checked_add(add)
            .and_then(|p| p.checked_add_signed(seek))
            .ok_or_else(|| invalid("the delta seeks outside the base".into()))?;
    }
    if written != target {
        return Err(invalid(format!(
            "the delta produced {written} of its declared {target} bytes"
        )));
    }
    Ok(written)
}

fn eof_means(error: io::Error, message: &str) -> io::Error {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        invalid(message.to_string())
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Triples(std::vec::IntoIter<Triple>);

    impl TripleSource for Triples {
        fn next_triple(&mut self) -> io::Result<Option<Triple>> {
            Ok(self.0.next())
        }
    }

    fn run(
        triples: Vec<Triple>,
        diff: &[u8],
        extra: &[u8],
        base: &[u8],
        target: u64,
    ) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        apply_triples(
            &mut Triples(triples.into_iter()),
            &mut &diff[..],
            &mut &extra[..],
            &mut io::Cursor::new(base),
            target,
            &mut out,
        )?;
        Ok(out)
    }

    fn triple(add: u64, copy: u64, seek: i64) -> Triple {
        Triple { add, copy, seek }
    }

    #[test]
    fn adds_copies_and_seeks() {
        let out = run(
            vec![triple(2, 1, 1), triple(1, 0, -3)],
            &[1, 1, 0],
            b"!",
            b"abcd",
            4,
        )
        .unwrap();
        assert_eq!(out, b"bc!d");
    }

    #[test]
    fn refuses_out_of_range_triples() {
        // More output than declared.
        assert!(run(vec![triple(0, 2, 0)], &[], b"xx", b"", 1).is_err());
        // Reading past the base.
        assert!(run(vec![triple(5, 0, 0)], &[0; 5], b"", b"abcd", 5).is_err());
        // Seeking before the start of the base.
        assert!(run(vec![triple(0, 1, -1)], &[], b"x", b"abcd", 1).is_err());
        // Overflowing add + copy.
        assert!(run(vec![triple(u64::MAX, 2, 0)], &[], b"", b"", u64::MAX).is_err());
        // Less output than declared.
        assert!(run(vec![triple(0, 1, 0)], &[], b"x", b"", 2).is_err());
        // A stream that ends early.
        assert!(run(vec![triple(0, 2, 0)], &[], b"x", b"", 2).is_err());
    }

    #[test]
    fn refuses_a_flood_of_empty_triples() {
        let few = vec![triple(0, 0, 0); MAX_EMPTY_TRIPLES as usize];
        assert!(run(few, &[], b"", b"", 0).is_ok());
        let many = vec![triple(0, 0, 0); MAX_EMPTY_TRIPLES as usize + 1];
        let err = run(many, &[], b"", b"", 0).unwrap_err();
        assert!(err.to_string().contains("produce nothing"), "{err}");
    }
}
