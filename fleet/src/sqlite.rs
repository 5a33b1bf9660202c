//! The SQLite store: one file, for a receiver on one machine.
//!
//! - WAL journal: readers (the fleet page) never block the writer, and a commit is one
//!   append to the log.
//! - `synchronous = FULL`: each commit is fsynced to the log before [`Store::insert_batch`]
//!   returns, so before the receiver answers 200 and the install deletes the batch from its
//!   outbox. `NORMAL` would survive a killed receiver too (the log is in the page cache), but
//!   a power cut could lose the last commits, receipts that no install still holds. With one
//!   commit per batch of up to 500 receipts the fsync is cheap (docs/benchmarks.md).
//! - One connection behind a mutex: SQLite has one writer anyway, and a batch is one
//!   transaction of prepared `INSERT OR IGNORE`s.
//! - `busy_timeout`: another process (`appupdate fleet`) reading the file does not fail a
//!   write.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use updater_core::advanced::receipts::Batch;

use crate::error::{Error, Result};
use crate::rows::{self, Cell, Query};
use crate::store::{self, Inserted, ReleaseHealth, ReleaseQuery, SCHEMA_VERSION, Store};
use crate::summary::{self, FleetSummary};

/// Receipts in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    db: String,
    connection: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (or creates, with its schema) the database file `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = path.display().to_string();
        let fail = |source| Error::Sqlite {
            db: db.clone(),
            source,
        };
        let connection = Connection::open(path).map_err(fail)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(fail)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(fail)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(fail)?;
        let mut schema = rows::schema("seq INTEGER PRIMARY KEY AUTOINCREMENT");
        schema.insert(0, "BEGIN IMMEDIATE".into());
        schema.push("COMMIT".into());
        connection
            .execute_batch(&schema.join(";\n"))
            .map_err(fail)?;
        let found: Option<i64> = connection
            .query_row("SELECT MAX(version) FROM fleet_schema", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(fail)?
            .flatten();
        match found {
            None => {
                connection
                    .execute(
                        "INSERT INTO fleet_schema (version) VALUES (?1)",
                        [SCHEMA_VERSION],
                    )
                    .map_err(fail)?;
            }
            Some(found) if found > SCHEMA_VERSION => {
                return Err(Error::Schema {
                    db,
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(_) => {}
        }
        Ok(SqliteStore {
            db,
            connection: Mutex::new(connection),
        })
    }

    fn fail(&self, source: rusqlite::Error) -> Error {
        Error::Sqlite {
            db: self.db.clone(),
            source,
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.connection
            .lock()
            .map_err(|_| Error::Invalid(format!("receipt database {}: a writer panicked", self.db)))
    }
}

impl Store for SqliteStore {
    fn insert_batch(&self, batch: &Batch) -> Result<Inserted> {
        store::check_batch(batch)?;
        let rows = store::rows(batch)?;
        let received = store::now_ms();
        let mut connection = self.lock()?;
        let transaction = connection.transaction().map_err(|e| self.fail(e))?;
        let mut inserted = 0u64;
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO receipts (id, install_id, app, channel, platform, \
                     event, from_version, to_version, bytes, duration_ms, at, at_ms, error, \
                     received_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
                     ?13, ?14)",
                )
                .map_err(|e| self.fail(e))?;
            for row in &rows {
                let r = row.receipt;
                inserted += insert
                    .execute(params![
                        r.id,
                        r.install_id,
                        r.app,
                        r.channel,
                        r.platform,
                        r.event.as_str(),
                        r.from,
                        r.to,
                        row.bytes,
                        row.duration_ms,
                        r.at,
                        row.at_ms,
                        r.error,
                        received,
                    ])
                    .map_err(|e| self.fail(e))? as u64;
            }
            if let Some((first, dropped)) = store::dropped_key(batch) {
                transaction
                    .execute(
                        "INSERT OR IGNORE INTO dropped (first_receipt, app, install_id, count, \
                         received_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![first.id, first.app, first.install_id, dropped, received],
                    )
                    .map_err(|e| self.fail(e))?;
            }
        }
        transaction.commit().map_err(|e| self.fail(e))?;
        Ok(Inserted {
            inserted,
            duplicates: rows.len() as u64 - inserted,
        })
    }

    fn summary(&self, app: Option<&str>) -> Result<FleetSummary> {
        summary::build(self, app)
    }

    fn release_health(&self, query: &ReleaseQuery) -> Result<ReleaseHealth> {
        rows::release_health(self, query)
    }
}

impl Query for SqliteStore {
    fn rows(&self, sql: &str, params: &[Option<&str>]) -> Result<Vec<Vec<Cell>>> {
        // The shared queries number their parameters `$1`..; SQLite numbers `$NAME`s by first
        // appearance, so they become `?1`.., which it binds by number as PostgreSQL does.
        let sql = sql.replace('$', "?");
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(&sql).map_err(|e| self.fail(e))?;
        let columns = statement.column_count();
        let mut rows = statement
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            let mut cells = Vec::with_capacity(columns);
            for index in 0..columns {
                use rusqlite::types::ValueRef;
                cells.push(match row.get_ref(index).map_err(|e| self.fail(e))? {
                    ValueRef::Integer(n) => Cell::Int(n),
                    ValueRef::Text(text) => Cell::Text(String::from_utf8_lossy(text).into_owned()),
                    ValueRef::Real(x) => Cell::Int(x as i64),
                    ValueRef::Null | ValueRef::Blob(_) => Cell::Null,
                });
            }
            out.push(cells);
        }
        Ok(out)
    }
}
