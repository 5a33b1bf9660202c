//! Events an app can show while the updater works, including byte-level progress.
//!
//! Progress comes as [`Event::Progress`] with a [`Progress`] payload: a phase, bytes done
//! and total, files done and total. The updater and the publisher send it throttled (about
//! ten a second at most, see [`crate::progress`]) and always once when a phase starts and
//! once when it ends, so a receiver can draw a bar without rate-limiting it again.

use std::sync::Arc;

use appstart_layout::VersionName;
use serde::Serialize;

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
    /// Progress of a phase (downloading a version, verifying one, publishing).
    Progress(Progress),
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
    /// A background check or update did nothing because the connection is metered
    /// (`metered = "pause"`, the default; see [`crate::Updater::set_background`]).
    Paused {
        /// Why, for a log or a status line.
        reason: String,
    },
    /// A check or update failed; the installation is as it was.
    Failed {
        /// The error, with its causes.
        message: String,
    },
}

/// How far a phase has come. Within one phase both counts only grow, never past their
/// totals; the phase's last event has `bytes_done == bytes_total` and
/// `files_done == files_total` when the phase succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Progress {
    /// What is being done.
    pub phase: Phase,
    /// Bytes done so far (see [`Phase`] for what they count).
    pub bytes_done: u64,
    /// Bytes the phase will do, known when it starts.
    pub bytes_total: u64,
    /// Files done so far.
    pub files_done: u64,
    /// Files the phase will do.
    pub files_total: u64,
}

/// A phase of work that reports [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Phase {
    /// Building a version (install, update, repair): bytes are those received over the
    /// network for its content; the total is what the plan needs that is not on disk or in
    /// the download cache (bridged pack gaps and retries are not counted past it). Files
    /// are the version's files made, from disk or the network.
    Download,
    /// Reading and hashing the current version's files (`verify`): bytes and files read.
    Verify,
    /// Publishing: hashing and compressing the source folder's files into blobs.
    PublishCompress,
    /// Publishing: delta search against earlier releases (bytes: the new files' sizes).
    PublishDelta,
    /// Publishing: writing the release's pack (bytes: the blobs copied into it).
    Write,
}

impl Phase {
    /// The phase's name as the CLI prints it (`download`, `publish-compress`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Download => "download",
            Phase::Verify => "verify",
            Phase::PublishCompress => "publish-compress",
            Phase::PublishDelta => "publish-delta",
            Phase::Write => "write",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A receiver of events.
pub type EventSink = dyn Fn(&Event) + Send + Sync;

/// A receiver of events that option structs ([`crate::InstallOptions`],
/// the publisher's `PublishRequest`) can hold: shared, cloneable and printable.
#[derive(Clone)]
pub struct Events(Arc<EventSink>);

impl Events {
    /// Sends events to `sink`.
    pub fn new(sink: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        Events(Arc::new(sink))
    }

    /// The shared receiver.
    pub fn sink(&self) -> &Arc<EventSink> {
        &self.0
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events(..)")
    }
}
