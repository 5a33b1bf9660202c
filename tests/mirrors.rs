//! Mirrors (issue 18, item 3): an install with several base URLs (`install --url A --mirror
//! B`, or the publisher's signed list from `repo mirrors`) fails over from a base that is
//! down, answers 503, truncates bodies, serves stale metadata or tampered content, and never
//! trusts a mirror for anything the signed metadata does not verify.
//!
//! Every base is a real server on 127.0.0.1: `appupdate serve` for the good and the stale
//! ones, a small `std::net` server in this file for the broken ones (it sends correct
//! headers, then misbehaves), and a port nothing listens on for a base that is down.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::harness::{
    Publisher, Server, appupdate, appupdate_json, appupdate_ok, install_args, run, temp_dir, text,
};

const APP: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

fn publish(publisher: &Publisher, version: &str) {
    publisher.publish(
        "sample",
        version,
        &[
            ("bin/app", APP, true),
            ("data/big", &crate::harness::noise(7, 40_000), false),
            ("v", version.as_bytes(), false),
        ],
        &[],
    );
}

/// What a [`BadServer`] does with each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Sends the headers of the whole file, half its body, then closes.
    Truncate,
    /// Serves blobs and packs with their bytes flipped (same length), the rest as it is.
    Tamper,
    /// Answers 503 to everything.
    Unavailable,
    /// Sends the headers and half the body, then nothing for a minute.
    Stall,
    /// Serves `timestamp.json` claiming a huge version (so its signature no longer
    /// verifies), the rest as it is.
    ForgeTimestamp,
    /// Serves `metadata/` as it is and answers 503 to everything else.
    MetadataOnly,
}

/// A real HTTP server on 127.0.0.1 over a repository folder, misbehaving as `mode` says.
/// Its thread ends with the test process.
struct BadServer {
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl BadServer {
    fn start(repo: &Path, mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (repo, sink) = (repo.to_path_buf(), Arc::clone(&log));
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (repo, sink) = (repo.clone(), Arc::clone(&sink));
                std::thread::spawn(move || {
                    let _ = answer(stream, &repo, mode, &sink);
                });
            }
        });
        BadServer { url, log }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// Answers one request on `stream` (then closes it).
