//! Bandwidth limits: the [`Rate`] syntax (`512K`, `2M`), a token bucket shared by every
//! download of one updater, and the [`Throttled`] transport that paces body reads through it.
//!
//! Why on the caller's side of [`crate::watched::Watched`]: the watched worker thread reads
//! the socket and hands chunks over a small bounded queue; the caller waits for each chunk
//! with a stall timer that starts when it asks. Pacing the caller's reads means the time spent
//! waiting for tokens is never counted as "no data from the server" (the timer is not
//! running), and the queue filling up stops the worker reading the socket, so TCP flow
//! control slows the server down: the limit holds on the wire, not only in memory. The
//! bucket sleeps in short slices and checks the [`CancelToken`] between them, so a throttled
//! download stops as fast as an unthrottled one.
//!
//! One bucket per updater, shared by all its transports: the pack's range fetches that run in
//! parallel share one rate. A rate of `None` is unlimited and costs one lock per read.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cancel::CancelToken;
use crate::error::{Error, Result};
use crate::transport::{Request, Response, Transport};

/// Longest single sleep before the cancel token is checked again.
const SLICE: Duration = Duration::from_millis(50);

/// A bandwidth limit in bytes per second, written `BYTES[K|M|G]` with 1024-based suffixes:
/// `500K` is 512 000 bytes a second, `2M` is 2 097 152, `1.5M` is allowed, a plain number
/// is bytes. At least 1 KiB a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Rate(u64);

/// The smallest rate accepted: below it a 64 KiB chunk would take over a minute.
pub const MIN_RATE: u64 = 1024;

