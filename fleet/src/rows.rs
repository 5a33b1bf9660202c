//! The read side shared by both backends: the queries, written once in the SQL that SQLite
//! and PostgreSQL both speak (window functions, `CAST`, `$1` parameters), and the plain rows
//! they return. Each backend only runs them ([`Query::rows`]); [`crate::summary`] builds the
//! summary from the rows, so the two backends cannot count differently.

use crate::error::Result;

/// One value of a result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl Cell {
    pub fn int(&self) -> i64 {
        match self {
            Cell::Int(n) => *n,
            _ => 0,
        }
    }
    pub fn count(&self) -> u64 {
        u64::try_from(self.int()).unwrap_or(0)
    }
    pub fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(text) => Some(text),
            _ => None,
        }
    }
}

/// Runs a read-only query with text parameters (`None` is NULL).
pub(crate) trait Query {
    fn rows(&self, sql: &str, params: &[Option<&str>]) -> Result<Vec<Vec<Cell>>>;
}

/// `$1`: the app, or NULL for every app.
const APP: &str = "(CAST($1 AS TEXT) IS NULL OR app = $1)";

/// The version an install runs after a receipt: where a switch, fall-back or rollback took
/// it (`to`); for every other event the version it ran when it wrote the receipt (`from`).
const CURRENT: &str = "CASE WHEN event IN ('switched', 'fell_back', 'rolled_back') \
                       THEN to_version ELSE from_version END";

/// The release a receipt is about: the one left for a fall-back or rollback (`from`), the
/// one found, downloaded, switched to or failed on for the others (`to`).
const RELEASE: &str = "CASE WHEN event IN ('fell_back', 'rolled_back') \
                       THEN from_version ELSE to_version END";

/// Newest first among one install's receipts: by time, then by arrival.
const NEWEST: &str = "ORDER BY at_ms DESC, seq DESC";

pub(crate) fn installs() -> String {
    format!("SELECT COUNT(DISTINCT install_id) FROM receipts WHERE {APP}")
}

pub(crate) fn dropped() -> String {
    format!("SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM dropped WHERE {APP}")
}

pub(crate) fn newest_at() -> String {
    format!("SELECT CAST(COALESCE(MAX(at_ms), 0) AS BIGINT) FROM receipts WHERE {APP}")
}

/// Installs by the version their newest version-telling receipt says they run.
pub(crate) fn by_version() -> String {
    format!(
        "SELECT version, COUNT(*) FROM ( \
           SELECT version, ROW_NUMBER() OVER (PARTITION BY app, install_id {NEWEST}) AS n \
           FROM (SELECT app, install_id, at_ms, seq, {CURRENT} AS version \
                 FROM receipts WHERE {APP}) AS r \
           WHERE version IS NOT NULL) AS c \
         WHERE n = 1 GROUP BY version"
    )
}

/// Each install's version at the end of each hour it reported in, from `since_ms` on, and
/// (hour -1) its version before that: [`crate::summary`] carries them forward hour by hour.
pub(crate) fn timeline(since_ms: i64) -> String {
    format!(
        "SELECT install_id, hour, version FROM ( \
           SELECT install_id, version, \
                  CASE WHEN at_ms >= {since_ms} THEN at_ms / 3600000 ELSE -1 END AS hour, \
                  ROW_NUMBER() OVER (PARTITION BY app, install_id, \
                      CASE WHEN at_ms >= {since_ms} THEN at_ms / 3600000 ELSE -1 END \
                      {NEWEST}) AS n \
           FROM (SELECT app, install_id, at_ms, seq, {CURRENT} AS version \
                 FROM receipts WHERE {APP}) AS r \
           WHERE version IS NOT NULL) AS c \
         WHERE n = 1"
    )
}