fn answer(
    mut stream: TcpStream,
    repo: &Path,
    mode: Mode,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    log.lock().unwrap().push(path.clone());
    let file = (!path.contains(".."))
        .then(|| std::fs::read(repo.join(path.trim_start_matches('/'))).ok())
        .flatten();
    let (status, body, sent) = match (mode, file) {
        (Mode::Unavailable, _) => ("503 Service Unavailable", Vec::new(), 0),
        (Mode::MetadataOnly, _) if !path.starts_with("/metadata/") => {
            ("503 Service Unavailable", Vec::new(), 0)
        }
        (_, None) => ("404 Not Found", Vec::new(), 0),
        (Mode::ForgeTimestamp, Some(bytes)) if path == "/metadata/timestamp.json" => {
            let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            value["signed"]["version"] = serde_json::json!(999_999);
            let forged = serde_json::to_vec(&value).unwrap();
            let len = forged.len();
            ("200 OK", forged, len)
        }
        (Mode::ForgeTimestamp | Mode::MetadataOnly, Some(bytes)) => {
            let len = bytes.len();
            ("200 OK", bytes, len)
        }
        (Mode::Truncate | Mode::Stall, Some(bytes)) => {
            let half = bytes.len() / 2;
            ("200 OK", bytes, half)
        }
        (Mode::Tamper, Some(mut bytes)) => {
            if path.starts_with("/blobs/") || path.starts_with("/packs/") {
                for byte in &mut bytes {
                    *byte ^= 0x55;
                }
            }
            let len = bytes.len();
            ("200 OK", bytes, len)
        }
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body[..sent])?;
    stream.flush()?;
    if mode == Mode::Stall {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
    Ok(())
}

/// A base URL nothing listens on.
fn down_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// A copy of `repo` as it is now (a mirror that stops syncing here).
fn snapshot_of(repo: &Path, into: &Path) -> PathBuf {
    let copy = into.join("stale-repo");
    let out = run(Command::new("cp").arg("-a").arg(repo).arg(&copy));
    assert!(out.status.success(), "{}", text(&out.stderr));
    copy
}

fn launch(dir: &Path) -> String {
    let out = run(&mut Command::new(dir.join("appstart")));
    text(&out.stdout).trim().to_string()
}

fn install_with(
    publisher: &Publisher,
    dir: &Path,
    url: &str,
    mirrors: &[&str],
) -> std::process::Output {
    let mut args = install_args(publisher, url, "sample", dir);
    for mirror in mirrors {
        args.extend(["--mirror".to_string(), mirror.to_string()]);
    }
    args.extend([
        "--json".to_string(),
        "--timeout".to_string(),
        "5".to_string(),
    ]);
    appupdate(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn installs_and_updates_past_a_down_a_truncating_and_a_stale_mirror() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let home = temp_dir();
    // The stale mirror stopped syncing before 2.0.0 was published.
    let stale_repo = snapshot_of(&publisher.repo(), home.path());
    publish(&publisher, "2.0.0");
    let down = down_url();
    let truncating = BadServer::start(&publisher.repo(), Mode::Truncate);
    let stale = Server::start(&stale_repo);
    let good = Server::start(&publisher.repo());

    let dir = home.path().join("app");
    let out = install_with(
        &publisher,
        &dir,
        &down,
        &[&truncating.url, &stale.url, &good.url],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The stale mirror answered (its timestamp was asked for) but did not hide 2.0.0.
    assert_eq!(report["to"], "2.0.0", "{report}");
    assert_eq!(launch(&dir), "app 2.0.0");
    assert!(
        stale
            .requests()
            .iter()
            .any(|r| r.contains("timestamp.json")),
        "the stale mirror was asked too: {:?}",
        stale.requests()
    );
    assert!(!truncating.requests().is_empty());
    assert_eq!(
        std::fs::read(dir.join("versions/2.0.0/data/big")).unwrap(),
        crate::harness::noise(7, 40_000)
    );

    // Kept in the install and shown by status.
    let dir_arg = dir.to_str().unwrap();
    let status = appupdate_json(&["status", "--dir", dir_arg]);
    assert_eq!(
        status["mirrors"],
        serde_json::json!([truncating.url, stale.url, good.url]),
        "{status}"
    );
    let settings = std::fs::read_to_string(dir.join("state/install.toml")).unwrap();
    assert!(settings.contains("mirrors = ["), "{settings}");
    assert!(dir.join("state/mirrors.toml").is_file());

    // An update later goes through the same way.
    publish(&publisher, "3.0.0");
    let truncated_before = truncating.requests().len();
    let report = appupdate_json(&["update", "--dir", dir_arg, "--timeout", "5"]);
    assert_eq!(report["to"], "3.0.0", "{report}");
    assert_eq!(launch(&dir), "app 3.0.0");
    // The truncating mirror failed recently: only asked again if the others fail.
    assert_eq!(
        truncating.requests().len(),
        truncated_before,
        "{:?}",
        truncating.requests()
    );
}

#[test]
fn a_failed_base_is_not_tried_first_on_the_next_run() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let home = temp_dir();
    let unavailable = BadServer::start(&publisher.repo(), Mode::Unavailable);
    let good = Server::start(&publisher.repo());
    let dir = home.path().join("app");
    let out = install_with(&publisher, &dir, &unavailable.url, &[&good.url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!unavailable.requests().is_empty());

    // The next run starts with the base that worked: the one answering 503 gets nothing.
    publish(&publisher, "1.1.0");
    let before = unavailable.requests().len();
    let served_before = good.requests().len();
    let report = appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
    assert_eq!(report["to"], "1.1.0", "{report}");
    assert_eq!(
        unavailable.requests().len(),
        before,
        "{:?}",
        unavailable.requests()
    );
    let first = good.requests()[served_before].clone();
    assert!(first.contains("/metadata/"), "{first}");
    let health = std::fs::read_to_string(dir.join("state/mirrors.toml")).unwrap();
    assert!(health.contains(&unavailable.url), "{health}");
}

#[test]
fn a_stalling_base_costs_one_timeout_then_the_next_base_serves() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let home = temp_dir();
    let stalling = BadServer::start(&publisher.repo(), Mode::Stall);
    let good = Server::start(&publisher.repo());
    let dir = home.path().join("app");
    let mut args = install_args(&publisher, &stalling.url, "sample", &dir);
    args.extend(["--mirror", &good.url, "--timeout", "2", "--json"].map(String::from));
    let started = std::time::Instant::now();
    let out = appupdate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(launch(&dir), "app 1.0.0");
    assert!(!stalling.requests().is_empty());
    // Once marked failed, the stalling base is not waited for again in this run.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(50),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_mirror_serving_tampered_content_is_never_trusted() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let home = temp_dir();
    let tampering = BadServer::start(&publisher.repo(), Mode::Tamper);
    let good = Server::start(&publisher.repo());

    // With a good mirror: the right bytes, from the good one.
    let dir = home.path().join("app");
    let out = install_with(&publisher, &dir, &tampering.url, &[&good.url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(launch(&dir), "app 1.0.0");
    assert_eq!(
        std::fs::read(dir.join("versions/1.0.0/data/big")).unwrap(),
        crate::harness::noise(7, 40_000)
    );
    assert!(
        tampering
            .requests()
            .iter()
            .any(|r| r.starts_with("/blobs/")),
        "the tampering mirror was asked for content: {:?}",
        tampering.requests()
    );

    // Alone: a clear error, nothing installed.
    let alone = home.path().join("alone");
    let out = install_with(&publisher, &alone, &tampering.url, &[]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("blake3 mismatch"), "{stderr}");
    assert!(!alone.join("appstart.toml").exists());
}

#[test]
fn a_forged_timestamp_makes_the_refresh_start_again_without_that_base() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let home = temp_dir();
    // It claims the highest version, so it is verified first, and fails.
    let forger = BadServer::start(&publisher.repo(), Mode::ForgeTimestamp);
    let good = Server::start(&publisher.repo());
    let dir = home.path().join("app");
    let out = install_with(&publisher, &dir, &forger.url, &[&good.url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("refreshing from the next repository URL"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(launch(&dir), "app 1.0.0");
    let status = appupdate_json(&["status", "--dir", dir.to_str().unwrap()]);
    assert_eq!(status["current"], "1.0.0", "{status}");

    // Alone, it is refused: exit 4 (verification), nothing installed.
    let alone = home.path().join("alone");
    let out = install_with(&publisher, &alone, &forger.url, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(!alone.exists());
}

#[test]
fn the_signed_mirror_list_is_used_when_the_primary_is_down() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let home = temp_dir();
    let mut primary = Server::start(&publisher.repo());
    let mirror = Server::start(&publisher.repo());
    let repo = publisher.repo();
    let keys = publisher.keys();
    let (repo_arg, keys_arg) = (repo.to_str().unwrap(), keys.to_str().unwrap());
    let set = appupdate_json(&[
        "repo",
        "mirrors",
        "--repo",
        repo_arg,
        "--keys",
        keys_arg,
        "--url",
        &mirror.url,
    ]);
    assert_eq!(set["changed"], true, "{set}");
    // A file:// URL means nothing on another machine: refused, naming it.
    let out = appupdate(&[
        "repo",
        "mirrors",
        "--repo",
        repo_arg,
        "--keys",
        keys_arg,
        "--url",
        "file:///srv/repo",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("file:///srv/repo"),
        "{}",
        text(&out.stderr)
    );

    // A fresh install takes the content from the signed mirrors as soon as the metadata
    // that names them verified: its primary here serves the metadata only.
    let metadata_only = BadServer::start(&publisher.repo(), Mode::MetadataOnly);
    let fresh = home.path().join("fresh");
    let out = install_with(&publisher, &fresh, &metadata_only.url, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(launch(&fresh), "app 1.0.0");

    // Installed from the primary alone; the verified metadata names the mirror.
    let dir = home.path().join("app");
    let out = install_with(&publisher, &dir, &primary.url, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir_arg = dir.to_str().unwrap();
    let status = appupdate_json(&["status", "--dir", dir_arg]);
    assert_eq!(
        status["signed_mirrors"],
        serde_json::json!([mirror.url]),
        "{status}"
    );
    assert!(appupdate_ok(&["status", "--dir", dir_arg]).contains("(signed list)"));

    // The primary goes away; the update comes from the signed mirror.
    primary.kill();
    publish(&publisher, "2.0.0");
    let served_before = mirror.requests().len();
    let report = appupdate_json(&["update", "--dir", dir_arg, "--timeout", "5"]);
    assert_eq!(report["to"], "2.0.0", "{report}");
    assert_eq!(launch(&dir), "app 2.0.0");
    assert!(mirror.requests().len() > served_before);

    // --off removes the list.
    let off = appupdate_json(&[
        "repo", "mirrors", "--repo", repo_arg, "--keys", keys_arg, "--off",
    ]);
    assert_eq!(off["urls"], serde_json::json!([]), "{off}");
}

#[test]
fn when_every_base_fails_the_error_names_each_one() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let home = temp_dir();
    let (first, second) = (down_url(), down_url());
    let dir = home.path().join("app");
    let out = install_with(&publisher, &dir, &first, &[&second]);
    assert_eq!(out.status.code(), Some(3), "network: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("all 2 repository URLs failed"), "{stderr}");
    assert!(
        stderr.contains(&first) && stderr.contains(&second),
        "{stderr}"
    );
    assert!(!dir.exists());
}
