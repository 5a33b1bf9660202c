//! Delegated targets roles and the target search (specification 1.0.34, 5.6.7 and 5.7).
//!
//! This file exists because delegations are the one part of the workflow that runs on
//! demand, after the refresh: a role is loaded only when the pre-order depth-first search
//! for a target reaches it. Every delegated role, stored or downloaded, is verified against
//! the keys and threshold its delegator names *in this refresh* (5.6.7.2 applied to
//! delegations), so a delegator that rotates a role's keys revokes the old copy at once.
//! Role names are percent-encoded exactly as python-tuf does (`quote`) in the versioned URL
//! and in the stored file name.

use std::time::SystemTime;

use crate::download::fetch_bytes;
use crate::error::{Error, Result};
use crate::transport::join_url;
use crate::tuf::metadata::{RoleKeys, TargetFile, Targets, quote};
use crate::tuf::sign::Envelope;

use super::hashes::{capped, check_meta_file};
use super::{Fetch, Trusted, TrustedMetadata, check_expiry};

impl TrustedMetadata {
    /// 5.7: finds target `name` by the pre-order depth-first search of the targets role and
    /// its delegations: a role is searched only when its delegator trusts it for `name`; a
    /// terminating role that matches ends the search; at most `max_delegations` roles are
    /// visited. Delegated roles are loaded (and verified) on the way.
    pub fn target(&mut self, fetch: Fetch<'_>, name: &str) -> Result<Option<TargetFile>> {
        let mut to_visit: Vec<(String, String)> = vec![("targets".into(), "root".into())];
        let mut visited: Vec<String> = Vec::new();
        while let Some((role, parent)) = to_visit.pop() {
            if visited.len() >= self.limits.max_delegations {
                break;
            }
            if visited.contains(&role) {
                continue;
            }
            let targets = self.role_targets(fetch, &role, &parent)?.clone();
            if let Some(target) = targets.targets.get(name) {
                return Ok(Some(target.clone()));
            }
            visited.push(role.clone());
            if let Some(delegations) = &targets.delegations {
                let mut children = Vec::new();
                for child in &delegations.roles {
                    if child.is_for(name) {
                        children.push((child.name.clone(), role.clone()));
                        if child.terminating {
                            to_visit.clear();
                            break;
                        }
                    }
                }
                children.reverse();
                to_visit.extend(children);
            }
        }
        Ok(None)
    }

    /// Every target of every role reachable from `targets` (pre-order, at most
    /// `max_delegations` roles), as candidates. A candidate from a delegated role is only
    /// trustworthy for its name once [`TrustedMetadata::target`] resolves that name to it.
    pub fn candidate_targets(&mut self, fetch: Fetch<'_>) -> Result<Vec<(String, TargetFile)>> {
        let mut out = Vec::new();
        let mut to_visit: Vec<(String, String)> = vec![("targets".into(), "root".into())];
        let mut visited: Vec<String> = Vec::new();
        while let Some((role, parent)) = to_visit.pop() {
            if visited.len() >= self.limits.max_delegations || visited.contains(&role) {
                continue;
            }
            let targets = self.role_targets(fetch, &role, &parent)?.clone();
            visited.push(role.clone());
            out.extend(targets.targets);
            if let Some(delegations) = targets.delegations {
                to_visit.extend(
                    delegations
                        .roles
                        .into_iter()
                        .rev()
                        .map(|r| (r.name, role.clone())),
                );
            }
        }
        Ok(out)
    }

    /// The trusted content of targets role `role`, delegated by `parent`.
    fn role_targets(&mut self, fetch: Fetch<'_>, role: &str, parent: &str) -> Result<&Targets> {
        if role == "targets" {
            return self
                .targets
                .as_ref()
                .map(|t| &t.value)
                .ok_or_else(|| Error::NotInstalled("no trusted targets: refresh first".into()));
        }
        if !self.delegated.contains_key(role) {
            let (loaded, downloaded) = self.load_delegated(fetch, role, parent)?;
            if downloaded {
                // 5.6.6 for a delegated role: persist as soon as it is verified.
                self.persist(&quote(role), &loaded.bytes)?;
            }
            self.delegated.insert(role.to_string(), loaded);
        }
        self.delegated
            .get(role)
            .map(|t| &t.value)
            .ok_or_else(|| Error::NotInstalled(format!("delegated role {role} not loaded")))
    }

    /// Loads delegated role `role`; the flag says whether it was downloaded (to be stored).
    fn load_delegated(
        &self,
        fetch: Fetch<'_>,
        role: &str,
        parent: &str,
    ) -> Result<(Trusted<Targets>, bool)> {
        let start = self.start.unwrap_or_else(SystemTime::now);
        let parent_targets = match parent {
            "targets" => self.targets.as_ref().map(|t| &t.value),
            other => self.delegated.get(other).map(|t| &t.value),
        }
        .ok_or_else(|| Error::NotInstalled(format!("delegating role {parent} not loaded")))?;
        let delegations = parent_targets
            .delegations
            .as_ref()
            .ok_or_else(|| Error::format(parent, "has no delegations"))?;
        let spec = delegations
            .roles
            .iter()
            .find(|r| r.name == role)
            .ok_or_else(|| Error::format(parent, format!("does not delegate to {role}")))?;
        let role_keys = RoleKeys {
            keyids: spec.keyids.clone(),
            threshold: spec.threshold,
        };
        let snapshot = self
            .snapshot
            .as_ref()
            .ok_or_else(|| Error::NotInstalled("no trusted snapshot: refresh first".into()))?;
        let meta = snapshot
            .value
            .meta
            .get(&format!("{role}.json"))
            .cloned()
            .ok_or_else(|| {
                Error::format(
                    "snapshot.json",
                    format!("field `meta` has no `{role}.json`"),
                )
            })?;
        let encoded = quote(role);
        let verify = |bytes: &[u8], what: &str| -> Result<Targets> {
            let envelope = Envelope::parse(bytes, what)?;
            envelope.check_threshold(what, role, &delegations.keys, &role_keys)?;
            envelope.decode::<Targets>(what)
        };
        // A stored copy that matches what the snapshot names needs no download.
        let local = self.dir.join(format!("{encoded}.json"));
        if let Ok(bytes) =
            appstart_layout::fsutil::read_capped(&local, self.limits.max_targets_size)
            && let Ok(value) = verify(&bytes, &local.display().to_string())
            && value.version == meta.version
            && check_meta_file(&meta, &bytes, &local.display().to_string()).is_ok()
        {
            check_expiry(&value, start)?;
            return Ok((Trusted { value, bytes }, false));
        }
        let name = if self.root.value.consistent_snapshot {
            format!("{}.{encoded}.json", meta.version)
        } else {
            format!("{encoded}.json")
        };
        let url = join_url(fetch.metadata_url, &name);
        let limit = capped(&meta, self.limits.max_targets_size);
        let bytes = fetch_bytes(fetch.transport, &url, limit, fetch.retry)?;
        check_meta_file(&meta, &bytes, &url)?;
        let value = verify(&bytes, &url)?;
        if value.version != meta.version {
            return Err(Error::Version {
                role: role.to_string(),
                what: url,
                expected: meta.version.to_string(),
                actual: value.version,
            });
        }
        check_expiry(&value, start)?;
        Ok((Trusted { value, bytes }, true))
    }
}
