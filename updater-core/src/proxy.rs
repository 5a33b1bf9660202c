//! Which HTTP proxy, if any, a request goes through.
//!
//! ureq reads the proxy variables itself, but in its own way: `ALL_PROXY` before
//! `HTTPS_PROXY` before `HTTP_PROXY` whatever the URL's scheme, and a `NO_PROXY` entry
//! `example.com` matches that host only, not `www.example.com`. Installs behind a proxy need
//! something predictable and documented (docs/hosting.md, "Behind a proxy"), so the choice
//! is made here and ureq is only ever given one explicit proxy or none:
//!
//! 1. The install's settings (`install --proxy`, `--proxy-credentials`, `--no-proxy`, kept in
//!    `state/install.toml`) win over the environment, each over its own variable.
//! 2. Without `--proxy`: an `https://` URL uses `HTTPS_PROXY`, then `ALL_PROXY`; an `http://`
//!    URL uses `HTTP_PROXY`, then `ALL_PROXY` (upper case first, then lower case; empty
//!    values count as unset).
//! 3. Without `--no-proxy`: `NO_PROXY` (then `no_proxy`). A comma list; `*` bypasses the
//!    proxy for every host; an entry `example.com` or `.example.com` matches that host and
//!    every host under it; case does not matter; a `:port` on an entry is ignored; IP
//!    addresses match exactly (no CIDR ranges).
//!
//! Credentials never appear in messages: a proxy is shown as its URL with the password
//! replaced by `***`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Largest proxy credentials file read (one `user:password` line).
const MAX_CREDENTIALS_FILE: u64 = 4096;

/// The proxy settings of an install (`install --proxy`, `--proxy-credentials`, `--no-proxy`).
/// Each one that is set wins over its environment variable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxySettings {
    /// `http://[user:password@]host:port`: the proxy for every URL not in `no_proxy`.
    pub url: Option<String>,
    /// A file holding one `user:password` line (mode 0600 on Unix), read at each run.
    pub credentials_file: Option<PathBuf>,
    /// Hosts reached directly: a comma list with `NO_PROXY`'s syntax.
    pub no_proxy: Option<String>,
}

impl ProxySettings {
    /// Settings with only a proxy URL.
    pub fn with_url(url: impl Into<String>) -> Self {
        ProxySettings {
            url: Some(url.into()),
            ..ProxySettings::default()
        }
    }

    /// Adds a credentials file.
    pub fn with_credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.credentials_file = Some(path.into());
        self
    }

    /// Adds hosts to reach directly.
    pub fn with_no_proxy(mut self, hosts: impl Into<String>) -> Self {
        self.no_proxy = Some(hosts.into());
        self
    }

    /// Checks what can be checked without the network: the URL's form, and the credentials
    /// file (present, mode 0600, one `user:password` line).
    pub fn check(&self) -> Result<()> {
        Proxies::resolve(self, &|_| None).map(|_| ())
    }
}

/// One proxy to go through.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// What ureq is given.
    pub(crate) proxy: ureq::Proxy,
    /// The proxy URL for messages: the password replaced by `***`.
    pub(crate) shown: String,
}

/// The proxies chosen for `http://` and `https://` URLs, and the hosts that bypass them.
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    http: Option<Route>,
    https: Option<Route>,
    no_proxy: Vec<String>,
}

impl Proxies {
    /// The environment's proxies (no install settings).
    pub fn from_environment() -> Result<Self> {
        Self::resolve(&ProxySettings::default(), &|name| std::env::var(name).ok())
    }

