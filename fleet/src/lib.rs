//! The fleet receiver: where delivery receipts from every install are stored and read back.
//!
//! Installs post their receipts ([`updater_core::advanced::receipts`], the wire format) in batches to
//! `POST /receipts`; this crate checks each batch, stores it in a [`Store`] (SQLite for one
//! machine, PostgreSQL when several stateless receivers share one database), and answers
//! `GET /fleet` (an HTML page) and `GET /fleet.json` ([`FleetSummary`]) from it. It lives
//! apart from `updater-core` on purpose: apps embed `updater-core`, and no app should carry a
//! database driver. The routes ride on the development server through its request hook
//! ([`appstart_serve::Handler`]), so `appupdate serve --receipts-db DB` serves a
//! repository and receives its fleet's receipts on one port.
//!
//! What is counted, and why, is in [`summary`]; the deployment is in `docs/fleet.md`.
#![deny(missing_docs)]

mod error;
pub mod http;
pub mod page;
mod postgres;
mod rows;
mod sqlite;
pub mod store;
#[cfg(test)]
mod store_tests;
pub mod summary;

pub use error::{Error, Result};
pub use http::Receiver;
pub use store::{Inserted, ReleaseHealth, ReleaseQuery, Store, open};
pub use summary::FleetSummary;
