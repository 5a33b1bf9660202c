//! Signing and writing the top-level metadata (root, targets, snapshot, timestamp) in the
//! order that keeps the repository consistent for readers.

use super::{Expiry, Repository};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use appstart_layout::fsutil;
use serde_json::Map;
use sha2::Digest;

use updater_core::advanced::tuf;
use updater_core::{Error, Result};

use updater_core::advanced::tuf::SPEC_VERSION;
use updater_core::advanced::tuf::keys::{KeyDir, TOP_LEVEL_ROLES, key_id};
use updater_core::advanced::tuf::metadata::{
    MetaFile, Role, RoleKeys, Root, Snapshot, Targets, Timestamp, expires_in_days,
};
use updater_core::advanced::tuf::sign::{Envelope, sign_metadata};

/// A root naming every key `keys` has for each top-level role, with `thresholds`.
pub(super) fn build_root(
    keys: &KeyDir,
    thresholds: &BTreeMap<String, u64>,
    version: u64,
    expires: String,
) -> Result<Root> {
    let mut root_keys = BTreeMap::new();
    let mut roles = BTreeMap::new();
    for role in TOP_LEVEL_ROLES {
        let mut keyids = Vec::new();
        for key in keys.role_keys(role)? {
            let public = key.public_key();
            let id = key_id(&public);
            root_keys.insert(id.clone(), public);
            if !keyids.contains(&id) {
                keyids.push(id);
            }
        }
        let threshold = thresholds.get(role).copied().unwrap_or(1);
        if threshold == 0 || threshold > keyids.len() as u64 {
            return Err(Error::Invalid(format!(
                "threshold {threshold} for the {role} role needs at least that many {role} keys (found {}); add some with `appupdate keys generate --role {role}`",
                keyids.len()
            )));
        }
        roles.insert(role.to_string(), RoleKeys { keyids, threshold });
    }
    Ok(Root {
        type_: "root".into(),
        spec_version: SPEC_VERSION.into(),
        consistent_snapshot: true,
        version,
        expires,
        keys: root_keys,
        roles,
        extra: Map::new(),
    })
}

/// Signs `value` with every key of `role`.
pub(super) fn sign_role<T: serde::Serialize>(
    keys: &KeyDir,
    role: &str,
    value: &T,
) -> Result<Vec<u8>> {
    let signers = keys.role_keys(role)?;
    let refs: Vec<&tuf::keys::SigningKey> = signers.iter().collect();
    sign_metadata(value, &refs)
}

impl Repository {
    /// KEYDIR's keys for the top-level `role` (not root), once the repository's root is
    /// known to count enough of them: signatures from keys the root
    /// does not list would publish metadata every client refuses (say after `repo rotate`,
    /// with the keys from before it). Checked before any role is written, so the timestamp,
    /// and what clients see, stay as they were.
    fn trusted_signers(&self, keys: &KeyDir, role: &str) -> Result<Vec<tuf::keys::SigningKey>> {
        let root_path = self.metadata_dir().join("root.json");
        let root: Root = read_role(&root_path)?;
        let signers = keys.role_keys(role)?;
        if let Some(wanted) = root.roles.get(role) {
            let mut listed: Vec<String> = signers
                .iter()
                .map(|key| key.key_id())
                .filter(|id| wanted.keyids.contains(id))
                .collect();
            listed.sort();
            listed.dedup();
            if (listed.len() as u64) < wanted.threshold.max(1) {
                return Err(Error::Invalid(format!(
                    "the {role} key(s) in {} are not the repository's: its root ({}, version {}) lists {} of them for {role}, and needs {} (sign with the keys of `repo init` or of the last `repo rotate`)",
                    keys.path(role)
                        .parent()
                        .map_or_else(|| keys.path(role), Path::to_path_buf)
                        .display(),
                    root_path.display(),
                    root.version,
                    listed.len(),
                    wanted.threshold
                )));
            }
        }
        Ok(signers)
    }

    /// Checks KEYDIR's keys for each of `roles` ([`Repository::trusted_signers`]) before
    /// anything is written.
    pub(super) fn check_signers(&self, keys: &KeyDir, roles: &[&str]) -> Result<()> {
        roles
            .iter()
            .try_for_each(|role| self.trusted_signers(keys, role).map(drop))
    }
}

