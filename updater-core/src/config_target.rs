//! Reading the publisher's config targets: small JSON configs in the `custom` of an entry of
//! the *top-level* targets role (`_appstart/receipts.json`, `_appstart/mirrors.json`,
//! `_appstart/push.json`; written by `appstart-publish`'s `config_target`). Each names URLs
//! every install of the fleet connects to, so each is taken only from verified metadata of
//! the top-level role, never from a delegated one, and every URL in it is checked again here:
//! a config that does not parse or a URL that is not plain `http(s)://` is ignored (logged),
//! never an error that would stop an update.

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::tuf::metadata::Targets;

/// Longest URL a config target may name.
pub const MAX_URL_LEN: usize = 2048;

/// The config of target `name` in the top-level targets role `targets`, or `None` when it is
/// absent or not a `T` (logged, naming `what` the config should be).
pub fn read<T: DeserializeOwned>(targets: &Targets, name: &str, what: &str) -> Option<T> {
    let custom = targets.targets.get(name)?.custom.clone()?;
    match serde_json::from_value(custom) {
        Ok(config) => Some(config),
        Err(e) => {
            log::warn!("ignoring target {name}: its custom is not {what}: {e}");
            None
        }
    }
}

/// Checks that `url` is a plain `http://` or `https://` URL with a host, no spaces or control
/// characters, of at most [`MAX_URL_LEN`] bytes; the error names it as a `what` URL.
pub fn check_url(url: &str, what: &str) -> Result<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let ok = rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && url.len() <= MAX_URL_LEN
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} URL {url:?} is not an http:// or https:// URL of at most {MAX_URL_LEN} bytes"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_with_a_host() {
        assert!(check_url("https://m.example.com/repo", "mirror").is_ok());
        assert!(check_url("http://127.0.0.1:8080/x", "push").is_ok());
        let long = format!("https://x/{}", "a".repeat(MAX_URL_LEN));
        for bad in [
            "file:///srv/repo",
            "ftp://x",
            "https://",
            "http:///x",
            "http://a b",
            "https://x\n",
            long.as_str(),
        ] {
            let err = check_url(bad, "push").unwrap_err().to_string();
            assert!(err.starts_with("push URL"), "{bad}: {err}");
        }
    }
}
