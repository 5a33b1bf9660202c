//! A cheap estimate of how much of a target also occurs in a base, taken before any delta
//! search: a 40 MB file of random bytes must be turned down in milliseconds, not diffed for
//! minutes.
//!
//! Both files are cut at content-defined anchors (where a gear rolling hash of the last bytes
//! has its low [`ANCHOR_BITS`] bits zero, at least [`MIN_GAP`] bytes apart), so the same
//! content gives the same anchors wherever it moved. The [`BLOCK`] bytes before each anchor
//! are hashed; the estimate is the share of the target's blocks whose hash is among the
//! base's. One pass over each file and a sort of one hash per 64 base bytes (an eighth of the
//! base's size in memory, at most).
//!
//! Random or encrypted content shares no block with anything (zero); two builds of the same
//! program share most (the uv 0.5.10 → 0.5.11 binary: see docs/benchmarks.md).

/// Anchors are where the low this-many bits of the rolling hash are zero (one in 64 bytes).
const ANCHOR_BITS: u32 = 6;

/// Fewest bytes between two anchors, so a run of one byte value gives no more anchors than
/// other data.
const MIN_GAP: usize = 32;

/// Bytes hashed before each anchor.
const BLOCK: usize = 32;

/// What [`estimate`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Similarity {
    /// Blocks sampled in the target.
    pub sampled: usize,
    /// Of those, how many also occur in the base.
    pub shared: usize,
}

impl Similarity {
    /// The shared share, in per mille (0 when nothing was sampled).
    pub(crate) fn per_mille(&self) -> u64 {
        (self.shared as u64 * 1000)
            .checked_div(self.sampled as u64)
            .unwrap_or(0)
    }
}

/// Estimates how much of `target` occurs in `base` (see the module docs).
pub(crate) fn estimate(base: &[u8], target: &[u8]) -> Similarity {
    let mut known = Vec::with_capacity(base.len() / 64);
    anchors(base, |hash| known.push(hash));
    known.sort_unstable();
    known.dedup();
    let mut similarity = Similarity {
        sampled: 0,
        shared: 0,
    };
    anchors(target, |hash| {
        similarity.sampled += 1;
        similarity.shared += usize::from(known.binary_search(&hash).is_ok());
    });
    similarity
}

/// Calls `found` with the hash of the block before each anchor of `data`.
fn anchors(data: &[u8], mut found: impl FnMut(u64)) {
    let mask = (1u64 << ANCHOR_BITS) - 1;
    let mut rolling = 0u64;
    let mut last = 0usize;
    for (i, &byte) in data.iter().enumerate() {
        rolling = (rolling << 1).wrapping_add(GEAR[usize::from(byte)]);
        let end = i + 1;
        if end >= last + MIN_GAP && end >= BLOCK && (rolling >> 40) & mask == 0 {
            found(block_hash(&data[end - BLOCK..end]));
            last = end;
        }
    }
}

fn block_hash(block: &[u8]) -> u64 {
    let mut hash = 0xCBF2_9CE4_8422_2325u64;
    for word in block.chunks(8) {
        let mut bytes = [0u8; 8];
        bytes[..word.len()].copy_from_slice(word);
        hash = (hash ^ u64::from_le_bytes(bytes)).wrapping_mul(0x0000_0100_0000_01B3);
        hash ^= hash >> 29;
    }
    hash
}

/// The gear table: one pseudo-random 64-bit value per byte (splitmix64 of the byte).
const GEAR: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut z = (i as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        table[i] = z ^ (z >> 31);
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::tests::noise;

    #[test]
    fn shifted_content_is_similar_and_unrelated_content_is_not() {
        let base = noise(1, 500_000);
        let mut target = noise(2, 777);
        target.extend_from_slice(&base[1000..400_000]);
        let similar = estimate(&base, &target);
        assert!(similar.sampled > 1000, "{similar:?}");
        assert!(similar.per_mille() > 900, "{similar:?}");
        let unrelated = estimate(&base, &noise(3, 500_000));
        assert!(unrelated.sampled > 1000, "{unrelated:?}");
        assert_eq!(unrelated.shared, 0, "{unrelated:?}");
    }

    #[test]
    fn runs_of_one_byte_give_bounded_anchors() {
        let zeros = vec![0u8; 64_000];
        let similarity = estimate(&zeros, &zeros);
        assert!(similarity.sampled <= zeros.len() / MIN_GAP);
        assert_eq!(estimate(&[], &[]).per_mille(), 0);
    }
}
