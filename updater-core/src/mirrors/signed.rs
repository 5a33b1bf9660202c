//! The publisher's signed mirror list: the `custom` of the target [`CONFIG_TARGET`] in the
//! *top-level* targets role (`appupdate repo mirrors`), like the receipts URL
//! (`crate::receipts::CONFIG_TARGET`). A delegated role cannot name it: only the targets
//! key decides where every install may fetch from.
//!
//! A mirror is never trusted for content: everything it serves is verified against the
//! signed metadata like the primary's. The list is signed anyway so that whoever serves the
//! repository cannot send the fleet to hosts of their choosing (traffic, tracking).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::tuf::metadata::Targets;

/// The name of the config target holding the mirror list.
pub const CONFIG_TARGET: &str = "_appstart/mirrors.json";

/// Most mirrors in a signed list.
pub const MAX_SIGNED: usize = 8;

/// Longest mirror URL accepted.
pub use crate::config_target::MAX_URL_LEN;

/// The config target's content (and `custom`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MirrorsConfig {
    /// Base URLs of full copies of the repository, in the publisher's order.
    pub urls: Vec<String>,
}

impl MirrorsConfig {
    /// A config naming `urls`.
    pub fn new(urls: Vec<String>) -> Self {
        MirrorsConfig { urls }
    }
}

/// Checks that `url` can name a mirror in a signed list: `http://` or `https://` (a
/// `file://` path means nothing on another machine), no spaces or control characters, at
/// most [`MAX_URL_LEN`] bytes.
pub fn check_url(url: &str) -> Result<()> {
    crate::config_target::check_url(url, "mirror")
}

/// The mirrors named by the top-level targets role `targets` (at most [`MAX_SIGNED`], each
/// without a trailing `/`), or none. Entries that are not plain `http(s)://` URLs are
/// skipped (logged).
pub fn signed_mirrors(targets: &Targets) -> Vec<String> {
    let Some(config) =
        crate::config_target::read::<MirrorsConfig>(targets, CONFIG_TARGET, "a mirror list")
    else {
        return Vec::new();
    };
    let mut urls = Vec::new();
    for url in config.urls {
        match check_url(&url) {
            Ok(()) if urls.len() < MAX_SIGNED => urls.push(url.trim_end_matches('/').to_string()),
            Ok(()) => {
                log::warn!("ignoring mirror {url}: {CONFIG_TARGET} names more than {MAX_SIGNED}")
            }
            Err(e) => log::warn!("ignoring a mirror of target {CONFIG_TARGET}: {e}"),
        }
    }
    urls
}

/// The signed mirrors of the trusted metadata stored in `metadata_dir` (the last verified
/// targets role, checked again as it is loaded), or none.
pub fn stored(metadata_dir: &std::path::Path) -> Vec<String> {
    crate::tuf::client::TrustedMetadata::load(metadata_dir, crate::tuf::client::Limits::default())
        .ok()
        .and_then(|trusted| trusted.targets().map(signed_mirrors))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://m.example.com/repo").is_ok());
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        for bad in ["file:///srv/repo", "https://", "ftp://x", "http://a b"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
