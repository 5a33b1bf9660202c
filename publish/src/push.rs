//! `appupdate repo push`: naming, in signed metadata, the push endpoint running installs
//! listen to for new timestamp versions (`docs/hosting.md#push`).
//!
//! Why a signed target, like the receipts URL ([`super::receipts`]): the URL decides where
//! every running install of the fleet keeps a connection open, so it must come from the
//! publisher's keys, not from whoever serves the repository. It is the target
//! [`CONFIG_TARGET`] of the *top-level* targets role (clients never take it from a delegated
//! role), a real file under `targets/` whose content is the config JSON, with its length and
//! SHA-256 in the entry and the config again as the entry's `custom` (what clients read: no
//! extra request), stored under its consistent-snapshot name
//! `targets/_appstart/<sha256>.push.json`. What the endpoint sends carries no trust: it can
//! only make clients check sooner.
//!
//! A change, in the publish write order ([`super`], steps 1 to 3):
//! 1. the URL is checked, then, under the publish lock, the targets, snapshot and timestamp
//!    keys are loaded (a missing one fails before any file is written);
//! 2. the config file is written under its hashed name (nothing refers to it yet);
//! 3. the top-level targets role is written with the entry added, replaced or (`--off`)
//!    removed, then the snapshot, and `timestamp.json` last by atomic rename.

use std::collections::BTreeMap;
use std::time::SystemTime;

use appstart_layout::fsutil;
use serde_json::Map;
use sha2::Digest;

use super::{Expiry, Repository};
use updater_core::advanced::push::{CONFIG_TARGET, PushConfig, check_url};
use updater_core::advanced::tuf::keys::KeyDir;
use updater_core::advanced::tuf::metadata::{TargetFile, expires_in_days};
use updater_core::{Error, Result};

/// What [`Repository::set_push`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushReport {
    /// The push URL now named (`None`: push off).
    pub url: Option<String>,
    /// Whether the metadata changed (`false`: it already said so; nothing was signed).
    pub changed: bool,
    /// The new version of the targets role, when it changed.
    pub targets_version: Option<u64>,
}

impl Repository {
    /// Names `url` as the push endpoint installs listen to (`None`: turns push off by
    /// removing the target), re-signing targets, snapshot and timestamp with `keys`; see the
    /// module docs for the steps.
    pub fn set_push(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        url: Option<&str>,
    ) -> Result<PushReport> {
        // Step 1.
        if let Some(url) = url {
            check_url(url)?;
        }
        let _lock = self.lock()?;
        keys.role_keys("targets")?;
        keys.role_keys("snapshot")?;
        keys.role_keys("timestamp")?;
        let (mut targets, snapshot) = self.current_targets()?;
        let url = url.map(str::to_string);
        // Step 2.
        let entry = match &url {
            None => None,
            Some(url) => Some(self.write_push_config(&PushConfig::new(Some(url.clone())))?),
        };
        if targets.targets.get(CONFIG_TARGET) == entry.as_ref() {
            return Ok(PushReport {
                url,
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
        Ok(PushReport {
            url,
            changed: true,
            targets_version: Some(targets.version),
        })
    }

    /// Step 2: writes `config` as `targets/_appstart/<sha256>.push.json` and returns its
    /// target entry.
    fn write_push_config(&self, config: &PushConfig) -> Result<TargetFile> {
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
