//! A development HTTP server for a repository folder (`appupdate serve`).
//!
//! Production repositories are served by any static web server or CDN; this one exists so a
//! publisher can try a repository locally, and so the tests talk to a real HTTP server. It
//! supports exactly what the client relies on: GET and HEAD, `Range` (one range answered
//! with 206, several with 206 in `multipart/byteranges` parts, or, to try the client against
//! a server that answers them as S3 does, with the whole file: [`ranges`]; 416 when
//! unsatisfiable), `ETag` and `If-None-Match` (304), and an exact `Content-Length`. It never serves a path outside the repository folder: the request path
//! is decoded and parsed into plain components (no `..`, no absolute parts), and the
//! resolved file must still lie inside the canonical repository folder, so a symlink cannot
//! lead out of it either.
//!
//! HTTPS, for trying a repository behind TLS (`appupdate serve --tls-cert --tls-key`, and
//! the tests' HTTPS server): [`RepoServer::bind_tls`] with a PEM certificate chain and its
//! PKCS#8 or RSA key, through tiny_http's rustls support.
//!
//! Push (`GET /_appstart/push`, [`push`]): server-sent events announcing each new version of
//! `metadata/timestamp.json`, so running apps check at once instead of at their next
//! interval; a subscriber does not hold one of [`RepoServer::run`]'s worker threads.
//!
//! One extension point: a [`Handler`] gets first look at every request, so a crate that must
//! stay out of this one (the fleet receiver and its databases) can add routes on the same
//! port; what it does not answer falls through to the file server.

pub mod push;
pub mod ranges;

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use tiny_http;
use tiny_http::{Header, Method, Request, Response, Server};

use updater_core::advanced::transport::percent_decode;
use updater_core::{Error, Result};

/// Routes served beside the repository's files ([`RepoServer::with_handler`]).
pub trait Handler: Send + Sync {
    /// Answers `request` and returns its status and body length for the access log, or
    /// hands it back untouched for the file server.
    #[allow(
        clippy::result_large_err,
        reason = "the request is handed back by value, once per request: a move next to socket I/O"
    )]
    fn handle(&self, request: Request) -> std::result::Result<(u16, u64), Request>;
}

/// A running server.
pub struct RepoServer {
    server: Arc<Server>,
    root: PathBuf,
    address: SocketAddr,
    handler: Option<Arc<dyn Handler>>,
    https: bool,
    one_range: bool,
}

/// The largest TLS certificate or key file read by [`RepoServer::bind_tls`].
pub const MAX_TLS_FILE: u64 = 1 << 20;

impl std::fmt::Debug for RepoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoServer")
            .field("root", &self.root)
            .field("address", &self.address)
            .finish()
    }
}

impl RepoServer {
    /// Binds `listen` (e.g. `127.0.0.1:0` for any free port) to serve `root`.
    pub fn bind(root: &Path, listen: &str) -> Result<Self> {
        RepoServer::bind_with(root, listen, None)
    }

    /// Like [`RepoServer::bind`], serving HTTPS with the PEM certificate chain `cert` and
    /// its private key `key` (PKCS#8 or RSA). A missing or unusable file is an error naming it.
    pub fn bind_tls(root: &Path, listen: &str, cert: &Path, key: &Path) -> Result<Self> {
        let certificate = updater_core::advanced::fsutil::read_capped(cert, MAX_TLS_FILE)?;
        let private_key = updater_core::advanced::fsutil::read_capped(key, MAX_TLS_FILE)?;
        for (path, bytes, marker) in [
            (cert, &certificate, "-----BEGIN CERTIFICATE-----"),
            (key, &private_key, "PRIVATE KEY-----"),
        ] {
            if !String::from_utf8_lossy(bytes).contains(marker) {
                return Err(Error::format(
                    path.display().to_string(),
                    format!("not a PEM file with {marker}"),
                ));
            }
        }
        RepoServer::bind_with(
            root,
            listen,
            Some(tiny_http::SslConfig {
                certificate,
                private_key,
            }),
        )
        .map_err(|e| {
            Error::Invalid(format!(
                "serving HTTPS with {} and {}: {e}",
                cert.display(),
                key.display()
            ))
        })
    }

