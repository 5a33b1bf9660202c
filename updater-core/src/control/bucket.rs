//! The rollout bucket: where an install falls, from 0.00 to 99.99, for one release.
//!
//! `bucket = (first 8 bytes of SHA-256("appstart-rollout:" + install_id + ":" + app + ":" +
//! version), big-endian) mod 10000 / 100`. The install is in the wave when `bucket <
//! percent`. The hash is uniform, so `percent` % of installs are in; it is deterministic, so
//! raising the percentage only adds installs; and it includes the version, so the same
//! installs are not always first. SHA-256 (not BLAKE3) so any TUF client can compute it
//! with its standard library.
//!
//! The enterprise policy's `rollout = "early" | "late"` maps the bucket into the lower or
//! upper half ([`RolloutRing`]): early installs are all in by 50 %, late ones only from 50 %
//! on; both stay monotone in the percentage.

use serde::{Deserialize, Serialize};
use sha2::Digest;

/// The bucket of `install_id` for `app` at `version`, 0.00 to 99.99.
pub fn bucket(install_id: &str, app: &str, version: &str) -> f64 {
    let digest = sha2::Sha256::digest(format!("appstart-rollout:{install_id}:{app}:{version}"));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 10_000) as f64 / 100.0
}

/// Where an administrator puts the machines of an organisation in every rollout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloutRing {
    /// Bucket halved: in the wave by 50 %.
    Early,
    /// The bucket as computed.
    #[default]
    Normal,
    /// Bucket moved to 50 + half: in the wave only from 50 % on.
    Late,
}

impl RolloutRing {
    /// The bucket this ring uses instead of `bucket`.
    pub fn apply(self, bucket: f64) -> f64 {
        match self {
            RolloutRing::Early => bucket / 2.0,
            RolloutRing::Normal => bucket,
            RolloutRing::Late => 50.0 + bucket / 2.0,
        }
    }

    /// `early`, `normal` or `late`.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutRing::Early => "early",
            RolloutRing::Normal => "normal",
            RolloutRing::Late => "late",
        }
    }
}

/// Whether an install at `bucket` is in a wave of `percent`.
pub fn in_wave(bucket: f64, percent: f64) -> bool {
    percent >= 100.0 || bucket < percent
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned so that other clients reading `docs/rollout.md` can check their own function.
    #[test]
    fn the_bucket_is_the_documented_hash() {
        let id = "00112233445566778899aabbccddeeff";
        let digest = sha2::Sha256::digest(format!("appstart-rollout:{id}:demo:2.0.0"));
        let expected =
            (u64::from_be_bytes(digest[..8].try_into().unwrap()) % 10_000) as f64 / 100.0;
        assert_eq!(bucket(id, "demo", "2.0.0"), expected);
        assert!((0.0..100.0).contains(&expected));
        assert_ne!(bucket(id, "demo", "2.0.0"), bucket(id, "demo", "2.0.1"));
    }

    #[test]
    fn buckets_are_spread_evenly_and_raising_the_percentage_only_adds() {
        let ids: Vec<String> = (0..4000u32)
            .map(|i| format!("{:032x}", u128::from(i) * 7919))
            .collect();
        let buckets: Vec<f64> = ids.iter().map(|id| bucket(id, "demo", "2.0.0")).collect();
        let in_at = |p: f64| buckets.iter().filter(|b| in_wave(**b, p)).count();
        let quarter = in_at(25.0);
        assert!((800..1200).contains(&quarter), "{quarter} of 4000 at 25 %");
        for b in &buckets {
            if in_wave(*b, 10.0) {
                assert!(in_wave(*b, 25.0));
            }
        }
        assert_eq!(in_at(100.0), 4000);
        assert_eq!(in_at(0.0), 0);
    }

    #[test]
    fn rings_move_installs_earlier_or_later() {
        for b in [0.0, 12.34, 49.99, 50.0, 99.99] {
            assert!(RolloutRing::Early.apply(b) < 50.0);
            assert!(RolloutRing::Late.apply(b) >= 50.0);
            assert!(in_wave(RolloutRing::Late.apply(b), 100.0));
        }
    }
}
