//! `state/install.toml`: where an install gets its updates from.

use std::path::Path;

use appstart_layout::fsutil;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::check_label;
use crate::proxy::{Proxies, ProxySettings};

/// The updater's settings for one install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallSettings {
    /// Repository base URL (holding `metadata/`, `targets/`, `blobs/`).
    pub url: String,
    /// The app to follow.
    pub app: String,
    /// The channel to follow.
    pub channel: String,
    /// This machine's platform.
    pub platform: String,
    /// Versions to keep installed (at least 2: current and previous).
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// Download tries before giving up.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Seconds without a byte before a download counts as stalled.
    #[serde(default = "default_stall_secs")]
    pub stall_secs: u64,
    /// Groups this install is in, for releases published to groups (`install --group`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The HTTP proxy (`install --proxy`), winning over `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`.
    /// Credentials in this URL make this file as secret as the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// A `user:password` file for the proxy (`install --proxy-credentials`), read at each run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_credentials: Option<std::path::PathBuf>,
    /// Hosts reached without the proxy (`install --no-proxy`), winning over `NO_PROXY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    /// An extra CA trusted for HTTPS (`install --ca-file`): the name of its PEM copy in the
    /// state folder (`ca.pem`), never a path elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// More base URLs of the same repository, tried after `url` in order of recent health
    /// (`install --mirror`; docs/hosting.md, "Mirrors").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// Bandwidth limit of background downloads (`install --max-bandwidth`, `appupdate
    /// settings --max-bandwidth`): `512K`, `2M` (bytes per second, 1024-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bandwidth: Option<crate::bandwidth::Rate>,
    /// What background downloads do on a metered connection (`pause` by default); the
    /// policy's `metered` wins over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metered: Option<crate::network_cost::MeteredMode>,
}

/// Most `mirrors` one install keeps.
pub const MAX_MIRRORS: usize = 8;

/// The name of the copy of `install --ca-file` in the state folder.
pub const CA_FILE_NAME: &str = "ca.pem";

fn default_keep() -> usize {
    2
}
fn default_attempts() -> u32 {
    5
}
fn default_stall_secs() -> u64 {
    30
}

impl InstallSettings {
    /// Settings with defaults for everything but the repository and what to follow.
    pub fn new(url: String, app: String, channel: String, platform: String) -> Self {
        InstallSettings {
            url,
            app,
            channel,
            platform,
            keep: default_keep(),
            attempts: default_attempts(),
            stall_secs: default_stall_secs(),
            groups: Vec::new(),
            proxy: None,
            proxy_credentials: None,
            no_proxy: None,
            ca_file: None,
            mirrors: Vec::new(),
            max_bandwidth: None,
            metered: None,
        }
    }

    /// The proxy settings kept here.
    pub fn proxy_settings(&self) -> ProxySettings {
        ProxySettings {
            url: self.proxy.clone(),
            credentials_file: self.proxy_credentials.clone(),
            no_proxy: self.no_proxy.clone(),
        }
    }

    /// The proxies this install's requests go through: its settings, then the environment.
    pub fn proxies(&self) -> Result<Proxies> {
        Proxies::resolve(&self.proxy_settings(), &|name| std::env::var(name).ok())
    }

    /// Reads and checks the settings file.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::NotInstalled(format!(
                "{} is missing: this folder was not installed by appupdate install",
                path.display()
            )));
        }
        let text = appstart_layout::fsutil::read_to_string_capped(
            path,
            appstart_layout::fsutil::MAX_STATE_FILE,
        )?;
        let settings: InstallSettings = toml::from_str(&text)
            .map_err(|e| appstart_layout::Error::from_toml(path, &text, &e))?;
        settings.check(path)?;
        Ok(settings)
    }

    fn check(&self, path: &Path) -> Result<()> {
        if self.stall_secs == 0 {
            // Every request would fail at once, as `--timeout 0` would: refused as it is.
            return Err(Error::format(
                path.display().to_string(),
                "field `stall_secs` is 0: it must be at least 1 (seconds without data before a request fails)",
            ));
        }
        for (field, value) in [
            ("app", &self.app),
            ("channel", &self.channel),
            ("platform", &self.platform),
        ] {
            check_label(field, value)
                .map_err(|e| Error::format(path.display().to_string(), e.to_string()))?;
        }
        for group in &self.groups {
            crate::control::check_group(group)
                .map_err(|e| Error::format(path.display().to_string(), e))?;
        }
        if let Some(name) = &self.ca_file
            && name != CA_FILE_NAME
        {
            return Err(Error::format(
                path.display().to_string(),
                format!("field `ca_file` must be {CA_FILE_NAME:?} (the copy in the state folder)"),
            ));
        }
        if self.keep < 2 {
            return Err(Error::format(
                path.display().to_string(),
                "field `keep` must be at least 2",
            ));
        }
        if self.proxy_credentials.is_some() && self.proxy.is_none() {
            return Err(Error::format(
                path.display().to_string(),
                "field `proxy_credentials` needs field `proxy`",
            ));
        }
        if self.mirrors.len() > MAX_MIRRORS {
            return Err(Error::format(
                path.display().to_string(),
                format!("field `mirrors` names more than {MAX_MIRRORS} URLs"),
            ));
        }
        for mirror in &self.mirrors {
            let scheme = ["http://", "https://", "file://"];
            if !scheme.iter().any(|s| mirror.starts_with(s)) {
                return Err(Error::format(
                    path.display().to_string(),
                    format!(
                        "field `mirrors`: {mirror:?} is not an http://, https:// or file:// URL"
                    ),
                ));
            }
        }
        if self.attempts == 0 {
            return Err(Error::format(
                path.display().to_string(),
                "field `attempts` must be at least 1",
            ));
        }
        Ok(())
    }

    /// The HTTPS trust of this install: the OS trust store, plus `ca_file` (read from the
    /// state folder `state_dir`) when there is one.
    pub fn tls_trust(&self, state_dir: &Path) -> Result<crate::tls::TlsTrust> {
        match &self.ca_file {
            Some(name) => crate::tls::TlsTrust::with_ca_file(&state_dir.join(name)),
            None => Ok(crate::tls::TlsTrust::system()),
        }
    }

    /// Writes the settings atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string(self).map_err(|e| Error::Invalid(e.to_string()))?;
        fsutil::write_atomic(path, text.as_bytes())?;
        // A proxy password in the URL makes this file as secret as the password.
        #[cfg(unix)]
        if self
            .proxy
            .as_deref()
            .is_some_and(|url| crate::proxy::redact(url) != url)
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io("restricting", path, e))?;
        }
        Ok(())
    }
}
