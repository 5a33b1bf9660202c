//! `appupdate repo mirrors`: naming, in signed metadata, the mirrors installs may fetch this
//! repository from (docs/hosting.md, "Mirrors").
//!
//! Why a signed target: a mirror is trusted for nothing the metadata does not verify, but
//! the list still decides which hosts every install of the fleet contacts, so it comes from
//! the publisher's keys, not from whoever serves the repository. It is the target
//! [`CONFIG_TARGET`] of the *top-level* targets role (clients never take it from a
//! delegated role), stored as the receipts URL is (`super::receipts`): a real file
//! `targets/_appstart/<sha256>.mirrors.json` holding the config JSON, with its length and
//! SHA-256 in the entry and the config again as the entry's `custom` (what clients read).
//!
//! A change, in the publish write order ([`super`], steps 1 to 3):
//! 1. the URLs are checked, then, under the publish lock, the targets, snapshot and
//!    timestamp keys are loaded (a missing one fails before any file is written);
//! 2. the config file is written under its hashed name (nothing refers to it yet);
//! 3. the top-level targets role is written with the entry added, replaced or (no URLs)
//!    removed, then the snapshot, and `timestamp.json` last by atomic rename.

use std::collections::BTreeMap;
use std::time::SystemTime;

use appstart_layout::fsutil;
use serde_json::Map;
use sha2::Digest;

use super::{Expiry, Repository};
use updater_core::advanced::mirrors::signed::{
    CONFIG_TARGET, MAX_SIGNED, MirrorsConfig, check_url,
};
use updater_core::advanced::tuf::keys::KeyDir;
use updater_core::advanced::tuf::metadata::{TargetFile, expires_in_days};
use updater_core::{Error, Result};

/// What [`Repository::set_mirrors`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MirrorsReport {
    /// The mirrors now named (empty: none).
    pub urls: Vec<String>,
    /// Whether the metadata changed (`false`: it already said so; nothing was signed).
    pub changed: bool,
    /// The new version of the targets role, when it changed.
    pub targets_version: Option<u64>,
}

impl Repository {
    /// Names `urls` as the repository's mirrors (empty: removes the list), re-signing
    /// targets, snapshot and timestamp with `keys`; see the module docs for the steps.
    pub fn set_mirrors(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        urls: &[String],
    ) -> Result<MirrorsReport> {
        // Step 1.
        if urls.len() > MAX_SIGNED {
            return Err(Error::Invalid(format!(
                "{} mirrors given; installs use at most {MAX_SIGNED}",
                urls.len()
            )));
        }
        let mut trimmed: Vec<String> = Vec::new();
        for url in urls {
            check_url(url)?;
            let url = url.trim_end_matches('/').to_string();
            if !trimmed.contains(&url) {
                trimmed.push(url);
            }
        }
        let _lock = self.lock()?;
        keys.role_keys("targets")?;
        keys.role_keys("snapshot")?;
        keys.role_keys("timestamp")?;
        let (mut targets, snapshot) = self.current_targets()?;
        let entry = if trimmed.is_empty() {
            None
        } else {
            Some(self.write_mirrors_config(&MirrorsConfig::new(trimmed.clone()))?)
        };
        if targets.targets.get(CONFIG_TARGET) == entry.as_ref() {
            return Ok(MirrorsReport {
                urls: trimmed,
                changed: false,
                targets_version: None,
            });
        }
        // Step 3.
        match entry {
            Some(entry) => targets.targets.insert(CONFIG_TARGET.to_string(), entry),
            None => targets.targets.remove(CONFIG_TARGET),
        };
        targets.version += 1;
        targets.expires = expires_in_days(SystemTime::now(), expiry.targets_days);
        self.write_targets_snapshot_timestamp(keys, expiry, &targets, Some(&snapshot))?;
        Ok(MirrorsReport {
            urls: trimmed,
            changed: true,
            targets_version: Some(targets.version),
        })
    }

    /// Step 2: writes `config` as `targets/_appstart/<sha256>.mirrors.json` and returns its
    /// target entry.
    fn write_mirrors_config(&self, config: &MirrorsConfig) -> Result<TargetFile> {
        let custom = serde_json::to_value(config)
            .map_err(|e| Error::Invalid(format!("{CONFIG_TARGET}: {e}")))?;
        let bytes = serde_json::to_vec(&custom)
            .map_err(|e| Error::Invalid(format!("{CONFIG_TARGET}: {e}")))?;
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        let (dir, base) = CONFIG_TARGET
            .rsplit_once('/')
            .unwrap_or(("", CONFIG_TARGET));
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
            custom: Some(custom),
            extra: Map::new(),
        })
    }
}
