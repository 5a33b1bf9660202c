//! Archive-aware updates: rebuilding a zip archive byte for byte from its members' contents.
//!
//! A delta over a compressed archive (a wheel, a jar, a zip) saves nothing: one changed
//! member shifts and re-encodes everything after it. So the publisher takes such an archive
//! apart ([`zip::take_apart`]) into its members' *uncompressed* contents, which diff well and
//! are shared with unchanged members of the installed archive, and a skeleton holding every
//! other byte. The client rebuilds the archive (`assemble`) by re-compressing each member
//! with the same deflate implementation and level the archive was made with.
//!
//! Re-compression is deterministic only for the same implementation and settings, so the
//! publisher *proves* each member: it re-compresses it with the client's code and keeps it as
//! a member only if the output is identical to the archive's bytes. Members it cannot prove
//! (another compressor, encryption, zip64) stay in the skeleton as they are. If the archive
//! cannot be parsed at all, the file is published as a plain file with whole-file deltas.
//! The client checks the rebuilt archive against the file's BLAKE3 and falls back to the
//! whole file if it differs.
//!
//! Deflate implementations supported ([`Engine`]), found on real archives:
//! - `zlib`: the reference zlib (bundled, so its output does not depend on the system's);
//!   what CPython's `zipfile`, Java's `jar` and Info-ZIP use. cmake's wheel.
//! - `miniz`: miniz_oxide, what Rust's `zip` crate uses by default. uv's wheel (maturin).

pub mod zip;

use std::fmt;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// Read and write buffer for re-compression. Part of the contract between the publisher's
/// proof and the client's rebuild: both feed the compressor in chunks of this size.
const CHUNK: usize = 64 * 1024;

/// How a member's content becomes its data in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Method {
    /// Stored as is (zip method 0).
    Stored,
    /// Raw deflate (zip method 8) by `engine` at `level`.
    Deflate {
        /// The implementation.
        engine: Engine,
        /// Its compression level.
        level: u8,
    },
}

/// A deflate implementation whose output the client reproduces exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// The reference zlib, memLevel 8, default strategy.
    Zlib,
    /// miniz_oxide.
    Miniz,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Stored => f.write_str("stored"),
            Method::Deflate { engine, level } => {
                let engine = match engine {
                    Engine::Zlib => "zlib",
                    Engine::Miniz => "miniz",
                };
                write!(f, "deflate-{engine}-{level}")
            }
        }
    }
}

impl From<Method> for String {
    fn from(method: Method) -> String {
        method.to_string()
    }
}

impl TryFrom<String> for Method {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text == "stored" {
            return Ok(Method::Stored);
        }
        let unknown = || format!("unknown archive member method {text:?}");
        let rest = text.strip_prefix("deflate-").ok_or_else(unknown)?;
        let (engine, level) = rest.rsplit_once('-').ok_or_else(unknown)?;
        let engine = match engine {
            "zlib" => Engine::Zlib,
            "miniz" => Engine::Miniz,
            _ => return Err(unknown()),
        };
        let level: u8 = level.parse().map_err(|_| unknown())?;
        let max = if engine == Engine::Zlib { 9 } else { 10 };
        if level > max {
            return Err(unknown());
        }
        Ok(Method::Deflate { engine, level })
    }
}

impl Method {
    /// The methods the publisher tries on a deflated member, most common first.
    pub fn deflate_candidates() -> Vec<Method> {
        let mut all = vec![
            Method::Deflate {
                engine: Engine::Zlib,
                level: 6,
            },
            Method::Deflate {
                engine: Engine::Miniz,
                level: 6,
            },
        ];
        for level in [9, 1, 2, 3, 4, 5, 7, 8] {
            all.push(Method::Deflate {
                engine: Engine::Zlib,
                level,
            });
        }
        for level in [1, 2, 3, 4, 5, 7, 8, 9, 10] {
            all.push(Method::Deflate {
                engine: Engine::Miniz,
                level,
            });
        }
        all
    }

    /// Encodes `content` into `output`, streaming. Returns the bytes written.
    pub fn encode(self, content: &mut impl Read, output: &mut impl Write) -> io::Result<u64> {
        match self {
            Method::Stored => io::copy(content, output),
            Method::Deflate {
                engine: Engine::Zlib,
                level,
            } => {
                let mut counter = CountingWriter {
                    inner: output,
                    count: 0,
                };
                let mut encoder = flate2::write::DeflateEncoder::new(
                    &mut counter,
                    flate2::Compression::new(u32::from(level)),
                );
                feed(content, |chunk| encoder.write_all(chunk))?;
                encoder.finish()?;
                Ok(counter.count)
            }
            Method::Deflate {
                engine: Engine::Miniz,
                level,
            } => miniz_encode(level, content, output),
        }
    }

