//! The store: where receipts are kept, behind one trait with a SQLite and a PostgreSQL
//! backend, chosen by the `--receipts-db` value ([`open`]).
//!
//! Every backend keeps the same promises:
//! - a batch is stored in one transaction, all of it or none of it, and committed before
//!   [`Store::insert_batch`] returns (so before the receiver answers 200: a receiver killed
//!   after answering has stored the batch);
//! - a receipt is stored once per `id` whatever the retries (`INSERT OR IGNORE` /
//!   `ON CONFLICT DO NOTHING`), and the answer says how many were new and how many were
//!   duplicates;
//! - each receipt also gets the order it arrived in (`seq`), which breaks ties between
//!   receipts of one install stamped in the same second (`at` has one-second resolution);
//! - the schema is created on open and carries a version (`fleet_schema`); a database from a
//!   newer receiver is refused rather than misread.

use std::time::UNIX_EPOCH;

use serde::Serialize;
use updater_core::advanced::receipts::{Batch, MAX_BATCH, Receipt};

use crate::error::{Error, Result};
use crate::summary::FleetSummary;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Inserted {
    /// Receipts stored now.
    pub inserted: u64,
    /// Receipts already stored (a retry): ignored.
    pub duplicates: u64,
}

/// Which release [`Store::release_health`] looks at.
#[derive(Debug, Clone, Default)]
pub struct ReleaseQuery {
    /// App.
    pub app: String,
    /// Version.
    pub version: String,
    /// Only receipts from installs on this channel.
    pub channel: Option<String>,
    /// Only receipts from installs on this platform.
    pub platform: Option<String>,
}

/// How a release is doing, in installs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReleaseHealth {
    /// Installs that downloaded or switched to it, or failed or fell back on it.
    pub reached: u64,
    /// Installs that fell back from it or failed on it.
    pub bad: u64,
}

impl ReleaseHealth {
    /// `bad / reached` in percent; 0 when nothing reached it.
    pub fn bad_percent(&self) -> f64 {
        if self.reached == 0 {
            0.0
        } else {
            self.bad as f64 * 100.0 / self.reached as f64
        }
    }
}

/// Where receipts are kept.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Stores a batch in one transaction, idempotent on each receipt's id. The batch must
    /// have passed [`check_batch`].
    fn insert_batch(&self, batch: &Batch) -> Result<Inserted>;
    /// The fleet, in installs; only `app`'s receipts when given.
    fn summary(&self, app: Option<&str>) -> Result<FleetSummary>;
    /// Installs that reached a release, and those among them that fell back or failed.
    fn release_health(&self, query: &ReleaseQuery) -> Result<ReleaseHealth>;
}

/// Opens the store named by `db`: a `postgres://` (or `postgresql://`) URL, or else a
/// SQLite file path (created with its schema when missing).
pub fn open(db: &str) -> Result<Box<dyn Store>> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        Ok(Box::new(crate::postgres::PostgresStore::open(db)?))
    } else {
        Ok(Box::new(crate::sqlite::SqliteStore::open(
            std::path::Path::new(db),
        )?))
    }
}

/// Checks a batch before anything of it is stored: at most [`MAX_BATCH`] receipts, each
/// [`Receipt::check`]ed, and numbers that fit the database's signed 64-bit columns. The
/// error names the receipt (by position and id) and the field.
pub fn check_batch(batch: &Batch) -> Result<()> {
    if batch.receipts.len() > MAX_BATCH {
        return Err(Error::BadBatch(format!(
            "receipts: {} receipts, at most {MAX_BATCH} per batch",
            batch.receipts.len()
        )));
    }
    if i64::try_from(batch.dropped).is_err() {
        return Err(Error::BadBatch(format!(
            "dropped {} is too large",
            batch.dropped
        )));
    }
    for (index, receipt) in batch.receipts.iter().enumerate() {
        let at = |message: String| Error::BadBatch(format!("receipts[{index}]: {message}"));
        receipt.check().map_err(at)?;
        for (field, value) in [
            ("bytes", receipt.bytes),
            ("duration_ms", receipt.duration_ms),
        ] {
            if i64::try_from(value).is_err() {
                return Err(at(format!("{field} {value} is too large")));
            }
        }
    }
    Ok(())
}

/// A checked receipt as the database stores it.
#[derive(Debug)]
pub(crate) struct Row<'a> {
    pub receipt: &'a Receipt,
    pub bytes: i64,
    pub duration_ms: i64,
    /// `at` in milliseconds since 1970 (sortable and bucketable in SQL, unlike the text).
    pub at_ms: i64,
}

/// The rows of a batch that passed [`check_batch`].
pub(crate) fn rows(batch: &Batch) -> Result<Vec<Row<'_>>> {
    batch
        .receipts
        .iter()
        .map(|receipt| {
            let at_ms = updater_core::advanced::control::parse_time(&receipt.at)
                .map(|t| match t.duration_since(UNIX_EPOCH) {
                    Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
                    Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
                })
                .ok_or_else(|| Error::BadBatch(format!("at {:?} is not a time", receipt.at)))?;
            Ok(Row {
                receipt,
                bytes: i64::try_from(receipt.bytes).unwrap_or(i64::MAX),
                duration_ms: i64::try_from(receipt.duration_ms).unwrap_or(i64::MAX),
                at_ms,
            })
        })
        .collect()
}

/// Who a batch's `dropped` count is recorded against: its first receipt (its id keys the
/// record, so a retried batch is counted once). A batch without receipts carries no id, so
/// its count cannot be made idempotent and is not recorded.
pub(crate) fn dropped_key(batch: &Batch) -> Option<(&Receipt, i64)> {
    let first = batch.receipts.first()?;
    let dropped = i64::try_from(batch.dropped).ok()?;
    (dropped > 0).then_some((first, dropped))
}

/// Milliseconds since 1970, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
