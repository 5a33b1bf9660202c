//! A background thread that checks for updates and applies them while the app runs.
//!
//! ```no_run
//! # fn main() -> Result<(), updater_core::Error> {
//! use std::time::Duration;
//! use updater_core::{Poller, PollerOptions, Updater};
//!
//! let updater = Updater::from_launcher_environment()?;
//! let mut poller = Poller::spawn(updater, PollerOptions::default(), |report| {
//!     println!("updated to {:?}; restart to use it", report.to);
//! });
//! // ... the app runs, and now and then (its main loop, a timer):
//! if poller.restart_requested() {
//!     // Save the user's work first, then:
//!     updater_core::request_restart();
//! }
//! // Stopping (or dropping) the poller cancels a round in progress and returns at once.
//! poller.stop();
//! # Ok(()) }
//! ```
//!
//! Each round takes the install lock without waiting: if a CLI update holds it, the round is
//! skipped. Its downloads are background ones ([`crate::Updater::set_background`]): throttled
//! to the install's and the policy's `max_bandwidth`, and on a metered connection the round
//! is skipped with an [`crate::Event::Paused`]. Failures are reported as [`crate::Event::Failed`] and retried next round; the
//! installation is never left half-changed.
//!
//! Stopping: [`Poller::stop`] and `Drop` cancel the poller's [`CancelToken`] and join the
//! thread. A round in progress sees the token at its next network read (at most a few tens
//! of milliseconds, even on a stalled server) or file, unwinds, and leaves the install as it
//! was, keeping verified downloads for the next round.
//!
//! Release control (`docs/rollout.md`): the app's [`crate::Updater::on_found`] hook is asked
//! before each download, and a [`crate::Decision::Defer`] sets the wait before the next
//! round (at least a second). After a critical release is applied, the poller calls
//! `on_update`, then (with `restart_on_critical`) asks for a restart: it never ends the
//! process itself, since the app may have unsaved work. [`Poller::restart_requested`] turns
//! true and [`crate::Event::RestartRequested`] goes to the updater's event sink; the app
//! calls [`request_restart`] from its own thread when it is ready. A release marked `stop`
//! holds back anything newer until it has run (the updater's rule, see `docs/rollout.md`),
//! so the poller needs nothing of its own for it. The hook runs while the install lock is
//! held: it must answer quickly (ask the user later with `Defer`).
//!
//! Push (`crate::push`, `docs/embedding.md`): when the trusted metadata names a push URL
//! (`appupdate repo push`), the poller keeps one subscriber thread listening to it, from its
//! start (the stored metadata) and after each round. An announced timestamp version above the
//! trusted one wakes the poller for a normal, fully verified round after a random 0-2 s,
//! at most once per 30 s (up to 3 more, 30 s apart, while the trusted version stays below
//! the announced one: a CDN may serve the old timestamp for a while). The push carries no
//! trust and replaces nothing: interval rounds go on as set, whether the push connection is
//! up or not, and stopping ends the subscriber too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::error::Error;
use crate::events::Event;
use crate::push::link::PushLink;
use crate::push::subscriber::random_unit;
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
    /// After applying a critical release (and calling `on_update`), ask the app to restart:
    /// [`Poller::restart_requested`] turns true and [`Event::RestartRequested`] is sent. The
    /// app then calls [`request_restart`] when it is ready; the poller never exits the
    /// process. Default: on.
    pub restart_on_critical: bool,
    /// Fail a request after this long without data from the server, once (a stall is not
    /// retried). `None`: the install's `stall_secs` (default 30 s). Default: `None`.
    pub timeout: Option<Duration>,
}

impl Default for PollerOptions {
    fn default() -> Self {
        PollerOptions {
            initial_delay: Duration::from_secs(10),
            interval: Duration::from_secs(3600),
            jitter: 0.2,
            restart_on_critical: true,
            timeout: None,
        }
    }
}

