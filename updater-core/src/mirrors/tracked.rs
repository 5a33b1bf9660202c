//! [`Tracked`]: a base's response body that reports how it ended to the health of that
//! base (step 2 of the mirrors docs): broken off or short of its `Content-Length` is a
//! failure, a clean end where it should is a success.

use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{State, mark};
use crate::error::Error;

/// A body that reports how it ended to the health of its base.
pub(super) struct Tracked {
    pub(super) inner: Box<dyn Read + Send>,
    pub(super) expected: Option<u64>,
    pub(super) read: u64,
    pub(super) state: Arc<Mutex<State>>,
    pub(super) health_path: Option<PathBuf>,
    pub(super) base: usize,
    /// Whether other bases exist (a stall is then worth a retry, on another base).
    pub(super) others: bool,
    pub(super) done: bool,
}

impl Read for Tracked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                let short = self.expected.is_some_and(|expected| self.read < expected);
                if !self.done {
                    self.done = true;
                    mark(&self.state, self.health_path.as_deref(), self.base, !short);
                }
                if short {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "the body ended after {} of {} bytes",
                            self.read,
                            self.expected.unwrap_or_default()
                        ),
                    ));
                }
                Ok(0)
            }
            Ok(n) => {
                self.read += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let cancelled = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<Error>())
                    .is_some_and(|inner| matches!(inner, Error::Cancelled));
                if cancelled {
                    return Err(e);
                }
                if !self.done {
                    self.done = true;
                    mark(&self.state, self.health_path.as_deref(), self.base, false);
                }
                // A stall is final on one base, but worth a try on another: make it a plain
                // (retryable) read error. The base is now last in the order.
                let stalled = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<Error>())
                    .is_some_and(|inner| matches!(inner, Error::Stalled { .. }));
                if stalled && self.others {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        e.to_string(),
                    ));
                }
                Err(e)
            }
        }
    }
}
