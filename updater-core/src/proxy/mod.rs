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
//! 4. Neither settings nor variables name a proxy: the system proxy ([`system`]: Windows'
//!    Internet Options setting), with its own bypass list (`ProxyOverride`: `;`-separated,
//!    `*` wildcards, `<local>` for host names without a dot) unless `--no-proxy` or
//!    `NO_PROXY` is set.
//!
//! Credentials never appear in messages: a proxy is shown as its URL with the password
//! replaced by `***`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub mod system;

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
        Proxies::resolve_with(self, &|_| None, || None).map(|_| ())
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

/// A host, or hosts, reached without the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bypass {
    /// Every host (`*`).
    All,
    /// This host and every host under it (`NO_PROXY`'s `example.com` or `.example.com`).
    Domain(String),
    /// Hosts matching a lower-case pattern where `*` stands for any text (Windows'
    /// `ProxyOverride` entries such as `*.corp.example` or `10.*`).
    Pattern(String),
    /// Host names without a dot (Windows' `<local>`).
    Local,
}

impl Bypass {
    /// One `ProxyOverride` entry: `<local>`, `*`, or a pattern (a scheme or port on it is
    /// ignored, as ports are for `NO_PROXY`).
    fn from_system_entry(entry: &str) -> Bypass {
        let entry = entry.to_ascii_lowercase();
        let entry = entry
            .split_once("://")
            .map_or(entry.as_str(), |(_, rest)| rest);
        match strip_port(entry) {
            "<local>" => Bypass::Local,
            "*" => Bypass::All,
            pattern => Bypass::Pattern(pattern.to_string()),
        }
    }

    /// Whether `host` (lower case, no port) is reached directly.
    fn matches(&self, host: &str) -> bool {
        match self {
            Bypass::All => true,
            Bypass::Domain(domain) => host == domain || host.ends_with(&format!(".{domain}")),
            Bypass::Pattern(pattern) => wildcard_match(pattern, host),
            Bypass::Local => !host.contains('.') && !host.contains(':'),
        }
    }
}

/// Whether `text` matches `pattern`, where `*` in the pattern stands for any text.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*` at all: the whole text must be the pattern.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The proxies chosen for `http://` and `https://` URLs, and the hosts that bypass them.
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    http: Option<Route>,
    https: Option<Route>,
    no_proxy: Vec<Bypass>,
}

impl Proxies {
    /// The environment's proxies (no install settings), then the system's.
    pub fn from_environment() -> Result<Self> {
        Self::resolve(&ProxySettings::default(), &|name| std::env::var(name).ok())
    }

    /// The proxies for an install with `settings`, the environment read through `env`, then
    /// this machine's system proxy ([`system::current`]).
    pub fn resolve(settings: &ProxySettings, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        Self::resolve_with(settings, env, system::current)
    }

