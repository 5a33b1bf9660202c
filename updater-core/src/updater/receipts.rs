//! The updater's side of delivery receipts (`docs/receipts.md`): writing one to the outbox at
//! each step, turning the launcher's fallbacks into receipts, and posting after a check.
//!
//! Why here and not in the launcher: the launcher stays tiny and network-free. It only writes
//! its usual `fallback` line to `state/history.log`; the next check or update reads the lines
//! written since `state/receipts-cursor` and records a `fell_back` receipt for each.
//!
//! Nothing here can fail an update: a receipt that cannot be written, a history that cannot
//! be read or a receiver that is down is logged, and the update goes on. Policy
//! `receipts = false` turns all of it off: nothing recorded, nothing sent.

use std::time::Duration;

use appstart_layout::hooks::{HookKind, HookOutcome, HookRun};
use appstart_layout::{VersionName, fsutil};

use super::Updater;
use crate::control::install_id::InstallId;
use crate::error::{Error, Result};
use crate::receipts::{Outbox, Receipt, ReceiptEvent, post_outbox};
use crate::tuf::client::TrustedMetadata;

/// Most bytes of `history.log` read per run for fallbacks (the rest waits for the next run).
const MAX_HISTORY_READ: u64 = 1 << 20;

/// Where the caller's step stands, for its receipts.
#[derive(Debug, Default)]
pub(super) struct Run {
    /// The receiver named by the metadata this run verified.
    pub(super) receipts_url: Option<String>,
    /// The release being taken, for a `failed` receipt.
    pub(super) taking: Option<VersionName>,
}

impl Run {
    /// Notes the receiver the freshly verified `trusted` metadata names (top-level role only).
    pub(super) fn verified(&mut self, trusted: &TrustedMetadata) {
        self.receipts_url = trusted.targets().and_then(crate::receipts::receipts_url);
    }
}

