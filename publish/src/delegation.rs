//! Delegated targets roles: `repo delegate`, `repo revoke-delegation`, and publishing into
//! a delegated role (TUF 1.0 section 4.5).

use super::metadata::{meta_file, read_role};
use super::{DelegationRequest, Expiry, Repository};
use std::collections::BTreeMap;
use std::time::SystemTime;

use appstart_layout::fsutil;
use serde_json::Map;

use updater_core::{Error, Result};

use updater_core::advanced::tuf::SPEC_VERSION;
use updater_core::advanced::tuf::keys::{
    KeyDir, SigningKey, TOP_LEVEL_ROLES, key_id, load_public_key,
};
use updater_core::advanced::tuf::metadata::{
    DelegatedRole, Delegations, MetaFile, Snapshot, TargetFile, Targets, expires_in_days, quote,
};
use updater_core::advanced::tuf::sign::sign_metadata;

/// A delegated role being published into: its current metadata and the keys that sign it.
pub(super) struct DelegatedTargets {
    pub(super) name: String,
    pub(super) targets: Targets,
    pub(super) signers: Vec<SigningKey>,
}

/// The keys among `candidates` that `spec` lists (each once), if they reach its threshold;
/// else how many were found.
pub(super) fn signers_for(
    spec: &DelegatedRole,
    candidates: Vec<SigningKey>,
) -> std::result::Result<Vec<SigningKey>, usize> {
    let mut signers: Vec<SigningKey> = Vec::new();
    for key in candidates {
        let id = key.key_id();
        if spec.keyids.contains(&id) && !signers.iter().any(|s| s.key_id() == id) {
            signers.push(key);
        }
    }
    if (signers.len() as u64) < spec.threshold {
        return Err(signers.len());
    }
    Ok(signers)
}

/// The delegation patterns as written into metadata. A pattern matches a target name part by
/// part (`*` never crosses `/`: TUF 1.0 and python-tuf), and a release is named
/// `APP/CHANNEL/PLATFORM/VERSION/manifest.json`, so a pattern ending in `/*` with fewer parts
/// (`myapp/*`, `myapp/beta/*`: "everything below") is widened with `/*` to those five parts;
/// any other pattern that cannot match a release is refused.
pub(super) fn release_patterns(patterns: &[String]) -> Result<Vec<String>> {
    if patterns.is_empty() {
        return Err(Error::Invalid(
            "--paths: give at least one pattern, like 'myapp/*'".into(),
        ));
    }
    patterns
        .iter()
        .map(|pattern| {
            let parts: Vec<&str> = pattern.split('/').collect();
            let empty = parts.iter().any(|p| p.is_empty());
            if parts.len() == 5 && !empty {
                return Ok(pattern.clone());
            }
            if parts.len() < 5 && !empty && parts.last() == Some(&"*") {
                let mut widened = pattern.clone();
                for _ in parts.len()..5 {
                    widened.push_str("/*");
                }
                log::info!("--paths {pattern:?} is written as {widened:?}");
                return Ok(widened);
            }
            let app = parts.first().copied().unwrap_or("APP");
            Err(Error::Invalid(format!(
                "--paths {pattern:?} can never match a release: releases are named APP/CHANNEL/PLATFORM/VERSION/manifest.json and `*` never matches `/`; for every release of an app use '{app}/*'"
            )))
        })
        .collect()
}

