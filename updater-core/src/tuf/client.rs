//! The TUF client workflow (specification 1.0, section 5), for the top-level roles.
//!
//! The steps, as numbered in `docs/security.md` and cited below:
//! - 5.1 Record the start time; every expiry is checked against it.
//! - 5.2 Load the trusted root (and the other trusted roles, dropping any that no longer
//!   verify against it).
//! - 5.3 Update the root: fetch `N+1.root.json` until 404, at most `max_root_rotations`;
//!   each must be signed by a threshold of the old root's and of its own root keys and have
//!   version exactly N+1. Then check the final root's expiry, and drop trusted timestamp
//!   and snapshot if their keys changed (fast-forward attack recovery).
//! - 5.4 Timestamp: fetch (capped; conditional on the ETag), verify, refuse a lower version,
//!   keep the trusted one if the version is equal, refuse a snapshot version lower than the
//!   trusted one, check expiry.
//! - 5.5 Snapshot: the version the timestamp names; fetch `N.snapshot.json` (capped by the
//!   listed length, never above the fixed cap), check listed hashes, verify, version must match the timestamp's, no
//!   targets file may go backwards or disappear, check expiry.
//! - 5.6 Targets: the version the snapshot names; fetch `N.targets.json`, check listed
//!   length and hashes, verify, version must match, check expiry.
//!
//! Every role is stored as soon as it is verified (5.3.8, 5.4.5, 5.5.7, 5.6.6), under its
//! unversioned name (`root.json`, ..., `<quoted role>.json`) byte for byte as downloaded,
//! with an atomic write. A refresh that fails half-way therefore leaves the roles verified
//! before the failure stored and nothing after it; choosing a release is a separate step that
//! callers take only after a refresh that fully succeeded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::Digest;

use crate::download::{RetryPolicy, fetch_bytes, read_capped};
use crate::error::{Error, Result};
use crate::transport::{Request, Status, Transport, join_url};
use crate::tuf::metadata::{
    MetaFile, Role, Root, Snapshot, TargetFile, Targets, Timestamp, parse_expires,
};
use crate::tuf::sign::Envelope;

/// Size caps on metadata downloads (endless-data attack).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Root files.
    pub max_root_size: u64,
    /// The timestamp file.
    pub max_timestamp_size: u64,
    /// The snapshot file (a smaller length listed in the timestamp caps it further).
    pub max_snapshot_size: u64,
    /// Each targets file (a smaller length listed in the snapshot caps it further).
    pub max_targets_size: u64,
    /// New root versions fetched in one refresh.
    pub max_root_rotations: u64,
    /// Targets roles visited in one delegation search.
    pub max_delegations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_root_size: 512 * 1024,
            max_timestamp_size: 16 * 1024,
            max_snapshot_size: 4 * 1024 * 1024,
            max_targets_size: 32 * 1024 * 1024,
            max_root_rotations: 32,
            max_delegations: 32,
        }
    }
}

/// A role's parsed content together with the exact bytes it came from.
#[derive(Debug, Clone)]
struct Trusted<T> {
    value: T,
    bytes: Vec<u8>,
}

/// What a refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshReport {
    /// Whether a new timestamp was accepted (and so maybe new targets).
    pub timestamp_changed: bool,
    /// HTTP requests made.
    pub requests: u32,
}

/// The client's trusted metadata, kept in a folder.
#[derive(Debug)]
pub struct TrustedMetadata {
    dir: PathBuf,
    root: Trusted<Root>,
    timestamp: Option<Trusted<Timestamp>>,
    snapshot: Option<Trusted<Snapshot>>,
    targets: Option<Trusted<Targets>>,
    limits: Limits,
    /// Delegated targets roles loaded so far (this refresh), by role name.
    delegated: BTreeMap<String, Trusted<Targets>>,
    /// Start time of the last refresh, for the expiry of roles loaded after it.
    start: Option<SystemTime>,
}

/// Where to fetch delegated metadata from.
#[derive(Debug, Clone, Copy)]
pub struct Fetch<'a> {
    /// The network.
    pub transport: &'a dyn Transport,
    /// The folder holding the metadata files.
    pub metadata_url: &'a str,
    /// Retry policy.
    pub retry: &'a RetryPolicy,
}

const ETAG_FILE: &str = "timestamp.etag";
/// Largest stored ETag read back (a server's header value; only ever sent back).
const MAX_ETAG_FILE: u64 = 4096;

