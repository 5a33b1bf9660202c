//! `bsdiff-lzma`: bsdiff's matching with its streams split by column and compressed with LZMA2.
//!
//! bsdiff 4 describes the target as a list of control triples `(add, copy, seek)`: take `add`
//! bytes of the base (from the current base position) plus as many "diff" bytes, then `copy`
//! bytes of "extra" data, then move the base position by `seek`. The matching is good; the
//! packaging is not: bzip2 with 900 kB blocks cannot see far back, and the control triples
//! are 24 bytes of sign-magnitude integers. Measured on uv 0.5.10 → 0.5.11 (docs/benchmarks.md),
//! the same streams with each control column as zigzag varints and every stream in LZMA2 are
//! 23 % smaller than bsdiff and smaller than HDiffPatch.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! magic    8 bytes  "APBSDL01"
//! target   u64      size of the output
//! lengths  5 × u64  compressed length of: add, copy, seek, diff, extra
//! streams  five .xz streams (LZMA2, no check: the output's BLAKE3 is checked instead)
//! ```
//!
//! `add`, `copy` and `seek` hold one varint per triple (zigzag for `seek`). Applying reads
//! all five streams in step through the triple loop shared with plain bsdiff
//! ([`super::control`], which bounds the work per output byte) and writes the output
//! sequentially; the base is read through
//! `Read + Seek`, so it can stay on disk. Memory is bounded by the LZMA2 dictionaries, which
//! the encoder sizes to each stream, at most [`MAX_DICT`] (a 64 MiB dictionary made the uv
//! delta 0.004 % smaller), and the decoder caps at [`DECODER_MEMLIMIT`] each: under 64 MiB in
//! all, whatever the file size.

use std::io::{self, Read, Seek, Write};
use std::time::Instant;

use liblzma::stream::{Check, Filters, LzmaOptions, Stream};

use super::control::{Triple, TripleSource, apply_triples};
use super::streams::Streams;

const MAGIC: &[u8; 8] = b"APBSDL01";
pub(crate) const HEADER: usize = 8 + 8 + 5 * 8;
/// Largest LZMA2 dictionary the encoder uses.
pub const MAX_DICT: u32 = 8 << 20;
/// Most memory one stream's decoder may use (a dictionary of [`MAX_DICT`] plus tables).
pub const DECODER_MEMLIMIT: u64 = 24 << 20;

/// Packs the bsdiff streams as `bsdiff-lzma`, compressing a stream of [`SPLIT`] bytes or more
/// as up to `threads` LZMA2 blocks in parallel (one `.xz` stream still, which the decoder reads
/// as before; on the uv binary, two blocks cost 0.1 % and halve the time). Fails with
/// [`io::ErrorKind::TimedOut`] once `deadline` has passed (checked between megabytes).
pub(crate) fn pack(
    streams: &Streams,
    threads: usize,
    deadline: Option<Instant>,
) -> io::Result<Vec<u8>> {
    let (mut adds, mut copies, mut seeks) = (Vec::new(), Vec::new(), Vec::new());
    for triple in &streams.triples {
        put_varint(&mut adds, triple.add);
        put_varint(&mut copies, triple.copy);
        put_varint(&mut seeks, zigzag(triple.seek));
    }
    let compressed = [
        compress(&adds, 0, threads, deadline)?,
        compress(&copies, 0, threads, deadline)?,
        compress(&seeks, 0, threads, deadline)?,
        compress(&streams.diff, 3, threads, deadline)?,
        compress(&streams.extra, 3, threads, deadline)?,
    ];
    let mut out = Vec::with_capacity(HEADER + compressed.iter().map(Vec::len).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&streams.target.to_le_bytes());
    for stream in &compressed {
        out.extend_from_slice(&(stream.len() as u64).to_le_bytes());
    }
    for stream in &compressed {
        out.extend_from_slice(stream);
    }
    Ok(out)
}

