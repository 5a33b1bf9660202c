//! Refreshing the trusted metadata, then choosing the release to take.
//!
//! The two are separate so that one refresh serves a whole chain of updates (1.0 → 2.0 →
//! 3.0 in one run, `docs/rollout.md`): each step chooses again, from the same verified
//! metadata, with the version just applied as the current one.

use std::time::SystemTime;

use appstart_layout::state::BadVersions;
use appstart_layout::{InstallDir, LauncherConfig, VersionName};

use super::Skipped;
use crate::control::install_id::InstallId;
use crate::control::policy::Policy;
use crate::control::select::{Context, HeldBack, select};
use crate::download::RetryPolicy;
use crate::error::{Error, Result};
use crate::metered::Metered;
use crate::release::{Eligibility, Release, case_conflict, releases};
use crate::settings::InstallSettings;
use crate::stage::InstalledRecord;
use crate::switch;
use crate::transport::{Transport, join_url};
use crate::tuf::client::{Fetch, Limits, TrustedMetadata};

/// A completed refresh: the verified metadata and the releases of the install's app that
/// the delegations trust (any channel: a channel switch needs the others).
pub(super) struct Refreshed {
    pub(super) trusted: TrustedMetadata,
    pub(super) releases: Vec<Release>,
    /// Requests the refresh made.
    pub(super) requests: u32,
    /// Bytes it received.
    pub(super) bytes: u64,
}

/// Refreshes the trusted metadata of `install` (each role stored as it is verified) and
/// lists the releases of `settings.app` for its platform.
///
/// With mirrors, metadata that fails verification (bad signatures, a rollback, expired, a
/// length or hash that does not match) makes the whole refresh start again without the base
/// that served it ([`Transport::reject`] of the metadata folder), while another base remains:
/// a stale or malicious mirror costs a retry, never a stale result when a good base exists.
/// Roles verified before the failure stay stored: they verified.
pub(super) fn refresh(
    install: &InstallDir,
    settings: &InstallSettings,
    transport: &dyn Transport,
    retry: &RetryPolicy,
) -> Result<Refreshed> {
    let metadata_url = join_url(&settings.url, "metadata");
    loop {
        match refresh_once(install, settings, transport, retry) {
            Err(err) if untrusted_metadata(&err) && transport.reject(&metadata_url) => {
                log::warn!(
                    "{}; refreshing from the next repository URL",
                    crate::error::chain(&err)
                );
            }
            result => return result,
        }
    }
}

/// Whether `err` says the metadata a base served cannot be trusted (so another base may do
/// better), rather than that the network or this machine failed.
fn untrusted_metadata(err: &Error) -> bool {
    matches!(
        err,
        Error::Format { .. }
            | Error::Threshold { .. }
            | Error::Version { .. }
            | Error::Expired { .. }
            | Error::Mismatch { .. }
            | Error::TooLarge { .. }
    )
}

fn refresh_once(
    install: &InstallDir,
    settings: &InstallSettings,
    transport: &dyn Transport,
    retry: &RetryPolicy,
) -> Result<Refreshed> {
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
    let any_channel = Eligibility {
        app: &settings.app,
        channel: "",
        platform: &settings.platform,
    };
    let mut trusted_releases = Vec::new();
    for release in releases(candidates.iter().map(|(name, target)| (name, target))) {
        if !any_channel.allows_any_channel(&release) {
            continue;
        }
        // A candidate counts only if the delegation search resolves its name to the same
        // entry (a delegated role may list targets it is not trusted for).
        if trusted.target(fetch, &release.target_name)?.as_ref() == Some(&release.target) {
            trusted_releases.push(release);
        } else {
            log::warn!(
                "ignoring {}: not trusted for that name by the delegations",
                release.target_name
            );
        }
    }
    Ok(Refreshed {
        trusted,
        releases: trusted_releases,
        requests: report.requests,
        bytes: metered.bytes(),
    })
}

/// Who is choosing: the install's id, groups and policy.
pub(super) struct Chooser<'a> {
    pub(super) install: &'a InstallDir,
    /// The settings, with the channel the policy may lock.
    pub(super) settings: &'a InstallSettings,
    pub(super) policy: &'a Policy,
    pub(super) install_id: &'a InstallId,
    /// Versions the app declined in this process ([`crate::Decision::Skip`]).
    pub(super) declined: &'a dyn Fn(&VersionName) -> bool,
}

/// What [`Chooser::choose`] found.
#[derive(Debug, Clone, Default)]
pub(super) struct Found {
    /// The release to take, if any.
    pub(super) chosen: Option<Release>,
    /// It is to be applied at once.
    pub(super) critical: bool,
    /// Newer eligible releases that will never be installed (bad, case conflict), and why.
    pub(super) skipped: Vec<Skipped>,
    /// Newer releases not taken now (release control and policy), and why.
    pub(super) held_back: Vec<HeldBack>,
}

