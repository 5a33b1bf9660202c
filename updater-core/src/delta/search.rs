//! bsdiff's match search, made to scale: the list of copy-with-differences segments that
//! both bsdiff formats (`bsdiff`, `bsdiff-lzma`) are packed from.
//!
//! We used to call qbsdiff's encoder. Its suffix array is fine (libdivsufsort), but its scan
//! goes quadratic on real executables: a 19 MB cmake binary pair took minutes, because where
//! the current alignment already matches most of a long exact match, the scan steps one byte
//! at a time and each step searches the suffix array again, comparing up to the whole match.
//! This is Colin Percival's bsdiff scan (the segment boundaries and the forward, backward and
//! overlap extensions are his, so the output is as small as bsdiff's), with four changes that
//! bound the work per target byte:
//!
//! 1. The suffix array is built by libdivsufsort (`cdivsufsort`, already the engine under
//!    qbsdiff): O(n log n) worst case, about 3 s for a 36 MB binary here, 4 bytes per base
//!    byte.
//! 2. A lookup table of the first two bytes narrows each binary search, and a one-bit-per-base-
//!    byte filter of 8-byte hashes answers "no match of 8 bytes or more" without touching the
//!    suffix array: most positions of new code, and all of unrelated data, cost one hash.
//! 3. Comparisons during the binary search stop at [`COMPARE_LIMIT`] bytes (the match found
//!    is then extended byte by byte), so a long run of zeros does not cost its length at every
//!    step of every search.
//! 4. Where a long exact match is already mostly covered by the current alignment (bsdiff
//!    would step one byte and search again), the scan jumps to [`RESCAN_TAIL`] bytes before its
//!    end.
//!
//! One change is for size, not speed: a new segment needs an exact match of at least
//! [`MIN_MATCH`] bytes (bsdiff takes 9), which makes the uv delta 1.3 % smaller.
//!
//! Memory is the suffix array (4 bytes per indexed base byte), the filter (at most one bit
//! per base byte, rounded to a power of two, capped at 64 MiB) and the segment list. A base
//! larger than the window the caller gives ([`super::EncodeOptions::window`]) is indexed a
//! window at a time: the target is cut into chunks of half a window, and each chunk is
//! matched against the base window at the same relative position (files over 2 GiB, whose
//! offsets do not fit libdivsufsort's 32-bit suffix array, always take this path).
//!
//! A deadline is checked every few thousand steps and before each suffix array is built.

use std::time::Instant;

/// Most bytes compared per probe of the binary search.
pub(crate) const COMPARE_LIMIT: usize = 2048;

/// Where an exact match is mostly covered by the current alignment, how many of its last
/// bytes are scanned again one at a time.
const RESCAN_TAIL: usize = 32;

/// Shortest exact match that starts a new segment. bsdiff takes any match 9 bytes longer than
/// what the current alignment covers; on executables the short ones cost more in control
/// data than they save (uv binary: 71,447 segments and 2.514 MB at 9 bytes, 41,637 and
/// 2.482 MB at 16, 30,164 and 2.505 MB at 24).
const MIN_MATCH: usize = 16;

/// Most bytes one suffix array may index (libdivsufsort's offsets are `i32`).
pub(crate) const MAX_WINDOW: usize = (i32::MAX as usize) - 1;

/// Steps between two looks at the clock.
const CLOCK_EVERY: u32 = 1 << 12;

/// `add` bytes of base (from `base`) plus as many diff bytes, then `copy` literal bytes: a
/// bsdiff control triple with an absolute base position instead of a relative seek.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Where the add starts in the base.
    pub base: u64,
    /// Bytes taken from the base, with differences.
    pub add: u64,
    /// Literal bytes after them.
    pub copy: u64,
}

/// The search ran past its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutOfTime;