    fn bind_with(root: &Path, listen: &str, ssl: Option<tiny_http::SslConfig>) -> Result<Self> {
        let https = ssl.is_some();
        let root = root
            .canonicalize()
            .map_err(|e| Error::io("opening repository", root, e))?;
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| Error::Invalid(format!("cannot listen on {listen}: {e}")))?;
        set_no_delay(&listener);
        let server = Server::from_listener(listener, ssl)
            .map_err(|e| Error::Invalid(format!("cannot listen on {listen}: {e}")))?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| Error::Invalid(format!("{listen} is not an IP address")))?;
        Ok(RepoServer {
            server: Arc::new(server),
            root,
            address,
            handler: None,
            https,
            one_range: false,
        })
    }

    /// Gives `handler` first look at every request.
    pub fn with_handler(mut self, handler: Arc<dyn Handler>) -> Self {
        self.handler = Some(handler);
        self
    }

    /// Answers a request for several ranges with the whole file, as S3 and most CDNs do
    /// (one range is still answered with 206): for trying clients against such a server.
    pub fn one_range_per_request(mut self) -> Self {
        self.one_range = true;
        self
    }

    /// The base URL, e.g. `http://127.0.0.1:8080` (`https://` with [`RepoServer::bind_tls`]).
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    /// Serves requests on `threads` threads until the process ends, writing one access-log
    /// line per request to `log` (method, path, status, bytes).
    pub fn run(self, threads: usize, log: impl Write + Send + 'static) {
        let log = Arc::new(std::sync::Mutex::new(log));
        let hub = push::Hub::start(&self.root);
        let mut handles = Vec::new();
        for _ in 0..threads.max(1) {
            let server = Arc::clone(&self.server);
            let root = self.root.clone();
            let log = Arc::clone(&log);
            let handler = self.handler.clone();
            let hub = Arc::clone(&hub);
            let one_range = self.one_range;
            handles.push(std::thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    let method = request.method().to_string();
                    let url = request.url().to_string();
                    let (status, length) = match &handler {
                        // Hands the connection to the hub and returns at once.
                        _ if push::is_push(&url) => hub.subscribe(request),
                        Some(handler) => match handler.handle(request) {
                            Ok(answered) => answered,
                            Err(request) => respond(&root, request, one_range),
                        },
                        None => respond(&root, request, one_range),
                    };
                    if let Ok(mut log) = log.lock() {
                        let _ = writeln!(log, "{method} {url} {status} {length}");
                        let _ = log.flush();
                    }
                }
            }));
        }
        for handle in handles {
            let _ = handle.join();
        }
    }

    /// Serves on background threads; stops when the returned handle is dropped.
    pub fn spawn(self, threads: usize) -> ServerHandle {
        self.spawn_with_log(threads, std::io::sink())
    }

    /// Like [`RepoServer::spawn`], writing the access log to `log`.
    pub fn spawn_with_log(self, threads: usize, log: impl Write + Send + 'static) -> ServerHandle {
        let server = Arc::clone(&self.server);
        let url = self.url();
        let thread = std::thread::spawn(move || self.run(threads, log));
        ServerHandle {
            server,
            url,
            threads,
            thread: Some(thread),
        }
    }
}

/// A server running on background threads.
pub struct ServerHandle {
    server: Arc<Server>,
    url: String,
    threads: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("url", &self.url)
            .finish()
    }
}

