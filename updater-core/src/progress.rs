//! Counting a phase's bytes and files and sending [`Event::Progress`], throttled.
//!
//! Why a meter of its own: the work that moves bytes runs on several threads (rayon in the
//! publisher, the writer threads of staging) and deep inside readers (the metered transport
//! counts each body read), while the receiver (a progress bar, a JSON line per event) wants
//! few events, in order. So counts are atomics anyone may add to, and events go out under
//! one lock, at most one per [`INTERVAL`], plus one when the phase starts and one when it
//! ends. Reading the counts under that lock makes each event's counts at least the previous
//! one's: they never go back, and never past their totals.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::events::{Event, EventSink, Phase, Progress};

/// Shortest time between two progress events of a phase (so at most ten a second).
pub const INTERVAL: Duration = Duration::from_millis(100);

/// The counts of one phase, and where its events go.
pub struct ProgressMeter {
    sink: Option<Arc<EventSink>>,
    phase: Phase,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    files_done: AtomicU64,
    files_total: AtomicU64,
    started: AtomicBool,
    /// When the last event went out; `None` once the phase has ended.
    last: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for ProgressMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressMeter")
            .field("phase", &self.phase)
            .field("bytes_done", &self.bytes_done)
            .field("bytes_total", &self.bytes_total)
            .finish_non_exhaustive()
    }
}

impl ProgressMeter {
    /// A meter for `phase` whose totals are not known yet ([`ProgressMeter::start`] sets
    /// them); counts added before then are kept, and no event goes out.
    pub fn new(sink: Option<Arc<EventSink>>, phase: Phase) -> Self {
        ProgressMeter {
            sink,
            phase,
            bytes_done: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
            started: AtomicBool::new(false),
            last: Mutex::new(Some(Instant::now())),
        }
    }

    /// A meter that is started at once with these totals (sends the first event).
    pub fn started(
        sink: Option<Arc<EventSink>>,
        phase: Phase,
        bytes_total: u64,
        files_total: u64,
    ) -> Self {
        let meter = ProgressMeter::new(sink, phase);
        meter.start(bytes_total, files_total);
        meter
    }

    /// Sets the totals and sends the phase's first event.
    pub fn start(&self, bytes_total: u64, files_total: u64) {
        self.bytes_total.store(bytes_total, Ordering::Relaxed);
        self.files_total.store(files_total, Ordering::Relaxed);
        self.started.store(true, Ordering::Relaxed);
        self.emit(true, false);
    }

    /// Counts `bytes` more done.
    pub fn add_bytes(&self, bytes: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        self.emit(false, false);
    }

    /// Counts one more file done, with `bytes` more bytes (its bytes not yet counted).
    pub fn file_done(&self, bytes: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.emit(false, false);
    }

    /// Ends the phase successfully: sends its last event, with the counts at their totals.
    /// Nothing is sent after it.
    pub fn finish(&self) {
        if self.started.load(Ordering::Relaxed) {
            self.emit(true, true);
        }
    }

    /// The bytes counted so far (not capped by the total).
    pub fn bytes_done(&self) -> u64 {
        self.bytes_done.load(Ordering::Relaxed)
    }

    /// Sends an event if one is due (`force`: now), under the lock so events stay in order.
    fn emit(&self, force: bool, last: bool) {
        let Some(sink) = &self.sink else { return };
        if !self.started.load(Ordering::Relaxed) {
            return;
        }
        let mut guard = match self.last.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(previous) = *guard else {
            return; // The phase has ended.
        };
        let now = Instant::now();
        if !force && now.duration_since(previous) < INTERVAL {
            return;
        }
        let bytes_total = self.bytes_total.load(Ordering::Relaxed);
        let files_total = self.files_total.load(Ordering::Relaxed);
        let (bytes_done, files_done) = if last {
            (bytes_total, files_total)
        } else {
            (
                self.bytes_done.load(Ordering::Relaxed).min(bytes_total),
                self.files_done.load(Ordering::Relaxed).min(files_total),
            )
        };
        *guard = (!last).then_some(now);
        sink(&Event::Progress(Progress {
            phase: self.phase,
            bytes_done,
            bytes_total,
            files_done,
            files_total,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(run: impl FnOnce(&ProgressMeter)) -> Vec<Progress> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let seen = Arc::clone(&seen);
            Arc::new(move |event: &Event| {
                if let Event::Progress(progress) = event {
                    seen.lock().expect("test lock").push(*progress);
                }
            }) as Arc<EventSink>
        };
        let meter = ProgressMeter::new(Some(sink), Phase::Download);
        run(&meter);
        seen.lock().expect("test lock").clone()
    }

    #[test]
    fn first_and_last_events_always_go_out_and_the_last_reaches_the_totals() {
        let events = recorded(|meter| {
            meter.add_bytes(5); // Before start: counted, not sent.
            meter.start(100, 2);
            meter.file_done(40);
            meter.add_bytes(1000); // Past the total (a bridged gap): capped.
            meter.finish();
            meter.add_bytes(1); // After the end: never sent.
        });
        let first = events.first().expect("a first event");
        assert_eq!((first.bytes_done, first.bytes_total), (5, 100));
        let last = events.last().expect("a last event");
        assert_eq!((last.bytes_done, last.files_done), (100, 2));
        // Two forced events, and nothing else in under 100 ms (unless the machine stalled).
        assert!(events.len() >= 2);
        for pair in events.windows(2) {
            assert!(pair[1].bytes_done >= pair[0].bytes_done);
            assert!(pair[1].bytes_done <= pair[1].bytes_total);
        }
    }

    #[test]
    fn counts_from_many_threads_stay_in_order() {
        let events = recorded(|meter| {
            meter.start(4 * 10_000, 4 * 10_000);
            std::thread::scope(|scope| {
                for _ in 0..4 {
                    scope.spawn(|| {
                        for _ in 0..10_000 {
                            meter.file_done(1);
                        }
                    });
                }
            });
            meter.finish();
        });
        for pair in events.windows(2) {
            assert!(pair[1].bytes_done >= pair[0].bytes_done);
            assert!(pair[1].files_done >= pair[0].files_done);
        }
        let last = events.last().expect("a last event");
        assert_eq!(last.files_done, 40_000);
    }

    #[test]
    fn a_meter_without_a_sink_or_never_started_sends_nothing() {
        let meter = ProgressMeter::new(None, Phase::Verify);
        meter.start(1, 1);
        meter.finish();
        assert!(recorded(|meter| meter.add_bytes(3)).is_empty());
        assert!(recorded(|meter| meter.finish()).is_empty());
    }
}
