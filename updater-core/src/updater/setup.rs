//! Opening an install, and what an app sets on its [`Updater`] before it uses it: the
//! transport, timeouts, cancellation, events, the answer to a found release, bandwidth and the
//! lock wait. The operations themselves are in the module above.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Decision, Offer, Updater};
use crate::bandwidth::{Bandwidth, Rate, Throttled};
use crate::cancel::CancelToken;
use crate::download::RetryPolicy;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::mirrors::Mirrors;
use crate::network_cost::{self, MeteredMode};
use crate::settings::InstallSettings;
use crate::transport::{HttpTimeouts, Transport, for_url_via};
use crate::watched::Watched;
use appstart_layout::InstallDir;

impl Updater {
    /// Opens the install at `dir` (made by [`install`](super::install())). A folder that
    /// holds no install is an error that says so:
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
    pub(super) fn network_rules(&self) -> Result<()> {
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
}
