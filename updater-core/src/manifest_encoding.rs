//! Smaller forms of a release manifest: zstd-compressed, and zstd deltas against the manifests
//! of earlier releases (issue 14: "the manifest costs what changed").
//!
//! A manifest lists every file with two BLAKE3 hashes, about 227 bytes a file, and is needed
//! for every update. Sent whole, a 10,000-file release costs 2.3 MB of manifest for an update
//! that changes 200 KB of content. So the publisher also writes:
//! - `<sha256>.manifest.json.zst`: the manifest, zstd-compressed;
//! - `<sha256>.manifest.json.zst-patch`: one per earlier release of the same app, channel and
//!   platform (`--delta-depth` of them): the manifest compressed with that release's manifest
//!   as reference prefix (`zstd --patch-from`), a few KB when few files changed;
//!
//! each named by the SHA-256 of its own bytes, next to the manifest under `targets/`, and
//! listed with length and SHA-256 in the release target's signed `custom` object
//! ([`ManifestEncodings`]). They are not TUF targets: other TUF clients ignore `custom`
//! fields they do not know, and old appstart clients fetch the plain manifest as before.
//!
//! The compressed manifest is also written as the first bytes of the release's pack
//! (`manifest_in_pack`), the pack's blob slices following it (their offsets in the manifest
//! count from the end of that prefix), so a fresh install reads manifest and content from one
//! response.
//!
//! Security: every byte is checked against the signed length and SHA-256 *before* it is
//! decoded; the decoder output is capped at the signed manifest length and must have the
//! manifest's signed SHA-256 (`check_target`). A client that cannot use a smaller form (no
//! matching base, a download or check that fails) falls back to the next: delta, compressed,
//! plain.

use std::io::Read;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Key of the compressed manifest in the release target's `custom` object.
pub const ZST_KEY: &str = "manifest_zst";
/// Key of the manifest deltas in the release target's `custom` object.
pub const DELTAS_KEY: &str = "manifest_deltas";
/// Key of the pack that begins with the compressed manifest, in the release target's `custom`.
pub const IN_PACK_KEY: &str = "manifest_in_pack";
/// File-name suffix of the compressed manifest (after `<sha256>.`).
pub const ZST_SUFFIX: &str = "manifest.json.zst";
/// File-name suffix of a manifest delta (after `<sha256>.`).
pub const DELTA_SUFFIX: &str = "manifest.json.zst-patch";

/// A file listed in `custom`: its length and the SHA-256 of its bytes (which also names it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodedFile {
    /// Length in bytes.
    pub length: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
}

/// A manifest delta listed in `custom`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestDelta {
    /// SHA-256 of the manifest (exact bytes) it is a delta from.
    pub base_sha256: String,
    /// Length in bytes of the delta.
    pub length: u64,
    /// SHA-256 of the delta.
    pub sha256: String,
}

/// The smaller forms of one release's manifest, as its target's `custom` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManifestEncodings {
    /// The compressed manifest.
    pub zst: Option<EncodedFile>,
    /// Deltas from earlier releases' manifests.
    pub deltas: Vec<ManifestDelta>,
    /// The release's pack (repository path under `packs/`), when its first `zst.length`
    /// bytes are the compressed manifest and its blob slices follow them: a fresh install
    /// then gets manifest and content in one request.
    pub in_pack: Option<String>,
}

impl ManifestEncodings {
    /// Reads the encodings from a release target's `custom` object. A field that does not
    /// parse is treated as absent (the client then takes the plain manifest), with a warning.
    pub fn from_custom(custom: Option<&Value>, what: &str) -> Self {
        let Some(Value::Object(map)) = custom else {
            return Self::default();
        };
        let zst = map
            .get(ZST_KEY)
            .and_then(|v| parse_or_warn::<EncodedFile>(v, ZST_KEY, what))
            .filter(|f| valid_sha256(&f.sha256));
        let deltas = map
            .get(DELTAS_KEY)
            .and_then(|v| parse_or_warn::<Vec<ManifestDelta>>(v, DELTAS_KEY, what))
            .unwrap_or_default()
            .into_iter()
            .filter(|d| valid_sha256(&d.sha256) && valid_sha256(&d.base_sha256))
            .collect();
        let in_pack = map
            .get(IN_PACK_KEY)
            .and_then(|v| parse_or_warn::<String>(v, IN_PACK_KEY, what))
            .filter(|path| {
                let valid = path.starts_with("packs/")
                    && path.ends_with(".pack")
                    && appstart_layout::RelativePath::parse(path).is_ok();
                if !valid {
                    log::warn!("{what}: ignoring custom field `{IN_PACK_KEY}`: not a pack path");
                }
                valid
            })
            .filter(|_| zst.is_some());
        ManifestEncodings {
            zst,
            deltas,
            in_pack,
        }
    }

    /// `custom` with the encodings added (the publisher's side).
    pub fn added_to(&self, mut custom: Value) -> Result<Value> {
        self.add_to(&mut custom)?;
        Ok(custom)
    }

    /// Adds the encodings to a `custom` object.
    pub fn add_to(&self, custom: &mut Value) -> Result<()> {
        let Value::Object(map) = custom else {
            return Err(Error::Invalid(
                "a release's custom field is not an object".into(),
            ));
        };
        if let Some(zst) = &self.zst {
            map.insert(ZST_KEY.into(), to_value(zst)?);
        }
        if !self.deltas.is_empty() {
            map.insert(DELTAS_KEY.into(), to_value(&self.deltas)?);
        }
        if let Some(pack) = &self.in_pack {
            map.insert(IN_PACK_KEY.into(), Value::String(pack.clone()));
        }
        Ok(())
    }
}

fn to_value<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::Invalid(e.to_string()))
}

