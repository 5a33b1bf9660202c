//! Cancellation and stalls (issue 17 items 2 and 8): Ctrl-C stops `appupdate update` cleanly
//! (exit 130, install unchanged, partial downloads kept so the next run fetches less), a
//! stalled server fails once after `--timeout`, and a `Poller` stops at once even while its
//! server stalls.
//!
//! The stalled servers are real: a loopback listener that accepts and never answers, and a
//! proxy in front of `appupdate serve` that sends half of a blob and then holds the
//! connection open.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{
    Publisher, Server, appupdate, appupdate_json, bin, install, noise, temp_dir, text,
    tree_snapshot, wait_with_deadline,
};

const APP: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";
/// Far longer than any bound below: a test that waits this long has found a hang.
const GENEROUS: Duration = Duration::from_secs(10);

/// `sample` 1.0.0 installed from a real server into `app` (returned) and `control`; 2.0.0
/// published with two large new files (two blobs: fetched one by one, not from the pack).
fn installed() -> (Publisher, Server, tempfile::TempDir, std::path::PathBuf) {
    let publisher = Publisher::new();
    publisher.publish("sample", "1.0.0", &[("bin/app", APP, true)], &[]);
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    install(&publisher, &server.url, "sample", &dir);
    install(
        &publisher,
        &server.url,
        "sample",
        &home.path().join("control"),
    );
    let big1 = noise(1, 300_000);
    let big2 = noise(2, 300_000);
    publisher.publish(
        "sample",
        "2.0.0",
        &[
            ("bin/app", APP, true),
            ("data/big1", &big1, false),
            ("data/big2", &big2, false),
        ],
        &[],
    );
    (publisher, server, home, dir)
}

/// Points the install at another server (`url` in state/install.toml).
fn point_at(dir: &Path, url: &str) {
    let path = dir.join("state/install.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("url = ") {
            out.push_str(&format!("url = \"{url}\"\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&path, out).unwrap();
}

/// A listener that accepts connections and never answers; counts them.
fn stalled_listener() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (url, accepted)
}

/// A proxy to `upstream` that answers every request from it, except the first `/blobs/`
/// one: of that it sends the head and half the body, reports the half's length, and then
/// holds the connection without a byte more.
fn stalling_proxy(upstream: &str) -> (String, mpsc::Receiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stalled, receive) = mpsc::channel();
    let upstream = upstream.to_string();
    let stalls = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let upstream = upstream.clone();
            let stalled = stalled.clone();
            let stalls = Arc::clone(&stalls);
            std::thread::spawn(move || proxy_connection(stream, &upstream, &stalled, &stalls));
        }
    });
    (url, receive)
}

fn proxy_connection(
    mut stream: TcpStream,
    upstream: &str,
    stalled: &mpsc::Sender<usize>,
    stalls: &AtomicUsize,
) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let mut forwarded = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && ["range", "if-none-match"].contains(&name.to_ascii_lowercase().as_str())
            {
                forwarded.push((name.to_string(), value.trim().to_string()));
            }
        }
        let mut request = agent.get(format!("{upstream}{path}"));
        for (name, value) in &forwarded {
            request = request.header(name.as_str(), value.as_str());
        }
        let Ok(mut response) = request.call() else {
            return;
        };
        let status = response.status().as_u16();
        let mut head = format!("HTTP/1.1 {status} X\r\n");
        for name in ["content-range", "etag"] {
            if let Some(value) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        let body = response.body_mut().read_to_vec().unwrap_or_default();
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        let stall = path.starts_with("/blobs/") && stalls.fetch_add(1, Ordering::SeqCst) == 0;
        let sent = if stall { body.len() / 2 } else { body.len() };
        if stream.write_all(head.as_bytes()).is_err()
            || stream.write_all(&body[..sent]).is_err()
            || stream.flush().is_err()
        {
            return;
        }
        if stall {
            let _ = stalled.send(sent);
            // Hold the connection open, silent, until the client gives up on it.
            let mut byte = [0u8; 1];
            let _ = reader.read(&mut byte);
            return;
        }
    }
}

