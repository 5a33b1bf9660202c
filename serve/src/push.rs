//! The push endpoint, `GET /_appstart/push`: server-sent events announcing each new version
//! of `metadata/timestamp.json` (`docs/hosting.md#push`).
//!
//! The wire format (`text/event-stream`, the body lasting until the connection closes):
//! ```text
//! data: {"timestamp_version": 42}      <- at once on connect, then on every change
//!
//! : keep-alive                         <- every 15 s, so both ends can tell a dead line
//!
//! ```
//! The announcement carries no trust: clients only run a normal, verified check when they
//! hear a version above the one they trust (`updater_core::advanced::push`).
//!
//! Why one broadcaster and not a thread per subscriber: a subscription lasts hours, and
//! `RepoServer::run` has only a few worker threads. A worker hands the connection's writer
//! to the [`Hub`] and is free again at once; one watcher thread looks at `timestamp.json`
//! every [`WATCH_EVERY`] (its size, modification time and inode: publishing replaces it by
//! rename), parses a changed file with a size cap (a file that does not parse announces
//! nothing), and writes the event or the keep-alive to every subscriber, dropping those
//! whose connection failed. At most [`MAX_SUBSCRIBERS`] at once; more get a 503 with
//! `Retry-After`.
//!
//! tiny_http also reads each connection on a thread of its own pool, waiting for the next
//! request of a keep-alive connection. A subscriber should therefore send
//! `Connection: close` (appstart's client does): tiny_http then lets go of the connection
//! once the request is handed over, and only the hub holds it. A subscriber that does not
//! (or any over HTTPS, where tiny_http waits for the response to end) keeps one pool thread;
//! tiny_http 0.12's pool can leave a connection that arrives in the same instant as another
//! queued until some connection ends, which such long streams make rare. Also a limitation,
//! fine for a development server: writes block, so a client that stops reading stalls the
//! broadcast once its socket buffers fill (at 13 bytes of keep-alive per 15 s, after weeks).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use tiny_http::{Method, Request, Response};

pub use updater_core::advanced::push::SERVE_PATH;

/// Most subscribers at once.
pub const MAX_SUBSCRIBERS: usize = 1000;
/// How often `timestamp.json` is looked at.
pub const WATCH_EVERY: Duration = Duration::from_millis(250);
/// How often a keep-alive comment is sent.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The largest `timestamp.json` parsed.
pub const MAX_TIMESTAMP: u64 = 1 << 20;

/// The response head: no length, the body ends when the connection closes.
const HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
    Cache-Control: no-cache, no-store\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n";

/// Whether `url` (a request target) is the push endpoint.
pub fn is_push(url: &str) -> bool {
    url.split(['?', '#']).next() == Some(SERVE_PATH)
}

/// The subscribers and the version last announced.
pub struct Hub {
    state: Mutex<State>,
    /// [`MAX_SUBSCRIBERS`], smaller in tests.
    limit: usize,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("subscribers", &self.subscribers())
            .finish_non_exhaustive()
    }
}

struct State {
    subscribers: Vec<Box<dyn Write + Send>>,
    version: Option<u64>,
}

impl Hub {
    /// Starts watching `root`'s `metadata/timestamp.json`; the watcher thread ends soon after
    /// the last reference to the hub is dropped.
    pub fn start(root: &Path) -> Arc<Hub> {
        Hub::start_with_limit(root, MAX_SUBSCRIBERS)
    }

    fn start_with_limit(root: &Path, limit: usize) -> Arc<Hub> {
        let path = root.join("metadata").join("timestamp.json");
        let hub = Arc::new(Hub {
            state: Mutex::new(State {
                subscribers: Vec::new(),
                version: read_version(&path),
            }),
            limit,
        });
        let weak = Arc::downgrade(&hub);
        let spawned = std::thread::Builder::new()
            .name("serve-push".into())
            .spawn(move || watch(&path, &weak));
        if let Err(e) = spawned {
            log::warn!("push announcements off: cannot start the watcher: {e}");
        }
        hub
    }

    /// Answers a request to [`SERVE_PATH`]: keeps its connection as a subscriber (the
    /// calling worker returns at once), or refuses it. Status and bytes for the access log.
    pub fn subscribe(&self, request: Request) -> (u16, u64) {
        if *request.method() != Method::Get {
            let _ = request.respond(Response::empty(405));
            return (405, 0);
        }
        let mut state = self.lock();
        if state.subscribers.len() >= self.limit {
            drop(state);
            let body = format!("too many push subscribers (at most {})\n", self.limit);
            let length = body.len() as u64;
            let response = Response::from_string(body)
                .with_status_code(503)
                .with_header(crate::header("Retry-After", "30"));
            let _ = request.respond(response);
            return (503, length);
        }
        let mut first = HEAD.to_string();
        if let Some(version) = state.version {
            first.push_str(&event(version));
        }
        let mut writer = request.into_writer();
        if writer
            .write_all(first.as_bytes())
            .and_then(|()| writer.flush())
            .is_ok()
        {
            state.subscribers.push(writer);
        }
        (200, 0)
    }

