//! Building a version beside the running one and moving it into `versions/`
//! ([`Updater::download`]).

use std::sync::Arc;

use appstart_layout::VersionName;
use appstart_layout::hooks::{HookKind, HookRun, Hooks};

use std::time::Instant;

use appstart_layout::LauncherConfig;

use super::receipts::millis;
use super::{Staged, Updater};
use crate::download::RetryPolicy;
use crate::error::Error;
use crate::error::Result;
use crate::events::Event;
use crate::events::{EventSink, Phase};
use crate::lock::InstallLock;
use crate::manifest::Manifest;
use crate::manifest_fetch::{ManifestSource, fetch_manifest, pack_data_start};
use crate::metered::Metered;
use crate::progress::ProgressMeter;
use crate::receipts::ReceiptEvent;
use crate::release::Release;
use crate::settings::InstallSettings;
use crate::stage::{InstalledRecord, LocalFiles, OpenedPack, Records, StageReport, Stager};
use crate::switch;
use crate::transport::Transport;
use crate::tuf::client::{Limits, TrustedMetadata};

/// The files of every installed version but `target`, by content: what staging `target` may
/// take from disk. It needs no manifest, so an update builds it while it fetches one.
pub(super) fn local_files(records: &Records<'_>, target: &VersionName) -> Result<LocalFiles> {
    let sources: Vec<VersionName> = switch::installed_versions(records.install())?
        .into_iter()
        .filter(|v| v != target)
        .collect();
    Ok(LocalFiles::index(records, &sources))
}

/// Stages `manifest` and moves it into `versions/` (steps 1-6), reusing a complete folder left
/// by an interrupted run, then runs its `post-install` hook (given to `on_hook` too). `local`
/// is [`local_files`] for its version. The manifest is taken, not borrowed, and handed back
/// in [`Staged`]: for an app of 10,000 files a copy of it (for its record) is some 30,000
/// allocations to make and to free.
#[allow(clippy::too_many_arguments)]
pub(super) fn stage_version(
    records: &Records<'_>,
    local: LocalFiles,
    settings: &InstallSettings,
    transport: &dyn Transport,
    retry: &RetryPolicy,
    events: Option<&Arc<EventSink>>,
    manifest: Manifest,
    pack_data_start: u64,
    opened_pack: Option<OpenedPack>,
    hooks: &Hooks,
    on_hook: &dyn Fn(&HookRun),
) -> Result<Staged> {
    let install = records.install();
    super::hooks::check_paths(&manifest, hooks)?;
    let target = install.version_dir(&manifest.version);
    // The record names the hooks only once `post-install` succeeded: a folder whose hook
    // did not run to the end is staged again.
    if let Some(record) = records.get(&manifest.version)
        && record.manifest == manifest
        && record.hooks == *hooks
        && record.matches_by_stat(&target)
    {
        return Ok(Staged {
            manifest,
            report: StageReport::default(),
            manifest_bytes: 0,
            metadata_bytes: 0,
            content_bytes: 0,
        });
    }
    // Every content byte received counts into the download phase's progress.
    let progress = Arc::new(ProgressMeter::new(events.cloned(), Phase::Download));
    let metered = Metered::with_progress(transport, Arc::clone(&progress));
    let opened_pack = opened_pack.map(|opened| OpenedPack {
        body: metered.count(opened.body),
        position: opened.position,
    });
    let stager = Stager {
        install,
        transport: &metered,
        repo_url: &settings.url,
        retry: retry.clone(),
        progress: Some(&progress),
        pack_data_start,
        opened_pack: std::sync::Mutex::new(opened_pack),
    };
    let staging = install.staging_dir(&manifest.version);
    // Leave the install as it was; verified downloads stay in the cache for next time.
    let discard = |err| {
        if let Err(cleanup) = appstart_layout::fsutil::remove_dir_all_if_exists(&staging) {
            log::warn!("{cleanup}");
        }
        err
    };
    let mut staged = stager.stage(&manifest, &local).map_err(discard)?;
    drop(local);
    // The record owns the manifest while it is written, and gives it back after.
    let mut record = InstalledRecord {
        stats: std::mem::take(&mut staged.stats),
        manifest,
        hooks: Hooks::default(),
    };
    let pending = staged
        .make_durable(install, Some(&record))
        .map_err(discard)?;
    switch::commit_version(install, &staged.path, &record.manifest.version, pending)?;
    let report = staged.report;
    if let Some(hook) = &hooks.post_install {
        let version = &record.manifest.version;
        if let Err(err) =
            super::hooks::run_checked(install, version, HookKind::PostInstall, hook, on_hook)
        {
            super::hooks::discard_version(install, version);
            return Err(err);
        }
    }
    if !hooks.is_empty() {
        record.hooks = hooks.clone();
        record.save(install)?;
    }
    Ok(Staged {
        manifest: record.manifest,
        report,
        manifest_bytes: 0,
        metadata_bytes: 0,
        content_bytes: metered.bytes(),
    })
}

