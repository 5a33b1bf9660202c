//! The network seam: a [`Transport`] fetches a URL, with HTTP and file implementations.
//!
//! Everything above this module sees the same small interface, so the download logic (caps,
//! hashes, resume, retries) is written once, and tests or embedders can plug in their own
//! transport (after tough's `Transport`).

use std::io::Read;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::proxy::Proxies;
use crate::tls::TlsTrust;

pub mod multipart;

/// What to ask for beyond a plain GET.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Ask for the bytes from this offset on (`Range: bytes=N-`).
    pub range_start: Option<u64>,
    /// With `range_start`: the last byte wanted, inclusive (`Range: bytes=N-M`).
    pub range_end: Option<u64>,
    /// With `range_start` and `range_end`: further ranges (first and last byte, inclusive),
    /// ascending and after `range_end`, asked for in the same request (`Range:
    /// bytes=N-M,A-B,...`). A server may answer them in parts
    /// ([`Response::multipart_boundary`]), with one range that starts at `range_start` (it
    /// coalesced them, or kept only the first), or with the whole resource. A transport
    /// that cannot ask for several ranges answers the first one only.
    pub more_ranges: Vec<(u64, u64)>,
    /// Answer 304 if the resource still has this ETag (`If-None-Match`).
    pub if_none_match: Option<String>,
}

/// How the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200: the whole resource.
    Full,
    /// 206: the requested range.
    Partial,
    /// 304: unchanged since the ETag we sent.
    NotModified,
}

/// A successful answer.
pub struct Response {
    /// Which kind of answer.
    pub status: Status,
    /// `Content-Length`, when the server sent one.
    pub content_length: Option<u64>,
    /// For 206: the first byte's offset from `Content-Range`.
    pub range_start: Option<u64>,
    /// `ETag`, when the server sent one.
    pub etag: Option<String>,
    /// For a 206 in several parts (`Content-Type: multipart/byteranges`): the boundary
    /// between them ([`multipart::Multiparts`] reads them).
    pub multipart_boundary: Option<String>,
    /// The body. Unbounded: callers cap it.
    pub body: Box<dyn Read + Send>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("content_length", &self.content_length)
            .field("range_start", &self.range_start)
            .field("etag", &self.etag)
            .field("multipart_boundary", &self.multipart_boundary)
            .finish_non_exhaustive()
    }
}

/// Fetches URLs. 404 is [`Error::NotFound`]; 429, 5xx and connection failures are retryable
/// [`Error::Transport`] errors; other statuses are final ones.
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// GETs `url`.
    fn get(&self, url: &str, request: &Request) -> Result<Response>;

    /// Told that what the latest request for `url` (or, for a folder URL, for a file under
    /// it) brought failed verification: a transport with several sources (mirrors,
    /// `crate::advanced::mirrors`) stops using the one that served it for that path and
    /// answers whether another source remains, so the caller asks again. The default, one
    /// source: `false`.
    fn reject(&self, url: &str) -> bool {
        let _ = url;
        false
    }
}

/// Timeouts of the HTTP transport.
///
/// The updater's own stall timeout is enforced above the transport, by
/// [`crate::watched::Watched`], which fails a request once after that time and is not
/// retried; these are the transport's backstop, a little longer, so its worker thread ends
/// soon after the updater gave up on it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct HttpTimeouts {
    /// Connecting (DNS and TCP/TLS).
    pub connect: Duration,
    /// Longest wait for any single read.
    pub stall: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        HttpTimeouts {
            connect: Duration::from_secs(10),
            stall: Duration::from_secs(30),
        }
    }
}

impl HttpTimeouts {
    /// The backstop for an updater stall timeout of `stall`: 5 s longer.
    pub fn backstop(stall: Duration) -> Self {
        HttpTimeouts {
            connect: Duration::from_secs(10).min(stall + Duration::from_secs(5)),
            stall: stall + Duration::from_secs(5),
        }
    }
}

/// HTTP(S) through `ureq`, keeping connections alive between requests, directly or
/// through the proxy [`Proxies`] chooses for each URL.
#[derive(Debug)]
pub struct HttpTransport {
    direct: ureq::Agent,
    via_http: Option<ureq::Agent>,
    via_https: Option<ureq::Agent>,
    proxies: Proxies,
}

impl HttpTransport {
    /// A transport with the given timeouts, through the environment's proxies
    /// (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`; see [`crate::proxy`]), trusting
    /// the OS trust store.
    pub fn new(timeouts: HttpTimeouts) -> Result<Self> {
        Ok(HttpTransport::with(
            timeouts,
            Proxies::from_environment()?,
            &TlsTrust::system(),
        ))
    }

    /// A transport with the given timeouts, through `proxies`, trusting `trust`'s roots for
    /// HTTPS.
    pub fn with(timeouts: HttpTimeouts, proxies: Proxies, trust: &TlsTrust) -> Self {
        let agent = |proxy: Option<&crate::proxy::Route>| {
            agent(timeouts, proxy.map(|route| route.proxy.clone()), trust)
        };
        HttpTransport {
            direct: agent(None),
            via_http: proxies.for_scheme(false).map(|r| agent(Some(r))),
            via_https: proxies.for_scheme(true).map(|r| agent(Some(r))),
            proxies,
        }
    }