/// Bytes in `state/cache/*.partial`.
fn partial_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("state/cache"))
        .map(|entries| {
            entries
                .map_while(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn ctrl_c_during_a_download_exits_130_leaves_the_install_and_keeps_the_bytes() {
    let (_publisher, server, home, dir) = installed();
    let dir_text = dir.to_str().unwrap();
    let config_before = std::fs::read(dir.join("appstart.toml")).unwrap();
    let versions_before = tree_snapshot(&dir.join("versions"));
    let (proxy, stalled) = stalling_proxy(&server.url);
    point_at(&dir, &proxy);

    let mut child = Command::new(bin("appupdate"))
        .args(["update", "--dir", dir_text, "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sent = stalled
        .recv_timeout(Duration::from_secs(60))
        .expect("the update reaches the first blob");
    // Wait until the half that was sent is on disk, so the test knows what was kept.
    let start = Instant::now();
    while partial_bytes(&dir) < sent as u64 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the partial download never reached {sent} bytes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) with a child's pid that has not been reaped yet.
    let pid = i32::try_from(child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    // The default stall timeout is 30 s: well within it, Ctrl-C must have ended the update.
    let status = wait_with_deadline(&mut child, GENEROUS);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");

    // The install is exactly as it was; the half download is kept.
    assert_eq!(
        std::fs::read(dir.join("appstart.toml")).unwrap(),
        config_before
    );
    assert_eq!(tree_snapshot(&dir.join("versions")), versions_before);
    assert!(
        partial_bytes(&dir) >= sent as u64,
        "the partial download was kept"
    );

    // The next run resumes: it receives fewer content bytes than a full update does.
    point_at(&dir, &server.url);
    let resumed = appupdate_json(&["update", "--dir", dir_text]);
    assert_eq!(resumed["to"], "2.0.0", "{resumed}");
    let control_dir = home.path().join("control");
    let full = appupdate_json(&["update", "--dir", control_dir.to_str().unwrap()]);
    assert_eq!(full["to"], "2.0.0", "{full}");
    let (resumed, full) = (
        resumed["content_bytes"].as_u64().unwrap(),
        full["content_bytes"].as_u64().unwrap(),
    );
    assert!(
        resumed + sent as u64 <= full,
        "resumed {resumed} + kept {sent} bytes, full {full}"
    );
}

#[test]
fn a_stalled_server_fails_once_after_the_timeout_naming_the_url() {
    let (_publisher, _server, _home, dir) = installed();
    let dir_text = dir.to_str().unwrap();
    let config_before = std::fs::read(dir.join("appstart.toml")).unwrap();
    let (url, accepted) = stalled_listener();
    point_at(&dir, &url);
    for command in ["check", "update"] {
        let before = accepted.load(Ordering::SeqCst);
        let output = appupdate(&[command, "--dir", dir_text, "--timeout", "2"]);
        let stderr = text(&output.stderr);
        // Exit 3: a network error (docs/cli.md, Exit codes).
        assert_eq!(output.status.code(), Some(3), "{command}: {stderr}");
        assert!(
            stderr.contains(&format!("no data from {url}/")) && stderr.contains("for 2 s"),
            "{command}: {stderr}"
        );
        // One stall, one connection: a stall is not retried.
        assert_eq!(accepted.load(Ordering::SeqCst) - before, 1, "{command}");
    }
    assert_eq!(
        std::fs::read(dir.join("appstart.toml")).unwrap(),
        config_before
    );
    let refused = appupdate(&["check", "--dir", dir_text, "--timeout", "0"]);
    assert!(!refused.status.success());
}

#[test]
fn a_poller_stops_at_once_while_its_server_stalls() {
    let (_publisher, _server, _home, dir) = installed();
    let (url, accepted) = stalled_listener();
    point_at(&dir, &url);
    let updater = updater_core::Updater::open(&dir).unwrap();
    let mut options = updater_core::PollerOptions::default();
    options.initial_delay = Duration::ZERO;
    options.jitter = 0.0;
    options.timeout = Some(Duration::from_secs(300));
    let poller = updater_core::Poller::spawn(updater, options, |_| {});
    let start = Instant::now();
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the poller never connected"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A round is now waiting on the stalled server (up to 300 s): dropping the poller must
    // cancel it rather than wait.
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        drop(poller);
        let _ = done.send(());
    });
    assert!(
        finished.recv_timeout(GENEROUS).is_ok(),
        "dropping the poller hung on the stalled server"
    );
    assert!(!poller_left_staging(&dir));
}

/// Whether a staging folder was left under versions/.
fn poller_left_staging(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("versions"))
        .unwrap()
        .map_while(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with(".staging"))
}

#[test]
fn an_updater_cancelled_part_way_returns_cancelled_and_changes_nothing() {
    let (_publisher, _server, _home, dir) = installed();
    let config_before = std::fs::read(dir.join("appstart.toml")).unwrap();
    let versions_before = tree_snapshot(&dir.join("versions"));
    let token = updater_core::CancelToken::new();
    let mut updater = updater_core::Updater::open(&dir)
        .unwrap()
        .with_cancel(token.clone());
    // Cancelled by the app in the middle of staging: at the first progress event.
    updater.on_event(move |event| {
        if matches!(event, updater_core::Event::Progress { .. }) {
            token.cancel();
        }
    });
    let err = updater.update().expect_err("cancelled part-way");
    assert!(matches!(err, updater_core::Error::Cancelled), "{err}");
    assert_eq!(err.code(), "cancelled");
    assert_eq!(
        std::fs::read(dir.join("appstart.toml")).unwrap(),
        config_before
    );
    assert_eq!(tree_snapshot(&dir.join("versions")), versions_before);
    // A fresh updater (a new token) finishes the job.
    let report = updater_core::Updater::open(&dir).unwrap().update().unwrap();
    assert_eq!(report.to.map(|v| v.to_string()).as_deref(), Some("2.0.0"));
}