pub(super) fn meta_file(version: u64, bytes: &[u8]) -> MetaFile {
    let mut hashes = BTreeMap::new();
    hashes.insert(
        "sha256".to_string(),
        hex::encode(sha2::Sha256::digest(bytes)),
    );
    MetaFile {
        version,
        length: Some(bytes.len() as u64),
        hashes: Some(hashes),
        extra: Map::new(),
    }
}

/// Reads a role from the publisher's own disk (it is ours, so only its shape is checked).
pub(super) fn read_role<T: Role>(path: &Path) -> Result<T> {
    let bytes = fsutil::read(path)?;
    Envelope::parse(&bytes, &path.display().to_string())?.decode(&path.display().to_string())
}

impl Repository {
    /// The current targets and snapshot, read through the timestamp as a client would.
    pub(super) fn current_targets(&self) -> Result<(Targets, Snapshot)> {
        let metadata = self.metadata_dir();
        let timestamp: Timestamp = read_role(&metadata.join("timestamp.json"))?;
        let snapshot_version = timestamp
            .meta
            .get("snapshot.json")
            .map(|m| m.version)
            .ok_or_else(|| {
                Error::format("timestamp.json", "field `meta` has no `snapshot.json`")
            })?;
        let snapshot: Snapshot =
            read_role(&metadata.join(format!("{snapshot_version}.snapshot.json")))?;
        let targets_version = snapshot
            .meta
            .get("targets.json")
            .map(|m| m.version)
            .ok_or_else(|| Error::format("snapshot.json", "field `meta` has no `targets.json`"))?;
        let targets: Targets =
            read_role(&metadata.join(format!("{targets_version}.targets.json")))?;
        Ok((targets, snapshot))
    }

    pub(super) fn write_targets_snapshot_timestamp(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        targets: &Targets,
        previous_snapshot: Option<&Snapshot>,
    ) -> Result<()> {
        self.check_signers(keys, &["targets", "snapshot", "timestamp"])?;
        let metadata = self.metadata_dir();
        let targets_bytes = sign_role(keys, "targets", targets)?;
        fsutil::write_atomic(
            &metadata.join(format!("{}.targets.json", targets.version)),
            &targets_bytes,
        )?;
        let mut meta = previous_snapshot
            .map(|s| s.meta.clone())
            .unwrap_or_default();
        meta.insert(
            "targets.json".into(),
            meta_file(targets.version, &targets_bytes),
        );
        let snapshot = Snapshot {
            type_: "snapshot".into(),
            spec_version: SPEC_VERSION.into(),
            version: previous_snapshot.map_or(1, |s| s.version + 1),
            expires: expires_in_days(SystemTime::now(), expiry.snapshot_days),
            meta,
            extra: Map::new(),
        };
        self.write_snapshot_timestamp(keys, expiry, &snapshot)?;
        Ok(())
    }

    pub(super) fn write_snapshot_timestamp(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        snapshot: &Snapshot,
    ) -> Result<u64> {
        self.check_signers(keys, &["snapshot", "timestamp"])?;
        let metadata = self.metadata_dir();
        let snapshot_bytes = sign_role(keys, "snapshot", snapshot)?;
        fsutil::write_atomic(
            &metadata.join(format!("{}.snapshot.json", snapshot.version)),
            &snapshot_bytes,
        )?;
        let previous_version = read_role::<Timestamp>(&metadata.join("timestamp.json"))
            .map(|t| t.version)
            .unwrap_or(0);
        let mut meta = BTreeMap::new();
        meta.insert(
            "snapshot.json".into(),
            meta_file(snapshot.version, &snapshot_bytes),
        );
        let timestamp = Timestamp {
            type_: "timestamp".into(),
            spec_version: SPEC_VERSION.into(),
            version: previous_version + 1,
            expires: expires_in_days(SystemTime::now(), expiry.timestamp_days),
            meta,
            extra: Map::new(),
        };
        let timestamp_bytes = sign_role(keys, "timestamp", &timestamp)?;
        // The one switch that makes everything above visible.
        fsutil::write_atomic(&metadata.join("timestamp.json"), &timestamp_bytes)?;
        Ok(timestamp.version)
    }
}
