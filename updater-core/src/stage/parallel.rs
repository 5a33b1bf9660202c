//! Running one step over many files on a few threads: linking the unchanged files
//! ([`super::reuse`]) and reading the finished folder's stats ([`super::verify`]) are a
//! syscall or two per file, so an app of 10,000 files keeps more than one core busy.
//!
//! Each thread takes one run of consecutive items (manifests are sorted by path, so a thread
//! mostly stays in its own folders); results come back in the items' order.

use crate::error::{Error, Result};

/// Most threads at once.
const MAX_THREADS: usize = 4;

/// `work` over `items` in runs of at least `per_thread` items, one thread per run (the
/// calling thread alone when there is one run). Returns the runs' results in order, or the
/// first run's error.
pub(super) fn in_runs<I: Sync, T: Send>(
    items: &[I],
    per_thread: usize,
    work: impl Fn(&[I]) -> Result<Vec<T>> + Sync,
) -> Result<Vec<T>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_THREADS)
        .min(items.len().div_ceil(per_thread.max(1)))
        .max(1);
    if threads == 1 {
        return work(items);
    }
    let run = items.len().div_ceil(threads);
    let results: Vec<Result<Vec<T>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(run)
            .map(|part| scope.spawn(|| work(part)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(Error::Invalid("a staging thread panicked".into())))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(items.len());
    for result in results {
        all.extend(result?);
    }
    Ok(all)
}
