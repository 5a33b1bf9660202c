//! Building a version beside the running one and moving it into `versions/`.

use std::sync::Arc;

use appstart_layout::VersionName;
use appstart_layout::hooks::{HookKind, HookRun, Hooks};

use super::Staged;
use crate::download::RetryPolicy;
use crate::error::Result;
use crate::events::{EventSink, Phase};
use crate::manifest::Manifest;
use crate::metered::Metered;
use crate::progress::ProgressMeter;
use crate::settings::InstallSettings;
use crate::stage::{InstalledRecord, LocalFiles, OpenedPack, Records, StageReport, Stager};
use crate::switch;
use crate::transport::Transport;

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