    /// The agent for `url`, and the proxy it goes through (for messages).
    fn agent_for(&self, url: &str) -> (&ureq::Agent, Option<&str>) {
        let agent = if url.starts_with("https://") {
            self.via_https.as_ref()
        } else {
            self.via_http.as_ref()
        };
        match (agent, self.proxies.route(url)) {
            (Some(agent), Some(route)) => (agent, Some(&route.shown)),
            _ => (&self.direct, None),
        }
    }
}

/// An agent with `timeouts`, through `proxy` or (`None`) directly, whatever the environment
/// says: [`Proxies`] has read it already.
fn agent(timeouts: HttpTimeouts, proxy: Option<ureq::Proxy>, trust: &TlsTrust) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(trust.root_certs())
        .build();
    ureq::Agent::config_builder()
        .proxy(proxy)
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_connect(Some(timeouts.connect))
        .timeout_recv_response(Some(timeouts.stall))
        .timeout_per_read(Some(timeouts.stall))
        .max_redirects(5)
        .user_agent(concat!("appstart/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

impl Transport for HttpTransport {
    fn get(&self, url: &str, request: &Request) -> Result<Response> {
        let (agent, proxy) = self.agent_for(url);
        let mut builder = agent.get(url);
        if let Some(start) = request.range_start {
            let end = request
                .range_end
                .map_or(String::new(), |end| end.to_string());
            let mut value = format!("bytes={start}-{end}");
            if request.range_end.is_some() {
                for (first, last) in &request.more_ranges {
                    value.push_str(&format!(",{first}-{last}"));
                }
            }
            builder = builder.header("Range", value);
        }
        if let Some(etag) = &request.if_none_match {
            builder = builder.header("If-None-Match", etag);
        }
        let response = builder.call().map_err(|e| call_error(url, proxy, &e))?;
        let (parts, body) = response.into_parts();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let status = match parts.status.as_u16() {
            200 => Status::Full,
            206 => Status::Partial,
            304 => Status::NotModified,
            404 | 410 => {
                return Err(Error::NotFound {
                    url: url.to_string(),
                });
            }
            code => {
                let retryable = code == 408 || code == 429 || code >= 500;
                let retry_after = header("Retry-After").and_then(|v| v.trim().parse().ok());
                return Err(Error::Transport {
                    url: url.to_string(),
                    message: format!("the server answered {code}"),
                    retryable,
                    retry_after,
                });
            }
        };
        let content_length = header("Content-Length").and_then(|v| v.trim().parse().ok());
        let range_start = header("Content-Range").and_then(|v| parse_content_range_start(&v));
        let multipart_boundary = (status == Status::Partial)
            .then(|| header("Content-Type").and_then(|v| multipart::boundary_of(&v)))
            .flatten();
        Ok(Response {
            status,
            content_length,
            range_start,
            etag: header("ETag"),
            multipart_boundary,
            body: Box::new(body.into_reader()),
        })
    }
}

/// The error for a request to `url` that got no answer, naming the proxy it went through.
/// A proxy refusing the credentials (407, or 401 from tinyproxy) is final: retrying would be refused again.
fn call_error(url: &str, proxy: Option<&str>, error: &ureq::Error) -> Error {
    let message = crate::proxy::redact(&error.to_string());
    let (message, retryable) = match proxy {
        // Trying again cannot make a certificate trusted.
        _ if crate::tls::is_untrusted_certificate(&message) => (
            format!(
                "the server's TLS certificate is not trusted ({message}); if the repository uses a private CA, install with `appupdate install --ca-file CA.pem`"
            ),
            false,
        ),
        None => (message, true),
        Some(proxy) if refused_credentials(error) => (
            format!(
                "the proxy {proxy} refused the credentials ({message}); check install --proxy or --proxy-credentials"
            ),
            false,
        ),
        Some(proxy) => (format!("through the proxy {proxy}: {message}"), true),
    };
    Error::Transport {
        url: url.to_string(),
        message,
        retryable,
        retry_after: None,
    }
}

/// Whether a proxy answered the `CONNECT` with 407 (Proxy Authentication Required) or, as
/// tinyproxy does, 401.
fn refused_credentials(error: &ureq::Error) -> bool {
    matches!(error, ureq::Error::ConnectProxyFailed(reason)
        if reason.contains("responded 407") || reason.contains("responded 401"))
}

/// The first offset of `Content-Range: bytes START-END/TOTAL`. Public (hidden) only so that
/// the fuzz targets in `fuzz/` can reach it.
#[doc(hidden)]
pub fn parse_content_range_start(value: &str) -> Option<u64> {
    let rest = multipart::after_bytes_unit(value)?;
    rest.split('-').next()?.trim().parse().ok()
}

/// `file://` URLs: a repository on a local or network file system.
#[derive(Debug, Default)]
pub struct FileTransport;

impl Transport for FileTransport {
    fn get(&self, url: &str, request: &Request) -> Result<Response> {
        let path = url
            .strip_prefix("file://")
            .ok_or_else(|| Error::Invalid(format!("{url}: not a file:// URL")))?;
        let path = percent_decode(path);
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    url: url.to_string(),
                });
            }
            Err(e) => return Err(Error::io("opening", path, e)),
        };
        let length = file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", &path, e))?
            .len();
        let (status, start) = match request.range_start {
            Some(start) if start <= length => {
                std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))
                    .map_err(|e| Error::io("seeking in", &path, e))?;
                (Status::Partial, start)
            }
            _ => (Status::Full, 0),
        };
        let end = match (status, request.range_end) {
            (Status::Partial, Some(end)) => (end + 1).min(length),
            _ => length,
        };
        Ok(Response {
            status,
            content_length: Some(end - start),
            range_start: (status == Status::Partial).then_some(start),
            etag: None,
            multipart_boundary: None,
            body: Box::new(std::io::Read::take(file, end - start)),
        })
    }
}

