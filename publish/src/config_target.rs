//! The small signed config targets of the top-level targets role: `_appstart/receipts.json`
//! (`repo receipts`), `_appstart/mirrors.json` (`repo mirrors`) and `_appstart/push.json`
//! (`repo push`). Each decides where every install of the fleet connects, so each comes from
//! the publisher's keys, not from whoever serves the repository; clients read them only
//! from the top-level role, never from a delegated one.
//!
//! Each is a real file under `targets/` whose content is the config JSON, stored under its
//! consistent-snapshot name `targets/_appstart/<sha256>.<name>.json` (so TUF clients such as
//! python-tuf can fetch it), with its length and SHA-256 in the entry and the config again
//! as the entry's `custom` (what appstart clients read: no extra request).
//!
//! A change, in the publish write order ([`super`], steps 1 to 3), after the caller checked
//! the config (step 1's first half):
//! 1. under the publish lock, the targets, snapshot and timestamp keys are loaded (a missing
//!    one fails before any file is written);
//! 2. the config file is written under its hashed name (nothing refers to it yet);
//! 3. the top-level targets role is written with the entry added, replaced or removed, then
//!    the snapshot, and `timestamp.json` last by atomic rename.

use std::collections::BTreeMap;
use std::time::SystemTime;

use appstart_layout::fsutil;
use serde_json::{Map, Value};
use sha2::Digest;

use super::{Expiry, Repository};
use updater_core::advanced::tuf::keys::KeyDir;
use updater_core::advanced::tuf::metadata::{TargetFile, expires_in_days};
use updater_core::{Error, Result};

impl Repository {
    /// Sets the config target `name` to `config` (`None`: removes it), re-signing targets,
    /// snapshot and timestamp with `keys`. Returns the new targets version, or `None` when
    /// the metadata already said so (nothing is signed then).
    pub(crate) fn set_config_target(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        name: &str,
        config: Option<Value>,
    ) -> Result<Option<u64>> {
        // Step 1.
        let _lock = self.lock()?;
        keys.role_keys("targets")?;
        keys.role_keys("snapshot")?;
        keys.role_keys("timestamp")?;
        let (mut targets, snapshot) = self.current_targets()?;
        // Step 2.
        let entry = config
            .map(|config| self.write_config_target(name, config))
            .transpose()?;
        if targets.targets.get(name) == entry.as_ref() {
            return Ok(None);
        }
        // Step 3.
        match entry {
            Some(entry) => targets.targets.insert(name.to_string(), entry),
            None => targets.targets.remove(name),
        };
        targets.version += 1;
        targets.expires = expires_in_days(SystemTime::now(), expiry.targets_days);
        self.write_targets_snapshot_timestamp(keys, expiry, &targets, Some(&snapshot))?;
        Ok(Some(targets.version))
    }

    /// Step 2: writes `config` as `targets/<dir>/<sha256>.<base>` for the target `name`
    /// (`<dir>/<base>`) and returns its target entry.
    fn write_config_target(&self, name: &str, config: Value) -> Result<TargetFile> {
        let bytes =
            serde_json::to_vec(&config).map_err(|e| Error::Invalid(format!("{name}: {e}")))?;
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        let (dir, base) = name.rsplit_once('/').unwrap_or(("", name));
        let path = self
            .root
            .join("targets")
            .join(dir)
            .join(format!("{sha256}.{base}"));
        fsutil::create_dir_all(&fsutil::parent_of(&path))?;
        fsutil::write_atomic(&path, &bytes)?;
        let mut hashes = BTreeMap::new();
        hashes.insert("sha256".to_string(), sha256);
        Ok(TargetFile {
            length: bytes.len() as u64,
            hashes,
            custom: Some(config),
            extra: Map::new(),
        })
    }
}

/// `config` as the JSON a config target holds.
pub(crate) fn config_json(name: &str, config: &impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(config).map_err(|e| Error::Invalid(format!("{name}: {e}")))
}