/// The output size a patch declares.
pub fn target_size(patch: &[u8]) -> io::Result<u64> {
    if patch.len() < HEADER || &patch[..8] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a bsdiff-lzma delta (bad magic)",
        ));
    }
    Ok(u64::from_le_bytes(
        patch[8..16].try_into().unwrap_or([0; 8]),
    ))
}

/// Applies `patch` to `base`, writing the output to `output` as it is produced. Refuses a
/// patch whose output would exceed its declared size or read outside the base.
pub fn apply(
    patch: &[u8],
    base: &mut (impl Read + Seek),
    output: &mut impl Write,
) -> io::Result<u64> {
    let (target, ranges) = layout(patch, patch.len() as u64)?;
    let stream = |i: usize| {
        let (start, end) = ranges[i];
        decoder(&patch[start as usize..end as usize])
    };
    apply_streams(
        [stream(0)?, stream(1)?, stream(2)?, stream(3)?, stream(4)?],
        base,
        target,
        output,
    )
}

/// [`apply`] with the patch in the file `path` of `len` bytes (already authenticated), read
/// through one handle per stream: the patch is never held in memory, so applying one of any
/// size stays within the decoders' bound (see the module docs).
pub fn apply_file(
    path: &std::path::Path,
    len: u64,
    base: &mut (impl Read + Seek),
    output: &mut impl Write,
) -> io::Result<u64> {
    let mut header = Vec::with_capacity(HEADER);
    std::fs::File::open(path)?
        .take(HEADER as u64)
        .read_to_end(&mut header)?;
    let (target, ranges) = layout(&header, len)?;
    let stream = |i: usize| -> io::Result<_> {
        let (start, end) = ranges[i];
        let mut file = std::fs::File::open(path)?;
        file.seek(io::SeekFrom::Start(start))?;
        decoder(io::BufReader::with_capacity(
            64 * 1024,
            file.take(end - start),
        ))
    };
    apply_streams(
        [stream(0)?, stream(1)?, stream(2)?, stream(3)?, stream(4)?],
        base,
        target,
        output,
    )
}

/// The declared output size and the byte range of each of the five streams of a patch of
/// `len` bytes whose header is `header` (at least its first [`HEADER`] bytes).
fn layout(header: &[u8], len: u64) -> io::Result<(u64, [(u64, u64); 5])> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let target = target_size(header)?;
    let mut ranges = [(0u64, 0u64); 5];
    let mut start = HEADER as u64;
    for (i, range) in ranges.iter_mut().enumerate() {
        let length =
            u64::from_le_bytes(header[16 + i * 8..24 + i * 8].try_into().unwrap_or([0; 8]));
        let end = start
            .checked_add(length)
            .filter(|&e| e <= len)
            .ok_or_else(|| bad("a stream runs past the end of the delta"))?;
        *range = (start, end);
        start = end;
    }
    if start != len {
        return Err(bad("bytes after the last stream"));
    }
    Ok((target, ranges))
}

/// The triple loop over the five decoded streams (add, copy, seek, diff, extra).
fn apply_streams<R: Read>(
    [adds, copies, seeks, mut diff, mut extra]: [R; 5],
    base: &mut (impl Read + Seek),
    target: u64,
    output: &mut impl Write,
) -> io::Result<u64> {
    let mut triples = VarintTriples {
        adds,
        copies,
        seeks,
    };
    apply_triples(&mut triples, &mut diff, &mut extra, base, target, output)
}

/// Control triples from the three varint column streams.
struct VarintTriples<R> {
    adds: R,
    copies: R,
    seeks: R,
}

impl<R: Read> TripleSource for VarintTriples<R> {
    fn next_triple(&mut self) -> io::Result<Option<Triple>> {
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
        let Some(add) = read_varint(&mut self.adds)? else {
            return Ok(None);
        };
        let copy = read_varint(&mut self.copies)?.ok_or_else(|| bad("copy stream ended early"))?;
        let seek =
            unzigzag(read_varint(&mut self.seeks)?.ok_or_else(|| bad("seek stream ended early"))?);
        Ok(Some(Triple { add, copy, seek }))
    }
}

