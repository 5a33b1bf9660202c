//! The fleet summary: what `GET /fleet.json`, `appupdate fleet` and the fleet page show.
//!
//! Everything counts **installs** (distinct install ids), never receipts: an install that
//! checks a hundred times, or posts one batch twice, is one install.
//!
//! - `installs`: installs that sent anything.
//! - `by_version`: each install's latest known current version. An install's receipts are
//!   ordered newest first by `at`, then by arrival (receipts of one second keep the order the
//!   install sent them in); the first that tells a version decides. `switched`, `fell_back`
//!   and `rolled_back` tell the version the install moved *to* (`to`); every other event tells
//!   the version it was running when it wrote the receipt (`from`): a `found 1.0.0 -> 2.0.0`
//!   install still runs 1.0.0 until it switches. Installs none of whose receipts tell a
//!   version (only `from`-less receipts) are counted in `unknown_version`.
//! - `releases`: per app and version, the installs that found, downloaded, staged, switched
//!   to it, fell back from it, rolled back from it, and failed on it (with `failed_by_error`
//!   by stable code), and `wave`: switched / found in percent, how far a rollout went.
//! - `timeline`: installs by current version at the end of each of the last
//!   [`TIMELINE_HOURS`] hours up to the newest receipt, each install carried forward from its
//!   last report (an install that did not report in an hour still runs what it ran).
//! - `dropped`: receipts installs dropped from full outboxes, as they reported.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::rows::{self, Query};

/// How many hours the timeline covers.
pub const TIMELINE_HOURS: i64 = 48;

/// The fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetSummary {
    /// The app summarised, or `None` for every app.
    pub app: Option<String>,
    /// Installs that reported.
    pub installs: u64,
    /// Installs by their latest known current version.
    pub by_version: BTreeMap<String, u64>,
    /// Installs whose receipts tell no version.
    pub unknown_version: u64,
    /// Each release's funnel, by app then version (oldest first).
    pub releases: Vec<ReleaseFunnel>,
    /// Installs by current version, hour by hour.
    pub timeline: Vec<TimelinePoint>,
    /// Receipts dropped by full outboxes.
    pub dropped: u64,
}

/// One release's funnel, in installs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReleaseFunnel {
    /// App.
    pub app: String,
    /// Version.
    pub version: String,
    /// Installs that found it.
    pub found: u64,
    /// Installs that downloaded it.
    pub downloaded: u64,
    /// Installs that staged it.
    pub staged: u64,
    /// Installs that switched to it.
    pub switched: u64,
    /// Installs whose launcher fell back from it.
    pub fell_back: u64,
    /// Installs rolled back from it.
    pub rolled_back: u64,
    /// Installs that failed on it.
    pub failed: u64,
    /// Installs that failed on it, by error code.
    pub failed_by_error: BTreeMap<String, u64>,
    /// Rollout wave progress: switched / found, in percent (0 when none found it).
    pub wave: f64,
}

/// Installs by current version at the end of one hour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// The hour's start, RFC 3339 UTC.
    pub hour: String,
    /// Installs by version.
    pub by_version: BTreeMap<String, u64>,
}

/// Builds the summary from a backend's rows.
pub(crate) fn build(db: &dyn Query, app: Option<&str>) -> Result<FleetSummary> {
    let one = |sql: String| -> Result<i64> {
        Ok(db
            .rows(&sql, &[app])?
            .first()
            .and_then(|row| row.first())
            .map_or(0, |cell| cell.int()))
    };
    let mut summary = FleetSummary {
        app: app.map(str::to_string),
        installs: u64::try_from(one(rows::installs())?).unwrap_or(0),
        dropped: u64::try_from(one(rows::dropped())?).unwrap_or(0),
        ..FleetSummary::default()
    };
    for row in db.rows(&rows::by_version(), &[app])? {
        if let [version, count] = row.as_slice()
            && let Some(version) = version.text()
        {
            summary
                .by_version
                .insert(version.to_string(), count.count());
        }
    }
    let known: u64 = summary.by_version.values().sum();
    summary.unknown_version = summary.installs.saturating_sub(known);

    let mut releases: BTreeMap<(String, String), ReleaseFunnel> = BTreeMap::new();
    for row in db.rows(&rows::funnel(), &[app])? {
        let [app, version, event, count] = row.as_slice() else {
            continue;
        };
        let (Some(app), Some(version), Some(event)) = (app.text(), version.text(), event.text())
        else {
            continue;
        };
        let funnel = release(&mut releases, app, version);
        let count = count.count();
        match event {
            "found" => funnel.found = count,
            "downloaded" => funnel.downloaded = count,
            "staged" => funnel.staged = count,
            "switched" => funnel.switched = count,
            "fell_back" => funnel.fell_back = count,
            "rolled_back" => funnel.rolled_back = count,
            "failed" => funnel.failed = count,
            _ => {}
        }
    }
    for row in db.rows(&rows::failures(), &[app])? {
        let [app, version, error, count] = row.as_slice() else {
            continue;
        };
        let (Some(app), Some(version)) = (app.text(), version.text()) else {
            continue;
        };
        let code = error.text().unwrap_or("unknown").to_string();
        release(&mut releases, app, version)
            .failed_by_error
            .insert(code, count.count());
    }
    let mut releases: Vec<ReleaseFunnel> = releases.into_values().collect();
    for funnel in &mut releases {
        if funnel.found > 0 {
            funnel.wave = (funnel.switched as f64 * 1000.0 / funnel.found as f64).round() / 10.0;
        }
    }
    releases.sort_by(|a, b| {
        (a.app.as_str(), version_key(&a.version)).cmp(&(b.app.as_str(), version_key(&b.version)))
    });
    summary.releases = releases;
    summary.timeline = timeline(db, app, one(rows::newest_at())?)?;
    Ok(summary)
}