    /// A reader of the content from the member's `data`.
    pub fn decoder<'a>(self, data: impl Read + 'a) -> Box<dyn Read + 'a> {
        match self {
            Method::Stored => Box::new(data),
            Method::Deflate { .. } => Box::new(flate2::read::DeflateDecoder::new(data)),
        }
    }
}

/// Reads `content` in [`CHUNK`]s, handing each to `sink`.
fn feed(content: &mut impl Read, mut sink: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = read_full(content, &mut buffer)?;
        if n == 0 {
            return Ok(());
        }
        sink(&buffer[..n])?;
    }
}

/// Fills `buffer` unless the input ends first: chunk boundaries then do not depend on how
/// the reader happens to split its data.
fn read_full(input: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn miniz_encode(level: u8, content: &mut impl Read, output: &mut impl Write) -> io::Result<u64> {
    use miniz_oxide::deflate::core::{
        CompressorOxide, TDEFLFlush, TDEFLStatus, compress, create_comp_flags_from_zip_params,
    };
    let mut compressor =
        CompressorOxide::new(create_comp_flags_from_zip_params(i32::from(level), -15, 0));
    let mut out = vec![0u8; CHUNK];
    let mut written = 0u64;
    let mut input = vec![0u8; CHUNK];
    let mut finished = false;
    while !finished {
        let n = read_full(content, &mut input)?;
        let flush = if n < input.len() {
            TDEFLFlush::Finish
        } else {
            TDEFLFlush::None
        };
        let mut pending = &input[..n];
        loop {
            let (status, consumed, produced) = compress(&mut compressor, pending, &mut out, flush);
            output.write_all(&out[..produced])?;
            written += produced as u64;
            pending = &pending[consumed..];
            match status {
                TDEFLStatus::Done => {
                    finished = true;
                    break;
                }
                TDEFLStatus::Okay if pending.is_empty() && flush == TDEFLFlush::None => break,
                TDEFLStatus::Okay => {}
                _ => return Err(io::Error::other("miniz_oxide compression failed")),
            }
        }
    }
    Ok(written)
}

struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that checks what is written against `expected`, failing at the first difference
/// (so a wrong guess of compressor costs a few kilobytes of work, not the whole member).
struct Comparing<'a> {
    expected: &'a [u8],
    position: usize,
}

impl Write for Comparing<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let end = self.position + bytes.len();
        if end > self.expected.len() || self.expected[self.position..end] != *bytes {
            return Err(io::Error::other("differs"));
        }
        self.position = end;
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether `method` turns `content` into exactly `data`.
pub fn reproduces(method: Method, content: &[u8], data: &[u8]) -> bool {
    let mut comparing = Comparing {
        expected: data,
        position: 0,
    };
    matches!(method.encode(&mut &content[..], &mut comparing), Ok(n) if n == data.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_print_and_parse() {
        for method in Method::deflate_candidates()
            .into_iter()
            .chain([Method::Stored])
        {
            assert_eq!(Method::try_from(method.to_string()), Ok(method));
        }
        for bad in [
            "deflate",
            "deflate-zlib-10",
            "deflate-gzip-6",
            "lzma",
            "deflate-zlib-x",
        ] {
            assert!(Method::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_engine_reproduces_itself_and_decodes() {
        let content: Vec<u8> = (0..300_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 997) as u8)
            .collect();
        for method in Method::deflate_candidates() {
            let mut data = Vec::new();
            method.encode(&mut content.as_slice(), &mut data).unwrap();
            assert!(reproduces(method, &content, &data), "{method}");
            let mut decoded = Vec::new();
            method
                .decoder(data.as_slice())
                .read_to_end(&mut decoded)
                .unwrap();
            assert_eq!(decoded, content, "{method}");
        }
        // Another engine's output is not claimed.
        let zlib = Method::Deflate {
            engine: Engine::Zlib,
            level: 6,
        };
        let miniz = Method::Deflate {
            engine: Engine::Miniz,
            level: 6,
        };
        let mut data = Vec::new();
        zlib.encode(&mut content.as_slice(), &mut data).unwrap();
        assert!(!reproduces(miniz, &content, &data));
    }
}
