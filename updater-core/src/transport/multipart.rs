//! Reading a `multipart/byteranges` body (RFC 9110 §14.6): the answer to one request for
//! several ranges of a pack, so that an update of scattered files costs one round trip
//! instead of one per run of neighbouring files.
//!
//! The body is untrusted: every line is capped ([`MAX_LINE`]), as are the lines of one part's
//! headers ([`MAX_HEADER_LINES`]), the preamble ([`MAX_PREAMBLE`]) and the number of parts
//! (the caller's). A part's body is exactly the length its `Content-Range` names; what is in
//! it is authenticated by the caller (each pack slice against its signed BLAKE3), so a server
//! that lies about offsets can only make slices fail their check, never be accepted.

use std::io::{BufRead, BufReader, Read};

/// Longest line of the multipart framing (a delimiter or a part header).
pub const MAX_LINE: usize = 1024;
/// Most header lines in one part.
pub const MAX_HEADER_LINES: usize = 16;
/// Most bytes before the first delimiter.
pub const MAX_PREAMBLE: usize = 4096;

/// The boundary of a `Content-Type: multipart/byteranges; boundary=...` value, or `None` for
/// any other type. Public (hidden) only so that the fuzz targets in `fuzz/` can reach it.
#[doc(hidden)]
pub fn boundary_of(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let kind = params.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/byteranges") {
        return None;
    }
    params.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        // RFC 2046: 1 to 70 characters.
        (!value.is_empty() && value.len() <= 70 && value.is_ascii()).then(|| value.to_string())
    })
}

/// One part: the pack bytes `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Offset of the part's first byte.
    pub first: u64,
    /// Offset of its last byte (inclusive).
    pub last: u64,
}

impl Part {
    /// Its length in bytes (never 0).
    pub fn length(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// Where the reader is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Start,
    /// In a part's body, this many bytes left.
    Body(u64),
    /// After the closing delimiter.
    End,
}

/// Reads the parts of a `multipart/byteranges` body: [`Multiparts::next_part`] gives each
/// part's range, then the part's body is read from the reader itself ([`Read`]).
pub struct Multiparts<R> {
    body: BufReader<R>,
    delimiter: Vec<u8>,
    state: State,
}

impl<R> std::fmt::Debug for Multiparts<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Multiparts")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Multiparts<R> {
    /// A reader of `body`, whose parts are separated by `boundary` ([`boundary_of`]).
    pub fn new(body: R, boundary: &str) -> Self {
        Multiparts {
            body: BufReader::with_capacity(64 * 1024, body),
            delimiter: [b"--", boundary.as_bytes()].concat(),
            state: State::Start,
        }
    }

    /// Skips what is left of the current part and reads the next part's delimiter and
    /// headers. `Ok(None)` after the closing delimiter. Errors describe what was malformed
    /// (an I/O error of the body is passed on).
    pub fn next_part(&mut self) -> std::io::Result<Option<Part>> {
        let mut line = Vec::new();
        match self.state {
            State::End => return Ok(None),
            State::Start => {
                // The preamble (normally empty) up to the first delimiter.
                let mut skipped = 0;
                loop {
                    self.read_line(&mut line)?;
                    skipped += line.len();
                    if skipped > MAX_PREAMBLE {
                        return Err(malformed("no delimiter in the first 4 KiB"));
                    }
                    if self.is_delimiter(&line).is_some() {
                        break;
                    }
                }
            }
            State::Body(left) => {
                let skipped =
                    std::io::copy(&mut (&mut self.body).take(left), &mut std::io::sink())?;
                if skipped != left {
                    return Err(truncated());
                }
                // The CRLF that ends the body belongs to the delimiter that follows.
                self.read_line(&mut line)?;
                if !trim_line(&line).is_empty() {
                    return Err(malformed("a part is longer than its Content-Range"));
                }
                self.read_line(&mut line)?;
            }
        }
        match self.is_delimiter(&line) {
            Some(true) => {
                self.state = State::End;
                return Ok(None);
            }
            Some(false) => {}
            None => return Err(malformed("no delimiter after a part")),
        }
        let mut range: Option<Part> = None;
        for _ in 0..=MAX_HEADER_LINES {
            self.read_line(&mut line)?;
            let header = trim_line(&line);
            if header.is_empty() {
                let part = range.ok_or_else(|| malformed("a part without Content-Range"))?;
                self.state = State::Body(part.length());
                return Ok(Some(part));
            }
            let header =
                std::str::from_utf8(header).map_err(|_| malformed("a part header is not UTF-8"))?;
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| malformed("a part header without a colon"))?;
            if name.trim().eq_ignore_ascii_case("content-range") {
                range = Some(parse_content_range(value).ok_or_else(|| {
                    malformed("a part's Content-Range is not bytes FIRST-LAST/TOTAL")
                })?);
            }
        }
        Err(malformed("a part has too many header lines"))
    }

    /// `Some(closing)` when `line` is the delimiter (`--boundary`, closing with `--` after).
    fn is_delimiter(&self, line: &[u8]) -> Option<bool> {
        let rest = trim_line(line).strip_prefix(self.delimiter.as_slice())?;
        match trim_padding(rest) {
            b"" => Some(false),
            b"--" => Some(true),
            _ => None,
        }
    }

    /// Reads one line (to `\n`, included) into `line`, at most [`MAX_LINE`] bytes.
    fn read_line(&mut self, line: &mut Vec<u8>) -> std::io::Result<()> {
        line.clear();
        let read = (&mut self.body)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', line)?;
        if read == 0 {
            return Err(truncated());
        }
        if line.last() != Some(&b'\n') {
            return Err(if read > MAX_LINE {
                malformed("a framing line is longer than 1 KiB")
            } else {
                truncated()
            });
        }
        Ok(())
    }
}

