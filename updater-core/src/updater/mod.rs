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
mod stage;

pub use install::{InstallOptions, install};
pub use later::DownloadReport;
pub use offer::{Decision, Offer};
pub use repair::{RepairReport, VerifyReport};
pub use reports::{Check, Plan, Skipped, Staged, Status, UpdateReport};

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appstart_layout::state::{BadVersions, Probation};
use appstart_layout::{InstallDir, LauncherConfig, VersionName, history};

use crate::bandwidth::{Bandwidth, Rate, Throttled};
use crate::cancel::CancelToken;
use crate::control::install_id::InstallId;
use crate::control::policy::Policy;
use crate::download::RetryPolicy;
use crate::error::{Error, Result};
use crate::events::{Event, EventSink};
use crate::lock::InstallLock;
use crate::manifest_fetch::{ManifestSource, fetch_manifest, pack_data_start};
use crate::metered::Metered;
use crate::mirrors::Mirrors;
use crate::network_cost::{self, MeteredMode};
use crate::receipts::ReceiptEvent;
use crate::release::Release;
use crate::settings::InstallSettings;
use crate::stage::{InstalledRecord, Records};
use crate::switch;
use crate::tls::TlsTrust;
use crate::transport::{HttpTimeouts, Transport, for_url_via};
use crate::tuf::client::{Limits, TrustedMetadata};
use crate::watched::Watched;
use find::{Chooser, Found, Refreshed, refresh};
use offer::OnFound;
use receipts::{Run, millis};
use stage::{local_files, stage_version};

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
    /// Opens the install at `dir` (made by [`install`]). A folder that holds no install is
    /// an error that says so:
    ///
    /// ```
    /// let err = updater_core::Updater::open("/no/such/install").unwrap_err();
    /// assert_eq!(err.code(), "not-installed");
    /// ```
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let install = InstallDir::new(dir);
        let settings = InstallSettings::load(&install.install_settings_path())?;
        let stall = Duration::from_secs(settings.stall_secs);
        let trust = settings.tls_trust(&install.state_dir())?;
        let raw_transport: Arc<dyn Transport> = Arc::from(for_url_via(
            &settings.url,
            HttpTimeouts::backstop(stall),
            settings.proxies()?,
            &trust,
        )?);
        let retry = RetryPolicy {
            attempts: settings.attempts,
            ..RetryPolicy::default()
        };
        // Mirrors: the install's URL, its `--mirror`s, then the signed list of the last
        // verified targets role (a change takes effect when the install is opened again),
        // every request throttled by the one bucket of this updater (crate::bandwidth).
        let signed_mirrors = crate::mirrors::signed::stored(&install.metadata_dir());
        let bandwidth = Bandwidth::new();
        let transport = Box::new(Throttled::new(
            Box::new(Mirrors::for_install(
                &settings,
                &signed_mirrors,
                &install.state_dir(),
                &trust,
                stall,
                &retry.cancel,
            )?),
            Arc::clone(&bandwidth),
            retry.cancel.clone(),
        ));
        Ok(Updater {
            install,
            settings,
            trust,
            raw_transport,
            app_transport: false,
            signed_mirrors,
            transport,
            stall,
            retry,
            events: None,
            lock_wait: Duration::from_secs(30),
            on_found: None,
            declined: Mutex::new(BTreeSet::new()),
            bandwidth,
            background: false,
            max_bandwidth: None,
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

    /// Asks `decide` before a found release is downloaded by [`Updater::update`] (and so by
    /// the [`crate::Poller`]): accept it, defer it, or skip it for the life of this process.
    pub fn on_found(&mut self, decide: impl Fn(&Offer) -> Decision + Send + Sync + 'static) {
        self.on_found = Some(Arc::new(decide));
    }

    /// Uses `transport` instead of the one chosen by the URL scheme (still watched for
    /// stalls and cancellation).
    pub fn set_transport(&mut self, transport: Box<dyn Transport>) {
        self.raw_transport = Arc::from(transport);
        self.app_transport = true;
        self.rewatch();
    }

    /// Stops this updater's operations when `cancel` is cancelled: every network read, wait
    /// between retries and file loop checks it, and the operation returns
    /// [`Error::Cancelled`], leaving the install as it was and verified downloads cached
    /// for the next run. The [`crate::Poller`] uses this to stop.
    #[must_use]
    pub fn with_cancel(mut self, cancel: CancelToken) -> Self {
        self.retry.cancel = cancel;
        self.rewatch();
        self
    }

    /// The token that cancels this updater's operations (a new one unless
    /// [`Updater::with_cancel`] gave one).
    pub fn cancel_token(&self) -> CancelToken {
        self.retry.cancel.clone()
    }

    /// Fails a request after `timeout` without any data from the server, once (a stall is
    /// not retried). Default: `stall_secs` of `state/install.toml` (30 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.stall = timeout;
        // The transport chosen by the scheme gets its own (longer) backstop to match; an
        // app's transport is kept as it is.
        if !self.app_transport
            && let Ok(proxies) = self.settings.proxies()
            && let Ok(fresh) = for_url_via(
                &self.settings.url,
                HttpTimeouts::backstop(timeout),
                proxies,
                &self.trust,
            )
        {
            self.raw_transport = Arc::from(fresh);
        }
        self.rewatch();
    }

    fn rewatch(&mut self) {
        // The install's own transport: its bases, each watched (crate::mirrors); either way
        // throttled by this updater's bucket (crate::bandwidth).
        if !self.app_transport {
            match Mirrors::for_install(
                &self.settings,
                &self.signed_mirrors,
                &self.install.state_dir(),
                &self.trust,
                self.stall,
                &self.retry.cancel,
            ) {
                Ok(mirrors) => {
                    self.transport = Box::new(Throttled::new(
                        Box::new(mirrors),
                        Arc::clone(&self.bandwidth),
                        self.retry.cancel.clone(),
                    ));
                    return;
                }
                Err(err) => log::warn!("{err}; using the repository URL only"),
            }
        }
        self.transport = Box::new(Throttled::new(
            Box::new(Watched::new(
                Arc::clone(&self.raw_transport),
                self.retry.cancel.clone(),
                self.stall,
            )),
            Arc::clone(&self.bandwidth),
            self.retry.cancel.clone(),
        ));
    }

    /// Marks this updater's work as background downloads (the [`crate::Poller`] does,
    /// and `appupdate update --background`): they are throttled to the lower of the
    /// install's `max_bandwidth` and the policy's, and a check or update on a metered
    /// connection does nothing and returns [`Error::NothingToDo`] (unless `metered =
    /// "allow"`), after an [`Event::Paused`]. Foreground work (the default) runs at full
    /// speed. See `docs/rollout.md`, "Bandwidth and metered connections".
    pub fn set_background(&mut self, background: bool) {
        self.background = background;
    }

    /// Limits every download of this updater to `bytes_per_second` (at least 1024), in the
    /// foreground too (`appupdate update --max-bandwidth`); `None` removes that limit. In
    /// the background the lowest of this, the install's and the policy's limit applies.
    pub fn set_max_bandwidth(&mut self, bytes_per_second: Option<u64>) {
        self.max_bandwidth = bytes_per_second.map(Rate::from_bytes_per_second);
    }

    /// Sets the rate for the operation starting now and, in the background, pauses it on
    /// a metered connection ([`Updater::set_background`]).
    fn network_rules(&self) -> Result<()> {
        let (settings, policy) = self.settings_now()?;
        let background = if self.background {
            policy.background_rate(settings.max_bandwidth)
        } else {
            None
        };
        let rate = match (background, self.max_bandwidth) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.bandwidth.set_rate(rate);
        if self.background
            && policy.metered_mode(settings.metered) == MeteredMode::Pause
            && network_cost::is_metered()
        {
            let reason = "metered connection (background downloads pause there; `metered = \"allow\"` in policy.toml or `appupdate settings --metered allow` lets them run)".to_string();
            log::info!("{reason}");
            self.history("paused", &[("reason", "metered")]);
            self.emit(Event::Paused {
                reason: reason.clone(),
            });
            return Err(Error::NothingToDo(reason));
        }
        Ok(())
    }

    /// How long to wait for another updater holding the install lock (default 30 s).
    pub fn set_lock_wait(&mut self, wait: Duration) {
        self.lock_wait = wait;
    }

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
        let probation = Probation::load(&self.install.probation_path())?
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

    fn download_locked(&self, trusted: &TrustedMetadata, release: &Release) -> Result<Staged> {
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
