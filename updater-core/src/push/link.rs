//! [`PushLink`]: the [`crate::Poller`]'s side of push. It keeps one [`Subscriber`] that
//! matches the trusted metadata, and decides when an announcement may trigger a check.
//!
//! After every round (and once at start) the poller calls [`PushLink::follow`], which reads
//! the stored trusted metadata: the timestamp version becomes the one announcements must
//! beat, and the subscriber is started, replaced or stopped to match the signed push URL.
//!
//! When an announcement wakes the poller, the check is due after a random spread of up to
//! [`SPREAD`] (so a fleet's checks do not all hit the repository in the same instant), and
//! no sooner than [`MIN_GAP`] after the previous push-triggered check: a lying or flapping
//! push server costs at most one extra check per [`MIN_GAP`]. A genuine announcement that
//! comes within that gap is not lost, only delayed to its end. A check that still trusts a
//! version below the one announced (a CDN edge may serve the old `timestamp.json` for a
//! while, or the round failed) is tried again [`RETRIES`] times, [`MIN_GAP`] apart. Interval
//! polling is not touched by any of this.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::subscriber::{Subscriber, random_unit};
use crate::updater::Updater;

/// The longest random wait between an announcement and its check.
pub(crate) const SPREAD: Duration = Duration::from_secs(2);

/// The shortest time between two checks triggered by push.
pub(crate) const MIN_GAP: Duration = Duration::from_secs(30);

/// How many more push-triggered checks follow one that still trusts an older version.
pub(crate) const RETRIES: u32 = 3;

/// The poller's push state.
pub(crate) struct PushLink {
    subscriber: Option<Subscriber>,
    /// The trusted timestamp version, shared with the subscriber.
    known: Arc<AtomicU64>,
    /// The highest version announced (by the subscriber's thread).
    announced: Arc<AtomicU64>,
    /// Checks left for the last announcement, while the trusted version is below it.
    retries: u32,
    /// An announcement woke the poller and it has not taken it yet (bounds the wake-ups).
    pending: Arc<AtomicBool>,
    wake: Arc<dyn Fn() + Send + Sync>,
    /// When the check an announcement asked for is due.
    due: Option<Instant>,
    /// When the last push-triggered check ran.
    last: Option<Instant>,
}

impl PushLink {
    /// A link that calls `wake` (from the subscriber's thread) when an announcement needs
    /// the poller's attention.
    pub(crate) fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        PushLink {
            subscriber: None,
            known: Arc::new(AtomicU64::new(0)),
            announced: Arc::new(AtomicU64::new(0)),
            retries: 0,
            pending: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(wake),
            due: None,
            last: None,
        }
    }

    /// Matches the subscription to `updater`'s stored trusted metadata.
    pub(crate) fn follow(&mut self, updater: &Updater) {
        let state = updater.push_state();
        self.known.store(state.timestamp_version, Ordering::SeqCst);
        self.retry_if_behind(Instant::now());
        let current = self.subscriber.as_ref().map(Subscriber::url);
        if current == state.url.as_deref() {
            return;
        }
        self.stop();
        let Some(url) = state.url else {
            return;
        };
        let Some(transport) = updater.push_transport() else {
            return;
        };
        let pending = Arc::clone(&self.pending);
        let announced = Arc::clone(&self.announced);
        let wake = Arc::clone(&self.wake);
        self.subscriber = Some(Subscriber::spawn(
            &url,
            transport,
            Arc::clone(&self.known),
            move |version| {
                announced.fetch_max(version, Ordering::SeqCst);
                if !pending.swap(true, Ordering::SeqCst) {
                    wake();
                }
            },
        ));
    }

    /// The poller took a wake-up at `now`: schedules the check (see the module docs).
    pub(crate) fn woken(&mut self, now: Instant) {
        self.pending.store(false, Ordering::SeqCst);
        self.retries = RETRIES;
        self.schedule(now);
    }

    /// After a round at `now`: schedules another check while the trusted version is still
    /// below the announced one, [`RETRIES`] times at most.
    fn retry_if_behind(&mut self, now: Instant) {
        let behind = self.announced.load(Ordering::SeqCst) > self.known.load(Ordering::SeqCst);
        if behind && self.due.is_none() && self.retries > 0 {
            self.retries -= 1;
            self.schedule(now);
        }
    }

    /// Sets the check due no sooner than [`MIN_GAP`] after the last, plus the spread.
    fn schedule(&mut self, now: Instant) {
        if self.due.is_none() {
            let earliest = self.last.map_or(now, |last| (last + MIN_GAP).max(now));
            self.due = Some(earliest + SPREAD.mul_f64(random_unit()));
        }
    }

    /// When the push-triggered check is due, if one is.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Whether a push-triggered check is due at `now`; if so it counts as run.
    pub(crate) fn take_due(&mut self, now: Instant) -> bool {
        match self.due {
            Some(due) if due <= now => {
                self.due = None;
                self.last = Some(now);
                true
            }
            _ => false,
        }
    }

    /// Ends the subscription (returns at once).
    pub(crate) fn stop(&mut self) {
        if let Some(mut subscriber) = self.subscriber.take() {
            subscriber.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_checks_are_spread_and_at_most_one_per_gap() {
        let mut link = PushLink::new(|| {});
        let start = Instant::now();
        link.woken(start);
        let first = link.due().expect("a check is due");
        assert!(first >= start && first <= start + SPREAD);
        assert!(!link.take_due(start - Duration::from_millis(1)));
        assert!(link.take_due(first));
        assert!(link.due().is_none());
        // Another announcement right away: due no sooner than MIN_GAP after the last.
        link.woken(first + Duration::from_secs(1));
        let second = link.due().expect("delayed, not lost");
        assert!(second >= first + MIN_GAP && second <= first + MIN_GAP + SPREAD);
        // More announcements meanwhile do not move it.
        link.woken(first + Duration::from_secs(2));
        assert_eq!(link.due(), Some(second));
    }

    #[test]
    fn a_check_that_still_trusts_an_older_version_is_retried_a_few_times() {
        let mut link = PushLink::new(|| {});
        link.known.store(5, Ordering::SeqCst);
        link.announced.store(6, Ordering::SeqCst);
        let mut now = Instant::now();
        link.woken(now);
        let mut checks = 0;
        for _ in 0..10 {
            let Some(due) = link.due() else { break };
            now = due;
            assert!(link.take_due(now));
            checks += 1;
            // The round found the old timestamp still: the link schedules another.
            link.retry_if_behind(now);
        }
        assert_eq!(checks, 1 + RETRIES);
        // Once the trusted version caught up, nothing more.
        link.woken(now);
        let due = link.due().unwrap();
        assert!(link.take_due(due));
        link.known.store(6, Ordering::SeqCst);
        link.retry_if_behind(due);
        assert!(link.due().is_none());
    }
}
