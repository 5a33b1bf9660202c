//! Which repository base URL to try first: recent health, remembered in the process and in
//! `state/mirrors.toml`.
//!
//! The rule ([`order`]): bases that did not fail recently come first, the one that worked
//! most recently first of all (so a run after a failover starts with the base that worked,
//! not with the dead primary again); bases whose last failure is newer than their last
//! success and less than [`RECENT`] old go last, the oldest failure first. Ties keep the
//! configured order (`--url`, then `--mirror`s, then the signed list).
//!
//! The file is a hint, never trusted for anything else: it is read capped
//! ([`MAX_FILE`], [`MAX_ENTRIES`]), ignored (logged) when it does not parse, written
//! atomically, and only entries naming a current base are used.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How long a failure sends a base to the back of the line.
pub const RECENT: Duration = Duration::from_secs(10 * 60);
/// Largest `state/mirrors.toml` read.
pub const MAX_FILE: u64 = 64 * 1024;
/// Most entries read from it.
pub const MAX_ENTRIES: usize = 64;

/// What is known of one base. Times are milliseconds since the Unix epoch, 0 for never.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The base URL.
    pub url: String,
    /// When a request to it last succeeded.
    #[serde(default)]
    pub last_success: u64,
    /// When a request to it last failed (connection, 5xx, stall, a bad body).
    #[serde(default)]
    pub last_failure: u64,
}

impl Entry {
    /// A base never tried.
    pub fn new(url: &str) -> Self {
        Entry {
            url: url.to_string(),
            ..Entry::default()
        }
    }

    /// Whether its last failure is newer than its last success and younger than [`RECENT`].
    pub fn failed_recently(&self, now: u64) -> bool {
        self.last_failure > self.last_success
            && now.saturating_sub(self.last_failure) < RECENT.as_millis() as u64
    }
}

/// The indexes of `entries` in the order to try them (see the module docs).
pub fn order(entries: &[Entry], now: u64) -> Vec<usize> {
    let mut indexes: Vec<usize> = (0..entries.len()).collect();
    indexes.sort_by_key(|&i| {
        let entry = &entries[i];
        let failed = entry.failed_recently(now);
        let rank = if failed {
            entry.last_failure
        } else {
            u64::MAX - entry.last_success
        };
        (failed, rank, i)
    });
    indexes
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    base: Vec<Entry>,
}

/// The entries for `bases`, in that order, from the file at `path` where it has them (a
/// missing, oversized or corrupt file gives fresh entries).
pub fn load(path: &Path, bases: &[String]) -> Vec<Entry> {
    let mut entries: Vec<Entry> = bases.iter().map(|url| Entry::new(url)).collect();
    if !path.exists() {
        return entries;
    }
    let stored = appstart_layout::fsutil::read_to_string_capped(path, MAX_FILE)
        .map_err(|e| e.to_string())
        .and_then(|text| toml::from_str::<File>(&text).map_err(|e| e.to_string()));
    let stored = match stored {
        Ok(file) => file.base,
        Err(err) => {
            log::warn!(
                "ignoring {} (mirror health, a hint only): {err}",
                path.display()
            );
            return entries;
        }
    };
    for stored in stored.into_iter().take(MAX_ENTRIES) {
        if let Some(entry) = entries.iter_mut().find(|e| e.url == stored.url) {
            *entry = stored;
        }
    }
    entries
}

/// Writes `entries` to `path` atomically. A failure is logged: health is only a hint.
pub fn save(path: &Path, entries: &[Entry]) {
    let file = File {
        base: entries.to_vec(),
    };
    let text = match toml::to_string(&file) {
        Ok(text) => text,
        Err(e) => {
            log::warn!("{}: {e}", path.display());
            return;
        }
    };
    let text = format!(
        "# Health of this install's repository URLs, written by appstart: a hint for the order they are tried in.\n{text}"
    );
    if let Err(err) = appstart_layout::fsutil::write_atomic(path, text.as_bytes()) {
        log::warn!("could not save mirror health: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &str, last_success: u64, last_failure: u64) -> Entry {
        Entry {
            url: url.into(),
            last_success,
            last_failure,
        }
    }

    #[test]
    fn the_last_base_that_worked_goes_first_and_a_recent_failure_goes_last() {
        let now = 100 * 60 * 1000;
        // Nothing known: the configured order.
        let fresh = [entry("a", 0, 0), entry("b", 0, 0), entry("c", 0, 0)];
        assert_eq!(order(&fresh, now), [0, 1, 2]);
        // a failed just now, c worked a minute ago, b never tried.
        let entries = [
            entry("a", 0, now - 1000),
            entry("b", 0, 0),
            entry("c", now - 60_000, 0),
        ];
        assert_eq!(order(&entries, now), [2, 1, 0]);
        // Two recent failures: the older one is tried before the newer.
        let entries = [
            entry("a", 0, now - 1000),
            entry("b", 0, now - 5000),
            entry("c", 0, 0),
        ];
        assert_eq!(order(&entries, now), [2, 1, 0]);
        // A failure older than RECENT no longer counts; one followed by a success neither.
        let old = now - RECENT.as_millis() as u64 - 1;
        let entries = [entry("a", 0, old), entry("b", now - 10, now - 20)];
        assert_eq!(order(&entries, now), [1, 0]);
        assert!(!entries[0].failed_recently(now));
        assert!(!entries[1].failed_recently(now));
    }

    #[test]
    fn the_file_round_trips_and_a_corrupt_or_huge_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirrors.toml");
        let bases = vec!["http://a".to_string(), "http://b".to_string()];
        assert_eq!(
            load(&path, &bases),
            vec![Entry::new("http://a"), Entry::new("http://b")]
        );
        let entries = vec![
            entry("http://a", 5, 7),
            entry("http://b", 9, 0),
            entry("http://gone", 1, 1),
        ];
        save(&path, &entries);
        // Entries of bases no longer configured are dropped; order follows `bases`.
        let reversed = vec!["http://b".to_string(), "http://a".to_string()];
        assert_eq!(
            load(&path, &reversed),
            vec![entry("http://b", 9, 0), entry("http://a", 5, 7)]
        );
        std::fs::write(&path, "[[base]]\nurl = 3\n").unwrap();
        assert_eq!(
            load(&path, &bases),
            vec![Entry::new("http://a"), Entry::new("http://b")]
        );
        std::fs::write(&path, "#".repeat(MAX_FILE as usize + 10)).unwrap();
        assert_eq!(
            load(&path, &bases),
            vec![Entry::new("http://a"), Entry::new("http://b")]
        );
    }
}
