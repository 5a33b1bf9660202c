//! `Updater::update`: check, download and apply under one lock, through a chain of releases.
//!
//! One verified refresh serves the whole chain: each step chooses again from the same
//! metadata with the version just applied as the current one (1.0 → 2.0 → 3.0 when each
//! `from` requires the one before), up to [`MAX_CHAIN`] steps, until nothing is left to take,
//! a release marked `stop` was applied, or the app's `on_found` hook defers. A step that fails
//! after earlier ones were applied ends the chain with the error in the report: the install
//! is at the last version applied, complete and current.

use std::time::Instant;

use appstart_layout::VersionName;

use super::find::Found;
use super::receipts::Run;
use super::{Decision, MAX_CHAIN, Offer, UpdateReport, Updater};
use crate::error::Result;
use crate::events::Event;
use crate::lock::InstallLock;
use crate::receipts::ReceiptEvent;
use crate::release::Release;
use crate::switch;

impl Updater {
    /// Check, download and apply in one go, under one lock; then again from the version
    /// just applied, through a chain of releases (at most 16), until none is left
    /// to take or a release marked `stop` was applied.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), updater_core::Error> {
    /// let updater = updater_core::Updater::open("/opt/myapp")?;
    /// let report = updater.update()?;
    /// match &report.to {
    ///     Some(version) => println!("{} -> {version}: restart to use it", report.from),
    ///     None => println!("{} is up to date", report.from),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn update(&self) -> Result<UpdateReport> {
        let _lock = InstallLock::acquire(&self.install, "update", self.lock_wait)?;
        self.record_fallbacks();
        let mut run = Run::default();
        let result = self.update_locked(&mut run).map(|mut report| {
            report.max_bandwidth = self.bandwidth.rate().map(|rate| rate.bytes_per_second());
            report
        });
        if let Err(err) = &result {
            self.failed("update", err, run.taking.as_ref());
        }
        self.post_receipts(&run);
        result
    }

    fn update_locked(&self, run: &mut Run) -> Result<UpdateReport> {
        // A release is chosen only from a refresh that fully succeeded; the manifests are
        // then fetched with the metadata that refresh verified, not reloaded.
        let (check, refreshed) = self.refresh_and_choose(run)?;
        self.record(ReceiptEvent::Checked, |r| {
            r.from = Some(check.current.to_string());
            r.to = check.available.as_ref().map(|r| r.version().to_string());
        });
        crate::fault::step("refreshed");
        let mut report = UpdateReport::nothing(check.current.clone(), refreshed.bytes);
        report.held_back = check.held_back;
        let mut found = Found {
            chosen: check.available,
            critical: check.critical,
            ..Found::default()
        };
        let started_from = check.current.clone();
        let mut current = check.current;
        let mut refresh_bytes = refreshed.bytes;
        for _ in 0..MAX_CHAIN {
            let Some(release) = found.chosen.take() else {
                break;
            };
            let started = Instant::now();
            self.record(ReceiptEvent::Found, |r| {
                r.from = Some(current.to_string());
                r.to = Some(release.version().to_string());
            });
            match self.ask(&current, &release, found.critical) {
                Decision::Accept => {}
                Decision::Defer(wait) => {
                    self.history(
                        "deferred",
                        &[
                            ("version", release.version().as_str()),
                            ("seconds", &wait.as_secs().to_string()),
                        ],
                    );
                    report.deferred_secs = Some(wait.as_secs());
                    break;
                }
                Decision::Skip => {
                    if let Ok(mut declined) = self.declined.lock() {
                        declined.insert(release.version().clone());
                    }
                    self.history("declined", &[("version", release.version().as_str())]);
                    found = self.choose(&refreshed, &current)?;
                    report.held_back.clone_from(&found.held_back);
                    continue;
                }
            }
            self.emit(Event::Found {
                current: current.clone(),
                available: release.version().clone(),
            });
            run.taking = Some(release.version().clone());
            let step = self
                .download_locked(&refreshed.trusted, &release)
                .and_then(|mut staged| {
                    staged.metadata_bytes += std::mem::take(&mut refresh_bytes);
                    self.apply_locked(staged, Some(&started_from), started)
                });
            let mut step = match step {
                Ok(step) => step,
                // Nothing switched yet: the run failed as a whole.
                Err(err) if report.steps.is_empty() => return Err(err),
                // Versions were switched to before this step failed: report them, and the
                // error (the install is at the last version applied).
                Err(err) => {
                    self.failed("update", &err, run.taking.as_ref());
                    report.error = Some(crate::error::chain(&err));
                    break;
                }
            };
            run.taking = None;
            step.critical = found.critical;
            if report.steps.is_empty() {
                step.held_back = std::mem::take(&mut report.held_back);
                step.from = report.from.clone();
                report = step;
            } else {
                report.then(step);
            }
            current = release.version().clone();
            if release.custom.control.stop {
                report.stopped_at = Some(current.clone());
                self.history("stop", &[("version", current.as_str())]);
                break;
            }
            found = match self.choose(&refreshed, &current) {
                Ok(found) => found,
                Err(err) => {
                    self.failed("update", &err, None);
                    report.error = Some(crate::error::chain(&err));
                    break;
                }
            };
            report.held_back.clone_from(&found.held_back);
        }
        if report.steps.is_empty() {
            // Nothing applied: clear what an interrupted run may have left behind.
            switch::prune(&self.install, self.settings.keep)?;
            self.history(
                "check",
                &[("current", report.from.as_str()), ("available", "none")],
            );
        }
        Ok(report)
    }

    /// The app's decision on `release` (accept when it set no hook).
    fn ask(&self, current: &VersionName, release: &Release, critical: bool) -> Decision {
        let Some(decide) = &self.on_found else {
            return Decision::Accept;
        };
        decide(&Offer {
            current: current.clone(),
            version: release.version().clone(),
            custom: release.custom.data.clone(),
            critical,
        })
    }
}
