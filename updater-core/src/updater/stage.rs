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

/// Stages `manifest` and moves it into `versions/` (steps 1-6), reusing a complete folder left
/// by an interrupted run, then runs its `post-install` hook (given to `on_hook` too).
#[allow(clippy::too_many_arguments)]
pub(super) fn stage_version(
    records: &Records<'_>,
    settings: &InstallSettings,
    transport: &dyn Transport,
    retry: &RetryPolicy,
    events: Option<&Arc<EventSink>>,
    manifest: &Manifest,
    pack_data_start: u64,
    opened_pack: Option<OpenedPack>,
    hooks: &Hooks,
    on_hook: &dyn Fn(&HookRun),
) -> Result<Staged> {
    let install = records.install();
    super::hooks::check_paths(manifest, hooks)?;
    let target = install.version_dir(&manifest.version);
    // The record names the hooks only once `post-install` succeeded: a folder whose hook
    // did not run to the end is staged again.
    if let Some(record) = records.get(&manifest.version)
        && record.manifest == *manifest
        && record.hooks == *hooks
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
    let local = LocalFiles::index(records, &sources);
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
    let staged = stager.stage(manifest, &local).and_then(|mut staged| {
        let record = InstalledRecord {
            manifest: manifest.clone(),
            stats: std::mem::take(&mut staged.stats),
            hooks: Hooks::default(),
        };
        let pending = staged.make_durable(install, Some(&record))?;
        Ok((staged, record, pending))
    });
    let (staged, mut record, pending) = match staged {
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
    switch::commit_version(install, &staged.path, &manifest.version, pending)?;
    let report = staged.report;
    if let Some(hook) = &hooks.post_install {
        let version = &manifest.version;
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
        manifest: manifest.clone(),
        report,
        manifest_bytes: 0,
        metadata_bytes: 0,
        content_bytes: metered.bytes(),
    })
}