/// The funnel of `app` `version`, new when missing.
fn release<'a>(
    releases: &'a mut BTreeMap<(String, String), ReleaseFunnel>,
    app: &str,
    version: &str,
) -> &'a mut ReleaseFunnel {
    releases
        .entry((app.to_string(), version.to_string()))
        .or_insert_with(|| ReleaseFunnel {
            app: app.to_string(),
            version: version.to_string(),
            ..ReleaseFunnel::default()
        })
}

/// Orders versions as SemVer does where they are SemVer, after the rest.
fn version_key(version: &str) -> (Option<semver::Version>, String) {
    (semver::Version::parse(version).ok(), version.to_string())
}

/// The last [`TIMELINE_HOURS`] hours up to the newest receipt (never past the receiver's
/// clock plus an hour: a client with a clock in the future cannot stretch the page).
fn timeline(db: &dyn Query, app: Option<&str>, newest_ms: i64) -> Result<Vec<TimelinePoint>> {
    if newest_ms <= 0 {
        return Ok(Vec::new());
    }
    let last_hour = newest_ms.min(crate::store::now_ms() + 3_600_000) / 3_600_000;
    let first_hour = last_hour - TIMELINE_HOURS + 1;
    let mut by_hour: BTreeMap<i64, Vec<(String, String)>> = BTreeMap::new();
    for row in db.rows(&rows::timeline(first_hour * 3_600_000), &[app])? {
        if let [install, hour, version] = row.as_slice()
            && let (Some(install), Some(version)) = (install.text(), version.text())
            && hour.int() <= last_hour
        {
            by_hour
                .entry(hour.int())
                .or_default()
                .push((install.to_string(), version.to_string()));
        }
    }
    let mut current: HashMap<String, String> = HashMap::new();
    if let Some(before) = by_hour.remove(&-1) {
        current.extend(before);
    }
    let mut points = Vec::new();
    for hour in first_hour..=last_hour {
        if let Some(reports) = by_hour.remove(&hour) {
            current.extend(reports);
        }
        if current.is_empty() {
            continue;
        }
        let mut by_version = BTreeMap::new();
        for version in current.values() {
            *by_version.entry(version.clone()).or_insert(0) += 1;
        }
        points.push(TimelinePoint {
            hour: hour_name(hour),
            by_version,
        });
    }
    Ok(points)
}

fn hour_name(hour: i64) -> String {
    let seconds = u64::try_from(hour * 3600).unwrap_or(0);
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds),
    )
    .to_string()
}

impl FleetSummary {
    /// The summary as a text report: installs by version, then one line per release.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let scope = self.app.as_deref().unwrap_or("every app");
        out.push_str(&format!("{} installs ({scope})", self.installs));
        if self.dropped > 0 {
            out.push_str(&format!(
                "; {} receipts dropped by full outboxes",
                self.dropped
            ));
        }
        out.push_str("\n\nVERSION  INSTALLS\n");
        for (version, count) in &self.by_version {
            out.push_str(&format!("{version:<8} {count:>9}\n"));
        }
        if self.unknown_version > 0 {
            out.push_str(&format!("{:<8} {:>9}\n", "unknown", self.unknown_version));
        }
        let header = [
            "APP",
            "VERSION",
            "FOUND",
            "DOWNLOADED",
            "SWITCHED",
            "FELL_BACK",
            "FAILED",
            "WAVE",
            "ERRORS",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for r in &self.releases {
            let errors: Vec<String> = r
                .failed_by_error
                .iter()
                .map(|(code, n)| format!("{code}={n}"))
                .collect();
            rows.push(vec![
                r.app.clone(),
                r.version.clone(),
                r.found.to_string(),
                r.downloaded.to_string(),
                r.switched.to_string(),
                r.fell_back.to_string(),
                r.failed.to_string(),
                format!("{}%", r.wave),
                errors.join(" "),
            ]);
        }
        let mut widths = vec![0; header.len()];
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        out.push('\n');
        for row in &rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:width$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}
