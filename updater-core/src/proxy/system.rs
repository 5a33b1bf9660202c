//! The system proxy: what the operating system's own proxy setting says, used when neither
//! the install's settings nor the environment name a proxy (step 4 in [`super`]).
//!
//! - **Windows**: the Internet Options proxy (Settings > Network > Proxy, or a group policy),
//!   read from the registry at `Software\Microsoft\Windows\CurrentVersion\Internet Settings`:
//!   `ProxyEnable`, `ProxyServer`, `ProxyOverride`; under the current user, or under the machine
//!   when the policy `ProxySettingsPerUser` is 0 (`windows.rs`). Automatic configuration (a PAC
//!   script in `AutoConfigURL`, or WPAD) is not evaluated: it is logged and the manual setting,
//!   if any, is used. A service running as LocalSystem has no user setting: give it
//!   `install --proxy` or the variables.
//! - **Linux**: there is no OS-wide store; the variables are the system setting (desktop
//!   sessions export theirs into them).
//! - **macOS**: the System Settings proxy (SystemConfiguration) is not read yet: use
//!   `install --proxy` or the variables (docs/hosting.md, "Behind a proxy").
//!
//! The setting's text is parsed here, on every platform, so its unit tests run everywhere.

#[cfg(windows)]
mod windows;

/// The system proxy setting, as the OS keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemSetting {
    /// `ProxyServer`: `host:port` for every scheme, or `http=host:port;https=host:port`.
    pub server: String,
    /// `ProxyOverride`: hosts reached directly, `;`-separated, `*` wildcards, `<local>`.
    pub bypass: String,
}

/// The proxies a [`SystemSetting`] names, per scheme, as `http://host:port` URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemProxy {
    /// For `http://` URLs.
    pub http: Option<String>,
    /// For `https://` URLs.
    pub https: Option<String>,
    /// Hosts reached directly (already parsed).
    pub bypass: Vec<super::Bypass>,
}

/// The system proxy of this machine, if it has one that applies (see the module docs).
pub fn current() -> Option<SystemProxy> {
    #[cfg(windows)]
    {
        windows::setting().map(|setting| SystemProxy::parse(&setting))
    }
    // Linux: the environment is the system setting; macOS: not read (module docs).
    #[cfg(not(windows))]
    {
        None
    }
}

impl SystemProxy {
    /// Parses Windows' `ProxyServer` and `ProxyOverride` syntax. Entries for other schemes
    /// (`ftp=`, `socks=`) are ignored: only HTTP proxies are supported. When the setting names
    /// schemes, a scheme it does not name goes directly, as it does for Windows' own programs.
    pub fn parse(setting: &SystemSetting) -> SystemProxy {
        let mut proxy = SystemProxy::default();
        let entries = setting
            .server
            .split([';', ' ', '\t'])
            .map(str::trim)
            .filter(|entry| !entry.is_empty());
        for entry in entries {
            match entry.split_once('=') {
                Some((scheme, address)) => {
                    let address = as_url(address.trim());
                    match scheme.trim().to_ascii_lowercase().as_str() {
                        "http" => proxy.http = address,
                        "https" => proxy.https = address,
                        other => log::debug!("ignoring the system's {other} proxy"),
                    }
                }
                None => {
                    let address = as_url(entry);
                    proxy.http = address.clone();
                    proxy.https = address;
                }
            }
        }
        proxy.bypass = setting
            .bypass
            .split([';', ' ', '\t', '\r', '\n'])
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(super::Bypass::from_system_entry)
            .collect();
        proxy
    }
}

/// `address` as an `http://` URL (Windows stores `host:port`, sometimes with a scheme).
fn as_url(address: &str) -> Option<String> {
    if address.is_empty() {
        return None;
    }
    if address.contains("://") {
        return Some(address.to_string());
    }
    Some(format!("http://{address}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(server: &str, bypass: &str) -> SystemProxy {
        SystemProxy::parse(&SystemSetting {
            server: server.into(),
            bypass: bypass.into(),
        })
    }

    #[test]
    fn one_proxy_for_every_scheme_or_one_per_scheme() {
        let all = parse("proxy.corp:8080", "");
        assert_eq!(all.http.as_deref(), Some("http://proxy.corp:8080"));
        assert_eq!(all.https.as_deref(), Some("http://proxy.corp:8080"));
        let per = parse(
            "http=web:80; https=http://tls:3128;ftp=f:21;socks=s:1080",
            "",
        );
        assert_eq!(per.http.as_deref(), Some("http://web:80"));
        assert_eq!(per.https.as_deref(), Some("http://tls:3128"));
        let only_http = parse("http=web:80", "");
        assert_eq!(only_http.https, None);
        assert_eq!(parse("", "").http, None);
    }
}