/// Smallest stream compressed in parallel blocks.
pub(crate) const SPLIT: usize = 8 << 20;

fn compress(
    data: &[u8],
    literal_context_bits: u32,
    threads: usize,
    deadline: Option<Instant>,
) -> io::Result<Vec<u8>> {
    let mut options = LzmaOptions::new_preset(9 | liblzma::stream::PRESET_EXTREME)?;
    // The dictionary need not exceed the data: smaller means less memory to decode.
    let dict = (data.len() as u64)
        .next_power_of_two()
        .clamp(4096, u64::from(MAX_DICT)) as u32;
    options.dict_size(dict);
    options.literal_context_bits(literal_context_bits);
    let mut filters = Filters::new();
    filters.lzma2(&options);
    let blocks = threads.clamp(1, (data.len() / (SPLIT / 2)).max(1));
    let stream = if blocks > 1 {
        liblzma::stream::MtStreamBuilder::new()
            .threads(blocks as u32)
            .block_size(data.len().div_ceil(blocks) as u64)
            .filters(filters)
            .check(Check::None)
            .encoder()?
    } else {
        Stream::new_stream_encoder(&filters, Check::None)?
    };
    let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    for piece in data.chunks(1 << 20) {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the time budget for this delta ran out",
            ));
        }
        encoder.write_all(piece)?;
    }
    encoder.finish()
}

fn decoder<R: Read>(input: R) -> io::Result<io::BufReader<liblzma::read::XzDecoder<R>>> {
    let stream = Stream::new_stream_decoder(DECODER_MEMLIMIT, 0)?;
    Ok(io::BufReader::with_capacity(
        64 * 1024,
        liblzma::read::XzDecoder::new_stream(input, stream),
    ))
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The next varint, or `None` at a clean end of stream.
fn read_varint(input: &mut impl Read) -> io::Result<Option<u64>> {
    let mut value = 0u64;
    let mut byte = [0u8];
    for shift in (0..64).step_by(7) {
        if input.read(&mut byte)? == 0 {
            return if shift == 0 {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated varint",
                ))
            };
        }
        value |= u64::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "varint longer than 64 bits",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip() {
        for value in [0i64, 1, -1, 127, -128, i64::MAX, i64::MIN + 1, 1 << 40] {
            let mut bytes = Vec::new();
            put_varint(&mut bytes, zigzag(value));
            let decoded = read_varint(&mut bytes.as_slice()).unwrap().unwrap();
            assert_eq!(unzigzag(decoded), value);
        }
        assert_eq!(read_varint(&mut [].as_slice()).unwrap(), None);
        assert!(read_varint(&mut [0x80u8].as_slice()).is_err());
    }

    #[test]
    fn a_patch_in_a_file_applies_as_in_memory_and_is_checked_the_same() {
        let base = crate::delta::tests::noise(4, 200_000);
        let mut target = base.clone();
        target[5000..5100].copy_from_slice(&crate::delta::tests::noise(5, 100));
        let patch =
            crate::delta::encode(crate::delta::Algorithm::BsdiffLzma, &base, &target, 19).unwrap();
        let dir = std::env::temp_dir().join(format!("bsdl-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("patch.bsdl");
        std::fs::write(&path, &patch).unwrap();
        let mut out = Vec::new();
        let len = patch.len() as u64;
        apply_file(&path, len, &mut io::Cursor::new(&base), &mut out).unwrap();
        assert_eq!(out, target);
        // A length that does not match the streams (a cut or padded file) is refused.
        for wrong in [len - 1, len + 1] {
            let mut out = Vec::new();
            assert!(apply_file(&path, wrong, &mut io::Cursor::new(&base), &mut out).is_err());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_truncated_or_foreign_input() {
        assert!(target_size(b"BSDIFF40").is_err());
        let mut out = Vec::new();
        let patch = [MAGIC.as_slice(), &[0u8; 48]].concat();
        // Zero-length streams are not valid .xz streams.
        assert!(apply(&patch, &mut io::Cursor::new(b"x"), &mut out).is_err());
    }
}