impl Rate {
    /// Parses `512K`, `2M`, `1.5G`, `65536` (bytes per second; K, M, G are 1024-based, case
    /// does not matter, a trailing `/s` or `B/s` is accepted).
    pub fn parse(text: &str) -> std::result::Result<Rate, String> {
        let bad = || {
            format!(
                "{text:?} is not a rate: write bytes per second with an optional K, M or G (1024-based), e.g. 512K or 2M"
            )
        };
        let trimmed = text.trim();
        let trimmed = trimmed
            .strip_suffix("/s")
            .map_or(trimmed, |t| t.strip_suffix(['B', 'b']).unwrap_or(t));
        let (number, multiplier) = match trimmed.chars().last() {
            Some('k' | 'K') => (&trimmed[..trimmed.len() - 1], 1024u64),
            Some('m' | 'M') => (&trimmed[..trimmed.len() - 1], 1024 * 1024),
            Some('g' | 'G') => (&trimmed[..trimmed.len() - 1], 1024 * 1024 * 1024),
            _ => (trimmed, 1),
        };
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let bytes = value * multiplier as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(bad());
        }
        let bytes = bytes.round() as u64;
        if bytes < MIN_RATE {
            return Err(format!(
                "{text:?} is below the smallest rate, 1K (1024 bytes a second)"
            ));
        }
        Ok(Rate(bytes))
    }

    /// A rate of `bytes` a second (at least [`MIN_RATE`]).
    pub fn from_bytes_per_second(bytes: u64) -> Rate {
        Rate(bytes.max(MIN_RATE))
    }

    /// Bytes per second.
    pub fn bytes_per_second(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for Rate {
    /// The shortest exact form: `2M`, `512K`, `1536` (bytes).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (suffix, unit) in [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
            if self.0.is_multiple_of(unit) {
                return write!(f, "{}{suffix}", self.0 / unit);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Rate, String> {
        Rate::parse(text)
    }
}

impl From<Rate> for String {
    fn from(rate: Rate) -> String {
        rate.to_string()
    }
}

impl TryFrom<String> for Rate {
    type Error = String;
    fn try_from(text: String) -> std::result::Result<Rate, String> {
        Rate::parse(&text)
    }
}

/// A token bucket: one per updater, its rate set before each operation.
#[derive(Debug, Default)]
pub struct Bandwidth {
    state: Mutex<Bucket>,
}

#[derive(Debug, Default)]
struct Bucket {
    rate: Option<Rate>,
    /// Bytes that may be read now; negative: bytes read ahead of the rate (a debt).
    tokens: f64,
    refilled: Option<Instant>,
}

impl Bandwidth {
    /// An unlimited bucket.
    pub fn new() -> Arc<Bandwidth> {
        Arc::new(Bandwidth::default())
    }

    /// Limits to `rate` from now on (`None`: unlimited). Starts empty: no burst at the start.
    pub fn set_rate(&self, rate: Option<Rate>) {
        let mut bucket = self.lock();
        if bucket.rate != rate {
            *bucket = Bucket {
                rate,
                tokens: 0.0,
                refilled: None,
            };
        }
    }

    /// The rate in force.
    pub fn rate(&self) -> Option<Rate> {
        self.lock().rate
    }

    /// Most bytes one read should take at `rate`: an eighth of a second's worth, so the
    /// pacing is smooth and one read's debt is short.
    fn read_size(&self) -> Option<usize> {
        self.lock()
            .rate
            .map(|rate| usize::try_from(rate.0 / 8).unwrap_or(usize::MAX).max(512))
    }

    /// Records `bytes` just read, then sleeps (in slices, checking `cancel`) until the
    /// rate allows them.
    pub fn take(&self, bytes: usize, cancel: &CancelToken) -> Result<()> {
        let wait = {
            let mut bucket = self.lock();
            let Some(rate) = bucket.rate else {
                return Ok(());
            };
            let rate = rate.0 as f64;
            let now = Instant::now();
            let elapsed = bucket
                .refilled
                .map_or(0.0, |then| now.duration_since(then).as_secs_f64());
            // At most a quarter second's worth saved up: an idle pause buys no big burst.
            bucket.tokens = (bucket.tokens + elapsed * rate).min(rate / 4.0);
            bucket.refilled = Some(now);
            bucket.tokens -= bytes as f64;
            if bucket.tokens >= 0.0 {
                return Ok(());
            }
            Duration::from_secs_f64(-bucket.tokens / rate)
        };
        let until = Instant::now() + wait;
        loop {
            cancel.check()?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep(SLICE.min(until - now));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        // A panic while holding this lock cannot leave the bucket inconsistent: take it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A [`Transport`] whose bodies are read no faster than its [`Bandwidth`] allows.
#[derive(Debug)]
pub struct Throttled {
    inner: Box<dyn Transport>,
    bandwidth: Arc<Bandwidth>,
    cancel: CancelToken,
}

impl Throttled {
    /// `inner`, paced by `bandwidth`, its sleeps stopped by `cancel`.
    pub fn new(inner: Box<dyn Transport>, bandwidth: Arc<Bandwidth>, cancel: CancelToken) -> Self {
        Throttled {
            inner,
            bandwidth,
            cancel,
        }
    }
}

impl Transport for Throttled {
    fn get(&self, url: &str, request: &Request) -> Result<Response> {
        let mut response = self.inner.get(url, request)?;
        let body = std::mem::replace(&mut response.body, Box::new(std::io::empty()));
        response.body = Box::new(ThrottledBody {
            inner: body,
            bandwidth: Arc::clone(&self.bandwidth),
            cancel: self.cancel.clone(),
        });
        Ok(response)
    }

    // The mirrors below must hear of content that failed verification (crate::mirrors).
    fn reject(&self, url: &str) -> bool {
        self.inner.reject(url)
    }
}

struct ThrottledBody {
    inner: Box<dyn Read + Send>,
    bandwidth: Arc<Bandwidth>,
    cancel: CancelToken,
}

impl Read for ThrottledBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let limit = self
            .bandwidth
            .read_size()
            .unwrap_or(buf.len())
            .min(buf.len());
        let n = self.inner.read(&mut buf[..limit])?;
        self.bandwidth
            .take(n, &self.cancel)
            .map_err(|e: Error| std::io::Error::other(e))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_strictly_with_1024_based_suffixes() {
        let rate = |text: &str| Rate::parse(text).map(Rate::bytes_per_second);
        assert_eq!(rate("512K"), Ok(512 * 1024));
        assert_eq!(rate("2m"), Ok(2 * 1024 * 1024));
        assert_eq!(rate("1.5M"), Ok(1536 * 1024));
        assert_eq!(rate("1G"), Ok(1 << 30));
        assert_eq!(rate("65536"), Ok(65536));
        assert_eq!(rate("500KB/s"), Ok(500 * 1024));
        assert_eq!(rate("500K/s"), Ok(500 * 1024));
        for bad in [
            "", "K", "fast", "-1K", "1 K", "1KK", "1T", "0", "1000", "1e6", "NaNK",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Rate::parse("10").unwrap_err().contains("smallest"));
        for text in ["2M", "512K", "1536", "1G"] {
            assert_eq!(Rate::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Rate::parse("1.5M").unwrap().to_string(), "1536K");
    }

    #[test]
    fn the_bucket_holds_the_rate_and_stops_when_cancelled() {
        let bandwidth = Bandwidth::new();
        let cancel = CancelToken::new();
        bandwidth.set_rate(Some(Rate::from_bytes_per_second(64 * 1024)));
        let started = Instant::now();
        // 32 KiB at 64 KiB/s, from an empty bucket: at least half a second.
        for _ in 0..8 {
            bandwidth.take(4096, &cancel).unwrap();
        }
        assert!(started.elapsed() >= Duration::from_millis(450));
        // Unlimited: no wait at all.
        bandwidth.set_rate(None);
        let started = Instant::now();
        bandwidth.take(1 << 30, &cancel).unwrap();
        assert!(started.elapsed() < Duration::from_millis(450));
        // A long debt is cut short by the token.
        bandwidth.set_rate(Some(Rate::from_bytes_per_second(1024)));
        cancel.cancel();
        let started = Instant::now();
        assert!(matches!(
            bandwidth.take(1 << 20, &cancel),
            Err(Error::Cancelled)
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
