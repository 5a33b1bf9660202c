//! The building blocks under [`crate::Updater`], and the repository format.
//!
//! An app does not need this module: the crate root has everything for checking, updating,
//! polling and reporting. It is public because other parts of appstart are built from the
//! same pieces and must agree byte for byte with the client: the publisher (`appstart-publish`)
//! writes the metadata, manifests, blobs and deltas this client reads; the development server
//! (`appstart-serve`) and the fleet receiver use the receipt types; the TUF conformance client
//! (`tuf-client`) drives the TUF workflow directly. Its items follow the repository format
//! (`docs/repository-format.md`), not the stability promise of the app-facing API.
//!
//! The files stay where they always were (`src/tuf/`, `src/stage/`, ...): one folder per
//! responsibility, gathered here only for visibility.

#[path = "archive/mod.rs"]
pub mod archive;
#[path = "bandwidth.rs"]
pub mod bandwidth;
#[path = "blob.rs"]
pub mod blob;
#[path = "cancel.rs"]
pub mod cancel;
#[path = "config_target.rs"]
pub mod config_target;
#[path = "control/mod.rs"]
pub mod control;
#[path = "delta/mod.rs"]
pub mod delta;
#[path = "download.rs"]
pub mod download;
#[path = "error.rs"]
pub mod error;
#[path = "fault.rs"]
pub mod fault;
#[path = "lock.rs"]
pub mod lock;
#[path = "manifest/mod.rs"]
pub mod manifest;
#[path = "manifest_encoding.rs"]
pub mod manifest_encoding;
#[path = "mirrors/mod.rs"]
pub mod mirrors;
#[path = "network_cost/mod.rs"]
pub mod network_cost;
#[path = "progress.rs"]
pub mod progress;
#[path = "proxy/mod.rs"]
pub mod proxy;
#[path = "push/mod.rs"]
pub mod push;
#[path = "receipts/mod.rs"]
pub mod receipts;
#[path = "release.rs"]
pub mod release;
#[path = "settings.rs"]
pub mod settings;
#[path = "shortcut/mod.rs"]
pub mod shortcut;
#[path = "stage/mod.rs"]
pub mod stage;
#[path = "switch/mod.rs"]
pub mod switch;
#[path = "tls.rs"]
pub mod tls;
#[path = "transport/mod.rs"]
pub mod transport;
#[path = "tuf/mod.rs"]
pub mod tuf;
#[path = "watched.rs"]
pub mod watched;

pub use appstart_layout::{fsutil, hooks};
