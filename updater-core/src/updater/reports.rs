//! What the updater reports: status, checks, staged versions, updates and their plans.

use std::path::PathBuf;

use appstart_layout::VersionName;

use serde::Serialize;

use crate::control::policy::Policy;
use crate::control::select::HeldBack;
use crate::manifest::Manifest;
use crate::release::Release;
use crate::stage::StageReport;

/// The state of an install, as `appupdate status --json` prints it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Status {
    /// App name.
    pub app: String,
    /// Version the launcher runs.
    pub current: VersionName,
    /// Version it falls back to.
    pub previous: Option<VersionName>,
    /// Installed versions, newest first.
    pub installed: Vec<VersionName>,
    /// Channel followed.
    pub channel: String,
    /// This install's platform.
    pub platform: String,
    /// Repository URL.
    pub url: String,
    /// Versions that will not be installed again.
    pub bad_versions: Vec<VersionName>,
    /// Version on probation, if any.
    pub probation: Option<VersionName>,
    /// This install's random id (32 hex digits), for rollouts and targeting.
    pub install_id: String,
    /// Groups this install is in.
    pub groups: Vec<String>,
    /// The enterprise policy in force (`policy.toml`), and the files it came from.
    pub policy: Policy,
    /// The proxy requests to the repository go through now (the install's `--proxy`, the
    /// environment or the system setting; password shown as `***`), `None` for a direct
    /// connection; `unusable (...)` when the setting cannot be used (an unreadable
    /// `--proxy-credentials` file, say).
    pub proxy: Option<String>,
    /// The extra CA certificates trusted for HTTPS (`install --ca-file`, kept in the state
    /// folder), beside the OS trust store.
    pub ca_file: Option<PathBuf>,
    /// The install's mirrors (`install --mirror`), tried after `url`.
    pub mirrors: Vec<String>,
    /// The publisher's signed mirror list (`repo mirrors`), as last verified, tried after
    /// `mirrors`.
    pub signed_mirrors: Vec<String>,
}

/// The result of a check.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Check {
    /// The running version.
    pub current: VersionName,
    /// The release this install would take now, if any: usually newer, lower after a pull
    /// of the current release or a channel switch.
    pub available: Option<Release>,
    /// Newer eligible releases that will not be installed, and why.
    pub skipped: Vec<Skipped>,
    /// Newer releases this install may not take now (rollout, pause, pull, group, `from`,
    /// policy, window), and why.
    pub held_back: Vec<HeldBack>,
    /// `available` is to be applied at once (critical, or the current release expired).
    pub critical: bool,
    /// Requests the metadata refresh made.
    pub requests: u32,
}

/// A newer release that will not be installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Skipped {
    /// Its version.
    pub version: VersionName,
    /// Why, for people: e.g. `left by a hand edit of appstart.toml on 2026-11-23`.
    pub reason: String,
}

/// A version built and in place, not yet current.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Staged {
    pub(super) manifest: Manifest,
    pub(super) report: StageReport,
    /// Bytes received for the release manifest (delta, compressed or plain).
    pub(super) manifest_bytes: u64,
    /// Bytes received for metadata: the manifest, plus the TUF roles of the refresh when it
    /// was part of the same operation.
    pub(super) metadata_bytes: u64,
    /// Bytes received for file contents (blobs, deltas, pack ranges), as read off the wire.
    pub(super) content_bytes: u64,
}

impl Staged {
    pub(super) fn plan(&self) -> Plan {
        Plan {
            manifest_bytes: self.manifest_bytes,
            ..Plan::from(self.report)
        }
    }
}

impl Staged {
    /// The staged version.
    pub fn version(&self) -> &VersionName {
        &self.manifest.version
    }
}

/// What an update did, as `appupdate update --json` prints it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct UpdateReport {
    /// The version that was current.
    pub from: VersionName,
    /// The new current version; `None` when already up to date.
    pub to: Option<VersionName>,
    /// Bytes received in all: `metadata_bytes + content_bytes`.
    pub bytes_downloaded: u64,
    /// Bytes received for metadata: TUF roles (root, timestamp, snapshot, targets, delegated
    /// roles) and the release manifest (its delta, compressed or plain form). After
    /// [`crate::Updater::check`] then [`crate::Updater::download`] and [`crate::Updater::apply`], only the manifest:
    /// the refresh was the check's.
    pub metadata_bytes: u64,
    /// Bytes received for file contents: blobs, deltas and pack ranges.
    pub content_bytes: u64,
    /// Files taken from installed versions.
    pub files_reused: usize,
    /// Files that came over the network (from a delta or a blob).
    pub files_downloaded: usize,
    /// Where each file came from and what it cost.
    pub plan: Plan,
    /// Old versions removed.
    pub removed: Vec<VersionName>,
    /// Every version switched to, in order: more than one when the run went through a
    /// chain of releases (each one's `from` requiring the one before).
    pub steps: Vec<VersionName>,
    /// The last release applied is critical (or replaced an expired one): restart now.
    pub critical: bool,
    /// The chain stopped at this release (`publish --stop`): it must run before anything
    /// newer is applied.
    pub stopped_at: Option<VersionName>,
    /// The app deferred the offered release ([`crate::Decision::Defer`]) for this many
    /// seconds.
    pub deferred_secs: Option<u64>,
    /// A later step of a chain failed after earlier ones were applied: the error (the
    /// install is at `to`, complete and current).
    pub error: Option<String>,
    /// Newer releases not taken now, and why (as in `check --json`).
    pub held_back: Vec<HeldBack>,
    /// The bandwidth limit the downloads ran under, in bytes per second; `None`: unlimited
    /// (see [`crate::Updater::set_background`]).
    pub max_bandwidth: Option<u64>,
}

