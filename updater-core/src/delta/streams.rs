//! The three bsdiff streams (control triples, diff bytes, literal "extra" bytes) computed once
//! from the search's segments ([`super::search`]), and packed as plain bsdiff 4 here or as
//! `bsdiff-lzma` ([`super::bsdiff_lzma::pack`]).
//!
//! The streams are built after the suffix array is freed, so the peak of an encode is the
//! larger of the search (base, target, suffix array) and the packing (base, target, diff and
//! extra bytes, at most the target's size together, and the compressors).

use std::io::{self, Write};

use bzip2::Compression;
use bzip2::write::BzEncoder;

use super::control::Triple;
use super::search::Segment;

/// Control triples with their diff and extra bytes.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    pub triples: Vec<Triple>,
    pub diff: Vec<u8>,
    pub extra: Vec<u8>,
    /// Size of the output.
    pub target: u64,
}

impl Streams {
    /// The streams for `segments`, which cover `target` in order and read `base` in bounds.
    pub(crate) fn new(base: &[u8], target: &[u8], segments: &[Segment]) -> Self {
        let added: u64 = segments.iter().map(|s| s.add).sum();
        let mut streams = Streams {
            triples: Vec::with_capacity(segments.len()),
            diff: Vec::with_capacity(added as usize),
            extra: Vec::with_capacity(target.len().saturating_sub(added as usize)),
            target: target.len() as u64,
        };
        let mut at = 0usize;
        for (n, segment) in segments.iter().enumerate() {
            // The search only produces segments within both inputs.
            let (from, add, copy) = (
                segment.base as usize,
                segment.add as usize,
                segment.copy as usize,
            );
            streams.diff.extend(
                target[at..at + add]
                    .iter()
                    .zip(&base[from..from + add])
                    .map(|(t, b)| t.wrapping_sub(*b)),
            );
            at += add;
            streams.extra.extend_from_slice(&target[at..at + copy]);
            at += copy;
            let next = segments.get(n + 1).map_or(from + add, |s| s.base as usize);
            streams.triples.push(Triple {
                add: add as u64,
                copy: copy as u64,
                seek: next as i64 - (from + add) as i64,
            });
        }
        streams
    }

    /// Plain bsdiff 4 (`BSDIFF40`, bzip2 streams; layout in [`super::bsdiff`]).
    pub(crate) fn to_bsdiff4(&self) -> io::Result<Vec<u8>> {
        let bz = |data: &[u8]| -> io::Result<Vec<u8>> {
            let mut encoder = BzEncoder::new(Vec::new(), Compression::best());
            encoder.write_all(data)?;
            encoder.finish()
        };
        let mut control = Vec::with_capacity(self.triples.len() * 24);
        for triple in &self.triples {
            control.extend_from_slice(&offtout(triple.add as i64));
            control.extend_from_slice(&offtout(triple.copy as i64));
            control.extend_from_slice(&offtout(triple.seek));
        }
        let (control, diff, extra) = (bz(&control)?, bz(&self.diff)?, bz(&self.extra)?);
        let mut out = Vec::with_capacity(32 + control.len() + diff.len() + extra.len());
        out.extend_from_slice(b"BSDIFF40");
        out.extend_from_slice(&offtout(control.len() as i64));
        out.extend_from_slice(&offtout(diff.len() as i64));
        out.extend_from_slice(&offtout(self.target as i64));
        out.extend_from_slice(&control);
        out.extend_from_slice(&diff);
        out.extend_from_slice(&extra);
        Ok(out)
    }
}

/// bsdiff's sign-magnitude 64-bit integer (the inverse of [`super::bsdiff::offtin`]).
fn offtout(value: i64) -> [u8; 8] {
    let magnitude = value.unsigned_abs();
    let raw = if value < 0 {
        magnitude | 1 << 63
    } else {
        magnitude
    };
    raw.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offtout_is_the_inverse_of_offtin() {
        for value in [0i64, 1, -1, 300, -70_000, i64::MAX, -i64::MAX] {
            assert_eq!(super::super::bsdiff::offtin(offtout(value)), value);
        }
    }
}
