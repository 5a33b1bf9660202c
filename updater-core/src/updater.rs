//! The [`Updater`]: check, download, apply, rollback and status for one install folder.
//!
//! ```no_run
//! # fn main() -> Result<(), updater_core::Error> {
//! let updater = updater_core::Updater::open("/opt/myapp")?;
//! if let Some(staged) = updater.check()?.available.map(|release| updater.download(&release)).transpose()? {
//!     let report = updater.apply(staged)?;
//!     println!("switched {} -> {:?}", report.from, report.to);
//! }
//! # Ok(()) }
//! ```
//!
//! Every operation that changes the install holds the install lock ([`crate::lock`]) and
//! leaves the install as it was when it fails: staging happens in a separate folder, and
//! the only step that changes what runs is the atomic rewrite of `appstart.toml`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use appstart_layout::state::{BadVersions, Probation};
use appstart_layout::{InstallDir, LauncherConfig, VersionName, history};
use serde::Serialize;

use crate::download::RetryPolicy;
use crate::error::{Error, Result};
use crate::events::{Event, EventSink};
use crate::lock::InstallLock;
use crate::manifest::Manifest;
use crate::manifest_fetch::{ManifestSource, fetch_fresh, fetch_manifest, pack_data_start};
use crate::metered::Metered;
use crate::release::{Eligibility, Release, case_conflict, choose, releases};
use crate::settings::InstallSettings;
use crate::shortcut::{self, ShortcutLocation};
use crate::stage::{InstalledRecord, LocalFiles, OpenedPack, StageReport, Stager};
use crate::switch;
use crate::transport::{HttpTimeouts, Transport, for_url, join_url};
use crate::tuf::client::{Fetch, Limits, TrustedMetadata};

/// The state of an install, as `appupdate status --json` prints it.
#[derive(Debug, Clone, Serialize)]
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
}

/// The result of a check.
#[derive(Debug, Clone)]
pub struct Check {
    /// The running version.
    pub current: VersionName,
    /// A newer eligible release, if any.
    pub available: Option<Release>,
    /// Newer eligible releases that will not be installed, and why.
    pub skipped: Vec<Skipped>,
    /// Requests the metadata refresh made.
    pub requests: u32,
}

/// A newer release that will not be installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Its version.
    pub version: VersionName,
    /// Why, for people: e.g. `left by a hand edit of appstart.toml on 2026-11-23`.
    pub reason: String,
}

/// A version built and in place, not yet current.
#[derive(Debug, Clone)]
pub struct Staged {
    manifest: Manifest,
    report: StageReport,
    /// Bytes received for the release manifest (delta, compressed or plain).
    manifest_bytes: u64,
    /// Bytes received for metadata: the manifest, plus the TUF roles of the refresh when it
    /// was part of the same operation.
    metadata_bytes: u64,
    /// Bytes received for file contents (blobs, deltas, pack ranges), as read off the wire.
    content_bytes: u64,
}