    /// How many connections are subscribed.
    pub fn subscribers(&self) -> usize {
        self.lock().subscribers.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it leaves a list of writers, still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Announces `version` if it is not the one last announced.
    fn announce(&self, version: u64) {
        let mut state = self.lock();
        if state.version != Some(version) {
            state.version = Some(version);
            broadcast(&mut state, event(version).as_bytes());
        }
    }
}

/// Writes `bytes` to every subscriber, dropping those that failed.
fn broadcast(state: &mut State, bytes: &[u8]) {
    state.subscribers.retain_mut(|writer| {
        writer
            .write_all(bytes)
            .and_then(|()| writer.flush())
            .is_ok()
    });
}

/// One announcement.
fn event(version: u64) -> String {
    format!("data: {{\"timestamp_version\": {version}}}\n\n")
}

/// The watcher loop of the module docs.
fn watch(path: &Path, hub: &Weak<Hub>) {
    let mut seen = stamp(path);
    let mut last_keep_alive = Instant::now();
    loop {
        std::thread::sleep(WATCH_EVERY);
        let Some(hub) = hub.upgrade() else {
            return;
        };
        let now = stamp(path);
        if now != seen {
            seen = now;
            if let Some(version) = read_version(path) {
                hub.announce(version);
            }
        }
        if last_keep_alive.elapsed() >= KEEP_ALIVE {
            last_keep_alive = Instant::now();
            broadcast(&mut hub.lock(), b": keep-alive\n\n");
        }
    }
}

/// What tells a replaced file: size, modification time, inode.
fn stamp(path: &Path) -> Option<(u64, SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    Some((meta.len(), meta.modified().ok()?, inode))
}

/// The `signed.version` of the timestamp file at `path`, or `None` when it is missing,
/// too large or not a timestamp (nothing is announced then).
fn read_version(path: &Path) -> Option<u64> {
    let bytes = updater_core::advanced::fsutil::read_capped(path, MAX_TIMESTAMP).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let signed = value.get("signed")?;
    if signed.get("_type")?.as_str()? != "timestamp" {
        return None;
    }
    signed.get("version")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_push_path_and_the_version_read() {
        assert!(is_push("/_appstart/push"));
        assert!(is_push("/_appstart/push?after=3"));
        assert!(!is_push("/_appstart/push/x"));
        assert!(!is_push("/metadata/timestamp.json"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timestamp.json");
        assert_eq!(read_version(&path), None);
        std::fs::write(&path, r#"{"signed":{"_type":"timestamp","version":7}}"#).unwrap();
        assert_eq!(read_version(&path), Some(7));
        std::fs::write(&path, r#"{"signed":{"_type":"snapshot","version":7}}"#).unwrap();
        assert_eq!(read_version(&path), None);
        std::fs::write(&path, "not json").unwrap();
        assert_eq!(read_version(&path), None);
        let huge = format!(
            r#"{{"signed":{{"_type":"timestamp","version":7}},"pad":"{}"}}"#,
            "x".repeat(MAX_TIMESTAMP as usize)
        );
        std::fs::write(&path, huge).unwrap();
        assert_eq!(read_version(&path), None, "over the cap");
    }

    /// A real tiny_http server on loopback whose hub takes two subscribers: the third gets
    /// 503 with `Retry-After`, and a subscriber that hangs up frees its place.
    #[test]
    fn subscribers_past_the_limit_get_503_and_hung_up_ones_are_dropped() {
        use std::io::Read;
        use std::net::TcpStream;

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("metadata")).unwrap();
        let timestamp = dir.path().join("metadata/timestamp.json");
        std::fs::write(
            &timestamp,
            r#"{"signed":{"_type":"timestamp","version":3}}"#,
        )
        .unwrap();
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let address = server.server_addr().to_ip().unwrap();
        let hub = Hub::start_with_limit(dir.path(), 2);
        let serving = Arc::clone(&server);
        let hub_for_worker = Arc::clone(&hub);
        std::thread::spawn(move || {
            while let Ok(request) = serving.recv() {
                hub_for_worker.subscribe(request);
            }
        });
        let subscribe = || {
            let mut stream = TcpStream::connect(address).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream
                .write_all(b"GET /_appstart/push HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut seen = Vec::new();
            let mut buffer = [0u8; 512];
            while !seen.ends_with(b"\n\n") {
                let n = stream.read(&mut buffer).unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buffer[..n]);
            }
            (stream, String::from_utf8_lossy(&seen).into_owned())
        };
        let (first, answer) = subscribe();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(
            answer.ends_with("data: {\"timestamp_version\": 3}\n\n"),
            "{answer}"
        );
        let (_second, _) = subscribe();
        let (_, refused) = subscribe();
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        assert!(refused.contains("Retry-After: 30"), "{refused}");
        // The first hangs up and drops out at a write; the watcher sees the new version.
        // Written as the publisher writes it (a new file renamed over the old): the same
        // size rewritten in place within one tick of the file system's clock (a few ms, the
        // time of the three requests above) would keep the size, time and inode the watcher
        // compares, and it would wait for a change it cannot see.
        drop(first);
        updater_core::advanced::fsutil::write_atomic(
            &timestamp,
            br#"{"signed":{"_type":"timestamp","version":4}}"#,
        )
        .unwrap();
        let start = Instant::now();
        while hub.subscribers() > 1 || hub.lock().version != Some(4) {
            assert!(start.elapsed() < Duration::from_secs(10), "never dropped");
            std::thread::sleep(Duration::from_millis(50));
            // A write to a closed socket may succeed once before it fails.
            broadcast(&mut hub.lock(), b": test\n\n");
        }
        let (_third, answer) = subscribe();
        assert!(
            answer.ends_with("data: {\"timestamp_version\": 4}\n\n"),
            "{answer}"
        );
    }
}
