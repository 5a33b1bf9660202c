//! Delivery receipts end to end (issue 16): real installs post their receipts to a small real
//! HTTP receiver on loopback (run inside the test, standing in for `appupdate serve
//! --receipts-db`) named by `appupdate repo receipts`; the launcher's fallback becomes a
//! `fell_back` receipt; a receiver that is down never fails an update; policy `receipts =
//! false` and `repo receipts --off` stop them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Publisher, Server, appupdate_json, appupdate_ok, run, temp_dir, text};

const APP_SCRIPT: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";
const CRASHING_SCRIPT: &[u8] = b"#!/bin/sh\nexit 1\n";

/// A receiver on 127.0.0.1 that records the body of every `POST /receipts`.
struct Receiver {
    server: Arc<tiny_http::Server>,
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (serving, sink) = (Arc::clone(&server), Arc::clone(&bodies));
        std::thread::spawn(move || {
            for mut request in serving.incoming_requests() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let ok =
                    request.method() == &tiny_http::Method::Post && request.url() == "/receipts";
                let answer = match serde_json::from_str::<Value>(&body) {
                    Ok(batch) if ok => {
                        let n = batch["receipts"].as_array().map_or(0, Vec::len);
                        sink.lock().unwrap().push(batch);
                        tiny_http::Response::from_string(format!(
                            "{{\"inserted\": {n}, \"duplicates\": 0}}"
                        ))
                    }
                    _ => tiny_http::Response::from_string("bad batch").with_status_code(400),
                };
                let _ = request.respond(answer);
            }
        });
        Receiver {
            server,
            url: format!("http://127.0.0.1:{port}"),
            bodies,
        }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// Every receipt received, in arrival order.
    fn receipts(&self) -> Vec<Value> {
        self.bodies()
            .iter()
            .flat_map(|b| b["receipts"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    fn events(&self) -> Vec<String> {
        self.receipts()
            .iter()
            .map(|r| r["event"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// A repository of app `sample` with 1.0.0, served, and a folder for installs.
struct Setup {
    publisher: Publisher,
    server: Server,
    home: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let publisher = Publisher::new();
        publish(&publisher, "1.0.0", APP_SCRIPT);
        Setup {
            server: Server::start(&publisher.repo()),
            publisher,
            home: temp_dir(),
        }
    }

    fn publish(&self, version: &str, script: &[u8]) {
        publish(&self.publisher, version, script);
    }

    fn receipts_to(&self, url: Option<&str>) -> Value {
        let repo = self.publisher.repo();
        let keys = self.publisher.keys();
        let mut args = vec![
            "repo",
            "receipts",
            "--repo",
            repo.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
        ];
        match url {
            Some(url) => args.extend(["--url", url]),
            None => args.push("--off"),
        }
        appupdate_json(&args)
    }

    fn install(&self, name: &str) -> PathBuf {
        let dir = self.home.path().join(name);
        crate::harness::install(&self.publisher, &self.server.url, "sample", &dir);
        dir
    }
}

fn publish(publisher: &Publisher, version: &str, script: &[u8]) {
    publisher.publish(
        "sample",
        version,
        &[("bin/app", script, true), ("x", version.as_bytes(), false)],
        &[],
    );
}

fn client(command: &str, dir: &Path) -> String {
    appupdate_ok(&[command, "--dir", dir.to_str().unwrap()])
}

fn current(dir: &Path) -> String {
    let config = std::fs::read_to_string(dir.join("appstart.toml")).unwrap();
    config
        .lines()
        .find_map(|l| l.strip_prefix("current = "))
        .unwrap()
        .trim_matches('"')
        .to_string()
}

/// Starts the app through the real launcher until it runs `version` (a crashing release is
/// fallen back from), at most a few times.
fn launch_until(dir: &Path, version: &str) {
    for _ in 0..4 {
        let _ = run(&mut Command::new(dir.join("appstart")));
        if current(dir) == version {
            return;
        }
    }
    panic!("the launcher never fell back to {version}");
}

fn outbox(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("state/receipts.jsonl")).unwrap_or_default()
}

#[test]
fn receipts_tell_the_story_of_each_install_to_the_receiver() {
    let setup = Setup::new();
    let receiver = Receiver::start();
    let report = setup.receipts_to(Some(&receiver.url));
    assert_eq!(report["changed"], true);
    // The config target is not a release: listing ignores it.
    let repo = setup.publisher.repo();
    let listed = appupdate_json(&["release", "list", "--repo", repo.to_str().unwrap()]);
    let targets: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["sample/stable/any/1.0.0/manifest.json"]);
    python_tuf_reads_the_receipts_target(&setup, &receiver.url);

    let dir = setup.install("app");
    let status = appupdate_json(&["status", "--dir", dir.to_str().unwrap()]);
    setup.publish("2.0.0", APP_SCRIPT);
    client("update", &dir);
    launch_until(&dir, "2.0.0");
    client("check", &dir);
    setup.publish("3.0.0", CRASHING_SCRIPT);
    client("update", &dir);
    assert_eq!(current(&dir), "3.0.0");
    launch_until(&dir, "2.0.0");
    client("check", &dir);

    assert_eq!(
        receiver.events(),
        [
            "checked",
            "found",
            "downloaded",
            "staged",
            "switched",
            "checked",
            "checked",
            "found",
            "downloaded",
            "staged",
            "switched",
            "fell_back",
            "checked",
        ]
    );
    let receipts = receiver.receipts();
    let mut ids: Vec<&str> = receipts.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), receipts.len(), "no duplicate ids");
    for receipt in &receipts {
        assert_eq!(receipt["install_id"], status["install_id"]);
        assert_eq!(receipt["app"], "sample");
        assert_eq!(receipt["channel"], "stable");
        assert_eq!(receipt["platform"], status["platform"]);
    }
    let by = |event: &str, to: &str| {
        receipts
            .iter()
            .find(|r| r["event"] == event && r["to"] == to)
            .unwrap_or_else(|| panic!("no {event} to {to}: {receipts:?}"))
    };
    let fell_back = by("fell_back", "2.0.0");
    assert_eq!(fell_back["from"], "3.0.0");
    let switched = by("switched", "2.0.0");
    assert_eq!(switched["from"], "1.0.0");
    assert!(switched["bytes"].as_u64().unwrap() > 0);
    assert!(by("downloaded", "2.0.0")["bytes"].as_u64().unwrap() > 0);
    assert!(receipts.iter().all(|r| r.get("error").is_none()));
    // Nothing that names the machine or its user.
    let bodies = serde_json::to_string(&receiver.bodies()).unwrap();
    for private in [hostname(), std::env::var("USER").ok()]
        .into_iter()
        .flatten()
        .filter(|s| s.len() >= 3)
    {
        assert!(!bodies.contains(&private), "{private:?} sent in {bodies}");
    }
    assert!(bodies.contains("\"dropped\":0"));
    assert_eq!(outbox(&dir), "", "everything delivered left the outbox");
}

/// python-tuf still reads the repository, and the receipts target is a real target it can
/// download, whose custom is the config.
fn python_tuf_reads_the_receipts_target(setup: &Setup, url: &str) {
    let Some(python) = crate::harness::python_with_tuf() else {
        return;
    };
    let work = temp_dir();
    let output = run(Command::new(python)
        .arg(crate::harness::test_file("interop/ngclient_download.py"))
        .args([
            &format!("{}/metadata/", setup.server.url),
            &format!("{}/targets/", setup.server.url),
            setup.publisher.root_json().to_str().unwrap(),
            work.path().to_str().unwrap(),
            "_appstart/receipts.json",
        ]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["sha256"], result["downloaded_sha256"]);
    assert_eq!(result["custom"]["url"], url);
}

fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/etc/hostname").ok()?;
    Some(name.trim().to_string())
}

#[test]
fn a_receiver_that_is_down_never_fails_an_update_and_gets_the_receipts_later() {
    let setup = Setup::new();
    // A port nobody listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    setup.receipts_to(Some(&closed));
    let dir = setup.install("app");
    setup.publish("2.0.0", APP_SCRIPT);
    let started = Instant::now();
    let report = appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
    assert_eq!(report["to"], "2.0.0");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a receiver that is down slowed the update: {:?}",
        started.elapsed()
    );
    let kept = outbox(&dir);
    assert_eq!(kept.lines().count(), 5, "{kept}");
    assert!(kept.contains("\"switched\""), "{kept}");

    let receiver = Receiver::start();
    setup.receipts_to(Some(&receiver.url));
    client("check", &dir);
    assert_eq!(
        receiver.events(),
        [
            "checked",
            "found",
            "downloaded",
            "staged",
            "switched",
            "checked"
        ]
    );
    assert_eq!(outbox(&dir), "");
}

#[test]
fn policy_receipts_false_and_repo_receipts_off_send_nothing() {
    let setup = Setup::new();
    let receiver = Receiver::start();
    setup.receipts_to(Some(&receiver.url));
    let opted_out = setup.install("opted-out");
    std::fs::write(opted_out.join("policy.toml"), "receipts = false\n").unwrap();
    let sending = setup.install("sending");
    setup.publish("2.0.0", APP_SCRIPT);
    client("update", &opted_out);
    client("check", &opted_out);
    assert_eq!(current(&opted_out), "2.0.0");
    assert!(receiver.receipts().is_empty(), "{:?}", receiver.receipts());
    assert_eq!(outbox(&opted_out), "", "nothing recorded either");

    client("check", &sending);
    assert_eq!(receiver.events(), ["checked", "found"]);
    let report = setup.receipts_to(None);
    assert_eq!(report["changed"], true);
    assert_eq!(report["url"], Value::Null);
    client("update", &sending);
    client("check", &sending);
    assert_eq!(
        receiver.events(),
        ["checked", "found"],
        "off: nothing more sent"
    );
    assert!(
        !outbox(&sending).is_empty(),
        "still recorded, for a later receiver"
    );
}
