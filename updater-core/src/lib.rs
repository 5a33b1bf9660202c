//! `updater-core`: keeps an installed application up to date from a static repository.
//!
//! The repository is plain files any web server or CDN can serve, with trust metadata in The
//! Update Framework's (TUF 1.0) form. An update:
//! 1. refreshes the trusted metadata by the TUF client workflow ([`tuf::client`]);
//! 2. picks the highest release above the running one for this app, channel and platform
//!    ([`release`]);
//! 3. downloads its signed manifest, then builds the new version in a staging folder beside
//!    the running one, taking unchanged files from disk and downloading only the rest,
//!    verifying everything while streaming ([`stage`]);
//! 4. moves it into place and switches `appstart.toml` atomically ([`switch`]); the
//!    `appstart` launcher runs it at the next start.
//!
//! Use it from an app with [`Updater`] and [`Poller`], or from the command line with
//! `appupdate`. Publishing lives in [`publish`].
//!
//! ```no_run
//! # fn main() -> Result<(), updater_core::Error> {
//! let updater = updater_core::Updater::from_launcher_environment()?;
//! let report = updater.update()?;
//! if report.to.is_some() {
//!     updater_core::request_restart();
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod archive;
pub mod blob;
pub mod control;
pub mod delta;
pub mod download;
pub mod error;
pub mod events;
pub mod fault;
pub mod lock;
pub mod manifest;
pub mod manifest_encoding;
mod manifest_fetch;
mod metered;
pub mod poller;
#[cfg(test)]
mod properties;
pub mod publish;
pub mod receipts;
pub mod release;
#[cfg(feature = "server")]
pub mod serve;
pub mod settings;
pub mod shortcut;
pub mod stage;
pub mod switch;
#[cfg(test)]
mod test_alloc;
pub mod transport;
pub mod tuf;
pub mod uninstall;
pub mod updater;

pub use appstart_layout::{InstallDir, LauncherConfig, RelativePath, VersionName, fsutil, hooks};
pub use error::{Error, Result};
pub use events::Event;
pub use poller::{Poller, PollerOptions, request_restart, restart_code};
pub use shortcut::{Shortcut, ShortcutLocation};
pub use uninstall::{UninstallReport, uninstall};
pub use updater::{
    Check, Decision, DownloadReport, InstallOptions, Offer, Plan, RepairReport, Skipped, Staged,
    Status, UpdateReport, Updater, VerifyReport, install,
};