impl Chooser<'_> {
    /// Picks the release to take over `current` (`None`: a fresh install).
    pub(super) fn choose(
        &self,
        releases: &[Release],
        current: Option<&VersionName>,
    ) -> Result<Found> {
        let settings = self.settings;
        let current_semver = match current {
            Some(v) => Some(semver::Version::parse(v.as_str()).map_err(|e| {
                Error::Invalid(format!(
                    "current version {v} is not SemVer, so nothing can be newer: {e}"
                ))
            })?),
            None => None,
        };
        let install = self.install;
        let bad = BadVersions::load(&install.bad_versions_path())?;
        // Versions that may own a folder under versions/: what is installed and what runs.
        let mut installed = switch::installed_versions(install)?;
        installed.extend(switch::running_versions(install)?);
        let never_reason = |version: &VersionName| {
            bad.entry(version)
                .map(|entry| {
                    // `at` is RFC 3339; its date is enough for people.
                    let date = entry.at.get(..10).unwrap_or(&entry.at);
                    format!("{} on {date}", entry.reason)
                })
                .or_else(|| {
                    case_conflict(version, &installed).map(|other| {
                        format!(
                            "differs only in letter case from installed version {other} (they would share a folder on macOS and Windows)"
                        )
                    })
                })
        };
        let eligibility = Eligibility {
            app: &settings.app,
            channel: &settings.channel,
            platform: &settings.platform,
        };
        let mut skipped: Vec<Skipped> = Vec::new();
        let mut open: Vec<Release> = Vec::new();
        for release in releases.iter().filter(|r| eligibility.allows(r)) {
            if (self.declined)(release.version()) {
                continue;
            }
            match never_reason(release.version()) {
                None => open.push(release.clone()),
                Some(reason) => {
                    let newer = current_semver.as_ref().is_none_or(|c| release.semver > *c);
                    if newer && !skipped.iter().any(|s| &s.version == release.version()) {
                        skipped.push(Skipped {
                            version: release.version().clone(),
                            reason,
                        });
                    }
                }
            }
        }
        skipped.sort_by(|a, b| a.version.cmp(&b.version));
        // The current version's release, in the channel it was installed from.
        let current_channel = current
            .and_then(|v| InstalledRecord::load(install, v))
            .map(|record| record.manifest.channel);
        let current_release = current.and_then(|version| {
            let channel = current_channel.as_deref().unwrap_or(&settings.channel);
            let from = Eligibility {
                channel,
                ..eligibility.clone()
            };
            releases
                .iter()
                .filter(|r| from.allows(r) && r.version() == version)
                .max_by_key(|r| r.custom.platform != crate::release::ANY_PLATFORM)
        });
        // A `stop` release holds back newer ones until it has run: the launcher ends its
        // probation once it ran long enough or exited cleanly. An unreadable probation file
        // (it is written by rename, so only damage from outside makes one) counts as none,
        // as the launcher reads it: the launcher then never clears it, so holding the stop
        // release on it would hold it for good.
        let stop_pending = match (current, current_release) {
            (Some(current), Some(release)) if release.custom.control.stop => {
                super::load_probation(install).is_some_and(|p| &p.version == current)
            }
            _ => false,
        };
        // The previous version is switched back to only as it is on disk (a pull moving the
        // install back): if its folder changed, or it is another release of that version
        // (another channel or platform), it cannot be rebuilt in place while it may run.
        let config = match current {
            Some(_) => Some(LauncherConfig::load(&install.config_path())?),
            None => None,
        };
        // A `previous` whose folder is gone is treated as absent (installing it is a repair).
        let previous = config
            .as_ref()
            .and_then(|c| c.previous.as_ref())
            .filter(|previous| install.version_dir(previous).exists());
        if let Some(previous) = previous {
            let reusable = |release: &Release| {
                InstalledRecord::load(install, previous).is_some_and(|record| {
                    record.manifest.channel == release.custom.channel
                        && record.manifest.platform == release.custom.platform
                        && record.matches_by_stat(&install.version_dir(previous))
                })
            };
            open.retain(|release| release.version() != previous || reusable(release));
        }
        let local = jiff::Zoned::now();
        let context = Context {
            install_id: self.install_id,
            groups: &settings.groups,
            app: &settings.app,
            current: current_semver.as_ref(),
            current_release,
            switching_channel: current_channel
                .as_deref()
                .is_some_and(|channel| channel != settings.channel),
            stop_pending,
            policy: self.policy,
            now: SystemTime::now(),
            local: &local,
        };
        let selection = select(&open, &context);
        Ok(Found {
            chosen: selection.chosen.cloned(),
            critical: selection.critical,
            skipped,
            held_back: selection.held_back,
        })
    }
}
