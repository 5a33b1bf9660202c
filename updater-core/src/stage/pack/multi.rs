//! Several runs of slices in one request (`Range: bytes=A-B,C-D,...`), answered in parts
//! (`multipart/byteranges`, RFC 9110 §14.6): an update of 1 % of a 10,000-file app needs
//! about 90 runs, which one request per run pays for in round trips (88 requests, 0.6 s
//! with 20 ms of latency, `docs/benchmarks.md`); in parts they are one or two requests.
//!
//! Servers differ, so the first request tells what this one does, and the rest follows:
//! - parts (nginx, Apache, Caddy, `appupdate serve`): the other batches go the same way, up
//!   to [`super::MAX_RANGE_REQUESTS`] at a time;
//! - one range starting where we asked (the server coalesced the ranges, or kept the first):
//!   the slices inside it are read, the rest go one range per run ([`super::single`]);
//! - the whole pack (200: S3 and most CDNs do this for several ranges): the body is dropped
//!   unread and every run goes one range per run, as before this module.
//!
//! Whatever a server sends, each slice is still authenticated against its signed BLAKE3
//! ([`super::slices`]), and the bytes read are capped by what was asked for plus a framing
//! allowance per part ([`FRAMING_PER_PART`]).

use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::slices::{SliceReader, read_failed};
use super::{Sink, Stop, in_parallel};
use crate::error::Result;
use crate::stage::{Slice, Stager};
use crate::transport::multipart::{MAX_PREAMBLE, Multiparts, Part};
use crate::transport::{Request, Status};

/// Most ranges in one request: Apache answers more than 200 (its `MaxRanges`) with the whole
/// file.
pub const MAX_RANGES_PER_REQUEST: usize = 128;
/// Longest `Range` header value: servers cap a request's header lines (8 KiB in nginx and
/// Apache by default).
pub const MAX_RANGE_HEADER: usize = 4000;
/// Bytes a part's delimiter and headers may take beyond its content (about 100 in practice).
pub const FRAMING_PER_PART: u64 = 1024;

/// How a server answered a request for several ranges.
enum Answer {
    /// With the whole pack, or something unusable: nothing was read.
    Refused,
    /// With some or all of them: these runs (`start..end` of `needed`) are still to fetch.
    /// `in_parts`: the answer was in parts (else one range: the server coalesced the ranges
    /// or kept the first, and asking it for several again gains nothing).
    Served {
        left: Vec<(usize, usize)>,
        in_parts: bool,
    },
}

