//! [`Watched`]: a [`Transport`] that gives up on a stalled server after one timeout and stops
//! at once when its [`CancelToken`] is cancelled.
//!
//! Why a thread per request: a blocking socket read cannot be interrupted portably, and a
//! `Poller` asked to stop, or a Ctrl-C, must not wait for the server. So the inner transport
//! runs on a worker thread that passes the response head and then body chunks over a small
//! bounded channel; the caller waits on the channel in short slices, checking the token and
//! the time since the last data. On cancel or stall the caller returns at once and drops the
//! channel: the worker ends at its next send, or when the inner transport's own (longer)
//! timeout fires. A stall is [`Error::Stalled`] and is not retried, so a stalled server
//! costs exactly one timeout, not one per try.

use std::io::Read;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::error::{Error, Result};
use crate::transport::{Request, Response, Transport};

/// How often a waiting caller looks at the token.
const TICK: Duration = Duration::from_millis(50);
/// Bytes per chunk handed from the worker to the caller.
const CHUNK: usize = 64 * 1024;
/// Chunks buffered between them (memory bound per request: `CHUNK * QUEUE`).
const QUEUE: usize = 8;

/// Wraps a transport with a stall timeout and a cancel token.
#[derive(Debug, Clone)]
pub struct Watched {
    inner: Arc<dyn Transport>,
    cancel: CancelToken,
    stall: Duration,
}

impl Watched {
    /// `inner`, failing after `stall` without data and stopping when `cancel` is cancelled.
    pub fn new(inner: Arc<dyn Transport>, cancel: CancelToken, stall: Duration) -> Self {
        Watched {
            inner,
            cancel,
            stall: stall.max(Duration::from_millis(1)),
        }
    }

    fn stalled(&self, url: &str) -> Error {
        Error::Stalled {
            url: url.to_string(),
            seconds: self.stall.as_secs_f64().round() as u64,
        }
    }
}

impl Transport for Watched {
    fn get(&self, url: &str, request: &Request) -> Result<Response> {
        self.cancel.check()?;
        let (head_send, head_receive) = sync_channel::<Result<Response>>(1);
        let (body_send, body_receive) = sync_channel::<std::io::Result<Vec<u8>>>(QUEUE);
        let inner = Arc::clone(&self.inner);
        let owned_url = url.to_string();
        let owned_request = request.clone();
        std::thread::Builder::new()
            .name("appstart-fetch".into())
            .spawn(move || {
                let mut response = match inner.get(&owned_url, &owned_request) {
                    Ok(response) => response,
                    Err(err) => {
                        let _ = head_send.send(Err(err));
                        return;
                    }
                };
                let body = std::mem::replace(&mut response.body, Box::new(std::io::empty()));
                if head_send.send(Ok(response)).is_ok() {
                    pump(body, &body_send);
                }
            })
            .map_err(|e| Error::Transport {
                url: url.to_string(),
                message: format!("starting a download thread: {e}"),
                retryable: true,
                retry_after: None,
            })?;
        let mut response = wait(&head_receive, &self.cancel, self.stall, || {
            self.stalled(url)
        })?
        .unwrap_or_else(|| {
            // The worker ended without an answer: it panicked.
            Err(Error::Transport {
                url: url.to_string(),
                message: "the download thread stopped without an answer".into(),
                retryable: true,
                retry_after: None,
            })
        })?;
        response.body = Box::new(WatchedBody {
            chunks: body_receive,
            pending: Vec::new(),
            position: 0,
            finished: false,
            cancel: self.cancel.clone(),
            stall: self.stall,
            url: url.to_string(),
        });
        Ok(response)
    }

    fn reject(&self, url: &str) -> bool {
        self.inner.reject(url)
    }
}

/// Copies `body` into `send` chunk by chunk until the end, an error, or the caller hangs up.
fn pump(mut body: Box<dyn Read + Send>, send: &SyncSender<std::io::Result<Vec<u8>>>) {
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let message = match body.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => Ok(buffer[..n].to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
        let failed = message.is_err();
        if send.send(message).is_err() || failed {
            return;
        }
    }
}

/// Waits for one message: `Ok(None)` when the sender is gone, [`Error::Cancelled`] when
/// cancelled, `stalled()` after `stall` without one.
fn wait<T>(
    receive: &Receiver<T>,
    cancel: &CancelToken,
    stall: Duration,
    stalled: impl Fn() -> Error,
) -> Result<Option<T>> {
    let deadline = Instant::now() + stall;
    loop {
        cancel.check()?;
        let now = Instant::now();
        if now >= deadline {
            return Err(stalled());
        }
        match receive.recv_timeout(TICK.min(deadline - now)) {
            Ok(message) => return Ok(Some(message)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(None),
        }
    }
}

/// The caller's end of a body: chunks from the worker, with the same checks.
struct WatchedBody {
    chunks: Receiver<std::io::Result<Vec<u8>>>,
    pending: Vec<u8>,
    position: usize,
    finished: bool,
    cancel: CancelToken,
    stall: Duration,
    url: String,
}

impl Read for WatchedBody {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.cancel.check().map_err(std::io::Error::other)?;
        if self.position >= self.pending.len() && !self.finished {
            let stall = self.stall;
            let url = &self.url;
            let seconds = stall.as_secs_f64().round() as u64;
            let message = wait(&self.chunks, &self.cancel, stall, || Error::Stalled {
                url: url.clone(),
                seconds,
            })
            .map_err(std::io::Error::other)?;
            match message {
                Some(Ok(chunk)) => {
                    self.pending = chunk;
                    self.position = 0;
                }
                Some(Err(e)) => return Err(e),
                None => self.finished = true,
            }
        }
        let available = &self.pending[self.position.min(self.pending.len())..];
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.position += n;
        Ok(n)
    }
}

/// The typed error inside an I/O error from a [`Watched`] body ([`Error::Cancelled`],
/// [`Error::Stalled`]), else `other(error)`: read loops keep those two as they are instead
/// of turning them into a retryable network error.
pub fn read_error(error: std::io::Error, other: impl FnOnce(std::io::Error) -> Error) -> Error {
    let typed = error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<Error>().is_some());
    if typed {
        // Checked just above: the payload is an `Error`.
        if let Some(inner) = error.into_inner()
            && let Ok(typed) = inner.downcast::<Error>()
        {
            return *typed;
        }
        return Error::Cancelled;
    }
    other(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::FileTransport;

    #[test]
    fn a_cancelled_token_stops_before_and_during_a_body() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("blob");
        std::fs::write(&path, vec![7u8; 3 * CHUNK]).expect("writing the blob");
        let url = format!("file://{}", path.display());
        let token = CancelToken::new();
        let watched = Watched::new(
            Arc::new(FileTransport),
            token.clone(),
            Duration::from_secs(30),
        );
        let mut response = watched.get(&url, &Request::default()).expect("the file");
        let mut first = [0u8; 16];
        assert_eq!(response.body.read(&mut first).expect("a first read"), 16);
        token.cancel();
        let mut rest = Vec::new();
        let err = response.body.read_to_end(&mut rest).expect_err("cancelled");
        assert!(matches!(
            read_error(err, |_| Error::Invalid("other".into())),
            Error::Cancelled
        ));
        assert!(matches!(
            watched.get(&url, &Request::default()),
            Err(Error::Cancelled)
        ));
    }
}
