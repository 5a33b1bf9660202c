//! Bandwidth limits and metered connections (issue 18, item 6), with a real `appupdate
//! serve` on loopback and, for the metered check, a real D-Bus: a private `dbus-daemon` and a
//! stand-in NetworkManager (`bandwidth/fake_networkmanager.py`, python3 with dbus-next) that
//! the client finds through `DBUS_SYSTEM_BUS_ADDRESS`.
//!
//! Timing: only lower bounds are asserted (a throttled update of N bytes at R bytes a second
//! takes at least 0.8 N / R); a loaded machine can only make it slower, never faster.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Publisher, Server, bin, install_args, noise, run, temp_dir, text};

const APP: &[u8] = b"#!/bin/sh\necho app\n";

/// A system bus address where nothing listens: the metered check answers "unknown" (not
/// metered) whatever the machine running the tests is connected through.
const NO_BUS: &str = "unix:path=/nonexistent/appstart-test-bus";

/// Publishes `version` with `size` bytes of incompressible data (seeded by `seed`).
fn publish(publisher: &Publisher, version: &str, seed: u64, size: usize) {
    let data = noise(seed, size);
    publisher.publish(
        "hello",
        version,
        &[("bin/app", APP, true), ("data.bin", &data, false)],
        &[],
    );
}

/// `appupdate ARGS` with the system bus at `bus`.
fn appupdate_on(bus: &str, args: &[&str]) -> Output {
    run(Command::new(bin("appupdate"))
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus))
}

/// `appupdate ARGS --json` that must succeed: its JSON and how long it took.
fn json_on(bus: &str, args: &[&str]) -> (serde_json::Value, Duration) {
    let mut all = args.to_vec();
    all.push("--json");
    let started = Instant::now();
    let output = appupdate_on(bus, &all);
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "appupdate {all:?} failed: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&output.stdout)));
    (json, elapsed)
}

fn current(dir: &Path) -> String {
    let (status, _) = json_on(NO_BUS, &["status", "--dir", dir.to_str().unwrap()]);
    status["current"].as_str().unwrap().to_string()
}

/// Asserts the lower bound: `report`'s bytes at `rate` bytes a second take at least 80 %
/// of `bytes / rate`.
fn assert_throttled(report: &serde_json::Value, elapsed: Duration, rate: u64) {
    let bytes = report["bytes_downloaded"].as_u64().unwrap();
    let least = Duration::from_secs_f64(0.8 * bytes as f64 / rate as f64);
    assert!(
        elapsed >= least,
        "{bytes} bytes at {rate} B/s took {elapsed:?}, less than {least:?}: not throttled"
    );
    assert_eq!(report["max_bandwidth"], rate, "{report}");
}

#[test]
fn background_updates_keep_to_max_bandwidth_and_the_policy_caps_them() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0", 1, 64 * 1024);
    let server = Server::start(&publisher.repo());
    let work = temp_dir();
    let dir = work.path().join("hello");
    let dir_text = dir.to_str().unwrap();
    let mut install = install_args(&publisher, &server.url, "hello", &dir);
    install.extend(["--max-bandwidth".into(), "512K".into()]);
    let install: Vec<&str> = install.iter().map(String::as_str).collect();
    json_on(NO_BUS, &install);
    let settings = std::fs::read_to_string(dir.join("state/install.toml")).unwrap();
    assert!(settings.contains("max_bandwidth = \"512K\""), "{settings}");

    // The install's own limit: 2.5 MB at 512 KiB/s is at least 4 s.
    publish(&publisher, "2.0.0", 2, 2_500_000);
    let (report, elapsed) = json_on(NO_BUS, &["update", "--dir", dir_text, "--background"]);
    assert_eq!(report["to"], "2.0.0", "{report}");
    assert_throttled(&report, elapsed, 512 * 1024);

    // The policy's lower cap wins over the install's limit.
    std::fs::write(dir.join("policy.toml"), "max_bandwidth = \"256K\"\n").unwrap();
    publish(&publisher, "3.0.0", 3, 1_250_000);
    let (report, elapsed) = json_on(NO_BUS, &["update", "--dir", dir_text, "--background"]);
    assert_eq!(report["to"], "3.0.0", "{report}");
    assert_throttled(&report, elapsed, 256 * 1024);
    let (shown, _) = json_on(NO_BUS, &["settings", "--dir", dir_text]);
    assert_eq!(shown["max_bandwidth"], "512K", "{shown}");
    assert_eq!(shown["policy_max_bandwidth"], "256K", "{shown}");
    assert_eq!(shown["background_max_bandwidth"], 256 * 1024, "{shown}");

    // A foreground update runs without a limit (no timing asserted: the report says so).
    publish(&publisher, "4.0.0", 4, 64 * 1024);
    let (report, _) = json_on(NO_BUS, &["update", "--dir", dir_text]);
    assert_eq!(report["to"], "4.0.0", "{report}");
    assert_eq!(report["max_bandwidth"], serde_json::Value::Null, "{report}");

    // `settings` changes the limit later; a bad rate is refused naming the flag, unchanged.
    let (shown, _) = json_on(
        NO_BUS,
        &["settings", "--dir", dir_text, "--max-bandwidth", "off"],
    );
    assert_eq!(shown["max_bandwidth"], serde_json::Value::Null, "{shown}");
    let settings = std::fs::read_to_string(dir.join("state/install.toml")).unwrap();
    assert!(!settings.contains("max_bandwidth"), "{settings}");
    let before = settings;
    let bad = appupdate_on(
        NO_BUS,
        &["settings", "--dir", dir_text, "--max-bandwidth", "fast"],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(
        text(&bad.stderr).contains("--max-bandwidth"),
        "{}",
        text(&bad.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("state/install.toml")).unwrap(),
        before
    );
    // A bad policy value is an error naming the file and the key.
    std::fs::write(dir.join("policy.toml"), "max_bandwidth = \"lots\"\n").unwrap();
    let bad = appupdate_on(NO_BUS, &["update", "--dir", dir_text, "--background"]);
    assert!(!bad.status.success());
    let message = text(&bad.stderr);
    assert!(
        message.contains("policy.toml") && message.contains("max_bandwidth"),
        "{message}"
    );
    std::fs::remove_file(dir.join("policy.toml")).unwrap();
    assert_eq!(current(&dir), "4.0.0");
}