impl<R: Read> Read for Multiparts<R> {
    /// Reads the current part's body; 0 at its end.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let State::Body(left) = self.state else {
            return Ok(0);
        };
        let max = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let read = self.body.read(&mut buf[..max])?;
        if read == 0 && max > 0 {
            return Err(truncated());
        }
        self.state = State::Body(left - read as u64);
        Ok(read)
    }
}

/// `bytes FIRST-LAST/TOTAL` (or `/*`), with FIRST <= LAST.
fn parse_content_range(value: &str) -> Option<Part> {
    let rest = after_bytes_unit(value)?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last): (u64, u64) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    let total = total.trim();
    if total != "*" && total.parse::<u64>().ok()? <= last {
        return None;
    }
    (first <= last && last < u64::MAX).then_some(Part { first, last })
}

/// What follows `bytes ` in a `Content-Range` value (of a part, or of a whole answer). Range
/// units are case-insensitive (RFC 9110 §14.1).
pub(crate) fn after_bytes_unit(value: &str) -> Option<&str> {
    let value = value.trim();
    value
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes "))
        .and_then(|_| value.get(6..))
}

/// `line` without its line ending (`\r\n` or a bare `\n`).
fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Without the spaces and tabs RFC 2046 allows after a delimiter.
fn trim_padding(mut rest: &[u8]) -> &[u8] {
    while let [head @ .., b' ' | b'\t'] = rest {
        rest = head;
    }
    rest
}

fn malformed(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("malformed multipart/byteranges answer: {what}"),
    )
}

fn truncated() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the multipart/byteranges answer ended early",
    )
}

