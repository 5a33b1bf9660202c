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
//! Stored and changed as every config target is ([`super::config_target`]: the file, its
//! entry, and the publish write order); step 1 here is checking the config.

use super::config_target::config_json;
use super::{Expiry, Repository};
use updater_core::advanced::mirrors::signed::{
    CONFIG_TARGET, MAX_SIGNED, MirrorsConfig, check_url,
};
use updater_core::advanced::tuf::keys::KeyDir;
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
        let config = (!trimmed.is_empty())
            .then(|| config_json(CONFIG_TARGET, &MirrorsConfig::new(trimmed.clone())))
            .transpose()?;
        // Steps 2 and 3 (crate::config_target).
        let targets_version = self.set_config_target(keys, expiry, CONFIG_TARGET, config)?;
        Ok(MirrorsReport {
            urls: trimmed,
            changed: targets_version.is_some(),
            targets_version,
        })
    }
}
