//! Push: a stream the repository's server keeps open that announces each new timestamp
//! version, so a running app checks within seconds of a publish instead of at its next
//! interval (`docs/hosting.md#push`, `docs/embedding.md`).
//!
//! Why it carries no trust: an announcement only wakes the [`crate::Poller`] to run a
//! normal check, which verifies everything as any other check does. A lying or broken push
//! server can at most cause an extra check (rate-limited to one per 30 s); it cannot offer a
//! release, hold one back, or stop interval polling, which never stops.
//!
//! Where the URL comes from: the signed `custom` of the target [`CONFIG_TARGET`] in the
//! *top-level* targets role ([`push_url`]), written by `appupdate repo push`; a delegated role
//! cannot name it, and the server that serves the repository cannot either.
//!
//! The wire format (server-sent events, `text/event-stream`), parsed by [`sse`]:
//! ```text
//! : keep-alive comment, at least every 15 s
//!
//! data: {"timestamp_version": 42}
//!
//! ```
//! [`subscriber`] keeps one such connection open, reconnecting with backoff, over a
//! [`stream::StreamTransport`] (the install's proxy and CA trust).

pub(crate) mod link;
pub mod sse;
pub mod stream;
pub mod subscriber;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::tuf::metadata::Targets;

/// The target whose signed `custom` names the push URL (top-level targets role only). The
/// name cannot be a release's: app names start with a letter or digit.
pub const CONFIG_TARGET: &str = "_appstart/push.json";

/// Longest push URL accepted.
pub use crate::config_target::MAX_URL_LEN;

/// The path `appupdate serve` answers push subscriptions on.
pub const SERVE_PATH: &str = "/_appstart/push";

/// Where installs subscribe: the signed `custom` of [`CONFIG_TARGET`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PushConfig {
    /// The push endpoint's full URL (an event stream); `None`: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl PushConfig {
    /// Push from `url`, or off.
    pub fn new(url: Option<String>) -> Self {
        PushConfig { url }
    }
}

/// The push URL named by the top-level targets role `targets`, or `None` when it names
/// none, or names one that is not a plain `http(s)://` URL (logged).
pub fn push_url(targets: &Targets) -> Option<String> {
    let config: PushConfig = crate::config_target::read(targets, CONFIG_TARGET, "a push config")?;
    let url = config.url?;
    match check_url(&url) {
        Ok(()) => Some(url),
        Err(e) => {
            log::warn!("ignoring target {CONFIG_TARGET}: {e}");
            None
        }
    }
}

/// Checks that `url` can name a push endpoint: `http://` or `https://`, no spaces or control
/// characters, at most [`MAX_URL_LEN`] bytes.
pub fn check_url(url: &str) -> Result<()> {
    crate::config_target::check_url(url, "push")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_name_a_push_endpoint() {
        assert!(check_url("https://push.example.com/_appstart/push").is_ok());
        assert!(check_url("http://127.0.0.1:8080/_appstart/push").is_ok());
        let long = format!("https://x/{}", "a".repeat(MAX_URL_LEN));
        for bad in [
            "file:///etc",
            "ftp://x",
            "http://",
            "http:///x",
            "http://a b",
            "https://x\n",
            long.as_str(),
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