impl Staged {
    fn plan(&self) -> Plan {
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
pub struct UpdateReport {
    /// The version that was current.
    pub from: VersionName,
    /// The new current version; `None` when already up to date.
    pub to: Option<VersionName>,
    /// Bytes received in all: `metadata_bytes + content_bytes`.
    pub bytes_downloaded: u64,
    /// Bytes received for metadata: TUF roles (root, timestamp, snapshot, targets, delegated
    /// roles) and the release manifest (its delta, compressed or plain form). After
    /// [`Updater::check`] then [`Updater::download`] and [`Updater::apply`], only the manifest:
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
}

/// Where the files of an update came from: the plan that was carried out, bytes by source.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Plan {
    /// Files taken from installed versions (no bytes on the wire).
    pub local_files: usize,
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

impl From<StageReport> for Plan {
    fn from(report: StageReport) -> Self {
        Plan {
            local_files: report.files_reused,
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

/// Updates one install folder.
pub struct Updater {
    install: InstallDir,
    settings: InstallSettings,
    transport: Box<dyn Transport>,
    retry: RetryPolicy,
    events: Option<Arc<EventSink>>,
    lock_wait: Duration,
}

impl std::fmt::Debug for Updater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater")
            .field("install", &self.install)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Updater {
    /// Opens the install at `dir` (made by [`install`]).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let install = InstallDir::new(dir);
        let settings = InstallSettings::load(&install.install_settings_path())?;
        let transport = for_url(
            &settings.url,
            HttpTimeouts {
                stall: Duration::from_secs(settings.stall_secs),
                ..HttpTimeouts::default()
            },
        )?;
        let retry = RetryPolicy {
            attempts: settings.attempts,
            ..RetryPolicy::default()
        };
        Ok(Updater {
            install,
            settings,
            transport,
            retry,
            events: None,
            lock_wait: Duration::from_secs(30),
        })
    }

    /// Opens the install of the running app, from `APPSTART_DIR` (set by the launcher).
    pub fn from_launcher_environment() -> Result<Self> {
        let dir = std::env::var_os("APPSTART_DIR").ok_or_else(|| {
            Error::NotInstalled(
                "APPSTART_DIR is not set: the app was not started by appstart".into(),
            )
        })?;
        Updater::open(PathBuf::from(dir))
    }

    /// Sends events to `sink`.
    pub fn on_event(&mut self, sink: impl Fn(&Event) + Send + Sync + 'static) {
        self.events = Some(Arc::new(sink));
    }

    /// Uses `transport` instead of the one chosen by the URL scheme.
    pub fn set_transport(&mut self, transport: Box<dyn Transport>) {
        self.transport = transport;
    }

    /// How long to wait for another updater holding the install lock (default 30 s).
    pub fn set_lock_wait(&mut self, wait: Duration) {
        self.lock_wait = wait;
    }

    /// The install folder.
    pub fn install_dir(&self) -> &InstallDir {
        &self.install
    }

    fn emit(&self, event: Event) {
        if let Some(sink) = &self.events {
            sink(&event);
        }
    }

    fn history(&self, event: &str, fields: &[(&str, &str)]) {
        if let Err(err) = history::append(&self.install.history_path(), event, fields) {
            log::warn!("{err}");
        }
    }

    /// The install's state.
    pub fn status(&self) -> Result<Status> {
        let config = LauncherConfig::load(&self.install.config_path())?;
        let bad = BadVersions::load(&self.install.bad_versions_path())?;
        let probation = Probation::load(&self.install.probation_path())?
            .filter(|p| p.version == config.current)
            .map(|p| p.version);
        Ok(Status {
            app: self.settings.app.clone(),
            current: config.current,
            previous: config.previous,
            installed: switch::installed_versions(&self.install)?,
            channel: self.settings.channel.clone(),
            platform: self.settings.platform.clone(),
            url: self.settings.url.clone(),
            bad_versions: bad.bad.into_iter().map(|b| b.version).collect(),
            probation,
        })
    }

    /// Refreshes the trusted metadata and looks for a newer eligible release.
    pub fn check(&self) -> Result<Check> {
        let _lock = InstallLock::acquire(&self.install, "check", self.lock_wait)?;
        let result = self.check_locked();
        match &result {
            Ok(check) => {
                let available = check
                    .available
                    .as_ref()
                    .map_or("none".to_string(), |r| r.version().to_string());
                self.history(
                    "check",
                    &[
                        ("current", check.current.as_str()),
                        ("available", &available),
                    ],
                );
                if let Some(release) = &check.available {
                    self.emit(Event::Found {
                        current: check.current.clone(),
                        available: release.version().clone(),
                    });
                }
            }
            Err(err) => self.failed("check", err),
        }
        result
    }

    fn check_locked(&self) -> Result<Check> {
        let (check, _, _) = self.refresh_and_choose()?;
        Ok(check)
    }

    /// Refreshes the metadata (each role stored as it is verified) and, only if the whole
    /// refresh succeeded, picks the best release above the current version.
    /// Also returns the bytes the refresh received.
    fn refresh_and_choose(&self) -> Result<(Check, TrustedMetadata, u64)> {
        self.notice_hand_edit()?;
        let config = LauncherConfig::load(&self.install.config_path())?;
        let (found, requests, trusted, metadata_bytes) = find_release(
            &self.install,
            &self.settings,
            self.transport.as_ref(),
            &self.retry,
            Some(&config.current),
        )?;
        let check = Check {
            current: config.current,
            available: found.chosen,
            skipped: found.skipped,
            requests,
        };
        Ok((check, trusted, metadata_bytes))
    }

    /// Builds `release` beside the running version and moves it into place, without making
    /// it current.
    pub fn download(&self, release: &Release) -> Result<Staged> {
        let _lock = InstallLock::acquire(&self.install, "download", self.lock_wait)?;
        // The metadata the check that found `release` refreshed, as it stored it.
        let result = TrustedMetadata::load(&self.install.metadata_dir(), Limits::default())
            .and_then(|trusted| self.download_locked(&trusted, release));
        if let Err(err) = &result {
            self.failed("download", err);
        }
        result
    }

    fn download_locked(&self, trusted: &TrustedMetadata, release: &Release) -> Result<Staged> {
        let config = LauncherConfig::load(&self.install.config_path())?;
        // A `previous` whose folder is gone (deleted, or named by a hand edit) is treated as
        // absent: installing that version again is a repair, not a conflict.
        let previous_installed = config
            .previous
            .as_ref()
            .filter(|previous| self.install.version_dir(previous).exists());
        if release.version() == &config.current || Some(release.version()) == previous_installed {
            return Err(Error::Invalid(format!(
                "{} is already installed as the current or previous version",
                release.version()
            )));
        }
        let metered = Metered::new(self.transport.as_ref());
        // Delta bases for the manifest: the running version first, then the others installed.
        let mut bases = vec![config.current.clone()];
        bases.extend(
            switch::installed_versions(&self.install)?
                .into_iter()
                .filter(|v| *v != config.current),
        );
        let manifest = fetch_manifest(
            &ManifestSource {
                trusted,
                repo_url: &self.settings.url,
                transport: &metered,
                retry: &self.retry,
                bases: &bases,
                install: &self.install,
            },
            release,
        )?;
        crate::fault::step("manifest");
        let mut staged = stage_version(
            &self.install,
            &self.settings,
            self.transport.as_ref(),
            &self.retry,
            self.events.as_deref(),
            &manifest,
            pack_data_start(release, &manifest),
            None,
        )?;
        staged.manifest_bytes = metered.bytes();
        staged.metadata_bytes = metered.bytes();
        self.emit(Event::Staged {
            version: manifest.version.clone(),
        });
        Ok(staged)
    }

    /// Makes a staged version current and removes versions beyond `keep`.
    pub fn apply(&self, staged: Staged) -> Result<UpdateReport> {
        let _lock = InstallLock::acquire(&self.install, "apply", self.lock_wait)?;
        let result = self.apply_locked(staged);
        if let Err(err) = &result {
            self.failed("apply", err);
        }
        result
    }

    fn apply_locked(&self, staged: Staged) -> Result<UpdateReport> {
        let record = InstalledRecord::load(&self.install, staged.version());
        if record.is_none_or(|r| !r.matches_by_stat(&self.install.version_dir(staged.version()))) {
            return Err(Error::Invalid(format!(
                "{} is not staged (or was changed since); download it again",
                staged.version()
            )));
        }
        let from = switch::switch_to(&self.install, &staged.manifest)?;
        let removed = switch::prune(&self.install, self.settings.keep)?;
        crate::fault::step("pruned");
        let report = UpdateReport {
            from: from.clone(),
            to: Some(staged.manifest.version.clone()),
            bytes_downloaded: staged.metadata_bytes + staged.content_bytes,
            metadata_bytes: staged.metadata_bytes,
            content_bytes: staged.content_bytes,
            files_reused: staged.report.files_reused,
            files_downloaded: staged.report.files_downloaded,
            plan: staged.plan(),
            removed,
        };
        self.history(
            "update",
            &[
                ("from", from.as_str()),
                ("to", staged.manifest.version.as_str()),
                ("bytes_downloaded", &report.bytes_downloaded.to_string()),
            ],
        );
        self.emit(Event::Switched {
            from,
            to: staged.manifest.version,
        });
        Ok(report)
    }

    /// Check, download and apply in one go, under one lock.
    pub fn update(&self) -> Result<UpdateReport> {
        let _lock = InstallLock::acquire(&self.install, "update", self.lock_wait)?;
        let result = (|| {
            // A release is chosen only from a refresh that fully succeeded; the manifest is
            // then fetched with the metadata that refresh verified, not reloaded.
            let (check, trusted, refresh_bytes) = self.refresh_and_choose()?;
            crate::fault::step("refreshed");
            let Some(release) = check.available else {
                // Nothing to do: clear what an interrupted run may have left behind.
                switch::prune(&self.install, self.settings.keep)?;
                self.history(
                    "check",
                    &[("current", check.current.as_str()), ("available", "none")],
                );
                return Ok(UpdateReport {
                    from: check.current,
                    to: None,
                    bytes_downloaded: refresh_bytes,
                    metadata_bytes: refresh_bytes,
                    content_bytes: 0,
                    files_reused: 0,
                    files_downloaded: 0,
                    plan: Plan::default(),
                    removed: Vec::new(),
                });
            };
            self.emit(Event::Found {
                current: check.current.clone(),
                available: release.version().clone(),
            });
            let mut staged = self.download_locked(&trusted, &release)?;
            staged.metadata_bytes += refresh_bytes;
            self.apply_locked(staged)
        })();
        if let Err(err) = &result {
            self.failed("update", err);
        }
        result
    }

    /// Treats a hand edit of `current` to an older version like a rollback (see
    /// [`switch::notice_hand_edit`]) and logs it. Call it holding the install lock.
    fn notice_hand_edit(&self) -> Result<()> {
        if let Some(edit) = switch::notice_hand_edit(&self.install)? {
            let skipped = if edit.skipped { "yes" } else { "no" };
            self.history(
                "hand-edit",
                &[
                    ("from", edit.from.as_str()),
                    ("to", edit.to.as_str()),
                    ("skipped", skipped),
                ],
            );
        }
        Ok(())
    }

    /// Switches back to the previous version, or to `to`.
    pub fn rollback(&self, to: Option<&VersionName>) -> Result<(VersionName, VersionName)> {
        let _lock = InstallLock::acquire(&self.install, "rollback", self.lock_wait)?;
        let result = self
            .notice_hand_edit()
            .and_then(|()| switch::rollback(&self.install, to));
        match &result {
            Ok((from, to)) => {
                self.history("rollback", &[("from", from.as_str()), ("to", to.as_str())])
            }
            Err(err) => self.failed("rollback", err),
        }
        result
    }

    fn failed(&self, what: &str, err: &Error) {
        let message = crate::error::chain(err);
        self.history("failed", &[("operation", what), ("error", &message)]);
        self.emit(Event::Failed { message });
    }
}

/// What [`find_release`] found.
struct Found {
    /// The best eligible release above the current version.
    chosen: Option<Release>,
    /// Eligible releases above the current version that are excluded, and why.
    skipped: Vec<Skipped>,
}

/// Refreshes the trusted metadata of `install` and picks the best release above `current`.
fn find_release(
    install: &InstallDir,
    settings: &InstallSettings,
    transport: &dyn Transport,
    retry: &RetryPolicy,
    current: Option<&VersionName>,
) -> Result<(Found, u32, TrustedMetadata, u64)> {
    let metered = Metered::new(transport);
    let transport: &dyn Transport = &metered;
    let mut trusted = TrustedMetadata::load(&install.metadata_dir(), Limits::default())?;
    let metadata_url = join_url(&settings.url, "metadata");
    let report = trusted.refresh(transport, &metadata_url, retry)?;
    let fetch = Fetch {
        transport,
        metadata_url: &metadata_url,
        retry,
    };
    let candidates = trusted.candidate_targets(fetch)?;
    let mut all = releases(candidates.iter().map(|(name, target)| (name, target)));
    let current = match current {
        Some(v) => Some(semver::Version::parse(v.as_str()).map_err(|e| {
            Error::Invalid(format!(
                "current version {v} is not SemVer, so nothing can be newer: {e}"
            ))
        })?),
        None => None,
    };
    let bad = BadVersions::load(&install.bad_versions_path())?;
    let eligibility = Eligibility {
        app: &settings.app,
        channel: &settings.channel,
        platform: &settings.platform,
    };
    let skip_reason = |version: &VersionName| {
        bad.entry(version).map(|entry| {
            // `at` is RFC 3339; its date is enough for people.
            let date = entry.at.get(..10).unwrap_or(&entry.at);
            format!("{} on {date}", entry.reason)
        })
    };
    // Versions that may own a folder under versions/: what is installed and what runs.
    let mut installed = switch::installed_versions(install)?;
    installed.extend(switch::running_versions(install)?);
    let case_reason = |version: &VersionName| {
        case_conflict(version, &installed).map(|other| {
            format!(
                "differs only in letter case from installed version {other} (they would share a folder on macOS and Windows)"
            )
        })
    };
    let mut skipped: Vec<Skipped> = Vec::new();
    for release in &all {
        if !eligibility.allows(release) || current.as_ref().is_some_and(|c| release.semver <= *c) {
            continue;
        }
        if let Some(reason) =
            skip_reason(release.version()).or_else(|| case_reason(release.version()))
            && !skipped.iter().any(|s| &s.version == release.version())
        {
            skipped.push(Skipped {
                version: release.version().clone(),
                reason,
            });
        }
    }
    skipped.sort_by(|a, b| a.version.cmp(&b.version));
    // A candidate counts only if the delegation search resolves its name to the same entry
    // (a delegated role may list targets it is not trusted for).
    let chosen = loop {
        let Some(best) = choose(&all, &eligibility, current.as_ref(), |v| {
            bad.contains(v) || case_conflict(v, &installed).is_some()
        })
        .cloned() else {
            break None;
        };
        if trusted.target(fetch, &best.target_name)?.as_ref() == Some(&best.target) {
            break Some(best);
        }
        log::warn!(
            "ignoring {}: not trusted for that name by the delegations",
            best.target_name
        );
        all.retain(|r| !(r.target_name == best.target_name && r.target == best.target));
    };
    let received = metered.bytes();
    Ok((
        Found { chosen, skipped },
        report.requests,
        trusted,
        received,
    ))
}

/// Stages `manifest` and moves it into `versions/` (steps 1-6), reusing a complete folder left
/// by an interrupted run.
#[allow(clippy::too_many_arguments)]
fn stage_version(
    install: &InstallDir,
    settings: &InstallSettings,
    transport: &dyn Transport,
    retry: &RetryPolicy,
    events: Option<&EventSink>,
    manifest: &Manifest,
    pack_data_start: u64,
    opened_pack: Option<OpenedPack>,
) -> Result<Staged> {
    let target = install.version_dir(&manifest.version);
    if let Some(record) = InstalledRecord::load(install, &manifest.version)
        && record.manifest == *manifest
        && record.matches_by_stat(&target)
    {
        return Ok(Staged {
            manifest: manifest.clone(),
            report: StageReport::default(),
            manifest_bytes: 0,
            metadata_bytes: 0,
            content_bytes: 0,
        });
    }
    let installed = switch::installed_versions(install)?;
    let sources: Vec<VersionName> = installed
        .into_iter()
        .filter(|v| *v != manifest.version)
        .collect();
    let local = LocalFiles::index(install, &sources);
    let metered = Metered::new(transport);
    let opened_pack = opened_pack.map(|opened| OpenedPack {
        body: metered.count(opened.body),
        position: opened.position,
    });
    let stager = Stager {
        install,
        transport: &metered,
        repo_url: &settings.url,
        retry: *retry,
        events,
        pack_data_start,
        opened_pack: std::sync::Mutex::new(opened_pack),
    };
    let (staging, report, stats) = match stager.stage(manifest, &local) {
        Ok(staged) => staged,
        Err(err) => {
            // Leave the install as it was; verified downloads stay in the cache for next time.
            if let Err(cleanup) = appstart_layout::fsutil::remove_dir_all_if_exists(
                &install.staging_dir(&manifest.version),
            ) {
                log::warn!("{cleanup}");
            }
            return Err(err);
        }
    };
    let record = InstalledRecord {
        manifest: manifest.clone(),
        stats,
    };
    switch::commit_version(install, &staging, &record)?;
    Ok(Staged {
        manifest: manifest.clone(),
        report,
        manifest_bytes: 0,
        metadata_bytes: 0,
        content_bytes: metered.bytes(),
    })
}

/// Options of a fresh install.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Repository base URL.
    pub url: String,
    /// The root metadata file to trust (distributed out of band by the publisher).
    pub trusted_root: PathBuf,
    /// App to install.
    pub app: String,
    /// Install folder (must not exist or be empty).
    pub dir: PathBuf,
    /// Channel.
    pub channel: String,
    /// Platform (default: this machine's).
    pub platform: String,
    /// The launcher binary to place as `DIR/appstart` when the release ships none.
    pub launcher: PathBuf,
    /// Shortcuts to the launcher to create (recorded in `state/shortcuts.toml`).
    pub shortcuts: Vec<ShortcutLocation>,
}

/// Installs the newest eligible release of an app into a new folder, with the shortcuts
/// asked for. On failure the shortcuts made so far and the folder are removed again (the
/// folder is emptied, if it existed and was empty).
pub fn install(options: &InstallOptions) -> Result<UpdateReport> {
    let dir = &options.dir;
    let existed = dir.exists();
    if existed {
        let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
        if entries.next().is_some() {
            return Err(Error::Invalid(format!(
                "{} is not empty; install into a new folder (or use `appupdate update --dir` for an existing install)",
                dir.display()
            )));
        }
    }
    let result = install_into(options);
    if result.is_err() {
        match shortcut::remove_recorded(&InstallDir::new(dir)) {
            Ok(_) => {}
            Err(err) => log::warn!("could not remove the shortcuts made: {err}"),
        }
        let cleanup = if existed {
            empty_folder(dir)
        } else {
            appstart_layout::fsutil::remove_dir_all_if_exists(dir).map_err(Error::from)
        };
        if let Err(err) = cleanup {
            log::warn!("could not clean up {}: {err}", dir.display());
        }
    }
    result
}

fn empty_folder(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)
        .map_err(|e| Error::io("listing", dir, e))?
        .flatten()
    {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            appstart_layout::fsutil::remove_dir_all_if_exists(&path)?;
        } else {
            appstart_layout::fsutil::remove_file_if_exists(&path)?;
        }
    }
    Ok(())
}

fn install_into(options: &InstallOptions) -> Result<UpdateReport> {
    let install = InstallDir::new(&options.dir);
    appstart_layout::fsutil::create_dir_all(&install.versions_dir())?;
    appstart_layout::fsutil::create_dir_all(&install.state_dir())?;
    let _lock = InstallLock::acquire(&install, "install", Duration::from_secs(0))?;
    let root_bytes = appstart_layout::fsutil::read_capped(
        &options.trusted_root,
        Limits::default().max_root_size,
    )?;
    TrustedMetadata::init(
        &install.metadata_dir(),
        &root_bytes,
        &options.trusted_root.display().to_string(),
    )?;
    let settings = InstallSettings::new(
        options.url.clone(),
        options.app.clone(),
        options.channel.clone(),
        options.platform.clone(),
    );
    let transport = for_url(&settings.url, HttpTimeouts::default())?;
    let retry = RetryPolicy::default();
    let (found, _, trusted, refresh_bytes) =
        find_release(&install, &settings, transport.as_ref(), &retry, None)?;
    let release = found.chosen;
    let release = release.ok_or_else(|| {
        Error::Invalid(format!(
            "{} has no release of app {:?} for channel {:?} and platform {:?} (or \"any\")",
            options.url, options.app, options.channel, options.platform
        ))
    })?;
    let metered = Metered::new(transport.as_ref());
    let fresh = fetch_fresh(
        &ManifestSource {
            trusted: &trusted,
            repo_url: &settings.url,
            transport: &metered,
            retry: &retry,
            bases: &[],
            install: &install,
        },
        &release,
        transport.as_ref(),
    )?;
    let manifest = fresh.manifest;
    let mut staged = stage_version(
        &install,
        &settings,
        transport.as_ref(),
        &retry,
        None,
        &manifest,
        pack_data_start(&release, &manifest),
        fresh.opened_pack,
    )?;
    staged.manifest_bytes = metered.bytes() + fresh.manifest_bytes_in_pack;
    staged.metadata_bytes = refresh_bytes + staged.manifest_bytes;
    match &manifest.launcher {
        Some(launcher) => switch::replace_launcher(
            &install,
            &launcher.join_to(&install.version_dir(&manifest.version)),
        )?,
        None => {
            if !options.launcher.is_file() {
                return Err(Error::Invalid(format!(
                    "launcher {} not found: build it (cargo build --release -p appstart-launcher) or pass --launcher",
                    options.launcher.display()
                )));
            }
            switch::replace_launcher(&install, &options.launcher)?;
        }
    }
    settings.save(&install.install_settings_path())?;
    // The config is written last: until it exists the folder is not an install.
    let config = LauncherConfig::new(manifest.version.clone(), manifest.executable.clone());
    config.save(&install.config_path())?;
    switch::record_switch(&install, &manifest.version, "install")?;
    switch::prune(&install, settings.keep)?;
    shortcut::create(&install, &options.app, &options.shortcuts)?;
    let version = manifest.version.clone();
    if let Err(err) = history::append(
        &install.history_path(),
        "install",
        &[("version", version.as_str()), ("url", &settings.url)],
    ) {
        log::warn!("{err}");
    }
    Ok(UpdateReport {
        from: version.clone(),
        to: Some(version),
        bytes_downloaded: staged.metadata_bytes + staged.content_bytes,
        metadata_bytes: staged.metadata_bytes,
        content_bytes: staged.content_bytes,
        files_reused: staged.report.files_reused,
        files_downloaded: staged.report.files_downloaded,
        plan: staged.plan(),
        removed: Vec::new(),
    })
}