impl Stager<'_> {
    /// Fetches each run (`start..end` of `needed`): several runs to a request while the
    /// server answers them in parts, else one range per run (see the module docs). Returns
    /// the bytes received and the requests made.
    pub(super) fn fetch_runs(
        &self,
        url: &str,
        pack_size: u64,
        needed: &[Slice<'_>],
        runs: &[(usize, usize)],
        cache: &Path,
        sink: &mut Sink<'_>,
    ) -> Result<(u64, usize)> {
        let batches = batches(needed, runs);
        let Some((first, rest)) = batches.split_first().filter(|_| runs.len() > 1) else {
            return self.fetch_single_ranges(url, pack_size, needed, runs, cache, sink);
        };
        let mut received = 0;
        let mut requests = 1;
        let (mut left, in_parts) = match self.fetch_several(
            url,
            needed,
            first,
            cache,
            sink,
            &mut received,
        )? {
            Answer::Refused => {
                log::info!(
                    "{url}: the server does not answer several ranges in parts; one request per run"
                );
                (first.clone(), false)
            }
            Answer::Served { left, in_parts } => (left, in_parts),
        };
        if in_parts {
            let also_left = Mutex::new(Vec::new());
            let bytes = AtomicU64::new(0);
            requests += in_parallel(rest.len(), sink, &|index, sink| {
                let mut read = 0;
                let answer = self.fetch_several(url, needed, &rest[index], cache, sink, &mut read);
                bytes.fetch_add(read, Ordering::Relaxed);
                let runs = match answer? {
                    Answer::Refused => rest[index].clone(),
                    Answer::Served { left, .. } => left,
                };
                if let Ok(mut also_left) = also_left.lock() {
                    also_left.extend(runs);
                }
                Ok(true)
            })?;
            received += bytes.into_inner();
            left.extend(also_left.into_inner().unwrap_or_else(|e| e.into_inner()));
        } else {
            // Not in parts: the other batches one range per run.
            left.extend(rest.iter().flatten());
        }
        left.sort_unstable();
        // Only the slices still wanted: a server answering one of these with the whole pack
        // then serves those, not the ones already read.
        let mut slices = Vec::new();
        let mut runs = Vec::new();
        for &(start, end) in &left {
            let first = slices.len();
            slices.extend_from_slice(&needed[start..end]);
            runs.push((first, slices.len()));
        }
        let (bytes, made) =
            self.fetch_single_ranges(url, pack_size, &slices, &runs, cache, sink)?;
        Ok((received + bytes, requests + made))
    }

    /// Asks for `batch` (runs of `needed`) in one request and reads the slices of the answer.
    /// Errors only for what ends staging (a cancel, a stall, the sink or the cache).
    fn fetch_several(
        &self,
        url: &str,
        needed: &[Slice<'_>],
        batch: &[(usize, usize)],
        cache: &Path,
        sink: &mut Sink<'_>,
        received: &mut u64,
    ) -> Result<Answer> {
        let ranges: Vec<(u64, u64)> = batch
            .iter()
            .map(|&(start, end)| range_of(&needed[start..end]))
            .collect();
        let (Some(&(first, last)), Some(more)) = (ranges.first(), ranges.get(1..)) else {
            return Ok(Answer::Served {
                left: batch.to_vec(),
                in_parts: false,
            });
        };
        let request = Request {
            range_start: Some(first),
            range_end: Some(last),
            more_ranges: more.to_vec(),
            ..Default::default()
        };
        let response = match self.transport.get(url, &request) {
            Ok(response) => response,
            Err(err) if err.ends_operation() => return Err(err),
            Err(err) => {
                log::warn!(
                    "several ranges of {url} failed, asking for one at a time: {}",
                    crate::error::chain(&err)
                );
                return Ok(Answer::Refused);
            }
        };
        // Every slice of the batch, and whether it was read.
        let slices: Vec<Slice<'_>> = batch
            .iter()
            .flat_map(|&(start, end)| needed[start..end].iter().copied())
            .collect();
        let mut handled = vec![false; slices.len()];
        let asked: u64 = ranges.iter().map(|(first, last)| last - first + 1).sum();
        let cap = asked
            .saturating_add(FRAMING_PER_PART.saturating_mul(ranges.len() as u64))
            .saturating_add(MAX_PREAMBLE as u64);
        let mut reading = Reading {
            url,
            slices: &slices,
            handled: &mut handled,
            cache,
            received,
        };
        let in_parts = response.multipart_boundary.is_some();
        let result = match (response.status, &response.multipart_boundary) {
            (Status::Partial, Some(boundary)) => {
                let mut parts = Multiparts::new(response.body.take(cap), boundary);
                reading.parts(&mut parts, ranges.len(), sink)
            }
            // One range: the server coalesced them, or kept the first.
            (Status::Partial, None) if response.range_start == Some(first) => {
                // Without a length (chunked) it is read up to the cap; one longer than the
                // cap spans far more than was asked for: dropped.
                let length = match response.content_length {
                    Some(length) if (1..=cap).contains(&length) => length,
                    None => cap,
                    Some(_) => return Ok(Answer::Refused),
                };
                let Some(last) = first.checked_add(length - 1) else {
                    return Ok(Answer::Refused);
                };
                reading.part(response.body.take(length), Part { first, last }, sink)
            }
            // The whole pack (or an answer to something else): dropped unread.
            _ => return Ok(Answer::Refused),
        };
        match result {
            Ok(()) => {}
            Err(Stop::Transport(err)) if err.ends_operation() => return Err(err),
            Err(Stop::Transport(err)) => {
                log::warn!(
                    "reading several ranges of {url} failed, asking for the rest one at a time: {}",
                    crate::error::chain(&err)
                );
                if !handled.contains(&true) {
                    return Ok(Answer::Refused);
                }
            }
            Err(Stop::Fatal(err)) => return Err(err),
        }
        Ok(Answer::Served {
            left: unread_runs(batch, &handled),
            in_parts,
        })
    }
}

/// Reading the answer to one request for several ranges.
struct Reading<'r, 's> {
    url: &'r str,
    /// The batch's slices, sorted.
    slices: &'r [Slice<'s>],
    handled: &'r mut [bool],
    cache: &'r Path,
    received: &'r mut u64,
}