/// Decodes `%XX` escapes in a URL path.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
        {
            out.push(high * 16 + low);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The repository URL an install keeps for `input` (`install --url`): an `http://`,
/// `https://` or `file://` URL as given; a plain path (`/mnt/share/repo`, `../repo`,
/// `\\server\share\repo`) becomes the `file://` URL of that folder, made absolute, so later
/// updates find it whatever their working directory. A plain path must name a folder.
pub fn repository_url(input: &str) -> Result<String> {
    if input.contains("://") {
        return Ok(input.to_string());
    }
    let path = std::path::Path::new(input);
    let absolute = std::path::absolute(path).map_err(|e| Error::io("resolving", path, e))?;
    if !absolute.is_dir() {
        return Err(Error::Invalid(format!(
            "{input}: no repository folder there (give an http://, https:// or file:// URL, or the path of a repository folder)"
        )));
    }
    // FileTransport percent-decodes what follows `file://`: keep a literal `%` literal.
    Ok(format!(
        "file://{}",
        absolute.display().to_string().replace('%', "%25")
    ))
}

/// The transport for `url`'s scheme, through the environment's proxies, trusting the OS
/// trust store for HTTPS.
pub fn for_url(url: &str, timeouts: HttpTimeouts) -> Result<Box<dyn Transport>> {
    for_url_with(url, timeouts, &TlsTrust::system())
}

/// The transport for `url`'s scheme, through the environment's proxies, trusting `trust` for
/// HTTPS (an install's `--ca-file`).
pub fn for_url_with(
    url: &str,
    timeouts: HttpTimeouts,
    trust: &TlsTrust,
) -> Result<Box<dyn Transport>> {
    if url.starts_with("http://") || url.starts_with("https://") {
        for_url_via(url, timeouts, Proxies::from_environment()?, trust)
    } else {
        for_url_via(url, timeouts, Proxies::default(), trust)
    }
}

/// The transport for `url`'s scheme, through `proxies` (see [`crate::proxy`]), trusting
/// `trust` for HTTPS (an install's `--ca-file`).
pub fn for_url_via(
    url: &str,
    timeouts: HttpTimeouts,
    proxies: Proxies,
    trust: &TlsTrust,
) -> Result<Box<dyn Transport>> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(Box::new(HttpTransport::with(timeouts, proxies, trust)))
    } else if url.starts_with("file://") {
        Ok(Box::new(FileTransport))
    } else {
        Err(Error::Invalid(format!(
            "{url}: unsupported URL scheme (use http://, https:// or file://)"
        )))
    }
}

/// Joins a base URL and a relative path with exactly one `/` between them.
pub fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_path_becomes_an_absolute_file_url_and_urls_stay_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let url = repository_url(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(url, format!("file://{}", dir.path().display()));
        let percent = dir.path().join("100%");
        std::fs::create_dir(&percent).unwrap();
        let url = repository_url(percent.to_str().unwrap()).unwrap();
        assert!(url.ends_with("/100%25"), "{url}");
        assert_eq!(
            percent_decode(url.strip_prefix("file://").unwrap()),
            percent.display().to_string()
        );
        for given in ["https://h/r", "http://h/r", "file:///srv/r"] {
            assert_eq!(repository_url(given).unwrap(), given);
        }
        let missing = dir.path().join("missing");
        let err = repository_url(missing.to_str().unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("no repository folder there"),
            "{err}"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(parse_content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(parse_content_range_start("Bytes 7-9/10"), Some(7));
        assert_eq!(parse_content_range_start("bytes"), None);
        assert_eq!(percent_decode("a%20b%2Fc%zz"), "a b/c%zz");
        assert_eq!(
            join_url("http://h/r/", "/metadata/x"),
            "http://h/r/metadata/x"
        );
    }
}
