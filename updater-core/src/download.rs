//! Downloads that are capped, verified, resumable and retried.
//!
//! - Every download has a size cap: the signed length where there is one, else a fixed
//!   maximum per kind of file. Bytes past the cap are refused, not buffered.
//! - Retries: network errors, 408, 429 and 5xx are retried with exponential backoff and
//!   jitter, honouring `Retry-After`, up to [`RetryPolicy::attempts`] tries.
//! - Resume: a file download goes to `<cache>/<name>.partial`; on a later attempt (or a later
//!   run) it continues with `Range: bytes=N-` and insists on `206` with a matching
//!   `Content-Range`; a server that answers `200` instead is read from the start. A partial
//!   file is kept on network failure and deleted on a content failure (after rustup).
//! - Cancellation and stalls: the policy's [`CancelToken`] ends the waits between tries, and
//!   [`Error::Cancelled`] and [`Error::Stalled`] are never retried. A cancelled or stalled
//!   download keeps its `.partial` file, so the next run resumes it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::cancel::CancelToken;
use crate::error::{Error, Result};
use crate::transport::{Request, Status, Transport};

/// How often and how patiently to retry.
///
/// Bounds: a refused or dropped connection is tried `attempts` times with waits of
/// `base_delay` doubling up to `max_delay` between them (by default 5 tries, about 3 s of
/// waiting in all); a stalled server fails once after the transport's stall timeout.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// Delay before the second try; doubles each time.
    pub base_delay: Duration,
    /// Longest delay between tries, also the cap on `Retry-After`.
    pub max_delay: Duration,
    /// Stops the waits between tries (and the operation) when cancelled.
    pub cancel: CancelToken,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            cancel: CancelToken::default(),
        }
    }
}

impl RetryPolicy {
    /// Runs `operation` until it succeeds, fails for good, or the tries run out.
    pub fn run<T>(&self, mut operation: impl FnMut(u32) -> Result<T>) -> Result<T> {
        let mut attempt = 1;
        loop {
            self.cancel.check()?;
            match operation(attempt) {
                Ok(value) => return Ok(value),
                Err(err) if err.is_retryable() && attempt < self.attempts => {
                    let delay = self.delay(attempt, &err);
                    log::warn!(
                        "{err}; retrying in {:.1} s (try {attempt} of {})",
                        delay.as_secs_f64(),
                        self.attempts
                    );
                    self.cancel.sleep(delay)?;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn delay(&self, attempt: u32, err: &Error) -> Duration {
        if let Error::Transport {
            retry_after: Some(seconds),
            ..
        } = err
        {
            return Duration::from_secs(*seconds).min(self.max_delay);
        }
        let exponential = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exponential.min(self.max_delay);
        // Full jitter in [50%, 100%] so many clients do not retry in lockstep.
        let jitter = 0.5 + 0.5 * random_unit();
        capped.mul_f64(jitter)
    }
}

/// A random number in [0, 1).
fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// Reads a whole resource into memory, refusing more than `limit` bytes. For metadata.
pub fn fetch_bytes(
    transport: &dyn Transport,
    url: &str,
    limit: u64,
    retry: &RetryPolicy,
) -> Result<Vec<u8>> {
    retry.run(|_| {
        let response = transport.get(url, &Request::default())?;
        if response.status != Status::Full {
            return Err(Error::Transport {
                url: url.to_string(),
                message: format!("unexpected answer {:?} to a plain GET", response.status),
                retryable: false,
                retry_after: None,
            });
        }
        if let Some(length) = response.content_length
            && length > limit
        {
            return Err(Error::TooLarge {
                url: url.to_string(),
                limit,
            });
        }
        // Sized for the announced length (checked against the cap above; a server's word,
        // so at most 8 MiB at once), not grown to it.
        let announced = response.content_length.unwrap_or(0).min(8 << 20);
        let mut bytes = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
        read_capped(response.body, &mut bytes, limit, url)?;
        Ok(bytes)
    })
}

/// Copies `body` into `out`, failing once more than `limit` bytes arrive. Read errors are
/// retryable transport errors. Returns the bytes copied.
pub fn read_capped(body: impl Read, out: &mut impl Write, limit: u64, url: &str) -> Result<u64> {
    let mut limited = body.take(limit + 1);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match limited.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(crate::watched::read_error(e, |e| Error::Transport {
                    url: url.to_string(),
                    message: format!("connection failed after {total} bytes: {e}"),
                    retryable: true,
                    retry_after: None,
                }));
            }
        };
        total += n as u64;
        if total > limit {
            return Err(Error::TooLarge {
                url: url.to_string(),
                limit,
            });
        }
        out.write_all(&buffer[..n])
            .map_err(|e| Error::io("writing download of", url, e))?;
    }
    Ok(total)
}

/// Downloads `url` into `partial` (resuming what is already there) until it holds exactly
/// `expected_length` bytes. Returns the bytes received over the network by this call.
///
/// The caller verifies the content and renames the file; on a content failure it deletes it.
pub fn fetch_to_partial(
    transport: &dyn Transport,
    url: &str,
    partial: &Path,
    expected_length: u64,
    retry: &RetryPolicy,
) -> Result<u64> {
    let mut received = 0u64;
    retry.run(|_| {
        let have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        if have > expected_length {
            // Not ours to keep: longer than the signed length.
            appstart_layout::fsutil::remove_file_if_exists(partial)?;
        } else if have == expected_length {
            return Ok(());
        }
        let have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        // With mirrors, this may resume from another base than the one that served the
        // first bytes: safe only because the caller checks the whole file against its
        // signed size and BLAKE3 before use, and deletes it on a mismatch.
        let request = Request {
            range_start: (have > 0).then_some(have),
            range_end: None,
            if_none_match: None,
            more_ranges: Vec::new(),
        };
        let response = transport.get(url, &request)?;
        let resume = match response.status {
            Status::Partial if response.range_start == Some(have) => true,
            Status::Full => false,
            _ => {
                // A 206 for a range we did not ask for, or a 304: start over from zero.
                appstart_layout::fsutil::remove_file_if_exists(partial)?;
                return Err(Error::Transport {
                    url: url.to_string(),
                    message: format!(
                        "the server answered {:?} (range start {:?}) to a request from byte {have}",
                        response.status, response.range_start
                    ),
                    retryable: true,
                    retry_after: None,
                });
            }
        };
        let start = if resume { have } else { 0 };
        let remaining = expected_length - start;
        if let Some(length) = response.content_length
            && length > remaining
        {
            return Err(Error::TooLarge {
                url: url.to_string(),
                limit: expected_length,
            });
        }
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(resume)
            .truncate(!resume)
            .open(partial)
            .map_err(|e| Error::io("opening", partial, e))?;
        let mut counting = CountingWriter {
            inner: &mut file,
            count: 0,
        };
        let result = read_capped(response.body, &mut counting, remaining, url);
        received += counting.count;
        // No `fsync`: a cached download is authenticated again before every use, so one torn
        // by a crash is deleted and fetched again (docs/crash-safety.md).
        let got = result?;
        if got < remaining {
            return Err(Error::Transport {
                url: url.to_string(),
                message: format!(
                    "the body ended after {} of {expected_length} bytes",
                    start + got
                ),
                retryable: true,
                retry_after: None,
            });
        }
        Ok(())
    })?;
    Ok(received)
}

/// A download's place in the cache and what it must be.
#[derive(Debug, Clone, Copy)]
pub struct CachedFile<'a> {
    /// Where it is kept once authenticated.
    pub path: &'a Path,
    /// Where it is downloaded to first (resumable).
    pub partial: &'a Path,
    /// Its signed size.
    pub size: u64,
    /// Its signed BLAKE3, lowercase hex.
    pub blake3: &'a str,
}