impl Reading<'_, '_> {
    /// Reads every part of `parts`: at most `max_parts` of them.
    fn parts(
        &mut self,
        parts: &mut Multiparts<impl Read>,
        max_parts: usize,
        sink: &mut Sink<'_>,
    ) -> std::result::Result<(), Stop> {
        let mut count = 0;
        while let Some(part) = parts.next_part().map_err(|e| read_failed(self.url, e))? {
            count += 1;
            if count > max_parts {
                return Err(read_failed(
                    self.url,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("more parts than the {max_parts} ranges asked for"),
                    ),
                ));
            }
            self.part(&mut *parts, part, sink)?;
        }
        Ok(())
    }

    /// Reads, from `body` (the bytes of `part`), every slice of the batch inside `part` not
    /// read yet.
    fn part(
        &mut self,
        mut body: impl Read,
        part: Part,
        sink: &mut Sink<'_>,
    ) -> std::result::Result<(), Stop> {
        let mut reader = SliceReader::new(self.url, self.cache, part.first);
        let mut result = Ok(());
        for (slice, handled) in self.slices.iter().zip(self.handled.iter_mut()) {
            let inside = slice.offset >= part.first
                && slice.offset.saturating_add(slice.size) <= part.last.saturating_add(1);
            if *handled || !inside {
                continue;
            }
            result = reader.read(&mut body, slice, sink);
            if result.is_err() {
                break;
            }
            *handled = true;
        }
        *self.received += reader.received;
        result
    }
}

/// The first and last byte of a run of slices.
fn range_of(run: &[Slice<'_>]) -> (u64, u64) {
    let first = run.first().map_or(0, |slice| slice.offset);
    let end = run
        .last()
        .map_or(first + 1, |slice| slice.offset.saturating_add(slice.size));
    (first, end.saturating_sub(1).max(first))
}

/// Within each run of `batch`, the runs (`start..end` of `needed`) of consecutive slices not
/// read (`handled`, one flag per slice of the batch in order). Runs are never joined: the gap
/// between two runs was too large to fetch.
fn unread_runs(batch: &[(usize, usize)], handled: &[bool]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut flags = handled.iter();
    for &(start, end) in batch {
        let mut open = false;
        for index in start..end {
            if flags.next().copied().unwrap_or(false) {
                open = false;
                continue;
            }
            match runs.last_mut() {
                Some((_, last)) if open => *last = index + 1,
                _ => runs.push((index, index + 1)),
            }
            open = true;
        }
    }
    runs
}

/// `runs` in batches of at most [`MAX_RANGES_PER_REQUEST`] whose `Range` header stays
/// within [`MAX_RANGE_HEADER`].
fn batches(needed: &[Slice<'_>], runs: &[(usize, usize)]) -> Vec<Vec<(usize, usize)>> {
    let mut batches = Vec::new();
    let mut batch: Vec<(usize, usize)> = Vec::new();
    let mut header = "bytes=".len();
    for &(start, end) in runs {
        let (first, last) = range_of(&needed[start..end]);
        let length = format!("{first}-{last},").len();
        if !batch.is_empty()
            && (batch.len() == MAX_RANGES_PER_REQUEST || header + length > MAX_RANGE_HEADER)
        {
            batches.push(std::mem::take(&mut batch));
            header = "bytes=".len();
        }
        batch.push((start, end));
        header += length;
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slices(count: u64) -> Vec<Slice<'static>> {
        (0..count)
            .map(|i| Slice {
                offset: 1_000_000_000 + i * 100,
                size: 10,
                blob_blake3: "",
                content: "",
            })
            .collect()
    }

    #[test]
    fn batches_respect_the_range_and_header_caps() {
        let needed = slices(1000);
        let runs: Vec<(usize, usize)> = (0..1000).map(|i| (i, i + 1)).collect();
        let batches = batches(&needed, &runs);
        // 22 bytes a range ("1000000000-1000000009,"): the header cap binds first.
        assert!(batches.iter().all(|b| b.len() * 22 + 6 <= MAX_RANGE_HEADER));
        assert!(batches.iter().all(|b| b.len() <= MAX_RANGES_PER_REQUEST));
        let flat: Vec<(usize, usize)> = batches.concat();
        assert_eq!(flat, runs);
        let short: Vec<Slice<'static>> = (0..1000)
            .map(|i| Slice {
                offset: i * 10,
                size: 5,
                blob_blake3: "",
                content: "",
            })
            .collect();
        let batches = super::batches(&short, &runs);
        assert_eq!(batches[0].len(), MAX_RANGES_PER_REQUEST);
        assert_eq!(batches.concat(), runs);
    }

    #[test]
    fn unread_slices_make_runs_of_neighbours_within_each_run() {
        let needed = slices(8);
        let batch = [(0, 4), (4, 5), (5, 6), (6, 8)];
        let handled = [true, false, false, true, false, false, true, false];
        assert_eq!(
            unread_runs(&batch, &handled),
            vec![(1, 3), (4, 5), (5, 6), (7, 8)]
        );
        assert_eq!(range_of(&needed[1..3]), (1_000_000_100, 1_000_000_209));
    }
}
