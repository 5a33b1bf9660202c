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
}

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
        if self.attempts == 0 {
            return Err(Error::format(
                path.display().to_string(),
                "field `attempts` must be at least 1",
            ));
        }
        Ok(())
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
