//! `Range` requests: one range is answered with 206 and that range; several with 206 and
//! `multipart/byteranges` (RFC 9110 §14.6), as nginx and Apache do, so a client can fetch
//! many scattered pack slices in one round trip; or, when the server is told to act like S3
//! and most CDNs ([`crate::RepoServer::one_range_per_request`]), with 200 and the whole
//! file, which is what the client must cope with there.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// Most ranges answered in parts; beyond it the whole file is sent (Apache's `MaxRanges`
/// default is 200).
pub const MAX_RANGES: usize = 200;

/// What a `Range` header asks for, against a file of `total` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranges {
    /// No usable range header (absent, malformed, or too many ranges): the whole file.
    Whole,
    /// Nothing satisfiable: 416.
    Unsatisfiable,
    /// These ranges (first and last byte, inclusive), ascending as asked.
    Some(Vec<(u64, u64)>),
}

/// Parses `Range: bytes=...` (one range or several, comma-separated) against `total`.
pub fn parse(value: &str, total: u64) -> Ranges {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ranges::Whole;
    };
    let specs: Vec<&str> = spec.split(',').map(str::trim).collect();
    if specs.len() > MAX_RANGES {
        return Ranges::Whole;
    }
    let mut ranges = Vec::new();
    for spec in specs {
        match parse_one(spec, total) {
            Ok(Some(range)) => ranges.push(range),
            Ok(None) => {}
            Err(()) => return Ranges::Whole,
        }
    }
    // More bytes than the file (overlapping ranges): the file itself is cheaper to send.
    let asked: u64 = ranges.iter().map(|(first, last)| last - first + 1).sum();
    match ranges.len() {
        0 => Ranges::Unsatisfiable,
        _ if asked > total => Ranges::Whole,
        _ => Ranges::Some(ranges),
    }
}

/// One `first-last`, `first-` or `-suffix`: `Ok(None)` when unsatisfiable, `Err` when
/// malformed.
fn parse_one(spec: &str, total: u64) -> Result<Option<(u64, u64)>, ()> {
    let (first, last) = spec.split_once('-').ok_or(())?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let suffix: u64 = last.parse().map_err(|_| ())?;
        if suffix == 0 || total == 0 {
            return Ok(None);
        }
        return Ok(Some((total.saturating_sub(suffix), total - 1)));
    }
    let start: u64 = first.parse().map_err(|_| ())?;
    let end = if last.is_empty() {
        u64::MAX
    } else {
        last.parse::<u64>().map_err(|_| ())?
    };
    if end < start {
        return Err(());
    }
    if start >= total {
        return Ok(None);
    }
    Ok(Some((start, end.min(total - 1))))
}

/// A `multipart/byteranges` body: each range of `file` with its part headers.
pub struct Parts {
    file: File,
    segments: std::collections::VecDeque<Segment>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

enum Segment {
    Text(std::io::Cursor<Vec<u8>>),
    File { start: u64, left: u64, seeked: bool },
}

impl Parts {
    /// The body for `ranges` of `file` (`total` bytes long), separated by `boundary`; and
    /// its exact length.
    pub fn new(file: File, ranges: &[(u64, u64)], total: u64, boundary: &str) -> (Parts, u64) {
        let mut segments = std::collections::VecDeque::new();
        let mut length = 0;
        for (first, last) in ranges {
            let head = format!(
                "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {first}-{last}/{total}\r\n\r\n"
            );
            length += head.len() as u64 + (last - first + 1);
            segments.push_back(Segment::Text(std::io::Cursor::new(head.into_bytes())));
            segments.push_back(Segment::File {
                start: *first,
                left: last - first + 1,
                seeked: false,
            });
        }
        let end = format!("\r\n--{boundary}--\r\n");
        length += end.len() as u64;
        segments.push_back(Segment::Text(std::io::Cursor::new(end.into_bytes())));
        (Parts { file, segments }, length)
    }
}

impl Read for Parts {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while let Some(segment) = self.segments.front_mut() {
            let read = match segment {
                Segment::Text(text) => text.read(buf)?,
                Segment::File { left: 0, .. } => 0,
                Segment::File {
                    start,
                    left,
                    seeked,
                } => {
                    if !*seeked {
                        self.file.seek(SeekFrom::Start(*start))?;
                        *seeked = true;
                    }
                    let max = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                    let read = self.file.read(&mut buf[..max])?;
                    if read == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    *left -= read as u64;
                    read
                }
            };
            if read > 0 {
                return Ok(read);
            }
            self.segments.pop_front();
        }
        Ok(0)
    }
}

/// A boundary no file of the repository is likely to hold (clients that find parts by
/// searching for it, not by their `Content-Range`, need that).
pub fn boundary() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hex = String::from("appstart-");
    for _ in 0..2 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u8(0);
        hex.push_str(&format!("{:016x}", hasher.finish()));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_range_or_several() {
        assert_eq!(parse("bytes=0-9", 100), Ranges::Some(vec![(0, 9)]));
        assert_eq!(parse("bytes=90-", 100), Ranges::Some(vec![(90, 99)]));
        assert_eq!(parse("bytes=-10", 100), Ranges::Some(vec![(90, 99)]));
        assert_eq!(parse("bytes=50-500", 100), Ranges::Some(vec![(50, 99)]));
        assert_eq!(parse("bytes=100-", 100), Ranges::Unsatisfiable);
        assert_eq!(parse("bytes=5-1", 100), Ranges::Whole);
        assert_eq!(parse("items=0-1", 100), Ranges::Whole);
        assert_eq!(
            parse("bytes=0-1, 5-6,200-300", 100),
            Ranges::Some(vec![(0, 1), (5, 6)])
        );
        assert_eq!(parse("bytes=0-99,0-99", 100), Ranges::Whole);
        let many = (0..=MAX_RANGES)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>();
        assert_eq!(
            parse(&format!("bytes={}", many.join(",")), 1000),
            Ranges::Whole
        );
        assert_eq!(parse("bytes=0-", 0), Ranges::Unsatisfiable);
    }

    #[test]
    fn parts_have_their_ranges_and_the_announced_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pack");
        let content: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        std::fs::write(&path, &content).unwrap();
        let ranges = [(0, 9), (500, 999)];
        let (mut parts, length) = Parts::new(File::open(&path).unwrap(), &ranges, 1000, "BOUNDARY");
        let mut body = Vec::new();
        parts.read_to_end(&mut body).unwrap();
        assert_eq!(body.len() as u64, length);
        let read = updater_core::advanced::transport::multipart::read_all(
            &body[..],
            "BOUNDARY",
            2,
            10_000,
        )
        .unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].1, &content[0..10]);
        assert_eq!(read[1].1, &content[500..1000]);
        assert_ne!(boundary(), boundary());
    }
}