impl Repository {
    /// Adds a delegation from the top-level targets role (signed with the targets key) and
    /// writes the delegated role's first, empty metadata (signed with its own keys, which
    /// must be in `keys` or beside the public key files: clients refuse a repository whose
    /// delegated metadata is not signed). Returns that metadata's version.
    pub fn delegate(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        request: &DelegationRequest,
    ) -> Result<u64> {
        let role = &request.role;
        if role.is_empty() || TOP_LEVEL_ROLES.contains(&role.as_str()) {
            return Err(Error::Invalid(format!(
                "--role {role:?}: a delegated role cannot be empty or use a top-level role name"
            )));
        }
        // Clients ask for `N.<quoted name>.json`, and static web servers (and `appupdate
        // serve`) decode `%XX` before looking for the file: a name that needs quoting would be
        // asked for under another name than the one written. Such names are refused.
        if quote(role) != *role {
            return Err(Error::Invalid(format!(
                "--role {role:?}: use only A-Z a-z 0-9 _ . - ~ in a role name (its metadata file name is the name as clients ask for it in URLs)"
            )));
        }
        let paths = release_patterns(&request.paths)?;
        let mut public_keys = BTreeMap::new();
        for file in &request.key_files {
            let key = load_public_key(file)?;
            public_keys.insert(key_id(&key), key);
        }
        if request.threshold == 0 || request.threshold > public_keys.len() as u64 {
            return Err(Error::Invalid(format!(
                "--threshold {} needs at least that many distinct --key-file keys (found {})",
                request.threshold,
                public_keys.len()
            )));
        }
        let _lock = self.lock()?;
        let (mut targets, snapshot) = self.current_targets()?;
        let delegations = targets.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Vec::new(),
            extra: Map::new(),
        });
        if delegations.roles.iter().any(|r| &r.name == role) {
            return Err(Error::Invalid(format!(
                "role {role} is already delegated; revoke it first (appupdate repo revoke-delegation)"
            )));
        }
        let spec = DelegatedRole {
            name: role.clone(),
            keyids: public_keys.keys().cloned().collect(),
            threshold: request.threshold,
            terminating: request.terminating,
            paths: Some(paths),
            path_hash_prefixes: None,
            extra: Map::new(),
        };
        // The private keys that sign the role's first metadata: beside each `.pub`, or in
        // the key folder as `<role>.key`, `<role>.2.key`, ...
        let mut candidates: Vec<SigningKey> = request
            .key_files
            .iter()
            .map(|file| file.with_extension("key"))
            .filter(|file| file.is_file())
            .map(|file| SigningKey::load(&file))
            .collect::<Result<_>>()?;
        candidates.extend(keys.role_keys(role).unwrap_or_default());
        let signers = signers_for(&spec, candidates).map_err(|found| {
            Error::Invalid(format!(
                "the first metadata of role {role} must be signed by {} of its keys, found {found} private key(s) for them (looked beside each --key-file and for {} in the key folder): clients refuse a delegated role without its signatures",
                request.threshold,
                keys.path(role).display()
            ))
        })?;
        for (id, key) in public_keys {
            delegations.keys.insert(id, key);
        }
        delegations.roles.push(spec);
        // A role revoked before keeps its place in the snapshot (clients refuse a snapshot
        // that drops a file): its new metadata continues from that version.
        let version = snapshot
            .meta
            .get(&format!("{role}.json"))
            .map_or(1, |m| m.version + 1);
        let role_targets = Targets {
            type_: "targets".into(),
            spec_version: SPEC_VERSION.into(),
            version,
            expires: expires_in_days(SystemTime::now(), expiry.targets_days),
            targets: BTreeMap::new(),
            delegations: None,
            extra: Map::new(),
        };
        // The top-level keys are checked against the root before the role's first metadata
        // is written: a refusal leaves the repository as it was.
        self.check_signers(keys, &["targets", "snapshot", "timestamp"])?;
        let role_bytes = sign_metadata(&role_targets, &signers.iter().collect::<Vec<_>>())?;
        let metadata = self.metadata_dir();
        fsutil::write_atomic(
            &metadata.join(format!("{version}.{}.json", quote(role))),
            &role_bytes,
        )?;
        let mut snapshot = snapshot;
        snapshot
            .meta
            .insert(format!("{role}.json"), meta_file(version, &role_bytes));
        targets.version += 1;
        targets.expires = expires_in_days(SystemTime::now(), expiry.targets_days);
        self.write_targets_snapshot_timestamp(keys, expiry, &targets, Some(&snapshot))?;
        Ok(version)
    }

    /// Removes the delegation to `role` from the top-level targets role (signed with the
    /// targets key). Its releases are no longer trusted by clients. The snapshot keeps listing
    /// its last metadata version: TUF 1.0 5.5.5 (and python-tuf) refuse a snapshot from which
    /// a listed file disappears, and a later delegation of the same name continues from that
    /// version.
    pub fn revoke_delegation(&self, keys: &KeyDir, expiry: &Expiry, role: &str) -> Result<()> {
        let _lock = self.lock()?;
        let (mut targets, snapshot) = self.current_targets()?;
        let delegations = targets
            .delegations
            .as_mut()
            .filter(|d| d.roles.iter().any(|r| r.name == role))
            .ok_or_else(|| {
                Error::Invalid(format!("role {role} is not delegated by the targets role"))
            })?;
        delegations.roles.retain(|r| r.name != role);
        let used: std::collections::BTreeSet<String> = delegations
            .roles
            .iter()
            .flat_map(|r| r.keyids.iter().cloned())
            .collect();
        delegations.keys.retain(|id, _| used.contains(id));
        if delegations.roles.is_empty() {
            targets.delegations = None;
        }
        targets.version += 1;
        targets.expires = expires_in_days(SystemTime::now(), expiry.targets_days);
        self.write_targets_snapshot_timestamp(keys, expiry, &targets, Some(&snapshot))
    }

    /// The delegated role `role` a release named `name` is published into, with the keys
    /// of `keys` that sign it. Refuses a role that is not delegated, a name it is not
    /// trusted for and missing keys, naming what to fix.
    pub(super) fn delegated_for_publish(
        &self,
        keys: &KeyDir,
        targets: &Targets,
        snapshot: &Snapshot,
        role: &str,
        name: &str,
    ) -> Result<DelegatedTargets> {
        let spec = targets
            .delegations
            .as_ref()
            .and_then(|d| d.roles.iter().find(|r| r.name == role))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "--role {role}: the targets role delegates no role of that name (appupdate repo delegate adds one)"
                ))
            })?;
        if !spec.is_for(name) {
            return Err(Error::Invalid(format!(
                "--role {role}: the release {name} does not match the role's paths {:?}; it may publish only those",
                spec.paths.clone().unwrap_or_default()
            )));
        }
        let signers = signers_for(spec, keys.role_keys(role)?).map_err(|found| {
            Error::Invalid(format!(
                "--role {role}: {found} of the keys in {} sign for the role, it needs {} (the keys listed in its delegation)",
                keys.path(role).display(),
                spec.threshold
            ))
        })?;
        let targets = self.delegated_targets(snapshot, role)?;
        Ok(DelegatedTargets {
            name: role.to_string(),
            targets,
            signers,
        })
    }

    /// The current metadata of delegated role `role`, as the snapshot names it.
    pub(super) fn delegated_targets(&self, snapshot: &Snapshot, role: &str) -> Result<Targets> {
        let version = snapshot
            .meta
            .get(&format!("{role}.json"))
            .map(|m| m.version)
            .ok_or_else(|| {
                Error::format(
                    "snapshot.json",
                    format!("field `meta` has no `{role}.json`"),
                )
            })?;
        read_role(
            &self
                .metadata_dir()
                .join(format!("{version}.{}.json", quote(role))),
        )
    }

    /// Every release target a client can see: the top-level targets and those of the roles
    /// it delegates to.
    pub(super) fn all_release_targets(
        &self,
        targets: &Targets,
        snapshot: &Snapshot,
    ) -> Result<BTreeMap<String, TargetFile>> {
        let mut all = BTreeMap::new();
        for role in targets.delegations.iter().flat_map(|d| &d.roles) {
            all.extend(self.delegated_targets(snapshot, &role.name)?.targets);
        }
        // The top-level role is searched first by clients: its entry wins.
        all.extend(targets.targets.clone());
        Ok(all)
    }

    /// Writes delegated role `role`'s new metadata signed by `signers`, then a snapshot
    /// listing it and the timestamp.
    pub(super) fn write_delegated_snapshot_timestamp(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        role: &str,
        role_targets: &Targets,
        signers: &[SigningKey],
        previous_snapshot: &Snapshot,
    ) -> Result<()> {
        let mut snapshot = previous_snapshot.clone();
        let meta = self.write_delegated_role(role, role_targets, signers)?;
        snapshot.meta.insert(format!("{role}.json"), meta);
        snapshot.version += 1;
        snapshot.expires = expires_in_days(SystemTime::now(), expiry.snapshot_days);
        self.write_snapshot_timestamp(keys, expiry, &snapshot)?;
        Ok(())
    }

    /// Writes delegated role `role`'s new metadata `N.<quoted role>.json` signed by
    /// `signers`; returns its snapshot entry (the caller writes the snapshot and timestamp).
    pub(super) fn write_delegated_role(
        &self,
        role: &str,
        role_targets: &Targets,
        signers: &[SigningKey],
    ) -> Result<MetaFile> {
        let bytes = sign_metadata(role_targets, &signers.iter().collect::<Vec<_>>())?;
        fsutil::write_atomic(
            &self
                .metadata_dir()
                .join(format!("{}.{}.json", role_targets.version, quote(role))),
            &bytes,
        )?;
        Ok(meta_file(role_targets.version, &bytes))
    }
}