impl Updater {
    /// Builds `release` beside the running version and moves it into place, without making
    /// it current.
    pub fn download(&self, release: &Release) -> Result<Staged> {
        let _lock = InstallLock::acquire(&self.install, "download", self.lock_wait)?;
        // The metadata the check that found `release` refreshed, as it stored it.
        let result = TrustedMetadata::load(&self.install.metadata_dir(), Limits::default())
            .and_then(|trusted| self.download_locked(&trusted, release));
        if let Err(err) = &result {
            self.failed("download", err, Some(release.version()));
        }
        result
    }

    pub(super) fn download_locked(
        &self,
        trusted: &TrustedMetadata,
        release: &Release,
    ) -> Result<Staged> {
        let started = Instant::now();
        let config = LauncherConfig::load(&self.install.config_path())?;
        // A `previous` whose folder is gone (deleted, or named by a hand edit) is treated as
        // absent: installing that version again is a repair, not a conflict. An intact
        // previous version may be switched back to (a pull moves installs back to it): it is
        // reused as it is.
        let previous_installed = config
            .previous
            .as_ref()
            .filter(|previous| self.install.version_dir(previous).exists());
        // Each installed version's record is read once for the whole download.
        let records = Records::new(&self.install);
        // Checked only when it matters: it reads a stat per file of that version.
        let previous_intact = || {
            previous_installed.is_some_and(|previous| {
                records
                    .get(previous)
                    .is_some_and(|r| r.matches_by_stat(&self.install.version_dir(previous)))
            })
        };
        if release.version() == &config.current
            || (Some(release.version()) == previous_installed && !previous_intact())
        {
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
        // The installed files are indexed while the manifest is fetched: each needs a
        // record (the running version's is read once, by whichever comes first), and for an
        // app of 10,000 files each is tens of milliseconds on its own core.
        let (manifest, local) = std::thread::scope(|scope| {
            let indexer = scope.spawn(|| local_files(&records, release.version()));
            let manifest = fetch_manifest(
                &ManifestSource {
                    trusted,
                    repo_url: &self.settings.url,
                    transport: &metered,
                    retry: &self.retry,
                    bases: &bases,
                    records: &records,
                },
                release,
            );
            let local = indexer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (manifest, local)
        });
        let (manifest, local) = (manifest?, local?);
        crate::fault::step("manifest");
        let pack_data_start = pack_data_start(release, &manifest);
        let mut staged = stage_version(
            &records,
            local,
            &self.settings,
            self.transport.as_ref(),
            &self.retry,
            self.events.as_ref(),
            manifest,
            pack_data_start,
            None,
            &release.custom.hooks,
            &|run| self.record_hook(&config.current, release.version(), run),
        )?;
        staged.manifest_bytes = metered.bytes();
        staged.metadata_bytes = metered.bytes();
        let elapsed = millis(started.elapsed());
        // Both receipts in one append: one flush, not two.
        self.record_all(&[ReceiptEvent::Downloaded, ReceiptEvent::Staged], |r| {
            r.from = Some(config.current.to_string());
            r.to = Some(staged.manifest.version.to_string());
            r.bytes = if r.event == ReceiptEvent::Downloaded {
                staged.content_bytes
            } else {
                0
            };
            r.duration_ms = elapsed;
        });
        self.emit(Event::Staged {
            version: staged.manifest.version.clone(),
        });
        Ok(staged)
    }
}
