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
//! 1. blobs, deltas and the pack, then the manifest target (new files, nothing refers to
//!    them yet). Blobs and the pack are renamed into place without a `fsync` each; one sync
//!    (`syncfs` on Linux, see `durable`) makes all of them durable at the end of this step,
//!    before anything that names them is signed. A blob named by an earlier release's
//!    manifest is reused as it is (that manifest was signed after the blob was durable); any
//!    other blob found on disk only after it is checked, so one left incomplete by a power
//!    cut is rewritten, never listed;
//! 2. `N+1.targets.json`, then `M+1.snapshot.json` (new versioned names);
//! 3. `timestamp.json` last, by atomic rename: the single switch that makes the new release
//!    visible. A client reading before step 3 sees the old, complete set; after, the new one;
//! 4. the packs of older releases beyond `keep_packs` are deleted. Clients of the old
//!    metadata may still want them, but a missing pack only costs requests: they fetch the
//!    blobs instead.
//!
//! Hashing, compression and delta search run on every core (rayon); the results are put
//! together in file order, so the manifest's bytes do not depend on the number of threads.
//!
//! Two publishers at once: the second waits for `REPO/.publish.lock`, up to a timeout, then
//! fails naming the lock.
//!
//! Delegated roles (`repo delegate`, `publish --role`): the top-level targets role may trust
//! another role, with its own keys, for some target paths (TUF 1.0 section 4.5). Its metadata
//! is `N.<quoted name>.json` (the name percent-encoded as python-tuf does; `repo delegate`
//! accepts only names that quoting leaves unchanged), listed in the snapshot as `<name>.json`.
//! Publishing into it re-signs that file, the snapshot and the timestamp, never `targets.json`: a team or a CI job holding the role's key and the
//! snapshot and timestamp keys can publish without the top-level targets key.
//!
//! Where each part lives: `release` (one publish, in write order), `source` (reading the
//! folder), `store` (blobs and archives), `compress` (each thread's reused zstd
//! context), `durable` (one sync for all blobs), `deltas`, `manifest_delta` (compressed
//! manifests and manifest deltas), `packs`, `metadata` (signing the
//! top-level roles), `delegation` (delegated roles) and `control` (`appupdate release`:
//! changing a published release's signed controls, and listing releases; `control_syntax`
//! reads the command line's rollout percentages and schedules), and `s3` (repositories in
//! object storage, `s3://BUCKET/PREFIX`: a local working copy, then uploads in this same
//! order, `timestamp.json` last).
//!
//! Where installs post delivery receipts is the target `_appstart/receipts.json` of the
//! top-level targets role, set by `appupdate repo receipts` (`receipts`), also a
//! metadata-only change in steps 2 and 3 (plus its small config file, step 1). The
//! repository's signed mirror list (`appupdate repo mirrors`, `mirrors`) is the target
//! `_appstart/mirrors.json`, changed the same way. The push
//! endpoint running installs listen to, `_appstart/push.json`, is set the same way by
//! `appupdate repo push` (`push`).
//!
//! Release controls (`docs/rollout.md`) live in a release's target entry, so `appupdate
//! release rollout|pause|resume|pull` re-signs metadata only, in steps 2 and 3 above: the
//! manifest, blobs and pack of a release never change once published.

mod compress;
mod config_target;
mod control;
mod control_syntax;
mod delegation;
mod deltas;
mod durable;
mod export;
mod manifest_delta;
mod metadata;
mod mirrors;
mod packs;
mod push;
mod receipts;
mod release;
mod s3;
mod source;
mod store;

pub use control::{ControlChange, ControlReport, ReleaseListing, ReleaseSelector};
pub use control_syntax::{parse_percent, parse_rollout_schedule};
pub use export::{ExportReport, ExportRequest};
pub use mirrors::MirrorsReport;
pub use push::PushReport;
pub use receipts::ReceiptsReport;
pub use s3::{S3Repository, SyncReport, default_cache as default_s3_cache, is_s3_url};
pub use source::is_windows_platform;

