//! [`Subscriber`]: one thread that keeps a push stream open and says when it announces a
//! timestamp version newer than the trusted one.
//!
//! Steps, in a loop until stopped:
//! 1. connect to the URL through the given transport (the install's proxy and CA trust),
//!    watched by [`Watched`]: no data for [`STALL`] (three missed keep-alives) drops the
//!    connection, and [`Subscriber::stop`] ends a read within tens of milliseconds;
//! 2. feed what arrives to the capped [`Parser`]; each announcement greater than `known` (the
//!    trusted timestamp version, kept up to date by the poller) calls `wake`; anything
//!    malformed or over a cap drops the connection;
//! 3. when the connection ends or fails, wait with exponential backoff ([`FIRST_BACKOFF`]
//!    doubling to [`MAX_BACKOFF`], plus up to half again at random so a fleet does not
//!    reconnect in step), then go back to 1. A connection that delivered an announcement and
//!    lasted [`HEALTHY`] resets the backoff.
//!
//! Nothing here changes the install: the poller decides what a wake-up does.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::sse::Parser;
use crate::cancel::CancelToken;
use crate::error::{Error, Result};
use crate::transport::{Request, Transport};
use crate::watched::{Watched, read_error};

/// No data for this long (the server sends a keep-alive every 15 s) drops the connection.
pub const STALL: Duration = Duration::from_secs(45);
/// The first wait before reconnecting.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before reconnecting.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A connection that heard an announcement and lasted this long resets the backoff.
pub const HEALTHY: Duration = Duration::from_secs(30);

/// A running subscription; stopping or dropping it ends its thread at once.
#[derive(Debug)]
pub struct Subscriber {
    url: String,
    cancel: CancelToken,
    thread: Option<JoinHandle<()>>,
}

impl Subscriber {
    /// Subscribes to `url` through `transport`; calls `wake(version)` (on the subscriber's
    /// thread) for each announced version greater than `known`.
    pub fn spawn(
        url: &str,
        transport: Arc<dyn Transport>,
        known: Arc<AtomicU64>,
        wake: impl Fn(u64) + Send + 'static,
    ) -> Subscriber {
        let cancel = CancelToken::new();
        let token = cancel.clone();
        let owned_url = url.to_string();
        let thread = std::thread::Builder::new()
            .name("appstart-push".into())
            .spawn(move || run(&owned_url, &transport, &token, &known, &wake))
            .map_err(|e| log::warn!("push from {url} not started: {e}"))
            .ok();
        Subscriber {
            url: url.to_string(),
            cancel,
            thread,
        }
    }

    /// The URL subscribed to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes the connection and ends the thread; returns within about a tenth of a second.
    pub fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The loop of the module docs.
fn run(
    url: &str,
    transport: &Arc<dyn Transport>,
    cancel: &CancelToken,
    known: &AtomicU64,
    wake: &dyn Fn(u64),
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        // Steps 1 and 2.
        let watched = Watched::new(Arc::clone(transport), cancel.clone(), STALL);
        let (heard, result) = listen(&watched, url, known, wake);
        match result {
            Err(Error::Cancelled) => return,
            Err(e) => log::info!(
                "push from {url} dropped ({}); interval polling goes on",
                crate::error::chain(&e)
            ),
            Ok(()) => log::info!("push from {url} ended by the server; reconnecting"),
        }
        // Step 3.
        if heard && started.elapsed() >= HEALTHY {
            backoff = FIRST_BACKOFF;
        }
        let spread = backoff.mul_f64(0.5 * random_unit());
        if cancel.sleep(backoff + spread).is_err() {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Reads one connection to its end; whether it carried an announcement, and how it ended.
fn listen(
    watched: &Watched,
    url: &str,
    known: &AtomicU64,
    wake: &dyn Fn(u64),
) -> (bool, Result<()>) {
    let mut heard = false;
    let mut response = match watched.get(url, &Request::default()) {
        Ok(response) => response,
        Err(e) => return (heard, Err(e)),
    };
    log::info!("listening for pushes from {url}");
    let mut parser = Parser::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = match response.body.read(&mut buffer) {
            Ok(0) => return (heard, Ok(())),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let error = read_error(e, |e| Error::Transport {
                    url: url.to_string(),
                    message: e.to_string(),
                    retryable: true,
                    retry_after: None,
                });
                return (heard, Err(error));
            }
        };
        let announcements = match parser.feed(&buffer[..read]) {
            Ok(announcements) => announcements,
            Err(message) => {
                return (
                    heard,
                    Err(Error::format(
                        url.to_string(),
                        format!("push stream: {message}"),
                    )),
                );
            }
        };
        for announcement in announcements {
            heard = true;
            let version = announcement.timestamp_version;
            if version > known.load(Ordering::SeqCst) {
                log::info!("push from {url}: timestamp version {version} announced");
                wake(version);
            }
        }
    }
}

/// A number in 0..1 from the OS's random source (0.5 if it fails).
pub(crate) fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}