fn parse_or_warn<T: serde::de::DeserializeOwned>(
    value: &Value,
    key: &str,
    what: &str,
) -> Option<T> {
    match serde_json::from_value(value.clone()) {
        Ok(parsed) => Some(parsed),
        Err(err) => {
            log::warn!("{what}: ignoring custom field `{key}`: {err}");
            None
        }
    }
}

fn valid_sha256(hex: &str) -> bool {
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The file name of an encoded manifest: `<sha256>.<suffix>`.
pub fn file_name(sha256: &str, suffix: &str) -> String {
    format!("{sha256}.{suffix}")
}

/// The zstd window (log2) that covers `len` bytes: prefix and output together.
fn window_log(len: u64) -> u32 {
    let bits = u64::BITS - len.max(1).leading_zeros();
    bits.clamp(10, 31)
}

/// Compresses `manifest` with `base` (an earlier manifest) as reference prefix, or with no
/// prefix when `base` is empty.
pub fn encode(base: &[u8], manifest: &[u8], level: i32) -> Result<Vec<u8>> {
    use std::io::Write;
    let failed = |e: std::io::Error| Error::Invalid(format!("compressing a manifest: {e}"));
    let mut out = Vec::new();
    let mut encoder =
        zstd::stream::write::Encoder::with_ref_prefix(&mut out, level, base).map_err(failed)?;
    let covered = base.len() as u64 + manifest.len() as u64;
    encoder.window_log(window_log(covered)).map_err(failed)?;
    encoder
        .long_distance_matching(!base.is_empty())
        .map_err(failed)?;
    encoder.include_contentsize(true).map_err(failed)?;
    encoder.include_checksum(false).map_err(failed)?;
    encoder
        .set_pledged_src_size(Some(manifest.len() as u64))
        .map_err(failed)?;
    encoder.write_all(manifest).map_err(failed)?;
    encoder.finish().map_err(failed)?;
    Ok(out)
}

/// Output [`decode`] makes room for at once; beyond it, the buffer grows as the output comes.
const MAX_PRESIZE: u64 = 32 << 20;

/// Decodes `encoded` (already checked against its signed hash) with `base` as reference
/// prefix (empty: none), refusing output over `limit` bytes (the signed manifest length) and
/// a frame asking for a window beyond what base and output need.
pub fn decode(base: &[u8], encoded: &[u8], limit: u64, what: &str) -> Result<Vec<u8>> {
    let invalid = |e: std::io::Error| Error::format(what, format!("zstd: {e}"));
    let mut decoder =
        zstd::stream::read::Decoder::with_ref_prefix(encoded, base).map_err(invalid)?;
    decoder
        .window_log_max(window_log(base.len() as u64 + limit))
        .map_err(invalid)?;
    // `limit` is the manifest's signed length (capped): sized for it, not grown to it.
    let mut out =
        Vec::with_capacity(usize::try_from(limit.min(MAX_PRESIZE).saturating_add(1)).unwrap_or(0));
    decoder
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(invalid)?;
    if out.len() as u64 > limit {
        return Err(Error::TooLarge {
            url: what.to_string(),
            limit,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_round_trips_and_is_small() {
        let base: Vec<u8> = (0..20_000u32)
            .flat_map(|i| {
                format!(
                    "{{\"path\": \"f{i}\", \"blake3\": \"{:x}\"}}\n",
                    i.wrapping_mul(2654435761)
                )
                .into_bytes()
            })
            .collect();
        let mut target = base.clone();
        target[1000] = b'X';
        let delta = encode(&base, &target, 9).unwrap();
        assert!(
            delta.len() < 200,
            "delta of one byte is {} bytes",
            delta.len()
        );
        let limit = target.len() as u64;
        assert_eq!(decode(&base, &delta, limit, "t").unwrap(), target);
        // Output is capped at the signed length.
        assert!(matches!(
            decode(&base, &delta, limit - 1, "t"),
            Err(Error::TooLarge { .. })
        ));
        // Without the right base, the output differs (and fails the caller's hash check).
        let plain = encode(&[], &target, 9).unwrap();
        assert_eq!(decode(&[], &plain, limit, "t").unwrap(), target);
    }

    #[test]
    fn custom_fields_round_trip_and_bad_ones_are_ignored() {
        let encodings = ManifestEncodings {
            zst: Some(EncodedFile {
                length: 5,
                sha256: "a".repeat(64),
            }),
            deltas: vec![ManifestDelta {
                base_sha256: "b".repeat(64),
                length: 3,
                sha256: "c".repeat(64),
            }],
            in_pack: Some("packs/demo/stable/any/1.0.0.pack".into()),
        };
        let mut custom = serde_json::json!({"app": "demo"});
        encodings.add_to(&mut custom).unwrap();
        assert_eq!(
            ManifestEncodings::from_custom(Some(&custom), "t"),
            encodings
        );
        let bad = serde_json::json!({"manifest_zst": {"length": 5, "sha256": "../x"},
                                     "manifest_deltas": "no",
                                     "manifest_in_pack": "packs/demo/stable/any/1.0.0.pack"});
        assert_eq!(
            ManifestEncodings::from_custom(Some(&bad), "t"),
            ManifestEncodings::default()
        );
        // A pack path outside packs/ (or climbing out) is ignored.
        for path in ["blobs/x.pack", "packs/../metadata/root.pack", "packs/a.zst"] {
            let mut custom = serde_json::json!({"app": "demo"});
            encodings.add_to(&mut custom).unwrap();
            custom["manifest_in_pack"] = serde_json::json!(path);
            assert_eq!(
                ManifestEncodings::from_custom(Some(&custom), "t").in_pack,
                None,
                "{path}"
            );
        }
    }
}