use metadata::{build_root, read_role, sign_role};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use appstart_layout::{RelativePath, VersionName, fsutil};
use serde_json::Map;

use updater_core::advanced::control::Control;
use updater_core::advanced::lock;
use updater_core::advanced::tuf;
use updater_core::{Error, Result};

/// Largest zip file taken apart (it is read into memory at publish time).
pub const MAX_ARCHIVE_IN_MEMORY: u64 = 1 << 30;
use updater_core::advanced::tuf::SPEC_VERSION;
use updater_core::advanced::tuf::keys::KeyDir;
use updater_core::advanced::tuf::metadata::{Root, Targets, expires_in_days};
use updater_core::advanced::tuf::sign::sign_metadata;

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
    /// Keep the packs of this many newest releases of the same app, channel and platform
    /// (and always the new release's); older ones are deleted once the new metadata is live.
    /// `None` deletes none. The CLI's default is [`DEFAULT_KEEP_PACKS`].
    pub keep_packs: Option<usize>,
    /// How long the delta search of one file pair may take; past it the file gets no delta
    /// from that base (clients fetch its blob). `None`: no limit. The CLI's default is
    /// [`DEFAULT_DELTA_TIME_LIMIT`].
    pub delta_time_limit: Option<std::time::Duration>,
    /// Who may take the release, and when (`custom.control`, see `docs/rollout.md`); the
    /// default is open to every install at once. Checked before any file is written.
    pub control: Control,
    /// The publisher's own data (`custom.data`), passed to the app as it is; at most
    /// [`updater_core::advanced::control::MAX_CUSTOM_DATA_BYTES`] serialized.
    pub data: serde_json::Map<String, serde_json::Value>,
    /// Allow a pre-release version (`1.2.0-beta.1`) on channel `stable`, where it is
    /// refused by default (pre-releases belong on channels like `beta`).
    pub allow_prerelease: bool,
    /// Where progress events go (phases `publish-compress`, `publish-delta`, `write`);
    /// `None`: nowhere.
    pub events: Option<updater_core::Events>,
    /// Programs of the release run around its install and switch (`custom.hooks`, see
    /// `docs/repository-format.md`); each must be a file of the release. Default: none.
    pub hooks: appstart_layout::hooks::Hooks,
}

/// Default of [`PublishRequest::delta_time_limit`]: about nine times what the largest pair of the
/// delta benchmark (uv's 36 MB binary) takes here, so only pathological pairs hit it.
pub const DEFAULT_DELTA_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// How many releases per app, channel and platform keep their pack by default: the newest
/// two, so that a fresh install of the current release, or of the one before while it rolls
/// out, takes a handful of requests, while the repository does not grow by a full copy of
/// the app per release.
pub const DEFAULT_KEEP_PACKS: usize = 2;

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
    /// Packs of older releases deleted (see [`PublishRequest::keep_packs`]).
    pub pruned_packs: Vec<PathBuf>,
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
        let _lock = self.lock_unchecked()?;
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
        let refs: Vec<&tuf::keys::SigningKey> = signers.iter().collect();
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

    /// Takes `REPO/.publish.lock`, waiting up to a minute for another publisher.
    fn lock_unchecked(&self) -> Result<File> {
        lock::lock_file(
            &self.root.join(".publish.lock"),
            Duration::from_secs(60),
            || "another publisher (for over 60 s)".into(),
        )
    }

    fn lock(&self) -> Result<File> {
        // `init` makes the folders first; every other command needs a repository.
        if !self.metadata_dir().join("1.root.json").exists() {
            return Err(Error::Invalid(format!(
                "{} is not a repository (no metadata/1.root.json): create it with `appupdate repo init --repo {} --keys KEYDIR`",
                self.root.display(),
                self.root.display()
            )));
        }
        lock::lock_file(
            &self.root.join(".publish.lock"),
            Duration::from_secs(60),
            || "another publisher (for over 60 s)".into(),
        )
    }
}
