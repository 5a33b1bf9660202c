//! One range request per run of slices: what every server that answers ranges supports (S3
//! and most CDNs answer a request for several ranges with the whole object), and what the
//! runs a multi-range answer left out fall back to ([`super::multi`]).

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::slices::SliceReader;
use super::{Sink, Stop, in_parallel};
use crate::error::{Error, Result};
use crate::stage::{Slice, Stager};

/// What comes after one range request.
enum RangeOutcome {
    /// The next range.
    Next,
    /// Nothing: the server sent the whole pack, every slice is done.
    Done,
    /// No more ranges: the rest is fetched blob by blob.
    Stop,
}

impl Stager<'_> {
    /// Fetches each run (`start..end` of `needed`) with one range request: the first alone
    /// (a server that ignores ranges sends the whole pack, which then serves every slice;
    /// answered so later, the whole pack serves that request's run only),
    /// the rest up to [`super::MAX_RANGE_REQUESTS`] at a time. Returns the bytes received
    /// and the requests made. A range that fails for a reason of the network stops the
    /// fetching of further ranges (their blobs are fetched one by one afterwards); a cancel,
    /// a stall or a failure of the sink or the cache is returned.
    pub(super) fn fetch_single_ranges(
        &self,
        url: &str,
        pack_size: u64,
        needed: &[Slice<'_>],
        runs: &[(usize, usize)],
        cache: &Path,
        sink: &mut Sink<'_>,
    ) -> Result<(u64, usize)> {
        let Some((&(first_start, first_end), rest)) = runs.split_first() else {
            return Ok((0, 0));
        };
        let mut received = 0;
        let run = (&needed[first_start..], first_end - first_start);
        let result = self.fetch_pack_range(url, pack_size, run, cache, sink, &mut received);
        match Self::after_range(url, result)? {
            RangeOutcome::Next => {}
            RangeOutcome::Done | RangeOutcome::Stop => return Ok((received, 1)),
        }
        let received = AtomicU64::new(received);
        let made = in_parallel(rest.len(), sink, &|index, sink| {
            let (start, end) = rest[index];
            let mut bytes = 0;
            // Only its own run, even from a whole pack: the other runs are other threads',
            // which go on (only a failed range stops them).
            let run = (&needed[start..end], end - start);
            let result = self.fetch_pack_range(url, pack_size, run, cache, sink, &mut bytes);
            received.fetch_add(bytes, Ordering::Relaxed);
            Ok(!matches!(
                Self::after_range(url, result)?,
                RangeOutcome::Stop
            ))
        })?;
        Ok((received.into_inner(), 1 + made))
    }

    /// What to do after one range: go on, stop (done or failed over to blob by blob), or end
    /// staging with the error.
    fn after_range(url: &str, result: std::result::Result<bool, Stop>) -> Result<RangeOutcome> {
        match result {
            // The server sent the whole pack: every slice is done.
            Ok(true) => Ok(RangeOutcome::Done),
            Ok(false) => Ok(RangeOutcome::Next),
            Err(Stop::Transport(err)) if err.ends_operation() => Err(err),
            Err(Stop::Transport(err)) => {
                log::warn!(
                    "pack range of {url} failed, fetching blobs one by one: {}",
                    crate::error::chain(&err)
                );
                Ok(RangeOutcome::Stop)
            }
            Err(Stop::Fatal(err)) => Err(err),
        }
    }

    /// Fetches one run of slices from the pack, counting the bytes received in `received`.
    /// `rest` is the needed slices not fetched yet, of which the run is the first `run_len`.
    /// Returns whether the server ignored the range and sent the whole pack (then every
    /// slice of `rest` was taken from it).
    fn fetch_pack_range(
        &self,
        url: &str,
        pack_size: u64,
        (rest, run_len): (&[Slice<'_>], usize),
        cache: &Path,
        sink: &mut Sink<'_>,
        received: &mut u64,
    ) -> std::result::Result<bool, Stop> {
        let run = rest.get(..run_len).unwrap_or(rest);
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return Ok(false);
        };
        let (first, last) = (first.offset, last.offset.saturating_add(last.size));
        let request = crate::transport::Request {
            range_start: Some(first),
            range_end: Some(last.saturating_sub(1)),
            ..Default::default()
        };
        let response = self.transport.get(url, &request).map_err(Stop::Transport)?;
        let (position, whole) = match response.status {
            crate::transport::Status::Partial if response.range_start == Some(first) => {
                (first, false)
            }
            crate::transport::Status::Full => (0, true),
            _ => {
                return Err(Stop::Transport(Error::format(
                    url,
                    "the server answered a range request with a range we did not ask for",
                )));
            }
        };
        let limit = if whole {
            self.pack_data_start.saturating_add(pack_size)
        } else {
            last - first
        };
        let body = response.body.take(limit);
        let mut reader = SliceReader::new(url, cache, position);
        let result = reader.read_all(body, if whole { rest } else { run }, sink);
        *received += reader.received;
        result.map(|()| whole)
    }
}
