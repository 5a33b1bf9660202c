//! `appupdate repo receipts`: naming, in signed metadata, where installs post their delivery
//! receipts (`docs/receipts.md`).
//!
//! Why a signed target: the URL decides where every install of the fleet sends what it did,
//! so it must come from the publisher's keys, not from whoever serves the repository. It is
//! the target [`CONFIG_TARGET`] of the *top-level* targets role (clients never take it from a
//! delegated role), a real file under `targets/` whose content is the config JSON, with its
//! length and SHA-256 in the entry and the config again as the entry's `custom` (what clients
//! read: no extra request). Like every target it is stored under its consistent-snapshot name,
//! `targets/_appstart/<sha256>.receipts.json`, so TUF clients such as python-tuf can fetch it.
//!
//! Stored and changed as every config target is ([`super::config_target`]: the file, its
//! entry, and the publish write order); step 1 here is checking the config.

use super::config_target::config_json;
use super::{Expiry, Repository};
use updater_core::Result;
use updater_core::advanced::receipts::post::check_url;
use updater_core::advanced::receipts::{CONFIG_TARGET, ReceiptsConfig};
use updater_core::advanced::tuf::keys::KeyDir;

/// What [`Repository::set_receipts`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiptsReport {
    /// The receiver URL now named (`None`: receipts off).
    pub url: Option<String>,
    /// Whether the metadata changed (`false`: it already said so; nothing was signed).
    pub changed: bool,
    /// The new version of the targets role, when it changed.
    pub targets_version: Option<u64>,
}

impl Repository {
    /// Names `url` as the receiver of delivery receipts (`None`: turns receipts off by
    /// removing the target), re-signing targets, snapshot and timestamp with `keys`; see the
    /// module docs for the steps.
    pub fn set_receipts(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        url: Option<&str>,
    ) -> Result<ReceiptsReport> {
        // Step 1.
        if let Some(url) = url {
            check_url(url)?;
        }
        let url = url.map(|u| u.trim_end_matches('/').to_string());
        let config = url
            .as_ref()
            .map(|url| config_json(CONFIG_TARGET, &ReceiptsConfig::new(Some(url.clone()))))
            .transpose()?;
        // Steps 2 and 3 (crate::config_target).
        let targets_version = self.set_config_target(keys, expiry, CONFIG_TARGET, config)?;
        Ok(ReceiptsReport {
            url,
            changed: targets_version.is_some(),
            targets_version,
        })
    }
}
