//! The PostgreSQL store: one database shared by any number of stateless receivers.
//!
//! - A batch is one transaction and one statement: `INSERT ... SELECT FROM unnest(arrays)
//!   ON CONFLICT (id) DO NOTHING`, so a batch of 500 receipts is one round trip; the row count
//!   it returns is the number of new receipts. PostgreSQL commits durably (`synchronous_commit`
//!   on, its default) before the receiver answers.
//! - A small pool of connections (one per concurrent request, kept for reuse up to
//!   [`POOL`]); a broken connection is dropped, not reused.
//! - The schema is created under a transaction-scoped advisory lock, so receivers starting
//!   together do not race on `CREATE TABLE IF NOT EXISTS`.
//! - Errors name the database by its URL without the password.

use std::sync::Mutex;

use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls};
use updater_core::advanced::receipts::Batch;

use crate::error::{Error, Result};
use crate::rows::{self, Cell, Query};
use crate::store::{self, Inserted, ReleaseHealth, ReleaseQuery, SCHEMA_VERSION, Store};
use crate::summary::{self, FleetSummary};

/// Idle connections kept.
const POOL: usize = 16;

/// The advisory lock key held while creating the schema ("appstart" in ASCII).
const SCHEMA_LOCK: i64 = 0x6170_7073_7461_7274;

/// Receipts in a PostgreSQL database.
pub struct PostgresStore {
    url: String,
    db: String,
    idle: Mutex<Vec<Client>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("db", &self.db)
            .finish()
    }
}

/// `url` without the password, for messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}{path}")
        }
        None => url.to_string(),
    }
}

impl PostgresStore {
    /// Connects to `url` and creates the schema when missing.
    pub fn open(url: &str) -> Result<Self> {
        let store = PostgresStore {
            url: url.to_string(),
            db: redact(url),
            idle: Mutex::new(Vec::new()),
        };
        let mut client = store.connect()?;
        let mut transaction = client.transaction().map_err(|e| store.fail(e))?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(|e| store.fail(e))?;
        for statement in rows::schema("seq BIGSERIAL PRIMARY KEY") {
            transaction
                .batch_execute(&statement)
                .map_err(|e| store.fail(e))?;
        }
        let found: Option<i64> = transaction
            .query_one("SELECT MAX(version) FROM fleet_schema", &[])
            .and_then(|row| row.try_get(0))
            .map_err(|e| store.fail(e))?;
        match found {
            None => {
                transaction
                    .execute(
                        "INSERT INTO fleet_schema (version) VALUES ($1)",
                        &[&SCHEMA_VERSION],
                    )
                    .map_err(|e| store.fail(e))?;
            }
            Some(found) if found > SCHEMA_VERSION => {
                return Err(Error::Schema {
                    db: store.db.clone(),
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(_) => {}
        }
        transaction.commit().map_err(|e| store.fail(e))?;
        store.give_back(client);
        Ok(store)
    }

    fn fail(&self, source: postgres::Error) -> Error {
        Error::Postgres {
            db: self.db.clone(),
            source,
        }
    }

    fn connect(&self) -> Result<Client> {
        Client::connect(&self.url, NoTls).map_err(|e| self.fail(e))
    }

    /// An idle connection, or a new one.
    fn take(&self) -> Result<Client> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(client) if !client.is_closed() => Ok(client),
            _ => self.connect(),
        }
    }

    fn give_back(&self, client: Client) {
        if client.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < POOL
        {
            idle.push(client);
        }
    }
}

impl Store for PostgresStore {
    fn insert_batch(&self, batch: &Batch) -> Result<Inserted> {
        store::check_batch(batch)?;
        let rows = store::rows(batch)?;
        let received = store::now_ms();
        let text = |f: &dyn Fn(&store::Row<'_>) -> String| rows.iter().map(f).collect::<Vec<_>>();
        let optional =
            |f: &dyn Fn(&store::Row<'_>) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
        let ids = text(&|r| r.receipt.id.clone());
        let installs = text(&|r| r.receipt.install_id.clone());
        let apps = text(&|r| r.receipt.app.clone());
        let channels = text(&|r| r.receipt.channel.clone());
        let platforms = text(&|r| r.receipt.platform.clone());
        let events = text(&|r| r.receipt.event.as_str().to_string());
        let from = optional(&|r| r.receipt.from.clone());
        let to = optional(&|r| r.receipt.to.clone());
        let bytes: Vec<i64> = rows.iter().map(|r| r.bytes).collect();
        let durations: Vec<i64> = rows.iter().map(|r| r.duration_ms).collect();
        let at = text(&|r| r.receipt.at.clone());
        let at_ms: Vec<i64> = rows.iter().map(|r| r.at_ms).collect();
        let errors = optional(&|r| r.receipt.error.clone());

        let mut client = self.take()?;
        let result = (|| -> std::result::Result<u64, postgres::Error> {
            let mut transaction = client.transaction()?;
            let inserted = transaction.execute(
                "INSERT INTO receipts (id, install_id, app, channel, platform, event, \
                 from_version, to_version, bytes, duration_ms, at, at_ms, error, received_ms) \
                 SELECT id, install_id, app, channel, platform, event, from_version, \
                        to_version, bytes, duration_ms, at, at_ms, error, $14 \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                             $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], \
                             $11::text[], $12::int8[], $13::text[]) \
                      WITH ORDINALITY AS t(id, install_id, app, channel, platform, event, \
                             from_version, to_version, bytes, duration_ms, at, at_ms, error, \
                             position) \
                 ORDER BY position \
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &ids, &installs, &apps, &channels, &platforms, &events, &from, &to, &bytes,
                    &durations, &at, &at_ms, &errors, &received,
                ],
            )?;
            if let Some((first, dropped)) = store::dropped_key(batch) {
                transaction.execute(
                    "INSERT INTO dropped (first_receipt, app, install_id, count, received_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (first_receipt) DO NOTHING",
                    &[
                        &first.id,
                        &first.app,
                        &first.install_id,
                        &dropped,
                        &received,
                    ],
                )?;
            }
            transaction.commit()?;
            Ok(inserted)
        })();
        self.give_back(client);
        let inserted = result.map_err(|e| self.fail(e))?;
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

impl Query for PostgresStore {
    fn rows(&self, sql: &str, params: &[Option<&str>]) -> Result<Vec<Vec<Cell>>> {
        let mut client = self.take()?;
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let result = client.query(sql, &params);
        self.give_back(client);
        let rows = result.map_err(|e| self.fail(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cells = Vec::with_capacity(row.len());
            for (index, column) in row.columns().iter().enumerate() {
                let cell = match *column.type_() {
                    Type::INT8 => row
                        .try_get::<_, Option<i64>>(index)
                        .map(|v| v.map(Cell::Int)),
                    Type::INT4 => row
                        .try_get::<_, Option<i32>>(index)
                        .map(|v| v.map(|n| Cell::Int(n.into()))),
                    _ => row
                        .try_get::<_, Option<String>>(index)
                        .map(|v| v.map(Cell::Text)),
                };
                cells.push(cell.map_err(|e| self.fail(e))?.unwrap_or(Cell::Null));
            }
            out.push(cells);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_the_password() {
        assert_eq!(
            super::redact("postgres://fleet:secret@db:5432/receipts"),
            "postgres://fleet@db:5432/receipts"
        );
        assert_eq!(
            super::redact("postgres://db/receipts"),
            "postgres://db/receipts"
        );
    }
}