impl TrustedMetadata {
    /// Stores `root_bytes` as the trusted root in `dir` after checking it is a root signed by
    /// a threshold of its own keys. No network access.
    pub fn init(dir: &Path, root_bytes: &[u8], what: &str) -> Result<()> {
        let envelope = Envelope::parse(root_bytes, what)?;
        let root: Root = envelope.decode(what)?;
        check_root_self_signed(&envelope, &root, what)?;
        appstart_layout::fsutil::create_dir_all(dir)?;
        appstart_layout::fsutil::write_atomic(&dir.join("root.json"), root_bytes)?;
        Ok(())
    }

    /// Loads the trusted metadata in `dir` (step 5.2). Stored non-root roles that no longer
    /// verify against the trusted root are dropped, not trusted.
    pub fn load(dir: &Path, limits: Limits) -> Result<Self> {
        let root_path = dir.join("root.json");
        let bytes = appstart_layout::fsutil::read_capped(&root_path, limits.max_root_size)?;
        let what = root_path.display().to_string();
        let envelope = Envelope::parse(&bytes, &what)?;
        let root: Root = envelope.decode(&what)?;
        check_root_self_signed(&envelope, &root, &what)?;
        let mut trusted = TrustedMetadata {
            dir: dir.to_path_buf(),
            root: Trusted { value: root, bytes },
            timestamp: None,
            snapshot: None,
            targets: None,
            limits,
            delegated: BTreeMap::new(),
            start: None,
        };
        trusted.timestamp = trusted.load_local("timestamp");
        trusted.snapshot = trusted.load_local("snapshot");
        trusted.targets = trusted.load_local("targets");
        Ok(trusted)
    }

    fn load_local<T: Role>(&self, role: &str) -> Option<Trusted<T>> {
        let path = self.dir.join(format!("{role}.json"));
        // Stored files are capped like downloads of the same role.
        let limit = match role {
            "timestamp" => self.limits.max_timestamp_size,
            "snapshot" => self.limits.max_snapshot_size,
            _ => self.limits.max_targets_size,
        };
        let bytes = appstart_layout::fsutil::read_capped(&path, limit)
            .map_err(|err| {
                if path.exists() {
                    log::info!("not trusting stored {}: {err}", path.display());
                }
            })
            .ok()?;
        match self.verify::<T>(&bytes, role, &path.display().to_string()) {
            Ok(value) => Some(Trusted { value, bytes }),
            Err(err) => {
                log::info!("not trusting stored {}: {err}", path.display());
                None
            }
        }
    }

    /// The trusted root.
    pub fn root(&self) -> &Root {
        &self.root.value
    }

    /// The trusted top-level targets, after a successful refresh.
    pub fn targets(&self) -> Option<&Targets> {
        self.targets.as_ref().map(|t| &t.value)
    }

    /// The trusted timestamp's version, if any.
    pub fn timestamp_version(&self) -> Option<u64> {
        self.timestamp.as_ref().map(|t| t.value.version)
    }

    /// Runs the workflow against `metadata_url` (the folder holding `timestamp.json`), in the
    /// specification's order: root chain (5.3), timestamp (5.4), snapshot (5.5), targets
    /// (5.6), each role stored as soon as it is verified. An up-to-date client costs two
    /// small requests: a 404 for the next root and a 304 for the timestamp.
    ///
    /// On error, the roles verified before the failure are stored (and trusted in memory);
    /// the caller must not choose a release from this refresh.
    pub fn refresh(
        &mut self,
        transport: &dyn Transport,
        metadata_url: &str,
        retry: &RetryPolicy,
    ) -> Result<RefreshReport> {
        // 5.1: one start time for every expiry check of this refresh.
        let start = SystemTime::now();
        self.start = Some(start);
        self.delegated.clear();
        let mut requests = 0;
        self.update_root(transport, metadata_url, retry, start, &mut requests)?;
        requests += 1;
        let fetched = self.fetch_timestamp(transport, metadata_url, retry)?;
        let timestamp_changed = self.update_timestamp(fetched, metadata_url, start)?;
        self.update_snapshot(transport, metadata_url, retry, start, &mut requests)?;
        self.update_targets(transport, metadata_url, retry, start, &mut requests)?;
        Ok(RefreshReport {
            timestamp_changed,
            requests,
        })
    }

