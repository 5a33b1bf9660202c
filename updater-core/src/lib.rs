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
//! `appupdate`. The crate root is what an app needs: the updater, the poller, their options,
//! events, reports and errors, and the [`Transport`] trait for apps that bring their own
//! HTTP stack. Everything under it (the TUF client, the manifest and delta formats, staging,
//! the switch) is in [`advanced`]: shared with the publisher (crate `appstart-publish`), the
//! development server (`appstart-serve`) and the conformance client, and free to change with
//! the repository format. Publishing is not in this crate, so an app that embeds the updater
//! carries no signing or delta-search code.
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

pub mod advanced;
mod background_drop;
mod events;
mod manifest_fetch;
mod metered;
mod poller;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod test_alloc;
mod uninstall;
mod updater;

// The building blocks keep their short paths inside the crate (`crate::tuf::...`).
use advanced::{
    archive, bandwidth, blob, cancel, config_target, control, delta, download, error, fault, lock,
    manifest, manifest_encoding, mirrors, network_cost, progress, proxy, push, receipts, release,
    settings, shortcut, stage, switch, tls, transport, tuf, watched,
};

pub use appstart_layout::{InstallDir, LauncherConfig, RelativePath, VersionName};
pub use cancel::CancelToken;
pub use control::select::{HeldBack, HoldReason};
pub use error::{Error, Result};
pub use events::{Event, EventSink, Events, Phase, Progress};
pub use poller::{Poller, PollerOptions, request_restart, restart_code};
pub use proxy::ProxySettings;
pub use release::Release;
pub use shortcut::{Shortcut, ShortcutLocation};
pub use transport::{HttpTimeouts, Transport};
pub use uninstall::{UninstallReport, uninstall};
pub use updater::{
    Check, Decision, DownloadReport, InstallOptions, Offer, Plan, RepairReport, Skipped, Staged,
    Status, UpdateReport, Updater, VerifyReport, install,
};
