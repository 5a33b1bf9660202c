//! The fleet crate's errors: each names the database (a file path, or a PostgreSQL URL
//! without its password) or the receipt field at fault.

/// A fleet error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite failed on the database file `db`.
    #[error("receipt database {db}: {source}")]
    Sqlite {
        /// The database file.
        db: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// PostgreSQL failed on the database at `db` (a URL without its password).
    #[error("receipt database {db}: {source}")]
    Postgres {
        /// The database URL, password removed.
        db: String,
        /// What PostgreSQL said.
        source: postgres::Error,
    },
    /// The database was written by a newer receiver.
    #[error(
        "receipt database {db}: schema version {found} is newer than this receiver's {supported}; upgrade appupdate"
    )]
    Schema {
        /// The database.
        db: String,
        /// The version stored.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A batch that must not be stored; the message names the receipt and field.
    #[error("batch refused: {0}")]
    BadBatch(String),
    /// Anything else, with its context.
    #[error("{0}")]
    Invalid(String),
}

/// A fleet result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
