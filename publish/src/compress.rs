//! One worker thread's compression state, reused for every blob it stores, and the small
//! streaming helpers around it.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::path::Path;

use updater_core::advanced::blob;
use updater_core::{Error, Result};

/// One thread's reusable compression state. A zstd context allocates its tables (megabytes
/// at level 12) once per thread and keeps them across blobs: a new encoder per blob cost an
/// allocation and a `munmap` of those buffers for every file.
pub(super) struct Worker {
    level: i32,
    pub(super) context: zstd::zstd_safe::CCtx<'static>,
    pub(super) input: Vec<u8>,
    pub(super) output: Vec<u8>,
}

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

/// Runs `work` with this thread's [`Worker`] for `level`, creating it on first use. Every
/// blob is compressed with the same parameters (level, [`blob::BLOB_WINDOW_LOG`], the
/// content size pledged), single-threaded, so its bytes do not depend on which thread made
/// it or on how many there are.
pub(super) fn with_worker<T>(level: i32, work: impl FnOnce(&mut Worker) -> Result<T>) -> Result<T> {
    WORKER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|w| w.level != level) {
            let mut context = zstd::zstd_safe::CCtx::create();
            for parameter in [
                zstd::zstd_safe::CParameter::CompressionLevel(level),
                zstd::zstd_safe::CParameter::WindowLog(blob::BLOB_WINDOW_LOG),
            ] {
                context.set_parameter(parameter).map_err(|code| {
                    Error::Invalid(format!(
                        "zstd level {level}: {}",
                        zstd::zstd_safe::get_error_name(code)
                    ))
                })?;
            }
            *slot = Some(Worker {
                level,
                context,
                input: Vec::new(),
                output: Vec::new(),
            });
        }
        match slot.as_mut() {
            Some(worker) => work(worker),
            None => Err(Error::Invalid("no compression worker".into())),
        }
    })
}

/// Passes bytes through (reading or writing) while hashing them.
pub(super) struct HashTee<T> {
    pub(super) inner: T,
    pub(super) hasher: blake3::Hasher,
}

impl<W: Write> Write for HashTee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for HashTee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Copies `input` to `output` through `buffer` (grown to 256 KiB), naming `source` in errors.
pub(super) fn copy_with(
    input: &mut impl Read,
    output: &mut impl Write,
    buffer: &mut Vec<u8>,
    source: &Path,
) -> Result<u64> {
    buffer.resize(256 * 1024, 0);
    let mut total = 0u64;
    loop {
        let n = match input.read(buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading", source, e)),
        };
        output
            .write_all(&buffer[..n])
            .map_err(|e| Error::io("compressing", source, e))?;
        total += n as u64;
    }
}
