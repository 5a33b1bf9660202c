//! TUF metadata as serde types.
//!
//! Every struct keeps fields it does not know in `extra`, so a file written by another TUF
//! implementation survives a read-modify-write here. Signature checks never use these types:
//! they run over the canonical form of the JSON exactly as received (see `sign`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A signed metadata file: `{"signatures": [...], "signed": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signed<T> {
    /// Signatures over the canonical JSON of `signed`.
    pub signatures: Vec<Signature>,
    /// The role's content.
    pub signed: T,
}

/// One signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signing key's id.
    pub keyid: String,
    /// Hex-encoded signature.
    pub sig: String,
}

/// A public key as it appears in root (or a delegating targets role).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    /// `ed25519`, `ecdsa`, `rsa`, ...
    pub keytype: String,
    /// `ed25519`, `ecdsa-sha2-nistp256`, `rsassa-pss-sha256`, ...
    pub scheme: String,
    /// The public value.
    pub keyval: KeyValue,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A key's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    /// Public key (hex for ed25519, PEM for ECDSA and RSA).
    pub public: String,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Which keys may sign a role and how many must.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    /// Key ids allowed to sign.
    pub keyids: Vec<String>,
    /// Distinct valid signatures required.
    pub threshold: u64,
}

/// The root role: the keys of every top-level role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Root {
    /// Always `root`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF version of the writer.
    pub spec_version: String,
    /// Whether metadata and targets are stored under versioned and hashed names.
    pub consistent_snapshot: bool,
    /// Increments by one at each change.
    pub version: u64,
    /// RFC 3339 expiry.
    pub expires: String,
    /// Public keys by key id.
    pub keys: BTreeMap<String, Key>,
    /// Keys and threshold of `root`, `targets`, `snapshot`, `timestamp`.
    pub roles: BTreeMap<String, RoleKeys>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the timestamp or snapshot says about another metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    /// The file's version.
    pub version: u64,
    /// Its length in bytes, if listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Its hashes, if listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The timestamp role: which snapshot is current. Short-lived, re-signed often.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timestamp {
    /// Always `timestamp`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF version of the writer.
    pub spec_version: String,
    /// Version.
    pub version: u64,
    /// RFC 3339 expiry.
    pub expires: String,
    /// Exactly one entry: `snapshot.json`.
    pub meta: BTreeMap<String, MetaFile>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The snapshot role: the version of every targets metadata file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always `snapshot`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF version of the writer.
    pub spec_version: String,
    /// Version.
    pub version: u64,
    /// RFC 3339 expiry.
    pub expires: String,
    /// `targets.json` and every delegated role's file.
    pub meta: BTreeMap<String, MetaFile>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A target file: its length, hashes and application-defined fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetFile {
    /// Length in bytes.
    pub length: u64,
    /// Hashes by algorithm (`sha256`, `sha512`).
    pub hashes: BTreeMap<String, String>,
    /// Application fields (appstart: app, version, channel, platform, executable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The targets role: the files clients may install.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Targets {
    /// Always `targets`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF version of the writer.
    pub spec_version: String,
    /// Version.
    pub version: u64,
    /// RFC 3339 expiry.
    pub expires: String,
    /// Target files by name.
    pub targets: BTreeMap<String, TargetFile>,
    /// Delegations to other targets roles, kept as JSON (followed by the delegation walk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Value>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Common accessors of the four roles.
pub trait Role: for<'de> Deserialize<'de> + Serialize {
    /// The role's `_type`.
    const TYPE: &'static str;
    /// Its `_type` field as found.
    fn type_field(&self) -> &str;
    /// Its version.
    fn version(&self) -> u64;
    /// Its expiry (RFC 3339).
    fn expires(&self) -> &str;
    /// Its `spec_version`.
    fn spec_version(&self) -> &str;
}

macro_rules! role {
    ($ty:ty, $name:literal) => {
        impl Role for $ty {
            const TYPE: &'static str = $name;
            fn type_field(&self) -> &str {
                &self.type_
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn expires(&self) -> &str {
                &self.expires
            }
            fn spec_version(&self) -> &str {
                &self.spec_version
            }
        }
    };
}
role!(Root, "root");
role!(Timestamp, "timestamp");
role!(Snapshot, "snapshot");
role!(Targets, "targets");

/// Parses an RFC 3339 expiry.
pub fn parse_expires(role: &str, value: &str) -> Result<SystemTime> {
    humantime::parse_rfc3339(value).map_err(|e| {
        Error::format(
            format!("{role} metadata"),
            format!("field `expires` {value:?}: {e}"),
        )
    })
}

/// Formats an expiry `days` from `now` as TUF writes it: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn expires_in_days(now: SystemTime, days: u64) -> String {
    humantime::format_rfc3339_seconds(now + std::time::Duration::from_secs(days * 86_400))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_round_trips() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let text = expires_in_days(now, 1);
        assert_eq!(text, "2023-11-15T22:13:20Z");
        let parsed = parse_expires("root", &text).unwrap();
        assert_eq!(parsed, now + std::time::Duration::from_secs(86_400));
        assert!(parse_expires("root", "tomorrow").is_err());
    }
}
