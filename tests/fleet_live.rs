//! The fleet view end to end (issue 16): real installs post their receipts to a real receiver
//! (`appupdate serve --receipts-db`), which is killed with SIGKILL in the middle of the run
//! and restarted; the fleet summary then shows every install and every step, once.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{
    Publisher, Server, appupdate_json, appupdate_ok, bin, bin_dir, chromium, chromium_dom,
    chromium_screenshot, run, temp_dir, text,
};

const WORKING: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";
const CRASHING: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION crashes\"\nexit 1\n";

/// A receiver on a fixed port (the receipts URL is signed into the metadata, so a restarted
/// receiver must come back at the same address).
struct Receiver {
    child: Child,
}

impl Receiver {
    fn start(repo: &Path, db: &str, port: u16) -> Self {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut child = Command::new(bin("appupdate"))
                .args([
                    "serve",
                    "--repo",
                    repo.to_str().unwrap(),
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--receipts-db",
                    db,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start the receiver");
            let stdout = child.stdout.take().expect("piped");
            let mut reader = std::io::BufReader::new(stdout);
            let mut first = String::new();
            let _ = std::io::BufRead::read_line(&mut reader, &mut first);
            if first.contains("serving") {
                // Keep reading the access log so the server never blocks on a full pipe.
                std::thread::spawn(move || {
                    for _ in std::io::BufRead::lines(reader).map_while(Result::ok) {}
                });
                return Receiver { child };
            }
            // The port may still be held by the killed receiver's socket for a moment.
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "the receiver did not start: {first}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILL: no chance to flush anything.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn publish(publisher: &Publisher, name: &str, version: &str, app: &[u8]) {
    publisher.publish(
        name,
        version,
        &[("bin/app", app, true), ("x", version.as_bytes(), false)],
        &[],
    );
}

/// Five installs of `app` through 1.0.0, 2.0.0 (the receiver killed with SIGKILL after two
/// of them updated, then restarted) and a crashing 3.0.0 they fall back from; returns the
/// restarted receiver's URL (and the receiver, alive).
fn five_installs_through_a_killed_receiver(db: &str, app: &str) -> (Receiver, String, Publisher) {
    let publisher = Publisher::new();
    publish(&publisher, app, "1.0.0", WORKING);
    let repo_server = Server::start(&publisher.repo());
    let home = temp_dir();
    let port = free_port();
    let mut receiver = Some(Receiver::start(&publisher.repo(), db, port));
    let repo = publisher.repo();
    let keys = publisher.keys();
    appupdate_ok(&[
        "repo",
        "receipts",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--url",
        &format!("http://127.0.0.1:{port}"),
    ]);
    let dirs: Vec<PathBuf> = (0..5).map(|i| home.path().join(format!("c{i}"))).collect();
    for dir in &dirs {
        crate::harness::install(&publisher, &repo_server.url, app, dir);
    }

    publish(&publisher, app, "2.0.0", WORKING);
    for (i, dir) in dirs.iter().enumerate() {
        if i == 2 {
            // The receiver dies; updates go on, and their receipts wait in the outboxes.
            receiver.take().expect("running").kill();
        }
        let report = appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
        assert_eq!(report["to"], "2.0.0", "{report}");
    }
    let receiver = Receiver::start(&publisher.repo(), db, port);

    publish(&publisher, app, "3.0.0", CRASHING);
    for dir in &dirs {
        let dir_text = dir.to_str().unwrap();
        assert_eq!(
            appupdate_json(&["update", "--dir", dir_text])["to"],
            "3.0.0"
        );
        // 3.0.0 crashes on probation: the launcher falls back to 2.0.0.
        let out = run(&mut Command::new(dir.join("appstart")));
        assert!(text(&out.stdout).contains("app 3.0.0 crashes"));
        let status = appupdate_json(&["status", "--dir", dir_text]);
        assert_eq!(status["current"], "2.0.0", "{status}");
        // The next check reports the fallback (and anything still waiting); a second one
        // sends only its own `checked` receipt.
        appupdate_ok(&["check", "--dir", dir_text]);
        appupdate_ok(&["check", "--dir", dir_text]);
    }
    drop(home);
    (receiver, format!("http://127.0.0.1:{port}"), publisher)
}

/// `appupdate fleet --json`: every install counted once, every step of both releases.
fn check_fleet(db: &str, app: &str) {
    let fleet = appupdate_json(&["fleet", "--db", db, "--app", app]);
    assert_eq!(fleet["installs"], 5, "{fleet}");
    assert_eq!(
        fleet["by_version"],
        serde_json::json!({"2.0.0": 5}),
        "{fleet}"
    );
    let release = |version: &str| {
        fleet["releases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["version"] == version)
            .unwrap_or_else(|| panic!("no {version} in {fleet}"))
            .clone()
    };
    let two = release("2.0.0");
    for step in ["found", "downloaded", "switched"] {
        assert_eq!(two[step], 5, "2.0.0 {step}: {two}");
    }
    assert_eq!(two["fell_back"], 0);
    assert_eq!(two["failed"], 0);
    let three = release("3.0.0");
    assert_eq!(three["switched"], 5, "{three}");
    assert_eq!(three["fell_back"], 5, "{three}");
}

#[test]
fn five_installs_report_an_update_and_a_fallback_through_a_receiver_killed_midway() {
    let home = temp_dir();
    let db = home.path().join("receipts.sqlite");
    let db = db.to_str().unwrap();
    let (receiver, url, _publisher) = five_installs_through_a_killed_receiver(db, "sample");
    check_fleet(db, "sample");

    // The same numbers on the fleet page, rendered by a real browser.
    let Some(browser) = chromium() else {
        return;
    };
    let page = format!("{url}/fleet?app=sample");
    let dom = chromium_dom(browser, &page);
    for (id, count) in [
        ("installs", 5),
        ("version-2.0.0", 5),
        ("release-sample-2.0.0-found", 5),
        ("release-sample-2.0.0-downloaded", 5),
        ("release-sample-2.0.0-switched", 5),
        ("release-sample-3.0.0-fell_back", 5),
    ] {
        let cell = format!("id=\"{id}\" data-count=\"{count}\"");
        assert!(
            dom.contains(&cell),
            "the rendered page has no {cell}:\n{dom}"
        );
    }
    let shot = bin_dir().parent().unwrap().join("fleet-live-page.png");
    chromium_screenshot(browser, &page, &shot);
    drop(receiver);
}

#[test]
fn the_same_fleet_through_a_postgresql_receiver() {
    let Ok(url) = std::env::var("APPSTART_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "APPSTART_TEST_POSTGRES is not set; .ci/run starts PostgreSQL and sets it"
        );
        eprintln!("SKIPPED: APPSTART_TEST_POSTGRES is not set (a postgres:// URL)");
        return;
    };
    // One database for every test and run: an app name of its own.
    let app = format!("live{}", std::process::id());
    let (receiver, _, _publisher) = five_installs_through_a_killed_receiver(&url, &app);
    check_fleet(&url, &app);
    drop(receiver);
}
