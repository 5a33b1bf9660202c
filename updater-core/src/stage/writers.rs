//! Writing files from authenticated pack slices on several threads.
//!
//! A fresh install of many small files is bound by creating files (`openat`, a write, a mode
//! change each), not by the network: measured on 10,001 files, creating them took most of the
//! install. The thread that reads the pack response keeps reading and authenticating slices
//! (each against its signed BLAKE3, in [`super::pack`]) and hands each authenticated slice,
//! with the indexes of the files made from it, to a few writer threads through a bounded
//! channel; each writer decodes with its own reused zstd context and writes the files.
//!
//! Slices go to the writers in batches (up to [`BATCH_SLICES`] slices and [`BATCH_BYTES`]):
//! one hand-over per slice woke a writer 10,000 times for an app of 10,000 small files.
//!
//! Memory stays bounded: at most one batch per writer waits in the channel (one, not two as
//! with single slices: up to four range readers may each hold a slice, `super::pack`), a batch
//! holds at most [`BATCH_BYTES`] or one slice, and a slice handed here is at most
//! [`super::pack::SLICE_IN_MEMORY`] (4 MiB); each writer holds one decoded file of at most
//! 4 MiB (larger ones are decoded while streaming).
//!
//! Errors: a slice that decodes to something other than its file (signed, yet not what the
//! manifest describes) is logged and its file left to the per-file step, which fetches the
//! blob on its own and reports the mismatch; any other error (a file that cannot be written)
//! stops that writer, makes the reading side stop, and is returned.

use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc;

use super::{FileStat, Made, seal};
use crate::blob;
use crate::error::{Error, Result};
use crate::manifest::{Content, Manifest};

/// Most writer threads.
const MAX_WRITERS: usize = 4;
/// Slices are handed over in batches of up to this many bytes (or [`BATCH_SLICES`] slices):
/// a fresh install of 10,000 small files would otherwise wake a writer 10,000 times.
const BATCH_BYTES: usize = 256 * 1024;
/// Most slices in one batch.
const BATCH_SLICES: usize = 64;

/// Slices for one writer: (indexes of the files each makes, its bytes).
type Batch = Vec<(Vec<usize>, Vec<u8>)>;

/// Hands an authenticated slice (its bytes) and the indexes of the manifest files made from
/// it to the writers.
pub(super) type Handoff<'s> = dyn FnMut(Vec<usize>, &[u8]) -> Result<()> + Send + 's;

/// Runs `produce` on this thread with a [`Handoff`] that writes files of `manifest` into
/// `staging` on writer threads. Returns `produce`'s result and, per manifest file, whether
/// it was written (with its stat, read from the open file where that is final).
pub(super) fn write_from_slices<T>(
    manifest: &Manifest,
    staging: &Path,
    produce: impl FnOnce(&mut Handoff<'_>) -> Result<T>,
) -> Result<(T, Vec<Made>)> {
    let writers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_WRITERS);
    let (sender, receiver) = mpsc::sync_channel::<Batch>(writers);
    let receiver = Mutex::new(receiver);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|_| scope.spawn(|| write_jobs(manifest, staging, &receiver)))
            .collect();
        let stopped = || Error::Invalid("every file writer stopped".into());
        let mut batch: Batch = Vec::new();
        let mut batch_bytes = 0;
        // A batch holds at most BATCH_BYTES, or one slice that is larger on its own (up to
        // SLICE_IN_MEMORY): what waits in the channel stays as bounded as with single slices.
        let mut send = |indexes: Vec<usize>, bytes: &[u8]| -> Result<()> {
            if !batch.is_empty()
                && (batch_bytes + bytes.len() > BATCH_BYTES || batch.len() >= BATCH_SLICES)
            {
                batch_bytes = 0;
                sender
                    .send(std::mem::take(&mut batch))
                    .map_err(|_| stopped())?;
            }
            batch_bytes += bytes.len();
            batch.push((indexes, bytes.to_vec()));
            Ok(())
        };
        let mut produced = produce(&mut send);
        if !batch.is_empty() && sender.send(batch).is_err() && produced.is_ok() {
            produced = Err(stopped());
        }
        drop(sender);
        let mut written = vec![Made::Not; manifest.files.len()];
        let mut failure = None;
        for handle in handles {
            match handle.join() {
                Ok(Ok(done)) => {
                    for (index, stat) in done {
                        if let Some(made) = written.get_mut(index) {
                            *made = Made::Done(stat);
                        }
                    }
                }
                Ok(Err(err)) => {
                    failure.get_or_insert(err);
                }
                Err(_) => {
                    failure.get_or_insert(Error::Invalid("a file writer panicked".into()));
                }
            }
        }
        // A writer's error explains a failed send: report it first.
        if let Some(err) = failure {
            return Err(err);
        }
        Ok((produced?, written))
    })
}

/// One writer: takes jobs until the channel closes; returns the indexes of the files written,
/// with their stats where known.
fn write_jobs(
    manifest: &Manifest,
    staging: &Path,
    receiver: &Mutex<mpsc::Receiver<Batch>>,
) -> Result<Vec<(usize, Option<FileStat>)>> {
    let mut decoder = blob::MemoryDecoder::default();
    let mut done = Vec::new();
    loop {
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return Err(Error::Invalid("a file writer panicked".into())),
        };
        let Ok(batch) = job else {
            return Ok(done);
        };
        for (indexes, bytes) in batch {
            write_slice(manifest, staging, &mut decoder, &indexes, &bytes, &mut done)?;
        }
    }
}

/// Writes the files `indexes` of `manifest` from one authenticated slice.
fn write_slice(
    manifest: &Manifest,
    staging: &Path,
    decoder: &mut blob::MemoryDecoder,
    indexes: &[usize],
    bytes: &[u8],
    done: &mut Vec<(usize, Option<FileStat>)>,
) -> Result<()> {
    for &index in indexes {
        let Some(entry) = manifest.files.get(index) else {
            continue;
        };
        let dest = entry.path.join_to(staging);
        let what = format!("the pack slice of {}", entry.path);
        match decoder.decode_to_file(bytes, &what, &dest, &entry.expected()) {
            Ok(file) => {
                let stat = seal(file, &dest, entry.executable)?;
                done.push((index, stat));
            }
            Err(err @ (Error::Mismatch { .. } | Error::Format { .. })) => {
                log::warn!("{}", crate::error::chain(&err));
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
