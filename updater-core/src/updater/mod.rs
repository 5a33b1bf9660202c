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
//!
//! Here: the checks, applying, rolling back and status. Opening an install and what an app
//! sets before it uses the updater are in `setup`; building a version beside the running
//! one ([`Updater::download`]) in `stage`; a chain of releases in `chain`; a first install
//! in `install`.

mod chain;
mod find;
mod hooks;
mod install;
pub(crate) mod later;
mod offer;
pub(crate) mod push;
mod receipts;
mod repair;
mod reports;
mod setup;
mod stage;

pub use install::{InstallOptions, install};
pub use later::DownloadReport;
pub use offer::{Decision, Offer};
pub use repair::{RepairReport, VerifyReport};
pub use reports::{Check, Plan, Skipped, Staged, Status, UpdateReport};

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appstart_layout::state::{BadVersions, Probation};
use appstart_layout::{InstallDir, LauncherConfig, VersionName, history};

use crate::bandwidth::{Bandwidth, Rate};
use crate::control::install_id::InstallId;
use crate::control::policy::Policy;
use crate::download::RetryPolicy;
use crate::error::{Error, Result};
use crate::events::{Event, EventSink};
use crate::lock::InstallLock;
use crate::receipts::ReceiptEvent;
use crate::settings::InstallSettings;
use crate::stage::InstalledRecord;
use crate::switch;
use crate::tls::TlsTrust;
use crate::transport::Transport;
use find::{Chooser, Found, Refreshed, refresh};
use offer::OnFound;
use receipts::{Run, millis};

/// Most releases one `update` goes through (1.0 → 2.0 → 3.0 ... when each requires the one
/// before with `from`).
pub const MAX_CHAIN: usize = 16;

/// Updates one install folder.
pub struct Updater {
    install: InstallDir,
    settings: InstallSettings,
    /// The HTTPS trust (`state/ca.pem` beside the OS store), for rebuilt transports.
    trust: TlsTrust,
    /// The transport chosen by the URL scheme, or set by the app.
    raw_transport: Arc<dyn Transport>,
    /// Whether the app set `raw_transport` ([`Updater::set_transport`]).
    app_transport: bool,
    /// The publisher's signed mirror list, as last verified.
    signed_mirrors: Vec<String>,
    /// `raw_transport` watched for stalls and cancellation: what every request goes through.
    transport: Box<dyn Transport>,
    /// The stall timeout (`stall_secs`, `--timeout`).
    stall: Duration,
    /// Holds the cancel token too (`retry.cancel`).
    retry: RetryPolicy,
    events: Option<Arc<EventSink>>,
    lock_wait: Duration,
    on_found: Option<Arc<OnFound>>,
    /// Versions the app answered [`Decision::Skip`] for, in this process.
    declined: Mutex<BTreeSet<VersionName>>,
    /// The token bucket every request of this updater is paced by (`transport` reads
    /// through it), its rate set before each operation ([`Updater::set_background`]).
    bandwidth: Arc<Bandwidth>,
    /// Background downloads: throttled by `max_bandwidth`, paused on a metered connection.
    background: bool,
    /// A limit for every operation, background or not ([`Updater::set_max_bandwidth`]).
    max_bandwidth: Option<Rate>,
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
    /// The install folder.
    pub fn install_dir(&self) -> &InstallDir {
        &self.install
    }

    pub(crate) fn emit(&self, event: Event) {
        if let Some(sink) = &self.events {
            sink(&event);
        }
    }

    fn history(&self, event: &str, fields: &[(&str, &str)]) {
        if let Err(err) = history::append(&self.install.history_path(), event, fields) {
            log::warn!("{err}");
        }
    }

    /// The settings as they are on disk now (a `channel` command may have changed them since
    /// [`Updater::open`]), with the channel the policy locks, and the policy.
    fn settings_now(&self) -> Result<(InstallSettings, Policy)> {
        let mut settings = InstallSettings::load(&self.install.install_settings_path())?;
        settings.url.clone_from(&self.settings.url);
        let policy = Policy::load(&self.install)?;
        if let Some(channel) = &policy.channel {
            settings.channel.clone_from(channel);
        }
        Ok((settings, policy))
    }

    /// The install's state.
    pub fn status(&self) -> Result<Status> {
        let config = LauncherConfig::load(&self.install.config_path())?;
        let bad = BadVersions::load(&self.install.bad_versions_path())?;
        // As the launcher reads it: a torn probation file is no probation (logged).
        let probation = load_probation(&self.install)
            .filter(|p| p.version == config.current)
            .map(|p| p.version);
        let (settings, policy) = self.settings_now()?;
        let install_id = InstallId::load_or_create(&self.install.install_id_path())?;
        Ok(Status {
            app: settings.app.clone(),
            current: config.current,
            previous: config.previous,
            installed: switch::installed_versions(&self.install)?,
            channel: settings.channel.clone(),
            platform: settings.platform.clone(),
            url: settings.url.clone(),
            bad_versions: bad.bad.into_iter().map(|b| b.version).collect(),
            probation,
            install_id: install_id.to_string(),
            groups: settings.groups.clone(),
            policy,
            proxy: match settings.proxies() {
                Ok(proxies) => proxies.route(&settings.url).map(|r| r.shown.clone()),
                Err(e) => Some(format!("unusable ({})", crate::error::chain(&e))),
            },
            ca_file: settings
                .ca_file
                .as_ref()
                .map(|name| self.install.state_dir().join(name)),
            mirrors: settings.mirrors.clone(),
            signed_mirrors: self.signed_mirrors.clone(),
        })
    }