impl UpdateReport {
    /// A report of a run that switched nothing.
    pub(super) fn nothing(current: VersionName, metadata_bytes: u64) -> Self {
        UpdateReport {
            from: current,
            to: None,
            bytes_downloaded: metadata_bytes,
            metadata_bytes,
            content_bytes: 0,
            files_reused: 0,
            files_downloaded: 0,
            plan: Plan::default(),
            removed: Vec::new(),
            steps: Vec::new(),
            critical: false,
            stopped_at: None,
            deferred_secs: None,
            error: None,
            held_back: Vec::new(),
            max_bandwidth: None,
        }
    }

    /// Adds a later step of the same run: `to`, totals and plans add up.
    pub(super) fn then(&mut self, next: UpdateReport) {
        self.to = next.to;
        self.bytes_downloaded += next.bytes_downloaded;
        self.metadata_bytes += next.metadata_bytes;
        self.content_bytes += next.content_bytes;
        self.files_reused += next.files_reused;
        self.files_downloaded += next.files_downloaded;
        self.plan.add(&next.plan);
        self.removed.extend(next.removed);
        self.steps.extend(next.steps);
        // Critical if any step was: the app must restart to leave the vulnerable version.
        self.critical |= next.critical;
    }
}

/// Where the files of an update came from: the plan that was carried out, bytes by source.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[non_exhaustive]
pub struct Plan {
    /// Files taken from installed versions (no bytes on the wire).
    pub local_files: usize,
    /// Of those, files already in place in the folder staging started from (the folder a
    /// prune set aside, `versions/.spare`, or an interrupted staging): neither linked nor
    /// copied.
    pub kept_files: usize,
    /// Files rebuilt from a local file and a delta.
    pub delta_files: usize,
    /// Bytes of deltas (for whole files and archive parts).
    pub delta_bytes: u64,
    /// Files downloaded whole (compressed blobs).
    pub blob_files: usize,
    /// Bytes of blobs (for whole files and archive parts, from blob URLs or pack ranges).
    pub blob_bytes: u64,
    /// Zip archives rebuilt from their parts.
    pub archive_files: usize,
    /// Archive parts (members, headers) found locally.
    pub archive_parts_local: usize,
    /// Archive parts rebuilt from a delta.
    pub archive_parts_delta: usize,
    /// Archive parts downloaded as blobs.
    pub archive_parts_blob: usize,
    /// Range requests to the release's pack.
    pub pack_requests: usize,
    /// Bytes received for the release manifest: its delta, compressed or plain form (also
    /// counted in `metadata_bytes`).
    pub manifest_bytes: u64,
}

impl Plan {
    fn add(&mut self, other: &Plan) {
        self.local_files += other.local_files;
        self.kept_files += other.kept_files;
        self.delta_files += other.delta_files;
        self.delta_bytes += other.delta_bytes;
        self.blob_files += other.blob_files;
        self.blob_bytes += other.blob_bytes;
        self.archive_files += other.archive_files;
        self.archive_parts_local += other.archive_parts_local;
        self.archive_parts_delta += other.archive_parts_delta;
        self.archive_parts_blob += other.archive_parts_blob;
        self.pack_requests += other.pack_requests;
        self.manifest_bytes += other.manifest_bytes;
    }
}

impl From<StageReport> for Plan {
    fn from(report: StageReport) -> Self {
        Plan {
            local_files: report.files_reused,
            kept_files: report.files_kept,
            delta_files: report.files_patched,
            delta_bytes: report.delta_bytes,
            blob_files: report.files_from_blobs,
            blob_bytes: report.blob_bytes,
            archive_files: report.archives_rebuilt,
            archive_parts_local: report.parts_local,
            archive_parts_delta: report.parts_patched,
            archive_parts_blob: report.parts_from_blobs,
            pack_requests: report.pack_requests,
            manifest_bytes: 0,
        }
    }
}
