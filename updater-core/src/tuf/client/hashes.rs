//! Checking downloaded bytes against the lengths and hashes signed metadata lists for them.
//!
//! This file exists because the same checks guard metadata files (5.5.2, 5.6.2: the length
//! and hashes the timestamp or snapshot lists, checked before parsing) and targets (5.7.3:
//! their signed length and every hash of a known algorithm).

use std::collections::BTreeMap;

use sha2::Digest;

use crate::error::{Error, Result};
use crate::tuf::metadata::{MetaFile, TargetFile};

/// The download cap for the file `meta` describes: its signed length, but never more than
/// the fixed `limit`. A signed length is what the signer claims; the cap is what this client
/// is willing to hold in memory, so a role with a stolen key cannot lift it.
pub(super) fn capped(meta: &MetaFile, limit: u64) -> u64 {
    meta.length.map_or(limit, |length| length.min(limit))
}

/// Checks `bytes` against the length and hashes listed in `meta`, where listed.
pub(super) fn check_meta_file(meta: &MetaFile, bytes: &[u8], what: &str) -> Result<()> {
    if let Some(length) = meta.length
        && length != bytes.len() as u64
    {
        return Err(Error::Mismatch {
            what: what.to_string(),
            kind: "length",
            expected: length.to_string(),
            actual: bytes.len().to_string(),
        });
    }
    if let Some(hashes) = &meta.hashes {
        check_hashes(hashes, bytes, what, false)?;
    }
    Ok(())
}

/// Checks `bytes` against every known algorithm in `hashes`. With `require_known`, a list
/// with no algorithm we know is refused (a target must be verifiable).
pub fn check_hashes(
    hashes: &BTreeMap<String, String>,
    bytes: &[u8],
    what: &str,
    require_known: bool,
) -> Result<()> {
    let mut checked = 0;
    for (algorithm, expected) in hashes {
        let actual = match algorithm.as_str() {
            "sha256" => hex::encode(sha2::Sha256::digest(bytes)),
            "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
            _ => continue,
        };
        checked += 1;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(Error::Mismatch {
                what: what.to_string(),
                kind: if algorithm == "sha256" {
                    "sha256"
                } else {
                    "sha512"
                },
                expected: expected.clone(),
                actual,
            });
        }
    }
    if require_known && checked == 0 {
        return Err(Error::format(
            what,
            "field `hashes` lists no supported algorithm (sha256, sha512)",
        ));
    }
    Ok(())
}

/// Checks a downloaded target against its signed length and hashes.
pub fn check_target(target: &TargetFile, bytes: &[u8], what: &str) -> Result<()> {
    if target.length != bytes.len() as u64 {
        return Err(Error::Mismatch {
            what: what.to_string(),
            kind: "length",
            expected: target.length.to_string(),
            actual: bytes.len().to_string(),
        });
    }
    check_hashes(&target.hashes, bytes, what, true)
}
