//! Writing a repository: `repo init`, `publish` and `repo refresh`.
//!
//! A repository is plain static files (see `docs/repository-format.md`):
//!
//! ```text
//! REPO/metadata/N.root.json, root.json, timestamp.json, N.snapshot.json, N.targets.json
//! REPO/targets/<app>/<channel>/<platform>/<version>/<sha256>.manifest.json
//! REPO/blobs/<xx>/<blake3>.zst
//! ```
//!
//! Publishing is atomic for readers because of the write order and consistent snapshots:
//! 1. blobs, then the manifest target (new files, nothing refers to them yet);
//! 2. `N+1.targets.json`, then `M+1.snapshot.json` (new versioned names);
//! 3. `timestamp.json` last, by atomic rename: the single switch that makes the new release
//!    visible. A client reading before step 3 sees the old, complete set; after, the new one.
//!
//! Two publishers at once: the second waits for `REPO/.publish.lock`, up to a timeout, then
//! fails naming the lock.
//!
//! Delegated roles (`repo delegate`, `publish --role`): the top-level targets role may trust
//! another role, with its own keys, for some target paths (TUF 1.0 section 4.5). Its metadata
//! is `N.<quoted name>.json` (the name percent-encoded as python-tuf does; `repo delegate`
//! accepts only names that quoting leaves unchanged), listed in the snapshot as `<name>.json`. Publishing into it re-signs that file, the snapshot and the
//! timestamp, never `targets.json`: a team or a CI job holding the role's key and the
//! snapshot and timestamp keys can publish without the top-level targets key.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use appstart_layout::{RelativePath, VersionName, fsutil};
use serde_json::Map;
use sha2::Digest;

use crate::blob;
use crate::error::{Error, Result};
use crate::manifest::{
    Archive, ArchiveFormat, Content, DeltaEntry, FileEntry, MANIFEST_FORMAT, Manifest, Member,
    Skeleton, check_label,
};

/// Largest zip file taken apart (it is read into memory at publish time).
pub const MAX_ARCHIVE_IN_MEMORY: u64 = 1 << 30;
use crate::release::{ReleaseCustom, target_name};
use crate::tuf::SPEC_VERSION;
use crate::tuf::keys::{KeyDir, SigningKey, TOP_LEVEL_ROLES, key_id, load_public_key};
use crate::tuf::metadata::{
    DelegatedRole, Delegations, MetaFile, Role, RoleKeys, Root, Snapshot, TargetFile, Targets,
    Timestamp, expires_in_days, quote,
};
use crate::tuf::sign::{Envelope, sign_metadata};

/// Default lifetimes, in days, of each role's signatures. Clients refuse expired metadata
/// (freeze attacks), so a repository that publishes rarely must run `repo refresh` more
/// often than the timestamp lifetime.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
    /// Root.
    pub root_days: u64,
    /// Targets.
    pub targets_days: u64,
    /// Snapshot.
    pub snapshot_days: u64,
    /// Timestamp.
    pub timestamp_days: u64,
}

impl Default for Expiry {
    fn default() -> Self {
        Expiry {
            root_days: 365,
            targets_days: 90,
            snapshot_days: 30,
            timestamp_days: 7,
        }
    }
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// App name.
    pub app: String,
    /// Version.
    pub version: VersionName,
    /// Executable inside the folder.
    pub executable: RelativePath,
    /// Channel.
    pub channel: String,
    /// Platform or `any`.
    pub platform: String,
    /// A launcher inside the folder to install as `DIR/appstart`.
    pub launcher: Option<RelativePath>,
    /// The folder to publish.
    pub source: PathBuf,
    /// zstd level for new blobs.
    pub level: i32,
    /// Compute deltas against this many previous releases (0: none).
    pub delta_depth: usize,
    /// The delegated role to publish into, signed with its keys only (`None`: the top-level
    /// targets role).
    pub role: Option<String>,
}

/// A delegation to add with [`Repository::delegate`].
#[derive(Debug, Clone)]
pub struct DelegationRequest {
    /// The delegated role's name.
    pub role: String,
    /// Target path patterns it is trusted for, like `myapp/*/*/*/*`.
    pub paths: Vec<String>,
    /// Public key files of its keys (written by `appupdate keys generate --role NAME` as
    /// `NAME.pub`).
    pub key_files: Vec<PathBuf>,
    /// Signatures required.
    pub threshold: u64,
    /// Whether a target path it matches is never looked up in later delegations.
    pub terminating: bool,
}

