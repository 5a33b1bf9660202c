//! The TUF client workflow (specification 1.0.34, section 5).
//!
//! The steps, as numbered in `docs/security.md` and cited in the code:
//! - 5.1 Record the start time; every expiry is checked against it.
//! - 5.2 Load the trusted root (and the other trusted roles, dropping any that no longer
//!   verify against it): `persist.rs`.
//! - 5.3 to 5.6 The root chain, then timestamp, snapshot and targets: `top_level.rs`.
//! - 5.6.7 and 5.7 Delegated roles and the target search: `delegations.rs`.
//! - Lengths and hashes listed for metadata and targets: `hashes.rs`; signatures and
//!   thresholds: `tuf/sign.rs`.
//!
//! Every role is stored as soon as it is verified (5.3.8, 5.4.5, 5.5.7, 5.6.6), atomically,
//! under its unversioned name (`root.json`, ..., `<quoted role>.json`) byte for byte as
//! downloaded. A refresh that fails half-way therefore leaves the roles verified before the
//! failure stored and nothing after it; choosing a release is a separate step that callers
//! take only after a refresh that fully succeeded.

mod delegations;
mod hashes;
mod persist;
mod top_level;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::download::RetryPolicy;
use crate::error::{Error, Result};
use crate::transport::{Transport, join_url};
use crate::tuf::metadata::{
    Role, RoleKeys, Root, Snapshot, TargetFile, Targets, Timestamp, parse_expires,
};
use crate::tuf::sign::Envelope;

pub use crate::tuf::metadata::quote;
pub use hashes::{check_hashes, check_target};

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

    /// Verifies `bytes` as top-level role `role` against the trusted root.
    fn verify<T: Role>(&self, bytes: &[u8], role: &str, what: &str) -> Result<T> {
        let envelope = Envelope::parse(bytes, what)?;
        let keys = role_keys(&self.root.value, role, what)?;
        envelope.check_threshold(what, role, &self.root.value.keys, keys)?;
        envelope.decode(what)
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

fn role_keys<'a>(root: &'a Root, role: &str, what: &str) -> Result<&'a RoleKeys> {
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