/// Makes `file.path` hold exactly the signed bytes of `url`, authenticated by size and
/// BLAKE3 before anything reads them: a cached copy is used only if it still matches (a bad
/// one is deleted, never retried as it is), else `url` is fetched into `file.partial`
/// (resuming), hashed, and renamed into place only if it matches. A resumed download that
/// does not match is fetched once more from scratch (the old partial may have been the bad
/// part). With several sources (mirrors), a download that does not match is fetched again
/// from the next source while one remains ([`Transport::reject`]). Returns the bytes
/// received over the network.
pub fn fetch_authenticated(
    transport: &dyn Transport,
    url: &str,
    file: &CachedFile<'_>,
    retry: &RetryPolicy,
) -> Result<u64> {
    if std::fs::metadata(file.path).is_ok_and(|m| m.len() == file.size) {
        match check_file(file.path, file.size, file.blake3) {
            Ok(()) => return Ok(0),
            Err(err) => {
                log::warn!("discarding a cached download: {err}");
            }
        }
    }
    appstart_layout::fsutil::remove_file_if_exists(file.path)?;
    let mut received = 0;
    let mut may_restart = true;
    loop {
        let resumed = std::fs::metadata(file.partial).is_ok_and(|m| m.len() > 0);
        received += fetch_to_partial(transport, url, file.partial, file.size, retry)?;
        let err = match check_file(file.partial, file.size, file.blake3) {
            Ok(()) => {
                appstart_layout::fsutil::rename(file.partial, file.path)?;
                return Ok(received);
            }
            Err(err) => err,
        };
        appstart_layout::fsutil::remove_file_if_exists(file.partial)?;
        if resumed && may_restart {
            log::warn!("{url}: the resumed download does not match; downloading it again");
            may_restart = false;
            continue;
        }
        // Mirrors: the source that served these bytes is not asked for them again; another
        // one is, while one remains (`Transport::reject`; one source: no).
        if transport.reject(url) {
            log::warn!("{url}: {err}; downloading it from the next repository URL");
            continue;
        }
        return Err(err.mismatch_of(url));
    }
}

/// Checks that the file at `path` has `size` bytes and BLAKE3 `blake3`.
pub fn check_file(path: &Path, size: u64, blake3: &str) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut hasher = blake3::Hasher::new();
    let length = std::io::copy(&mut file.take(size + 1), &mut hasher)
        .map_err(|e| Error::io("reading", path, e))?;
    let what = path.display().to_string();
    if length != size {
        return Err(Error::Mismatch {
            what,
            kind: "size",
            expected: size.to_string(),
            actual: length.to_string(),
        });
    }
    let actual = hasher.finalize().to_hex().to_string();
    if actual != blake3 {
        return Err(Error::Mismatch {
            what,
            kind: "blake3",
            expected: blake3.to_string(),
            actual,
        });
    }
    Ok(())
}

struct CountingWriter<'a> {
    inner: &'a mut File,
    count: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