/// The segments that describe `target` against `base`, covering the whole target in order.
/// A base longer than `window` bytes is indexed a window at a time (see the module docs);
/// with `threads` over 1, the target (or each window's chunk) is cut into that many parts of
/// at least [`MIN_PART`] bytes, scanned in parallel against the same index.
pub(crate) fn search(
    base: &[u8],
    target: &[u8],
    window: usize,
    threads: usize,
    deadline: Option<Instant>,
) -> Result<Vec<Segment>, OutOfTime> {
    let window = window.clamp(1024, MAX_WINDOW);
    let clock = Clock { deadline, ticks: 0 };
    let mut segments = Vec::new();
    if base.len() <= window {
        clock.check()?;
        let index = Index::new(base);
        scan_parallel(&index, 0, target, threads, &clock, &mut segments)?;
        return Ok(segments);
    }
    let chunk = window / 2;
    let mut current: Option<(usize, Index<'_>)> = None;
    for (n, part) in target.chunks(chunk).enumerate() {
        let start = n * chunk;
        // The base window centred on the same relative position as this chunk.
        let centre = (start as u128 * base.len() as u128 / target.len().max(1) as u128) as usize;
        let from = centre.saturating_sub(window / 4).min(base.len() - window);
        if current.as_ref().is_none_or(|(at, _)| *at != from) {
            // Free the previous suffix array before building the next.
            drop(current.take());
            clock.check()?;
            current = Some((from, Index::new(&base[from..from + window])));
        }
        if let Some((at, index)) = &current {
            scan_parallel(index, *at as u64, part, threads, &clock, &mut segments)?;
        }
    }
    Ok(segments)
}

/// Fewest target bytes a thread scans: below this, one thread does it all (smaller in unit
/// tests, so they cover the parallel path on small inputs).
pub(crate) const MIN_PART: usize = if cfg!(test) { 64 << 10 } else { 4 << 20 };

fn scan_parallel(
    index: &Index<'_>,
    base_offset: u64,
    new: &[u8],
    threads: usize,
    clock: &Clock,
    segments: &mut Vec<Segment>,
) -> Result<(), OutOfTime> {
    let parts = threads.clamp(1, (new.len() / MIN_PART).max(1));
    if parts == 1 {
        return scan(index, base_offset, new, segments, &mut clock.clone());
    }
    let size = new.len().div_ceil(parts);
    let results: Vec<Result<Vec<Segment>, OutOfTime>> = std::thread::scope(|scope| {
        let handles: Vec<_> = new
            .chunks(size)
            .map(|part| {
                let mut clock = clock.clone();
                scope.spawn(move || {
                    let mut found = Vec::new();
                    scan(index, base_offset, part, &mut found, &mut clock).map(|()| found)
                })
            })
            .collect();
        handles
            .into_iter()
            // A scan does not panic; if one did, its part is treated as out of time.
            .map(|handle| handle.join().unwrap_or(Err(OutOfTime)))
            .collect()
    });
    for found in results {
        segments.extend(found?);
    }
    Ok(())
}

#[derive(Clone)]
struct Clock {
    deadline: Option<Instant>,
    ticks: u32,
}

impl Clock {
    fn check(&self) -> Result<(), OutOfTime> {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => Err(OutOfTime),
            _ => Ok(()),
        }
    }

    fn tick(&mut self) -> Result<(), OutOfTime> {
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(CLOCK_EVERY) {
            self.check()
        } else {
            Ok(())
        }
    }
}

/// A base (window) with its suffix array, two-byte bucket table and 8-byte filter.
struct Index<'a> {
    old: &'a [u8],
    sa: Vec<i32>,
    /// `buckets[k]..buckets[k + 1]` are the suffixes whose first two bytes are `k` (big
    /// endian); a last one-byte suffix `c` counts as `c, 0`, where it sorts.
    buckets: Vec<u32>,
    filter: Filter,
}

impl<'a> Index<'a> {
    fn new(old: &'a [u8]) -> Self {
        debug_assert!(old.len() <= MAX_WINDOW);
        let mut sa = vec![0i32; old.len()];
        if !old.is_empty() {
            cdivsufsort::sort_in_place(old, &mut sa);
        }
        let mut buckets = vec![0u32; (1 << 16) + 1];
        for (i, &byte) in old.iter().enumerate() {
            let next = old.get(i + 1).copied().unwrap_or(0);
            buckets[(usize::from(byte) << 8 | usize::from(next)) + 1] += 1;
        }
        for k in 1..buckets.len() {
            buckets[k] += buckets[k - 1];
        }
        let mut filter = Filter::new(old.len());
        for gram in old.windows(8) {
            filter.insert(gram);
        }
        Index {
            old,
            sa,
            buckets,
            filter,
        }
    }

