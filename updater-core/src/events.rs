//! Progress events an app can show while the updater works.

use appstart_layout::VersionName;

/// Something the updater did or found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A newer release is available.
    Found {
        /// The running version.
        current: VersionName,
        /// The release found.
        available: VersionName,
    },
    /// Progress while building the new version.
    Progress {
        /// Files done so far.
        files_done: usize,
        /// Files in the release.
        files_total: usize,
        /// Bytes downloaded so far.
        bytes_downloaded: u64,
    },
    /// The new version is complete in its folder, not yet switched to.
    Staged {
        /// The version.
        version: VersionName,
    },
    /// `appstart.toml` now names the new version; the next launch runs it.
    Switched {
        /// The version that was current.
        from: VersionName,
        /// The new current version.
        to: VersionName,
    },
    /// The [`crate::Poller`] applied a critical release and asks the app to restart: the app
    /// calls [`crate::request_restart`] from its own thread when it is ready.
    RestartRequested {
        /// The version that runs after the restart.
        version: VersionName,
    },
    /// A check or update failed; the installation is as it was.
    Failed {
        /// The error, with its causes.
        message: String,
    },
}

/// A receiver of events.
pub type EventSink = dyn Fn(&Event) + Send + Sync;
