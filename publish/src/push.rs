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
//! Stored and changed as every config target is ([`super::config_target`]: the file, its
//! entry, and the publish write order); step 1 here is checking the config.

use super::config_target::config_json;
use super::{Expiry, Repository};
use updater_core::Result;
use updater_core::advanced::push::{CONFIG_TARGET, PushConfig, check_url};
use updater_core::advanced::tuf::keys::KeyDir;

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
        let url = url.map(str::to_string);
        let config = url
            .as_ref()
            .map(|url| config_json(CONFIG_TARGET, &PushConfig::new(Some(url.clone()))))
            .transpose()?;
        // Steps 2 and 3 (crate::config_target).
        let targets_version = self.set_config_target(keys, expiry, CONFIG_TARGET, config)?;
        Ok(PushReport {
            url,
            changed: targets_version.is_some(),
            targets_version,
        })
    }
}