    /// Fetches `timestamp.json`, conditional on the stored ETag. `None` means 304.
    fn fetch_timestamp(
        &self,
        transport: &dyn Transport,
        metadata_url: &str,
        retry: &RetryPolicy,
    ) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let url = join_url(metadata_url, "timestamp.json");
        let etag = match &self.timestamp {
            Some(_) => appstart_layout::fsutil::read_to_string_capped(
                &self.dir.join(ETAG_FILE),
                MAX_ETAG_FILE,
            )
            .ok(),
            None => None,
        };
        let limit = self.limits.max_timestamp_size;
        retry.run(|_| {
            let response = transport.get(
                &url,
                &Request {
                    range_start: None,
                    range_end: None,
                    if_none_match: etag.clone(),
                },
            )?;
            match response.status {
                Status::NotModified => Ok(None),
                Status::Full => {
                    if let Some(length) = response.content_length
                        && length > limit
                    {
                        return Err(Error::TooLarge {
                            url: url.clone(),
                            limit,
                        });
                    }
                    let mut bytes = Vec::new();
                    read_capped(response.body, &mut bytes, limit, &url)?;
                    Ok(Some((bytes, response.etag)))
                }
                Status::Partial => Err(Error::Transport {
                    url: url.clone(),
                    message: "unexpected 206 to a plain GET".into(),
                    retryable: false,
                    retry_after: None,
                }),
            }
        })
    }

    /// 5.3: follow the root chain.
    fn update_root(
        &mut self,
        transport: &dyn Transport,
        metadata_url: &str,
        retry: &RetryPolicy,
        start: SystemTime,
        requests: &mut u32,
    ) -> Result<()> {
        let original = self.root.value.clone();
        for _ in 0..self.limits.max_root_rotations {
            let next = self.root.value.version + 1;
            let url = join_url(metadata_url, &format!("{next}.root.json"));
            *requests += 1;
            let bytes = match fetch_bytes(transport, &url, self.limits.max_root_size, retry) {
                Ok(bytes) => bytes,
                Err(Error::NotFound { .. }) => break,
                Err(err) => return Err(err),
            };
            let envelope = Envelope::parse(&bytes, &url)?;
            // 5.3.4: signed by a threshold of the *trusted* root's root keys ...
            let old_role = role_keys(&self.root.value, "root", &url)?;
            envelope.check_threshold(&url, "root", &self.root.value.keys, old_role)?;
            let new_root: Root = envelope.decode(&url)?;
            // ... and of the *new* root's own root keys.
            check_root_self_signed(&envelope, &new_root, &url)?;
            // 5.3.5: exactly N+1.
            if new_root.version != next {
                return Err(Error::Version {
                    role: "root".into(),
                    what: url,
                    expected: next.to_string(),
                    actual: new_root.version,
                });
            }
            // 5.3.8: persist at once, then 5.3.9: repeat.
            self.persist("root", &bytes)?;
            self.root = Trusted {
                value: new_root,
                bytes,
            };
        }
        // 5.3.10: the final root must not be expired.
        check_expiry(&self.root.value, start)?;
        // 5.3.11: fast-forward attack recovery when the timestamp or snapshot keys rotated.
        let roles = &self.root.value.roles;
        let rotated = |role: &str| original.roles.get(role) != roles.get(role);
        let (rotated_timestamp_or_snapshot, rotated_targets) = (
            rotated("timestamp") || rotated("snapshot"),
            rotated("targets"),
        );
        if rotated_timestamp_or_snapshot {
            self.forget("timestamp")?;
            self.timestamp = None;
            self.forget("snapshot")?;
            self.snapshot = None;
        }
        if rotated_targets {
            self.forget("targets")?;
            self.targets = None;
        }
        // Trusted roles must still verify under a rotated root.
        if self.root.value.version != original.version {
            self.reverify()?;
        }
        Ok(())
    }

    /// 5.4: the timestamp (already fetched; `None` = 304). Returns whether a newer one was
    /// accepted.
    fn update_timestamp(
        &mut self,
        fetched: Option<(Vec<u8>, Option<String>)>,
        metadata_url: &str,
        start: SystemTime,
    ) -> Result<bool> {
        let url = join_url(metadata_url, "timestamp.json");
        let Some((bytes, new_etag)) = fetched else {
            // 304: the trusted timestamp is still the newest; it must not have expired.
            match &self.timestamp {
                Some(trusted) => check_expiry(&trusted.value, start)?,
                None => {
                    return Err(Error::format(
                        &url,
                        "the server answered 304 to an unconditional request",
                    ));
                }
            }
            return Ok(false);
        };
        // 5.4.2: signatures.
        let new: Timestamp = self.verify(&bytes, "timestamp", &url)?;
        let mut changed = true;
        if let Some(trusted) = &self.timestamp {
            // 5.4.3.1: no rollback; an equal version means nothing new.
            if new.version < trusted.value.version {
                return Err(Error::Version {
                    role: "timestamp".into(),
                    what: url,
                    expected: format!(">= {}", trusted.value.version),
                    actual: new.version,
                });
            }
            changed = new.version > trusted.value.version;
            // 5.4.3.2: the snapshot it names must not go back.
            let old_snapshot = snapshot_meta(&trusted.value, &url)?.version;
            let new_snapshot = snapshot_meta(&new, &url)?.version;
            if new_snapshot < old_snapshot {
                return Err(Error::Version {
                    role: "snapshot".into(),
                    what: format!("{url} (meta snapshot.json)"),
                    expected: format!(">= {old_snapshot}"),
                    actual: new_snapshot,
                });
            }
        }
        snapshot_meta(&new, &url)?;
        if changed {
            // 5.4.4: expiry, then 5.4.5: persist.
            check_expiry(&new, start)?;
            self.persist("timestamp", &bytes)?;
            self.timestamp = Some(Trusted { value: new, bytes });
        } else if let Some(trusted) = &self.timestamp {
            check_expiry(&trusted.value, start)?;
        }
        // The ETag only makes the next request conditional; it is written after the
        // timestamp it belongs to.
        let etag_path = self.dir.join(ETAG_FILE);
        match new_etag {
            Some(etag) => appstart_layout::fsutil::write_atomic(&etag_path, etag.as_bytes())?,
            None => appstart_layout::fsutil::remove_file_if_exists(&etag_path)?,
        }
        Ok(changed)
    }

    /// 5.5: the snapshot named by the timestamp.
    fn update_snapshot(
        &mut self,
        transport: &dyn Transport,
        metadata_url: &str,
        retry: &RetryPolicy,
        start: SystemTime,
        requests: &mut u32,
    ) -> Result<()> {
        let timestamp = self
            .timestamp
            .as_ref()
            .ok_or_else(|| Error::NotInstalled("no trusted timestamp".into()))?;
        let meta = snapshot_meta(&timestamp.value, "timestamp.json")?.clone();
        // A stored snapshot that matches what the timestamp names needs no download.
        if let Some(trusted) = &self.snapshot
            && trusted.value.version == meta.version
            && check_meta_file(&meta, &trusted.bytes, "snapshot.json").is_ok()
        {
            return check_expiry(&trusted.value, start);
        }
        // 5.5.1 to 5.5.4: fetch (capped), hashes and length, signatures, version.
        let (new, bytes, url) = self.fetch_named::<Snapshot>(
            transport,
            metadata_url,
            retry,
            "snapshot",
            &meta,
            self.limits.max_snapshot_size,
        )?;
        *requests += 1;
        // 5.5.5: no targets file goes backwards or disappears.
        if let Some(trusted) = &self.snapshot {
            for (file, old) in &trusted.value.meta {
                match new.meta.get(file) {
                    None => {
                        return Err(Error::format(
                            &url,
                            format!("field `meta`: {file} was listed before and is missing now"),
                        ));
                    }
                    Some(current) if current.version < old.version => {
                        return Err(Error::Version {
                            role: file.trim_end_matches(".json").to_string(),
                            what: format!("{url} (meta {file})"),
                            expected: format!(">= {}", old.version),
                            actual: current.version,
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        // 5.5.6: expiry, then 5.5.7: persist.
        check_expiry(&new, start)?;
        self.persist("snapshot", &bytes)?;
        self.snapshot = Some(Trusted { value: new, bytes });
        Ok(())
    }

    /// 5.6: the top-level targets named by the snapshot.
    fn update_targets(
        &mut self,
        transport: &dyn Transport,
        metadata_url: &str,
        retry: &RetryPolicy,
        start: SystemTime,
        requests: &mut u32,
    ) -> Result<()> {
        let snapshot = self
            .snapshot
            .as_ref()
            .ok_or_else(|| Error::NotInstalled("no trusted snapshot".into()))?;
        let meta = snapshot
            .value
            .meta
            .get("targets.json")
            .cloned()
            .ok_or_else(|| Error::format("snapshot.json", "field `meta` has no `targets.json`"))?;
        if let Some(trusted) = &self.targets
            && trusted.value.version == meta.version
            && check_meta_file(&meta, &trusted.bytes, "targets.json").is_ok()
        {
            return check_expiry(&trusted.value, start);
        }
        // 5.6.1 to 5.6.4: fetch (capped), hashes and length, signatures, version.
        let (new, bytes, _) = self.fetch_named::<Targets>(
            transport,
            metadata_url,
            retry,
            "targets",
            &meta,
            self.limits.max_targets_size,
        )?;
        *requests += 1;
        // 5.6.5: expiry, then 5.6.6: persist.
        check_expiry(&new, start)?;
        self.persist("targets", &bytes)?;
        self.targets = Some(Trusted { value: new, bytes });
        Ok(())
    }

    /// Fetches top-level role `role` in the version `meta` names (`N.<role>.json` with
    /// consistent snapshots), capped at the listed length and `default_limit`, and checks the
    /// listed length and hashes, the signatures and that the version is the one named (the
    /// shared steps x.1 to x.4 of 5.5 and 5.6). Returns the role, its bytes and its URL.
    fn fetch_named<T: Role>(
        &self,
        transport: &dyn Transport,
        metadata_url: &str,
        retry: &RetryPolicy,
        role: &str,
        meta: &MetaFile,
        default_limit: u64,
    ) -> Result<(T, Vec<u8>, String)> {
        let name = if self.root.value.consistent_snapshot {
            format!("{}.{role}.json", meta.version)
        } else {
            format!("{role}.json")
        };
        let url = join_url(metadata_url, &name);
        let bytes = fetch_bytes(transport, &url, capped(meta, default_limit), retry)?;
        check_meta_file(meta, &bytes, &url)?;
        let new: T = self.verify(&bytes, role, &url)?;
        if new.version() != meta.version {
            return Err(Error::Version {
                role: role.into(),
                what: url,
                expected: meta.version.to_string(),
                actual: new.version(),
            });
        }
        Ok((new, bytes, url))
    }

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
        let role_keys = crate::tuf::metadata::RoleKeys {
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

    /// Verifies `bytes` as top-level role `role` against the trusted root.
    fn verify<T: Role>(&self, bytes: &[u8], role: &str, what: &str) -> Result<T> {
        let envelope = Envelope::parse(bytes, what)?;
        let keys = role_keys(&self.root.value, role, what)?;
        envelope.check_threshold(what, role, &self.root.value.keys, keys)?;
        envelope.decode(what)
    }

    /// Stores a verified role under `<file_stem>.json`, atomically (temporary file, fsync,
    /// rename).
    fn persist(&self, file_stem: &str, bytes: &[u8]) -> Result<()> {
        appstart_layout::fsutil::write_atomic(&self.dir.join(format!("{file_stem}.json")), bytes)?;
        Ok(())
    }

    /// Deletes a stored role that is no longer trusted (and the timestamp's ETag with it).
    fn forget(&self, role: &str) -> Result<()> {
        appstart_layout::fsutil::remove_file_if_exists(&self.dir.join(format!("{role}.json")))?;
        if role == "timestamp" {
            appstart_layout::fsutil::remove_file_if_exists(&self.dir.join(ETAG_FILE))?;
        }
        Ok(())
    }

    /// Drops trusted roles that no longer verify under the (rotated) root.
    fn reverify(&mut self) -> Result<()> {
        if !self.still_verifies(&self.timestamp, "timestamp") {
            self.timestamp = None;
            self.forget("timestamp")?;
        }
        if !self.still_verifies(&self.snapshot, "snapshot") {
            self.snapshot = None;
            self.forget("snapshot")?;
        }
        if !self.still_verifies(&self.targets, "targets") {
            self.targets = None;
            self.forget("targets")?;
        }
        Ok(())
    }

    /// Whether a trusted role (if any) still verifies against the current root.
    fn still_verifies<T: Role>(&self, trusted: &Option<Trusted<T>>, role: &str) -> bool {
        trusted.as_ref().is_none_or(|t| {
            self.verify::<T>(&t.bytes, role, &format!("{role}.json"))
                .is_ok()
        })
    }

    /// The URL of target `name` under `targets_url`, with the hash prefix consistent
    /// snapshots use.
    pub fn target_url(&self, targets_url: &str, name: &str, target: &TargetFile) -> String {
        if !self.root.value.consistent_snapshot {
            return join_url(targets_url, name);
        }
        let hash = target
            .hashes
            .get("sha256")
            .or_else(|| target.hashes.values().next())
            .cloned()
            .unwrap_or_default();
        match name.rsplit_once('/') {
            Some((dir, base)) => join_url(targets_url, &format!("{dir}/{hash}.{base}")),
            None => join_url(targets_url, &format!("{hash}.{name}")),
        }
    }
}

/// Percent-encodes every byte but `A-Z a-z 0-9 _ . - ~` (Python's `quote(name, safe="")`),
/// as TUF clients do for role names in file names and URLs.
pub fn quote(name: &str) -> String {
    let mut out = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn role_keys<'a>(
    root: &'a Root,
    role: &str,
    what: &str,
) -> Result<&'a crate::tuf::metadata::RoleKeys> {
    root.roles
        .get(role)
        .ok_or_else(|| Error::format(what, format!("root has no `roles.{role}`")))
}

fn check_root_self_signed(envelope: &Envelope, root: &Root, what: &str) -> Result<()> {
    let role = role_keys(root, "root", what)?;
    for required in ["root", "timestamp", "snapshot", "targets"] {
        role_keys(root, required, what)?;
    }
    envelope.check_threshold(what, "root", &root.keys, role)
}

fn snapshot_meta<'a>(timestamp: &'a Timestamp, what: &str) -> Result<&'a MetaFile> {
    timestamp
        .meta
        .get("snapshot.json")
        .ok_or_else(|| Error::format(what, "field `meta` has no `snapshot.json`"))
}

/// Checks `expires` of `role` against the refresh's start time.
fn check_expiry<T: Role>(role: &T, start: SystemTime) -> Result<()> {
    let expires = parse_expires(T::TYPE, role.expires())?;
    if expires <= start {
        return Err(Error::Expired {
            role: T::TYPE.to_string(),
            expires: role.expires().to_string(),
            now: humantime::format_rfc3339_seconds(start).to_string(),
        });
    }
    Ok(())
}

/// The download cap for the file `meta` describes: its signed length, but never more than
/// the fixed `limit`. A signed length is what the signer claims; the cap is what this client
/// is willing to hold in memory, so a role with a stolen key cannot lift it.
fn capped(meta: &MetaFile, limit: u64) -> u64 {
    meta.length.map_or(limit, |length| length.min(limit))
}

/// Checks `bytes` against the length and hashes listed in `meta`, where listed.
fn check_meta_file(meta: &MetaFile, bytes: &[u8], what: &str) -> Result<()> {
    if let Some(length) = meta.length
        && length != bytes.len() as u64
    {
        return Err(Error::Mismatch {
            what: what.to_string(),
            kind: "length",
            expected: length.to_string(),
            actual: bytes.len().to_string(),
        });
    }
    if let Some(hashes) = &meta.hashes {
        check_hashes(hashes, bytes, what, false)?;
    }
    Ok(())
}

/// Checks `bytes` against every known algorithm in `hashes`. With `require_known`, a list
/// with no algorithm we know is refused (a target must be verifiable).
pub fn check_hashes(
    hashes: &BTreeMap<String, String>,
    bytes: &[u8],
    what: &str,
    require_known: bool,
) -> Result<()> {
    let mut checked = 0;
    for (algorithm, expected) in hashes {
        let actual = match algorithm.as_str() {
            "sha256" => hex::encode(sha2::Sha256::digest(bytes)),
            "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
            _ => continue,
        };
        checked += 1;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(Error::Mismatch {
                what: what.to_string(),
                kind: if algorithm == "sha256" {
                    "sha256"
                } else {
                    "sha512"
                },
                expected: expected.clone(),
                actual,
            });
        }
    }
    if require_known && checked == 0 {
        return Err(Error::format(
            what,
            "field `hashes` lists no supported algorithm (sha256, sha512)",
        ));
    }
    Ok(())
}

/// Checks a downloaded target against its signed length and hashes.
pub fn check_target(target: &TargetFile, bytes: &[u8], what: &str) -> Result<()> {
    if target.length != bytes.len() as u64 {
        return Err(Error::Mismatch {
            what: what.to_string(),
            kind: "length",
            expected: target.length.to_string(),
            actual: bytes.len().to_string(),
        });
    }
    check_hashes(&target.hashes, bytes, what, true)
}