/// Milliseconds, saturating.
pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Updater {
    /// Whether this install sends receipts (policy `receipts = false` opts out).
    fn receipts_on(&self) -> Result<bool> {
        let (_, policy) = self.settings_now()?;
        Ok(policy.receipts != Some(false))
    }

    /// Writes a receipt of `event`, filled in by `fill`, to the outbox; logs any failure.
    /// Call it holding the install lock.
    pub(super) fn record(&self, event: ReceiptEvent, fill: impl FnOnce(&mut Receipt)) {
        let mut fill = Some(fill);
        self.record_all(&[event], |receipt| {
            if let Some(fill) = fill.take() {
                fill(receipt);
            }
        });
    }

    /// Writes a receipt of each of `events`, each filled in by `fill`, to the outbox in one
    /// append (one flush); logs any failure. Call it holding the install lock.
    pub(super) fn record_all(&self, events: &[ReceiptEvent], fill: impl FnMut(&mut Receipt)) {
        if let Err(err) = self.try_record(events, fill) {
            let names: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
            log::warn!(
                "receipt {} not recorded: {}",
                names.join(", "),
                crate::error::chain(&err)
            );
        }
    }

    fn try_record(
        &self,
        events: &[ReceiptEvent],
        mut fill: impl FnMut(&mut Receipt),
    ) -> Result<()> {
        let (settings, policy) = self.settings_now()?;
        if policy.receipts == Some(false) {
            return Ok(());
        }
        let install_id = InstallId::load_or_create(&self.install.install_id_path())?;
        let receipts: Vec<Receipt> = events
            .iter()
            .map(|event| {
                let mut receipt = Receipt::new(
                    install_id.as_str(),
                    &settings.app,
                    &settings.channel,
                    &settings.platform,
                    *event,
                );
                fill(&mut receipt);
                receipt
            })
            .collect();
        Outbox::new(self.install.receipts_outbox_path()).append_all(&receipts)
    }

    /// A `failed` receipt for `err`: its stable code, never its message (which names local
    /// paths).
    pub(super) fn record_failure(&self, err: &Error, to: Option<&VersionName>) {
        if matches!(err, Error::Cancelled) {
            // Stopped by the app or the user: says nothing about the release.
            return;
        }
        let from = appstart_layout::LauncherConfig::load(&self.install.config_path())
            .ok()
            .map(|c| c.current.to_string());
        self.record(ReceiptEvent::Failed, |r| {
            r.from = from;
            r.to = to.map(ToString::to_string);
            r.error = Some(err.code().to_string());
        });
    }

    /// Records a `hook` receipt of `run`, a hook of `version` run while `from` was current.
    pub(super) fn record_hook(&self, from: &VersionName, version: &VersionName, run: &HookRun) {
        self.record(ReceiptEvent::Hook, |r| {
            r.from = Some(from.to_string());
            r.to = Some(version.to_string());
            r.duration_ms = millis(run.duration);
            r.hook = Some(run.kind.as_str().to_string());
            r.exit_code = run.exit_code;
            r.error = hook_error(&run.outcome).map(str::to_string);
        });
    }

    /// Records a `fell_back` receipt for each launcher `fallback` line of `history.log` past
    /// the cursor, then moves the cursor past them. Call it holding the install lock.
    pub(super) fn record_fallbacks(&self) {
        if let Err(err) = self.try_record_fallbacks() {
            log::warn!(
                "fallbacks not turned into receipts: {}",
                crate::error::chain(&err)
            );
        }
    }

    fn try_record_fallbacks(&self) -> Result<()> {
        let cursor_path = self.install.receipts_cursor_path();
        let history_path = self.install.history_path();
        let Ok(length) = std::fs::metadata(&history_path).map(|m| m.len()) else {
            return Ok(()); // No history yet.
        };
        let mut cursor: u64 = match fsutil::read_to_string_capped(&cursor_path, 64) {
            Ok(text) => text.trim().parse().unwrap_or(0),
            Err(_) => 0,
        };
        if cursor > length {
            cursor = 0; // The log was truncated or replaced: start again.
        }
        if cursor == length {
            return Ok(());
        }
        let chunk = read_from(&history_path, cursor, MAX_HISTORY_READ)?;
        // Only whole lines: a line being written now is read next time.
        let Some(end) = chunk.iter().rposition(|b| *b == b'\n') else {
            return Ok(());
        };
        if self.receipts_on()? {
            for line in chunk[..end].split(|b| *b == b'\n') {
                let line = String::from_utf8_lossy(line);
                if let Some((at, from, to)) = parse_fallback(&line) {
                    self.record(ReceiptEvent::FellBack, |r| {
                        r.at = at;
                        r.from = Some(from.to_string());
                        r.to = Some(to.to_string());
                    });
                } else if let Some(first_run) = parse_first_run(&line) {
                    self.record(ReceiptEvent::Hook, |r| {
                        r.at = first_run.at;
                        r.to = Some(first_run.version.to_string());
                        r.duration_ms = first_run.duration_ms;
                        r.hook = Some(HookKind::FirstRun.as_str().to_string());
                        r.exit_code = first_run.exit_code;
                        r.error = first_run.error.map(str::to_string);
                    });
                }
            }
        }
        let next = cursor + end as u64 + 1;
        fsutil::write_atomic(&cursor_path, next.to_string().as_bytes())?;
        Ok(())
    }

    /// Posts the outbox to the receiver `run` noted, if any (and if receipts are on).
    pub(super) fn post_receipts(&self, run: &Run) {
        let Some(url) = &run.receipts_url else {
            return;
        };
        if self.retry.cancel.is_cancelled() {
            // A cancelled run returns at once; the outbox is posted by the next one.
            return;
        }
        match self.receipts_on() {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                log::warn!("not posting receipts: {}", crate::error::chain(&err));
                return;
            }
        }
        let proxies = match self.settings.proxies() {
            Ok(proxies) => proxies,
            Err(err) => {
                log::warn!("not posting receipts: {}", crate::error::chain(&err));
                return;
            }
        };
        let report = post_outbox(
            &Outbox::new(self.install.receipts_outbox_path()),
            url,
            &self.trust,
            &proxies,
        );
        if report.sent > 0 {
            log::info!("{} receipt(s) delivered to {url}", report.sent);
        }
    }
}

/// Up to `limit` bytes of `path` from `offset`.
fn read_from(path: &std::path::Path, offset: u64, limit: u64) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io("reading", path, e))?;
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading", path, e))?;
    Ok(bytes)
}

