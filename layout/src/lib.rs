//! The install folder's layout and the `appstart.toml` model.
//!
//! Both the launcher (`appstart`) and the updater read and write the same files: the launcher
//! config, the version folders, and a few state files. This crate owns their shape so the two
//! sides cannot drift apart, and it depends on nothing heavier than `serde` and `toml`, so the
//! launcher does not inherit the updater's network and crypto code.
//!
//! An install folder looks like this (see `docs/layout.md`):
//!
//! ```text
//! DIR/
//!   appstart              the launcher; shortcuts point here and the path never changes
//!   appstart.toml         which version runs: `current`, `previous`, executable, restart code
//!   versions/<version>/   one complete, read-only folder per installed version
//!   state/                updater and launcher state: history, bad versions, probation, TUF metadata
//! ```
//!
//! Every write that matters goes through [`fsutil::write_atomic`]: temporary file in the same
//! folder, `fsync`, rename over the target, `fsync` the folder. A crash at any instant leaves
//! either the old or the new file, never a torn one.
#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod fsutil;
pub mod history;
pub mod hooks;
pub mod names;
pub mod paths;
pub mod state;
#[cfg(test)]
mod testing;

pub use config::LauncherConfig;
pub use error::{Error, Result};
pub use names::{RelativePath, VersionName};
pub use paths::InstallDir;