    /// The proxies for an install with `settings`, the environment read through `env`.
    pub fn resolve(settings: &ProxySettings, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let variable = |names: &[&str]| {
            names.iter().find_map(|name| {
                env(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name.to_string(), v))
            })
        };
        let (http, https) = match &settings.url {
            Some(url) => {
                let route = route(url, "--proxy", settings.credentials_file.as_deref())?;
                (Some(route.clone()), Some(route))
            }
            None => {
                let pick = |names: &[&str]| -> Result<Option<Route>> {
                    variable(names)
                        .map(|(name, value)| route(value.trim(), &name, None))
                        .transpose()
                };
                (
                    pick(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])?,
                    pick(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])?,
                )
            }
        };
        let no_proxy = match &settings.no_proxy {
            Some(hosts) => hosts.clone(),
            None => variable(&["NO_PROXY", "no_proxy"])
                .map(|(_, value)| value)
                .unwrap_or_default(),
        };
        Ok(Proxies {
            http,
            https,
            no_proxy: parse_no_proxy(&no_proxy),
        })
    }

    /// The proxy `url` goes through, or `None` for a direct connection.
    pub(crate) fn route(&self, url: &str) -> Option<&Route> {
        let route = if url.starts_with("https://") {
            self.https.as_ref()
        } else if url.starts_with("http://") {
            self.http.as_ref()
        } else {
            None
        }?;
        let host = url_host(url);
        let bypass = self
            .no_proxy
            .iter()
            .any(|entry| entry == "*" || host == *entry || host.ends_with(&format!(".{entry}")));
        (!bypass).then_some(route)
    }
}

/// The proxy at `url` (named `source` in messages: `--proxy` or the variable), with the
/// credentials of `credentials_file` when given (they replace any in the URL).
fn route(url: &str, source: &str, credentials_file: Option<&Path>) -> Result<Route> {
    let shown = redact(url);
    let scheme_ok = match url.split_once("://") {
        Some((scheme, _)) => scheme.eq_ignore_ascii_case("http"),
        None => true,
    };
    if !scheme_ok {
        return Err(Error::Invalid(format!(
            "{source} {shown}: only http:// proxies are supported"
        )));
    }
    let parsed = ureq::Proxy::new(url).map_err(|_| {
        Error::Invalid(format!(
            "{source} {shown}: not a proxy URL (use http://host:port)"
        ))
    })?;
    let Some((user, password)) = credentials_file.map(read_credentials).transpose()? else {
        return Ok(Route {
            proxy: parsed,
            shown,
        });
    };
    let proxy = ureq::Proxy::builder(ureq::ProxyProtocol::Http)
        .host(parsed.host())
        .port(parsed.port())
        .username(&user)
        .password(&password)
        .build()
        .map_err(|_| {
            Error::Invalid(format!(
                "{source} {shown}: not a proxy URL (use http://host:port)"
            ))
        })?;
    Ok(Route {
        proxy,
        shown: format!("http://{user}:***@{}:{}", parsed.host(), parsed.port()),
    })
}

/// `user:password` from the first line of `path`, refused unless only its owner can read it.
fn read_credentials(path: &Path) -> Result<(String, String)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| Error::io("reading metadata of", path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::Invalid(format!(
                "{}: mode {:o} lets others read the proxy password; make it 0600 (chmod 600 {})",
                path.display(),
                mode & 0o777,
                path.display()
            )));
        }
    }
    let text = appstart_layout::fsutil::read_to_string_capped(path, MAX_CREDENTIALS_FILE)?;
    let line = text.lines().next().unwrap_or_default().trim_end();
    match line.split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok((user.to_string(), password.to_string())),
        _ => Err(Error::Invalid(format!(
            "{}: expected one line `user:password`",
            path.display()
        ))),
    }
}

/// `url` with the password of its user part replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}{user}:***{}", &rest[at..])
        }
        None => url.to_string(),
    }
}

/// The entries of a `NO_PROXY` list: trimmed, lower case, without leading `*.`/`.` or a port.
fn parse_no_proxy(list: &str) -> Vec<String> {
    list.split(',')
        .map(|entry| entry.trim().to_ascii_lowercase())
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let entry = entry.trim_start_matches("*.").trim_start_matches('.');
            strip_port(entry).to_string()
        })
        .collect()
}

/// The host of `url`, lower case, without user part, port or IPv6 brackets.
fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    strip_port(host).to_ascii_lowercase()
}