/// The receipt's `error` for a hook that ended so, `None` when it succeeded.
fn hook_error(outcome: &HookOutcome) -> Option<&'static str> {
    match outcome {
        HookOutcome::Succeeded => None,
        HookOutcome::TimedOut => Some("hook-timeout"),
        _ => Some("hook-failed"),
    }
}

/// A launcher `first-run` hook line, as a receipt needs it.
#[derive(Debug, PartialEq)]
struct FirstRunLine {
    at: String,
    version: VersionName,
    exit_code: Option<i32>,
    duration_ms: u64,
    error: Option<&'static str>,
}

/// A launcher line `<time> hook kind=first-run version=V result=R exit_code=N duration_ms=D
/// ...` (the launcher runs `first-run`; the updater's own hook lines have receipts already).
/// Only the fields before `path` are read: the path and output may hold anything.
fn parse_first_run(line: &str) -> Option<FirstRunLine> {
    let mut words = line.split(' ');
    let at = words.next()?;
    if words.next()? != "hook" || words.next()? != "kind=first-run" {
        return None;
    }
    let (mut version, mut result, mut exit_code, mut duration_ms) = (None, None, None, 0);
    for word in words.take_while(|word| !word.starts_with("path=")) {
        if let Some(v) = word.strip_prefix("version=") {
            version = VersionName::parse(v).ok();
        } else if let Some(r) = word.strip_prefix("result=") {
            result = Some(r);
        } else if let Some(code) = word.strip_prefix("exit_code=") {
            exit_code = code.parse().ok();
        } else if let Some(ms) = word.strip_prefix("duration_ms=") {
            duration_ms = ms.parse().unwrap_or(0);
        }
    }
    let error = match result? {
        "ok" => None,
        "timeout" => Some("hook-timeout"),
        _ => Some("hook-failed"),
    };
    let at = if crate::control::parse_time(at).is_some() {
        at.to_string()
    } else {
        fsutil::now_rfc3339()
    };
    Some(FirstRunLine {
        at,
        version: version?,
        exit_code,
        duration_ms,
        error,
    })
}

/// A launcher line `<time> fallback from=X to=Y reason=...`: its time and versions.
fn parse_fallback(line: &str) -> Option<(String, VersionName, VersionName)> {
    let mut words = line.split_whitespace();
    let at = words.next()?;
    if words.next()? != "fallback" {
        return None;
    }
    let (mut from, mut to) = (None, None);
    for word in words {
        if from.is_none()
            && let Some(v) = word.strip_prefix("from=")
        {
            from = VersionName::parse(v).ok();
        } else if to.is_none()
            && let Some(v) = word.strip_prefix("to=")
        {
            to = VersionName::parse(v).ok();
        }
        if from.is_some() && to.is_some() {
            break;
        }
    }
    let at = if crate::control::parse_time(at).is_some() {
        at.to_string()
    } else {
        fsutil::now_rfc3339()
    };
    Some((at, from?, to?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fallback_line_gives_its_time_and_versions() {
        let (at, from, to) = parse_fallback(
            "2026-01-02T03:04:05Z fallback from=3.0.0 to=2.0.0 reason=\"exited with code 1\"",
        )
        .unwrap();
        assert_eq!(at, "2026-01-02T03:04:05Z");
        assert_eq!((from.as_str(), to.as_str()), ("3.0.0", "2.0.0"));
        assert!(parse_fallback("2026-01-02T03:04:05Z launch version=3.0.0").is_none());
        assert!(parse_fallback("2026-01-02T03:04:05Z fallback from=3.0.0").is_none());
        assert!(parse_fallback("").is_none());
    }

    /// The launcher runs `first-run`; its history line becomes the hook's receipt.
    #[test]
    fn a_first_run_line_gives_its_result() {
        let line = "2026-01-02T03:04:05Z hook kind=first-run version=2.0.0 result=failed exit_code=4 duration_ms=12 path=bin/first output=\"x result=ok\"";
        let parsed = parse_first_run(line).unwrap();
        assert_eq!(
            parsed,
            FirstRunLine {
                at: "2026-01-02T03:04:05Z".into(),
                version: VersionName::parse("2.0.0").unwrap(),
                exit_code: Some(4),
                duration_ms: 12,
                error: Some("hook-failed"),
            }
        );
        assert!(parse_first_run(&line.replace("first-run", "pre-switch")).is_none());
    }
}
