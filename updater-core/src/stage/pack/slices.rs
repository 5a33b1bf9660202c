//! Reading pack slices from a response body: each is authenticated by its blob's signed
//! BLAKE3 before the sink may decode it; the gaps between slices are read and dropped.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use appstart_layout::fsutil;

use super::{SLICE_IN_MEMORY, Sink, Stop};
use crate::error::Error;
use crate::stage::Slice;

/// Reads slices, in order, from a body that is a part of the pack.
pub(super) struct SliceReader<'a> {
    url: &'a str,
    cache: &'a Path,
    /// The pack offset of the body's next byte.
    position: u64,
    /// Bytes read from the body (gaps included).
    pub received: u64,
    /// Slices read whole (authenticated and taken, cached, or dropped for a bad hash).
    pub handled: usize,
    buffer: Vec<u8>,
}

impl<'a> SliceReader<'a> {
    /// A reader of a body from `url` whose first byte is the pack's `position`.
    pub fn new(url: &'a str, cache: &'a Path, position: u64) -> Self {
        SliceReader {
            url,
            cache,
            position,
            received: 0,
            handled: 0,
            buffer: Vec::new(),
        }
    }

    /// Reads `slices` (sorted, from the current position on) from `body`.
    pub fn read_all(
        &mut self,
        mut body: impl Read,
        slices: &[Slice<'_>],
        sink: &mut Sink<'_>,
    ) -> Result<(), Stop> {
        for slice in slices {
            self.read(&mut body, slice, sink)?;
        }
        Ok(())
    }

    /// Reads `slice` from `body`: skips the gap before it, authenticates it and hands it to
    /// `sink` or the cache. A slice that does not match its signed BLAKE3 is dropped (its
    /// blob is fetched on its own later).
    pub fn read(
        &mut self,
        mut body: impl Read,
        slice: &Slice<'_>,
        sink: &mut Sink<'_>,
    ) -> Result<(), Stop> {
        let url = self.url;
        let gap = slice.offset.checked_sub(self.position).ok_or_else(|| {
            Stop::Transport(Error::format(
                url,
                "pack slices out of order (the manifest was not validated)",
            ))
        })?;
        let skipped = std::io::copy(&mut (&mut body).take(gap), &mut std::io::sink())
            .map_err(|e| read_failed(url, e))?;
        self.received += skipped;
        if skipped != gap {
            return Err(broken(
                url,
                format!("the pack ended {skipped} bytes into a {gap}-byte gap"),
            ));
        }
        self.position = slice.offset + slice.size;
        let in_memory = slice.size <= SLICE_IN_MEMORY;
        let partial = self.cache.join(format!("{}.zst.partial", slice.content));
        let mut hashing = HashingWriter {
            inner: if in_memory {
                self.buffer.clear();
                Target::Memory(&mut self.buffer)
            } else {
                Target::File(
                    File::create(&partial)
                        .map_err(|e| Stop::Fatal(Error::io("creating", &partial, e)))?,
                )
            },
            hasher: blake3::Hasher::new(),
        };
        let copied = crate::download::read_capped(
            (&mut body).take(slice.size),
            &mut hashing,
            slice.size,
            url,
        )
        .map_err(Stop::Transport)?;
        self.received += copied;
        let actual = hashing.hasher.finalize().to_hex();
        drop(hashing.inner);
        if copied != slice.size || actual.as_str() != slice.blob_blake3 {
            let _ = fsutil::remove_file_if_exists(&partial);
            if copied != slice.size {
                return Err(broken(
                    url,
                    format!(
                        "the pack ended {copied} bytes into a {}-byte slice",
                        slice.size
                    ),
                ));
            }
            log::warn!(
                "{url}: the slice at {}+{} does not match its signed blake3 {} (got {actual}); fetching that blob on its own",
                slice.offset,
                slice.size,
                slice.blob_blake3
            );
            self.handled += 1;
            return Ok(());
        }
        let cached = self.cache.join(format!("{}.zst", slice.content));
        if in_memory {
            // Authenticated above: only now may the sink decode it.
            if sink(slice, &self.buffer).map_err(Stop::Fatal)? {
                self.handled += 1;
                return Ok(());
            }
            // No `fsync`: cached blobs are authenticated again before each use.
            std::fs::write(&partial, &self.buffer)
                .map_err(|e| Stop::Fatal(Error::io("writing", &partial, e)))?;
        }
        fsutil::rename(&partial, &cached).map_err(|e| Stop::Fatal(e.into()))?;
        self.handled += 1;
        Ok(())
    }
}

/// Reading the body of `url` failed: a stall or cancel ends staging
/// ([`crate::watched::read_error`]), anything else is retryable.
pub(super) fn read_failed(url: &str, e: std::io::Error) -> Stop {
    Stop::Transport(crate::watched::read_error(e, |e| Error::Transport {
        url: url.to_string(),
        message: e.to_string(),
        retryable: true,
        retry_after: None,
    }))
}

/// A body that ended or broke: retryable, the rest is fetched another way.
fn broken(url: &str, message: String) -> Stop {
    Stop::Transport(Error::Transport {
        url: url.to_string(),
        message,
        retryable: true,
        retry_after: None,
    })
}

/// Where a slice goes while it is hashed.
enum Target<'b> {
    Memory(&'b mut Vec<u8>),
    File(File),
}

/// A writer that hashes what passes through it.
struct HashingWriter<'b> {
    inner: Target<'b>,
    hasher: blake3::Hasher,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.inner {
            Target::Memory(buffer) => buffer.write(bytes)?,
            Target::File(file) => file.write(bytes)?,
        };
        self.hasher.update(&bytes[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.inner {
            Target::Memory(_) => Ok(()),
            Target::File(file) => file.flush(),
        }
    }
}