    /// As [`Proxies::resolve`], with the system proxy from `system` (asked only when neither
    /// the settings nor the variables name a proxy).
    pub fn resolve_with(
        settings: &ProxySettings,
        env: &dyn Fn(&str) -> Option<String>,
        system: impl FnOnce() -> Option<system::SystemProxy>,
    ) -> Result<Self> {
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
            Some(hosts) => Some(hosts.clone()),
            None => variable(&["NO_PROXY", "no_proxy"]).map(|(_, value)| value),
        };
        // Step 4: the system proxy, only when nothing above names one.
        if http.is_none()
            && https.is_none()
            && let Some(system) = system()
        {
            let source = "the system proxy setting (ProxyServer)";
            let pick = |url: &Option<String>| url.as_deref().map(|url| route(url, source, None));
            return Ok(Proxies {
                http: pick(&system.http).transpose()?,
                https: pick(&system.https).transpose()?,
                no_proxy: match no_proxy {
                    Some(list) => parse_no_proxy(&list),
                    None => system.bypass,
                },
            });
        }
        Ok(Proxies {
            http,
            https,
            no_proxy: parse_no_proxy(&no_proxy.unwrap_or_default()),
        })
    }

    /// The proxy for `https://` (`https` true) or `http://` URLs, whatever the host: what
    /// [`Proxies::route`] gives for hosts that do not bypass it.
    pub(crate) fn for_scheme(&self, https: bool) -> Option<&Route> {
        if https {
            self.https.as_ref()
        } else {
            self.http.as_ref()
        }
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
        let bypass = self.no_proxy.iter().any(|entry| entry.matches(&host));
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
fn parse_no_proxy(list: &str) -> Vec<Bypass> {
    list.split(',')
        .map(|entry| entry.trim().to_ascii_lowercase())
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            if entry == "*" {
                return Bypass::All;
            }
            let entry = entry.trim_start_matches("*.").trim_start_matches('.');
            Bypass::Domain(strip_port(entry).to_string())
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

    /// Resolves without this machine's system proxy, so the tests mean the same everywhere.
    fn resolve(settings: &ProxySettings, env: &dyn Fn(&str) -> Option<String>) -> Result<Proxies> {
        Proxies::resolve_with(settings, env, || None)
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
        let proxies = resolve(&ProxySettings::default(), &env).unwrap();
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

        let only_all = resolve(
            &ProxySettings::default(),
            &env_of(&[("all_proxy", "all:3")]),
        )
        .unwrap();
        assert_eq!(shown(&only_all, "https://h/").as_deref(), Some("all:3"));
        assert!(
            resolve(&ProxySettings::default(), &env_of(&[]))
                .unwrap()
                .route("https://h/")
                .is_none()
        );

        let settings = ProxySettings::with_url("http://set:4").with_no_proxy("h");
        let proxies = resolve(&settings, &env).unwrap();
        assert_eq!(
            shown(&proxies, "https://example.com/").as_deref(),
            Some("http://set:4")
        );
        assert_eq!(shown(&proxies, "http://h:1/"), None);
        let star = ProxySettings::with_url("http://set:4").with_no_proxy("*");
        assert!(resolve(&star, &env).unwrap().route("http://x/").is_none());
    }

    #[test]
    fn bad_proxies_and_credentials_files_are_refused_without_the_password() {
        let err = ProxySettings::with_url("socks5://u:secret@h:1")
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("only http:// proxies"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
        let err = resolve(
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
        let proxies = resolve(&settings, &env_of(&[])).unwrap();
        let route = proxies.route("http://r/").unwrap();
        assert_eq!(route.shown, "http://alice:***@h:8");
        assert_eq!(route.proxy.username(), Some("alice"));
        assert_eq!(route.proxy.password(), Some("s3cret:x"));
        std::fs::write(&file, "no colon\n").unwrap();
        let err = settings.check().unwrap_err().to_string();
        assert!(err.contains("user:password"), "{err}");
    }

    #[test]
    fn the_system_proxy_comes_last_with_its_own_bypass_list() {
        let system = || {
            Some(system::SystemProxy::parse(&system::SystemSetting {
                server: "http=web:80;https=tls:3128".into(),
                bypass: "*.corp.example;10.*;<local>".into(),
            }))
        };
        let proxies =
            Proxies::resolve_with(&ProxySettings::default(), &env_of(&[]), system).unwrap();
        assert_eq!(
            shown(&proxies, "http://h.net/").as_deref(),
            Some("http://web:80")
        );
        assert_eq!(
            shown(&proxies, "https://h.net/").as_deref(),
            Some("http://tls:3128")
        );
        for direct in [
            "https://a.corp.example/r",
            "http://10.1.2.3/",
            "http://intranet/",
        ] {
            assert_eq!(shown(&proxies, direct), None, "{direct}");
        }
        assert!(shown(&proxies, "https://corp.example.net/").is_some());
        // NO_PROXY replaces the system's list; a variable naming a proxy replaces the system's.
        let env = env_of(&[("NO_PROXY", "h.net")]);
        let proxies = Proxies::resolve_with(&ProxySettings::default(), &env, system).unwrap();
        assert_eq!(shown(&proxies, "https://h.net/"), None);
        assert!(shown(&proxies, "http://intranet/").is_some());
        let env = env_of(&[("HTTPS_PROXY", "http://env:1")]);
        let proxies = Proxies::resolve_with(&ProxySettings::default(), &env, system).unwrap();
        assert_eq!(
            shown(&proxies, "https://h.net/").as_deref(),
            Some("http://env:1")
        );
        assert_eq!(shown(&proxies, "http://h.net/"), None);
        let set = ProxySettings::with_url("http://set:4");
        let proxies = Proxies::resolve_with(&set, &env_of(&[]), system).unwrap();
        assert_eq!(
            shown(&proxies, "http://intranet/").as_deref(),
            Some("http://set:4")
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.corp", "a.b.corp"));
        assert!(!wildcard_match("*.corp", "corp"));
        assert!(wildcard_match("10.*.1", "10.2.3.1"));
        assert!(wildcard_match("a*b*c", "abc"));
        assert!(!wildcard_match("a*b*c", "acb"));
        assert!(wildcard_match("host", "host"));
        assert!(!wildcard_match("host", "hostx"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("ab*ba", "aba"));
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("http://u:p@h:1/x@y"), "http://u:***@h:1/x@y");
        assert_eq!(redact("u:p@h:1"), "u:***@h:1");
        assert_eq!(redact("http://h:1"), "http://h:1");
        assert_eq!(url_host("http://u:p@[::1]:8/x"), "::1");
    }
}