    fn suffix(&self, rank: usize) -> &'a [u8] {
        // Every entry of a suffix array is an offset into the text.
        &self.old[self.sa[rank] as usize..]
    }

    /// The longest match of a prefix of `new` in the base: (position, length). Matches
    /// shorter than 8 bytes may be reported as none.
    fn longest(&self, new: &[u8]) -> (usize, usize) {
        if new.len() >= 8 && !self.filter.contains(&new[..8]) {
            return (0, 0);
        }
        let probe = &new[..new.len().min(COMPARE_LIMIT)];
        let (mut lo, mut hi) = if probe.len() >= 2 {
            let key = usize::from(probe[0]) << 8 | usize::from(probe[1]);
            (self.buckets[key] as usize, self.buckets[key + 1] as usize)
        } else {
            (0, self.sa.len())
        };
        if lo >= hi {
            return (0, 0);
        }
        hi -= 1;
        let mut lo_len = common_prefix(self.suffix(lo), probe);
        let mut hi_len = common_prefix(self.suffix(hi), probe);
        while hi - lo >= 2 {
            let mid = lo + (hi - lo) / 2;
            let suffix = self.suffix(mid);
            // Everything between lo and hi shares this much with the probe.
            let known = lo_len.min(hi_len).min(suffix.len());
            let len = known + common_prefix(&suffix[known..], &probe[known..]);
            if len == probe.len() {
                lo = mid;
                lo_len = len;
                break;
            }
            if len == suffix.len() || suffix[len] < probe[len] {
                lo = mid;
                lo_len = len;
            } else {
                hi = mid;
                hi_len = len;
            }
        }
        let (rank, len) = if lo_len >= hi_len {
            (lo, lo_len)
        } else {
            (hi, hi_len)
        };
        let pos = self.sa[rank] as usize;
        let len = if len == COMPARE_LIMIT {
            len + common_prefix(&self.old[pos + len..], &new[len..])
        } else {
            len
        };
        (pos, len)
    }
}

/// A one-hash Bloom filter of the base's 8-byte strings.
struct Filter {
    bits: Vec<u64>,
    mask: u64,
}

impl Filter {
    /// Most filter bits (64 MiB).
    const MAX_BITS: usize = 1 << 29;

    fn new(len: usize) -> Self {
        let bits = len.next_power_of_two().clamp(64, Self::MAX_BITS);
        Filter {
            bits: vec![0; bits / 64],
            mask: bits as u64 - 1,
        }
    }