impl ServerHandle {
    /// The base URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        for _ in 0..self.threads.max(1) {
            self.server.unblock();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sets `TCP_NODELAY` on the listening socket; on Linux accepted connections inherit it.
/// tiny_http writes a response in small pieces and never sets it itself, so without this
/// Nagle's algorithm holds each response back for milliseconds (measured: 9 ms per request
/// on loopback, see docs/benchmarks.md).
fn set_no_delay(listener: &std::net::TcpListener) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket fd and a pointer to a c_int of the size we pass.
        let result = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if result != 0 {
            log::warn!(
                "cannot set TCP_NODELAY: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = listener;
}

/// Answers one request; returns the status and body length for the log. `one_range`:
/// several ranges are answered with the whole file.
fn respond(root: &Path, request: Request, one_range: bool) -> (u16, u64) {
    let result = match request.method() {
        Method::Get | Method::Head => answer(root, &request, one_range),
        _ => Answer::Status(405),
    };
    match result {
        Answer::Status(code) => {
            let _ = request.respond(Response::empty(code));
            (code, 0)
        }
        Answer::NotModified(etag) => {
            let _ = request.respond(Response::empty(304).with_header(header("ETag", &etag)));
            (304, 0)
        }
        Answer::File {
            file,
            start,
            length,
            total,
            etag,
            partial,
        } => {
            let status = if partial { 206 } else { 200 };
            let mut response =
                Response::new(status.into(), vec![], file, Some(length as usize), None)
                    .with_header(header("ETag", &etag))
                    .with_header(header("Accept-Ranges", "bytes"))
                    .with_header(header("Content-Type", "application/octet-stream"));
            if partial {
                let end = start + length - 1;
                response = response.with_header(header(
                    "Content-Range",
                    &format!("bytes {start}-{end}/{total}"),
                ));
            }
            let _ = request.respond(response);
            (status, length)
        }
        Answer::Parts {
            file,
            ranges,
            total,
            etag,
        } => {
            let boundary = ranges::boundary();
            let (body, length) = ranges::Parts::new(file, &ranges, total, &boundary);
            let response = Response::new(206.into(), vec![], body, Some(length as usize), None)
                .with_header(header("ETag", &etag))
                .with_header(header("Accept-Ranges", "bytes"))
                .with_header(header(
                    "Content-Type",
                    &format!("multipart/byteranges; boundary={boundary}"),
                ));
            let _ = request.respond(response);
            (206, length)
        }
    }
}

enum Answer {
    Status(u16),
    NotModified(String),
    File {
        file: File,
        start: u64,
        length: u64,
        total: u64,
        etag: String,
        partial: bool,
    },
    Parts {
        file: File,
        ranges: Vec<(u64, u64)>,
        total: u64,
        etag: String,
    },
}

fn answer(root: &Path, request: &Request, one_range: bool) -> Answer {
    let Some(path) = resolve(root, request.url()) else {
        return Answer::Status(404);
    };
    let Ok(mut file) = File::open(&path) else {
        return Answer::Status(404);
    };
    let Ok(meta) = file.metadata() else {
        return Answer::Status(500);
    };
    if !meta.is_file() {
        return Answer::Status(404);
    }
    let total = meta.len();
    let etag = etag_of(&meta);
    let header_value = |name: &'static str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().to_string())
    };
    if let Some(tags) = header_value("If-None-Match")
        && tags.split(',').any(|t| t.trim() == etag || t.trim() == "*")
    {
        return Answer::NotModified(etag);
    }
    let asked = header_value("Range").map(|range| ranges::parse(&range, total));
    let (start, length, partial) = match asked {
        None | Some(ranges::Ranges::Whole) => (0, total, false),
        Some(ranges::Ranges::Unsatisfiable) if total == 0 => (0, 0, false),
        Some(ranges::Ranges::Unsatisfiable) => return Answer::Status(416),
        Some(ranges::Ranges::Some(ranges)) => match ranges[..] {
            [(first, last)] => (first, last - first + 1, true),
            _ if one_range => (0, total, false),
            _ => {
                return Answer::Parts {
                    file,
                    ranges,
                    total,
                    etag,
                };
            }
        },
    };
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Answer::Status(500);
    }
    Answer::File {
        file,
        start,
        length,
        total,
        etag,
        partial,
    }
}

/// Maps a request path to a file inside `root`, or `None`.
fn resolve(root: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode(path);
    let mut resolved = root.to_path_buf();
    for part in decoded.split('/') {
        match part {
            "" | "." => continue,
            ".." => return None,
            part if part.contains('\\') || part.contains('\0') || part.contains(':') => {
                return None;
            }
            part => resolved.push(part),
        }
    }
    let canonical = resolved.canonicalize().ok()?;
    canonical.starts_with(root).then_some(canonical)
}

/// A strong ETag from size, modification time and inode: repository files are replaced by
/// rename, never rewritten in place, so these change whenever the content does.
fn etag_of(meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    format!("\"{:x}-{:x}-{:x}\"", meta.len(), mtime, inode)
}

pub(crate) fn header(name: &str, value: &str) -> Header {
    // Names and values here are ASCII we built ourselves, which tiny_http always accepts.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap_or_else(|()| {
        Header::from_bytes(&b"X-Invalid"[..], &b"1"[..]).unwrap_or_else(|()| unreachable!())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_resolves_outside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("metadata")).unwrap();
        std::fs::write(root.join("metadata/timestamp.json"), "{}").unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
        let root = root.canonicalize().unwrap();
        assert!(resolve(&root, "/metadata/timestamp.json").is_some());
        assert!(resolve(&root, "/metadata/%2e%2e/../secret").is_none());
        assert!(resolve(&root, "/../secret").is_none());
        assert!(resolve(&root, "/%2E%2E/secret").is_none());
        assert!(
            resolve(&root, "/link").is_none(),
            "symlink out of the repository"
        );
    }
}
