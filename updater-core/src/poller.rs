//! A background thread that checks for updates and applies them while the app runs.
//!
//! ```no_run
//! # fn main() -> Result<(), updater_core::Error> {
//! use std::time::Duration;
//! use updater_core::{Poller, PollerOptions, Updater};
//!
//! let updater = Updater::from_launcher_environment()?;
//! let poller = Poller::spawn(updater, PollerOptions::default(), |report| {
//!     println!("updated to {:?}; restart to use it", report.to);
//! });
//! // ... the app runs; dropping `poller` stops the thread.
//! # drop(poller);
//! # Ok(()) }
//! ```
//!
//! Each round takes the install lock without waiting: if a CLI update holds it, the round is
//! skipped. Failures are reported as [`crate::Event::Failed`] and retried next round; the
//! installation is never left half-changed.
//!
//! Release control (`docs/rollout.md`): the app's [`crate::Updater::on_found`] hook is asked
//! before each download, and a [`crate::Decision::Defer`] sets the wait before the next
//! round (at least a second). After a critical release is applied, the poller calls
//! `on_update` and then [`request_restart`], which ends the process with the launcher's
//! restart code from the poller thread: an app that must save its work first turns
//! `restart_on_critical` off and restarts itself from `on_update` when `report.critical`. A
//! release marked `stop` holds back anything newer until it has run (the updater's rule, see
//! `docs/rollout.md`), so the poller needs nothing of its own for it. The hook runs while the
//! install lock is held: it must answer quickly (ask the user later with `Defer`).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::Error;
use crate::updater::{UpdateReport, Updater};

/// When to poll. Start from `PollerOptions::default()` and set the fields you need.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PollerOptions {
    /// Wait before the first check (let the app start first). Default: 10 s.
    pub initial_delay: Duration,
    /// Wait between checks. Default: 1 hour.
    pub interval: Duration,
    /// Up to this fraction of `interval` is added at random, so clients spread out
    /// (clamped to 0..=1). Default: 0.2.
    pub jitter: f64,
    /// After applying a critical release, restart the app at once ([`request_restart`],
    /// after `on_update`). Default: on.
    pub restart_on_critical: bool,
}

impl Default for PollerOptions {
    fn default() -> Self {
        PollerOptions {
            initial_delay: Duration::from_secs(10),
            interval: Duration::from_secs(3600),
            jitter: 0.2,
            restart_on_critical: true,
        }
    }
}

/// A running background poller. Dropping it stops the thread (waiting for a round in
/// progress to finish, so no update is cut off halfway).
#[derive(Debug)]
pub struct Poller {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    /// Starts polling. `on_update` runs on the poller thread after each switch to a new
    /// version; a typical app tells the user, or calls [`crate::request_restart`].
    pub fn spawn(
        mut updater: Updater,
        options: PollerOptions,
        on_update: impl Fn(&UpdateReport) + Send + 'static,
    ) -> Poller {
        let (stop, stopped) = mpsc::channel::<()>();
        updater.set_lock_wait(Duration::ZERO);
        let thread = std::thread::Builder::new()
            .name("appstart-poller".into())
            .spawn(move || {
                let mut wait = options.initial_delay;
                loop {
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let extra = options
                        .interval
                        .mul_f64(options.jitter.clamp(0.0, 1.0) * random_unit());
                    wait = options.interval + extra;
                    match updater.update() {
                        Ok(report) => {
                            if report.to.is_some() {
                                on_update(&report);
                                if report.critical && options.restart_on_critical {
                                    log::warn!("critical update applied; restarting the app");
                                    request_restart();
                                }
                            }
                            if let Some(error) = &report.error {
                                log::warn!("background update stopped part-way: {error}");
                            }
                            if let Some(deferred) = report.deferred_secs {
                                // At least a second: a hook answering Defer(0) must not
                                // turn the poller into a busy loop of metadata refreshes.
                                wait = Duration::from_secs(deferred.max(1));
                            }
                        }
                        Err(Error::Locked { .. }) => {
                            log::info!("another updater is working; skipping this round")
                        }
                        Err(err) => {
                            log::warn!("background update failed: {}", crate::error::chain(&err))
                        }
                    }
                }
            })
            .ok();
        Poller {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// Ends the process with the launcher's restart code, so `appstart` starts the (new) current
/// version. Outside the launcher (no `APPSTART_RESTART_CODE`), returns without exiting.
pub fn request_restart() {
    if let Some(code) = restart_code() {
        std::process::exit(code);
    }
}

/// The launcher's restart code, from `APPSTART_RESTART_CODE`.
pub fn restart_code() -> Option<i32> {
    std::env::var("APPSTART_RESTART_CODE").ok()?.parse().ok()
}
