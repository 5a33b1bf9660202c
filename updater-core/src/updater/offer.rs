//! Letting the app decide: [`crate::Updater::on_found`] is asked before a found release is
//! downloaded (a licence check against the release's custom data, a prompt to the user).

use std::time::Duration;

use appstart_layout::VersionName;

/// A release the updater is about to take.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Offer {
    /// The running version.
    pub current: VersionName,
    /// The version offered.
    pub version: VersionName,
    /// The publisher's data for it (`publish --custom`).
    pub custom: serde_json::Map<String, serde_json::Value>,
    /// It is critical (or replaces an expired release): the poller restarts the app after it.
    pub critical: bool,
}

/// The app's answer to an [`Offer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Download and apply it now.
    Accept,
    /// Not now: the poller asks again after this long.
    Defer(Duration),
    /// Never in this process: the updater looks for another release without it.
    Skip,
}

/// The app's hook.
pub(super) type OnFound = dyn Fn(&Offer) -> Decision + Send + Sync;