/// `host` without `:port` and without the brackets of an IPv6 address.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn shown(proxies: &Proxies, url: &str) -> Option<String> {
        proxies.route(url).map(|r| r.shown.clone())
    }

    #[test]
    fn the_environment_is_read_per_scheme_and_settings_win() {
        let env = env_of(&[
            ("HTTP_PROXY", "http://plain:1"),
            ("https_proxy", "http://u:secret@tls:2"),
            ("ALL_PROXY", "http://all:3"),
            ("NO_PROXY", " Example.com:443, .corp ,10.0.0.1"),
        ]);
        let proxies = Proxies::resolve(&ProxySettings::default(), &env).unwrap();
        assert_eq!(
            shown(&proxies, "http://h/r").as_deref(),
            Some("http://plain:1")
        );
        assert_eq!(
            shown(&proxies, "https://h/r").as_deref(),
            Some("http://u:***@tls:2")
        );
        for direct in [
            "https://example.com/r",
            "https://www.EXAMPLE.com:8443/r",
            "http://a.corp/r",
            "http://corp/r",
            "http://10.0.0.1:80/r",
            "file:///srv/r",
        ] {
            assert_eq!(shown(&proxies, direct), None, "{direct}");
        }
        assert!(shown(&proxies, "https://notexample.com/r").is_some());
        assert!(shown(&proxies, "http://10.0.0.10/r").is_some());

        let only_all = Proxies::resolve(
            &ProxySettings::default(),
            &env_of(&[("all_proxy", "all:3")]),
        )
        .unwrap();
        assert_eq!(shown(&only_all, "https://h/").as_deref(), Some("all:3"));
        assert!(
            Proxies::resolve(&ProxySettings::default(), &env_of(&[]))
                .unwrap()
                .route("https://h/")
                .is_none()
        );

        let settings = ProxySettings::with_url("http://set:4").with_no_proxy("h");
        let proxies = Proxies::resolve(&settings, &env).unwrap();
        assert_eq!(
            shown(&proxies, "https://example.com/").as_deref(),
            Some("http://set:4")
        );
        assert_eq!(shown(&proxies, "http://h:1/"), None);
        let star = ProxySettings::with_url("http://set:4").with_no_proxy("*");
        assert!(
            Proxies::resolve(&star, &env)
                .unwrap()
                .route("http://x/")
                .is_none()
        );
    }

    #[test]
    fn bad_proxies_and_credentials_files_are_refused_without_the_password() {
        let err = ProxySettings::with_url("socks5://u:secret@h:1")
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("only http:// proxies"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
        let err = Proxies::resolve(
            &ProxySettings::default(),
            &env_of(&[("HTTPS_PROXY", "ftp://h")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("HTTPS_PROXY"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("proxy-credentials");
        std::fs::write(&file, "alice:s3cret:x\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let settings = ProxySettings::with_url("http://h:8").with_credentials_file(&file);
            let err = settings.check().unwrap_err().to_string();
            assert!(
                err.contains("proxy-credentials") && err.contains("0600"),
                "{err}"
            );
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let settings = ProxySettings::with_url("http://old:pw@h:8").with_credentials_file(&file);
        let proxies = Proxies::resolve(&settings, &env_of(&[])).unwrap();
        let route = proxies.route("http://r/").unwrap();
        assert_eq!(route.shown, "http://alice:***@h:8");
        assert_eq!(route.proxy.username(), Some("alice"));
        assert_eq!(route.proxy.password(), Some("s3cret:x"));
        std::fs::write(&file, "no colon\n").unwrap();
        let err = settings.check().unwrap_err().to_string();
        assert!(err.contains("user:password"), "{err}");
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("http://u:p@h:1/x@y"), "http://u:***@h:1/x@y");
        assert_eq!(redact("u:p@h:1"), "u:***@h:1");
        assert_eq!(redact("http://h:1"), "http://h:1");
        assert_eq!(url_host("http://u:p@[::1]:8/x"), "::1");
    }
}
