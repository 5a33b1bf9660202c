//! What the [`crate::Poller`] needs from the updater for push (`crate::push`): the push URL
//! and timestamp version of the trusted metadata on disk, and a transport to subscribe with.
//!
//! Why from disk: each check stores every role as it verifies it, so the stored metadata is
//! what the last check trusted; reading it at start also lets a poller with a long interval
//! subscribe before its first check.

use std::sync::Arc;

use super::Updater;
use crate::push::stream::StreamTransport;
use crate::transport::Transport;
use crate::tuf::client::{Limits, TrustedMetadata};

/// The push URL and timestamp version of the trusted metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PushState {
    /// The URL the top-level targets role names, if any.
    pub(crate) url: Option<String>,
    /// The trusted timestamp's version (0: none yet).
    pub(crate) timestamp_version: u64,
}

impl Updater {
    /// The stored trusted metadata's push URL and timestamp version (nothing when it cannot
    /// be read: logged, and the poller keeps polling).
    pub(crate) fn push_state(&self) -> PushState {
        match TrustedMetadata::load(&self.install.metadata_dir(), Limits::default()) {
            Ok(trusted) => PushState {
                url: trusted.targets().and_then(crate::push::push_url),
                timestamp_version: trusted.timestamp_version().unwrap_or(0),
            },
            Err(e) => {
                log::warn!("no push: {}", crate::error::chain(&e));
                PushState::default()
            }
        }
    }

    /// The transport for a push stream: an app's own transport when it set one, else a
    /// [`StreamTransport`] through the install's proxy settings and CA trust.
    pub(crate) fn push_transport(&self) -> Option<Arc<dyn Transport>> {
        if self.app_transport {
            return Some(Arc::clone(&self.raw_transport));
        }
        match self.settings.proxies() {
            Ok(proxies) => Some(Arc::new(StreamTransport::new(proxies, &self.trust))),
            Err(e) => {
                log::warn!("no push: {}", crate::error::chain(&e));
                None
            }
        }
    }
}