/// Reads every part of `body` into (part, bytes) pairs, at most `max_parts`. Public (hidden)
/// only so that the fuzz targets in `fuzz/` can reach it; memory is capped by `max_bytes`.
#[doc(hidden)]
pub fn read_all(
    body: impl Read,
    boundary: &str,
    max_parts: usize,
    max_bytes: u64,
) -> std::io::Result<Vec<(Part, Vec<u8>)>> {
    let mut parts = Multiparts::new(body, boundary);
    let mut out = Vec::new();
    let mut total = 0u64;
    while let Some(part) = parts.next_part()? {
        total = total.saturating_add(part.length());
        if out.len() == max_parts || total > max_bytes {
            return Err(malformed("more parts or bytes than asked for"));
        }
        let mut bytes = Vec::new();
        parts.read_to_end(&mut bytes)?;
        out.push((part, bytes));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(u64, &[u8])], total: u64) -> Vec<u8> {
        let mut out = b"\r\n".to_vec();
        for (first, bytes) in parts {
            let last = first + bytes.len() as u64 - 1;
            out.extend_from_slice(
                format!(
                    "--B0UND\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {first}-{last}/{total}\r\n\r\n"
                )
                .as_bytes(),
            );
            out.extend_from_slice(bytes);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--B0UND--\r\n");
        out
    }

    #[test]
    fn reads_each_part_with_its_range() {
        let body = body(&[(0, b"abc"), (10, b"\r\n--B0UND\r\n"), (40, b"z")], 100);
        let parts = read_all(&body[..], "B0UND", 8, 1000).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], (Part { first: 0, last: 2 }, b"abc".to_vec()));
        // A delimiter inside a part's bytes is data: lengths come from Content-Range.
        assert_eq!(parts[1].1, b"\r\n--B0UND\r\n");
        assert_eq!(
            parts[2],
            (
                Part {
                    first: 40,
                    last: 40
                },
                b"z".to_vec()
            )
        );
    }

    #[test]
    fn a_part_left_unread_is_skipped() {
        let body = body(&[(0, b"abc"), (10, b"def")], 100);
        let mut parts = Multiparts::new(&body[..], "B0UND");
        assert_eq!(parts.next_part().unwrap(), Some(Part { first: 0, last: 2 }));
        assert_eq!(
            parts.next_part().unwrap(),
            Some(Part {
                first: 10,
                last: 12
            })
        );
        let mut rest = String::new();
        parts.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "def");
        assert_eq!(parts.next_part().unwrap(), None);
        assert_eq!(parts.next_part().unwrap(), None);
    }

    #[test]
    fn boundaries_from_content_types() {
        assert_eq!(
            boundary_of("multipart/byteranges; boundary=3d6b6a416f9b5").as_deref(),
            Some("3d6b6a416f9b5")
        );
        assert_eq!(
            boundary_of("Multipart/Byteranges;charset=x; Boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary_of("application/octet-stream"), None);
        assert_eq!(boundary_of("multipart/byteranges"), None);
        assert_eq!(boundary_of("multipart/byteranges; boundary="), None);
        assert_eq!(
            boundary_of(&format!(
                "multipart/byteranges; boundary={}",
                "x".repeat(71)
            )),
            None
        );
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let good = body(&[(0, b"abc"), (10, b"def")], 100);
        // Every truncation fails (or ends early with fewer parts), none panics.
        for end in 0..good.len() {
            let result = read_all(&good[..end], "B0UND", 8, 1000);
            assert!(result.is_err(), "truncated at {end}: {result:?}");
        }
        let cases: &[&[u8]] = &[
            b"--B0UND\r\n\r\nabc\r\n--B0UND--\r\n",
            b"--B0UND\r\nContent-Range: bytes 5-2/10\r\n\r\n",
            b"--B0UND\r\nContent-Range: bytes 0-2/2\r\n\r\nabc\r\n--B0UND--\r\n",
            b"--B0UND\r\nContent-Range: bytes 0-2/10\r\n\r\nabcd\r\n--B0UND--\r\n",
            b"--B0UND\r\nContent-Range: items 0-2/10\r\n\r\nabc\r\n--B0UND--\r\n",
            b"--B0UND\r\nContent-Range: bytes 0-18446744073709551615/*\r\n\r\nabc",
            b"--OTHER\r\nContent-Range: bytes 0-2/10\r\n\r\nabc\r\n--OTHER--\r\n",
            b"--B0UND\r\nContent-Range bytes 0-2/10\r\n\r\nabc\r\n--B0UND--\r\n",
            b"--B0UND\r\nContent-Range: bytes 0-2/10\r\n\r\nabc\r\nnot a delimiter\r\n",
        ];
        for case in cases {
            let result = read_all(*case, "B0UND", 8, 1 << 20);
            assert!(
                result.is_err(),
                "{}: {result:?}",
                String::from_utf8_lossy(case)
            );
        }
        let long = [b"--B0UND\r\nX: ".as_slice(), &[b'a'; 2000], b"\r\n"].concat();
        assert!(read_all(&long[..], "B0UND", 8, 1000).is_err());
        let many = [b"--B0UND\r\n".as_slice(), &b"X: y\r\n".repeat(40)].concat();
        assert!(read_all(&many[..], "B0UND", 8, 1000).is_err());
        assert!(read_all(&vec![b'\n'; 10_000][..], "B0UND", 8, 1000).is_err());
        // Caps on what the caller asked for.
        assert!(read_all(&good[..], "B0UND", 1, 1000).is_err());
        assert!(read_all(&good[..], "B0UND", 8, 5).is_err());
    }

    #[test]
    fn padding_and_bare_line_feeds_are_accepted() {
        let body = b"preamble\n--B0UND \t\ncontent-range:BYTES 3-4/*\n\nxy\n--B0UND-- \r\nepilogue";
        let parts = read_all(&body[..], "B0UND", 8, 1000).unwrap();
        assert_eq!(parts, vec![(Part { first: 3, last: 4 }, b"xy".to_vec())]);
    }
}