/// Installs per app, release and event.
pub(crate) fn funnel() -> String {
    format!(
        "SELECT app, version, event, COUNT(DISTINCT install_id) FROM ( \
           SELECT app, install_id, event, {RELEASE} AS version FROM receipts \
           WHERE {APP} AND event IN ('found', 'downloaded', 'staged', 'switched', \
                                     'fell_back', 'rolled_back', 'failed')) AS r \
         WHERE version IS NOT NULL GROUP BY app, version, event"
    )
}

/// Installs per app, release and error code of `failed` receipts.
pub(crate) fn failures() -> String {
    format!(
        "SELECT app, to_version, error, COUNT(DISTINCT install_id) FROM receipts \
         WHERE {APP} AND event = 'failed' AND to_version IS NOT NULL \
         GROUP BY app, to_version, error"
    )
}

/// `$1` app, `$2` version, `$3` channel or NULL, `$4` platform or NULL: installs that reached
/// the release, and those that fell back from it or failed on it.
pub(crate) fn health() -> String {
    let scope = "app = $1 AND (CAST($3 AS TEXT) IS NULL OR channel = $3) \
                 AND (CAST($4 AS TEXT) IS NULL OR platform = $4)";
    let bad = "((event = 'fell_back' AND from_version = $2) \
               OR (event = 'failed' AND to_version = $2))";
    format!(
        "SELECT \
           COUNT(DISTINCT CASE WHEN (event IN ('downloaded', 'switched') AND to_version = $2) \
                 OR {bad} THEN install_id END), \
           COUNT(DISTINCT CASE WHEN {bad} THEN install_id END) \
         FROM receipts WHERE {scope}"
    )
}

/// The tables, in the SQL both databases accept. `seq` is added by each backend (SQLite's
/// `INTEGER PRIMARY KEY`, PostgreSQL's `BIGSERIAL`), since they spell it differently.
pub(crate) fn schema(seq_column: &str) -> Vec<String> {
    vec![
        "CREATE TABLE IF NOT EXISTS fleet_schema (version BIGINT NOT NULL)".into(),
        format!(
            "CREATE TABLE IF NOT EXISTS receipts ( \
               {seq_column}, \
               id TEXT NOT NULL UNIQUE, \
               install_id TEXT NOT NULL, \
               app TEXT NOT NULL, \
               channel TEXT NOT NULL, \
               platform TEXT NOT NULL, \
               event TEXT NOT NULL, \
               from_version TEXT, \
               to_version TEXT, \
               bytes BIGINT NOT NULL, \
               duration_ms BIGINT NOT NULL, \
               at TEXT NOT NULL, \
               at_ms BIGINT NOT NULL, \
               error TEXT, \
               received_ms BIGINT NOT NULL)"
        ),
        "CREATE INDEX IF NOT EXISTS receipts_by_install ON receipts (app, install_id, at_ms)"
            .into(),
        "CREATE INDEX IF NOT EXISTS receipts_by_release ON receipts (app, to_version, event)"
            .into(),
        "CREATE TABLE IF NOT EXISTS dropped ( \
           first_receipt TEXT PRIMARY KEY, \
           app TEXT NOT NULL, \
           install_id TEXT NOT NULL, \
           count BIGINT NOT NULL, \
           received_ms BIGINT NOT NULL)"
            .into(),
    ]
}

/// The health of one release ([`health`]), for every store: the same query and the same
/// reading of its one row.
pub(crate) fn release_health(
    store: &impl Query,
    query: &crate::store::ReleaseQuery,
) -> Result<crate::store::ReleaseHealth> {
    let rows = store.rows(
        &health(),
        &[
            Some(&query.app),
            Some(&query.version),
            query.channel.as_deref(),
            query.platform.as_deref(),
        ],
    )?;
    let row = rows.first().map(Vec::as_slice).unwrap_or_default();
    Ok(crate::store::ReleaseHealth {
        reached: row.first().map_or(0, Cell::count),
        bad: row.get(1).map_or(0, Cell::count),
    })
}