    /// Follows `channel` from now on. The next update takes the newest release of that
    /// channel, even if its version is lower than the running one. Refused when the policy
    /// locks the channel.
    pub fn set_channel(&self, channel: &str) -> Result<String> {
        let _lock = InstallLock::acquire(&self.install, "channel", self.lock_wait)?;
        crate::manifest::check_label("channel", channel)?;
        let policy = Policy::load(&self.install)?;
        if let Some(locked) = &policy.channel
            && locked != channel
        {
            let source = policy
                .sources
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::Invalid(format!(
                "the policy ({source}) locks this install to channel {locked:?}; it cannot follow {channel:?}"
            )));
        }
        let path = self.install.install_settings_path();
        let mut settings = InstallSettings::load(&path)?;
        let old = std::mem::replace(&mut settings.channel, channel.to_string());
        settings.save(&path)?;
        self.history("channel", &[("from", &old), ("to", channel)]);
        Ok(old)
    }

    /// Refreshes the trusted metadata and looks for a release to take.
    pub fn check(&self) -> Result<Check> {
        let _lock = InstallLock::acquire(&self.install, "check", self.lock_wait)?;
        self.record_fallbacks();
        let mut run = Run::default();
        let result = self.check_locked(&mut run);
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
                let found = check.available.as_ref().map(|r| r.version().to_string());
                // `checked`, and `found` when there is a release: one append, one flush.
                let events: &[ReceiptEvent] = if found.is_some() {
                    &[ReceiptEvent::Checked, ReceiptEvent::Found]
                } else {
                    &[ReceiptEvent::Checked]
                };
                self.record_all(events, |r| {
                    r.from = Some(check.current.to_string());
                    r.to.clone_from(&found);
                });
                if let Some(release) = &check.available {
                    self.emit(Event::Found {
                        current: check.current.clone(),
                        available: release.version().clone(),
                    });
                }
            }
            Err(err) => self.failed("check", err, None),
        }
        self.post_receipts(&run);
        result
    }

    fn check_locked(&self, run: &mut Run) -> Result<Check> {
        let (check, _) = self.refresh_and_choose(run)?;
        Ok(check)
    }

    /// Refreshes the metadata (each role stored as it is verified) and, only if the whole
    /// refresh succeeded, picks the release to take.
    /// The receipts URL the refreshed metadata names goes to `run`.
    fn refresh_and_choose(&self, run: &mut Run) -> Result<(Check, Refreshed)> {
        self.network_rules()?;
        self.notice_hand_edit()?;
        let config = LauncherConfig::load(&self.install.config_path())?;
        let refreshed = refresh(
            &self.install,
            &self.settings,
            self.transport.as_ref(),
            &self.retry,
        )?;
        run.verified(&refreshed.trusted);
        let found = self.choose(&refreshed, &config.current)?;
        let check = Check {
            current: config.current,
            available: found.chosen,
            skipped: found.skipped,
            held_back: found.held_back,
            critical: found.critical,
            requests: refreshed.requests,
        };
        Ok((check, refreshed))
    }

    fn choose(&self, refreshed: &Refreshed, current: &VersionName) -> Result<Found> {
        let (settings, policy) = self.settings_now()?;
        let install_id = InstallId::load_or_create(&self.install.install_id_path())?;
        let declined = self.declined.lock().map(|d| d.clone()).unwrap_or_default();
        let chooser = Chooser {
            install: &self.install,
            settings: &settings,
            policy: &policy,
            install_id: &install_id,
            declined: &|v: &VersionName| declined.contains(v),
        };
        chooser.choose(&refreshed.releases, Some(current))
    }

    /// Makes a staged version current and removes versions beyond `keep`.
    pub fn apply(&self, staged: Staged) -> Result<UpdateReport> {
        let _lock = InstallLock::acquire(&self.install, "apply", self.lock_wait)?;
        let version = staged.version().clone();
        let result = self.apply_locked(staged, None, Instant::now());
        if let Err(err) = &result {
            self.failed("apply", err, Some(&version));
        }
        result
    }

    /// Switches to `staged` and prunes, keeping `started_from` too (the version a chain of
    /// updates started from, which the process running the chain may be running).
    /// `started`: when the step began, for the `switched` receipt's duration.
    fn apply_locked(
        &self,
        staged: Staged,
        started_from: Option<&VersionName>,
        started: Instant,
    ) -> Result<UpdateReport> {
        let record = InstalledRecord::load(&self.install, staged.version());
        if record
            .as_ref()
            .is_none_or(|r| !r.matches_by_stat(&self.install.version_dir(staged.version())))
        {
            return Err(Error::Invalid(format!(
                "{} is not staged (or was changed since); download it again",
                staged.version()
            )));
        }
        let version = staged.version().clone();
        let hooks = record.map(|record| record.hooks).unwrap_or_default();
        if let Some(hook) = &hooks.pre_switch {
            let current = LauncherConfig::load(&self.install.config_path())?.current;
            hooks::run_checked(
                &self.install,
                &version,
                appstart_layout::hooks::HookKind::PreSwitch,
                hook,
                &|run| self.record_hook(&current, &version, run),
            )?;
        }
        hooks::prepare_first_run(&self.install, &version, &hooks)?;
        let from = switch::switch_to(&self.install, &staged.manifest)?;
        // Whatever `update --download-only` staged was chosen from the install as it was
        // before this switch: it is no longer what `--apply` should switch to.
        appstart_layout::fsutil::remove_file_if_exists(&self.install.staged_path())?;
        let removed = switch::prune_keeping(&self.install, self.settings.keep, started_from)?;
        crate::fault::step("pruned");
        let to = staged.manifest.version.clone();
        let report = UpdateReport {
            from: from.clone(),
            to: Some(to.clone()),
            bytes_downloaded: staged.metadata_bytes + staged.content_bytes,
            metadata_bytes: staged.metadata_bytes,
            content_bytes: staged.content_bytes,
            files_reused: staged.report.files_reused,
            files_downloaded: staged.report.files_downloaded,
            plan: staged.plan(),
            removed,
            steps: vec![to],
            ..UpdateReport::nothing(from.clone(), 0)
        };
        self.history(
            "update",
            &[
                ("from", from.as_str()),
                ("to", staged.manifest.version.as_str()),
                ("bytes_downloaded", &report.bytes_downloaded.to_string()),
            ],
        );
        self.record(ReceiptEvent::Switched, |r| {
            r.from = Some(from.to_string());
            r.to = Some(staged.manifest.version.to_string());
            r.bytes = report.bytes_downloaded;
            r.duration_ms = millis(started.elapsed());
        });
        self.emit(Event::Switched {
            from,
            to: staged.manifest.version,
        });
        Ok(report)
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
            self.record(ReceiptEvent::RolledBack, |r| {
                r.from = Some(edit.from.to_string());
                r.to = Some(edit.to.to_string());
            });
        }
        Ok(())
    }

    /// Lets updates take `version` again after a rollback or a fallback marked it bad
    /// (`state/bad-versions.toml`). Returns whether it was marked.
    pub fn unskip(&self, version: &VersionName) -> Result<bool> {
        let _lock = InstallLock::acquire(&self.install, "unskip", self.lock_wait)?;
        let forgotten = BadVersions::forget(&self.install.bad_versions_path(), version)?;
        if forgotten {
            self.history("unskip", &[("version", version.as_str())]);
        }
        Ok(forgotten)
    }

    /// Switches back to the previous version, or to `to`. [`Error::NothingToDo`] when there
    /// is no previous version or `to` is the current one.
    pub fn rollback(&self, to: Option<&VersionName>) -> Result<(VersionName, VersionName)> {
        let _lock = InstallLock::acquire(&self.install, "rollback", self.lock_wait)?;
        let result = self
            .notice_hand_edit()
            .and_then(|()| switch::rollback(&self.install, to));
        match &result {
            Ok((from, to)) => {
                self.history("rollback", &[("from", from.as_str()), ("to", to.as_str())]);
                self.record(ReceiptEvent::RolledBack, |r| {
                    r.from = Some(from.to_string());
                    r.to = Some(to.to_string());
                });
            }
            Err(err) => self.failed("rollback", err, None),
        }
        result
    }

    /// Logs a failed operation, and records a `failed` receipt (`to`: the release it was
    /// taking, if any).
    fn failed(&self, what: &str, err: &Error, to: Option<&VersionName>) {
        if let Error::NothingToDo(_) = err {
            // A result, not a failure: nothing staged, nothing to roll back to.
            return;
        }
        let message = crate::error::chain(err);
        self.history("failed", &[("operation", what), ("error", &message)]);
        self.record_failure(err, to);
        self.emit(Event::Failed { message });
    }
}

/// `state/probation.toml`, read as the launcher reads it: a missing or unreadable file means
/// no probation (logged), so a torn state file never fails a command.
pub(super) fn load_probation(install: &InstallDir) -> Option<Probation> {
    let path = install.probation_path();
    Probation::load(&path).unwrap_or_else(|err| {
        log::warn!("ignoring {}: {err}", path.display());
        None
    })
}