/// What a publish did.
#[derive(Debug, Clone)]
pub struct PublishReport {
    /// The release's target name.
    pub target_name: String,
    /// Files in the release.
    pub files: usize,
    /// Blobs newly written (the rest were already in the repository).
    pub new_blobs: usize,
    /// Bytes of newly written blobs.
    pub new_blob_bytes: u64,
    /// The role the release went into: `targets` or a delegated role.
    pub role: String,
    /// The new version of that role's metadata.
    pub targets_version: u64,
    /// Deltas computed and stored.
    pub deltas: usize,
    /// Zip archives taken apart, to be rebuilt from their members.
    pub archives: usize,
}

/// A repository folder on the publisher's disk.
#[derive(Debug, Clone)]
pub struct Repository {
    root: PathBuf,
}

impl Repository {
    /// Wraps `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Repository { root: root.into() }
    }

    fn metadata_dir(&self) -> PathBuf {
        self.root.join("metadata")
    }

    /// Creates a new repository signed with `keys`: root v1, empty targets, snapshot and
    /// timestamp. Each role gets every key `keys` has for it, with the threshold given in
    /// `thresholds` (default 1). Refuses a folder that already has metadata.
    pub fn init(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        thresholds: &BTreeMap<String, u64>,
    ) -> Result<()> {
        let metadata = self.metadata_dir();
        if metadata.join("1.root.json").exists() {
            return Err(Error::Invalid(format!(
                "{} already holds a repository",
                self.root.display()
            )));
        }
        fsutil::create_dir_all(&metadata)?;
        fsutil::create_dir_all(&self.root.join("targets"))?;
        fsutil::create_dir_all(&self.root.join("blobs"))?;
        let _lock = self.lock()?;
        let now = SystemTime::now();
        let root = build_root(keys, thresholds, 1, expires_in_days(now, expiry.root_days))?;
        let bytes = sign_role(keys, "root", &root)?;
        fsutil::write_atomic(&metadata.join("1.root.json"), &bytes)?;
        fsutil::write_atomic(&metadata.join("root.json"), &bytes)?;
        let targets = Targets {
            type_: "targets".into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires: expires_in_days(now, expiry.targets_days),
            targets: BTreeMap::new(),
            delegations: None,
            extra: Map::new(),
        };
        self.write_targets_snapshot_timestamp(keys, expiry, &targets, None)
    }

    /// Publishes `request.source` as a release.
    pub fn publish(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        request: &PublishRequest,
    ) -> Result<PublishReport> {
        for (field, value) in [
            ("app", &request.app),
            ("channel", &request.channel),
            ("platform", &request.platform),
        ] {
            check_label(field, value)?;
        }
        semver::Version::parse(request.version.as_str()).map_err(|e| {
            Error::Invalid(format!(
                "version {}: not a SemVer version (like 1.2.3): {e}",
                request.version
            ))
        })?;
        let _lock = self.lock()?;
        let (mut targets, snapshot) = self.current_targets()?;
        let name = target_name(
            &request.app,
            &request.channel,
            &request.platform,
            &request.version,
        );
        // Checked before any file is written: the role, its paths and its keys.
        let delegated = match &request.role {
            Some(role) => Some(self.delegated_for_publish(keys, &targets, &snapshot, role, &name)?),
            None => None,
        };
        let published = self.all_release_targets(&targets, &snapshot)?;
        if published.contains_key(&name) {
            return Err(Error::Invalid(format!(
                "{} {} is already published for channel {} and platform {}; versions are immutable, publish a new one",
                request.app, request.version, request.channel, request.platform
            )));
        }
        // Clients keep each version in a folder named after it; on macOS and Windows two
        // versions differing only in case would be one folder.
        let prefix = format!("{}/{}/{}/", request.app, request.channel, request.platform);
        if let Some(existing) = targets.targets.keys().find_map(|other| {
            let version = other
                .strip_prefix(&prefix)?
                .strip_suffix("/manifest.json")?;
            (version != request.version.as_str()
                && version.eq_ignore_ascii_case(request.version.as_str()))
            .then_some(version)
        }) {
            return Err(Error::Invalid(format!(
                "{} {} differs only in letter case from the published version {existing} (channel {}, platform {}); clients on macOS and Windows cannot keep both, choose another version",
                request.app, request.version, request.channel, request.platform
            )));
        }
        // Step 1: blobs, then the manifest target.
        let (files, directories) = scan_source(&request.source)?;
        let mut entries = Vec::with_capacity(files.len());
        let mut new_blobs = 0;
        let mut new_blob_bytes = 0;
        let mut archives = 0;
        for (path, execute_bit) in files {
            let executable = marks_executable(request, &path, execute_bit);
            let source = path.join_to(&request.source);
            let (mut entry, written) = self.store_blob(&source, path, executable, request.level)?;
            if written {
                new_blobs += 1;
                new_blob_bytes += entry.blob_size;
            }
            let mut new = (0, 0);
            if let Some(archive) = self.store_archive(&source, request.level, &mut new)? {
                entry.archive = Some(Box::new(archive));
                archives += 1;
                new_blobs += new.0;
                new_blob_bytes += new.1;
            }
            entries.push(entry);
        }
        let deltas = self.add_deltas(&published, request, &mut entries)?;
        let pack = self.write_pack(request, &mut entries)?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            app: request.app.clone(),
            version: request.version.clone(),
            channel: request.channel.clone(),
            platform: request.platform.clone(),
            executable: request.executable.clone(),
            launcher: request.launcher.clone(),
            files: entries,
            directories,
            pack: Some(pack),
        };
        manifest
            .validate(&request.source.display().to_string())
            .map_err(|e| {
                Error::Invalid(format!("{e} (check --exe, --launcher and the file modes)"))
            })?;
        let bytes = manifest.to_bytes();
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        let (dir, base) = name.rsplit_once('/').unwrap_or(("", name.as_str()));
        let target_path = self
            .root
            .join("targets")
            .join(dir)
            .join(format!("{sha256}.{base}"));
        fsutil::create_dir_all(&fsutil::parent_of(&target_path))?;
        fsutil::write_atomic(&target_path, &bytes)?;

        // Step 2 and 3: targets, snapshot, timestamp.
        let custom = ReleaseCustom {
            app: request.app.clone(),
            version: request.version.clone(),
            channel: request.channel.clone(),
            platform: request.platform.clone(),
            executable: request.executable.clone(),
        };
        let mut hashes = BTreeMap::new();
        hashes.insert("sha256".to_string(), sha256);
        let target = TargetFile {
            length: bytes.len() as u64,
            hashes,
            custom: Some(serde_json::to_value(&custom).map_err(|e| Error::Invalid(e.to_string()))?),
            extra: Map::new(),
        };
        let (role, version) = match delegated {
            None => {
                targets.targets.insert(name.clone(), target);
                targets.version += 1;
                targets.expires = expires_in_days(SystemTime::now(), expiry.targets_days);
                self.write_targets_snapshot_timestamp(keys, expiry, &targets, Some(&snapshot))?;
                ("targets".to_string(), targets.version)
            }
            Some(mut delegated) => {
                delegated.targets.targets.insert(name.clone(), target);
                delegated.targets.version += 1;
                delegated.targets.expires = expires_in_days(SystemTime::now(), expiry.targets_days);
                let version = delegated.targets.version;
                self.write_delegated_snapshot_timestamp(
                    keys,
                    expiry,
                    &delegated.name,
                    &delegated.targets,
                    &delegated.signers,
                    &snapshot,
                )?;
                (delegated.name, version)
            }
        };
        Ok(PublishReport {
            target_name: name,
            files: manifest.files.len(),
            new_blobs,
            new_blob_bytes,
            role,
            targets_version: version,
            deltas,
            archives,
        })
    }

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
    fn delegated_for_publish(
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
    fn delegated_targets(&self, snapshot: &Snapshot, role: &str) -> Result<Targets> {
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
    fn all_release_targets(
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
    fn write_delegated_snapshot_timestamp(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        role: &str,
        role_targets: &Targets,
        signers: &[SigningKey],
        previous_snapshot: &Snapshot,
    ) -> Result<()> {
        let bytes = sign_metadata(role_targets, &signers.iter().collect::<Vec<_>>())?;
        fsutil::write_atomic(
            &self
                .metadata_dir()
                .join(format!("{}.{}.json", role_targets.version, quote(role))),
            &bytes,
        )?;
        let mut snapshot = previous_snapshot.clone();
        snapshot.meta.insert(
            format!("{role}.json"),
            meta_file(role_targets.version, &bytes),
        );
        snapshot.version += 1;
        snapshot.expires = expires_in_days(SystemTime::now(), expiry.snapshot_days);
        self.write_snapshot_timestamp(keys, expiry, &snapshot)?;
        Ok(())
    }

    /// Computes deltas for the files of a new release that the last `delta_depth` releases of
    /// the same app, channel and platform do not have, against the file at the same path in
    /// each of them, or else the most similar file (same file name, closest size: paths often
    /// carry the version, like `uv-0.5.10.data/scripts/uv`). Keeps a delta only when it is smaller than the file's blob. Returns how
    /// many were stored.
    fn add_deltas(
        &self,
        published: &BTreeMap<String, TargetFile>,
        request: &PublishRequest,
        entries: &mut [FileEntry],
    ) -> Result<usize> {
        if request.delta_depth == 0 {
            return Ok(0);
        }
        let new_version = semver::Version::parse(request.version.as_str()).ok();
        let mut previous: Vec<_> = crate::release::releases(published)
            .into_iter()
            .filter(|r| {
                r.custom.app == request.app
                    && r.custom.channel == request.channel
                    && r.custom.platform == request.platform
            })
            .filter(|r| new_version.as_ref().is_none_or(|v| r.semver < *v))
            .collect();
        previous.sort_by(|a, b| b.semver.cmp(&a.semver));
        previous.truncate(request.delta_depth);
        let mut manifests = Vec::new();
        for release in &previous {
            let sha = release
                .target
                .hashes
                .get("sha256")
                .cloned()
                .unwrap_or_default();
            let (dir, base) = release
                .target_name
                .rsplit_once('/')
                .unwrap_or(("", release.target_name.as_str()));
            let path = self
                .root
                .join("targets")
                .join(dir)
                .join(format!("{sha}.{base}"));
            match Manifest::parse(&fsutil::read(&path)?, &path.display().to_string()) {
                Ok(manifest) => manifests.push(manifest),
                // A release published by an older appupdate (format 1) is still a fine
                // release, but no delta is made against it.
                Err(err) => log::warn!("no deltas from {}: {err}", release.target_name),
            }
        }
        let known = |hash: &str| {
            manifests.iter().any(|m| {
                m.files.iter().any(|f| {
                    f.blake3 == hash || f.parts().iter().any(|p| p.expected().blake3 == hash)
                })
            })
        };
        let mut stored = 0;
        for entry in entries.iter_mut() {
            if known(&entry.blake3) {
                continue; // clients coming from those releases already have it
            }
            let mut target_bytes: Option<Vec<u8>> = None;
            for manifest in &manifests {
                let Some(base) = manifest
                    .files
                    .iter()
                    .find(|f| f.path == entry.path)
                    .or_else(|| most_similar(manifest, entry))
                else {
                    continue;
                };
                if let (Some(archive), Some(base_archive)) = (&mut entry.archive, &base.archive) {
                    // Deltas for the parts; a whole-file delta of a compressed archive saves
                    // nothing.
                    stored += self.add_part_deltas(archive, base_archive, &known)?;
                    continue;
                }
                if target_bytes.is_none() {
                    target_bytes = Some(fsutil::read(&entry.path.join_to(&request.source))?);
                }
                let target = target_bytes.as_deref().unwrap_or_default();
                let (blake3, blob_size) = (entry.blake3.clone(), entry.blob_size);
                stored += usize::from(self.add_delta(
                    base,
                    &blake3,
                    blob_size,
                    target,
                    &mut entry.deltas,
                )?);
            }
        }
        Ok(stored)
    }

    /// Deltas for an archive's skeleton and changed members against an older archive's:
    /// each member against the member of the same name, or else the most similar one (same
    /// file name, closest size). Returns how many were stored.
    fn add_part_deltas(
        &self,
        archive: &mut Archive,
        base: &Archive,
        known: &dyn Fn(&str) -> bool,
    ) -> Result<usize> {
        let mut stored = 0;
        let skeleton = &mut archive.skeleton;
        if !known(&skeleton.blake3) {
            let target = self.blob_content(&*skeleton)?;
            let (blake3, blob_size) = (skeleton.blake3.clone(), skeleton.blob_size);
            stored += usize::from(self.add_delta(
                &base.skeleton,
                &blake3,
                blob_size,
                &target,
                &mut skeleton.deltas,
            )?);
        }
        for member in &mut archive.members {
            if known(&member.blake3) {
                continue;
            }
            let file_name = |name: &str| name.rsplit('/').next().unwrap_or(name).to_string();
            let Some(base_member) =
                base.members
                    .iter()
                    .find(|m| m.name == member.name)
                    .or_else(|| {
                        base.members
                            .iter()
                            .filter(|m| file_name(&m.name) == file_name(&member.name))
                            .min_by_key(|m| m.size.abs_diff(member.size))
                    })
            else {
                continue;
            };
            let target = self.blob_content(&*member)?;
            let (blake3, blob_size) = (member.blake3.clone(), member.blob_size);
            stored += usize::from(self.add_delta(
                base_member,
                &blake3,
                blob_size,
                &target,
                &mut member.deltas,
            )?);
        }
        Ok(stored)
    }

    /// Computes the smallest delta from `base` to `target` (whose BLAKE3 and blob size are
    /// given) and stores it if it is smaller than the blob and not listed yet. Returns
    /// whether it stored one.
    fn add_delta(
        &self,
        base: &dyn Content,
        target_blake3: &str,
        target_blob_size: u64,
        target: &[u8],
        deltas: &mut Vec<DeltaEntry>,
    ) -> Result<bool> {
        let base_expected = base.expected();
        if deltas.iter().any(|d| d.base == base_expected.blake3)
            || base_expected.size + target.len() as u64 >= crate::delta::MAX_DELTA_INPUT
        {
            return Ok(false);
        }
        // A delta file is named by its base and target, and older manifests may list it with
        // its hash: one that exists is listed as it is, never rewritten (nor recomputed).
        let existing = crate::delta::ALGORITHMS.into_iter().find_map(|algorithm| {
            let path = self.root.join(crate::delta::delta_path(
                base_expected.blake3,
                target_blake3,
                algorithm,
            ));
            path.is_file().then_some((algorithm, path))
        });
        let (algorithm, blake3, size) = match existing {
            Some((algorithm, path)) => {
                let (blake3, size) = blob::hash_file(&path)?;
                (algorithm, blake3, size)
            }
            None => {
                let base_bytes = self.blob_content(base)?;
                let Some((algorithm, delta)) =
                    crate::delta::encode_smallest(&base_bytes, target, 19)?
                else {
                    return Ok(false);
                };
                if delta.len() as u64 >= target_blob_size {
                    return Ok(false);
                }
                let path = self.root.join(crate::delta::delta_path(
                    base_expected.blake3,
                    target_blake3,
                    algorithm,
                ));
                fsutil::create_dir_all(&fsutil::parent_of(&path))?;
                fsutil::write_atomic(&path, &delta)?;
                let blake3 = blake3::hash(&delta).to_hex().to_string();
                (algorithm, blake3, delta.len() as u64)
            }
        };
        if size >= target_blob_size {
            return Ok(false);
        }
        deltas.push(DeltaEntry {
            base: base_expected.blake3.to_string(),
            base_size: base_expected.size,
            algorithm,
            size,
            blake3,
        });
        Ok(true)
    }

    /// Writes `packs/<app>/<channel>/<platform>/<version>.pack`: every blob of the release
    /// once, in file order, and records each file's offset in it.
    fn write_pack(
        &self,
        request: &PublishRequest,
        entries: &mut [FileEntry],
    ) -> Result<crate::manifest::PackRef> {
        let relative = format!(
            "packs/{}/{}/{}/{}.pack",
            request.app, request.channel, request.platform, request.version
        );
        let path = self.root.join(&relative);
        let folder = fsutil::parent_of(&path);
        fsutil::create_dir_all(&folder)?;
        let temp = folder.join(fsutil::temp_name("pack"));
        let result = (|| -> Result<u64> {
            let mut out = std::io::BufWriter::new(
                File::create(&temp).map_err(|e| Error::io("creating", &temp, e))?,
            );
            let mut offsets: std::collections::HashMap<String, u64> =
                std::collections::HashMap::new();
            let mut size = 0u64;
            let mut place = |blake3: &str, pack_offset: &mut Option<u64>| -> Result<()> {
                if let Some(offset) = offsets.get(blake3) {
                    *pack_offset = Some(*offset);
                    return Ok(());
                }
                let blob_path = self.root.join(blob::blob_path(blake3));
                let mut blob_file =
                    File::open(&blob_path).map_err(|e| Error::io("opening", &blob_path, e))?;
                let copied = std::io::copy(&mut blob_file, &mut out)
                    .map_err(|e| Error::io("writing", &temp, e))?;
                offsets.insert(blake3.to_string(), size);
                *pack_offset = Some(size);
                size += copied;
                Ok(())
            };
            for entry in entries.iter_mut() {
                place(&entry.blake3, &mut entry.pack_offset)?;
                if let Some(archive) = &mut entry.archive {
                    let skeleton = &mut archive.skeleton;
                    place(&skeleton.blake3, &mut skeleton.pack_offset)?;
                    for member in &mut archive.members {
                        place(&member.blake3, &mut member.pack_offset)?;
                    }
                }
            }
            let file = out
                .into_inner()
                .map_err(|e| Error::io("writing", &temp, e.into_error()))?;
            file.sync_all()
                .map_err(|e| Error::io("syncing", &temp, e))?;
            fsutil::rename(&temp, &path)?;
            fsutil::sync_dir(&folder)?;
            Ok(size)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        Ok(crate::manifest::PackRef {
            path: RelativePath::parse(&relative)?,
            size: result?,
        })
    }

    /// The content of a published file or part, from its blob, verified.
    fn blob_content(&self, content: &dyn Content) -> Result<Vec<u8>> {
        let expected = content.expected();
        let path = self.root.join(blob::blob_path(expected.blake3));
        let file = File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
        let decoder = zstd::stream::read::Decoder::new(file)
            .map_err(|e| Error::io("decompressing", &path, e))?;
        let mut out = Vec::with_capacity(expected.size as usize);
        blob::copy_verified(
            decoder,
            &mut out,
            &expected,
            &path.display().to_string(),
            &path,
        )?;
        Ok(out)
    }

    /// Re-signs the snapshot and timestamp with fresh expiry dates (for a cron job), without
    /// changing any release.
    pub fn refresh(&self, keys: &KeyDir, expiry: &Expiry) -> Result<u64> {
        let _lock = self.lock()?;
        let (_, snapshot) = self.current_targets()?;
        let mut snapshot = snapshot;
        snapshot.version += 1;
        snapshot.expires = expires_in_days(SystemTime::now(), expiry.snapshot_days);
        self.write_snapshot_timestamp(keys, expiry, &snapshot)
    }

    /// Deletes the packs of all but the newest `keep` releases of each app, channel and
    /// platform. Packs only save requests; clients fetch what a pack lacks from `blobs/`, so
    /// this never breaks an install. Returns the files removed.
    pub fn prune_packs(&self, keep: usize) -> Result<Vec<PathBuf>> {
        let _lock = self.lock()?;
        let (targets, snapshot) = self.current_targets()?;
        let published = self.all_release_targets(&targets, &snapshot)?;
        let mut groups: BTreeMap<(String, String, String), Vec<crate::release::Release>> =
            BTreeMap::new();
        for release in crate::release::releases(&published) {
            let key = (
                release.custom.app.clone(),
                release.custom.channel.clone(),
                release.custom.platform.clone(),
            );
            groups.entry(key).or_default().push(release);
        }
        let mut removed = Vec::new();
        for ((app, channel, platform), mut releases) in groups {
            releases.sort_by(|a, b| b.semver.cmp(&a.semver));
            for release in releases.iter().skip(keep) {
                let path = self.root.join(format!(
                    "packs/{app}/{channel}/{platform}/{}.pack",
                    release.version()
                ));
                if path.exists() {
                    fsutil::remove_file_if_exists(&path)?;
                    removed.push(path);
                }
            }
        }
        Ok(removed)
    }

    /// Rotates keys: writes root version N+1 naming the keys in `new_keys` (with
    /// `thresholds`), signed by the current root keys (`old_keys`) and the new root keys, so
    /// clients can follow the chain. When the timestamp, snapshot or targets keys changed,
    /// those roles are re-signed with the new keys (targets content unchanged). Returns the
    /// new root version.
    pub fn rotate_root(
        &self,
        old_keys: &KeyDir,
        new_keys: &KeyDir,
        expiry: &Expiry,
        thresholds: &BTreeMap<String, u64>,
    ) -> Result<u64> {
        let _lock = self.lock()?;
        let metadata = self.metadata_dir();
        let current: Root = read_role(&metadata.join("root.json"))?;
        let version = current.version + 1;
        let root = build_root(
            new_keys,
            thresholds,
            version,
            expires_in_days(SystemTime::now(), expiry.root_days),
        )?;
        let mut signers = old_keys.role_keys("root")?;
        signers.extend(new_keys.role_keys("root")?);
        let refs: Vec<&crate::tuf::keys::SigningKey> = signers.iter().collect();
        let bytes = sign_metadata(&root, &refs)?;
        fsutil::write_atomic(&metadata.join(format!("{version}.root.json")), &bytes)?;
        fsutil::write_atomic(&metadata.join("root.json"), &bytes)?;
        let changed = ["targets", "snapshot", "timestamp"]
            .iter()
            .any(|r| current.roles.get(*r) != root.roles.get(*r));
        if changed {
            let (mut targets, snapshot) = self.current_targets()?;
            targets.version += 1;
            targets.expires = expires_in_days(SystemTime::now(), expiry.targets_days);
            self.write_targets_snapshot_timestamp(new_keys, expiry, &targets, Some(&snapshot))?;
        }
        Ok(version)
    }

    /// Compresses `source` into the blob store unless its blob already exists.
    fn store_blob(
        &self,
        source: &Path,
        path: RelativePath,
        executable: bool,
        level: i32,
    ) -> Result<(FileEntry, bool)> {
        let mut input = File::open(source).map_err(|e| Error::io("opening", source, e))?;
        let (blake3, size, stored, written) = self.store_reader(&mut input, source, level)?;
        Ok((
            FileEntry {
                path,
                size,
                executable,
                blake3,
                blob_size: stored.size,
                blob_blake3: stored.blake3,
                deltas: Vec::new(),
                pack_offset: None,
                archive: None,
            },
            written,
        ))
    }

    /// Compresses what `input` yields into the blob store unless that blob already exists.
    /// Returns its BLAKE3, size, the stored blob and whether it was written now.
    fn store_reader(
        &self,
        input: &mut dyn std::io::Read,
        source: &Path,
        level: i32,
    ) -> Result<(String, u64, StoredFile, bool)> {
        let blobs = self.root.join("blobs");
        let temp_path = blobs.join(fsutil::temp_name("blob"));
        let mut temp =
            File::create(&temp_path).map_err(|e| Error::io("creating", &temp_path, e))?;
        let result = blob::compress_reader(input, source, &mut temp, level);
        drop(temp);
        let (blake3, size) = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&temp_path);
                return Err(e);
            }
        };
        let final_path = self.root.join(blob::blob_path(&blake3));
        let written = if final_path.exists() {
            fsutil::remove_file_if_exists(&temp_path)?;
            false
        } else {
            let folder = fsutil::parent_of(&final_path);
            fsutil::create_dir_all(&folder)?;
            fsutil::rename(&temp_path, &final_path)?;
            fsutil::sync_dir(&folder)?;
            true
        };
        // The blob that is stored (an existing one is kept as it is), as clients will get it.
        let (blob_blake3, blob_size) = blob::hash_file(&final_path)?;
        let stored = StoredFile {
            size: blob_size,
            blake3: blob_blake3,
        };
        Ok((blake3, size, stored, written))
    }

    /// Takes a zip archive apart (see [`crate::archive`]) and stores its parts as blobs.
    /// Returns `None` when it is not an archive the client can rebuild exactly: then it is
    /// published as a plain file, with whole-file deltas. Counts new blobs in `new`.
    fn store_archive(
        &self,
        source: &Path,
        level: i32,
        new: &mut (usize, u64),
    ) -> Result<Option<Archive>> {
        let mut magic = [0u8; 4];
        let looks = File::open(source)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && crate::archive::zip::looks_like_zip(&magic);
        if !looks || std::fs::metadata(source).map_or(u64::MAX, |m| m.len()) > MAX_ARCHIVE_IN_MEMORY
        {
            return Ok(None);
        }
        let bytes = fsutil::read(source)?;
        let Some(parts) = crate::archive::zip::take_apart(&bytes) else {
            return Ok(None);
        };
        let mut store = |content: &[u8]| -> Result<(String, u64, StoredFile)> {
            let (blake3, size, stored, written) =
                self.store_reader(&mut &content[..], source, level)?;
            if written {
                new.0 += 1;
                new.1 += stored.size;
            }
            Ok((blake3, size, stored))
        };
        let (blake3, size, stored) = store(&parts.skeleton)?;
        let skeleton = Skeleton {
            size,
            blake3,
            blob_size: stored.size,
            blob_blake3: stored.blake3,
            deltas: Vec::new(),
            pack_offset: None,
        };
        let mut members = Vec::with_capacity(parts.members.len());
        for member in parts.members {
            let (blake3, size, stored) = store(&member.content)?;
            members.push(Member {
                name: member.name,
                offset: member.offset,
                stream_size: member.stream_size,
                method: member.method,
                size,
                blake3,
                blob_size: stored.size,
                blob_blake3: stored.blake3,
                deltas: Vec::new(),
                pack_offset: None,
            });
        }
        Ok(Some(Archive {
            format: ArchiveFormat::Zip,
            skeleton,
            members,
        }))
    }

    /// The current targets and snapshot, read through the timestamp as a client would.
    fn current_targets(&self) -> Result<(Targets, Snapshot)> {
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

    fn write_targets_snapshot_timestamp(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        targets: &Targets,
        previous_snapshot: Option<&Snapshot>,
    ) -> Result<()> {
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

    fn write_snapshot_timestamp(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        snapshot: &Snapshot,
    ) -> Result<u64> {
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

    /// Takes `REPO/.publish.lock`, waiting up to a minute for another publisher.
    fn lock(&self) -> Result<File> {
        crate::lock::lock_file(
            &self.root.join(".publish.lock"),
            Duration::from_secs(60),
            || "another publish has held it for over 60 s".into(),
        )
    }
}

/// A delegated role being published into: its current metadata and the keys that sign it.
struct DelegatedTargets {
    name: String,
    targets: Targets,
    signers: Vec<SigningKey>,
}

/// The keys among `candidates` that `spec` lists (each once), if they reach its threshold;
/// else how many were found.
fn signers_for(
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
fn release_patterns(patterns: &[String]) -> Result<Vec<String>> {
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

/// A file as stored in the repository: what clients download and authenticate.
#[derive(Debug, Clone)]
struct StoredFile {
    size: u64,
    blake3: String,
}

/// The file of `manifest` most like `entry`: the same file name, the closest size.
fn most_similar<'m>(manifest: &'m Manifest, entry: &FileEntry) -> Option<&'m FileEntry> {
    let name = entry.path.as_str().rsplit('/').next()?;
    manifest
        .files
        .iter()
        .filter(|f| f.path.as_str().rsplit('/').next() == Some(name))
        .min_by_key(|f| f.size.abs_diff(entry.size))
}

/// A root naming every key `keys` has for each top-level role, with `thresholds`.
fn build_root(
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
fn sign_role<T: serde::Serialize>(keys: &KeyDir, role: &str, value: &T) -> Result<Vec<u8>> {
    let signers = keys.role_keys(role)?;
    let refs: Vec<&crate::tuf::keys::SigningKey> = signers.iter().collect();
    sign_metadata(value, &refs)
}

fn meta_file(version: u64, bytes: &[u8]) -> MetaFile {
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
fn read_role<T: Role>(path: &Path) -> Result<T> {
    let bytes = fsutil::read(path)?;
    Envelope::parse(&bytes, &path.display().to_string())?.decode(&path.display().to_string())
}

/// Whether a release's platform is Windows (`windows-x86_64`, `windows-aarch64`, ...).
pub fn is_windows_platform(platform: &str) -> bool {
    platform == "windows" || platform.starts_with("windows-")
}

/// Whether the manifest marks `path` executable. Windows has no execute bit: for a Windows
/// release, and on a Windows publisher (whose files carry no bit), the executable files are
/// exactly the ones named by `--exe` and `--launcher`. So a `windows-x86_64` release
/// cross-published from Linux, whose files have no `x` bit, is accepted. Otherwise the
/// source file's execute bit decides.
fn marks_executable(
    request: &PublishRequest,
    path: &RelativePath,
    execute_bit: Option<bool>,
) -> bool {
    match execute_bit {
        Some(bit) if !is_windows_platform(&request.platform) => bit,
        _ => *path == request.executable || request.launcher.as_ref() == Some(path),
    }
}

/// Regular files (with their execute bit, `None` on Windows) and empty folders of a source
/// folder.
type SourceTree = (Vec<(RelativePath, Option<bool>)>, Vec<RelativePath>);

/// Lists the regular files (with execute bit) and empty folders below `source`, sorted.
/// Symlinks and special files are refused: a release is plain files, so it installs the same
/// everywhere and cannot point outside its folder.
fn scan_source(source: &Path) -> Result<SourceTree> {
    let meta = std::fs::metadata(source).map_err(|e| Error::io("reading", source, e))?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "{} is not a folder",
            source.display()
        )));
    }
    let mut files = Vec::new();
    let mut empty_dirs = Vec::new();
    let mut stack = vec![source.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut count = 0;
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
            count += 1;
            let path = entry.path();
            let file_type = entry
                .file_type()
                .map_err(|e| Error::io("reading", &path, e))?;
            let relative = path.strip_prefix(source).unwrap_or(&path);
            if file_type.is_symlink() {
                return Err(Error::Invalid(format!(
                    "{} is a symbolic link; releases hold regular files only (copy the target in instead)",
                    path.display()
                )));
            } else if file_type.is_dir() {
                stack.push(path);
            } else if file_type.is_file() {
                let relative = RelativePath::from_path(relative)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
                files.push((relative, execute_bit(&path)?));
            } else {
                return Err(Error::Invalid(format!(
                    "{} is not a regular file or folder",
                    path.display()
                )));
            }
        }
        if count == 0 && dir != source {
            let relative = dir.strip_prefix(source).unwrap_or(&dir);
            empty_dirs.push(
                RelativePath::from_path(relative)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", dir.display())))?,
            );
        }
    }
    files.sort();
    empty_dirs.sort();
    Ok((files, empty_dirs))
}

/// The execute bit of a source file; `None` on Windows, which has no such bit.
fn execute_bit(path: &Path) -> Result<Option<bool>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| Error::io("reading", path, e))?
            .permissions()
            .mode();
        Ok(Some(mode & 0o111 != 0))
    }
    #[cfg(windows)]
    {
        let _ = path;
        Ok(None)
    }
}