/// A running background poller. [`Poller::stop`] or dropping it cancels a round in progress
/// and stops the thread, returning within about a second.
#[derive(Debug)]
pub struct Poller {
    stop: Option<mpsc::Sender<Wake>>,
    cancel: CancelToken,
    restart: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    /// Starts polling. `on_update` runs on the poller thread after each switch to a new
    /// version; a typical app tells the user, and restarts later from its own thread with
    /// [`crate::request_restart`]. The poller gives `updater` its own [`CancelToken`].
    pub fn spawn(
        updater: Updater,
        options: PollerOptions,
        on_update: impl Fn(&UpdateReport) + Send + 'static,
    ) -> Poller {
        let (stop, wakes) = mpsc::channel::<Wake>();
        let cancel = CancelToken::new();
        let restart = Arc::new(AtomicBool::new(false));
        let mut updater = updater.with_cancel(cancel.clone());
        updater.set_lock_wait(Duration::ZERO);
        // Its downloads are background ones: throttled and paused on a metered connection.
        updater.set_background(true);
        if let Some(timeout) = options.timeout {
            updater.set_timeout(timeout);
        }
        let restart_flag = Arc::clone(&restart);
        let pushed = stop.clone();
        let token = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("appstart-poller".into())
            .spawn(move || {
                // Push (`crate::push`): subscribe at once from the stored metadata, so a
                // long first delay does not delay it.
                let mut push = PushLink::new(move || {
                    let _ = pushed.send(Wake::Push);
                });
                push.follow(&updater);
                let mut next_poll = Instant::now() + options.initial_delay;
                loop {
                    let due = push.due().map_or(next_poll, |due| due.min(next_poll));
                    match wakes.recv_timeout(due.saturating_duration_since(Instant::now())) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(Wake::Push) => push.woken(Instant::now()),
                        Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                    if token.is_cancelled() {
                        break;
                    }
                    let now = Instant::now();
                    if push.take_due(now) {
                        log::info!("a push announced a new timestamp version: checking now");
                    } else if now < next_poll {
                        continue;
                    }
                    let extra = options
                        .interval
                        .mul_f64(options.jitter.clamp(0.0, 1.0) * random_unit());
                    next_poll = now + options.interval + extra;
                    match updater.update() {
                        Ok(report) => {
                            if let Some(to) = &report.to {
                                on_update(&report);
                                if report.critical && options.restart_on_critical {
                                    log::warn!(
                                        "critical update to {to} applied; asking the app to restart"
                                    );
                                    restart_flag.store(true, Ordering::SeqCst);
                                    updater.emit(Event::RestartRequested {
                                        version: to.clone(),
                                    });
                                }
                            }
                            if let Some(error) = &report.error {
                                log::warn!("background update stopped part-way: {error}");
                            }
                            if let Some(deferred) = report.deferred_secs {
                                // At least a second: a hook answering Defer(0) must not
                                // turn the poller into a busy loop of metadata refreshes.
                                next_poll = Instant::now() + Duration::from_secs(deferred.max(1));
                            }
                        }
                        Err(Error::Cancelled) => break,
                        Err(Error::Locked { .. }) => {
                            log::info!("another updater is working; skipping this round")
                        }
                        // A metered connection (the updater sent Event::Paused).
                        Err(Error::NothingToDo(why)) => {
                            log::info!("skipping this round: {why}")
                        }
                        Err(err) => {
                            log::warn!("background update failed: {}", crate::error::chain(&err))
                        }
                    }
                    push.follow(&updater);
                }
                push.stop();
            })
            .ok();
        Poller {
            stop: Some(stop),
            cancel,
            restart,
            thread,
        }
    }

    /// Whether a critical update was applied and the app should restart
    /// ([`PollerOptions::restart_on_critical`]): call [`request_restart`] when ready.
    pub fn restart_requested(&self) -> bool {
        self.restart.load(Ordering::SeqCst)
    }

    /// Cancels a round in progress (the install stays as it was) and stops the thread.
    /// Returns once it has ended: within about a second, even on a stalled server. Calling
    /// it again does nothing.
    pub fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(stop) = self.stop.take() {
            // The push subscriber holds a sender too: say it, rather than hang up.
            let _ = stop.send(Wake::Stop);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What wakes the poller thread before its next round is due.
#[derive(Debug)]
enum Wake {
    /// [`Poller::stop`].
    Stop,
    /// The push subscriber heard of a newer timestamp version.
    Push,
}

/// Ends the process with the launcher's restart code, so `appstart` starts the (new) current
/// version. Outside the launcher (no `APPSTART_RESTART_CODE`), returns without exiting.
///
/// Call it from the app's own thread once its work is saved (for instance when
/// [`Poller::restart_requested`] is true): it exits at once, without running destructors.
pub fn request_restart() {
    if let Some(code) = restart_code() {
        std::process::exit(code);
    }
}

/// The launcher's restart code, from `APPSTART_RESTART_CODE`.
pub fn restart_code() -> Option<i32> {
    std::env::var("APPSTART_RESTART_CODE").ok()?.parse().ok()
}