    fn slot(&self, gram: &[u8]) -> (usize, u64) {
        let mut word = [0u8; 8];
        word.copy_from_slice(gram);
        let hash = u64::from_le_bytes(word).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
        let bit = hash & self.mask;
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    fn insert(&mut self, gram: &[u8]) {
        let (word, bit) = self.slot(gram);
        self.bits[word] |= bit;
    }

    fn contains(&self, gram: &[u8]) -> bool {
        let (word, bit) = self.slot(gram);
        self.bits[word] & bit != 0
    }
}

/// How many leading bytes `a` and `b` share, eight at a time.
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let len = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= len {
        let mut x = [0u8; 8];
        let mut y = [0u8; 8];
        x.copy_from_slice(&a[i..i + 8]);
        y.copy_from_slice(&b[i..i + 8]);
        let diff = u64::from_le_bytes(x) ^ u64::from_le_bytes(y);
        if diff != 0 {
            return i + (diff.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < len && a[i] == b[i] {
        i += 1;
    }
    i
}

/// bsdiff's scan of `new` against one index, appending segments (base positions offset by
/// `base_offset`) that cover all of `new`.
fn scan(
    index: &Index<'_>,
    base_offset: u64,
    new: &[u8],
    segments: &mut Vec<Segment>,
    clock: &mut Clock,
) -> Result<(), OutOfTime> {
    let old = index.old;
    // Whether new[at] equals the old byte `offset` away (the current alignment).
    let aligned = |at: usize, offset: isize| -> bool {
        at.checked_add_signed(offset)
            .and_then(|i| old.get(i))
            .is_some_and(|&b| b == new[at])
    };
    let (mut scan, mut len, mut pos) = (0usize, 0usize, 0usize);
    let (mut last_scan, mut last_pos, mut last_offset) = (0usize, 0usize, 0isize);
    while scan < new.len() {
        let mut old_score: i64 = 0;
        scan += len;
        let mut counted = scan;
        while scan < new.len() {
            clock.tick()?;
            (pos, len) = index.longest(&new[scan..]);
            while counted < scan + len {
                old_score += i64::from(aligned(counted, last_offset));
                counted += 1;
            }
            let len_score = len as i64;
            if (len_score == old_score && len != 0)
                || (len_score > old_score + 8 && len >= MIN_MATCH)
            {
                break;
            }
            if len > RESCAN_TAIL {
                // Mostly the current alignment: skip to near the end of this match.
                let until = scan + len - RESCAN_TAIL;
                while scan < until {
                    old_score -= i64::from(aligned(scan, last_offset));
                    scan += 1;
                }
                continue;
            }
            old_score -= i64::from(aligned(scan, last_offset));
            scan += 1;
        }
        if len as i64 == old_score && scan != new.len() {
            continue;
        }
        // Forward extension of the previous match, with differences.
        let (mut matched, mut best, mut forward) = (0i64, 0i64, 0usize);
        let mut i = 0;
        while last_scan + i < scan && last_pos + i < old.len() {
            matched += i64::from(old[last_pos + i] == new[last_scan + i]);
            i += 1;
            if matched * 2 - i as i64 > best * 2 - forward as i64 {
                best = matched;
                forward = i;
            }
        }
        // Backward extension of the new match.
        let mut backward = 0usize;
        if scan < new.len() {
            let (mut matched, mut best) = (0i64, 0i64);
            let mut i = 1;
            while scan >= last_scan + i && pos >= i {
                matched += i64::from(old[pos - i] == new[scan - i]);
                if matched * 2 - i as i64 > best * 2 - backward as i64 {
                    best = matched;
                    backward = i;
                }
                i += 1;
            }
        }
        // Where the two overlap, split them where the score is best.
        if last_scan + forward > scan - backward {
            let overlap = (last_scan + forward) - (scan - backward);
            let (mut score, mut best, mut keep) = (0i64, 0i64, 0usize);
            for i in 0..overlap {
                score += i64::from(
                    new[last_scan + forward - overlap + i] == old[last_pos + forward - overlap + i],
                );
                score -= i64::from(new[scan - backward + i] == old[pos - backward + i]);
                if score > best {
                    best = score;
                    keep = i + 1;
                }
            }
            forward = forward + keep - overlap;
            backward -= keep;
        }
        let copy = (scan - backward) - (last_scan + forward);
        // A segment that produces nothing only moved the base position, which the next
        // segment states anyway (the decoders accept few of them).
        if forward > 0 || copy > 0 {
            segments.push(Segment {
                base: base_offset + last_pos as u64,
                add: forward as u64,
                copy: copy as u64,
            });
        }
        last_scan = scan - backward;
        last_pos = pos - backward;
        last_offset = pos as isize - scan as isize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::tests::noise;

    /// Rebuilds the target from the base and the segments, as the decoder would.
    fn rebuild(base: &[u8], target: &[u8], segments: &[Segment]) -> Vec<u8> {
        let mut out = Vec::new();
        for s in segments {
            let (from, add) = (s.base as usize, s.add as usize);
            // The add takes base bytes plus diff bytes: rebuilding with the target's own bytes
            // only checks that the ranges are in bounds and cover the target.
            assert!(from + add <= base.len());
            let at = out.len();
            out.extend_from_slice(&target[at..at + add + s.copy as usize]);
        }
        out
    }

    /// Searches with `window` and `threads`; checks the segments cover the target and copy
    /// fewer than `most` literal bytes.
    fn assert_found(base: &[u8], target: &[u8], window: usize, threads: usize, most: u64) {
        let segments = search(base, target, window, threads, None).unwrap();
        assert_eq!(rebuild(base, target, &segments), target);
        let literal: u64 = segments.iter().map(|s| s.copy).sum();
        assert!(literal < most, "{literal} literal bytes");
    }

    #[test]
    fn segments_cover_the_target_and_mostly_reuse_the_base() {
        let base = noise(1, 200_000);
        let mut target = base[50_000..].to_vec();
        target.extend_from_slice(&noise(2, 1000));
        target.extend_from_slice(&base[..50_000]);
        assert_found(&base, &target, MAX_WINDOW, 1, 2000);
    }

    #[test]
    fn long_runs_and_empty_inputs() {
        let base = vec![0u8; 100_000];
        let mut target = vec![0u8; 150_000];
        target[70_000] = 1;
        let segments = search(&base, &target, MAX_WINDOW, 1, None).unwrap();
        assert_eq!(rebuild(&base, &target, &segments), target);
        assert!(search(&base, &[], MAX_WINDOW, 1, None).unwrap().is_empty());
        let segments = search(&[], &target, MAX_WINDOW, 1, None).unwrap();
        assert_eq!(rebuild(&[], &target, &segments), target);
    }

    #[test]
    fn a_small_window_still_finds_the_matches() {
        let base = noise(3, 300_000);
        let mut target = base.clone();
        target[150_000..150_100].fill(7);
        assert_found(&base, &target, 64 * 1024, 1, 1000);
    }

    #[test]
    fn parallel_parts_cover_the_target() {
        let base = noise(5, 400_000);
        let mut target = base.clone();
        target[200_000..200_050].fill(9);
        assert_found(&base, &target, MAX_WINDOW, 3, 1000);
    }

    #[test]
    fn a_past_deadline_stops_the_search() {
        let base = noise(4, 100_000);
        let past = Instant::now();
        assert_eq!(
            search(&base, &base, MAX_WINDOW, 1, Some(past)),
            Err(OutOfTime)
        );
    }

    #[test]
    fn common_prefix_counts_bytes() {
        assert_eq!(common_prefix(b"abcdefghij", b"abcdefghiX"), 9);
        assert_eq!(common_prefix(b"abc", b"abcdef"), 3);
        assert_eq!(common_prefix(b"", b"x"), 0);
        assert_eq!(common_prefix(b"abcdXfgh", b"abcdefgh"), 4);
    }
}