/// A private `dbus-daemon` and the stand-in NetworkManager on it; both stopped on drop.
struct FakeNetworkManager {
    daemon: Child,
    service: Child,
    address: String,
    value: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeNetworkManager {
    /// `None` (with the reason printed) when dbus-daemon or python3's dbus-next is missing,
    /// outside CI; in CI (`CI` set) that fails the test: `.ci/run` installs both.
    fn start() -> Option<Self> {
        let quiet = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let ready =
            quiet("dbus-daemon", &["--version"]) && quiet("python3", &["-c", "import dbus_next"]);
        if !ready {
            assert!(
                std::env::var_os("CI").is_none(),
                "dbus-daemon or python3's dbus-next is missing; .ci/run installs them (apt-get install dbus, pip install dbus-next)"
            );
            eprintln!(
                "SKIPPED: dbus-daemon or dbus-next missing (apt-get install dbus; pip install dbus-next) - metered connections not checked"
            );
            return None;
        }
        let dir = temp_dir();
        let socket = dir.path().join("bus");
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dbus-daemon");
        let mut address = String::new();
        std::io::BufReader::new(daemon.stdout.take().expect("piped"))
            .read_line(&mut address)
            .expect("dbus-daemon prints its address");
        let address = address.trim().to_string();
        assert!(address.starts_with("unix:"), "{address:?}");
        let value = dir.path().join("metered");
        std::fs::write(&value, "4").unwrap();
        let mut service = Command::new("python3")
            .arg(crate::harness::test_file(
                "bandwidth/fake_networkmanager.py",
            ))
            .arg(&value)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the stand-in NetworkManager");
        let mut line = String::new();
        std::io::BufReader::new(service.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the service says ready");
        assert_eq!(line.trim(), "ready");
        Some(FakeNetworkManager {
            daemon,
            service,
            address,
            value,
            _dir: dir,
        })
    }

    /// Sets NetworkManager's `Metered` (1 yes, 2 no, 3 guess yes, 4 guess no).
    fn set_metered(&self, value: u32) {
        std::fs::write(&self.value, value.to_string()).unwrap();
    }
}

impl Drop for FakeNetworkManager {
    fn drop(&mut self) {
        for child in [&mut self.service, &mut self.daemon] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn background_updates_pause_on_a_metered_connection_linux() {
    let Some(network) = FakeNetworkManager::start() else {
        return;
    };
    let bus = network.address.as_str();
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0", 11, 16 * 1024);
    let server = Server::start(&publisher.repo());
    let work = temp_dir();
    let dir = work.path().join("hello");
    let dir_text = dir.to_str().unwrap();
    let install = install_args(&publisher, &server.url, "hello", &dir);
    let install: Vec<&str> = install.iter().map(String::as_str).collect();
    json_on(bus, &install);
    publish(&publisher, "2.0.0", 12, 16 * 1024);

    // Metered (YES, GUESS_YES): nothing done, exit 6, no request to the server.
    for value in [1, 3] {
        network.set_metered(value);
        let before = server.requests().len();
        let output = appupdate_on(
            bus,
            &["update", "--dir", dir_text, "--background", "--json"],
        );
        assert_eq!(
            output.status.code(),
            Some(6),
            "Metered={value}: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        let stdout = text(&output.stdout);
        assert!(stdout.contains("metered connection"), "{stdout}");
        assert_eq!(server.requests().len(), before, "Metered={value}");
        assert_eq!(current(&dir), "1.0.0");
    }
    // A foreground update is not paused.
    let (report, _) = json_on(bus, &["update", "--dir", dir_text, "--download-only"]);
    assert_eq!(report["staged"], "2.0.0", "{report}");

    // The policy's `metered = "allow"` lets background updates run on it.
    std::fs::write(dir.join("policy.toml"), "metered = \"allow\"\n").unwrap();
    let (report, _) = json_on(bus, &["update", "--dir", dir_text, "--background"]);
    assert_eq!(report["to"], "2.0.0", "{report}");
    std::fs::remove_file(dir.join("policy.toml")).unwrap();

    // So does the install's own setting, when the policy says nothing.
    publish(&publisher, "3.0.0", 13, 16 * 1024);
    json_on(bus, &["settings", "--dir", dir_text, "--metered", "allow"]);
    let (report, _) = json_on(bus, &["update", "--dir", dir_text, "--background"]);
    assert_eq!(report["to"], "3.0.0", "{report}");
    json_on(
        bus,
        &["settings", "--dir", dir_text, "--metered", "default"],
    );

    // Not metered (GUESS_NO): the background update runs.
    publish(&publisher, "4.0.0", 14, 16 * 1024);
    network.set_metered(4);
    let (report, _) = json_on(bus, &["update", "--dir", dir_text, "--background"]);
    assert_eq!(report["to"], "4.0.0", "{report}");
}
